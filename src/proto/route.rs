//! The route table: which endpoint serves a request.
//!
//! What it does: holds the URL prefixes an application declared for each of
//! its endpoints (static mounts, WebSocket, stream, WSGI) and, from a
//! request's head, decides which one serves it, or that none does. The
//! runtime asks for every request and hands it to the endpoint the decision
//! names, so a new kind of endpoint is a new `Target` here and a new
//! endpoint, with no change to connection code.
//!
//! The rules (the application object's specification, "Routing"):
//! - a prefix covers the paths equal to it or continuing it with "/"; the
//!   empty prefix covers every path, "*" and CONNECT's "" included;
//! - the longest covering prefix wins; between equal prefixes the order is
//!   static, WebSocket, stream, WSGI;
//! - a WebSocket handshake (HTTP/1.1 `Upgrade: websocket`, RFC 6455 §4.1;
//!   HTTP/2 extended CONNECT with `:protocol` websocket, RFC 8441 §4) is
//!   served only by a WebSocket endpoint; without one covering its path it is
//!   refused with 404, never handed to another endpoint;
//! - every other request is served by the static, stream or WSGI endpoint
//!   covering its path; with none, 404.
//!
//! What it does not do: look at a body, or check the head (that is
//! `proto::request` and `proto::h1`, before routing); `Upgrade: h2c` is the
//! connection's, decided before a request is routed (RFC 7540 §3.2).

use http::header::UPGRADE;
use http::HeaderMap;

use crate::proto::syntax::trim_ows;

/// The kinds of endpoint an application declares prefixes for, in the order
/// that decides between equal prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    /// A static mount, by its index among the application's mounts.
    Static(usize),
    /// A WebSocket handler, by its index among the application's.
    WebSocket(usize),
    /// The streaming HTTP endpoint.
    Stream,
    /// The WSGI application (PEP 3333, WSGI 1.1).
    Wsgi,
}

impl Target {
    /// The rank that decides between equal prefixes.
    fn rank(self) -> u8 {
        match self {
            Target::Static(_) => 0,
            Target::WebSocket(_) => 1,
            Target::Stream => 2,
            Target::Wsgi => 3,
        }
    }
}

/// What a request is, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// An ordinary request: answered with a response.
    Plain,
    /// A WebSocket opening handshake.
    WebSocket,
}

impl Exchange {
    /// An HTTP/1.1 request is a WebSocket handshake when its `Upgrade` lists
    /// "websocket" (RFC 6455 §4.2.1, compared without regard to case, RFC
    /// 9110 §7.8). Whether the handshake is well formed is for the endpoint
    /// that serves it to check, not for routing.
    pub(crate) fn of_http1(headers: &HeaderMap) -> Exchange {
        let websocket = headers.get_all(UPGRADE).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|token| trim_ows(token).eq_ignore_ascii_case(b"websocket"))
        });
        if websocket {
            Exchange::WebSocket
        } else {
            Exchange::Plain
        }
    }

    /// An HTTP/2 request is a WebSocket handshake when it is an extended
    /// CONNECT whose `:protocol` is "websocket" (RFC 8441 §4).
    pub(crate) fn of_h2_protocol(protocol: Option<&str>) -> Exchange {
        match protocol {
            Some(p) if p.eq_ignore_ascii_case("websocket") => Exchange::WebSocket,
            _ => Exchange::Plain,
        }
    }
}

/// What routing decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Serve(Target),
    /// No endpoint covers the path: 404.
    NotFound,
    /// A WebSocket handshake to a path no WebSocket endpoint covers: 404.
    NoWebSocket,
}

/// One declared prefix.
#[derive(Clone, Debug)]
struct Row {
    /// Without a trailing "/"; "" for the root.
    prefix: Box<str>,
    target: Target,
}

/// The application's routes.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteTable {
    /// Longest prefix first, then by `Target::rank`: the first row that
    /// covers a path is the one that serves it.
    rows: Vec<Row>,
}

