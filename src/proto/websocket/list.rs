//! The grammar of the handshake's list fields: `Upgrade`, `Connection`,
//! `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`.
//!
//! What it does: splits comma-separated lists over every field line (RFC 9110
//! §5.6.1), checks tokens (RFC 9110 §5.6.2) and reads the extension list of
//! RFC 6455 §9.1 (`name; param; param=value`, values a token or a quoted
//! string, RFC 9110 §5.6.4). What it does not do: decide anything; a
//! malformed element is reported to the caller, which says what it means.

use std::borrow::Cow;

use http::header::{AsHeaderName, HeaderMap};

use crate::proto::syntax::trim_ows;

/// `token = 1*tchar` (RFC 9110 §5.6.2).
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Splits `value` at each `separator` outside a quoted string (RFC 9110
/// §5.6.4: a backslash escapes the next byte inside one). The pieces are not
/// trimmed; an unterminated quoted string runs to the end of the value.
pub(crate) fn split_unquoted(value: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let bytes = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in bytes.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if !quoted && b == separator {
                rest = Some(&bytes[i + 1..]);
                return Some(&bytes[..i]);
            }
        }
        rest = None;
        Some(bytes)
    })
}

/// The elements of a comma-separated list over every line of field `name`,
/// trimmed, empty elements skipped (RFC 9110 §5.6.1: a recipient ignores
/// them).
pub(crate) fn elements<K: AsHeaderName>(
    headers: &HeaderMap,
    name: K,
) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|value| split_unquoted(value.as_bytes(), b','))
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// Whether a comma-separated list over every line of field `name` has
/// `token`, compared without regard to case (as `Upgrade` and `Connection`
/// tokens are, RFC 9110 §7.6.1, §7.8).
pub(crate) fn has_token<K: AsHeaderName>(headers: &HeaderMap, name: K, token: &str) -> bool {
    elements(headers, name).any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
}

/// One element of `Sec-WebSocket-Extensions` (RFC 6455 §9.1).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Extension<'a> {
    /// The extension's name, a token.
    pub(crate) name: &'a str,
    /// Its parameters, or `Err` when one is malformed (not `token [ "="
    /// (token | quoted-string) ]`, or a quoted value that is not a token once
    /// unescaped, RFC 6455 §9.1).
    pub(crate) params: Result<Vec<Param<'a>>, MalformedParam>,
}

/// A parameter of an extension offer: `name` or `name=value`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Param<'a> {
    pub(crate) name: &'a str,
    /// The value, unquoted: a token.
    pub(crate) value: Option<Cow<'a, str>>,
}

/// A parameter that does not follow RFC 6455 §9.1's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedParam;

/// The extensions offered in every `Sec-WebSocket-Extensions` line, in
/// order. An element whose name is not a token is skipped: it names nothing.
pub(crate) fn extensions(headers: &HeaderMap) -> impl Iterator<Item = Extension<'_>> {
    elements(headers, http::header::SEC_WEBSOCKET_EXTENSIONS).filter_map(|element| {
        let mut parts = split_unquoted(element, b';');
        let name = trim_ows(parts.next()?);
        let name = token_str(name)?;
        let params = parts.map(param).collect();
        Some(Extension { name, params })
    })
}

/// `extension-param = token [ "=" (token | quoted-string) ]`, with optional
/// whitespace around the parts (RFC 6455 §9.1, written in RFC 2616's implied
/// `*LWS` style).
fn param(part: &[u8]) -> Result<Param<'_>, MalformedParam> {
    let part = trim_ows(part);
    let (name, value) = match part.iter().position(|&b| b == b'=') {
        Some(i) => (trim_ows(&part[..i]), Some(trim_ows(&part[i + 1..]))),
        None => (part, None),
    };
    let name = token_str(name).ok_or(MalformedParam)?;
    let value = match value {
        None => None,
        Some(value) => Some(param_value(value).ok_or(MalformedParam)?),
    };
    Ok(Param { name, value })
}

/// A token, or a quoted string whose unescaped content is a token (RFC 6455
/// §9.1).
fn param_value(value: &[u8]) -> Option<Cow<'_, str>> {
    if let Some(token) = token_str(value) {
        return Some(Cow::Borrowed(token));
    }
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut unescaped = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => unescaped.push(*bytes.next()?),
            b'"' => return None,
            _ => unescaped.push(b),
        }
    }
    if !is_token(&unescaped) {
        return None;
    }
    String::from_utf8(unescaped).ok().map(Cow::Owned)
}

fn token_str(bytes: &[u8]) -> Option<&str> {
    if is_token(bytes) {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::syntax::header_map;

    #[test]
    fn tokens() {
        for (input, expected) in [
            (&b"websocket"[..], true),
            (b"chat.v2+json", true),
            (b"a!#$%&'*+-.^_`|~9", true),
            (b"", false),
            (b"a b", false),
            (b"a,b", false),
            (b"a;b", false),
            (b"\"a\"", false),
            (b"a/b", false),
            (b"\xc3\xa9", false),
        ] {
            assert_eq!(is_token(input), expected, "{input:?}");
        }
    }

    #[test]
    fn split_respects_quotes_and_escapes() {
        let split = |value: &'static [u8]| split_unquoted(value, b',').collect::<Vec<_>>();
        assert_eq!(split(b""), [b""]);
        assert_eq!(split(b"a,b"), [&b"a"[..], b"b"]);
        assert_eq!(split(b"a,"), [&b"a"[..], b""]);
        assert_eq!(split(b"x=\"1,2\",b"), [&b"x=\"1,2\""[..], b"b"]);
        assert_eq!(split(b"x=\"\\\",\",b"), [&b"x=\"\\\",\""[..], b"b"]);
        assert_eq!(split(b"x=\"open,b"), [&b"x=\"open,b"[..]]);
    }

    #[test]
    fn elements_span_field_lines_and_skip_empty_ones() {
        let headers = header_map(&[("upgrade", "a, ,b"), ("upgrade", " , c ,")]);
        let found: Vec<_> = elements(&headers, "upgrade").collect();
        assert_eq!(found, [&b"a"[..], b"b", b"c"]);
        assert!(has_token(&headers, "upgrade", "C"));
        assert!(!has_token(&headers, "upgrade", "d"));
    }

    #[test]
    fn extension_grammar() {
        let headers = header_map(&[(
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits, x-foo ;a = 1; b=\"tok\" , \
             bad ext, x-bar; c=\"no way\", x-baz;, x-q; d=\"a\\bc\", x-e; =1",
        )]);
        let found: Vec<_> = extensions(&headers).collect();
        let ok = |name, params: Vec<(&'static str, Option<&'static str>)>| Extension {
            name,
            params: Ok(params
                .into_iter()
                .map(|(name, value)| Param {
                    name,
                    value: value.map(Cow::Borrowed),
                })
                .collect()),
        };
        let malformed = |name| Extension {
            name,
            params: Err(MalformedParam),
        };
        assert_eq!(
            found,
            [
                ok("permessage-deflate", vec![("client_max_window_bits", None)]),
                ok("x-foo", vec![("a", Some("1")), ("b", Some("tok"))]),
                malformed("x-bar"),
                malformed("x-baz"),
                ok("x-q", vec![("d", Some("abc"))]),
                malformed("x-e"),
            ]
        );
    }
}
