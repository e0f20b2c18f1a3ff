//! PEP 3333 environ values from a request head.
//!
//! What it does: turns what the runtime already parsed (method, target,
//! version, header fields, socket addresses) into the CGI-style values of a
//! WSGI environ: `REQUEST_METHOD`, `SCRIPT_NAME`, `PATH_INFO`,
//! `QUERY_STRING`, `SERVER_*`, `REMOTE_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`,
//! the `HTTP_*` variables and `wsgi.url_scheme`, with what a trusted proxy
//! said about the client, scheme and host (`proto::proxy::forwarded`)
//! shown over the connection's own facts. Every value follows PEP 3333
//! §"Unicode Issues": bytes from the wire become a `str` whose code points are
//! those bytes ("bytes as latin-1"). A value is a `Text`: the request's own
//! bytes, shared with its header map or target (no copy: a hello-world
//! request makes no allocation here), or bytes made for it; the Python
//! bridge turns each into a `str`, one char per byte.
//!
//! What it does not do: no Python objects, no `wsgi.*` keys other than the
//! scheme, no body handling (what `CONTENT_LENGTH` shows is decided by
//! `body::plan` and passed in), no framing checks (`request::check_framing`
//! runs first), and no reading of forwarding fields or deciding whom to
//! believe (the runtime passes in a trusted proxy's `Forwarded`).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::HeaderMap;
use percent_encoding::percent_decode_str;

use crate::proto::proxy::forwarded::{Forwarded, Scheme};
use crate::proto::request::{HttpVersion, HTTP2_CONNECTION_SPECIFIC};

/// The `SERVER_PROTOCOL` string (PEP 3333 §"environ Variables"): CGI's
/// grammar, `HTTP/<major>.<minor>` (RFC 3875 §4.1.16), so HTTP/2 is
/// `HTTP/2.0`, as Apache's mod_http2 sets it.
fn server_protocol(version: HttpVersion) -> &'static str {
    match version {
        HttpVersion::Http10 => "HTTP/1.0",
        HttpVersion::Http11 => "HTTP/1.1",
        HttpVersion::Http2 => "HTTP/2.0",
    }
}

/// What `build` needs to know about one request. Borrowed from the runtime's
/// own request head; nothing is copied until `build`, and `build` copies
/// only what it must change.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EnvironInput<'a> {
    pub(crate) method: &'a str,
    /// The request target's path and query, still percent-encoded (`None`
    /// for a target with neither: CONNECT's authority form).
    pub(crate) target: Option<&'a PathAndQuery>,
    pub(crate) version: HttpVersion,
    pub(crate) headers: &'a HeaderMap,
    /// HTTP/2 `:authority`, or the authority of an absolute-form target.
    pub(crate) authority: Option<&'a Authority>,
    pub(crate) https: bool,
    /// `None` on unix sockets.
    pub(crate) local_addr: Option<SocketAddr>,
    /// `None` on unix sockets.
    pub(crate) peer_addr: Option<SocketAddr>,
    /// The configured `--root-path`, e.g. "/app" (a trailing "/" is ignored).
    pub(crate) root_path: &'a str,
    /// What `CONTENT_LENGTH` shows (decided by `body::plan` / the runtime).
    pub(crate) content_length: Option<u64>,
    /// Drop `HTTP_CONTENT_ENCODING`: the server decodes the body.
    pub(crate) strip_content_encoding: bool,
    /// What a trusted proxy said about the client, scheme and host.
    pub(crate) forwarded: Option<&'a Forwarded>,
}

/// An environ value as latin-1 bytes: each byte is the char with the same
/// code point.
#[derive(Clone, Debug)]
pub(crate) enum Text {
    Static(&'static str),
    /// Bytes `start..end` of a part of the request, shared (a reference
    /// count, not a copy).
    Shared(Shared, u32, u32),
    /// Bytes made for this environ (a decoded path, joined fields).
    Made(Vec<u8>),
}

/// The part of a request a `Text::Shared` is taken from.
#[derive(Clone, Debug)]
pub(crate) enum Shared {
    Field(HeaderValue),
    Target(PathAndQuery),
    Authority(Authority),
}

impl Shared {
    fn bytes(&self) -> &[u8] {
        match self {
            Shared::Field(v) => v.as_bytes(),
            Shared::Target(t) => t.as_str().as_bytes(),
            Shared::Authority(a) => a.as_str().as_bytes(),
        }
    }
}

impl Text {
    const EMPTY: Text = Text::Static("");

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Static(s) => s.as_bytes(),
            Text::Shared(shared, start, end) => &shared.bytes()[*start as usize..*end as usize],
            Text::Made(bytes) => bytes,
        }
    }

    /// The text as chars (each byte one char), for tests.
    #[cfg(test)]
    pub(crate) fn to_text(&self) -> Cow<'_, str> {
        let bytes = self.as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(ascii) if bytes.is_ascii() => Cow::Borrowed(ascii),
            _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
        }
    }

    /// `part` of `whole`, shared with it.
    fn part(whole: Shared, part: &[u8]) -> Text {
        let base = whole.bytes().as_ptr() as usize;
        let start = part.as_ptr() as usize - base;
        debug_assert!(start + part.len() <= whole.bytes().len());
        // Field values and targets are bounded by the head size limits,
        // far below u32::MAX.
        Text::Shared(whole, start as u32, (start + part.len()) as u32)
    }

    fn whole(shared: Shared) -> Text {
        let len = shared.bytes().len() as u32;
        Text::Shared(shared, 0, len)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text {}

/// The CGI-style part of a WSGI environ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Environ {
    /// Borrowed for the methods of RFC 9110 §9 (no allocation per request).
    pub(crate) request_method: Cow<'static, str>,
    pub(crate) script_name: Text,
    /// Percent-decoded.
    pub(crate) path_info: Text,
    /// Raw (not percent-decoded), "" if none.
    pub(crate) query_string: Text,
    pub(crate) server_name: Text,
    pub(crate) server_port: Text,
    pub(crate) server_protocol: &'static str,
    /// The peer, for `REMOTE_ADDR` (`remote_addr_text`) and `REMOTE_PORT`;
    /// `None` (both "") on unix sockets.
    pub(crate) remote: Option<SocketAddr>,
    /// "http" | "https".
    pub(crate) url_scheme: &'static str,
    pub(crate) content_type: Option<Text>,
    pub(crate) content_length: Option<u64>,
    /// `("HTTP_USER_AGENT", value)`, in the order the fields were first seen.
    /// The names of common fields are static text (no allocation).
    pub(crate) headers: Vec<(HeaderKey, Text)>,
    /// TLS variables (see [`tls_variables`]); empty on cleartext connections.
    pub(crate) tls: Vec<(&'static str, String)>,
}

/// The CGI/mod_ssl variables for a TLS connection: `HTTPS=on`, the protocol
/// and cipher, and the client's certificate (PEM) when it sent one. These are
/// the names Apache's mod_ssl, mod_wsgi and Werkzeug's dev server use.
pub(crate) fn tls_variables(
    protocol: &str,
    cipher: &str,
    client_cert_pem: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("HTTPS", "on".to_string()),
        ("SSL_PROTOCOL", protocol.to_string()),
        ("SSL_CIPHER", cipher.to_string()),
    ];
    if let Some(pem) = client_cert_pem {
        vars.push(("SSL_CLIENT_CERT", pem.to_string()));
    }
    vars
}

