//! Response Content-Length enforcement.
//!
//! What it does: counts the response body bytes an application produces
//! against the Content-Length it declared, and says for each chunk how much of
//! it may be sent. PEP 3333 §"Handling the Content-Length Header" says a
//! server must not send more bytes than declared; WSGI 1.1 (DESIGN §1) adds
//! that fewer is an error: the client would wait for the missing bytes, so the
//! runtime closes the connection (HTTP/1.1) or resets the stream (HTTP/2).
//!
//! What it does not do: send, log, close or reset anything, or decide the
//! declared length (the application's header, checked by
//! `response::parse_content_length`, or the runtime's for a file). HEAD
//! responses have no body and are not counted. This is "bring your own I/O":
//! feed it chunk lengths, get back what to send.

use std::fmt;

/// How much of one chunk may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send the whole chunk.
    All,
    /// Send only the first n bytes, then the response is complete (the
    /// application produced more than it declared; the rest is dropped).
    Truncate(usize),
    /// Already complete: drop the chunk.
    Complete,
}

/// The body ended before the declared length was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShortBody {
    pub(crate) declared: u64,
    pub(crate) sent: u64,
}

impl fmt::Display for ShortBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "response body ended after {} of {} declared bytes (Content-Length)",
            self.sent, self.declared
        )
    }
}

impl std::error::Error for ShortBody {}

// ---------------------------------------------------------------------------
// RULES: everything that decides how much of a response body is sent lives
// here.
//
// Theory of operation: a counter with an optional ceiling.
//   no declared length   every chunk is admitted; the body ends when the
//                        application stops (chunked / END_STREAM framing)
//   declared n           chunks are admitted until n bytes are sent; the
//                        chunk that crosses n is cut (`Truncate`), later ones
//                        are dropped (`Complete`); ending with fewer than n
//                        is a `ShortBody`
// An empty chunk is always `All`: it sends nothing and exceeds nothing, so
// a trailing b"" from an application is not reported as extra data. After
// each chunk the caller asks `is_complete()` to stop iterating early.
// ---------------------------------------------------------------------------

/// Counts response body bytes against the declared Content-Length.
#[derive(Debug, Clone)]
pub(crate) struct ResponseLength {
    declared: Option<u64>,
    sent: u64,
}

impl ResponseLength {
    pub(crate) fn new(declared: Option<u64>) -> Self {
        ResponseLength { declared, sent: 0 }
    }

    pub(crate) fn declared(&self) -> Option<u64> {
        self.declared
    }

    #[cfg(test)]
    /// Bytes admitted so far.
    #[cfg(test)]
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Decides how much of a chunk of `len` bytes may be sent, and records it
    /// as sent.
    pub(crate) fn admit(&mut self, len: usize) -> Admit {
        let len_u64 = len as u64;
        let Some(declared) = self.declared else {
            self.sent = self.sent.saturating_add(len_u64);
            return Admit::All;
        };
        let remaining = declared - self.sent;
        if len_u64 <= remaining {
            self.sent += len_u64;
            Admit::All
        } else if remaining == 0 {
            Admit::Complete
        } else {
            self.sent = declared;
            // remaining < len, so it fits in a usize.
            Admit::Truncate(remaining as usize)
        }
    }

    /// A length was declared and all of it has been sent.
    pub(crate) fn is_complete(&self) -> bool {
        self.declared == Some(self.sent)
    }

