//! Early hints: which requests are announced the application's preloads,
//! and what a preload names.
//!
//! The rules (RFC 8297; RFC 9110 §15.2):
//! - `103 Early Hints` is an interim response; HTTP/1.0 clients get none
//!   (RFC 9110 §15.2: a server must not send a 1xx response to an HTTP/1.0
//!   client).
//! - The application's preload links (`Link` field values) are announced
//!   before a response that will be a page: a *navigation* routed to the
//!   WSGI application. A navigation is a `GET` whose `Sec-Fetch-Dest`
//!   (Fetch Metadata) is `document`, `iframe` or `frame`; without
//!   `Sec-Fetch-Dest` (an older browser, a client that is not a browser),
//!   a `GET` whose `Accept` lists `text/html` with a non-zero weight. A
//!   present `Sec-Fetch-Dest` decides alone: `fetch()` sends `empty`, an
//!   image `image`, whatever its `Accept`. `*/*` is not `text/html`: the
//!   hints are for browsers loading a page, not for every client.
//! - A preload is pushed over HTTP/2 (RFC 9113 §8.4) only when its target
//!   is a path on this origin (`/app.css`, not `//cdn/x` nor
//!   `https://...`): a server may push only what it is authoritative for.
//!
//! What it does not do: send anything, or route (the route table says
//! which endpoint serves a path: `route`).

use http::header::{HeaderName, ACCEPT};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method};

use crate::proto::request::HttpVersion;
use crate::proto::route::Target;
use crate::proto::syntax::trim_ows;

/// `Sec-Fetch-Dest` (Fetch Metadata Request Headers, W3C).
const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");

/// Whether a request is announced the application's preload links before
/// its response (see the module's rules).
pub(crate) fn gets_preload(
    method: &Method,
    version: HttpVersion,
    headers: &HeaderMap,
    target: Target,
) -> bool {
    version != HttpVersion::Http10
        && target == Target::Wsgi
        && method == Method::GET
        && is_navigation(headers)
}

/// A browser loading a page (see the module's rules).
fn is_navigation(headers: &HeaderMap) -> bool {
    if let Some(dest) = headers.get(SEC_FETCH_DEST) {
        let dest = trim_ows(dest.as_bytes());
        return [&b"document"[..], b"iframe", b"frame"]
            .iter()
            .any(|d| dest.eq_ignore_ascii_case(d));
    }
    headers
        .get_all(ACCEPT)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(accepts_html)
}

/// One element of `Accept` (RFC 9110 §12.5.1): `text/html`, its weight not
/// zero.
fn accepts_html(element: &[u8]) -> bool {
    let mut parts = element.split(|b| *b == b';');
    let range = trim_ows(parts.next().unwrap_or_default());
    if !range.eq_ignore_ascii_case(b"text/html") {
        return false;
    }
    for param in parts {
        let param = trim_ows(param);
        if param.len() >= 2 && param[..2].eq_ignore_ascii_case(b"q=") {
            // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
            let weight = trim_ows(&param[2..]);
            return !weight.iter().all(|b| *b == b'0' || *b == b'.');
        }
    }
    true
}