// ---------------------------------------------------------------------------
// RULES: everything that decides what an application sees in the environ
// lives below.
//
// Theory of operation: each environ value has one source.
//
//   SCRIPT_NAME     --root-path, without its trailing "/"
//   PATH_INFO       the target path, percent-decoded, minus SCRIPT_NAME
//   QUERY_STRING    the target query, as sent
//   SERVER_NAME/    the request's host (a trusted proxy's, else authority,
//   SERVER_PORT     else Host), else the local socket address, else
//                   "localhost" and the scheme's port; a trusted proxy's
//                   port over any (HTTP_HOST then shows it, unless it is
//                   the scheme's default)
//   REMOTE_*        a trusted proxy's client (port "0" when it gave none),
//                   else the peer socket address ("" on unix sockets)
//   url_scheme      a trusted proxy's scheme, else the connection's
//   CONTENT_TYPE    the Content-Type field
//   CONTENT_LENGTH  the caller's decision (`body::plan`), never the raw field
//   HTTP_*          every other field, except the ones `route` drops
// ---------------------------------------------------------------------------

/// Builds the environ values for one request.
pub(crate) fn build(input: &EnvironInput<'_>) -> Environ {
    let (script_name, path_info) = script_name_and_path_info(input.root_path, input.target);
    let forwarded = input.forwarded;
    let https = forwarded
        .and_then(|f| f.scheme)
        .map_or(input.https, |s| s == Scheme::Https);
    // A trusted proxy's host wins over the request's. The authority wins
    // over Host: RFC 9112 §3.2.2 says a server receiving an absolute-form
    // target MUST ignore Host, and RFC 9113 §8.3.1 says in HTTP/2 the two
    // must name the same thing.
    let mut authority = match forwarded.and_then(|f| f.host.as_ref()) {
        Some(host) => Some(authority_host(host)),
        None => input.authority.map(authority_host),
    };
    let mut host = match &authority {
        Some(authority) => Some(authority.clone()),
        None => input
            .headers
            .get(http::header::HOST)
            .map(|value| Text::whole(Shared::Field(value.clone()))),
    };
    let default_port = if https { "443" } else { "80" };
    let forwarded_port = forwarded.and_then(|f| f.port);
    if let (Some(port), Some(named)) = (forwarded_port, &host) {
        // The proxy's port replaces the host's in HTTP_HOST, which URL
        // reconstruction (PEP 3333) reads first; the scheme's default
        // port is not written.
        let mut made = host_without_port(named.as_bytes()).to_vec();
        if number_text(port) != default_port {
            made.push(b':');
            made.extend_from_slice(number_text(port).as_bytes());
        }
        authority = Some(Text::Made(made));
        host = authority.clone();
    }
    let (server_name, server_port) = match host.filter(|h| !h.as_bytes().is_empty()) {
        Some(host) => {
            let (name, port) = split_host_port(host.as_bytes());
            // A port that is empty ("host:", allowed by RFC 3986 §3.2.3) or not
            // a number means the scheme's default: applications call
            // int(SERVER_PORT).
            let port = match port {
                Some(p) if !p.is_empty() && p.iter().all(u8::is_ascii_digit) => sub_text(&host, p),
                _ => Text::Static(default_port),
            };
            (sub_text(&host, name), port)
        }
        None => match input.local_addr {
            Some(addr) => (
                Text::Made(ip_text(addr).into_bytes()),
                Text::Made(number_text(addr.port()).into_bytes()),
            ),
            None => (Text::Static("localhost"), Text::Static(default_port)),
        },
    };
    let server_port = match forwarded_port {
        Some(port) => Text::Made(number_text(port).into_bytes()),
        None => server_port,
    };
    let (content_type, headers) = header_variables(input, authority);
    Environ {
        request_method: method_text(input.method),
        script_name,
        path_info,
        query_string: query_text(input.target),
        server_name,
        server_port,
        server_protocol: server_protocol(input.version),
        remote: forwarded.and_then(|f| f.client).or(input.peer_addr),
        url_scheme: if https { "https" } else { "http" },
        content_type,
        content_length: input.content_length,
        headers,
        tls: Vec::new(),
    }
}

