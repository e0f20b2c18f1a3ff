//! Validating what a WSGI application passes to `start_response`.
//!
//! What it does: checks the status line and each response header an
//! application gives (PEP 3333 §"The start_response() Callable", RFC 9110 §5,
//! RFC 9112 §4) before anything reaches the wire, so a bad value becomes a 500
//! and a log line naming the mistake, never a malformed response or a header
//! injection.
//!
//! What it does not do: convert Python objects (the bridge hands over `&str`;
//! a non-`str` is its error), decide whether `start_response` may be called
//! again (`exc_info` rules live with the bridge), or count body bytes
//! (`length`). Errors here are the application's fault, never the client's.

use std::fmt;

use crate::proto::syntax::{parse_decimal, trim_ows};

/// Something an application passed to `start_response` that cannot be sent.
/// Each variant carries the offending text: the status, the header name, or
/// the Content-Length value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The status string.
    BadStatus(String),
    /// The header name.
    BadHeaderName(String),
    /// The name of the header whose value is invalid (the value itself may
    /// be long or hold control characters; it is not repeated in logs).
    BadHeaderValue(String),
    /// The header name.
    HopByHop(String),
    /// The Content-Length value.
    ContentLength(String),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:?}` quotes and escapes, so a log line stays one line whatever
        // the application passed.
        match self {
            ResponseError::BadStatus(status) => write!(
                f,
                "malformed status {status:?}: expected three digits and a reason, like \"200 OK\" (PEP 3333)"
            ),
            ResponseError::BadHeaderName(name) => write!(
                f,
                "malformed header name {name:?}: a header name is a token of letters, digits and !#$%&'*+-.^_`|~ (RFC 9110 §5.1)"
            ),
            ResponseError::BadHeaderValue(name) => write!(
                f,
                "header {name:?} has an invalid value: only latin-1 characters, and no control characters except tab (PEP 3333, RFC 9110 §5.5)"
            ),
            ResponseError::HopByHop(name) => write!(
                f,
                "hop-by-hop header {name:?} is not allowed from a WSGI application (PEP 3333)"
            ),
            ResponseError::ContentLength(value) => write!(
                f,
                "malformed Content-Length {value:?}: expected a number of bytes (RFC 9110 §8.6)"
            ),
        }
    }
}

impl std::error::Error for ResponseError {}

// ---------------------------------------------------------------------------
// RULES: everything an application's status and headers must satisfy lives
// below.
//
//   status         3 digits, 100..=999, then nothing or SP reason-phrase
//                  (RFC 9112 §4: reason-phrase = *( HTAB / SP / VCHAR /
//                  obs-text ))
//   header name    token (RFC 9110 §5.1, §5.6.2), not hop-by-hop (PEP 3333
//                  §"Other HTTP Features")
//   header value   latin-1 only (PEP 3333 §"Unicode Issues"), no CTL but HTAB
//                  (RFC 9110 §5.5; CTL = %x00-1F / %x7F, RFC 5234 B.1)
//   Content-Length 1*DIGIT (RFC 9110 §8.6)
// ---------------------------------------------------------------------------

/// Hop-by-hop header fields a WSGI application must not set (PEP 3333
/// §"Other HTTP Features", the list of RFC 2616 §13.5.1; these belong to the
/// server's connection, not to the application's response).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Parses a WSGI status string such as "200 OK" into its code. PEP 3333: "a
/// status code and a reason phrase, in that order and separated by a single
/// space" -- so "200" alone is refused (as `wsgiref.validate` does); an empty
/// reason after the space ("200 ") is accepted, as RFC 9112 §4 allows.
pub fn parse_status(status: &str) -> Result<u16, ResponseError> {
    let bad = || ResponseError::BadStatus(status.to_owned());
    let code = status
        .get(..3)
        .and_then(|digits| parse_decimal(digits.as_bytes()))
        .filter(|code| (100..=999).contains(code))
        .and_then(|code| u16::try_from(code).ok())
        .ok_or_else(bad)?;
    match status[3..].strip_prefix(' ') {
        Some(reason) if reason.chars().all(is_field_char) => Ok(code),
        _ => Err(bad()),
    }
}

#[cfg(test)]
/// Checks one response header from an application. A `Content-Length` value
/// is also checked with [`parse_content_length`].
pub fn check_header(name: &str, value: &str) -> Result<(), ResponseError> {
    check_header_name(name)?;
    check_header_value(name, value)
}

