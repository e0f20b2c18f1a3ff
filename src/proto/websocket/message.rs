//! Messages from data frames, and the rules on close codes.
//!
//! What it does: assembles a message from its data frames (RFC 6455 §5.4),
//! checking the order of opcodes, the size limit and, for text, UTF-8 as
//! the bytes arrive (§5.6, §8.1), and says which close code ends the
//! connection when a rule is broken (§7.4.1); checks the close code and
//! reason an application may send (§5.5.1, §7.4). What it does not do: parse
//! or unmask frames, handle control frames, or inflate (the frame codec
//! does all three before a payload reaches the [`Assembler`]).
//!
//! Theory of operation: the common message is one frame; its payload is
//! validated and handed back as is, never copied. A fragmented message is
//! gathered into one buffer; a text one is validated fragment by fragment,
//! each check starting where the last complete code point ended, so that
//! the connection fails as soon as the bytes so far cannot begin valid UTF-8
//! (§8.1 "fail fast"; Autobahn 6.4.*), while a code point split across two
//! fragments is fine until the message ends.

use std::fmt;

use bytes::{Bytes, BytesMut};

/// Normal closure (RFC 6455 §7.4.1).
pub(crate) const NORMAL: u16 = 1000;
/// An endpoint going away, e.g. a server shutting down (RFC 6455 §7.4.1).
pub(crate) const GOING_AWAY: u16 = 1001;
/// A protocol error (RFC 6455 §7.4.1).
pub(crate) const PROTOCOL_ERROR: u16 = 1002;
/// No status code in the close frame; never sent (RFC 6455 §7.4.1).
pub(crate) const NO_STATUS: u16 = 1005;
/// The connection dropped without a close frame; never sent (RFC 6455
/// §7.4.1).
pub(crate) const ABNORMAL: u16 = 1006;
/// Data inconsistent with the message type, e.g. invalid UTF-8 in text
/// (RFC 6455 §7.4.1).
pub(crate) const INVALID_DATA: u16 = 1007;
/// A message too big to process (RFC 6455 §7.4.1).
pub(crate) const TOO_BIG: u16 = 1009;
/// An unexpected condition on the server, e.g. the application raised (RFC
/// 6455 §7.4.1).
pub(crate) const INTERNAL_ERROR: u16 = 1011;

/// The opcode of a data frame (RFC 6455 §5.2, §5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataFrame {
    Text,
    Binary,
    Continuation,
}

/// A complete message. Text is kept as bytes (valid UTF-8, checked): a
/// one-frame message is then its frame's payload, without a copy, and the
/// Python bridge builds a `str` from bytes whichever type holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Valid UTF-8.
    Text(Bytes),
    Binary(Bytes),
}

/// Why the peer's frames end the connection: the close code to send (RFC
/// 6455 §7.4.1) and a short reason, for the close frame and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CloseReason {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

const ORPHAN_CONTINUATION: CloseReason = CloseReason {
    code: PROTOCOL_ERROR,
    reason: "continuation frame without a message",
};
const INTERLEAVED: CloseReason = CloseReason {
    code: PROTOCOL_ERROR,
    reason: "new message before the last one ended",
};
const OVERSIZED: CloseReason = CloseReason {
    code: TOO_BIG,
    reason: "message too big",
};
const INVALID_UTF8: CloseReason = CloseReason {
    code: INVALID_DATA,
    reason: "invalid UTF-8 in a text message",
};

/// Assembles messages from a connection's data frames, in the order they
/// arrive.
#[derive(Debug)]
pub(crate) struct Assembler {
    max_message: usize,
    partial: Partial,
}

/// The message in progress between its first and last frame.
#[derive(Debug)]
enum Partial {
    None,
    /// `valid_up_to`: the bytes before it are complete UTF-8 code points;
    /// the rest (at most 3 bytes) begin one.
    Text {
        buffer: BytesMut,
        valid_up_to: usize,
    },
    Binary {
        buffer: BytesMut,
    },
}