/// `host:port` without `:port`, `[v6]:port` without `:port` (the brackets
/// kept).
fn host_without_port(host: &[u8]) -> &[u8] {
    if host.starts_with(b"[") {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    split_host_port(host).0
}

/// `part` (a slice of `text`'s bytes) as a `Text`, shared as `text` is.
fn sub_text(text: &Text, part: &[u8]) -> Text {
    match text {
        Text::Shared(shared, ..) => Text::part(shared.clone(), part),
        Text::Static(_) | Text::Made(_) => Text::Made(part.to_vec()),
    }
}

/// REMOTE_ADDR: the peer's canonical IP.
pub(crate) fn remote_addr_text(peer: SocketAddr) -> String {
    ip_text(peer)
}

/// REMOTE_PORT.
pub(crate) fn remote_port_text(peer: SocketAddr) -> String {
    number_text(peer.port())
}

/// SCRIPT_NAME and PATH_INFO (PEP 3333 §"environ Variables", §"URL
/// Reconstruction").
///
/// The path is percent-decoded first, as CGI servers do, so "%2F" becomes "/"
/// and cannot be told apart from a real "/" (every PEP 3333 server behaves
/// so). Invalid escapes such as "%zz" stay literal. The decoded bytes become
/// chars one for one (latin-1), so UTF-8 paths arrive as PEP 3333 wants them:
/// `environ["PATH_INFO"].encode("latin-1").decode("utf-8")` recovers them.
///
/// SCRIPT_NAME is always the root path, like uvicorn: when the decoded path
/// starts with it (followed by "/" or nothing), PATH_INFO is the rest;
/// otherwise PATH_INFO is the whole path. A request outside the root path is
/// not refused here; routing it is the application's business. The root path
/// is configuration text, so its UTF-8 bytes are mapped to latin-1 chars like
/// the path's (uvicorn does `.encode("utf8").decode("latin1")` as well).
///
/// `OPTIONS *` needs no special case: "*" decodes to "*".
fn script_name_and_path_info(root_path: &str, target: Option<&PathAndQuery>) -> (Text, Text) {
    let root = root_path.trim_end_matches('/').as_bytes();
    let script_name = if root.is_empty() {
        Text::EMPTY
    } else {
        Text::Made(root.to_vec())
    };
    let Some(target) = target else {
        return (script_name, Text::EMPTY);
    };
    let path = target.path();
    // Borrowed when there is no escape (most paths): no copy.
    let decoded: Cow<'_, [u8]> = percent_decode_str(path).into();
    let path_info: &[u8] = match decoded.strip_prefix(root) {
        Some(rest) if !root.is_empty() && (rest.is_empty() || rest[0] == b'/') => rest,
        _ => &decoded[..],
    };
    let path_info = match &decoded {
        // A slice of the target itself (http gives "/" for an empty path:
        // static text, not in the target's bytes).
        Cow::Borrowed(_) if target.as_str().starts_with(path) => {
            Text::part(Shared::Target(target.clone()), path_info)
        }
        _ => Text::Made(path_info.to_vec()),
    };
    (script_name, path_info)
}

/// QUERY_STRING: the raw query, "" without one.
fn query_text(target: Option<&PathAndQuery>) -> Text {
    match target.and_then(|t| t.query()) {
        Some(query) if !query.is_empty() => {
            let target = target.expect("a query has a target");
            Text::part(Shared::Target(target.clone()), query.as_bytes())
        }
        _ => Text::EMPTY,
    }
}

/// The host of an authority. Userinfo ("user@") is not part of the host
/// (RFC 9110 §4.2.4 deprecates it) and is removed.
fn authority_host(authority: &Authority) -> Text {
    let text = authority.as_str();
    let host = text.rsplit_once('@').map_or(text, |(_, host)| host);
    Text::part(Shared::Authority(authority.clone()), host.as_bytes())
}

/// Splits `host:port`, `[v6]:port`, `host`, `[v6]` into name and port.
///
/// SERVER_NAME of an IPv6 literal is given without brackets ("::1"), the way
/// the local address is written when there is no Host and the way uvicorn
/// writes it; gunicorn would keep them. URL reconstruction (PEP 3333) uses
/// HTTP_HOST, which keeps the brackets, so nothing is lost.
/// A bare IPv6 address without brackets is not a valid host (RFC 3986 §3.2.2);
/// it is taken whole as the name, with no port.
fn split_host_port(host: &[u8]) -> (&[u8], Option<&[u8]>) {
    if let Some(rest) = host.strip_prefix(b"[") {
        return match rest.iter().position(|&b| b == b']') {
            Some(end) => (&rest[..end], rest[end + 1..].strip_prefix(b":")),
            None => (host, None),
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) if !host[..colon].contains(&b':') => (&host[..colon], Some(&host[colon + 1..])),
        _ => (host, None),
    }
}

/// An IPv4 peer on a dual-stack IPv6 socket appears as "::ffff:a.b.c.d";
/// applications compare REMOTE_ADDR against IPv4 strings, so show "a.b.c.d".
fn canonical_ip(addr: SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}

/// The canonical IP of `addr` as text, the same as its `Display`. IPv4 (the
/// usual peer) is written octet by octet: `Display` goes through `core::fmt`,
/// which measured about 1.5% of the server's CPU per hello-world request for
/// REMOTE_ADDR alone.
fn ip_text(addr: SocketAddr) -> String {
    match canonical_ip(addr) {
        IpAddr::V4(ip) => {
            let mut text = String::with_capacity(15);
            let mut digits = itoa::Buffer::new();
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(digits.format(octet));
            }
            text
        }
        ip @ IpAddr::V6(_) => ip.to_string(),
    }
}

/// A port or a length as decimal text (without `core::fmt`, as `ip_text`).
fn number_text(n: impl itoa::Integer) -> String {
    itoa::Buffer::new().format(n).to_owned()
}

/// Where one request header field goes in the environ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// `CONTENT_TYPE` (PEP 3333 §"environ Variables": no `HTTP_` prefix).
    ContentType,
    /// `HTTP_HOST`: the Host field, or the authority when there is one.
    Host,
    /// `HTTP_<NAME>`, repeated fields joined with `separator`.
    Http { separator: &'static str },
    /// Not shown to the application.
    Drop,
}

fn route(name: &HeaderName, input: &EnvironInput<'_>) -> Route {
    use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST};
    // Standard names compare as enum tags, not strings: this runs per field.
    if name == CONTENT_TYPE {
        return Route::ContentType;
    }
    // CONTENT_LENGTH comes only from the body plan: with chunked or decoded
    // bodies the field (if any) does not describe what the application reads.
    if name == CONTENT_LENGTH {
        return Route::Drop;
    }
    // The server decodes the body, so the coding no longer applies.
    if name == CONTENT_ENCODING && input.strip_content_encoding {
        return Route::Drop;
    }
    if name == HOST {
        return Route::Host;
    }
    // RFC 9113 §8.2.3: HTTP/2 clients may split Cookie into one field per
    // cookie; "; " is the separator that rebuilds one Cookie header
    // (RFC 6265 §5.4), whatever the version.
    if name == COOKIE {
        return Route::Http { separator: "; " };
    }
    let text = name.as_str(); // always lower case
                              // httpoxy (CVE-2016-5385): HTTP_PROXY would be read as the proxy
                              // environment variable by CGI-style HTTP clients.
                              // "X_Forwarded_For" and "X-Forwarded-For" would both become
                              // HTTP_X_FORWARDED_FOR; a client could spoof a header a proxy set.
                              // gunicorn and nginx drop them too.
    if text == "proxy" || text.contains('_') {
        return Route::Drop;
    }
    // RFC 9113 §8.2.2: not valid in HTTP/2 (`request::check_framing` refuses
    // them; this is the second line of defence).
    if input.version == HttpVersion::Http2 && HTTP2_CONNECTION_SPECIFIC.contains(&text) {
        return Route::Drop;
    }
    // RFC 9110 §5.3: repeated fields are one comma-separated list.
    Route::Http { separator: ", " }
}

