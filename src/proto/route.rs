//! The route table: which kind of endpoint serves a request.
//!
//! What it does: from a request's head (method, path, the protocol an
//! `Upgrade` asks for) decides the `EndpointKind` that serves it. The runtime
//! asks it for every request and hands the request to the endpoint registered
//! for that kind, so a new kind of endpoint (static files, WebSocket, a
//! streaming API) is a new row here and a new endpoint, with no change to
//! connection code.
//!
//! One route today: everything goes to the WSGI application, upgrades
//! included (an `Upgrade` the server does not act on is the application's to
//! answer or ignore, RFC 9110 §7.8).
//!
//! What it does not do: look at a body, or check the head (that is
//! `proto::request` and `proto::h1`, before routing); `Upgrade: h2c` is the
//! connection's, decided before a request is routed (RFC 7540 §3.2).

use http::header::UPGRADE;
use http::{HeaderMap, Method};

use crate::proto::syntax::trim_ows;

/// A kind of endpoint a request can be routed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointKind {
    /// The WSGI application (PEP 3333, WSGI 1.1).
    Wsgi,
}

/// What routing looks at: the request's head, nothing else.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteHead<'a> {
    pub(crate) method: &'a Method,
    /// The target's path, still percent-encoded ("*" for `OPTIONS *`, "" for
    /// CONNECT's authority form).
    pub(crate) path: &'a str,
    /// The header fields: an `Upgrade` is looked up only by a row that asks.
    pub(crate) headers: &'a HeaderMap,
}

/// One row of the table: a request matches when each condition set matches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Route {
    /// Only this method (`None`: any).
    pub(crate) method: Option<&'static str>,
    /// Only paths that are this prefix or continue it with "/" (`""`: any
    /// path, "*" and CONNECT's "" included).
    pub(crate) prefix: &'static str,
    /// Only requests whose `Upgrade` asks for this protocol, compared without
    /// regard to case (RFC 9110 §7.8) (`None`: with or without `Upgrade`).
    pub(crate) upgrade: Option<&'static str>,
    pub(crate) endpoint: EndpointKind,
}

// ---------------------------------------------------------------------------
// RULES: the whole route table. The first row that matches wins.
//
//   any method, any path, with or without Upgrade  -> Wsgi
// ---------------------------------------------------------------------------

/// The server's route table.
pub(crate) const ROUTES: &[Route] = &[Route {
    method: None,
    prefix: "",
    upgrade: None,
    endpoint: EndpointKind::Wsgi,
}];

/// The endpoint kind that serves a request with this head.
#[inline]
pub(crate) fn route(head: &RouteHead<'_>) -> EndpointKind {
    route_in(ROUTES, head)
}

/// The first row of `table` that matches; WSGI when none does.
pub(crate) fn route_in(table: &[Route], head: &RouteHead<'_>) -> EndpointKind {
    table
        .iter()
        .find(|r| r.matches(head))
        .map_or(EndpointKind::Wsgi, |r| r.endpoint)
}

impl Route {
    pub(crate) fn matches(&self, head: &RouteHead<'_>) -> bool {
        let method = self.method.map_or(true, |m| m == head.method.as_str());
        // The empty prefix (any path) is decided without looking at the path:
        // the catch-all row is asked for every request.
        let path = self.prefix.is_empty()
            || match head.path.strip_prefix(self.prefix) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            };
        let upgrade = match self.upgrade {
            None => true,
            // A list of protocols, RFC 9110 §7.8: any of them.
            Some(want) => head.headers.get(UPGRADE).is_some_and(|got| {
                got.as_bytes()
                    .split(|&b| b == b',')
                    .any(|token| trim_ows(token).eq_ignore_ascii_case(want.as_bytes()))
            }),
        };
        method && path && upgrade
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(upgrade: Option<&[u8]>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = upgrade {
            headers.insert(UPGRADE, http::HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    #[test]
    fn every_request_goes_to_wsgi() {
        // (method, path, upgrade, expected)
        let cases: &[(Method, &str, Option<&[u8]>, EndpointKind)] = &[
            (Method::GET, "/", None, EndpointKind::Wsgi),
            (Method::HEAD, "/index.html", None, EndpointKind::Wsgi),
            (Method::POST, "/api/items", None, EndpointKind::Wsgi),
            (Method::PUT, "/static/app.js", None, EndpointKind::Wsgi),
            (Method::DELETE, "/a%2Fb", None, EndpointKind::Wsgi),
            (Method::OPTIONS, "*", None, EndpointKind::Wsgi),
            (Method::CONNECT, "", None, EndpointKind::Wsgi),
            (
                Method::from_bytes(b"PURGE").unwrap(),
                "/cache",
                None,
                EndpointKind::Wsgi,
            ),
            (Method::GET, "/ws", Some(b"websocket"), EndpointKind::Wsgi),
            (Method::GET, "/", Some(b"TLS/1.2"), EndpointKind::Wsgi),
        ];
        for (i, (method, path, upgrade, expected)) in cases.iter().enumerate() {
            let head = RouteHead {
                method,
                path,
                headers: &fields(*upgrade),
            };
            assert_eq!(route(&head), *expected, "case {i}: {method} {path}");
        }
    }

    #[test]
    fn a_row_matches_method_path_prefix_and_upgrade() {
        let row = |method, prefix, upgrade| Route {
            method,
            prefix,
            upgrade,
            endpoint: EndpointKind::Wsgi,
        };
        // (row, method, path, upgrade, matches)
        type Case<'a> = (Route, Method, &'a str, Option<&'a [u8]>, bool);
        let cases: &[Case] = &[
            (row(None, "", None), Method::GET, "/", None, true),
            (row(None, "", None), Method::OPTIONS, "*", None, true),
            (row(None, "", None), Method::CONNECT, "", None, true),
            (row(Some("GET"), "", None), Method::GET, "/x", None, true),
            (row(Some("GET"), "", None), Method::POST, "/x", None, false),
            // A prefix matches at a segment boundary only.
            (
                row(None, "/static", None),
                Method::GET,
                "/static",
                None,
                true,
            ),
            (
                row(None, "/static", None),
                Method::GET,
                "/static/a.css",
                None,
                true,
            ),
            (
                row(None, "/static", None),
                Method::GET,
                "/staticfoo",
                None,
                false,
            ),
            (row(None, "/static", None), Method::GET, "/", None, false),
            (
                row(None, "/static", None),
                Method::OPTIONS,
                "*",
                None,
                false,
            ),
            // Upgrade tokens compare without regard to case.
            (
                row(None, "", Some("websocket")),
                Method::GET,
                "/ws",
                Some(b"WebSocket"),
                true,
            ),
            (
                row(None, "", Some("websocket")),
                Method::GET,
                "/ws",
                Some(b"h2c"),
                false,
            ),
            (
                row(None, "", Some("websocket")),
                Method::GET,
                "/ws",
                None,
                false,
            ),
            (
                row(None, "", Some("websocket")),
                Method::GET,
                "/ws",
                Some(b"h2c, websocket"),
                true,
            ),
            (
                row(None, "", None),
                Method::GET,
                "/ws",
                Some(b"websocket"),
                true,
            ),
        ];
        for (i, (route, method, path, upgrade, matches)) in cases.iter().enumerate() {
            let head = RouteHead {
                method,
                path,
                headers: &fields(*upgrade),
            };
            assert_eq!(
                route.matches(&head),
                *matches,
                "case {i}: {route:?} {method} {path}"
            );
        }
    }
}
