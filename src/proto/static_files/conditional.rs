//! Validators and conditional requests (RFC 9110 §8.8, §13).
//!
//! The rules:
//! - a file's `ETag` is strong (RFC 9110 §8.8.3) and made of its inode, its
//!   modification time in nanoseconds and its size, in hex:
//!   `"<inode>-<mtime ns>-<size>"`. Any change that replaces or rewrites
//!   the file changes at least one of them; a precompressed sibling is
//!   another file, so its tag differs from the original's;
//! - `Last-Modified` is the modification time in whole seconds; it is a
//!   strong validator only when it is at least one second before now
//!   (RFC 9110 §8.8.2.2): a file changed twice within a second would
//!   otherwise keep its date;
//! - the preconditions are evaluated in the order of RFC 9110 §13.2.2:
//!   `If-Match` (strong comparison; `*` holds: the file exists) else
//!   `If-Unmodified-Since` -> 412 when false; then `If-None-Match` (weak
//!   comparison, §13.1.2) else `If-Modified-Since` -> 304 when false (the
//!   method is GET or HEAD here); `If-Range` is `range`'s, it only decides
//!   whether `Range` applies;
//! - a field that does not parse (a date that is not an HTTP-date, a list
//!   without a single entity-tag) is ignored, as RFC 9110 §13.1.3 and
//!   §13.1.4 say of dates.
//!
//! What it does not do: read the file's metadata (the runtime passes it),
//! or answer anything but the decision.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE};
use http::HeaderMap;

/// A representation's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validators {
    /// The strong entity-tag, with its quotes.
    pub(crate) etag: String,
    /// The modification time, in whole seconds.
    pub(crate) last_modified: SystemTime,
    /// `last_modified` may serve as a strong validator (`If-Range`).
    pub(crate) last_modified_is_strong: bool,
}

impl Validators {
    /// The validators of a file of `size` bytes, inode `inode`, modified at
    /// `modified`, as seen at `now`.
    pub(crate) fn of_file(size: u64, modified: SystemTime, inode: u64, now: SystemTime) -> Self {
        let since_epoch = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        let etag = format!("\"{inode:x}-{:x}-{size:x}\"", since_epoch.as_nanos());
        let last_modified = UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs());
        let last_modified_is_strong = now
            .duration_since(last_modified)
            .is_ok_and(|d| d >= Duration::from_secs(1));
        Validators {
            etag,
            last_modified,
            last_modified_is_strong,
        }
    }

    /// The `Last-Modified` field value (an IMF-fixdate, RFC 9110 §5.6.7).
    pub(crate) fn last_modified_value(&self) -> String {
        httpdate::fmt_http_date(self.last_modified)
    }
}

/// What the preconditions of a GET or HEAD request decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Go on: answer the request (200, 206 or 416).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// RFC 9110 §13.2.2, steps 1 to 4, for a GET or HEAD request.
pub(crate) fn evaluate(headers: &HeaderMap, validators: &Validators) -> Precondition {
    let etag = opaque(&validators.etag);
    if let Some(list) = tag_list(headers, IF_MATCH) {
        let holds = match list {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| !t.weak && t.opaque == etag),
        };
        if !holds {
            return Precondition::Failed;
        }
    } else if let Some(date) = date(headers, IF_UNMODIFIED_SINCE) {
        if validators.last_modified > date {
            return Precondition::Failed;
        }
    }
    if let Some(list) = tag_list(headers, IF_NONE_MATCH) {
        let matches = match list {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| t.opaque == etag),
        };
        if matches {
            return Precondition::NotModified;
        }
    } else if let Some(date) = date(headers, IF_MODIFIED_SINCE) {
        if validators.last_modified <= date {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether an `If-Range` value (RFC 9110 §13.1.5) lets `Range` apply: an
/// entity-tag that matches strongly, or the exact `Last-Modified` date when
/// that date is a strong validator. Anything else: the whole file (200).
pub(crate) fn if_range_holds(value: &[u8], validators: &Validators) -> bool {
    let value = trim(value);
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match parse_tag(value) {
            Some((tag, rest)) if trim(rest).is_empty() => {
                !tag.weak && tag.opaque == opaque(&validators.etag)
            }
            _ => false,
        };
    }
    let Some(date) = std::str::from_utf8(value)
        .ok()
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    validators.last_modified_is_strong && date == validators.last_modified
}

/// An entity-tag as a client sent it (RFC 9110 §8.8.3).
#[derive(Debug, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    /// Between the quotes.
    opaque: &'a [u8],
}

enum TagList<'a> {
    Any,
    Tags(Vec<Tag<'a>>),
}

/// Between the quotes of our own tag.
fn opaque(etag: &str) -> &[u8] {
    let b = etag.as_bytes();
    &b[1..b.len() - 1]
}

/// `If-Match` / `If-None-Match`: "*" or a list of entity-tags, over every
/// line of the field. `None`: absent, or nothing in it parses.
fn tag_list(headers: &HeaderMap, name: http::header::HeaderName) -> Option<TagList<'_>> {
    let mut tags = Vec::new();
    let mut seen = false;
    for value in headers.get_all(name) {
        seen = true;
        if trim(value.as_bytes()) == b"*" {
            return Some(TagList::Any);
        }
        let mut rest = value.as_bytes();
        loop {
            rest = trim_list_start(rest);
            if rest.is_empty() {
                break;
            }
            match parse_tag(rest) {
                Some((tag, after)) => {
                    tags.push(tag);
                    rest = after;
                }
                // Skip what does not parse, to the next comma.
                None => match rest.iter().position(|&b| b == b',') {
                    Some(i) => rest = &rest[i + 1..],
                    None => break,
                },
            }
        }
    }
    (seen && !tags.is_empty()).then_some(TagList::Tags(tags))
}