/// `text` followed by `separator` and `more`: made, as joined values are.
fn join(text: &mut Text, separator: &str, more: &[u8]) {
    let mut joined = std::mem::replace(text, Text::EMPTY).as_bytes().to_vec();
    joined.extend_from_slice(separator.as_bytes());
    joined.extend_from_slice(more);
    *text = Text::Made(joined);
}

/// CONTENT_TYPE and the `HTTP_*` variables, in first-seen field order.
///
/// When the request has an authority, HTTP_HOST is that authority's host: in
/// the Host field's place, or first (where HTTP/2's `:authority` stood) when
/// there is no Host field, as HTTP/2 clients usually send none.
fn header_variables(
    input: &EnvironInput<'_>,
    authority: Option<Text>,
) -> (Option<Text>, Vec<(HeaderKey, Text)>) {
    let mut content_type: Option<Text> = None;
    let mut variables = Vec::with_capacity(input.headers.keys_len() + 1);
    if let Some(authority) = &authority {
        if !input.headers.contains_key(http::header::HOST) {
            variables.push((HeaderKey::HOST, authority.clone()));
        }
    }
    /// Where the further values of the field being read go.
    enum Sink {
        Nowhere,
        ContentType,
        Variable(usize, &'static str),
    }
    // `iter` yields every value of a field before the next field (one pass,
    // no lookup per field), fields in first-seen order.
    let mut current: Option<(&HeaderName, Sink)> = None;
    for (name, value) in input.headers.iter() {
        if let Some((field, sink)) = &current {
            if *field == name {
                match *sink {
                    Sink::Nowhere => {}
                    Sink::ContentType => {
                        if let Some(text) = content_type.as_mut() {
                            join(text, ", ", value.as_bytes());
                        }
                    }
                    Sink::Variable(at, separator) => {
                        join(&mut variables[at].1, separator, value.as_bytes());
                    }
                }
                continue;
            }
        }
        let shared = || Text::whole(Shared::Field(value.clone()));
        let sink = match route(name, input) {
            Route::Drop => Sink::Nowhere,
            Route::ContentType => {
                content_type = Some(shared());
                Sink::ContentType
            }
            Route::Host => match &authority {
                Some(authority) => {
                    variables.push((HeaderKey::HOST, authority.clone()));
                    Sink::Nowhere
                }
                None => {
                    variables.push((HeaderKey::HOST, shared()));
                    Sink::Variable(variables.len() - 1, ", ")
                }
            },
            Route::Http { separator } => {
                variables.push((cgi_name(name), shared()));
                Sink::Variable(variables.len() - 1, separator)
            }
        };
        current = Some((name, sink));
    }
    (content_type, variables)
}

/// The environ key of a header field (`HTTP_USER_AGENT`): one of
/// `COMMON_KEYS`, by its index (no allocation; the Python bridge keeps an
/// interned str for each), or made for a rarer name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderKey {
    Common(u8),
    Made(String),
}

impl HeaderKey {
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            HeaderKey::Common(i) => COMMON_KEYS[usize::from(*i)].1,
            HeaderKey::Made(key) => key,
        }
    }

    const HOST: HeaderKey = HeaderKey::Common(0);
}