/// The name half of [`check_header`]: a token (RFC 9110 §5.1), not hop-by-hop.
pub fn check_header_name(name: &str) -> Result<(), ResponseError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(ResponseError::BadHeaderName(name.to_owned()));
    }
    if is_hop_by_hop(name) {
        return Err(ResponseError::HopByHop(name.to_owned()));
    }
    Ok(())
}

/// The value half of [`check_header`] (`name` is for the message, and says
/// whether the value is a Content-Length).
pub fn check_header_value(name: &str, value: &str) -> Result<(), ResponseError> {
    if !value.chars().all(is_field_char) {
        return Err(ResponseError::BadHeaderValue(name.to_owned()));
    }
    if name.eq_ignore_ascii_case("content-length") {
        parse_content_length(value)?;
    }
    Ok(())
}

/// Parses a Content-Length value: 1*DIGIT after trimming OWS (SP / HTAB,
/// RFC 9110 §5.6.3). A value too large for a u64 is refused too.
pub fn parse_content_length(value: &str) -> Result<u64, ResponseError> {
    parse_decimal(trim_ows(value.as_bytes()))
        .ok_or_else(|| ResponseError::ContentLength(value.to_owned()))
}

/// Whether a header name is hop-by-hop (case-insensitive).
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A char allowed in a field value or reason phrase: HTAB, SP, VCHAR or
/// obs-text, i.e. latin-1 without CTL (RFC 9110 §5.5, RFC 9112 §4).
fn is_field_char(c: char) -> bool {
    c == '\t' || (' '..='\u{ff}').contains(&c) && c != '\u{7f}'
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (status, expected code: None = BadStatus)
    const STATUSES: &[(&str, Option<u16>)] = &[
        ("200 OK", Some(200)),
        ("404 Not Found", Some(404)),
        ("100 Continue", Some(100)),
        ("999 Whatever", Some(999)),
        ("200", None),
        ("200 ", Some(200)),
        ("200 OK\tfine", Some(200)),
        ("200 Ol\u{e9}", Some(200)),
        ("200 \u{80}\u{ff}", Some(200)),
        ("204 No  Content ", Some(204)),
        ("", None),
        ("20", None),
        ("099 Low", None),
        ("000", None),
        ("2000 OK", None),
        ("200OK", None),
        (" 200 OK", None),
        ("20x OK", None),
        ("+20 OK", None),
        ("200\tOK", None),
        ("200 OK\r\n", None),
        ("200 OK\n", None),
        ("200 OK\r", None),
        ("200 O\u{0}K", None),
        ("200 O\u{7f}K", None),
        ("200 OK\u{100}", None),
        ("200 \u{2603}", None),
        ("\u{663}\u{660}\u{660} OK", None),
    ];

    #[test]
    fn parse_status_table() {
        for (status, expected) in STATUSES {
            let got = parse_status(status);
            match expected {
                Some(code) => assert_eq!(got, Ok(*code), "{status:?}"),
                None => assert_eq!(
                    got,
                    Err(ResponseError::BadStatus(status.to_string())),
                    "{status:?}"
                ),
            }
        }
    }

    /// (name, value, expected)
    #[allow(clippy::type_complexity)]
    const HEADERS: &[(&str, &str, Result<(), fn(String) -> ResponseError>)] = &[
        ("Content-Type", "text/plain; charset=utf-8", Ok(())),
        ("X-Custom_Name", "v", Ok(())),
        ("x-!#$%&'*+-.^_`|~09az", "", Ok(())),
        ("X-Tab", "a\tb", Ok(())),
        ("X-Latin", "caf\u{e9} \u{80}\u{ff}", Ok(())),
        ("X-Spaces", " padded ", Ok(())),
        ("Set-Cookie", "a=1; Path=/; HttpOnly", Ok(())),
        // Names: RFC 9110 tokens only.
        ("", "v", Err(ResponseError::BadHeaderName)),
        ("X Space", "v", Err(ResponseError::BadHeaderName)),
        ("X-Colon:", "v", Err(ResponseError::BadHeaderName)),
        ("X-\u{e9}", "v", Err(ResponseError::BadHeaderName)),
        ("X-Nl\n", "v", Err(ResponseError::BadHeaderName)),
        ("(x)", "v", Err(ResponseError::BadHeaderName)),
        ("X-Quote\"", "v", Err(ResponseError::BadHeaderName)),
        // Values: latin-1, no CR/LF/NUL/other CTL (header injection).
        (
            "X-A",
            "a\r\nSet-Cookie: x=1",
            Err(ResponseError::BadHeaderValue),
        ),
        ("X-A", "a\nb", Err(ResponseError::BadHeaderValue)),
        ("X-A", "a\rb", Err(ResponseError::BadHeaderValue)),
        ("X-A", "a\u{0}b", Err(ResponseError::BadHeaderValue)),
        ("X-A", "a\u{1b}b", Err(ResponseError::BadHeaderValue)),
        ("X-A", "a\u{7f}", Err(ResponseError::BadHeaderValue)),
        ("X-A", "\u{100}", Err(ResponseError::BadHeaderValue)),
        ("X-A", "snow \u{2603}", Err(ResponseError::BadHeaderValue)),
        // Hop-by-hop names, any case (PEP 3333).
        ("Connection", "close", Err(ResponseError::HopByHop)),
        ("keep-alive", "timeout=5", Err(ResponseError::HopByHop)),
        ("Proxy-Authenticate", "Basic", Err(ResponseError::HopByHop)),
        ("PROXY-AUTHORIZATION", "x", Err(ResponseError::HopByHop)),
        ("TE", "trailers", Err(ResponseError::HopByHop)),
        ("Trailer", "X-A", Err(ResponseError::HopByHop)),
        ("Transfer-Encoding", "chunked", Err(ResponseError::HopByHop)),
        ("Upgrade", "websocket", Err(ResponseError::HopByHop)),
        // Content-Length values are checked as numbers.
        ("Content-Length", "13", Ok(())),
        ("content-length", " 0 ", Ok(())),
        ("Content-Length", "abc", Err(ResponseError::ContentLength)),
        ("Content-Length", "-1", Err(ResponseError::ContentLength)),
        ("Content-Length", "", Err(ResponseError::ContentLength)),
    ];

    #[test]
    fn check_header_table() {
        for (name, value, expected) in HEADERS {
            let got = check_header(name, value);
            let expected = match expected {
                Ok(()) => Ok(()),
                Err(variant) => Err(variant(match variant(String::new()) {
                    ResponseError::ContentLength(_) => value.to_string(),
                    _ => name.to_string(),
                })),
            };
            assert_eq!(got, expected, "{name:?}: {value:?}");
        }
    }

    /// (value, expected)
    const CONTENT_LENGTHS: &[(&str, Option<u64>)] = &[
        ("0", Some(0)),
        ("13", Some(13)),
        ("007", Some(7)),
        (" 42\t", Some(42)),
        ("18446744073709551615", Some(u64::MAX)),
        ("18446744073709551616", None),
        ("", None),
        ("  ", None),
        ("-1", None),
        ("+1", None),
        ("1 2", None),
        ("1,1", None),
        ("0x10", None),
        ("1.5", None),
        ("\u{663}", None),
        ("1\n", None),
    ];

    #[test]
    fn parse_content_length_table() {
        for (value, expected) in CONTENT_LENGTHS {
            let got = parse_content_length(value);
            match expected {
                Some(n) => assert_eq!(got, Ok(*n), "{value:?}"),
                None => assert_eq!(
                    got,
                    Err(ResponseError::ContentLength(value.to_string())),
                    "{value:?}"
                ),
            }
        }
    }

    #[test]
    fn hop_by_hop_names() {
        for name in [
            "connection",
            "Keep-Alive",
            "TE",
            "trailer",
            "Transfer-Encoding",
            "UPGRADE",
        ] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in [
            "Trailers",
            "Content-Length",
            "Proxy",
            "X-Connection",
            "Set-Cookie",
            "",
        ] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }

    #[test]
    fn display_is_one_clear_line() {
        assert_eq!(
            ResponseError::HopByHop("Connection".into()).to_string(),
            "hop-by-hop header \"Connection\" is not allowed from a WSGI application (PEP 3333)"
        );
        let injected = ResponseError::BadStatus("200 OK\r\nX: y".into()).to_string();
        assert!(
            !injected.contains('\n') && !injected.contains('\r'),
            "{injected}"
        );
    }
}