/// `[W/]"opaque"` at the start of `s`; returns the tag and what follows.
fn parse_tag(s: &[u8]) -> Option<(Tag<'_>, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let s = s.strip_prefix(b"\"")?;
    let end = s.iter().position(|&b| b == b'"')?;
    let opaque = &s[..end];
    // etagc = %x21 / %x23-7E / obs-text
    if opaque.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return None;
    }
    Some((Tag { weak, opaque }, &s[end + 1..]))
}

/// Skips whitespace and commas (empty list elements, RFC 9110 §5.6.1).
fn trim_list_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b','))
        .unwrap_or(s.len());
    &s[start..]
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &s[start..end.max(start)]
}

/// A date field; `None` when absent, repeated or not an HTTP-date (RFC 9110
/// §13.1.3: then it is ignored).
fn date(headers: &HeaderMap, name: http::header::HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const MODIFIED: u64 = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT

    fn validators() -> Validators {
        let modified = UNIX_EPOCH + Duration::new(MODIFIED, 500);
        Validators::of_file(4096, modified, 0x1234, modified + Duration::from_secs(60))
    }

    #[test]
    fn the_tag_is_inode_mtime_size() {
        let v = validators();
        assert_eq!(
            v.etag,
            format!("\"1234-{:x}-1000\"", MODIFIED * 1_000_000_000 + 500)
        );
        assert_eq!(v.last_modified_value(), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert!(v.last_modified_is_strong);
        let fresh = Validators::of_file(
            1,
            UNIX_EPOCH + Duration::from_secs(MODIFIED),
            1,
            UNIX_EPOCH + Duration::from_millis(MODIFIED * 1000 + 500),
        );
        assert!(!fresh.last_modified_is_strong);
    }

    #[test]
    fn preconditions_in_rfc_9110_order() {
        use Precondition::*;
        let etag = validators().etag;
        let weak = format!("W/{etag}");
        let date = "Tue, 14 Nov 2023 22:13:20 GMT";
        let before = "Tue, 14 Nov 2023 22:13:19 GMT";
        let after = "Tue, 14 Nov 2023 22:13:21 GMT";
        let list = format!("\"a\", {weak} ,\"b\"");
        let cases: Vec<(Vec<(&str, &str)>, Precondition)> = vec![
            (vec![], Proceed),
            (vec![("if-none-match", &etag)], NotModified),
            (vec![("if-none-match", &weak)], NotModified),
            (vec![("if-none-match", "\"other\"")], Proceed),
            (vec![("if-none-match", "*")], NotModified),
            (vec![("if-none-match", &list)], NotModified),
            (
                vec![("if-none-match", "\"a\""), ("if-none-match", &etag)],
                NotModified,
            ),
            (vec![("if-none-match", "\"a,b\", \"c\"")], Proceed),
            (vec![("if-modified-since", date)], NotModified),
            (vec![("if-modified-since", after)], NotModified),
            (vec![("if-modified-since", before)], Proceed),
            (vec![("if-modified-since", "yesterday")], Proceed),
            // If-None-Match wins over If-Modified-Since (§13.2.2 step 4).
            (
                vec![("if-none-match", "\"other\""), ("if-modified-since", date)],
                Proceed,
            ),
            (vec![("if-match", &etag)], Proceed),
            (vec![("if-match", "*")], Proceed),
            (vec![("if-match", &weak)], Failed),
            (vec![("if-match", "\"other\"")], Failed),
            (vec![("if-unmodified-since", date)], Proceed),
            (vec![("if-unmodified-since", before)], Failed),
            (vec![("if-unmodified-since", "garbage")], Proceed),
            // If-Match wins over If-Unmodified-Since (step 2 only without it).
            (
                vec![("if-match", &etag), ("if-unmodified-since", before)],
                Proceed,
            ),
            // 412 before 304 (step 1 before step 3).
            (
                vec![("if-match", "\"other\""), ("if-none-match", &etag)],
                Failed,
            ),
            (
                vec![("if-match", &etag), ("if-none-match", &etag)],
                NotModified,
            ),
        ];
        for (fields, expected) in cases {
            let mut headers = HeaderMap::new();
            for (name, value) in &fields {
                headers.append(
                    http::header::HeaderName::from_static(name),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            assert_eq!(evaluate(&headers, &validators()), expected, "{fields:?}");
        }
    }

    #[test]
    fn if_range() {
        let v = validators();
        let weak = format!("W/{}", v.etag);
        let cases: Vec<(&str, bool)> = vec![
            (&v.etag, true),
            (&weak, false),
            ("\"other\"", false),
            ("Tue, 14 Nov 2023 22:13:20 GMT", true),
            ("Tue, 14 Nov 2023 22:13:21 GMT", false),
            ("garbage", false),
        ];
        for (value, expected) in cases {
            assert_eq!(if_range_holds(value.as_bytes(), &v), expected, "{value}");
        }
        // A date that is not a strong validator never holds.
        let mut fresh = v.clone();
        fresh.last_modified_is_strong = false;
        assert!(!if_range_holds(b"Tue, 14 Nov 2023 22:13:20 GMT", &fresh));
    }
}
