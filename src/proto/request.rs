//! Request framing rules, for every protocol version.
//!
//! What it does: looks at a parsed request head (version and header fields)
//! and decides whether its message framing is trustworthy, and whether its
//! target has a form its method allows (`check_target`). A request that
//! could be read two ways by two HTTP implementations (request smuggling) is
//! refused with the status to answer with, before any application code runs.
//!
//! What it does not do: parse anything (`proto::h1` parses HTTP/1.x heads and
//! applies these rules to them; h2 parses HTTP/2's), read the body, decide how
//! the body is decoded (`body::plan`), or limit the head's size (`proto::h1`:
//! 414, 431). It never closes a connection
//! itself: an `Err` means "answer with `status`, then close" for HTTP/1.x
//! (RFC 9112 §6.3 asks a server to close after a framing error) and "answer
//! with `status` on this stream" for HTTP/2.

use std::fmt;

use http::header::{CONTENT_LENGTH, TE, TRANSFER_ENCODING};
use http::HeaderMap;

use crate::proto::syntax::{parse_decimal, trim_ows};

/// The protocol version of a request, as far as the rules are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HttpVersion {
    Http10,
    Http11,
    Http2,
}

impl HttpVersion {
    /// HTTP/0.9 is served as 1.0 and HTTP/3 as 2 (neither reaches the
    /// server: `proto::h1` refuses 0.9, and there is no HTTP/3 listener).
    pub(crate) fn of(version: http::Version) -> HttpVersion {
        match version {
            http::Version::HTTP_10 | http::Version::HTTP_09 => HttpVersion::Http10,
            http::Version::HTTP_2 | http::Version::HTTP_3 => HttpVersion::Http2,
            _ => HttpVersion::Http11,
        }
    }
}

/// A request the server refuses: the status to answer with and a short reason
/// for the log. The reason is for people, not for matching on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestError {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
}

impl RequestError {
    const fn bad_request(reason: &'static str) -> Self {
        RequestError {
            status: 400,
            reason,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.status)
    }
}

impl std::error::Error for RequestError {}

/// Connection-specific header fields that must not appear in HTTP/2
/// (RFC 9113 §8.2.2, which names these five). `wsgi::environ` drops them too, so the
/// list lives here, once.
pub(crate) const HTTP2_CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

// ---------------------------------------------------------------------------
// RULES: every decision about request framing lives below.
//
// Theory of operation: framing is decided by Content-Length and
// Transfer-Encoding (RFC 9112 §6.3). When a sender and a receiver can
// disagree about where a body ends, an attacker can hide a second request
// inside the first one. So we accept only the unambiguous cases:
//
//   every version   Content-Length is one 1*DIGIT value, once: a second
//                   value, equal or not, in a list or on a second field
//                   line -> 400 (RFC 9110 §8.6: a recipient of equal
//                   duplicates MAY reject the message or keep one value;
//                   rejecting is one answer for every form, and h2 resets
//                   the stream of a "5, 5" itself)
//   HTTP/1.x        Content-Length and Transfer-Encoding together -> 400
//                   (RFC 9112 §6.1: a server MAY reject; we do)
//                   more than one Host field line -> 400 (RFC 9112 §3.2)
//   HTTP/1.0        any Transfer-Encoding -> 400 (RFC 9112 §6.1: the framing
//                   "is faulty"); Host may be absent
//   HTTP/1.1        no Host -> 400 (RFC 9112 §3.2)
//   HTTP/1.1        Transfer-Encoding is exactly one `chunked`, the only
//                   transfer coding the server decodes:
//                     final coding not chunked -> 400 (RFC 9112 §6.3 item 4:
//                       the length "cannot be determined reliably")
//                     chunked also earlier -> 400 (RFC 9112 §6.1: a sender
//                       "MUST NOT apply the chunked transfer coding more
//                       than once")
//                     an empty list element before the final chunked
//                       (",chunked", "gzip, , chunked") -> 501 like any
//                       other coding before it: the server applies no
//                       coding list but exactly `chunked`; an empty final
//                       element ("chunked,") is a final coding that is not
//                       chunked -> 400, as above
//                     any other coding before it (gzip, deflate, compress,
//                       identity, which RFC 9112 no longer registers, or
//                       unknown) -> 501 (RFC 9112 §6.1: a server that
//                       receives a transfer coding it does not understand
//                       SHOULD answer 501), rather than handing the
//                       application a body still encoded
//   HTTP/2          no connection-specific fields; TE only "trailers"
//                   (RFC 9113 §8.2.2)
// ---------------------------------------------------------------------------