impl Assembler {
    /// `max_message`: the largest message, in bytes (after inflating).
    pub(crate) fn new(max_message: usize) -> Assembler {
        Assembler {
            max_message,
            partial: Partial::None,
        }
    }

    /// Takes the next data frame: `Ok(Some)` when it ends a message,
    /// `Ok(None)` when more frames are needed, `Err` with the code to close
    /// the connection with when it breaks a rule (the assembler is then
    /// empty; the connection is over anyway).
    pub(crate) fn push(
        &mut self,
        opcode: DataFrame,
        fin: bool,
        payload: Bytes,
    ) -> Result<Option<Message>, CloseReason> {
        let result = self.take(opcode, fin, payload);
        if result.is_err() {
            self.partial = Partial::None;
        }
        result
    }

    fn take(
        &mut self,
        opcode: DataFrame,
        fin: bool,
        payload: Bytes,
    ) -> Result<Option<Message>, CloseReason> {
        // The message may not grow past the limit; checked before buffering.
        let max_message = self.max_message;
        let fits = |buffered: usize| match payload.len() > max_message - buffered {
            true => Err(OVERSIZED),
            false => Ok(()),
        };
        match (opcode, &mut self.partial) {
            // RFC 6455 §5.4: continuation frames follow a first frame, and
            // the frames of one message are not interleaved with another's.
            (DataFrame::Continuation, Partial::None) => Err(ORPHAN_CONTINUATION),
            (
                DataFrame::Text | DataFrame::Binary,
                Partial::Text { .. } | Partial::Binary { .. },
            ) => Err(INTERLEAVED),
            (DataFrame::Text, Partial::None) => {
                fits(0)?;
                let valid_up_to = check_utf8(&payload, 0, fin)?;
                if fin {
                    return Ok(Some(Message::Text(payload)));
                }
                self.partial = Partial::Text {
                    buffer: BytesMut::from(payload),
                    valid_up_to,
                };
                Ok(None)
            }
            (DataFrame::Binary, Partial::None) => {
                fits(0)?;
                if fin {
                    return Ok(Some(Message::Binary(payload)));
                }
                self.partial = Partial::Binary {
                    buffer: BytesMut::from(payload),
                };
                Ok(None)
            }
            (
                DataFrame::Continuation,
                Partial::Text {
                    buffer,
                    valid_up_to,
                },
            ) => {
                fits(buffer.len())?;
                buffer.extend_from_slice(&payload);
                *valid_up_to = check_utf8(buffer, *valid_up_to, fin)?;
                Ok(fin.then(|| Message::Text(self.finish())))
            }
            (DataFrame::Continuation, Partial::Binary { buffer }) => {
                fits(buffer.len())?;
                buffer.extend_from_slice(&payload);
                Ok(fin.then(|| Message::Binary(self.finish())))
            }
        }
    }

    /// The buffered message, leaving the assembler empty.
    fn finish(&mut self) -> Bytes {
        match std::mem::replace(&mut self.partial, Partial::None) {
            Partial::None => Bytes::new(),
            Partial::Text { buffer, .. } | Partial::Binary { buffer } => buffer.freeze(),
        }
    }
}

/// Checks `text[from..]`, where `from` is the start of a code point: the
/// new `valid_up_to` when the bytes are valid UTF-8, or (not at the end of
/// the message, `fin` false) valid but for the start of a code point at the
/// end; else 1007 (RFC 6455 §8.1).
fn check_utf8(text: &[u8], from: usize, fin: bool) -> Result<usize, CloseReason> {
    match std::str::from_utf8(&text[from..]) {
        Ok(_) => Ok(text.len()),
        // `error_len() == None`: the input ended inside a code point whose
        // bytes so far are valid (overlong forms, surrogates and values
        // past U+10FFFF are refused at the first byte that proves them).
        Err(error) if error.error_len().is_none() && !fin => Ok(from + error.valid_up_to()),
        Err(_) => Err(INVALID_UTF8),
    }
}