/// The path a preload `Link` value names, when it is one on this origin:
/// `</app.css>; rel=preload; as=style` names `/app.css`. `None` for another
/// origin (`<https://cdn/x>`, `<//cdn/x>`), a relative reference, or a
/// value that is not `<URI-reference>` first (RFC 8288 §3).
pub(crate) fn preload_path(link: &str) -> Option<PathAndQuery> {
    let rest = link.trim_start().strip_prefix('<')?;
    let target = &rest[..rest.find('>')?];
    if !target.starts_with('/') || target.starts_with("//") {
        return None;
    }
    // A fragment is the client's, never sent.
    let target = target.split('#').next().unwrap_or_default();
    target.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::syntax::header_map;

    /// (method, version, fields, target, announced)
    type Case<'a> = (
        &'a Method,
        HttpVersion,
        &'a [(&'a str, &'a str)],
        Target,
        bool,
    );

    #[test]
    fn which_requests_get_the_preload_links() {
        use HttpVersion::{Http10, Http11, Http2};
        let get = Method::GET;
        let html = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
        let cases: &[Case<'_>] = &[
            (&get, Http11, &html, Target::Wsgi, true),
            (&get, Http2, &html, Target::Wsgi, true),
            // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
            (&get, Http10, &html, Target::Wsgi, false),
            (&Method::HEAD, Http11, &html, Target::Wsgi, false),
            (&Method::POST, Http11, &html, Target::Wsgi, false),
            // Only pages: not static files, nor other endpoints.
            (&get, Http11, &html, Target::Static(0), false),
            (&get, Http11, &html, Target::Stream, false),
            (&get, Http2, &[("accept", "TEXT/HTML")], Target::Wsgi, true),
            (
                &get,
                Http11,
                &[("accept", "text/html;level=1")],
                Target::Wsgi,
                true,
            ),
            (
                &get,
                Http11,
                &[("accept", "text/html; q=0.5")],
                Target::Wsgi,
                true,
            ),
            (
                &get,
                Http11,
                &[("accept", "text/html;q=0")],
                Target::Wsgi,
                false,
            ),
            (
                &get,
                Http11,
                &[("accept", "text/html; Q=0.000")],
                Target::Wsgi,
                false,
            ),
            (&get, Http11, &[("accept", "*/*")], Target::Wsgi, false),
            (&get, Http11, &[("accept", "text/*")], Target::Wsgi, false),
            (
                &get,
                Http11,
                &[("accept", "application/json")],
                Target::Wsgi,
                false,
            ),
            (
                &get,
                Http11,
                &[("accept", "text/htmlx")],
                Target::Wsgi,
                false,
            ),
            (
                &get,
                Http11,
                &[("accept", "application/json"), ("accept", "text/html")],
                Target::Wsgi,
                true,
            ),
            (&get, Http11, &[], Target::Wsgi, false),
            // Sec-Fetch-Dest decides when present.
            (
                &get,
                Http11,
                &[("sec-fetch-dest", "document")],
                Target::Wsgi,
                true,
            ),
            (
                &get,
                Http2,
                &[("sec-fetch-dest", "iframe")],
                Target::Wsgi,
                true,
            ),
            (
                &get,
                Http11,
                &[("sec-fetch-dest", "frame")],
                Target::Wsgi,
                true,
            ),
            (
                &get,
                Http11,
                &[("sec-fetch-dest", "empty"), ("accept", "text/html")],
                Target::Wsgi,
                false,
            ),
            (
                &get,
                Http11,
                &[("sec-fetch-dest", "image")],
                Target::Wsgi,
                false,
            ),
            (
                &get,
                Http10,
                &[("sec-fetch-dest", "document")],
                Target::Wsgi,
                false,
            ),
        ];
        for (method, version, fields, target, announced) in cases {
            let headers = header_map(fields);
            assert_eq!(
                gets_preload(method, *version, &headers, *target),
                *announced,
                "{method} {version:?} {fields:?} {target:?}"
            );
        }
    }

    #[test]
    fn a_preload_on_this_origin_names_its_path() {
        let cases: &[(&str, Option<&str>)] = &[
            ("</app.css>; rel=preload; as=style", Some("/app.css")),
            (" </a/b.js?v=3>;rel=preload;as=script", Some("/a/b.js?v=3")),
            ("</font.woff2#x>; rel=preload; as=font", Some("/font.woff2")),
            ("<https://cdn.example/app.css>; rel=preload", None),
            ("<//cdn.example/app.css>; rel=preload", None),
            ("<app.css>; rel=preload", None),
            ("/app.css; rel=preload", None),
            ("</app.css; rel=preload", None),
            ("</a b>; rel=preload", None),
        ];
        for (link, path) in cases {
            let found = preload_path(link);
            assert_eq!(found.as_ref().map(|p| p.as_str()), *path, "{link}");
        }
    }
}