/// Checks the framing headers of a request head. `Ok(())` means the body
/// framing is the only reading of this request: a `Transfer-Encoding` is
/// one `chunked`, else a `Content-Length` is one number
/// (`declared_content_length`).
pub(crate) fn check_framing(version: HttpVersion, headers: &HeaderMap) -> Result<(), RequestError> {
    let content_length = declared_content_length(headers)?;
    match version {
        HttpVersion::Http11 | HttpVersion::Http10 => {
            check_host(version, headers)?;
            check_transfer_encoding(version, headers, content_length.is_some())
        }
        HttpVersion::Http2 => check_http2_fields(headers),
    }
}

/// Refused: a Content-Length with more than one value (see RULES).
pub(crate) const REPEATED_CONTENT_LENGTH: RequestError =
    RequestError::bad_request("more than one Content-Length value");

/// The declared Content-Length, if any: one value, on one field line.
pub(crate) fn declared_content_length(headers: &HeaderMap) -> Result<Option<u64>, RequestError> {
    let mut declared: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(element))
                .ok_or(RequestError::bad_request("malformed Content-Length"))?;
            if declared.replace(n).is_some() {
                return Err(REPEATED_CONTENT_LENGTH);
            }
        }
    }
    Ok(declared)
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
/// to any HTTP/1.1 request message that lacks a Host header field and to any
/// request message that contains more than one Host header field line".
/// HTTP/1.0 has no Host requirement.
fn check_host(version: HttpVersion, headers: &HeaderMap) -> Result<(), RequestError> {
    match headers.get_all(http::header::HOST).iter().count() {
        1 => Ok(()),
        0 if version == HttpVersion::Http10 => Ok(()),
        0 => Err(RequestError::bad_request(
            "HTTP/1.1 request without a Host header",
        )),
        _ => Err(RequestError::bad_request("more than one Host header")),
    }
}

