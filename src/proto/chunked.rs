//! The chunked transfer coding of HTTP/1.1 request bodies (RFC 9112 §7.1), without I/O.
//!
//! What it does: `ChunkedDecoder::decode` takes bytes off the front of a
//! connection's read buffer and answers with body data (a slice of that
//! buffer, not a copy), "need more bytes", the end of the body (with the
//! trailer fields that may be trailers), or an error with the status to
//! answer. It never takes a byte past the body's end: what follows the last
//! chunk and the trailer section (a pipelined request) stays in the buffer.
//!
//! What it does not do: read sockets, limit the body's size (the body reader
//! counts decoded bytes against `--max-body-size`), or merge trailer fields
//! into the header section (RFC 9110 §6.5.2: WSGI shows no trailers).
//!
//! Strict where a lenient parser would disagree with another parser about
//! where the body ends (request smuggling):
//! - a chunk size is 1*HEXDIG, at most 16 digits (a `u64`); no sign, no
//!   leading whitespace;
//! - whitespace after the size only before a `;` (RFC 9112 §7.1.1: BWS
//!   precedes the `;` of a chunk extension); `5 \r\n` is refused;
//! - every line of the framing ends in CRLF: a bare LF is refused (RFC
//!   9112 §7.1 writes CRLF; §2.2 lets a recipient accept a bare LF only in
//!   the start line and field lines; hyper refuses it in chunk lines too);
//! - chunk extensions are skipped, at most `EXTENSIONS_LIMIT` bytes per body
//!   (hyper's limit), and hold no control characters but HTAB;
//! - the trailer section is at most `TrailerLimits` (as the head's limits),
//!   its lines end in CRLF, and fields that must not be trailers (framing,
//!   routing, authentication, request modifiers, content format: RFC 9110
//!   §6.5.1) are dropped.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// Bytes of chunk extensions in one body (hyper's `CHUNKED_EXTENSIONS_LIMIT`).
pub(crate) const EXTENSIONS_LIMIT: usize = 16 * 1024;

/// Hex digits in a chunk size: a `u64`'s worth.
const MAX_SIZE_DIGITS: u8 = 16;

/// How large the trailer section may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TrailerLimits {
    pub(crate) max_fields: usize,
    pub(crate) max_bytes: usize,
}

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Body bytes, taken off the buffer.
    Data(Bytes),
    /// Every byte in the buffer is used: read more, and call again.
    NeedMore,
    /// The body is over; its trailer fields that may be trailers.
    End(HeaderMap),
}

/// A body that is not valid chunked coding: answer `status` and close (the
/// end of the body, and so the start of the next request, is unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkedError {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
}

impl std::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid chunked body: {}", self.reason)
    }
}

impl std::error::Error for ChunkedError {}

const fn invalid(reason: &'static str) -> ChunkedError {
    ChunkedError {
        status: 400,
        reason,
    }
}

#[derive(Debug)]
enum State {
    /// The chunk size's digits (`digits` so far).
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size: a `;` must follow.
    SizeWhitespace {
        size: u64,
    },
    /// A chunk extension, up to the CR.
    Extension {
        size: u64,
    },
    /// The LF of the size line.
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// After the last chunk: the trailer section, read whole into `section`.
    Trailers {
        section: BytesMut,
    },
    Done,
    Failed(ChunkedError),
}