/// A close code or reason an application may not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseError {
    /// Not 1000 nor in 3000..=4999 (the codes of RFC 6455 §7.4.1 other
    /// than 1000 describe the endpoint's own failures; 3000..=4999 are for
    /// libraries and applications, §7.4.2).
    Code(u16),
    /// The reason's length in bytes, past 123 (a close frame's payload is at
    /// most 125 bytes, two of them the code, RFC 6455 §5.5, §5.5.1).
    ReasonTooLong(usize),
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::Code(code) => {
                write!(f, "close code must be 1000 or in 3000-4999, not {code}")
            }
            CloseError::ReasonTooLong(len) => write!(
                f,
                "close reason must be at most {MAX_CLOSE_REASON} bytes in UTF-8, not {len}"
            ),
        }
    }
}

impl std::error::Error for CloseError {}

/// The longest close reason, in bytes (RFC 6455 §5.5.1).
pub(crate) const MAX_CLOSE_REASON: usize = 123;

/// Whether an application may close with `code` and `reason`.
pub(crate) fn check_close(code: u16, reason: &str) -> Result<(), CloseError> {
    if code != NORMAL && !(3000..=4999).contains(&code) {
        return Err(CloseError::Code(code));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(CloseError::ReasonTooLong(reason.len()));
    }
    Ok(())
}

