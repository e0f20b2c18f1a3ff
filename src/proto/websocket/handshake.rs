//! The opening handshake, server side: RFC 6455 §4.2.1 and §4.2.2 for
//! HTTP/1.1, RFC 8441 §4 and §5 for HTTP/2's extended CONNECT.
//!
//! What it does: checks a handshake request's head and reads what it offers
//! (subprotocols, extensions, permessage-deflate), refusing a malformed one
//! with the status and fields to answer with; computes
//! `Sec-WebSocket-Accept`; writes the fields of the answer that accepts it
//! (101 on HTTP/1.1, 200 on HTTP/2). What it does not do: route the request
//! (`proto::route` decided it is a WebSocket handshake), decide whether the
//! application accepts it or which subprotocol it picks, negotiate
//! permessage-deflate (`deflate`), or send anything.
//!
//! The rules, in the order they are checked:
//!
//!   HTTP/1.1 (RFC 6455 §4.2.1)       HTTP/2 (RFC 8441 §4, §5)
//!   method GET                       method CONNECT (`:protocol` websocket
//!                                    is the caller's to check)
//!   version HTTP/1.1                 -
//!   `Upgrade` lists `websocket`      - (no `Upgrade`, `Connection` or key:
//!   `Connection` lists `upgrade`        RFC 8441 §5 drops them)
//!   `Sec-WebSocket-Version: 13`      `Sec-WebSocket-Version: 13`
//!   `Sec-WebSocket-Key`: one field,  -
//!     base64 of 16 bytes
//!   `Sec-WebSocket-Protocol`: tokens `Sec-WebSocket-Protocol`: tokens
//!
//! A refusal is a 400, except a missing or other version: 426 with
//! `Sec-WebSocket-Version: 13`, so the client can retry with it (RFC 6455
//! §4.2.2 item 4, §4.4). The version is checked before the key, so a client
//! of an older draft (other key fields) learns which version to speak.
//! `Upgrade` and `Connection` tokens compare without regard to case (RFC 9110
//! §7.8, §7.6.1). `Sec-WebSocket-Extensions` never refuses a handshake:
//! extensions the server does not support, or cannot read, are declined by
//! leaving them out of the answer (RFC 6455 §9.1).

use std::fmt;

use base64::Engine as _;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use sha1::{Digest, Sha1};

use crate::proto::syntax::trim_ows;
use crate::proto::websocket::deflate::{DeflateAgreement, DeflateOffer};
use crate::proto::websocket::list::{self, Extension};

/// The GUID a server appends to the key (RFC 6455 §1.3, §4.2.2 item 5.4).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version (RFC 6455 §4.1 item 9, §11.6).
const VERSION: &str = "13";

/// What a well-formed handshake request offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Offer {
    /// `Sec-WebSocket-Protocol`, in the client's order, duplicates dropped.
    pub(crate) subprotocols: Vec<String>,
    /// The offered extension names, in order, duplicates dropped.
    pub(crate) extensions: Vec<String>,
    /// The usable permessage-deflate offers, if any.
    pub(crate) deflate: Option<DeflateOffer>,
    /// HTTP/1.1 only: the `Sec-WebSocket-Accept` value answering the key.
    pub(crate) accept: Option<HeaderValue>,
}

impl Offer {
    /// Whether the client offered `subprotocol` (the only ones an answer may
    /// name, RFC 6455 §4.2.2 item 5.4).
    pub(crate) fn offers_subprotocol(&self, subprotocol: &str) -> bool {
        self.subprotocols
            .iter()
            .any(|offered| offered == subprotocol)
    }
}