/// A prefix the table cannot hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadPrefix(pub(crate) String);

impl std::fmt::Display for BadPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bad URL prefix {:?}: a prefix starts with \"/\" and holds no \"?\", \"#\" or \"//\"",
            self.0
        )
    }
}

impl RouteTable {
    /// A table of `(prefix, target)` declarations. A prefix is "/" or starts
    /// with "/"; one trailing "/" is ignored ("/static/" is "/static"). The
    /// same prefix declared twice for one target counts once.
    pub(crate) fn new<'a>(
        declared: impl IntoIterator<Item = (&'a str, Target)>,
    ) -> Result<RouteTable, BadPrefix> {
        let mut rows = Vec::new();
        for (prefix, target) in declared {
            let normal = normalize(prefix).ok_or_else(|| BadPrefix(prefix.to_owned()))?;
            if !rows
                .iter()
                .any(|r: &Row| *r.prefix == *normal && r.target == target)
            {
                rows.push(Row {
                    prefix: normal.into(),
                    target,
                });
            }
        }
        rows.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.target.rank().cmp(&b.target.rank()))
                .then(a.target.cmp(&b.target))
        });
        Ok(RouteTable { rows })
    }

    /// The decision for a request to `path` (still percent-encoded, as
    /// declared prefixes are compared with it byte for byte).
    pub(crate) fn route(&self, exchange: Exchange, path: &str) -> Decision {
        let mut covering = self.rows.iter().filter(|r| covers(&r.prefix, path));
        match exchange {
            Exchange::WebSocket => covering
                .find(|r| matches!(r.target, Target::WebSocket(_)))
                .map_or(Decision::NoWebSocket, |r| Decision::Serve(r.target)),
            Exchange::Plain => covering
                .find(|r| !matches!(r.target, Target::WebSocket(_)))
                .map_or(Decision::NotFound, |r| Decision::Serve(r.target)),
        }
    }
}

/// "/a/b/" -> "/a/b", "/" -> "", "" -> "" ; None for what is not a path prefix.
fn normalize(prefix: &str) -> Option<&str> {
    if prefix.is_empty() {
        return Some("");
    }
    if !prefix.starts_with('/') || prefix.contains(['?', '#']) || prefix.contains("//") {
        return None;
    }
    Some(prefix.strip_suffix('/').unwrap_or(prefix))
}