/// Whether `code` ends a connection normally, so that iterating over its
/// messages just stops: 1000, 1001, and 1005 (a close frame without a code).
pub(crate) fn is_normal_close(code: u16) -> bool {
    matches!(code, NORMAL | GOING_AWAY | NO_STATUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    use DataFrame::{Binary, Continuation, Text};

    type Frame = (DataFrame, bool, &'static [u8]);

    /// Feeds `frames`; the messages completed, or the first close reason.
    fn assemble(max: usize, frames: &[Frame]) -> Result<Vec<Message>, CloseReason> {
        let mut assembler = Assembler::new(max);
        let mut messages = vec![];
        for &(opcode, fin, payload) in frames {
            if let Some(message) = assembler.push(opcode, fin, Bytes::from_static(payload))? {
                messages.push(message);
            }
        }
        Ok(messages)
    }

    fn text(s: &'static str) -> Message {
        Message::Text(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn one_frame_messages_are_not_copied() {
        let payload = Bytes::from(vec![b'a'; 100]);
        let pointer = payload.as_ptr();
        let mut assembler = Assembler::new(100);
        let Some(Message::Text(out)) = assembler.push(Text, true, payload).unwrap() else {
            panic!("not a text message");
        };
        assert_eq!(out.as_ptr(), pointer);
        let payload = Bytes::from(vec![0xff; 100]);
        let pointer = payload.as_ptr();
        let Some(Message::Binary(out)) = assembler.push(Binary, true, payload).unwrap() else {
            panic!("not a binary message");
        };
        assert_eq!(out.as_ptr(), pointer);
    }

    #[test]
    fn fragmented_messages() {
        assert_eq!(
            assemble(
                100,
                &[
                    (Text, false, b"Hel"),
                    (Continuation, false, b""),
                    (Continuation, true, b"lo"),
                    (Binary, false, b"\x00\xff"),
                    (Continuation, true, b"\x01"),
                    (Text, true, b""),
                    (Binary, true, b""),
                    (Text, false, b""),
                    (Continuation, true, b""),
                ]
            ),
            Ok(vec![
                text("Hello"),
                Message::Binary(Bytes::from_static(b"\x00\xff\x01")),
                text(""),
                Message::Binary(Bytes::new()),
                text(""),
            ])
        );
    }

    #[test]
    fn opcode_order() {
        for frames in [
            &[(Continuation, true, &b"x"[..])][..],
            &[(Continuation, false, b"x")],
            &[(Text, true, b"a"), (Continuation, true, b"x")],
            &[(Text, false, b"a"), (Text, true, b"b")],
            &[(Text, false, b"a"), (Binary, true, b"b")],
            &[(Binary, false, b"a"), (Binary, false, b"b")],
            &[(Binary, false, b"a"), (Text, true, b"b")],
        ] {
            assert_eq!(
                assemble(100, frames).map_err(|reason| reason.code),
                Err(1002),
                "{frames:?}"
            );
        }
    }

    #[test]
    fn size_limit() {
        let exactly = [(Text, false, &b"12345"[..]), (Continuation, true, b"67890")];
        assert_eq!(assemble(10, &exactly), Ok(vec![text("1234567890")]));
        assert_eq!(
            assemble(10, &[(Binary, true, &[0; 10][..])]).unwrap().len(),
            1
        );
        for frames in [
            &[(Binary, true, &[0; 11][..])][..],
            &[(Text, true, b"12345678901")],
            &[(Text, false, b"12345678901")],
            &[(Binary, false, b"12345"), (Continuation, false, b"678901")],
            &[(Text, false, b"1234567890"), (Continuation, false, b"1")],
            &[
                (Text, false, b"1234567890"),
                (Continuation, true, b""),
                (Text, true, b"x"),
                (Binary, true, &[0; 11]),
            ],
        ] {
            assert_eq!(
                assemble(10, frames).map_err(|reason| reason.code),
                Err(1009),
                "{frames:?}"
            );
        }
    }

    #[test]
    fn a_refused_message_is_not_buffered() {
        let mut assembler = Assembler::new(4);
        assert_eq!(
            assembler.push(Binary, false, Bytes::from_static(b"12")),
            Ok(None)
        );
        assert_eq!(
            assembler.push(Continuation, false, Bytes::from_static(b"345")),
            Err(OVERSIZED)
        );
        assert!(matches!(assembler.partial, Partial::None));
    }

    #[test]
    fn utf8_across_fragments() {
        // "κόσμε" split at every byte boundary, and a 4-byte code point
        // (U+1F600) split in every way.
        for whole in [
            "κόσμε",
            "a\u{1F600}b",
            "\u{10FFFF}",
            "\u{FFFD}\u{7FF}\u{80}",
        ] {
            let bytes = whole.as_bytes();
            for cut in 0..=bytes.len() {
                let frames = [
                    (Text, false, &bytes[..cut]),
                    (Continuation, true, &bytes[cut..]),
                ];
                let mut assembler = Assembler::new(100);
                let mut out = None;
                for (opcode, fin, payload) in frames {
                    out = assembler
                        .push(opcode, fin, Bytes::copy_from_slice(payload))
                        .unwrap_or_else(|e| panic!("{whole:?} cut at {cut}: {e:?}"));
                }
                assert_eq!(out, Some(Message::Text(Bytes::copy_from_slice(bytes))));
            }
            // One byte per frame.
            let mut assembler = Assembler::new(100);
            assert_eq!(assembler.push(Text, false, Bytes::new()), Ok(None));
            for &byte in bytes {
                let payload = Bytes::copy_from_slice(&[byte]);
                assert_eq!(assembler.push(Continuation, false, payload), Ok(None));
            }
            assert_eq!(
                assembler.push(Continuation, true, Bytes::new()),
                Ok(Some(Message::Text(Bytes::copy_from_slice(bytes))))
            );
        }
    }

    /// The frames are refused with 1007 at the one with index `fails_at`:
    /// no earlier, no later.
    fn fails_at(frames: &[Frame], fails_at: usize) {
        let mut assembler = Assembler::new(100);
        for (i, &(opcode, fin, payload)) in frames.iter().enumerate() {
            let result = assembler.push(opcode, fin, Bytes::from_static(payload));
            if i < fails_at {
                assert!(result.is_ok(), "{frames:?}: frame {i}: {result:?}");
            } else {
                assert_eq!(result, Err(INVALID_UTF8), "{frames:?}: frame {i}");
                return;
            }
        }
        panic!("{frames:?}: not refused");
    }

    #[test]
    fn invalid_utf8_fails_fast() {
        // Autobahn 6.4.1: the second fragment has an invalid code point
        // (U+110000 as F4 90 80 80), the third never matters.
        fails_at(
            &[
                (Text, false, "κόσμε".as_bytes()),
                (Continuation, false, b"\xf4\x90\x80\x80"),
                (Continuation, true, b"edited"),
            ],
            1,
        );
        // The first byte that proves a prefix wrong ends it, whatever
        // follows: continuation byte first, bytes never valid, overlong
        // forms, surrogates, values past U+10FFFF.
        for bad in [
            &b"\x80"[..],
            b"\xbf",
            b"\xc0",
            b"\xc1",
            b"\xf5",
            b"\xff",
            b"\xe0\x80",
            b"\xe0\x9f",
            b"\xf0\x80",
            b"\xf0\x8f",
            b"\xed\xa0",
            b"\xed\xbf",
            b"\xf4\x90",
            b"\xc3\x28",
            b"\xe2\x82\x28",
            b"ok\xf0\x9f\x98\x28",
        ] {
            fails_at(&[(Text, false, bad), (Continuation, true, b"")], 0);
            fails_at(&[(Text, true, bad)], 0);
            fails_at(&[(Text, false, b"ab"), (Continuation, false, bad)], 1);
        }
        // A valid prefix split over frames fails at the frame proving it
        // wrong.
        fails_at(
            &[
                (Text, false, b"a\xf0"),
                (Continuation, false, b"\x9f"),
                (Continuation, false, b"\x98"),
                (Continuation, false, b"a"),
            ],
            3,
        );
        fails_at(
            &[(Text, false, b"\xe2"), (Continuation, false, b"\x82\x28")],
            1,
        );
    }

    #[test]
    fn incomplete_at_the_end_of_a_message() {
        for incomplete in [&b"\xc3"[..], b"\xe2\x82", b"\xf0\x9f\x98", b"a\xf4\x8f\xbf"] {
            fails_at(&[(Text, true, incomplete)], 0);
            fails_at(&[(Text, false, incomplete), (Continuation, true, b"")], 1);
            fails_at(&[(Text, false, b""), (Continuation, true, incomplete)], 1);
        }
    }

    #[test]
    fn binary_is_not_checked() {
        assert_eq!(
            assemble(
                10,
                &[(Binary, false, b"\xff"), (Continuation, true, b"\xc0")]
            ),
            Ok(vec![Message::Binary(Bytes::from_static(b"\xff\xc0"))])
        );
    }

    #[test]
    fn close_codes_an_application_may_send() {
        for code in [1000, 3000, 3999, 4000, 4999] {
            assert_eq!(check_close(code, ""), Ok(()), "{code}");
        }
        for code in [
            0,
            999,
            1001,
            1002,
            1005,
            1006,
            1011,
            1015,
            2999,
            5000,
            u16::MAX,
        ] {
            assert_eq!(check_close(code, ""), Err(CloseError::Code(code)), "{code}");
        }
        assert_eq!(check_close(1000, &"a".repeat(123)), Ok(()));
        assert_eq!(
            check_close(1000, &"a".repeat(124)),
            Err(CloseError::ReasonTooLong(124))
        );
        // 41 three-byte characters are 123 bytes; 42 are 126.
        assert_eq!(check_close(4000, &"€".repeat(41)), Ok(()));
        assert_eq!(
            check_close(4000, &"€".repeat(42)),
            Err(CloseError::ReasonTooLong(126))
        );
        assert!(CloseError::Code(1001).to_string().contains("1001"));
    }

    #[test]
    fn normal_closes() {
        for (code, normal) in [
            (1000, true),
            (1001, true),
            (1005, true),
            (1002, false),
            (1006, false),
            (1011, false),
            (3000, false),
            (4000, false),
        ] {
            assert_eq!(is_normal_close(code), normal, "{code}");
        }
    }
}
