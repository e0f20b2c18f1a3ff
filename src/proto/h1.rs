//! HTTP/1.x request heads and response heads (RFC 9112), without I/O.
//!
//! What it does: `parse_request` reads one request head from the front of a
//! buffer and answers in one of three ways: a request to serve
//! (`Parsed::Request`, its head taken off the buffer), "need more bytes"
//! (`Parsed::Partial`), or "answer this error and close" (`Parsed::Refuse`,
//! with the status: 400, 414, 417, 431, 501). Every HTTP/1.0 and HTTP/1.1
//! request is one or the other: the server has no other HTTP/1 parser.
//! `encode_response_head` writes a response head (HTTP/1.1's rules, and
//! HTTP/1.0's keep-alive and close-delimited bodies), `chunk_head` frames
//! chunked data and `encode_last_chunk` ends it, with trailer fields;
//! `encode_early_hints` writes a `103 Early Hints` interim response.
//!
//! What it does not do: I/O, timeouts, bodies (`proto::chunked` decodes
//! chunked ones), or the h2c upgrade itself (`Request::upgrade` says an
//! `Upgrade` field came; `runtime::conn::h2c` decides). The framing and target
//! rules it applies are `proto::request`'s, shared with HTTP/2.

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, HOST, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use smallvec::SmallVec;

use crate::proto::body::Framing as BodyFraming;
use crate::proto::chunked::may_be_trailer;
use crate::proto::request::{
    check_framing, check_target, declared_content_length, HttpVersion, RequestError,
};
use crate::proto::syntax::{parse_decimal, trim_ows};

/// What a request head may be: larger, 431.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Header fields in one head (hyper's default is 100; more: 431).
    pub(crate) max_headers: usize,
    /// Bytes of one head, request line to the empty line.
    pub(crate) max_head: usize,
}

/// A request to serve: what the server needs to serve it.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    /// The target: origin form (path and query), absolute form (its
    /// authority is then the `Host`), or `*` (OPTIONS).
    pub(crate) uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    /// How the body is delimited: none, `Content-Length`, or chunked
    /// (`Transfer-Encoding: chunked`, `proto::chunked`).
    pub(crate) body: BodyFraming,
    /// `Expect: 100-continue` on HTTP/1.1 (RFC 9110 §10.1.1): the client
    /// waits for a `100 Continue` before it sends the body.
    pub(crate) expect_continue: bool,
    /// The connection may serve another request after this one (RFC 9112
    /// §9.3): HTTP/1.1 without `Connection: close`; HTTP/1.0 with
    /// `Connection: keep-alive`.
    pub(crate) keep_alive: bool,
    /// The head has an `Upgrade` field (RFC 9110 §7.8).
    pub(crate) upgrade: bool,
}

/// Returned by value and taken apart at once: boxing the request would cost
/// an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed {
    Request(Request),
    Partial,
    /// Answer with the error's status and close the connection (RFC 9112
    /// §6.3 for framing errors; the head may be incomplete or unreadable).
    Refuse(RequestError),
}

/// httparse's header array lives on the stack up to this many fields.
const INLINE_HEADERS: usize = 100;

/// The longest request-target: longer ones get 414 (hyper's limit; the
/// request line must also fit in `Limits::max_head`).
const MAX_TARGET: usize = u16::MAX as usize - 1;

const MALFORMED: RequestError = RequestError {
    status: 400,
    reason: "malformed request head",
};
const TARGET_TOO_LONG: RequestError = RequestError {
    status: 414,
    reason: "URI Too Long",
};
const HEAD_TOO_LARGE: RequestError = RequestError {
    status: 431,
    reason: "Request Header Fields Too Large",
};
const UNSUPPORTED_EXPECTATION: RequestError = RequestError {
    status: 417,
    reason: "Expectation Failed",
};
const CONNECT: RequestError = RequestError {
    status: 501,
    reason: "CONNECT is not supported: this server is not a proxy",
};

/// Where one header field sits in the head.
#[derive(Clone, Copy)]
struct FieldAt {
    name: (usize, usize),
    value: (usize, usize),
}