    /// Called when the application's body has ended: `Err` when a length was
    /// declared and fewer bytes were sent.
    pub(crate) fn finish(&self) -> Result<(), ShortBody> {
        match self.declared {
            Some(declared) if self.sent < declared => Err(ShortBody {
                declared,
                sent: self.sent,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a body is cut into chunks before it is fed.
    #[derive(Debug, Clone, Copy)]
    enum Feed {
        Whole,
        ByteByByte,
        /// Chunk sizes taken in turn from the slice, 0 meaning an empty chunk.
        Splits(&'static [usize]),
        /// The whole body, then "TRAILING" as a second chunk.
        WithTrailingData,
    }

    const FEEDS: &[Feed] = &[
        Feed::Whole,
        Feed::ByteByByte,
        Feed::Splits(&[2, 3]),
        Feed::Splits(&[0, 1, 0, 4]),
        Feed::Splits(&[7]),
        Feed::WithTrailingData,
    ];

    fn chunks(body: &[u8], feed: Feed) -> Vec<Vec<u8>> {
        match feed {
            Feed::Whole => vec![body.to_vec()],
            Feed::ByteByByte => body.iter().map(|&b| vec![b]).collect(),
            Feed::Splits(sizes) => {
                let mut out = Vec::new();
                let mut rest = body;
                for &size in sizes.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (chunk, tail) = rest.split_at(size.min(rest.len()));
                    out.push(chunk.to_vec());
                    rest = tail;
                }
                out
            }
            Feed::WithTrailingData => vec![body.to_vec(), b"TRAILING".to_vec()],
        }
    }

    /// Feeds chunks like the runtime would; returns the bytes sent.
    fn run(length: &mut ResponseLength, chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut truncated = false;
        for chunk in chunks {
            let was_complete = length.is_complete();
            match length.admit(chunk.len()) {
                Admit::All => {
                    assert!(!was_complete || chunk.is_empty(), "All after complete");
                    wire.extend_from_slice(chunk);
                }
                Admit::Truncate(n) => {
                    assert!(!truncated, "Truncate twice");
                    assert!(0 < n && n < chunk.len(), "Truncate({n}) of {}", chunk.len());
                    truncated = true;
                    wire.extend_from_slice(&chunk[..n]);
                    assert!(length.is_complete());
                }
                Admit::Complete => {
                    assert!(was_complete && !chunk.is_empty(), "Complete too early");
                }
            }
            assert_eq!(length.sent(), wire.len() as u64);
        }
        wire
    }

    /// (declared, body, bytes sent, complete, finish)
    type Case = (
        Option<u64>,
        &'static [u8],
        usize,
        bool,
        Result<(), ShortBody>,
    );
    const CASES: &[Case] = &[
        // No declared length: everything goes, nothing is short.
        (None, b"", 0, false, Ok(())),
        (None, b"hello world", 11, false, Ok(())),
        // Exactly as declared.
        (Some(0), b"", 0, true, Ok(())),
        (Some(1), b"x", 1, true, Ok(())),
        (Some(11), b"hello world", 11, true, Ok(())),
        // More than declared: cut at the declared length.
        (Some(0), b"abc", 0, true, Ok(())),
        (Some(1), b"xy", 1, true, Ok(())),
        (Some(5), b"hello world", 5, true, Ok(())),
        // Fewer than declared: an error when the body ends.
        (
            Some(1),
            b"",
            0,
            false,
            Err(ShortBody {
                declared: 1,
                sent: 0,
            }),
        ),
        (
            Some(20),
            b"hello world",
            11,
            false,
            Err(ShortBody {
                declared: 20,
                sent: 11,
            }),
        ),
        (
            Some(u64::MAX),
            b"abc",
            3,
            false,
            Err(ShortBody {
                declared: u64::MAX,
                sent: 3,
            }),
        ),
    ];

    #[test]
    fn response_length_table_in_every_feed() {
        for &(declared, body, sent, complete, finish) in CASES {
            for &feed in FEEDS {
                // Trailing data only means something once the declared
                // length is reached: it must then be dropped, changing nothing.
                if matches!(feed, Feed::WithTrailingData) && !complete {
                    continue;
                }
                let mut length = ResponseLength::new(declared);
                let wire = run(&mut length, &chunks(body, feed));
                let what = format!("declared {declared:?} body {body:?} {feed:?}");
                assert_eq!(wire, &body[..sent], "{what}");
                assert_eq!(length.declared(), declared, "{what}");
                assert_eq!(length.is_complete(), complete, "{what}");
                assert_eq!(length.finish(), finish, "{what}");
            }
        }
    }

    #[test]
    fn empty_chunks_are_always_admitted() {
        let mut length = ResponseLength::new(Some(0));
        assert_eq!(length.admit(0), Admit::All);
        assert_eq!(length.admit(1), Admit::Complete);
        assert_eq!(length.admit(0), Admit::All);
        assert!(length.is_complete());
    }

    #[test]
    fn undeclared_count_saturates() {
        let mut length = ResponseLength::new(None);
        assert_eq!(length.admit(usize::MAX), Admit::All);
        assert_eq!(length.admit(usize::MAX), Admit::All);
        assert_eq!(length.sent(), (usize::MAX as u64).saturating_mul(2));
        assert_eq!(length.finish(), Ok(()));
    }

    #[test]
    fn short_body_display() {
        let short = ShortBody {
            declared: 10,
            sent: 3,
        };
        assert_eq!(
            short.to_string(),
            "response body ended after 3 of 10 declared bytes (Content-Length)"
        );
    }
}
