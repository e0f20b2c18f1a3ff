//! Grammar pieces shared by the rules in this folder (RFC 9110 §5.6).
//!
//! What it does: trims optional whitespace and parses `1*DIGIT`, over bytes,
//! so request fields (bytes from the wire) and response fields (text from the
//! application) are read by the same code. What it does not do: decide
//! anything; the callers say what a failure means (a 400 for a client, a 500
//! for an application).

/// Strips optional whitespace (OWS = *( SP / HTAB ), RFC 9110 §5.6.3).
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// `1*DIGIT` as a u64 (the Content-Length grammar, RFC 9110 §8.6); `None`
/// when empty, not all ASCII digits, or too large for a u64 (no body that
/// large can exist, so refusing it loses nothing).
pub(crate) fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
pub(crate) fn header_map<V: AsRef<[u8]>>(fields: &[(&str, V)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in fields {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::header::HeaderValue::from_bytes(value.as_ref()).unwrap(),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_ows_table() {
        for (input, expected) in [
            (&b""[..], &b""[..]),
            (b" ", b""),
            (b" \t ", b""),
            (b"a", b"a"),
            (b" a\t", b"a"),
            (b"\ta b ", b"a b"),
            (b"\na\r", b"\na\r"),
        ] {
            assert_eq!(trim_ows(input), expected, "{input:?}");
        }
    }

    #[test]
    fn parse_decimal_table() {
        for (input, expected) in [
            (&b"0"[..], Some(0)),
            (b"00", Some(0)),
            (b"123", Some(123)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"99999999999999999999999", None),
            (b"", None),
            (b" 1", None),
            (b"1 ", None),
            (b"-1", None),
            (b"+1", None),
            (b"1a", None),
            (b"\xd9\xa3", None),
        ] {
            assert_eq!(parse_decimal(input), expected, "{input:?}");
        }
    }
}