/// Whether `prefix` covers `path`: equal, or followed by "/".
fn covers(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || match path.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, http::HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn websocket_handshakes_are_recognised() {
        // (Upgrade value, is a handshake)
        let cases: &[(&[u8], bool)] = &[
            (b"websocket", true),
            (b"WebSocket", true),
            (b"h2c, websocket", true),
            (b" websocket ", true),
            (b"h2c", false),
            (b"TLS/1.2", false),
            (b"websocketx", false),
        ];
        for (value, expected) in cases {
            let got = Exchange::of_http1(&upgrade(value)) == Exchange::WebSocket;
            assert_eq!(got, *expected, "{}", String::from_utf8_lossy(value));
        }
        assert_eq!(Exchange::of_http1(&HeaderMap::new()), Exchange::Plain);
        assert_eq!(
            Exchange::of_h2_protocol(Some("websocket")),
            Exchange::WebSocket
        );
        assert_eq!(Exchange::of_h2_protocol(Some("other")), Exchange::Plain);
        assert_eq!(Exchange::of_h2_protocol(None), Exchange::Plain);
    }

    #[test]
    fn the_longest_prefix_wins_then_the_order_of_kinds() {
        use Decision::*;
        use Exchange::{Plain, WebSocket as Ws};
        use Target::*;
        let table = RouteTable::new([
            ("/", Wsgi),
            ("/static/", Static(0)),
            ("/static/raw", Wsgi),
            ("/media", Static(1)),
            ("/media", Wsgi),
            ("/chat", WebSocket(0)),
            ("/chat/admin", WebSocket(1)),
            ("/chat", Wsgi),
            ("/rpc", Stream),
            ("/rpc", Wsgi),
            ("/", Static(2)),
        ])
        .unwrap();
        // (exchange, path, decision)
        let cases: &[(Exchange, &str, Decision)] = &[
            // Equal prefixes: static first.
            (Plain, "/", Serve(Static(2))),
            (Plain, "/index.html", Serve(Static(2))),
            (Plain, "/static", Serve(Static(0))),
            (Plain, "/static/app.css", Serve(Static(0))),
            // A longer prefix wins over the order of kinds.
            (Plain, "/static/raw", Serve(Wsgi)),
            (Plain, "/static/raw/x", Serve(Wsgi)),
            // Prefixes match whole segments only.
            (Plain, "/static/rawx", Serve(Static(0))),
            (Plain, "/staticx", Serve(Static(2))),
            (Plain, "/media/a.png", Serve(Static(1))),
            // Plain requests never go to a WebSocket endpoint ...
            (Plain, "/chat", Serve(Wsgi)),
            (Plain, "/chat/room", Serve(Wsgi)),
            // ... stream before WSGI ...
            (Plain, "/rpc/Echo", Serve(Stream)),
            // ... and handshakes only to one.
            (Ws, "/chat", Serve(WebSocket(0))),
            (Ws, "/chat/room", Serve(WebSocket(0))),
            (Ws, "/chat/admin/x", Serve(WebSocket(1))),
            (Ws, "/", NoWebSocket),
            (Ws, "/chatx", NoWebSocket),
            (Ws, "/static/app.css", NoWebSocket),
            (Ws, "/rpc", NoWebSocket),
            // The root prefix covers "*" and CONNECT's "".
            (Plain, "*", Serve(Static(2))),
            (Plain, "", Serve(Static(2))),
        ];
        for (i, (exchange, path, expected)) in cases.iter().enumerate() {
            assert_eq!(
                table.route(*exchange, path),
                *expected,
                "case {i}: {exchange:?} {path}"
            );
        }
    }

    #[test]
    fn paths_no_prefix_covers_are_not_found() {
        use Target::*;
        let table = RouteTable::new([("/api", Wsgi), ("/static", Static(0))]).unwrap();
        // (path, decision)
        let cases: &[(&str, Decision)] = &[
            ("/api", Decision::Serve(Wsgi)),
            ("/api/v1", Decision::Serve(Wsgi)),
            ("/", Decision::NotFound),
            ("/apix", Decision::NotFound),
            ("*", Decision::NotFound),
            ("", Decision::NotFound),
        ];
        for (path, expected) in cases {
            assert_eq!(table.route(Exchange::Plain, path), *expected, "{path}");
        }
        let empty = RouteTable::default();
        assert_eq!(empty.route(Exchange::Plain, "/"), Decision::NotFound);
        assert_eq!(empty.route(Exchange::WebSocket, "/"), Decision::NoWebSocket);
    }

    #[test]
    fn prefixes_are_checked_and_normalized() {
        // (declared, normalized or None when refused)
        let cases: &[(&str, Option<&str>)] = &[
            ("", Some("")),
            ("/", Some("")),
            ("/static", Some("/static")),
            ("/static/", Some("/static")),
            ("/a/b/", Some("/a/b")),
            ("static", None),
            ("/a?b", None),
            ("/a#b", None),
            ("/a//b", None),
            ("//", None),
        ];
        for (declared, expected) in cases {
            let table = RouteTable::new([(*declared, Target::Wsgi)]);
            match expected {
                Some(normal) => {
                    let rows = table.unwrap().rows;
                    assert_eq!(rows.len(), 1, "{declared}");
                    assert_eq!(&*rows[0].prefix, *normal, "{declared}");
                }
                None => assert_eq!(table.unwrap_err(), BadPrefix((*declared).into())),
            }
        }
        // The same declaration twice is one row.
        let table = RouteTable::new([("/a", Target::Wsgi), ("/a/", Target::Wsgi)]).unwrap();
        assert_eq!(table.rows.len(), 1);
    }
}
