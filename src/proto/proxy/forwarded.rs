//! The client, scheme and host named by a trusted proxy's forwarding fields.
//!
//! RULES: everything that decides what a forwarding field changes lives
//! here; the caller has already decided that the peer is a trusted proxy
//! (`trust`), and applies the answer (`proto::wsgi::environ`, the runtime's
//! WebSocket opening and access log).
//!
//! Theory of operation. A request carries the de-facto `X-Forwarded-For`,
//! `-Proto`, `-Host`, `-Port`, or `Forwarded` (RFC 7239). With
//! `X-Forwarded-For` present, the `X-Forwarded-*` fields are read and
//! `Forwarded` is not; otherwise `Forwarded` is. A proxy passes on the
//! fields it does not set itself, so whichever set a proxy does not write
//! is the client's to forge: nginx, HAProxy, Traefik, Caddy and the cloud
//! load balancers write `X-Forwarded-For`, and a `Forwarded` field a client
//! sends through them must not outrank it.
//!
//! - The client: each proxy appends the address it received the request
//!   from, so the list is read from the right, skipping trusted addresses
//!   (the proxies themselves); the first untrusted entry is the client.
//!   Entries left of it were written by the client and are not believed
//!   (uvicorn's rule since 0.30; taking the leftmost entry, as gunicorn
//!   does, lets any client choose its address). When every entry is
//!   trusted, the leftmost is the client. An entry that is not an IP
//!   address (`unknown`, an obfuscated `_name`, garbage) ends the walk
//!   with no client: the peer stays what the socket says. Only the right-
//!   most `MAX_HOPS` entries are read.
//! - `X-Forwarded-Proto`, `-Host`, `-Port`: the right-most value, the one
//!   the nearest proxy set. `Forwarded`'s `proto` and `host`: those of the
//!   element that named the client (RFC 7239 §5.3-5.4: the request as that
//!   proxy received it), else of the nearest element towards the server
//!   that has them.
//! - Schemes: `http` and `https` (`ws` and `wss` taken as those); hosts: a
//!   `host[:port]` authority without userinfo; ports: 1-65535. A value
//!   that is none of these changes nothing, and a `Forwarded` field that
//!   does not parse changes nothing at all: a proxy's mistake is never an
//!   error response.
//!
//! What it does not do: decide trust for the peer itself, or touch the
//! header map (the fields stay visible to the application as
//! `HTTP_X_FORWARDED_*`).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use http::header::FORWARDED;
use http::uri::Authority;
use http::HeaderMap;

use super::trust::TrustedPeers;

/// The most list entries read from the right. A real chain has a few
/// proxies; the bound keeps what a hostile list costs small.
pub(crate) const MAX_HOPS: usize = 32;

/// The scheme a proxy says the client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http`, `https`, and the WebSocket schemes that map to them (RFC
    /// 6455 §3), in any case; anything else is not a scheme we show.
    fn parse(text: &str) -> Option<Scheme> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("http") || text.eq_ignore_ascii_case("ws") {
            Some(Scheme::Http)
        } else if text.eq_ignore_ascii_case("https") || text.eq_ignore_ascii_case("wss") {
            Some(Scheme::Https)
        } else {
            None
        }
    }
}

/// What trusted forwarding fields change about a request; `None` fields
/// change nothing.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Forwarded {
    /// The client; port 0 when the proxy gave none (as uvicorn shows it).
    pub(crate) client: Option<SocketAddr>,
    pub(crate) scheme: Option<Scheme>,
    /// The host the client asked for, perhaps with a port.
    pub(crate) host: Option<Authority>,
    /// The port the client connected to (`X-Forwarded-Port`).
    pub(crate) port: Option<u16>,
}

impl Forwarded {
    fn is_empty(&self) -> bool {
        self == &Forwarded::default()
    }
}

/// Whether a head carries any forwarding field: one pass over its names,
/// nothing parsed (most requests have none).
pub(crate) fn has_forwarding_fields(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name == FORWARDED || name.as_str().starts_with("x-forwarded-"))
}