fn check_transfer_encoding(
    version: HttpVersion,
    headers: &HeaderMap,
    has_content_length: bool,
) -> Result<(), RequestError> {
    if !headers.contains_key(TRANSFER_ENCODING) {
        return Ok(());
    }
    if version == HttpVersion::Http10 {
        return Err(RequestError::bad_request(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    if has_content_length {
        return Err(RequestError::bad_request(
            "Content-Length together with Transfer-Encoding",
        ));
    }
    // Every element, empty ones too (see RULES).
    let codings: Vec<&[u8]> = headers
        .get_all(TRANSFER_ENCODING)
        .into_iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(trim_ows)
        .collect();
    let is_chunked = |coding: &&[u8]| coding.eq_ignore_ascii_case(b"chunked");
    let Some((last, earlier)) = codings.split_last() else {
        return Err(RequestError::bad_request("empty Transfer-Encoding"));
    };
    if !is_chunked(last) {
        return Err(RequestError::bad_request(
            "Transfer-Encoding does not end with chunked",
        ));
    }
    if earlier.iter().any(is_chunked) {
        return Err(RequestError::bad_request(
            "chunked transfer coding applied more than once",
        ));
    }
    if !earlier.is_empty() {
        return Err(RequestError {
            status: 501,
            reason: "transfer coding other than chunked",
        });
    }
    Ok(())
}

fn check_http2_fields(headers: &HeaderMap) -> Result<(), RequestError> {
    // One pass over the request's names (a lookup per forbidden name would
    // parse and hash each of the five on every request).
    if headers
        .keys()
        .any(|name| HTTP2_CONNECTION_SPECIFIC.contains(&name.as_str()))
    {
        return Err(RequestError::bad_request(
            "connection-specific header field in an HTTP/2 request",
        ));
    }
    if list_elements(headers, TE).any(|v| !v.eq_ignore_ascii_case(b"trailers")) {
        return Err(RequestError::bad_request(
            "TE other than \"trailers\" in an HTTP/2 request",
        ));
    }
    Ok(())
}

/// RFC 9113 §8.3.1: "A server SHOULD treat a request as malformed if it
/// contains a Host header field that identifies an entity that differs from
/// the entity in the :authority pseudo-header field." Host names compare
/// case-insensitively (RFC 3986 §6.2.2.1).
pub(crate) fn check_authority(
    headers: &HeaderMap,
    authority: Option<&str>,
) -> Result<(), RequestError> {
    let Some(authority) = authority else {
        return Ok(());
    };
    let differs = headers
        .get_all(http::header::HOST)
        .iter()
        .any(|host| !host.as_bytes().eq_ignore_ascii_case(authority.as_bytes()));
    if differs {
        Err(RequestError::bad_request(
            "Host header differs from :authority",
        ))
    } else {
        Ok(())
    }
}

/// RFC 9112 §3.2: a request-target in authority form is only for CONNECT
/// (§3.2.3), the asterisk form only for OPTIONS (§3.2.4); RFC 9113 §8.3.1
/// says the same of HTTP/2's `:path`. Either elsewhere is an invalid request
/// line, answered with 400 (§3.2: "a server SHOULD respond with a 400"):
/// `GET example HTTP/1.1` parses as an authority, and would leave the
/// application an empty `PATH_INFO`. CONNECT's own target is not checked
/// here, nor an origin-form target (it starts with "/" by the http crate's
/// parse).
pub(crate) fn check_target(method: &http::Method, uri: &http::Uri) -> Result<(), RequestError> {
    if method == http::Method::CONNECT {
        return Ok(());
    }
    match uri.path_and_query() {
        None => Err(RequestError::bad_request(
            "request target in authority form, which is only for CONNECT",
        )),
        Some(target) if target.as_str() == "*" && method != http::Method::OPTIONS => Err(
            RequestError::bad_request("request target \"*\", which is only for OPTIONS"),
        ),
        Some(_) => Ok(()),
    }
}

/// The non-empty, OWS-trimmed elements of a comma-separated list field,
/// across all its field lines (RFC 9110 §5.3 and §5.6.1).
fn list_elements(
    headers: &HeaderMap,
    name: http::header::HeaderName,
) -> impl Iterator<Item = &[u8]> + '_ {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::syntax::header_map as headers;
    use HttpVersion::{Http10, Http11, Http2};

    /// (version, header fields, expected status: None = accepted)
    type Case = (
        HttpVersion,
        &'static [(&'static str, &'static str)],
        Option<u16>,
    );
    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // No framing headers at all.
        (Http10, &[], None),
        (Http2, &[], None),
        (Http11, &[("host", "a")], None),
        // Host on HTTP/1.1: exactly one (RFC 9112 §3.2). The other HTTP/1.1
        // cases get a Host added by the test loop.
        (Http11, &[("x-no-host", "1")], Some(400)),
        (Http11, &[("host", "a"), ("host", "b")], Some(400)),
        (Http10, &[], None),
        // Content-Length: 1*DIGIT, duplicates must agree (RFC 9110 §8.6).
        (Http11, &[("content-length", "0")], None),
        (Http11, &[("content-length", "42")], None),
        (Http11, &[("content-length", "007")], None),
        (Http11, &[("content-length", " 5\t")], None),
        // Equal duplicates too, in one field or two (RFC 9110 §8.6 allows
        // refusing them).
        (Http11, &[("content-length", "5"), ("content-length", "5")], Some(400)),
        (Http11, &[("content-length", "5, 5")], Some(400)),
        (Http11, &[("content-length", "5,05")], Some(400)),
        (Http11, &[("content-length", "18446744073709551615")], None),
        (Http11, &[("content-length", "18446744073709551616")], Some(400)),
        (Http11, &[("content-length", "5"), ("content-length", "6")], Some(400)),
        (Http11, &[("content-length", "5, 6")], Some(400)),
        (Http11, &[("content-length", "5,")], Some(400)),
        (Http11, &[("content-length", "")], Some(400)),
        (Http11, &[("content-length", "-1")], Some(400)),
        (Http11, &[("content-length", "+1")], Some(400)),
        (Http11, &[("content-length", "0x10")], Some(400)),
        (Http11, &[("content-length", "1 2")], Some(400)),
        (Http11, &[("content-length", "1.0")], Some(400)),
        (Http10, &[("content-length", "abc")], Some(400)),
        (Http2, &[("content-length", "12")], None),
        (Http2, &[("content-length", "1"), ("content-length", "2")], Some(400)),
        (Http2, &[("content-length", "1"), ("content-length", "1")], Some(400)),
        (Http2, &[("content-length", "1, 1")], Some(400)),
        (Http2, &[("content-length", "x")], Some(400)),
        // Transfer-Encoding on HTTP/1.1 (RFC 9112 §6.1, §6.3, §7).
        (Http11, &[("transfer-encoding", "chunked")], None),
        (Http11, &[("transfer-encoding", "Chunked")], None),
        (Http11, &[("transfer-encoding", " chunked ")], None),
        (Http11, &[("transfer-encoding", "chunked"), ("transfer-encoding", " ")], Some(400)),
        // Other codings before chunked: not decoded, so 501 (RFC 9112 §6.1).
        (Http11, &[("transfer-encoding", "gzip, chunked")], Some(501)),
        (Http11, &[("transfer-encoding", "gzip"), ("transfer-encoding", "chunked")], Some(501)),
        (Http11, &[("transfer-encoding", "identity, chunked")], Some(501)),
        (Http11, &[("transfer-encoding", "deflate,compress, chunked")], Some(501)),
        (Http11, &[("transfer-encoding", "x-custom, Chunked")], Some(501)),
        // Empty elements: refused wherever they stand.
        (Http11, &[("transfer-encoding", ",chunked")], Some(501)),
        (Http11, &[("transfer-encoding", "chunked,")], Some(400)),
        (Http11, &[("transfer-encoding", "gzip, , chunked")], Some(501)),
        (Http11, &[("transfer-encoding", "gzip")], Some(400)),
        (Http11, &[("transfer-encoding", "chunked, gzip")], Some(400)),
        (Http11, &[("transfer-encoding", "chunked"), ("transfer-encoding", "gzip")], Some(400)),
        (Http11, &[("transfer-encoding", "chunked, chunked")], Some(400)),
        (Http11, &[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")], Some(400)),
        (Http11, &[("transfer-encoding", "chunked, gzip, chunked")], Some(400)),
        (Http11, &[("transfer-encoding", "chunked;ext=1")], Some(400)),
        (Http11, &[("transfer-encoding", "xchunked")], Some(400)),
        (Http11, &[("transfer-encoding", "")], Some(400)),
        (Http11, &[("transfer-encoding", " , ")], Some(400)),
        // Content-Length with Transfer-Encoding: smuggling (RFC 9112 §6.1).
        (Http11, &[("content-length", "5"), ("transfer-encoding", "chunked")], Some(400)),
        (Http11, &[("transfer-encoding", "chunked"), ("content-length", "0")], Some(400)),
        // HTTP/1.0 has no Transfer-Encoding (RFC 9112 §6.1).
        (Http10, &[("transfer-encoding", "chunked")], Some(400)),
        (Http10, &[("content-length", "3")], None),
        // Host: one in HTTP/1.1, at most one in HTTP/1.0 (RFC 9112 §3.2).
        (Http10, &[("host", "a")], None),
        (Http10, &[("host", "a"), ("host", "b")], Some(400)),
        // HTTP/2 connection-specific fields (RFC 9113 §8.2.2).
        (Http2, &[("connection", "keep-alive")], Some(400)),
        (Http2, &[("keep-alive", "timeout=5")], Some(400)),
        (Http2, &[("proxy-connection", "keep-alive")], Some(400)),
        (Http2, &[("transfer-encoding", "chunked")], Some(400)),
        (Http2, &[("upgrade", "websocket")], Some(400)),
        (Http2, &[("te", "trailers")], None),
        (Http2, &[("te", "Trailers")], None),
        (Http2, &[("te", "gzip")], Some(400)),
        (Http2, &[("te", "trailers, deflate")], Some(400)),
        // The same fields are fine in HTTP/1.1 (hop-by-hop, `proto::h1` handles them).
        (Http11, &[("connection", "keep-alive"), ("te", "gzip")], None),
        (Http11, &[("upgrade", "websocket"), ("connection", "upgrade")], None),
    ];

    #[test]
    fn targets_by_method() {
        use http::{Method, Uri};
        for (method, target, ok) in [
            (Method::GET, "/a?b", true),
            (Method::GET, "http://h/a", true),
            (Method::GET, "http://h", true),
            (Method::GET, "h", false),
            (Method::POST, "h:80", false),
            (Method::GET, "*", false),
            (Method::OPTIONS, "*", true),
            (Method::OPTIONS, "h", false),
            (Method::CONNECT, "h:443", true),
        ] {
            let uri: Uri = target.parse().unwrap();
            assert_eq!(check_target(&method, &uri).is_ok(), ok, "{method} {target}");
        }
    }

    #[test]
    fn check_framing_table() {
        for (version, fields, expected) in CASES {
            let mut map = headers(fields);
            let wants_host = *version == Http11
                && !fields
                    .iter()
                    .any(|(n, _)| *n == "host" || *n == "x-no-host");
            if wants_host {
                map.insert(
                    http::header::HOST,
                    http::HeaderValue::from_static("example.com"),
                );
            }
            let result = check_framing(*version, &map);
            assert_eq!(
                result.as_ref().err().map(|e| e.status),
                *expected,
                "{version:?} {fields:?}: {result:?}"
            );
        }
    }

    #[test]
    fn errors_display_reason_and_status() {
        let err = check_framing(Http10, &headers(&[("content-length", "x")])).unwrap_err();
        assert_eq!(err.to_string(), "malformed Content-Length (400)");
    }

    #[test]
    fn host_must_match_authority() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, bool);
        let cases: &[Case] = &[
            (&[("host", "example.com")], Some("example.com"), true),
            (
                &[("host", "Example.COM:8443")],
                Some("example.com:8443"),
                true,
            ),
            (&[("host", "evil.com")], Some("example.com"), false),
            (&[("host", "example.com:1")], Some("example.com"), false),
            (&[], Some("example.com"), true),
            (
                &[("host", "example.com"), ("host", "evil.com")],
                Some("example.com"),
                false,
            ),
            (&[("host", "example.com")], None, true),
        ];
        for (fields, authority, ok) in cases {
            assert_eq!(
                check_authority(&headers(fields), *authority).is_ok(),
                *ok,
                "{fields:?} {authority:?}"
            );
        }
    }
}
