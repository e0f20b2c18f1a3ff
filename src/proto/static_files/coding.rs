//! Precompressed siblings chosen by `Accept-Encoding` (RFC 9110 §12.5.3).
//!
//! A mount with `precompressed` serves `app.js.br`, `app.js.zst` or
//! `app.js.gz` for `app.js` when the file exists next to it and the client
//! accepts its coding; the response then has `Content-Encoding`, and every
//! response for a file that has siblings has `Vary: Accept-Encoding`
//! (RFC 9110 §12.5.5), the uncompressed one included, so that caches keep
//! them apart.
//!
//! The rules:
//! - a coding is acceptable when `Accept-Encoding` lists it, or lists `*`
//!   without listing it, with a weight above 0 (`q=0`: not acceptable);
//! - no `Accept-Encoding` field: the file as it is (a client that says
//!   nothing gets no coding it may not know);
//! - among the acceptable siblings, the highest weight wins; between equal
//!   weights, `br`, then `zstd`, then `gzip` (smallest first for text);
//! - the file as it is (`identity`) wins over a sibling only when the field
//!   gives `identity` (itself or through `*`) a higher weight than that
//!   sibling's; `identity;q=0` does not make the server refuse: with no
//!   acceptable sibling the file goes as it is (RFC 9110 §12.5.3 lets the
//!   server send it rather than 415).
//!
//! What it does not do: look for the siblings (the runtime says which exist).

use http::header::ACCEPT_ENCODING;
use http::HeaderMap;

/// The codings of precompressed siblings, in the order preferred between
/// equal weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Brotli,
    Zstd,
    Gzip,
}

impl Coding {
    pub(crate) const ALL: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

    /// The `Content-Encoding` token (RFC 9110 §8.4.1; RFC 7932, RFC 8878).
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The sibling's file name suffix.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }
}

/// Weights in thousandths (RFC 9110 §12.4.2: three decimals at most).
type Weight = u16;

/// The coding to send, among the siblings that exist (`available`);
/// `None`: the file as it is.
pub(crate) fn choose(headers: &HeaderMap, available: &[Coding]) -> Option<Coding> {
    if available.is_empty() {
        return None;
    }
    let mut listed = false;
    let mut star: Option<Weight> = None;
    let mut identity: Option<Weight> = None;
    let mut weights: [Option<Weight>; 3] = [None; 3];
    for value in headers.get_all(ACCEPT_ENCODING) {
        listed = true;
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let name = params.next().unwrap_or("").trim_matches([' ', '\t']);
            if name.is_empty() {
                continue;
            }
            let mut weight = 1000;
            for param in params {
                let Some((key, val)) = param.split_once('=') else {
                    continue;
                };
                if key.trim_matches([' ', '\t']).eq_ignore_ascii_case("q") {
                    // An unparsable weight: the item is ignored.
                    weight = qvalue(val.trim_matches([' ', '\t'])).unwrap_or(0);
                }
            }
            let slot = if name == "*" {
                &mut star
            } else if name.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if let Some(i) = Coding::ALL
                .iter()
                .position(|c| name.eq_ignore_ascii_case(c.token()))
            {
                &mut weights[i]
            } else if name.eq_ignore_ascii_case("x-gzip") {
                // RFC 9110 §8.4.1.3: equivalent to gzip.
                &mut weights[2]
            } else {
                continue;
            };
            *slot = Some(slot.map_or(weight, |w: Weight| w.max(weight)));
        }
    }
    if !listed {
        return None;
    }
    let identity = identity.or(star).unwrap_or(0);
    let mut best: Option<(Coding, Weight)> = None;
    for (i, coding) in Coding::ALL.iter().enumerate() {
        if !available.contains(coding) {
            continue;
        }
        let weight = weights[i].or(star).unwrap_or(0);
        if weight == 0 || weight < identity {
            continue;
        }
        if best.is_none_or(|(_, w)| weight > w) {
            best = Some((*coding, weight));
        }
    }
    best.map(|(coding, _)| coding)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn qvalue(s: &str) -> Option<Weight> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += Weight::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use Coding::*;

    #[test]
    fn chosen_by_accept_encoding() {
        let all: &[Coding] = &Coding::ALL;
        let gzip_only: &[Coding] = &[Gzip];
        let cases: Vec<(Option<&str>, &[Coding], Option<Coding>)> = vec![
            (None, all, None),
            (Some(""), all, None),
            (Some("gzip, deflate, br, zstd"), all, Some(Brotli)),
            (Some("gzip, deflate, br, zstd"), &[Zstd, Gzip], Some(Zstd)),
            (Some("gzip, deflate, br"), gzip_only, Some(Gzip)),
            (Some("deflate"), all, None),
            (Some("GZIP"), all, Some(Gzip)),
            (Some("x-gzip"), all, Some(Gzip)),
            (Some("gzip;q=1.0, br;q=0.5"), all, Some(Gzip)),
            (Some("gzip;q=0.5, br;q=0.8, zstd;q=0.9"), all, Some(Zstd)),
            (Some("br;q=0"), all, None),
            (Some("br;q=0, gzip"), all, Some(Gzip)),
            (Some("br;q=0.000, gzip;q=0.001"), all, Some(Gzip)),
            (Some("*"), all, Some(Brotli)),
            (Some("*;q=0.5, br;q=0"), all, Some(Zstd)),
            (Some("*;q=0"), all, None),
            (Some("gzip, *;q=0"), all, Some(Gzip)),
            (Some("identity"), all, None),
            (Some("gzip;q=0.5, identity"), all, None),
            (Some("gzip, identity;q=0.5"), all, Some(Gzip)),
            (Some("gzip, identity"), all, Some(Gzip)),
            (Some("gzip;q=0.5"), all, Some(Gzip)),
            (Some("gzip;q=0.5, *"), all, Some(Brotli)),
            (Some("identity;q=0"), all, None),
            (Some("gzip;q=2"), all, None),
            (Some("gzip;q=0.1234"), all, None),
            (Some("gzip;q=abc, br"), all, Some(Brotli)),
            (Some(" br ; q=0.9 , gzip ; q=1"), all, Some(Gzip)),
            (Some("br"), &[], None),
        ];
        for (field, available, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(field) = field {
                headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(field).unwrap());
            }
            assert_eq!(
                choose(&headers, available),
                expected,
                "{field:?} {available:?}"
            );
        }
        // Over several lines.
        let mut headers = HeaderMap::new();
        headers.append(ACCEPT_ENCODING, HeaderValue::from_static("br;q=0.1"));
        headers.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(choose(&headers, all), Some(Gzip));
    }
}