/// What the forwarding fields of a request from a trusted proxy say; `None`
/// when they say nothing usable.
pub(crate) fn resolve(headers: &HeaderMap, trusted: &TrustedPeers) -> Option<Forwarded> {
    if !has_forwarding_fields(headers) {
        return None;
    }
    let forwarded =
        match headers.contains_key("x-forwarded-for") || !headers.contains_key(FORWARDED) {
            true => from_x_forwarded(headers, trusted),
            false => from_forwarded(headers, trusted)?,
        };
    (!forwarded.is_empty()).then_some(forwarded)
}

/// A list entry naming a node (RFC 7239 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Ip(SocketAddr),
    /// `unknown`, an obfuscated identifier, or not a node at all.
    Unknown,
}

/// `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]`, `[2001:db8::1]:80`, a bare
/// IPv6 address (how `X-Forwarded-For` writes them); an obfuscated port
/// (`_p`) counts as none.
fn node(text: &str) -> Node {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => match port.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Node::Unknown,
            },
            None => return Node::Unknown,
        }
    } else if text.bytes().filter(|b| *b == b':').count() == 1 {
        let (host, port) = text.split_once(':').expect("one colon");
        (host, Some(port))
    } else {
        (text, None)
    };
    let Ok(ip) = host.parse::<IpAddr>() else {
        return Node::Unknown;
    };
    // IPv4 in brackets is not a node; IPv6 needs them once a port follows.
    if text.starts_with('[') != ip.is_ipv6() && !(ip.is_ipv6() && port.is_none()) {
        return Node::Unknown;
    }
    let port = match port {
        None => 0,
        Some(p) if p.starts_with('_') => 0,
        Some(p) => match parse_port(p) {
            Some(p) => p,
            None => return Node::Unknown,
        },
    };
    Node::Ip(SocketAddr::new(ip.to_canonical(), port))
}

/// 1-65535, digits only.
fn parse_port(text: &str) -> Option<u16> {
    let text = text.trim();
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p != 0)
}

/// A `host[:port]` authority, without userinfo, its port (if any) a number.
fn host(text: &str) -> Option<Authority> {
    let text = text.trim();
    if text.is_empty() || text.contains('@') {
        return None;
    }
    let authority = Authority::try_from(text).ok()?;
    if authority.host().is_empty() {
        return None;
    }
    // The text after the host (`Authority` reads a port that is not a
    // number as none).
    let after = match text.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.1,
        None => text.find(':').map_or("", |colon| &text[colon..]),
    };
    match after {
        "" => Some(authority),
        _ => after
            .strip_prefix(':')
            .and_then(parse_port)
            .map(|_| authority),
    }
}

/// The walk from the right: the index of the entry that is the client (or
/// that ended the walk), and the client if it is an address. `entries`
/// yields the list from the right.
fn walk(
    mut entries: impl Iterator<Item = (usize, Node)>,
    trusted: &TrustedPeers,
) -> Option<(usize, Option<SocketAddr>)> {
    let mut leftmost = None;
    for _ in 0..MAX_HOPS {
        match entries.next() {
            None => return leftmost,
            Some((at, Node::Ip(addr))) if trusted.trusts(addr.ip()) => {
                leftmost = Some((at, Some(addr)))
            }
            Some((at, Node::Ip(addr))) => return Some((at, Some(addr))),
            Some((at, Node::Unknown)) => return Some((at, None)),
        }
    }
    // More trusted hops than are read: the client is not known.
    match entries.next() {
        None => leftmost,
        Some(_) => None,
    }
}

/// The values of every field `name` as one list (RFC 9110 §5.3), from the
/// right; `None` when a value is not visible ASCII.
fn list_from_right<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Option<impl Iterator<Item = &'h str> + 'h> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<_>>()?;
    Some(
        values
            .into_iter()
            .rev()
            .flat_map(|v| v.rsplit(','))
            .map(str::trim)
            .filter(|item| !item.is_empty()),
    )
}

fn from_x_forwarded(headers: &HeaderMap, trusted: &TrustedPeers) -> Forwarded {
    let rightmost = |name| list_from_right(headers, name).and_then(|mut list| list.next());
    let client = list_from_right(headers, "x-forwarded-for")
        .and_then(|list| walk(list.map(node).enumerate(), trusted))
        .and_then(|(_, client)| client);
    Forwarded {
        client,
        scheme: rightmost("x-forwarded-proto").and_then(Scheme::parse),
        host: rightmost("x-forwarded-host").and_then(host),
        port: rightmost("x-forwarded-port").and_then(parse_port),
    }
}