/// Decodes one chunked body.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    limits: TrailerLimits,
    extension_bytes: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new(limits: TrailerLimits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            limits,
            extension_bytes: 0,
        }
    }

    /// Take the next step's bytes off the front of `buf`. After `End`,
    /// `buf` starts with what followed the body; after an error every call
    /// repeats it.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkedError> {
        match self.step(buf) {
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
            ok => ok,
        }
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkedError> {
        let mut used = 0;
        let result = loop {
            if let State::Data { left } = &mut self.state {
                // Framing bytes consumed so far go first.
                let _ = buf.split_to(used);
                used = 0;
                if buf.is_empty() {
                    break Ok(Chunk::NeedMore);
                }
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                if *left == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Chunk::Data(buf.split_to(n).freeze()));
            }
            match &self.state {
                State::Done => break Ok(Chunk::End(HeaderMap::new())),
                State::Failed(e) => break Err(*e),
                _ => {}
            }
            let Some(&byte) = buf.get(used) else {
                break Ok(Chunk::NeedMore);
            };
            used += 1;
            if let Some(end) = self.framing_byte(byte)? {
                let _ = buf.split_to(used);
                return Ok(Chunk::End(end));
            }
        };
        let _ = buf.split_to(used);
        result
    }

    /// One byte of framing; the trailer fields when it ends the body.
    fn framing_byte(&mut self, byte: u8) -> Result<Option<HeaderMap>, ChunkedError> {
        self.state = match std::mem::replace(&mut self.state, State::Done) {
            State::Size { size, digits } => match hex_digit(byte) {
                Some(d) => {
                    if digits == MAX_SIZE_DIGITS {
                        return Err(invalid("chunk size too large"));
                    }
                    State::Size {
                        size: size << 4 | u64::from(d),
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(invalid("chunk size is not hexadecimal")),
                None => match byte {
                    b';' => State::Extension { size },
                    b' ' | b'\t' => State::SizeWhitespace { size },
                    b'\r' => State::SizeLf { size },
                    b'\n' => return Err(invalid("chunk size line ends in a bare LF")),
                    _ => return Err(invalid("chunk size is not hexadecimal")),
                },
            },
            State::SizeWhitespace { size } => match byte {
                b' ' | b'\t' => State::SizeWhitespace { size },
                b';' => State::Extension { size },
                _ => {
                    return Err(invalid(
                        "whitespace after a chunk size without an extension",
                    ))
                }
            },
            State::Extension { size } => match byte {
                b'\r' => State::SizeLf { size },
                b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                    self.extension_bytes += 1;
                    if self.extension_bytes > EXTENSIONS_LIMIT {
                        return Err(invalid("chunk extensions over the limit"));
                    }
                    State::Extension { size }
                }
                _ => return Err(invalid("control character in a chunk extension")),
            },
            State::SizeLf { size } => match byte {
                b'\n' if size == 0 => State::Trailers {
                    section: BytesMut::new(),
                },
                b'\n' => State::Data { left: size },
                _ => return Err(invalid("chunk size line not ended by CRLF")),
            },
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                _ => return Err(invalid("chunk data not followed by CRLF")),
            },
            State::DataLf => match byte {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(invalid("chunk data not followed by CRLF")),
            },
            State::Trailers { mut section } => {
                if section.len() >= self.limits.max_bytes {
                    return Err(invalid("trailer section too large"));
                }
                section.extend_from_slice(&[byte]);
                if byte != b'\n' {
                    State::Trailers { section }
                } else if section.len() < 2 || section[section.len() - 2] != b'\r' {
                    return Err(invalid("trailer line ends in a bare LF"));
                } else if section.len() == 2 || section.ends_with(b"\r\n\r\n") {
                    let trailers = trailers(&section, self.limits.max_fields)?;
                    self.state = State::Done;
                    return Ok(Some(trailers));
                } else {
                    State::Trailers { section }
                }
            }
            State::Data { .. } | State::Done | State::Failed(_) => {
                unreachable!("not a framing state")
            }
        };
        Ok(None)
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The fields of a complete trailer section (ending in an empty line), less
/// those that must not be trailers.
fn trailers(section: &[u8], max_fields: usize) -> Result<HeaderMap, ChunkedError> {
    let mut map = HeaderMap::new();
    if section == b"\r\n" {
        return Ok(map);
    }
    let mut fields = vec![httparse::EMPTY_HEADER; max_fields];
    match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((_, fields))) => {
            for field in fields.iter() {
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(field.name.as_bytes()),
                    HeaderValue::from_bytes(field.value),
                ) else {
                    return Err(invalid("malformed trailer field"));
                };
                if may_be_trailer(&name) {
                    map.append(name, value);
                }
            }
            Ok(map)
        }
        Err(httparse::Error::TooManyHeaders) => Err(invalid("too many trailer fields")),
        Ok(httparse::Status::Partial) | Err(_) => Err(invalid("malformed trailer section")),
    }
}