/// Header fields that most requests carry (browsers, HTTP clients, proxies),
/// with their environ keys. Index 0 is Host (`HeaderKey::HOST`).
pub(crate) const COMMON_KEYS: [(&str, &str); 22] = [
    ("host", "HTTP_HOST"),
    ("accept", "HTTP_ACCEPT"),
    ("accept-encoding", "HTTP_ACCEPT_ENCODING"),
    ("accept-language", "HTTP_ACCEPT_LANGUAGE"),
    ("authorization", "HTTP_AUTHORIZATION"),
    ("cache-control", "HTTP_CACHE_CONTROL"),
    ("connection", "HTTP_CONNECTION"),
    ("cookie", "HTTP_COOKIE"),
    ("if-modified-since", "HTTP_IF_MODIFIED_SINCE"),
    ("if-none-match", "HTTP_IF_NONE_MATCH"),
    ("origin", "HTTP_ORIGIN"),
    ("pragma", "HTTP_PRAGMA"),
    ("referer", "HTTP_REFERER"),
    ("sec-fetch-dest", "HTTP_SEC_FETCH_DEST"),
    ("sec-fetch-mode", "HTTP_SEC_FETCH_MODE"),
    ("sec-fetch-site", "HTTP_SEC_FETCH_SITE"),
    ("sec-fetch-user", "HTTP_SEC_FETCH_USER"),
    (
        "upgrade-insecure-requests",
        "HTTP_UPGRADE_INSECURE_REQUESTS",
    ),
    ("user-agent", "HTTP_USER_AGENT"),
    ("x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
    ("x-forwarded-proto", "HTTP_X_FORWARDED_PROTO"),
    ("x-request-id", "HTTP_X_REQUEST_ID"),
];

/// "user-agent" -> "HTTP_USER_AGENT" (PEP 3333 §"environ Variables", CGI
/// RFC 3875 §4.1.18).
fn cgi_name(name: &HeaderName) -> HeaderKey {
    let name = name.as_str();
    // Most names differ from most common ones in length: a cheap first test.
    if let Some(i) = COMMON_KEYS
        .iter()
        .position(|(field, _)| field.len() == name.len() && *field == name)
    {
        return HeaderKey::Common(i as u8);
    }
    // Header names are lowercase ASCII tokens (the http crate guarantees it).
    let mut cgi = Vec::with_capacity(5 + name.len());
    cgi.extend_from_slice(b"HTTP_");
    cgi.extend(name.bytes().map(|b| {
        if b == b'-' {
            b'_'
        } else {
            b.to_ascii_uppercase()
        }
    }));
    HeaderKey::Made(String::from_utf8(cgi).expect("ASCII"))
}

/// The standard methods as static text; others (extension methods) copied.
fn method_text(method: &str) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    match STANDARD.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::syntax::header_map as headers;
    use HttpVersion::{Http10, Http11, Http2};

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    /// "/" (a target `base` can borrow for as long as the tests run).
    fn root() -> &'static PathAndQuery {
        static ROOT: std::sync::OnceLock<PathAndQuery> = std::sync::OnceLock::new();
        ROOT.get_or_init(|| PathAndQuery::from_static("/"))
    }

    /// A target from its path and query ("" and no query: none at all).
    fn target(path: &str, query: Option<&str>) -> Option<PathAndQuery> {
        match (path, query) {
            ("", None) => None,
            (path, None) => Some(path.parse().unwrap()),
            (path, Some(q)) => Some(format!("{path}?{q}").parse().unwrap()),
        }
    }

    /// A plain HTTP/1.1 GET over TCP; tests change what they look at.
    fn base(headers: &HeaderMap) -> EnvironInput<'_> {
        EnvironInput {
            method: "GET",
            target: Some(root()),
            version: Http11,
            headers,
            authority: None,
            https: false,
            local_addr: addr("127.0.0.1:8000"),
            peer_addr: addr("127.0.0.1:50000"),
            root_path: "",
            content_length: None,
            strip_content_encoding: false,
            forwarded: None,
        }
    }

    /// (Forwarded: scheme, host, port, client; the request's Host, TLS;
    /// then HTTP_HOST, SERVER_NAME, SERVER_PORT, wsgi.url_scheme,
    /// REMOTE_ADDR:REMOTE_PORT.)
    type ForwardedCase<'a> = (
        (
            Option<Scheme>,
            Option<&'a str>,
            Option<u16>,
            Option<&'a str>,
        ),
        (Option<&'a str>, bool),
        (Option<&'a str>, &'a str, &'a str, &'a str, &'a str),
    );

    #[test]
    fn a_trusted_proxy_s_word_over_the_connection_s() {
        use Scheme::{Http, Https};
        let cases: &[ForwardedCase<'_>] = &[
            // Nothing forwarded: the connection's own facts.
            (
                (None, None, None, None),
                (Some("app:8000"), false),
                (Some("app:8000"), "app", "8000", "http", "127.0.0.1:50000"),
            ),
            (
                (Some(Https), None, None, Some("203.0.113.7:0")),
                (Some("example.com"), false),
                (
                    Some("example.com"),
                    "example.com",
                    "443",
                    "https",
                    "203.0.113.7:0",
                ),
            ),
            (
                (Some(Http), None, None, None),
                (Some("example.com"), true),
                (
                    Some("example.com"),
                    "example.com",
                    "80",
                    "http",
                    "127.0.0.1:50000",
                ),
            ),
            // nginx's X-Forwarded-Host $host and X-Forwarded-Port $server_port.
            (
                (
                    Some(Https),
                    Some("example.com"),
                    Some(8443),
                    Some("[2001:db8::1]:4711"),
                ),
                (Some("127.0.0.1:8000"), false),
                (
                    Some("example.com:8443"),
                    "example.com",
                    "8443",
                    "https",
                    "2001:db8::1:4711",
                ),
            ),
            (
                (Some(Https), Some("example.com"), Some(443), None),
                (Some("127.0.0.1:8000"), false),
                (
                    Some("example.com"),
                    "example.com",
                    "443",
                    "https",
                    "127.0.0.1:50000",
                ),
            ),
            (
                (None, Some("example.com:81"), None, None),
                (Some("127.0.0.1:8000"), false),
                (
                    Some("example.com:81"),
                    "example.com",
                    "81",
                    "http",
                    "127.0.0.1:50000",
                ),
            ),
            (
                (None, None, Some(9000), None),
                (Some("[::1]:8000"), false),
                (Some("[::1]:9000"), "::1", "9000", "http", "127.0.0.1:50000"),
            ),
            (
                (None, Some("[2001:db8::5]:81"), Some(80), None),
                (None, false),
                (
                    Some("[2001:db8::5]"),
                    "2001:db8::5",
                    "80",
                    "http",
                    "127.0.0.1:50000",
                ),
            ),
            // No host at all: the local address, the proxy's port.
            (
                (None, None, Some(9000), None),
                (None, false),
                (None, "127.0.0.1", "9000", "http", "127.0.0.1:50000"),
            ),
        ];
        for ((scheme, host, port, client), (request_host, tls), expected) in cases {
            let forwarded = Forwarded {
                client: client.map(|c| c.parse().unwrap()),
                scheme: *scheme,
                host: host.map(|h| Authority::try_from(h).unwrap()),
                port: *port,
            };
            let fields: Vec<(&str, &str)> = request_host.iter().map(|h| ("host", *h)).collect();
            let h = headers(&fields);
            let env = build(&EnvironInput {
                https: *tls,
                forwarded: Some(&forwarded),
                ..base(&h)
            });
            let http_host = env
                .headers
                .iter()
                .find(|(k, _)| k.as_str() == "HTTP_HOST")
                .map(|(_, v)| v.to_text().into_owned());
            let remote = env.remote.unwrap();
            let got = (
                http_host.as_deref(),
                &*env.server_name.to_text(),
                &*env.server_port.to_text(),
                env.url_scheme,
                &*format!("{}:{}", remote_addr_text(remote), remote_port_text(remote)),
            );
            assert_eq!(got, *expected, "{forwarded:?} {request_host:?}");
        }
    }

    #[test]
    fn server_protocol_names() {
        for (version, expected) in [
            (Http10, "HTTP/1.0"),
            (Http11, "HTTP/1.1"),
            (Http2, "HTTP/2.0"),
        ] {
            assert_eq!(server_protocol(version), expected);
            let h = HeaderMap::new();
            assert_eq!(
                build(&EnvironInput {
                    version,
                    ..base(&h)
                })
                .server_protocol,
                expected
            );
        }
    }

    /// (root_path, raw path, SCRIPT_NAME, PATH_INFO)
    const PATHS: &[(&str, &str, &str, &str)] = &[
        ("", "/", "", "/"),
        ("", "", "", ""),
        ("", "*", "", "*"),
        ("", "/a/b", "", "/a/b"),
        ("", "/a%20b", "", "/a b"),
        // "%2F" decodes to "/", as every PEP 3333 server does.
        ("", "/a%2Fb", "", "/a/b"),
        ("", "/a%2fb", "", "/a/b"),
        // Invalid escapes stay literal.
        ("", "/%zz", "", "/%zz"),
        ("", "/%", "", "/%"),
        ("", "/%4", "", "/%4"),
        ("", "/100%", "", "/100%"),
        ("", "/%%41", "", "/%A"),
        // Decoded bytes become latin-1 chars: UTF-8 "é" is two chars.
        ("", "/caf%C3%A9", "", "/caf\u{c3}\u{a9}"),
        ("", "/%FF%80", "", "/\u{ff}\u{80}"),
        ("", "/%00", "", "/\u{0}"),
        // The root path is stripped when the path starts with it.
        ("/app", "/app", "/app", ""),
        ("/app", "/app/", "/app", "/"),
        ("/app", "/app/x/y", "/app", "/x/y"),
        ("/app/", "/app/x", "/app", "/x"),
        ("/app", "/app%2Fx", "/app", "/x"),
        ("/a b", "/a%20b/x", "/a b", "/x"),
        ("/app", "/APP/x", "/app", "/APP/x"),
        // ...only at a segment boundary; otherwise PATH_INFO is the whole path.
        ("/app", "/application", "/app", "/application"),
        ("/app", "/other", "/app", "/other"),
        ("/app", "/", "/app", "/"),
        ("/app", "", "/app", ""),
        ("/app", "*", "/app", "*"),
        ("/", "/x", "", "/x"),
        ("/caf\u{e9}", "/caf%C3%A9/x", "/caf\u{c3}\u{a9}", "/x"),
    ];

    #[test]
    fn script_name_and_path_info_table() {
        let h = HeaderMap::new();
        for (root_path, path, script_name, path_info) in PATHS {
            let target = target(path, None);
            let env = build(&EnvironInput {
                root_path,
                target: target.as_ref(),
                ..base(&h)
            });
            assert_eq!(
                (
                    env.script_name.to_text().as_ref(),
                    env.path_info.to_text().as_ref()
                ),
                (*script_name, *path_info),
                "root {root_path:?} path {path:?}"
            );
        }
    }

    #[test]
    fn query_string_is_raw() {
        let h = HeaderMap::new();
        for (query, expected) in [
            (None, ""),
            (Some(""), ""),
            (Some("a=1&b=%20"), "a=1&b=%20"),
            (Some("q=caf\u{e9}"), "q=caf\u{c3}\u{a9}"),
        ] {
            let target = target("/", query);
            let env = build(&EnvironInput {
                target: target.as_ref(),
                ..base(&h)
            });
            assert_eq!(env.query_string.to_text(), expected);
            assert_eq!(env.path_info.to_text(), "/");
        }
    }

    struct HostCase {
        version: HttpVersion,
        host: &'static [&'static [u8]],
        authority: Option<&'static str>,
        https: bool,
        local_addr: Option<&'static str>,
        server_name: &'static str,
        server_port: &'static str,
        http_host: Option<&'static str>,
    }

    const fn host(
        version: HttpVersion,
        host: &'static [&'static [u8]],
        authority: Option<&'static str>,
        https: bool,
        local_addr: Option<&'static str>,
        expected: (&'static str, &'static str, Option<&'static str>),
    ) -> HostCase {
        HostCase {
            version,
            host,
            authority,
            https,
            local_addr,
            server_name: expected.0,
            server_port: expected.1,
            http_host: expected.2,
        }
    }

    const LOCAL: Option<&str> = Some("10.0.0.1:8000");
    #[rustfmt::skip]
    const HOSTS: &[HostCase] = &[
        // Host with and without port; default port by scheme.
        host(Http11, &[b"example.com:8080"], None, false, LOCAL, ("example.com", "8080", Some("example.com:8080"))),
        host(Http11, &[b"example.com"], None, false, LOCAL, ("example.com", "80", Some("example.com"))),
        host(Http11, &[b"example.com"], None, true, LOCAL, ("example.com", "443", Some("example.com"))),
        host(Http11, &[b"example.com:"], None, true, LOCAL, ("example.com", "443", Some("example.com:"))),
        host(Http11, &[b"example.com:x1"], None, false, LOCAL, ("example.com", "80", Some("example.com:x1"))),
        host(Http11, &[b"127.0.0.1:9"], None, false, LOCAL, ("127.0.0.1", "9", Some("127.0.0.1:9"))),
        // IPv6 literals: SERVER_NAME without brackets, HTTP_HOST as sent.
        host(Http11, &[b"[::1]:8443"], None, true, LOCAL, ("::1", "8443", Some("[::1]:8443"))),
        host(Http11, &[b"[::1]"], None, false, LOCAL, ("::1", "80", Some("[::1]"))),
        host(Http11, &[b"[fe80::1%25eth0]:81"], None, false, LOCAL, ("fe80::1%25eth0", "81", Some("[fe80::1%25eth0]:81"))),
        host(Http11, &[b"[::1"], None, false, LOCAL, ("[::1", "80", Some("[::1"))),
        host(Http11, &[b"::1"], None, false, LOCAL, ("::1", "80", Some("::1"))),
        // Latin-1 bytes in Host survive as chars.
        host(Http11, &[b"caf\xe9:81"], None, false, LOCAL, ("caf\u{e9}", "81", Some("caf\u{e9}:81"))),
        // Repeated Host: the first names the server, HTTP_HOST shows all.
        host(Http11, &[b"a:1", b"b:2"], None, false, LOCAL, ("a", "1", Some("a:1, b:2"))),
        // No Host (HTTP/1.0): the local address, IPv6 without brackets.
        host(Http10, &[], None, false, LOCAL, ("10.0.0.1", "8000", None)),
        host(Http10, &[], None, false, Some("[::1]:8001"), ("::1", "8001", None)),
        host(Http10, &[], None, false, Some("[::ffff:10.1.2.3]:8001"), ("10.1.2.3", "8001", None)),
        host(Http11, &[b""], None, false, LOCAL, ("10.0.0.1", "8000", Some(""))),
        // No Host on a unix socket: "localhost" and the scheme's port.
        host(Http10, &[], None, false, None, ("localhost", "80", None)),
        host(Http10, &[], None, true, None, ("localhost", "443", None)),
        // HTTP/2 :authority without Host becomes HTTP_HOST.
        host(Http2, &[], Some("example.com:8443"), true, LOCAL, ("example.com", "8443", Some("example.com:8443"))),
        host(Http2, &[], Some("example.com"), true, None, ("example.com", "443", Some("example.com"))),
        host(Http2, &[], Some("[::1]:9000"), false, LOCAL, ("::1", "9000", Some("[::1]:9000"))),
        host(Http2, &[b"example.com"], Some("example.com"), false, LOCAL, ("example.com", "80", Some("example.com"))),
        host(Http2, &[], None, false, LOCAL, ("10.0.0.1", "8000", None)),
        // Absolute-form target: the authority wins over Host (RFC 9112 §3.2.2).
        host(Http11, &[b"evil.example"], Some("good.example:81"), false, LOCAL, ("good.example", "81", Some("good.example:81"))),
        host(Http11, &[], Some("user:pw@good.example"), false, LOCAL, ("good.example", "80", Some("good.example"))),
    ];

    #[test]
    fn server_name_port_and_http_host_table() {
        for case in HOSTS {
            let fields: Vec<(&str, &[u8])> = case.host.iter().map(|v| ("host", *v)).collect();
            let h = headers(&fields);
            let authority: Option<Authority> = case.authority.map(|a| a.parse().unwrap());
            let env = build(&EnvironInput {
                version: case.version,
                authority: authority.as_ref(),
                https: case.https,
                local_addr: case.local_addr.map(|a| a.parse().unwrap()),
                ..base(&h)
            });
            let http_host: Vec<String> = env
                .headers
                .iter()
                .filter(|(k, _)| k.as_str() == "HTTP_HOST")
                .map(|(_, v)| v.to_text().into_owned())
                .collect();
            assert_eq!(
                (
                    env.server_name.to_text().as_ref(),
                    env.server_port.to_text().as_ref(),
                    http_host.first().map(String::as_str)
                ),
                (case.server_name, case.server_port, case.http_host),
                "host {:?} authority {:?}",
                case.host,
                case.authority
            );
            assert!(http_host.len() <= 1, "one HTTP_HOST: {:?}", env.headers);
        }
    }

    #[test]
    fn http_host_from_authority_comes_first() {
        let h = headers(&[("user-agent", "t"), ("accept", "*/*")]);
        let authority = Authority::from_static("a.example");
        let env = build(&EnvironInput {
            version: Http2,
            authority: Some(&authority),
            ..base(&h)
        });
        let names: Vec<&str> = env.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT"]);
    }

    struct HeaderCase {
        version: HttpVersion,
        strip_content_encoding: bool,
        fields: &'static [(&'static str, &'static [u8])],
        content_type: Option<&'static str>,
        expected: &'static [(&'static str, &'static str)],
    }

    const HEADERS: &[HeaderCase] = &[
        HeaderCase {
            version: Http11,
            strip_content_encoding: false,
            fields: &[],
            content_type: None,
            expected: &[],
        },
        // Names map to HTTP_*, order is first-seen, repeats join with ", ".
        HeaderCase {
            version: Http11,
            strip_content_encoding: false,
            fields: &[
                ("host", b"h"),
                ("user-agent", b"curl/8"),
                ("accept", b"text/html"),
                ("x-a", b"1"),
                ("accept", b"*/*"),
                ("x-a", b"2"),
            ],
            content_type: None,
            expected: &[
                ("HTTP_HOST", "h"),
                ("HTTP_USER_AGENT", "curl/8"),
                ("HTTP_ACCEPT", "text/html, */*"),
                ("HTTP_X_A", "1, 2"),
            ],
        },
        // Cookies split across fields (RFC 9113 §8.2.3) join with "; ".
        HeaderCase {
            version: Http2,
            strip_content_encoding: false,
            fields: &[
                ("cookie", b"a=1"),
                ("x-b", b"b"),
                ("cookie", b"b=2"),
                ("cookie", b"c=3"),
            ],
            content_type: None,
            expected: &[("HTTP_COOKIE", "a=1; b=2; c=3"), ("HTTP_X_B", "b")],
        },
        HeaderCase {
            version: Http11,
            strip_content_encoding: false,
            fields: &[("cookie", b"a=1; b=2")],
            content_type: None,
            expected: &[("HTTP_COOKIE", "a=1; b=2")],
        },
        // Content-Type is CONTENT_TYPE; Content-Length never shows as a header.
        HeaderCase {
            version: Http11,
            strip_content_encoding: false,
            fields: &[
                ("content-type", b"text/plain; charset=utf-8"),
                ("content-length", b"5"),
                ("x-c", b"c"),
            ],
            content_type: Some("text/plain; charset=utf-8"),
            expected: &[("HTTP_X_C", "c")],
        },
        // Underscore names and Proxy (httpoxy) are dropped.
        HeaderCase {
            version: Http11,
            strip_content_encoding: false,
            fields: &[
                ("x_forwarded_for", b"6.6.6.6"),
                ("x-forwarded-for", b"1.2.3.4"),
                ("proxy", b"http://evil:1"),
                ("_", b"u"),
            ],
            content_type: None,
            expected: &[("HTTP_X_FORWARDED_FOR", "1.2.3.4")],
        },
        // Content-Encoding is kept unless the server decodes the body.
        HeaderCase {
            version: Http11,
            strip_content_encoding: false,
            fields: &[("content-encoding", b"gzip")],
            content_type: None,
            expected: &[("HTTP_CONTENT_ENCODING", "gzip")],
        },
        HeaderCase {
            version: Http11,
            strip_content_encoding: true,
            fields: &[("content-encoding", b"gzip"), ("x-d", b"d")],
            content_type: None,
            expected: &[("HTTP_X_D", "d")],
        },
        // Latin-1 bytes 0x80..0xFF become U+0080..U+00FF; HTAB is kept.
        HeaderCase {
            version: Http11,
            strip_content_encoding: false,
            fields: &[("x-latin", b"caf\xe9 \x80\xff"), ("x-tab", b"a\tb")],
            content_type: None,
            expected: &[
                ("HTTP_X_LATIN", "caf\u{e9} \u{80}\u{ff}"),
                ("HTTP_X_TAB", "a\tb"),
            ],
        },
        // Connection-specific fields: dropped in HTTP/2 only (RFC 9113 §8.2.2).
        HeaderCase {
            version: Http2,
            strip_content_encoding: false,
            fields: &[
                ("connection", b"close"),
                ("keep-alive", b"timeout=5"),
                ("proxy-connection", b"keep-alive"),
                ("transfer-encoding", b"chunked"),
                ("upgrade", b"h2c"),
                ("te", b"trailers"),
            ],
            content_type: None,
            expected: &[("HTTP_TE", "trailers")],
        },
        HeaderCase {
            version: Http11,
            strip_content_encoding: false,
            fields: &[
                ("connection", b"keep-alive"),
                ("transfer-encoding", b"chunked"),
                ("upgrade", b"websocket"),
            ],
            content_type: None,
            expected: &[
                ("HTTP_CONNECTION", "keep-alive"),
                ("HTTP_TRANSFER_ENCODING", "chunked"),
                ("HTTP_UPGRADE", "websocket"),
            ],
        },
    ];

    #[test]
    fn header_variables_table() {
        for (i, case) in HEADERS.iter().enumerate() {
            let h = headers(case.fields);
            let env = build(&EnvironInput {
                version: case.version,
                strip_content_encoding: case.strip_content_encoding,
                ..base(&h)
            });
            let got: Vec<(&str, String)> = env
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_text().into_owned()))
                .collect();
            let expected: Vec<(&str, String)> = case
                .expected
                .iter()
                .map(|(k, v)| (*k, v.to_string()))
                .collect();
            assert_eq!(got, expected, "case {i}");
            assert_eq!(
                env.content_type.as_ref().map(|t| t.to_text().into_owned()),
                case.content_type.map(String::from),
                "case {i}"
            );
        }
    }

    #[test]
    fn content_length_comes_from_the_body_plan_only() {
        let h = headers(&[("content-length", b"5")]);
        for content_length in [None, Some(0), Some(5)] {
            let env = build(&EnvironInput {
                content_length,
                ..base(&h)
            });
            assert_eq!(env.content_length, content_length);
            assert!(env.headers.is_empty());
        }
    }

    /// The hand-written IPv4 and number text is `Display`'s, digit for digit.
    #[test]
    fn address_text_is_display_text() {
        let octets = [0u8, 1, 9, 10, 99, 100, 127, 199, 200, 255];
        for a in octets {
            for b in octets {
                for port in [0u16, 1, 9, 10, 80, 443, 8080, 54321, 65535] {
                    let v4 = std::net::Ipv4Addr::new(a, b, 255 - a, b ^ 0x5a);
                    let addr = SocketAddr::from((v4, port));
                    assert_eq!(ip_text(addr), v4.to_string());
                    assert_eq!(number_text(addr.port()), port.to_string());
                    // A v4-mapped IPv6 peer shows as the IPv4 address.
                    let mapped = SocketAddr::from((v4.to_ipv6_mapped(), port));
                    assert_eq!(ip_text(mapped), v4.to_string());
                }
            }
        }
        let v6: SocketAddr = "[2001:db8::8a2e:370:7334]:443".parse().unwrap();
        assert_eq!(ip_text(v6), "2001:db8::8a2e:370:7334");
        assert_eq!(number_text(u64::MAX), u64::MAX.to_string());
    }

    /// (peer, https, REMOTE_ADDR, REMOTE_PORT, wsgi.url_scheme)
    #[test]
    fn remote_address_and_scheme_table() {
        let h = HeaderMap::new();
        for (peer, https, remote_addr, remote_port, scheme) in [
            (Some("192.0.2.7:54321"), false, "192.0.2.7", "54321", "http"),
            (
                Some("[2001:db8::1]:443"),
                true,
                "2001:db8::1",
                "443",
                "https",
            ),
            (
                Some("[::ffff:192.0.2.7]:1"),
                false,
                "192.0.2.7",
                "1",
                "http",
            ),
            (None, false, "", "", "http"), // unix socket
            (None, true, "", "", "https"),
        ] {
            let env = build(&EnvironInput {
                peer_addr: peer.map(|a| a.parse().unwrap()),
                local_addr: None,
                https,
                ..base(&h)
            });
            assert_eq!(
                (
                    env.remote
                        .map(remote_addr_text)
                        .unwrap_or_default()
                        .as_str(),
                    env.remote
                        .map(remote_port_text)
                        .unwrap_or_default()
                        .as_str(),
                    env.url_scheme
                ),
                (remote_addr, remote_port, scheme),
                "peer {peer:?}"
            );
        }
    }

    #[test]
    fn request_method_is_copied() {
        let h = HeaderMap::new();
        for method in ["GET", "HEAD", "OPTIONS", "PROPFIND"] {
            assert_eq!(
                build(&EnvironInput { method, ..base(&h) }).request_method,
                method
            );
        }
    }

    #[test]
    fn common_header_names_are_static_and_spelled_like_the_rest() {
        for (name, _) in COMMON_KEYS
            .iter()
            .copied()
            .chain([("x-custom-thing", ""), ("dnt", "")])
        {
            let cgi = cgi_name(&HeaderName::from_bytes(name.as_bytes()).unwrap());
            assert_eq!(
                cgi.as_str(),
                format!("HTTP_{}", name.to_uppercase().replace('-', "_"))
            );
            let common = !name.starts_with("x-custom") && name != "dnt";
            assert_eq!(matches!(cgi, HeaderKey::Common(_)), common, "{name}");
        }
        assert_eq!(HeaderKey::HOST.as_str(), "HTTP_HOST");
    }

    #[test]
    fn standard_methods_are_not_allocated() {
        let h = HeaderMap::new();
        let of = |method| build(&EnvironInput { method, ..base(&h) }).request_method;
        assert!(matches!(of("GET"), Cow::Borrowed("GET")));
        assert!(matches!(of("PATCH"), Cow::Borrowed("PATCH")));
        // Methods are case-sensitive (RFC 9110 §9.1): "get" is an extension.
        assert!(matches!(of("get"), Cow::Owned(m) if m == "get"));
        assert!(matches!(of("PROPFIND"), Cow::Owned(m) if m == "PROPFIND"));
    }
}