/// One `forwarded-element` (RFC 7239 §4): the parameters read here.
#[derive(Default, Debug)]
struct Element<'a> {
    for_: Option<Cow<'a, str>>,
    proto: Option<Cow<'a, str>>,
    host: Option<Cow<'a, str>>,
}

fn from_forwarded(headers: &HeaderMap, trusted: &TrustedPeers) -> Option<Forwarded> {
    let mut elements = Vec::new();
    for value in headers.get_all(FORWARDED) {
        parse_elements(value.to_str().ok()?, &mut elements)?;
    }
    let from_right = elements
        .iter()
        .enumerate()
        .rev()
        .map(|(at, e)| (at, e.for_.as_deref().map_or(Node::Unknown, node)));
    let (at, client) = match walk(from_right, trusted) {
        Some(found) => found,
        // Nothing to walk (no element), or a list longer than the cap.
        None if elements.is_empty() => return None,
        None => (elements.len().saturating_sub(MAX_HOPS), None),
    };
    // The first element from the client's towards the server that has the
    // parameter: its value is the one read, usable or not.
    let nearer = &elements[at..];
    Some(Forwarded {
        client,
        scheme: nearer
            .iter()
            .find_map(|e| e.proto.as_deref())
            .and_then(Scheme::parse),
        host: nearer.iter().find_map(|e| e.host.as_deref()).and_then(host),
        port: None,
    })
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The elements of one `Forwarded` field value, appended to `out`:
/// `forwarded-element *( "," forwarded-element )`, each
/// `[ pair ] *( ";" [ pair ] )`, `pair = token "=" ( token / quoted-string )`.
/// `None` when the value does not parse, or an element names a parameter
/// twice (§4: "MUST NOT occur more than once").
fn parse_elements<'a>(value: &'a str, out: &mut Vec<Element<'a>>) -> Option<()> {
    let bytes = value.as_bytes();
    let mut i = 0;
    let mut element = Element::default();
    let mut empty = true;
    let skip_ows = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i] == b' ' || bytes[*i] == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        match bytes.get(i) {
            None => {
                if !empty {
                    out.push(element);
                }
                return Some(());
            }
            Some(b',') => {
                // Empty list elements are allowed and ignored (RFC 9110 §5.6.1).
                if !empty {
                    out.push(std::mem::take(&mut element));
                    empty = true;
                }
                i += 1;
                continue;
            }
            Some(b';') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name_start = i;
        while i < bytes.len() && is_tchar(bytes[i]) {
            i += 1;
        }
        let name = &value[name_start..i];
        if name.is_empty() || bytes.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        let param: Cow<'a, str> = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            let mut unescaped: Option<String> = None;
            loop {
                match bytes.get(i) {
                    None => return None,
                    Some(b'"') => break,
                    Some(b'\\') => {
                        let next = *bytes.get(i + 1)?;
                        unescaped
                            .get_or_insert_with(|| value[start..i].to_owned())
                            .push(char::from(next));
                        i += 2;
                    }
                    Some(&b) => {
                        if let Some(s) = unescaped.as_mut() {
                            s.push(char::from(b));
                        }
                        i += 1;
                    }
                }
            }
            let text = match unescaped {
                Some(s) => Cow::Owned(s),
                None => Cow::Borrowed(&value[start..i]),
            };
            i += 1;
            text
        } else {
            let start = i;
            while i < bytes.len() && is_tchar(bytes[i]) {
                i += 1;
            }
            if start == i {
                return None;
            }
            Cow::Borrowed(&value[start..i])
        };
        skip_ows(&mut i);
        if !matches!(bytes.get(i), None | Some(b',') | Some(b';')) {
            return None;
        }
        let slot = if name.eq_ignore_ascii_case("for") {
            &mut element.for_
        } else if name.eq_ignore_ascii_case("proto") {
            &mut element.proto
        } else if name.eq_ignore_ascii_case("host") {
            &mut element.host
        } else {
            // `by` and extensions (§5.5): not read.
            empty = false;
            continue;
        };
        if slot.replace(param).is_some() {
            return None;
        }
        empty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::syntax::header_map;

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    fn authority(text: &str) -> Option<Authority> {
        Some(Authority::try_from(text).unwrap())
    }

    /// "127.0.0.1, ::1, 10.0.0.0/8": the proxies of these tests.
    fn proxies() -> TrustedPeers {
        TrustedPeers::parse("127.0.0.1, ::1, 10.0.0.0/8").unwrap()
    }

    fn resolved(fields: &[(&str, &str)]) -> Option<Forwarded> {
        resolve(&header_map(fields), &proxies())
    }

    fn client(fields: &[(&str, &str)]) -> Option<SocketAddr> {
        resolved(fields).and_then(|f| f.client)
    }

    #[test]
    fn no_forwarding_fields_nothing_to_do() {
        assert!(!has_forwarding_fields(&header_map(&[
            ("host", "a"),
            ("x-forwarded", "1")
        ])));
        assert!(has_forwarding_fields(&header_map(&[(
            "X-Forwarded-Server",
            "a"
        )])));
        assert!(has_forwarding_fields(&header_map(&[(
            "forwarded",
            "for=x"
        )])));
        assert_eq!(resolved(&[("host", "a")]), None);
        // A field that names nothing usable changes nothing.
        assert_eq!(resolved(&[("x-forwarded-server", "a")]), None);
        assert_eq!(resolved(&[("x-forwarded-proto", "gopher")]), None);
    }

    #[test]
    fn x_forwarded_for_chains() {
        // (X-Forwarded-For fields, the client)
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["203.0.113.7"], Some("203.0.113.7:0")),
            (&[" 203.0.113.7 "], Some("203.0.113.7:0")),
            // The right-most untrusted entry; the left ones are the client's.
            (&["6.6.6.6, 203.0.113.7"], Some("203.0.113.7:0")),
            (&["6.6.6.6, 203.0.113.7, 10.0.0.2"], Some("203.0.113.7:0")),
            (
                &["6.6.6.6, 203.0.113.7, 10.0.0.2, 127.0.0.1"],
                Some("203.0.113.7:0"),
            ),
            // Several fields are one list, in order.
            (&["6.6.6.6", "203.0.113.7, 10.0.0.2"], Some("203.0.113.7:0")),
            (&["203.0.113.7", "10.0.0.2"], Some("203.0.113.7:0")),
            // Every entry trusted: the leftmost.
            (&["10.0.0.5, 10.0.0.2"], Some("10.0.0.5:0")),
            // Ports and IPv6, as proxies write them.
            (&["203.0.113.7:4711"], Some("203.0.113.7:4711")),
            (&["2001:db8::1"], Some("[2001:db8::1]:0")),
            (&["[2001:db8::1]"], Some("[2001:db8::1]:0")),
            (&["[2001:db8::1]:4711"], Some("[2001:db8::1]:4711")),
            (&["::ffff:203.0.113.7"], Some("203.0.113.7:0")),
            (&["::1, 2001:db8::1, ::1"], Some("[2001:db8::1]:0")),
            // Empty list elements are ignored.
            (&[",203.0.113.7,,"], Some("203.0.113.7:0")),
            // An entry that is no address ends the walk: no client.
            (&["203.0.113.7, unknown"], None),
            (&["203.0.113.7, garbage, 10.0.0.2"], None),
            (&["_hidden"], None),
            (&["203.0.113.7:99999"], None),
            (&["203.0.113.7:"], None),
            (&["[203.0.113.7]"], None),
            (&["2001:db8::1:80]"], None),
            (&["[2001:db8::1"], None),
            (&["[2001:db8::1]x"], None),
            (&["1.2.3.4.5"], None),
            (&["10.0.0.300"], None),
            (&[""], None),
        ];
        for (fields, expected) in cases {
            let fields: Vec<(&str, &str)> =
                fields.iter().map(|v| ("x-forwarded-for", *v)).collect();
            assert_eq!(client(&fields), expected.and_then(addr), "{fields:?}");
        }
    }

    #[test]
    fn overlong_lists_are_read_from_the_right_only() {
        let mut list = vec!["6.6.6.6"; 1000];
        list.push("203.0.113.7");
        let value = list.join(", ");
        assert_eq!(
            client(&[("x-forwarded-for", &value)]),
            addr("203.0.113.7:0")
        );
        // More trusted hops than are read: no client.
        let mut list = vec!["203.0.113.7"];
        list.extend(std::iter::repeat_n("10.0.0.1", MAX_HOPS));
        let value = list.join(",");
        assert_eq!(client(&[("x-forwarded-for", &value)]), None);
        let value = list[..MAX_HOPS].join(",");
        assert_eq!(
            client(&[("x-forwarded-for", &value)]),
            addr("203.0.113.7:0")
        );
        // The same for Forwarded.
        let value = vec!["for=6.6.6.6"; 2000].join(",") + ",for=203.0.113.7";
        assert_eq!(client(&[("forwarded", &value)]), addr("203.0.113.7:0"));
        let value = vec!["for=10.0.0.1"; 2000].join(",");
        assert_eq!(client(&[("forwarded", &value)]), None);
    }

    #[test]
    fn everyone_trusted_takes_the_leftmost() {
        let every = TrustedPeers::Every;
        let headers = header_map(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(resolve(&headers, &every).unwrap().client, addr("6.6.6.6:0"));
    }

    #[test]
    fn x_forwarded_proto_host_port_rightmost() {
        // (field, value, scheme, host, port)
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<Scheme>,
            Option<&'a str>,
            Option<u16>,
        );
        let cases: &[Case<'_>] = &[
            (
                "x-forwarded-proto",
                "https",
                Some(Scheme::Https),
                None,
                None,
            ),
            (
                "x-forwarded-proto",
                "HTTPS",
                Some(Scheme::Https),
                None,
                None,
            ),
            ("x-forwarded-proto", "http", Some(Scheme::Http), None, None),
            ("x-forwarded-proto", "wss", Some(Scheme::Https), None, None),
            ("x-forwarded-proto", "ws", Some(Scheme::Http), None, None),
            (
                "x-forwarded-proto",
                "http, https",
                Some(Scheme::Https),
                None,
                None,
            ),
            (
                "x-forwarded-proto",
                "https, http",
                Some(Scheme::Http),
                None,
                None,
            ),
            ("x-forwarded-proto", "https, ftp", None, None, None),
            ("x-forwarded-proto", "javascript:", None, None, None),
            (
                "x-forwarded-host",
                "example.com",
                None,
                Some("example.com"),
                None,
            ),
            (
                "x-forwarded-host",
                "example.com:8443",
                None,
                Some("example.com:8443"),
                None,
            ),
            (
                "x-forwarded-host",
                "[2001:db8::1]:8443",
                None,
                Some("[2001:db8::1]:8443"),
                None,
            ),
            (
                "x-forwarded-host",
                "evil.com, example.com",
                None,
                Some("example.com"),
                None,
            ),
            ("x-forwarded-host", "user@example.com", None, None, None),
            ("x-forwarded-host", "example.com:http", None, None, None),
            ("x-forwarded-host", "example.com:0", None, None, None),
            ("x-forwarded-host", "exa mple.com", None, None, None),
            ("x-forwarded-host", "example.com/path", None, None, None),
            ("x-forwarded-host", ":443", None, None, None),
            ("x-forwarded-port", "8443", None, None, Some(8443)),
            ("x-forwarded-port", "80, 8443", None, None, Some(8443)),
            ("x-forwarded-port", "0", None, None, None),
            ("x-forwarded-port", "65536", None, None, None),
            ("x-forwarded-port", "+443", None, None, None),
            ("x-forwarded-port", "000443", None, None, None),
        ];
        for (name, value, scheme, host_, port) in cases {
            let f = resolved(&[(name, value)]).unwrap_or_default();
            assert_eq!(f.scheme, *scheme, "{name}: {value}");
            assert_eq!(f.host, host_.and_then(authority), "{name}: {value}");
            assert_eq!(f.port, *port, "{name}: {value}");
            assert_eq!(f.client, None);
        }
    }

    #[test]
    fn forwarded_elements() {
        // (Forwarded value, client, scheme, host)
        type Case<'a> = (&'a str, Option<&'a str>, Option<Scheme>, Option<&'a str>);
        let cases: &[Case<'_>] = &[
            ("for=203.0.113.7", Some("203.0.113.7:0"), None, None),
            ("For=203.0.113.7", Some("203.0.113.7:0"), None, None),
            ("for=\"203.0.113.7:4711\"", Some("203.0.113.7:4711"), None, None),
            (
                "for=\"[2001:db8::1]:4711\";proto=https;host=x",
                Some("[2001:db8::1]:4711"),
                Some(Scheme::Https),
                Some("x"),
            ),
            (
                "for=203.0.113.7;proto=https;host=\"example.com:8443\"",
                Some("203.0.113.7:0"),
                Some(Scheme::Https),
                Some("example.com:8443"),
            ),
            ("for = 203.0.113.7", None, None, None),
            // Obfuscated and unknown nodes: no client; the rest applies.
            ("for=_hidden;proto=https", None, Some(Scheme::Https), None),
            ("for=unknown;proto=https", None, Some(Scheme::Https), None),
            ("for=\"_hidden:_port\"", None, None, None),
            ("for=\"203.0.113.7:_port\"", Some("203.0.113.7:0"), None, None),
            ("proto=https", None, Some(Scheme::Https), None),
            // The chain, from the right; proto and host of the client's element.
            (
                "for=6.6.6.6;proto=http, for=203.0.113.7;proto=https, for=10.0.0.2;proto=http",
                Some("203.0.113.7:0"),
                Some(Scheme::Https),
                None,
            ),
            (
                "for=6.6.6.6;proto=http;host=evil, for=203.0.113.7, for=10.0.0.2;proto=https;host=ok",
                Some("203.0.113.7:0"),
                Some(Scheme::Https),
                Some("ok"),
            ),
            // `by` and extensions are read past.
            ("by=10.0.0.1;for=203.0.113.7;secret=\"a;b,c\"", Some("203.0.113.7:0"), None, None),
            ("for=203.0.113.7;;,,", Some("203.0.113.7:0"), None, None),
            ("for=\"\\203.0.113.7\"", Some("203.0.113.7:0"), None, None),
            ("for=203.0.113.7;proto=gopher", Some("203.0.113.7:0"), None, None),
        ];
        for (value, client_, scheme, host_) in cases {
            let f = resolved(&[("forwarded", value)]).unwrap_or_default();
            assert_eq!(f.client, client_.and_then(addr), "{value}");
            assert_eq!(f.scheme, *scheme, "{value}");
            assert_eq!(f.host, host_.and_then(authority), "{value}");
        }
    }

    #[test]
    fn forwarded_that_does_not_parse_changes_nothing() {
        for value in [
            "for=203.0.113.7;for=6.6.6.6",
            "for=\"203.0.113.7",
            "for=203.0.113.7 proto=https",
            "for=",
            "=x",
            "for=[2001:db8::1]:80",
            "for=203.0.113.7;proto=https\"",
            "for=\"a\\",
            "garbage",
        ] {
            assert_eq!(resolved(&[("forwarded", value)]), None, "{value}");
        }
        // Not visible ASCII.
        let headers = header_map(&[("forwarded", b"for=\xff".as_slice())]);
        assert_eq!(resolve(&headers, &proxies()), None);
    }

    #[test]
    fn x_forwarded_for_wins_over_forwarded() {
        // nginx sets X-Forwarded-*, and passes on the client's own Forwarded.
        let fields = [
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=6.6.6.6;proto=http"),
        ];
        let f = resolved(&fields).unwrap();
        assert_eq!(f.client, addr("203.0.113.7:0"));
        assert_eq!(f.scheme, Some(Scheme::Https));
        // Without X-Forwarded-For, Forwarded is read (and the other X- fields are not).
        let fields = [
            ("x-forwarded-proto", "http"),
            ("x-forwarded-port", "8443"),
            ("forwarded", "for=203.0.113.7;proto=https"),
        ];
        let f = resolved(&fields).unwrap();
        assert_eq!(f.client, addr("203.0.113.7:0"));
        assert_eq!(f.scheme, Some(Scheme::Https));
        assert_eq!(f.port, None);
        // A Forwarded that says nothing usable changes nothing.
        let fields = [("x-forwarded-proto", "https"), ("forwarded", "for=\"bad")];
        assert_eq!(resolved(&fields), None);
        // Several Forwarded fields are one list.
        let fields = [
            ("forwarded", "for=6.6.6.6"),
            ("forwarded", "for=203.0.113.7, for=10.0.0.9"),
        ];
        assert_eq!(client(&fields), addr("203.0.113.7:0"));
    }
}