/// RFC 9110 §6.5.1: fields whose evaluation is needed before the content,
/// which a sender must not send as trailers: message framing, routing,
/// request modifiers (controls and conditionals), authentication, content
/// format and the trailer list itself. Such a field in a trailer section is
/// dropped rather than refused: it changes nothing where trailers are
/// never merged into the head.
pub(crate) fn may_be_trailer(name: &HeaderName) -> bool {
    use http::header::*;
    ![
        TRANSFER_ENCODING,
        CONTENT_LENGTH,
        TRAILER,
        HOST,
        CONNECTION,
        TE,
        UPGRADE,
        EXPECT,
        MAX_FORWARDS,
        RANGE,
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
        CACHE_CONTROL,
        AUTHORIZATION,
        PROXY_AUTHORIZATION,
        COOKIE,
        SET_COOKIE,
        CONTENT_ENCODING,
        CONTENT_TYPE,
        CONTENT_RANGE,
    ]
    .contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TrailerLimits = TrailerLimits {
        max_fields: 4,
        max_bytes: 128,
    };

    /// The body and its trailers (`name: value` lines), or the error.
    type Outcome = Result<(Vec<u8>, Vec<String>), &'static str>;

    /// What a decoder made of `input` fed in pieces of `piece` bytes, and
    /// what stayed in the buffer after the end.
    fn run(input: &[u8], piece: usize) -> (Outcome, Vec<u8>) {
        let mut decoder = ChunkedDecoder::new(LIMITS);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Chunk::Data(data)) => {
                    assert!(!data.is_empty(), "empty data");
                    body.extend_from_slice(&data);
                }
                Ok(Chunk::NeedMore) => {
                    assert!(buf.is_empty(), "NeedMore with bytes left");
                    if fed == input.len() {
                        return (Err("incomplete"), buf.to_vec());
                    }
                    let end = (fed + piece).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                Ok(Chunk::End(trailers)) => {
                    assert!(matches!(decoder.state, State::Done));
                    let trailers = trailers
                        .iter()
                        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                        .collect();
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&input[fed..]);
                    return (Ok((body, trailers)), rest);
                }
                Err(e) => {
                    assert_eq!(e.status, 400);
                    assert_eq!(decoder.decode(&mut buf), Err(e), "errors repeat");
                    return (Err(e.reason), Vec::new());
                }
            }
        }
    }

    /// Each case whole, byte by byte, in 3-byte pieces, and with a next
    /// request behind it (which must stay unconsumed).
    fn check(input: &[u8], expected: Result<(&[u8], &[&str]), ()>) {
        let next = b"GET / HTTP/1.1\r\n\r\n";
        let mut followed = input.to_vec();
        followed.extend_from_slice(next);
        let show = String::from_utf8_lossy(input);
        for piece in [input.len().max(1), 1, 3] {
            for (bytes, rest) in [(input, &b""[..]), (&followed[..], &next[..])] {
                let (got, left) = run(bytes, piece);
                match (&got, expected) {
                    (Ok((body, trailers)), Ok((want_body, want_trailers))) => {
                        assert_eq!(&body[..], want_body, "{show:?}");
                        assert_eq!(trailers, want_trailers, "{show:?}");
                        assert_eq!(&left[..], rest, "{show:?}: the bytes after the body");
                    }
                    (Err(_), Err(())) => {}
                    _ => panic!("{show:?} in pieces of {piece}: {got:?}"),
                }
            }
        }
    }

    #[test]
    fn valid_bodies() {
        let cases: &[(&[u8], &[u8], &[&str])] = &[
            (b"0\r\n\r\n", b"", &[]),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello", &[]),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world", &[]),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", &[]),
            (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789", &[]),
            (b"0005\r\nhello\r\n000\r\n\r\n", b"hello", &[]),
            // Extensions, with BWS before the `;` only.
            (b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello", &[]),
            (b"5 ;a\r\nhello\r\n0;b=\"q\\\"x\"\r\n\r\n", b"hello", &[]),
            (b"5\t; a = 1 ; b\r\nhello\r\n0\r\n\r\n", b"hello", &[]),
            // CR and LF inside data are data.
            (b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n", &[]),
            // Trailers, less those that must not be trailers.
            (b"1\r\nx\r\n0\r\nchecksum: abc\r\n\r\n", b"x", &["checksum: abc"]),
            (
                b"1\r\nx\r\n0\r\nContent-Length: 5\r\nX-A: 1\r\nHost: evil\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"x",
                &["x-a: 1"],
            ),
        ];
        for &(input, body, trailers) in cases {
            check(input, Ok((body, trailers)));
        }
    }

    #[test]
    fn invalid_bodies_are_400() {
        let too_many_fields = b"0\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n";
        let too_long = &[&b"0\r\nx: "[..], &[b'v'; 128], b"\r\n\r\n"].concat();
        let cases: &[&[u8]] = &[
            b"\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"g\r\n",
            // Whitespace after the size with no extension (RFC 9112 §7.1.1).
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"0 \r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            // Overflow: more than 16 digits, even with the value in range.
            b"10000000000000000\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            // Bare LF wherever the framing needs CRLF.
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5;a\nhello\r\n0\r\n\r\n",
            b"0\r\nx: 1\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\rX0\r\n\r\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"5\r\rhello\r\n0\r\n\r\n",
            // Trailer sections: malformed, too many fields, too long.
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty\r\n\r\n",
            too_many_fields,
            too_long,
        ];
        for &input in cases {
            check(input, Err(()));
        }
    }

    #[test]
    fn extensions_are_limited_per_body() {
        let mut input = Vec::new();
        for _ in 0..(EXTENSIONS_LIMIT / 1000 + 1) {
            input.extend_from_slice(b"1;");
            input.extend_from_slice(&[b'e'; 1000]);
            input.extend_from_slice(b"\r\nx\r\n");
        }
        input.extend_from_slice(b"0\r\n\r\n");
        check(&input, Err(()));
    }

    #[test]
    fn an_incomplete_body_needs_more() {
        for input in [
            &b"5\r\nhel"[..],
            b"5\r\nhello\r\n",
            b"0\r\n",
            b"0\r\nx: 1\r\n",
        ] {
            assert_eq!(run(input, 1).0, Err("incomplete"));
        }
    }

    #[test]
    fn large_chunks_come_as_the_buffer_has_them() {
        let mut decoder = ChunkedDecoder::new(LIMITS);
        let mut buf = BytesMut::from(&b"FFFFFFFFFFFFFFFF\r\nabc"[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Chunk::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(decoder.decode(&mut buf), Ok(Chunk::NeedMore));
        assert!(matches!(decoder.state, State::Data { .. }));
    }
}