// ---------------------------------------------------------------------------
// RULES: what a request head may be, and how a response head is written.
//
// Theory of operation. Each head is parsed where it lies in the connection's
// buffer (httparse, hyper's parser, with its syntax rules: a malformed
// request line or field is 400). A head is served or refused here:
//
//   size            more than `max_head` bytes: 414 when the request line
//                   alone is too long (or the target over MAX_TARGET), else
//                   431; more than `max_headers` fields: 431
//   version         HTTP/1.0 or HTTP/1.1 (httparse refuses others: 400)
//   method          CONNECT: 501 (no proxy here, RFC 9110 §9.3.6)
//   target          origin form; absolute form, whose authority replaces
//                   Host (RFC 9112 §3.2.2); `*` only with OPTIONS and
//                   authority form only with CONNECT (§3.2.3, §3.2.4:
//                   `proto::request::check_target`, 400)
//   framing, Host   `proto::request::check_framing` (400, 501): one Host in
//                   HTTP/1.1, at most one in HTTP/1.0; one Content-Length
//                   value, or one `chunked` (HTTP/1.1 only), not both
//   Expect          one `100-continue` field, or none; any other
//                   expectation: 417 (RFC 9110 §10.1.1). HTTP/1.0's
//                   `100-continue` is ignored (ibid.: a server MUST)
//   keep-alive      HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
//                   `Connection: keep-alive` (RFC 9112 §9.3)
//
// The common head (one Host, at most one plain Content-Length or one
// `chunked`) is decided while its fields are scanned; any other goes
// through `check_framing`, so that each framing rule lives once.
//
// Responses: hyper 1.x's rules (its `role::Server::encode`): header fields in
// the map's order, names in lower case; Content-Length from the map when the
// body length is known, else from the body (`content-length: 0` for an empty
// body, except for HEAD), `transfer-encoding: chunked` for a body of unknown
// length; no body and no length for 204 and 304; `connection: close` added
// when the request asked for it; `date` last unless the application set one.
// The status line is always HTTP/1.1 (RFC 9110 §6.2: the highest minor
// version the server conforms to); to an HTTP/1.0 request a body of unknown
// length is delimited by the close (RFC 9112 §6.3 item 8: 1.0 has no
// chunked), and a kept connection says `connection: keep-alive`.
// ---------------------------------------------------------------------------

/// Parse the request head at the front of `buf`. On `Request` the head is
/// taken off `buf`; otherwise `buf` is as it was.
pub(crate) fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Parsed {
    let mut inline = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); INLINE_HEADERS];
    let mut spilled;
    let headers = if limits.max_headers <= INLINE_HEADERS {
        &mut inline[..limits.max_headers]
    } else {
        spilled = vec![std::mem::MaybeUninit::uninit(); limits.max_headers];
        &mut spilled[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            return Parsed::Refuse(too_large(buf, limits))
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refuse(HEAD_TOO_LARGE),
        Err(_) => return Parsed::Refuse(MALFORMED),
    };
    if len > limits.max_head {
        return Parsed::Refuse(too_large(buf, limits));
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Refuse(MALFORMED);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Refuse(MALFORMED);
    };
    if target.len() > MAX_TARGET {
        return Parsed::Refuse(TARGET_TOO_LONG);
    }
    if method == Method::CONNECT {
        return Parsed::Refuse(CONNECT);
    }
    let http10 = minor == 0;
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start, start + s.len())
    };
    let target_at = at(target.as_bytes());
    let origin_form = target.starts_with('/');
    // The common head, decided here; anything else (`unusual`) goes
    // through the framing rules of `proto::request`.
    let mut unusual = !origin_form;
    let mut content_length = None;
    let mut chunked = false;
    let mut expects = 0;
    let mut expect_continue = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut upgrade = false;
    let mut hosts = 0;
    // Most heads have a few dozen fields at most: no allocation for those.
    let mut fields: SmallVec<[FieldAt; 32]> = SmallVec::new();
    for field in req.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            unusual |= content_length.is_some();
            content_length = parse_decimal(field.value);
            unusual |= content_length.is_none();
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            unusual |= chunked || http10 || !trim_ows(field.value).eq_ignore_ascii_case(b"chunked");
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            expects += 1;
            expect_continue = trim_ows(field.value).eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(field.value, b"close");
            keep_alive_token |= has_token(field.value, b"keep-alive");
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        }
        fields.push(FieldAt {
            name: at(name),
            value: at(field.value),
        });
    }
    unusual |= (content_length.is_some() && chunked) || hosts > 1 || (hosts == 0 && !http10);
    // RFC 9110 §10.1.1: `100-continue` is the only expectation.
    if expects > 1 || (expects == 1 && !expect_continue) {
        return Parsed::Refuse(UNSUPPORTED_EXPECTATION);
    }
    let head = buf.split_to(len).freeze();
    let Some((uri, mut headers)) = build(&head, target_at, &fields) else {
        // The http crate refused what httparse accepted (a target byte it
        // does not take).
        return Parsed::Refuse(MALFORMED);
    };
    let (version, checked) = match http10 {
        true => (Version::HTTP_10, HttpVersion::Http10),
        false => (Version::HTTP_11, HttpVersion::Http11),
    };
    let body = if unusual {
        if let Err(e) = check_framing(checked, &headers).and(check_target(&method, &uri)) {
            return Parsed::Refuse(e);
        }
        if let Some(authority) = uri.authority() {
            // RFC 9112 §3.2.2: the target's authority, not the Host field.
            match HeaderValue::from_str(authority.as_str()) {
                Ok(host) => drop(headers.insert(HOST, host)),
                Err(_) => return Parsed::Refuse(MALFORMED),
            }
        }
        match (chunked, declared_content_length(&headers)) {
            (true, _) => BodyFraming::Streamed,
            (false, Ok(Some(n))) => BodyFraming::Length(n),
            (false, _) => BodyFraming::Empty,
        }
    } else {
        match (content_length, chunked) {
            (Some(n), _) => BodyFraming::Length(n),
            (None, true) => BodyFraming::Streamed,
            (None, false) => BodyFraming::Empty,
        }
    };
    Parsed::Request(Request {
        method,
        uri,
        version,
        headers,
        body,
        expect_continue: expect_continue && !http10,
        keep_alive: !close && (!http10 || keep_alive_token),
        upgrade,
    })
}

