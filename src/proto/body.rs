//! What the request body looks like to the application.
//!
//! What it does: from the request's header fields, the framing the runtime
//! found, and the server options, decides up front (a `BodyPlan`): whether the
//! declared size is already too large (413), whether the server decodes a
//! `Content-Encoding` for the application, and what `CONTENT_LENGTH` and
//! `HTTP_CONTENT_ENCODING` show (WSGI 1.1, DESIGN §1: "CONTENT_LENGTH is
//! advisory").
//!
//! What it does not do: read, count or decompress bytes. A streamed or decoded
//! body can still cross `max_body_size` while it is read; the runtime's body
//! reader enforces that (and the decoded size, against zip bombs). In buffer
//! mode the runtime sets the exact `CONTENT_LENGTH` after buffering.

use http::header::CONTENT_ENCODING;
use http::HeaderMap;

use crate::proto::request::RequestError;
use crate::proto::syntax::trim_ows;

/// A content coding the server can decode (RFC 9110 §8.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    /// RFC 1952 (also spelled "x-gzip", RFC 9110 §8.4.1.3).
    Gzip,
    /// The zlib format, RFC 1950 (RFC 9110 §8.4.1.2).
    Deflate,
    /// RFC 7932.
    Brotli,
    /// RFC 8878.
    Zstd,
}

impl Coding {
    /// The registered content-coding name.
    #[cfg(test)]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// The server options that shape the request body (`Config.decompress`,
/// `Config.max_body_size`, `Config.buffer_body`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyOptions {
    pub(crate) decompress: bool,
    pub(crate) max_body_size: u64,
    pub(crate) buffer: bool,
}

/// How the body is delimited on the wire, as the runtime found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all.
    Empty,
    /// Content-Length: n.
    Length(u64),
    /// Chunked HTTP/1.1, or HTTP/2 DATA frames without content-length.
    Streamed,
}

/// What the application will see of the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyPlan {
    pub(crate) framing: Framing,
    /// The coding the server removes before `wsgi.input`, if any.
    pub(crate) decode: Option<Coding>,
    /// CONTENT_LENGTH the app sees before buffering (buffer mode: `None`, the
    /// runtime sets the exact length after buffering).
    pub(crate) content_length: Option<u64>,
    /// Remove HTTP_CONTENT_ENCODING (the body the app reads is decoded).
    pub(crate) strip_content_encoding: bool,
}

// ---------------------------------------------------------------------------
// RULES: everything that decides the shape of a request body before it is
// read lives below.
//
//   Length(n), n > max_body_size  -> 413 before the app is called
//   decode                        -> --decompress, exactly one supported
//                                    coding, and a body that can hold bytes
//   CONTENT_LENGTH                -> the declared n only when the app reads
//                                    exactly those n bytes: not decoded, not
//                                    buffered (then the runtime sets it),
//                                    not streamed
//   HTTP_CONTENT_ENCODING         -> removed exactly when decoded
// ---------------------------------------------------------------------------

/// Plans the request body.
pub(crate) fn plan(
    headers: &HeaderMap,
    framing: Framing,
    opts: &BodyOptions,
) -> Result<BodyPlan, RequestError> {
    if let Framing::Length(n) = framing {
        if n > opts.max_body_size {
            return Err(RequestError {
                status: 413,
                reason: "request body too large",
            });
        }
    }
    // A body that cannot hold a byte has nothing to decode: "Content-Length: 0"
    // with "Content-Encoding: gzip" is passed through like an empty body,
    // rather than failing as a truncated gzip stream.
    let may_hold_bytes = !matches!(framing, Framing::Empty | Framing::Length(0));
    let decode = if opts.decompress && may_hold_bytes {
        single_supported_coding(headers)
    } else {
        None
    };
    let content_length = match framing {
        Framing::Length(n) if decode.is_none() && !opts.buffer => Some(n),
        _ => None,
    };
    Ok(BodyPlan {
        framing,
        decode,
        content_length,
        strip_content_encoding: decode.is_some(),
    })
}