/// A handshake request the server refuses, one variant per rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    /// HTTP/1.1: the method is not GET (RFC 6455 §4.1 item 2).
    MethodNotGet,
    /// HTTP/2: the method is not CONNECT (RFC 8441 §4).
    MethodNotConnect,
    /// HTTP/1.x: the version is not 1.1 (RFC 6455 §4.1 item 2).
    VersionNotHttp11,
    /// `Upgrade` does not list `websocket` (RFC 6455 §4.2.1 item 3).
    MissingUpgrade,
    /// `Connection` does not list `upgrade` (RFC 6455 §4.2.1 item 4).
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Version` (RFC 6455 §4.2.1 item 6).
    MissingVersion,
    /// `Sec-WebSocket-Version` is not exactly one `13` (RFC 6455 §4.4).
    UnsupportedVersion,
    /// No `Sec-WebSocket-Key` (RFC 6455 §4.2.1 item 5).
    MissingKey,
    /// `Sec-WebSocket-Key` on more than one field line (RFC 6455 §11.3.1:
    /// it "MUST NOT appear more than once").
    RepeatedKey,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes (RFC 6455 §4.1 item 7).
    InvalidKey,
    /// A `Sec-WebSocket-Protocol` element is not a token (RFC 6455 §4.1
    /// item 10).
    InvalidSubprotocol,
}

impl HandshakeError {
    /// The status to answer with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            HandshakeError::MissingVersion | HandshakeError::UnsupportedVersion => {
                StatusCode::UPGRADE_REQUIRED
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The fields to answer with: the version this server speaks when the
    /// client's was missing or other (RFC 6455 §4.4). A 426 on HTTP/1.1 also
    /// needs `Upgrade: websocket` (RFC 9110 §15.5.22), which HTTP/2 forbids
    /// (RFC 9113 §8.2.2): that field is the caller's, who knows the version.
    pub(crate) fn response_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if self.status() == StatusCode::UPGRADE_REQUIRED {
            headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static(VERSION));
        }
        headers
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::MethodNotGet => "WebSocket handshake method is not GET",
            HandshakeError::MethodNotConnect => "WebSocket handshake method is not CONNECT",
            HandshakeError::VersionNotHttp11 => "WebSocket handshake needs HTTP/1.1",
            HandshakeError::MissingUpgrade => "Upgrade does not list websocket",
            HandshakeError::MissingConnectionUpgrade => "Connection does not list upgrade",
            HandshakeError::MissingVersion => "no Sec-WebSocket-Version",
            HandshakeError::UnsupportedVersion => "Sec-WebSocket-Version is not 13",
            HandshakeError::MissingKey => "no Sec-WebSocket-Key",
            HandshakeError::RepeatedKey => "more than one Sec-WebSocket-Key",
            HandshakeError::InvalidKey => "Sec-WebSocket-Key is not base64 of 16 bytes",
            HandshakeError::InvalidSubprotocol => "Sec-WebSocket-Protocol has a non-token",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Checks an HTTP/1.1 handshake (RFC 6455 §4.2.1) and reads its offer.
pub(crate) fn check_http1(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<Offer, HandshakeError> {
    if method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if version != Version::HTTP_11 {
        return Err(HandshakeError::VersionNotHttp11);
    }
    if !list::has_token(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !list::has_token(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    check_version(headers)?;
    let key = key(headers)?;
    Ok(Offer {
        accept: Some(accept_key(key)),
        ..offer(headers)?
    })
}

/// Checks an HTTP/2 extended CONNECT whose `:protocol` is `websocket` (RFC
/// 8441 §4, §5) and reads its offer.
pub(crate) fn check_h2(method: &Method, headers: &HeaderMap) -> Result<Offer, HandshakeError> {
    if method != Method::CONNECT {
        return Err(HandshakeError::MethodNotConnect);
    }
    check_version(headers)?;
    offer(headers)
}

/// `Sec-WebSocket-Version: 13`, on one field line (RFC 6455 §4.2.1 item 6;
/// §11.3.5 allows several lines only in a response).
fn check_version(headers: &HeaderMap) -> Result<(), HandshakeError> {
    let mut values = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(HandshakeError::MissingVersion),
        (Some(value), None) if trim_ows(value.as_bytes()) == VERSION.as_bytes() => Ok(()),
        _ => Err(HandshakeError::UnsupportedVersion),
    }
}

/// The key as sent (base64 text, trimmed), once checked.
fn key(headers: &HeaderMap) -> Result<&[u8], HandshakeError> {
    let mut values = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(HandshakeError::MissingKey),
        (Some(value), None) => trim_ows(value.as_bytes()),
        (Some(_), Some(_)) => return Err(HandshakeError::RepeatedKey),
    };
    let mut nonce = [0u8; 18];
    match base64::engine::general_purpose::STANDARD.decode_slice(value, &mut nonce) {
        Ok(16) => Ok(value),
        _ => Err(HandshakeError::InvalidKey),
    }
}

/// What both versions offer: subprotocols and extensions.
fn offer(headers: &HeaderMap) -> Result<Offer, HandshakeError> {
    let mut subprotocols: Vec<String> = Vec::new();
    for element in list::elements(headers, SEC_WEBSOCKET_PROTOCOL) {
        if !list::is_token(element) {
            return Err(HandshakeError::InvalidSubprotocol);
        }
        let name = String::from_utf8_lossy(element);
        if !subprotocols.iter().any(|known| *known == name) {
            subprotocols.push(name.into_owned());
        }
    }
    let offered: Vec<Extension<'_>> = list::extensions(headers).collect();
    let mut extensions: Vec<String> = Vec::new();
    for extension in &offered {
        if !extensions.iter().any(|known| known == extension.name) {
            extensions.push(extension.name.to_owned());
        }
    }
    Ok(Offer {
        subprotocols,
        extensions,
        deflate: DeflateOffer::from_extensions(&offered),
        accept: None,
    })
}

/// `Sec-WebSocket-Accept` for `key` (the key field's value as sent): base64
/// of the SHA-1 of the key followed by the GUID (RFC 6455 §4.2.2 item 5.4).
pub(crate) fn accept_key(key: &[u8]) -> HeaderValue {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    let accept = base64::engine::general_purpose::STANDARD.encode(sha1.finalize());
    HeaderValue::try_from(accept).expect("base64 is a valid field value")
}

/// The fields of the answer accepting `offer`: for HTTP/1.1 (the offer has
/// an `accept`), the 101's `Upgrade`, `Connection` and `Sec-WebSocket-Accept`
/// (RFC 6455 §4.2.2 item 5); for HTTP/2, the 200 has none of them (RFC 8441
/// §5). Both name the subprotocol and the extension agreed, if any.
/// `subprotocol` must be one the client offered ([`Offer::offers_subprotocol`]).
pub(crate) fn response_headers(
    offer: &Offer,
    subprotocol: Option<&str>,
    deflate: Option<&DeflateAgreement>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(accept) = &offer.accept {
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept.clone());
    }
    if let Some(subprotocol) = subprotocol {
        debug_assert!(offer.offers_subprotocol(subprotocol), "{subprotocol:?}");
        // An offered subprotocol is a token, hence a valid field value.
        if let Ok(value) = HeaderValue::from_str(subprotocol) {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    if let Some(deflate) = deflate {
        headers.insert(SEC_WEBSOCKET_EXTENSIONS, deflate.header_value());
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::syntax::header_map;
    use crate::proto::websocket::deflate::negotiate;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    /// A valid HTTP/1.1 handshake, with `changes` applied: `(name, None)`
    /// removes a field, `(name, Some(value))` replaces it (several entries
    /// with one name make several lines).
    fn h1_fields(changes: &[(&str, Option<&str>)]) -> HeaderMap {
        let mut fields = vec![
            ("host", "example.com"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", KEY),
            ("sec-websocket-version", "13"),
        ];
        for (name, _) in changes {
            fields.retain(|(field, _)| field != name);
        }
        fields.extend(
            changes
                .iter()
                .filter_map(|(name, value)| Some((*name, (*value)?))),
        );
        header_map(&fields)
    }

    fn check(changes: &[(&str, Option<&str>)]) -> Result<Offer, HandshakeError> {
        check_http1(&Method::GET, Version::HTTP_11, &h1_fields(changes))
    }

    #[test]
    fn accept_key_of_rfc_6455_section_1_3() {
        assert_eq!(accept_key(KEY.as_bytes()), ACCEPT);
    }

    #[test]
    fn a_valid_http1_handshake() {
        let offer = check(&[]).unwrap();
        assert_eq!(
            offer,
            Offer {
                subprotocols: vec![],
                extensions: vec![],
                deflate: None,
                accept: Some(HeaderValue::from_static(ACCEPT)),
            }
        );
    }

    #[test]
    fn http1_fields_are_read_loosely_where_http_allows() {
        for changes in [
            &[("upgrade", Some("WebSocket"))][..],
            &[("upgrade", Some("h2c, websocket"))],
            &[("upgrade", Some("foo")), ("upgrade", Some("websocket"))],
            &[("connection", Some("keep-alive, upgrade"))],
            &[
                ("connection", Some("keep-alive")),
                ("connection", Some("UPGRADE")),
            ],
            &[("sec-websocket-key", Some(" dGhlIHNhbXBsZSBub25jZQ== "))],
            &[("sec-websocket-version", Some(" 13 "))],
        ] {
            let offer = check(changes).unwrap_or_else(|e| panic!("{changes:?}: {e}"));
            assert_eq!(offer.accept.unwrap(), ACCEPT, "{changes:?}");
        }
    }

    #[test]
    fn http1_refusals() {
        use HandshakeError::*;
        for (changes, expected) in [
            (&[("upgrade", None)][..], MissingUpgrade),
            (&[("upgrade", Some("websocket2"))], MissingUpgrade),
            (&[("upgrade", Some("websocket/13"))], MissingUpgrade),
            (&[("connection", None)], MissingConnectionUpgrade),
            (
                &[("connection", Some("keep-alive"))],
                MissingConnectionUpgrade,
            ),
            (
                &[("connection", Some("upgrade-insecure"))],
                MissingConnectionUpgrade,
            ),
            (&[("sec-websocket-version", None)], MissingVersion),
            (&[("sec-websocket-version", Some("8"))], UnsupportedVersion),
            (
                &[("sec-websocket-version", Some("13, 8"))],
                UnsupportedVersion,
            ),
            (
                &[("sec-websocket-version", Some("013"))],
                UnsupportedVersion,
            ),
            (
                &[
                    ("sec-websocket-version", Some("13")),
                    ("sec-websocket-version", Some("13")),
                ],
                UnsupportedVersion,
            ),
            // The version is checked before the key (hixie-76 clients).
            (
                &[("sec-websocket-version", None), ("sec-websocket-key", None)],
                MissingVersion,
            ),
            (&[("sec-websocket-key", None)], MissingKey),
            (&[("sec-websocket-key", Some(""))], InvalidKey),
            (
                &[
                    ("sec-websocket-key", Some(KEY)),
                    ("sec-websocket-key", Some(KEY)),
                ],
                RepeatedKey,
            ),
            // 15 and 17 bytes, no padding, non-base64, a non-canonical last
            // character, URL-safe alphabet.
            (
                &[("sec-websocket-key", Some("dGhlIHNhbXBsZSBub25j"))],
                InvalidKey,
            ),
            (
                &[(
                    "sec-websocket-key",
                    Some("dGhlIHNhbXBsZSBub25jZQ=="[..22].as_ref()),
                )],
                InvalidKey,
            ),
            (
                &[("sec-websocket-key", Some("dGhlIHNhbXBsZSBub25jZSEh"))],
                InvalidKey,
            ),
            (
                &[("sec-websocket-key", Some("dGhlIHNhbXBsZSBub25jZR=="))],
                InvalidKey,
            ),
            (
                &[("sec-websocket-key", Some("dGhlIHNhbXBsZSBub25jZQ=!"))],
                InvalidKey,
            ),
            (
                &[("sec-websocket-key", Some("-_-_-_-_-_-_-_-_-_-_-w=="))],
                InvalidKey,
            ),
            (
                &[("sec-websocket-protocol", Some("chat, bad proto"))],
                InvalidSubprotocol,
            ),
            (
                &[("sec-websocket-protocol", Some("\"chat\""))],
                InvalidSubprotocol,
            ),
            (
                &[("sec-websocket-protocol", Some("a/b"))],
                InvalidSubprotocol,
            ),
        ] {
            assert_eq!(check(changes), Err(expected), "{changes:?}");
        }
        let headers = h1_fields(&[]);
        assert_eq!(
            check_http1(&Method::POST, Version::HTTP_11, &headers),
            Err(MethodNotGet)
        );
        assert_eq!(
            check_http1(&Method::GET, Version::HTTP_10, &headers),
            Err(VersionNotHttp11)
        );
    }

    #[test]
    fn refusal_answers() {
        for error in [
            HandshakeError::MissingVersion,
            HandshakeError::UnsupportedVersion,
        ] {
            assert_eq!(error.status(), StatusCode::UPGRADE_REQUIRED);
            let headers = error.response_headers();
            assert_eq!(headers.len(), 1);
            assert_eq!(headers[SEC_WEBSOCKET_VERSION], "13");
        }
        for error in [
            HandshakeError::MethodNotGet,
            HandshakeError::MethodNotConnect,
            HandshakeError::VersionNotHttp11,
            HandshakeError::MissingUpgrade,
            HandshakeError::MissingConnectionUpgrade,
            HandshakeError::MissingKey,
            HandshakeError::RepeatedKey,
            HandshakeError::InvalidKey,
            HandshakeError::InvalidSubprotocol,
        ] {
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error:?}");
            assert!(error.response_headers().is_empty(), "{error:?}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn subprotocols_and_extensions() {
        let offer = check(&[
            ("sec-websocket-protocol", Some("chat, , v2.chat")),
            ("sec-websocket-protocol", Some("Chat,chat")),
            (
                "sec-websocket-extensions",
                Some("permessage-deflate; server_max_window_bits=8"),
            ),
            (
                "sec-websocket-extensions",
                Some("x-foo; a=\"1,2\", permessage-deflate; client_max_window_bits, x-foo"),
            ),
        ])
        .unwrap();
        assert_eq!(offer.subprotocols, ["chat", "v2.chat", "Chat"]);
        assert_eq!(offer.extensions, ["permessage-deflate", "x-foo"]);
        assert!(offer.offers_subprotocol("v2.chat"));
        assert!(!offer.offers_subprotocol("v2"));
        let agreement = negotiate(offer.deflate.as_ref().unwrap()).unwrap();
        assert_eq!(
            agreement.header_value(),
            "permessage-deflate; server_max_window_bits=8"
        );
    }

    #[test]
    fn malformed_extensions_never_refuse() {
        let offer = check(&[(
            "sec-websocket-extensions",
            Some("permessage-deflate; bogus, ;;, \"x\", permessage-deflate; server_max_window_bits=\""),
        )])
        .unwrap();
        assert_eq!(offer.extensions, ["permessage-deflate"]);
        assert_eq!(offer.deflate, None);
    }

    #[test]
    fn h2_handshake() {
        let headers = header_map(&[
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "mqtt"),
            ("sec-websocket-extensions", "permessage-deflate"),
        ]);
        let offer = check_h2(&Method::CONNECT, &headers).unwrap();
        assert_eq!(offer.accept, None);
        assert_eq!(offer.subprotocols, ["mqtt"]);
        assert_eq!(offer.extensions, ["permessage-deflate"]);
        assert!(offer.deflate.is_some());
        assert_eq!(
            check_h2(&Method::GET, &headers),
            Err(HandshakeError::MethodNotConnect)
        );
        assert_eq!(
            check_h2(&Method::CONNECT, &header_map::<&str>(&[])),
            Err(HandshakeError::MissingVersion)
        );
        let old = header_map(&[("sec-websocket-version", "8")]);
        assert_eq!(
            check_h2(&Method::CONNECT, &old),
            Err(HandshakeError::UnsupportedVersion)
        );
    }

    #[test]
    fn answers() {
        let h1 = check(&[("sec-websocket-protocol", Some("chat"))]).unwrap();
        let agreement = negotiate(
            &check(&[(
                "sec-websocket-extensions",
                Some("permessage-deflate; server_max_window_bits=10"),
            )])
            .unwrap()
            .deflate
            .unwrap(),
        )
        .unwrap();
        let headers = response_headers(&h1, Some("chat"), Some(&agreement));
        assert_eq!(headers.len(), 5);
        assert_eq!(headers[UPGRADE], "websocket");
        assert_eq!(headers[CONNECTION], "Upgrade");
        assert_eq!(headers[SEC_WEBSOCKET_ACCEPT], ACCEPT);
        assert_eq!(headers[SEC_WEBSOCKET_PROTOCOL], "chat");
        assert_eq!(
            headers[SEC_WEBSOCKET_EXTENSIONS],
            "permessage-deflate; server_max_window_bits=10"
        );
        let plain = response_headers(&h1, None, None);
        assert_eq!(plain.len(), 3);
        assert!(!plain.contains_key(SEC_WEBSOCKET_PROTOCOL));

        let h2_headers = header_map(&[
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat"),
        ]);
        let h2 = check_h2(&Method::CONNECT, &h2_headers).unwrap();
        assert!(response_headers(&h2, None, None).is_empty());
        let headers = response_headers(&h2, Some("chat"), Some(&agreement));
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[SEC_WEBSOCKET_PROTOCOL], "chat");
        assert!(headers.contains_key(SEC_WEBSOCKET_EXTENSIONS));
    }
}