/// The refusal of a head over `max_head` bytes: 414 when its request line
/// alone does not fit, else 431.
fn too_large(buf: &[u8], limits: &Limits) -> RequestError {
    let line = &buf[..buf.len().min(limits.max_head + 1)];
    match line.iter().position(|&b| b == b'\n') {
        Some(end) if end < limits.max_head => HEAD_TOO_LARGE,
        _ => TARGET_TOO_LONG,
    }
}

/// The target and header map of a head, their bytes shared with `head`.
fn build(head: &Bytes, target: (usize, usize), fields: &[FieldAt]) -> Option<(Uri, HeaderMap)> {
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.1)).ok()?;
    let mut headers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(&head[field.name.0..field.name.1]).ok()?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(field.value.0..field.value.1)).ok()?;
        headers.append(name, value);
    }
    Some((uri, headers))
}

/// Whether a comma-separated list (`Connection`) has `token`, in any case.
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// The length of a response body, as its sender knows it before sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// The body is over before it started.
    Empty,
    Known(u64),
    Unknown,
}

/// How the body after a head is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Exactly this many bytes (0 for HEAD, 204, 304).
    Length(u64),
    Chunked,
    /// Until the connection closes: a body of unknown length to an
    /// HTTP/1.0 request (RFC 9112 §6.3 item 8).
    Close,
}

/// What `encode_response_head` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub(crate) framing: Framing,
    /// Close the connection after this response.
    pub(crate) close: bool,
}

/// The request a response answers, as far as the head is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answering {
    pub(crate) head: bool,
    pub(crate) keep_alive: bool,
    /// HTTP/1.0 or HTTP/1.1 (`Http2` is never answered here).
    pub(crate) version: HttpVersion,
}