/// The coding to decode, when Content-Encoding names exactly one supported
/// coding. "identity" means no coding (RFC 9110 §8.4.1). Several codings
/// (several field lines or a list) or an unknown one are passed through
/// untouched: the application sees HTTP_CONTENT_ENCODING and the raw bytes,
/// exactly as without --decompress.
fn single_supported_coding(headers: &HeaderMap) -> Option<Coding> {
    let mut values = headers.get_all(CONTENT_ENCODING).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let name = trim_ows(value.as_bytes());
    [
        ("gzip", Coding::Gzip),
        ("x-gzip", Coding::Gzip),
        ("deflate", Coding::Deflate),
        ("br", Coding::Brotli),
        ("zstd", Coding::Zstd),
    ]
    .into_iter()
    .find(|(known, _)| name.eq_ignore_ascii_case(known.as_bytes()))
    .map(|(_, coding)| coding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::syntax::header_map as headers;
    use Framing::{Empty, Length, Streamed};

    const LIMIT: u64 = 1000;
    #[rustfmt::skip]
    const PLAIN: BodyOptions = BodyOptions { decompress: false, max_body_size: LIMIT, buffer: false };
    #[rustfmt::skip]
    const DECOMPRESS: BodyOptions = BodyOptions { decompress: true, max_body_size: LIMIT, buffer: false };
    #[rustfmt::skip]
    const BUFFER: BodyOptions = BodyOptions { decompress: false, max_body_size: LIMIT, buffer: true };
    #[rustfmt::skip]
    const BOTH: BodyOptions = BodyOptions { decompress: true, max_body_size: LIMIT, buffer: true };

    const GZIP: &[(&str, &str)] = &[("content-encoding", "gzip")];

    /// (Content-Encoding fields, framing, options,
    ///  expected: Err(status) | Ok((decode, content_length)))
    #[rustfmt::skip]
    type Case = (&'static [(&'static str, &'static str)], Framing, BodyOptions, Result<(Option<Coding>, Option<u64>), u16>);
    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // No coding: CONTENT_LENGTH is the declared length, else absent.
        (&[], Empty, PLAIN, Ok((None, None))),
        (&[], Length(0), PLAIN, Ok((None, Some(0)))),
        (&[], Length(10), PLAIN, Ok((None, Some(10)))),
        (&[], Streamed, PLAIN, Ok((None, None))),
        // Declared size over the limit: 413, whatever the options.
        (&[], Length(LIMIT), PLAIN, Ok((None, Some(LIMIT)))),
        (&[], Length(LIMIT + 1), PLAIN, Err(413)),
        (&[], Length(u64::MAX), BOTH, Err(413)),
        (GZIP, Length(LIMIT + 1), DECOMPRESS, Err(413)),
        // Streamed bodies are checked while read, not here.
        (&[], Streamed, BOTH, Ok((None, None))),
        // Without --decompress, codings pass through.
        (GZIP, Length(10), PLAIN, Ok((None, Some(10)))),
        (GZIP, Streamed, PLAIN, Ok((None, None))),
        // With --decompress: each supported coding, case-insensitive, trimmed.
        (GZIP, Length(10), DECOMPRESS, Ok((Some(Coding::Gzip), None))),
        (GZIP, Streamed, DECOMPRESS, Ok((Some(Coding::Gzip), None))),
        (&[("content-encoding", "x-gzip")], Length(10), DECOMPRESS, Ok((Some(Coding::Gzip), None))),
        (&[("content-encoding", "GZip")], Length(10), DECOMPRESS, Ok((Some(Coding::Gzip), None))),
        (&[("content-encoding", " deflate\t")], Length(10), DECOMPRESS, Ok((Some(Coding::Deflate), None))),
        (&[("content-encoding", "br")], Streamed, DECOMPRESS, Ok((Some(Coding::Brotli), None))),
        (&[("content-encoding", "zstd")], Streamed, DECOMPRESS, Ok((Some(Coding::Zstd), None))),
        // Nothing to decode in an empty body.
        (GZIP, Empty, DECOMPRESS, Ok((None, None))),
        (GZIP, Length(0), DECOMPRESS, Ok((None, Some(0)))),
        // identity, unknown, several codings: pass through.
        (&[("content-encoding", "identity")], Length(10), DECOMPRESS, Ok((None, Some(10)))),
        (&[("content-encoding", "compress")], Length(10), DECOMPRESS, Ok((None, Some(10)))),
        (&[("content-encoding", "")], Length(10), DECOMPRESS, Ok((None, Some(10)))),
        (&[("content-encoding", "gzip, br")], Length(10), DECOMPRESS, Ok((None, Some(10)))),
        (&[("content-encoding", "gzip,")], Length(10), DECOMPRESS, Ok((None, Some(10)))),
        (&[("content-encoding", "gzip"), ("content-encoding", "gzip")], Streamed, DECOMPRESS, Ok((None, None))),
        (&[("content-encoding", "gzip;q=1")], Length(10), DECOMPRESS, Ok((None, Some(10)))),
        // Buffer mode: the runtime sets CONTENT_LENGTH after buffering.
        (&[], Length(10), BUFFER, Ok((None, None))),
        (&[], Streamed, BUFFER, Ok((None, None))),
        (&[], Empty, BUFFER, Ok((None, None))),
        (GZIP, Length(10), BOTH, Ok((Some(Coding::Gzip), None))),
    ];

    #[test]
    fn plan_table() {
        for (i, (fields, framing, opts, expected)) in CASES.iter().enumerate() {
            let got = plan(&headers(fields), *framing, opts);
            match (got, expected) {
                (Err(err), Err(status)) => assert_eq!(err.status, *status, "case {i}"),
                (Ok(plan), Ok((decode, content_length))) => {
                    assert_eq!(plan.framing, *framing, "case {i}");
                    assert_eq!(plan.decode, *decode, "case {i}");
                    assert_eq!(plan.content_length, *content_length, "case {i}");
                    assert_eq!(plan.strip_content_encoding, decode.is_some(), "case {i}");
                }
                (got, _) => {
                    panic!("case {i} {fields:?} {framing:?}: got {got:?}, expected {expected:?}")
                }
            }
        }
    }

    #[test]
    fn coding_names() {
        for (coding, name) in [
            (Coding::Gzip, "gzip"),
            (Coding::Deflate, "deflate"),
            (Coding::Brotli, "br"),
            (Coding::Zstd, "zstd"),
        ] {
            assert_eq!(coding.name(), name);
        }
    }
}