/// Write the head of a response to an HTTP/1.x request. `date` is the
/// current IMF-fixdate (`http_date`).
pub(crate) fn encode_response_head(
    status: StatusCode,
    headers: &HeaderMap,
    body: BodyLength,
    request: Answering,
    date: &[u8],
    dst: &mut Vec<u8>,
) -> Encoded {
    if status == StatusCode::OK {
        dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        dst.extend_from_slice(b"HTTP/1.1 ");
        dst.extend_from_slice(status.as_str().as_bytes());
        dst.push(b' ');
        // RFC 9112 §4: the reason may be empty, but parsers expect one.
        dst.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    // RFC 9110 §6.4.1, §15.3.5, §15.4.5: no content in these.
    let no_body =
        request.head || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let may_have_length = !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let http10 = request.version == HttpVersion::Http10;
    let mut framing = None;
    let mut close = !request.keep_alive;
    let mut wrote_date = false;
    let mut wrote_connection = false;
    let mut current: Option<&HeaderName> = None;
    for (name, value) in headers {
        let repeated = current == Some(name);
        current = Some(name);
        if name == CONTENT_LENGTH {
            if repeated {
                continue;
            }
            match body {
                BodyLength::Known(n) => framing = Some(Framing::Length(n)),
                BodyLength::Unknown => match parse_decimal(trim_ows(value.as_bytes())) {
                    Some(n) => framing = Some(Framing::Length(n)),
                    None => continue,
                },
                // No body: the field stays only on a HEAD response (it says
                // what a GET would have had); otherwise "0" is written below.
                BodyLength::Empty if request.head => framing = Some(Framing::Length(0)),
                BodyLength::Empty => continue,
            }
        } else if name == CONNECTION {
            if repeated {
                continue;
            }
            // Every value on one line, as hyper writes this field.
            dst.extend_from_slice(b"connection: ");
            let mut has_close = false;
            for (i, value) in headers.get_all(CONNECTION).iter().enumerate() {
                if i > 0 {
                    dst.extend_from_slice(b", ");
                }
                dst.extend_from_slice(value.as_bytes());
                has_close |= has_token(value.as_bytes(), b"close");
            }
            if !request.keep_alive && !has_close {
                // The request asked to close: its answer says so too.
                dst.extend_from_slice(b", close");
            }
            if http10 && request.keep_alive && !has_close {
                dst.extend_from_slice(b", keep-alive");
            }
            close |= has_close;
            dst.extend_from_slice(b"\r\n");
            wrote_connection = true;
            continue;
        } else if name == DATE {
            wrote_date = true;
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    if !request.keep_alive && !wrote_connection {
        dst.extend_from_slice(b"connection: close\r\n");
    }
    let framing = match framing {
        Some(framing) => framing,
        None => match body {
            BodyLength::Unknown if !no_body && http10 => {
                close = true;
                Framing::Close
            }
            BodyLength::Unknown if !no_body => {
                dst.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            BodyLength::Unknown => Framing::Length(0),
            BodyLength::Empty | BodyLength::Known(0) => {
                if may_have_length && !request.head {
                    dst.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            BodyLength::Known(n) => {
                if may_have_length {
                    dst.extend_from_slice(b"content-length: ");
                    dst.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    dst.extend_from_slice(b"\r\n");
                }
                Framing::Length(n)
            }
        },
    };
    let framing = if no_body { Framing::Length(0) } else { framing };
    if http10 && request.keep_alive && !wrote_connection {
        // An HTTP/1.0 client keeps the connection only when told so.
        match close {
            true => dst.extend_from_slice(b"connection: close\r\n"),
            false => dst.extend_from_slice(b"connection: keep-alive\r\n"),
        }
    }
    if !wrote_date {
        dst.extend_from_slice(b"date: ");
        dst.extend_from_slice(date);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    Encoded { framing, close }
}

/// The line before a chunk of `len` bytes (RFC 9112 §7.1): its size in hex
/// (upper case, as hyper writes it).
pub(crate) fn chunk_head(len: usize, dst: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[i..]);
    dst.extend_from_slice(b"\r\n");
}

/// The end of a chunked body (RFC 9112 §7.1): the last chunk, the trailer
/// section (§7.1.2) and the empty line. Fields that must not be trailers
/// (framing, routing, content format: RFC 9110 §6.5.1,
/// `proto::chunked::may_be_trailer`) are left out.
pub(crate) fn encode_last_chunk(trailers: Option<&HeaderMap>, dst: &mut Vec<u8>) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        if may_be_trailer(name) {
            dst.extend_from_slice(name.as_str().as_bytes());
            dst.extend_from_slice(b": ");
            dst.extend_from_slice(value.as_bytes());
            dst.extend_from_slice(b"\r\n");
        }
    }
    dst.extend_from_slice(b"\r\n");
}

/// `103 Early Hints` (RFC 8297) with `fields`, a whole interim response.
/// `Content-Length` and `Transfer-Encoding` are left out: a 1xx response has
/// no content (RFC 9110 §8.6, RFC 9112 §6.1). The caller never sends it to
/// an HTTP/1.0 client (RFC 9110 §15.2).
pub(crate) fn encode_early_hints(fields: &HeaderMap, dst: &mut Vec<u8>) {
    dst.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\n");
    for (name, value) in fields {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
pub(crate) fn http_date(time: std::time::SystemTime) -> [u8; 29] {
    let mut out = [0u8; 29];
    let text = httpdate::fmt_http_date(time);
    out.copy_from_slice(&text.as_bytes()[..29]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::request::REPEATED_CONTENT_LENGTH;

    const LIMITS: Limits = Limits {
        max_headers: 100,
        max_head: 8192,
    };

    fn parse(bytes: &[u8]) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        let parsed = parse_request(&mut buf, &LIMITS);
        (parsed, buf)
    }

    fn served(bytes: &[u8]) -> (Request, BytesMut) {
        match parse(bytes) {
            (Parsed::Request(r), rest) => (r, rest),
            (other, _) => panic!(
                "{:?}: expected a request to serve, got {other:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }

    const GET: &[u8] = b"GET /a/b?c=d HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\nAccept: */*\r\nAccept: text/html\r\n\r\n";

    #[test]
    fn a_get_whole_byte_by_byte_and_with_trailing_data() {
        // Whole.
        let (req, rest) = served(GET);
        assert_eq!(req.method, Method::GET);
        assert_eq!(req.uri.path(), "/a/b");
        assert_eq!(req.uri.query(), Some("c=d"));
        assert_eq!(req.headers["host"], "example");
        let accept: Vec<_> = req.headers.get_all("accept").iter().collect();
        assert_eq!(accept, ["*/*", "text/html"]);
        assert_eq!(req.body, BodyFraming::Empty);
        assert!(req.keep_alive);
        assert!(rest.is_empty());
        // Fed one byte at a time: Partial until the last byte, and the buffer
        // is never consumed before that.
        let mut buf = BytesMut::new();
        for (i, byte) in GET.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            match parse_request(&mut buf, &LIMITS) {
                Parsed::Partial => assert!(i + 1 < GET.len(), "partial at the end"),
                Parsed::Request(r) => {
                    assert_eq!(i + 1, GET.len());
                    assert_eq!(r.uri.path(), "/a/b");
                }
                other => panic!("byte {i}: {other:?}"),
            }
        }
        assert!(buf.is_empty());
        // With the next request (pipelined) and a body behind it.
        let mut two = GET.to_vec();
        two.extend_from_slice(b"POST /x HTTP/1.1\r\nHost: e\r\nContent-Length: 3\r\n\r\nabcGET");
        let (_, rest) = served(&two);
        let (second, rest) = served(&rest);
        assert_eq!(second.method, Method::POST);
        assert_eq!(second.body, BodyFraming::Length(3));
        assert_eq!(&rest[..], b"abcGET");
    }

    #[test]
    fn every_head_is_served_or_refused_with_its_status() {
        // (head, Ok(what the request is) or Err(status)).
        for (head, expected) in [
            // HTTP/1.0: no Host needed; keep-alive only when asked for.
            (&b"GET / HTTP/1.0\r\n\r\n"[..], Ok("HTTP/1.0 close")),
            (b"GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n", Ok("HTTP/1.0 keep-alive")),
            (b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", Err(400)),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Err(400)),
            (b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", Ok("HTTP/1.0 close")),
            // Targets (RFC 9112 §3.2).
            (b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", Ok("HTTP/1.1 keep-alive")),
            (b"GET http://a/ HTTP/1.1\r\n\r\n", Err(400)),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Ok("HTTP/1.1 keep-alive")),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", Err(400)),
            (b"GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", Err(400)),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", Err(501)),
            // Framing (`proto::request::check_framing`).
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Err(501)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Err(400)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", Err(400)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", Err(400)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", Err(400)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", Err(400)),
            // Expect (RFC 9110 §10.1.1).
            (b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", Err(417)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", Err(417)),
            // Upgrade: served; the connection decides what to do with it.
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n", Ok("HTTP/1.1 keep-alive upgrade")),
            // Syntax.
            (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", Err(400)),
            (b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", Err(400)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", Err(400)),
            (b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", Err(400)),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", Err(400)),
            // Host (RFC 9112 §3.2).
            (b"GET / HTTP/1.1\r\n\r\n", Err(400)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", Err(400)),
        ] {
            let show = String::from_utf8_lossy(head);
            match (parse(head).0, expected) {
                (Parsed::Request(r), Ok(what)) => {
                    let got = format!(
                        "{:?} {}{}",
                        r.version,
                        if r.keep_alive { "keep-alive" } else { "close" },
                        if r.upgrade { " upgrade" } else { "" }
                    );
                    assert_eq!(got, what, "{show:?}");
                }
                (Parsed::Refuse(e), Err(status)) => assert_eq!(e.status, status, "{show:?}"),
                (other, _) => panic!("{show:?}: {other:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn an_absolute_form_target_is_the_host() {
        // RFC 9112 §3.2.2: the authority of the target, not the Host field.
        let (req, _) = served(b"GET http://a:8/p?q HTTP/1.1\r\nHost: b\r\n\r\n");
        assert_eq!(req.headers["host"], "a:8");
        assert_eq!(req.uri.path(), "/p");
        assert_eq!(req.uri.query(), Some("q"));
    }

    #[test]
    fn a_content_length_with_more_than_one_value_is_refused_in_one_field_or_two() {
        // RFC 9110 §8.6: a recipient MAY refuse equal duplicates; one answer
        // whatever the form.
        for head in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
            b"POST / HTTP/1.0\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        ] {
            match parse(head).0 {
                Parsed::Refuse(e) => assert_eq!(e, REPEATED_CONTENT_LENGTH),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(head)),
            }
        }
    }

    #[test]
    fn chunked_bodies_and_expect_100_continue_are_served() {
        let (req, rest) =
            served(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n5\r\nhello");
        assert_eq!(req.body, BodyFraming::Streamed);
        assert!(!req.expect_continue);
        assert_eq!(&rest[..], b"5\r\nhello", "the body stays in the buffer");
        let (req, _) = served(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(req.body, BodyFraming::Length(5));
        assert!(req.expect_continue);
        let (req, _) = served(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(req.body, BodyFraming::Streamed);
        assert!(req.expect_continue);
    }

    #[test]
    fn limits_are_431_and_414() {
        let limits = Limits {
            max_headers: 2,
            max_head: 64,
        };
        let status = |bytes: &[u8]| match parse_request(&mut BytesMut::from(bytes), &limits) {
            Parsed::Refuse(e) => e.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            431
        );
        let mut long = b"GET / HTTP/1.1\r\nA: 1\r\nB: ".to_vec();
        long.extend_from_slice(&[b'x'; 64]);
        assert_eq!(status(&long), 431, "a long field, whole or not");
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&long), 431);
        // The request line alone is too long: 414 (RFC 9112 §3).
        let mut target = b"GET /".to_vec();
        target.extend_from_slice(&[b'x'; 64]);
        assert_eq!(status(&target), 414);
        target.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status(&target), 414);
        // More than the inline array of fields.
        let limits = Limits {
            max_headers: 150,
            max_head: 1 << 16,
        };
        let mut many = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\r\n"[..]);
        for i in 0..120 {
            many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        match parse_request(&mut many, &limits) {
            Parsed::Request(r) => {
                assert_eq!(r.headers.len(), 121);
                assert_eq!(r.headers["x-119"], "119");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connection_close_and_content_length() {
        let (req, _) =
            served(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(!req.keep_alive);
        let (req, _) = served(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(req.body, BodyFraming::Length(0));
    }

    /// A small deterministic generator (xorshift64*): the same cases on
    /// every run, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Bytes that make a mutation hit the parser's decisions, not only its
    /// syntax errors.
    #[rustfmt::skip]
    const PIECES: &[&[u8]] = &[
        b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b",", b"\r\n\r\n", b"/", b"?", b"*",
        b"\x00", b"\x7f", b"\xff", b"HTTP/1.1", b"HTTP/1.0", b"Host: h\r\n",
        b"Content-Length: 5\r\n", b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n",
        b"Connection: close\r\n", b"Expect: 100-continue\r\n", b"Upgrade: h2c\r\n",
        b"18446744073709551616", b"-1", b"CONNECT", b"http://a/", b"\"", b"{", b"|", b"\\",
        b"^", b"`", b"%",
    ];

    fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 if at < bytes.len() => bytes[at] = rng.next() as u8,
                1 if at < bytes.len() => {
                    let end = (at + 1 + rng.below(8)).min(bytes.len());
                    bytes.drain(at..end);
                }
                2 => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    // A whole field goes in at the start of a line.
                    let at = match bytes[..at].iter().rposition(|&b| b == b'\n') {
                        Some(nl) if piece.ends_with(b"\r\n") => nl + 1,
                        _ => at,
                    };
                    bytes.splice(at..at, piece.iter().copied());
                }
                3 if at < bytes.len() => {
                    // Repeat a run: long fields, many fields.
                    let end = (at + 1 + rng.below(40)).min(bytes.len());
                    let run = bytes[at..end].to_vec();
                    for _ in 0..1 + rng.below(200) {
                        bytes.splice(at..at, run.iter().copied());
                    }
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    }

    /// What a parse decided, comparable between runs: method, target,
    /// fields, declared length, keep-alive.
    type Decision = (
        String,
        String,
        Vec<(String, Vec<u8>)>,
        BodyFraming,
        bool,
        bool,
    );

    fn decision(parsed: &Parsed) -> Option<Decision> {
        match parsed {
            Parsed::Request(r) => Some((
                r.method.to_string(),
                r.uri.to_string(),
                r.headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                    .collect(),
                r.body,
                r.expect_continue,
                r.keep_alive,
            )),
            _ => None,
        }
    }

    #[test]
    fn mutated_requests_fed_in_any_pieces_decide_as_they_do_whole() {
        // Properties, over thousands of mutated heads: no panic; a served
        // head is taken off the buffer and nothing after it, and keeps the
        // rules of RULES; and the server, which sees a head in whatever
        // pieces the socket gives, decides as on the whole head: a piece is
        // never served unless the whole is, with the same request, and a
        // piece refused is refused whole.
        let seeds: &[&[u8]] = &[
            GET,
            b"POST /x?y HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-A: 1\r\nX-B: \t2 \r\n\r\nGET",
            b"HEAD /%20 HTTP/1.1\r\nhost: h\r\ncookie: a=1; b=2\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ];
        let socket = Limits {
            max_headers: 20,
            max_head: 512,
        };
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut served_cases = 0;
        let mut refused = 0;
        for case in 0..6000 {
            let limits = socket;
            let input = mutate(&mut rng, seeds[case % seeds.len()]);
            let show = String::from_utf8_lossy(&input).into_owned();
            let mut whole = BytesMut::from(&input[..]);
            let parsed = parse_request(&mut whole, &limits);
            let expected = decision(&parsed);
            match &parsed {
                Parsed::Request(r) => {
                    served_cases += 1;
                    // The rules of a served request hold on what was taken.
                    let count = |name: &str| r.headers.get_all(name).iter().count();
                    match r.version {
                        Version::HTTP_10 => assert!(count("host") <= 1, "{show:?}"),
                        _ => assert_eq!(count("host"), 1, "{show:?}"),
                    }
                    assert_eq!(count("upgrade") > 0, r.upgrade, "{show:?}");
                    assert!(
                        count("expect") >= usize::from(r.expect_continue),
                        "{show:?}"
                    );
                    assert!(count("expect") <= 1, "{show:?}");
                    let chunked = r.body == BodyFraming::Streamed;
                    assert_eq!(count("transfer-encoding"), usize::from(chunked), "{show:?}");
                    let lengths: Vec<_> = r.headers.get_all("content-length").iter().collect();
                    match r.body {
                        BodyFraming::Empty | BodyFraming::Streamed => {
                            assert!(lengths.is_empty(), "{show:?}")
                        }
                        BodyFraming::Length(n) => {
                            assert_eq!(lengths.len(), 1, "{show:?}");
                            let digits = lengths[0].as_bytes();
                            assert!(digits.iter().all(u8::is_ascii_digit), "{show:?}");
                            assert_eq!(
                                std::str::from_utf8(digits).unwrap().parse(),
                                Ok(n),
                                "{show:?}"
                            );
                        }
                    }
                    assert!(r.method != Method::CONNECT, "{show:?}");
                    assert!(
                        r.uri.path().starts_with('/') || r.uri.path() == "*",
                        "{show:?}"
                    );
                    let head_len = input.len() - whole.len();
                    assert!(head_len > 0 && head_len <= limits.max_head, "{show:?}");
                    assert_eq!(&input[head_len..], &whole[..], "{show:?}: rest changed");
                }
                Parsed::Refuse(_) => refused += 1,
                Parsed::Partial => assert_eq!(&whole[..], &input[..], "{show:?}: buffer changed"),
            }
            // The same bytes in random pieces, parsed after each piece as
            // the connection does: it reads on after `Partial`.
            let mut buf = BytesMut::new();
            let mut fed = 0;
            let mut piecewise = None;
            while fed < input.len() {
                let take = 1 + rng.below(input.len() - fed).min(rng.below(64));
                buf.extend_from_slice(&input[fed..fed + take]);
                fed += take;
                match parse_request(&mut buf, &limits) {
                    Parsed::Partial => piecewise = None,
                    other => {
                        piecewise = Some(other);
                        break;
                    }
                }
            }
            match (piecewise, &parsed) {
                (None, Parsed::Partial) => {}
                (Some(got @ Parsed::Request(_)), _) => {
                    assert_eq!(decision(&got), expected, "{show:?}");
                }
                // A piece over the size limit is refused for its size before
                // a syntax error further on is seen.
                (Some(Parsed::Refuse(got)), Parsed::Refuse(whole))
                    if got.status == whole.status || matches!(got.status, 414 | 431) => {}
                (got, _) => panic!("{show:?}: whole {parsed:?}, in pieces {got:?}"),
            }
        }
        // The mutations must leave many heads served, or the test would only
        // exercise the refusals.
        assert!(served_cases > 600, "only {served_cases} served cases");
        assert!(refused > 0, "no refused case");
    }

    fn head(
        status: u16,
        fields: &[(&str, &str)],
        body: BodyLength,
        request: Answering,
    ) -> (String, Encoded) {
        let mut headers = HeaderMap::new();
        for (n, v) in fields {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut dst = Vec::new();
        let encoded = encode_response_head(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body,
            request,
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            &mut dst,
        );
        (String::from_utf8(dst).unwrap(), encoded)
    }

    use HttpVersion::{Http10, Http11};

    const GET_KA: Answering = Answering {
        head: false,
        keep_alive: true,
        version: Http11,
    };
    const HEAD_KA: Answering = Answering {
        head: true,
        keep_alive: true,
        version: Http11,
    };
    const GET_10: Answering = Answering {
        head: false,
        keep_alive: false,
        version: Http10,
    };
    const GET_10_KA: Answering = Answering {
        head: false,
        keep_alive: true,
        version: Http10,
    };
    const DATE_LINE: &str = "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";

    #[test]
    fn response_heads_as_hyper_writes_them() {
        use BodyLength::{Empty, Known, Unknown};
        for (status, fields, body, request, expected, framing, close) in [
            // Length from the application.
            (200, &[("content-type", "text/plain"), ("content-length", "13")][..], Known(13), GET_KA,
             "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n", Framing::Length(13), false),
            // Length from the body.
            (200, &[("content-type", "text/plain")], Known(5), GET_KA,
             "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n", Framing::Length(5), false),
            // Unknown length: chunked, or the application's length.
            (201, &[], Unknown, GET_KA, "HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n", Framing::Chunked, false),
            (200, &[("content-length", "7")], Unknown, GET_KA, "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n", Framing::Length(7), false),
            // Empty bodies: "0", whatever the application said, but not for HEAD.
            (200, &[("content-length", "0")], Empty, GET_KA, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n", Framing::Length(0), false),
            (404, &[], Empty, GET_KA, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n", Framing::Length(0), false),
            (200, &[("content-length", "42")], Empty, HEAD_KA, "HTTP/1.1 200 OK\r\ncontent-length: 42\r\n", Framing::Length(0), false),
            (200, &[], Empty, HEAD_KA, "HTTP/1.1 200 OK\r\n", Framing::Length(0), false),
            (200, &[], Unknown, HEAD_KA, "HTTP/1.1 200 OK\r\n", Framing::Length(0), false),
            // 204 and 304: no body, no length.
            (204, &[], Known(0), GET_KA, "HTTP/1.1 204 No Content\r\n", Framing::Length(0), false),
            (304, &[("etag", "\"x\"")], Unknown, GET_KA, "HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n", Framing::Length(0), false),
            // Closing.
            (200, &[], Known(1), Answering { head: false, keep_alive: false, version: Http11 },
             "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n", Framing::Length(1), true),
            (400, &[("connection", "close"), ("content-length", "3")], Known(3), GET_KA,
             "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 3\r\n", Framing::Length(3), true),
            (400, &[("connection", "close")], Known(3), Answering { head: false, keep_alive: false, version: Http11 },
             "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 3\r\n", Framing::Length(3), true),
            // Repeated fields are repeated lines; the application's date stays.
            (200, &[("set-cookie", "a=1"), ("set-cookie", "b=2"), ("date", "x")], Known(0), GET_KA,
             "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nset-cookie: b=2\r\ndate: x\r\ncontent-length: 0\r\n\r\n", Framing::Length(0), false),
            // HTTP/1.0: no chunked coding, the close ends an unknown length
            // (RFC 9112 §6.3 item 8); a kept connection says so.
            (200, &[], Unknown, GET_10, "HTTP/1.1 200 OK\r\nconnection: close\r\n", Framing::Close, true),
            (200, &[], Unknown, GET_10_KA, "HTTP/1.1 200 OK\r\nconnection: close\r\n", Framing::Close, true),
            (200, &[], Known(2), GET_10, "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n", Framing::Length(2), true),
            (200, &[], Known(2), GET_10_KA, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n", Framing::Length(2), false),
            (200, &[("connection", "x")], Known(2), GET_10_KA,
             "HTTP/1.1 200 OK\r\nconnection: x, keep-alive\r\ncontent-length: 2\r\n", Framing::Length(2), false),
            // A status without a canonical reason.
            (599, &[], Known(0), GET_KA, "HTTP/1.1 599 <none>\r\ncontent-length: 0\r\n", Framing::Length(0), false),
        ] {
            let (text, encoded) = head(status, fields, body, request);
            let expected = if expected.ends_with("\r\n\r\n") {
                expected.to_string()
            } else {
                format!("{expected}{DATE_LINE}")
            };
            assert_eq!(text, expected, "{status} {fields:?} {body:?}");
            assert_eq!(encoded, Encoded { framing, close }, "{status} {fields:?} {body:?}");
        }
    }

    #[test]
    fn the_last_chunk_carries_the_trailers_that_may_be_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.append("grpc-status", HeaderValue::from_static("0"));
        trailers.append("x-checksum", HeaderValue::from_static("a"));
        trailers.append("x-checksum", HeaderValue::from_static("b"));
        // RFC 9110 §6.5.1: framing fields are never trailers.
        trailers.append("content-length", HeaderValue::from_static("5"));
        let mut dst = Vec::new();
        encode_last_chunk(Some(&trailers), &mut dst);
        assert_eq!(
            dst,
            b"0\r\ngrpc-status: 0\r\nx-checksum: a\r\nx-checksum: b\r\n\r\n"
        );
        dst.clear();
        encode_last_chunk(None, &mut dst);
        assert_eq!(dst, b"0\r\n\r\n");
    }

    #[test]
    fn chunk_heads_are_upper_case_hex() {
        for (len, expected) in [
            (0, "0\r\n"),
            (1, "1\r\n"),
            (255, "FF\r\n"),
            (65536, "10000\r\n"),
        ] {
            let mut dst = Vec::new();
            chunk_head(len, &mut dst);
            assert_eq!(dst, expected.as_bytes());
        }
    }

    #[test]
    fn dates_are_imf_fixdate() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(&http_date(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn early_hints_carry_their_fields_and_no_framing() {
        let fields = crate::proto::syntax::header_map(&[
            ("link", "</a.css>; rel=preload; as=style"),
            ("link", "</b.js>; rel=preload; as=script"),
            ("content-length", "5"),
            ("x-note", "1"),
        ]);
        let mut out = Vec::new();
        encode_early_hints(&fields, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 103 Early Hints\r\n\
             link: </a.css>; rel=preload; as=style\r\n\
             link: </b.js>; rel=preload; as=script\r\n\
             x-note: 1\r\n\r\n"
        );
    }
}
