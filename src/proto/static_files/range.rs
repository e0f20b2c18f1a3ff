//! Range requests (RFC 9110 §14) on a file of known length.
//!
//! The rules:
//! - only the `bytes` unit (§14.1.2); a field in another unit, or that does
//!   not parse, or with a range whose last position is before its first, is
//!   ignored: the whole file is sent (200), as §14.2 allows;
//! - `first-last`, `first-` and `-suffix` ranges; a range is satisfiable when
//!   its first position is before the end of the file, or, for a suffix, when
//!   its length is not 0 and the file is not empty (§14.1.2); the last
//!   position is cut to the file's end;
//! - no satisfiable range: 416 with `Content-Range: bytes */length`
//!   (§15.5.17);
//! - the satisfiable ranges are sorted and coalesced when they overlap or
//!   are separated by less than `COALESCE_GAP` bytes (§14.6 allows it): a
//!   request cannot make the same bytes go out twice or one part per byte;
//!   one range left: 206 with `Content-Range`; several: 206
//!   `multipart/byteranges` (§14.6);
//! - more than `MAX_RANGES` ranges in one field: ignored, the whole file is
//!   sent (as Apache httpd's `MaxRanges`);
//! - `If-Range` decides whether the field applies at all (`conditional`),
//!   and only GET has ranges (§14.2): the endpoint checks both before asking.
//!
//! What it does not do: read the file; `Multipart` says what to send around
//! each range, and the runtime sends the bytes.

/// More ranges than this in one `Range` field and the field is ignored
/// (Apache httpd's `MaxRanges` default is 200).
pub(crate) const MAX_RANGES: usize = 200;

/// Ranges closer than this are sent as one: about what one more part costs
/// (its boundary, `Content-Type` and `Content-Range` lines).
pub(crate) const COALESCE_GAP: u64 = 80;

/// A satisfiable range, both ends included (RFC 9110 §14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub(crate) first: u64,
    pub(crate) last: u64,
}

impl ByteRange {
    pub(crate) fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The `Content-Range` value for this range of a file of `total` bytes.
    pub(crate) fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.first, self.last)
    }
}

/// The `Content-Range` value of a 416 (RFC 9110 §14.4).
pub(crate) fn unsatisfied_range(total: u64) -> String {
    format!("bytes */{total}")
}

/// What a `Range` field asks of a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeDecision {
    /// Ignore the field: 200 with the whole file.
    Whole,
    /// 206: one range, or several (sorted, coalesced) for a multipart body.
    Partial(Vec<ByteRange>),
    /// 416.
    Unsatisfiable,
}

/// Decide on a `Range` field value for a file of `total` bytes.
pub(crate) fn decide(value: &[u8], total: u64) -> RangeDecision {
    let Some(specs) = parse(value) else {
        return RangeDecision::Whole;
    };
    if specs.len() > MAX_RANGES {
        return RangeDecision::Whole;
    }
    let mut ranges: Vec<ByteRange> = specs
        .into_iter()
        .filter_map(|spec| spec.satisfy(total))
        .collect();
    if ranges.is_empty() {
        return RangeDecision::Unsatisfiable;
    }
    ranges.sort_unstable_by_key(|r| r.first);
    let mut coalesced: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match coalesced.last_mut() {
            Some(last) if range.first <= last.last.saturating_add(COALESCE_GAP + 1) => {
                last.last = last.last.max(range.last);
            }
            _ => coalesced.push(range),
        }
    }
    RangeDecision::Partial(coalesced)
}

/// One range-spec as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`.
    From { first: u64, last: Option<u64> },
    /// `-length`.
    Suffix(u64),
}

impl Spec {
    fn satisfy(self, total: u64) -> Option<ByteRange> {
        match self {
            Spec::From { first, last } if first < total => Some(ByteRange {
                first,
                last: last.map_or(total - 1, |l| l.min(total - 1)),
            }),
            Spec::Suffix(n) if n > 0 && total > 0 => Some(ByteRange {
                first: total.saturating_sub(n),
                last: total - 1,
            }),
            _ => None,
        }
    }
}

/// `bytes=spec, spec...`; `None` when it is not that (another unit, bad
/// syntax, `last < first`, no spec at all).
fn parse(value: &[u8]) -> Option<Vec<Spec>> {
    let value = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let (unit, set) = value.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for item in set.split(',') {
        let item = item.trim_matches([' ', '\t']);
        if item.is_empty() {
            continue; // empty list elements (RFC 9110 §5.6.1)
        }
        let (first, last) = item.split_once('-')?;
        let spec = match (first, last) {
            ("", suffix) => Spec::Suffix(number(suffix)?),
            (first, "") => Spec::From {
                first: number(first)?,
                last: None,
            },
            (first, last) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return None;
                }
                Spec::From {
                    first,
                    last: Some(last),
                }
            }
        };
        specs.push(spec);
        if specs.len() > MAX_RANGES {
            break;
        }
    }
    (!specs.is_empty()).then_some(specs)
}

/// 1*DIGIT, without sign or space; `None` past `u64`.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The parts of a `multipart/byteranges` body (RFC 9110 §14.6, RFC 2046
/// §5.1.1): before each range its delimiter and fields, after the last the
/// close delimiter; `length` is the whole body's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Multipart {
    pub(crate) parts: Vec<(String, ByteRange)>,
    pub(crate) tail: String,
    pub(crate) length: u64,
}

/// Lay out a multipart body for `ranges` of a file of `total` bytes whose
/// type is `content_type`, with `boundary` (which the caller makes unlikely
/// to appear in the file).
pub(crate) fn multipart(
    ranges: &[ByteRange],
    content_type: &str,
    total: u64,
    boundary: &str,
) -> Multipart {
    let mut length = 0;
    let parts = ranges
        .iter()
        .enumerate()
        .map(|(i, range)| {
            let head = format!(
                "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                if i == 0 { "" } else { "\r\n" },
                range.content_range(total)
            );
            length += head.len() as u64 + range.len();
            (head, *range)
        })
        .collect();
    let tail = format!("\r\n--{boundary}--\r\n");
    length += tail.len() as u64;
    Multipart {
        parts,
        tail,
        length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeDecision::*;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    #[test]
    fn range_fields_on_a_file_of_1000_bytes() {
        let cases: Vec<(&str, RangeDecision)> = vec![
            ("bytes=0-99", Partial(vec![r(0, 99)])),
            ("bytes=100-", Partial(vec![r(100, 999)])),
            ("bytes=-100", Partial(vec![r(900, 999)])),
            ("bytes=-5000", Partial(vec![r(0, 999)])),
            ("bytes=990-5000", Partial(vec![r(990, 999)])),
            ("bytes=999-999", Partial(vec![r(999, 999)])),
            ("BYTES = 0-0", Whole), // no space before "=" in a token
            ("Bytes=0-0", Partial(vec![r(0, 0)])),
            ("bytes=0-0, -1", Partial(vec![r(0, 0), r(999, 999)])),
            (
                " bytes=0-9 , 500-509 ,, ",
                Partial(vec![r(0, 9), r(500, 509)]),
            ),
            // Sorted and coalesced: overlapping, adjacent, close.
            ("bytes=500-599, 0-99", Partial(vec![r(0, 99), r(500, 599)])),
            ("bytes=0-99, 50-149", Partial(vec![r(0, 149)])),
            ("bytes=0-99, 100-199", Partial(vec![r(0, 199)])),
            ("bytes=0-99, 150-199", Partial(vec![r(0, 199)])),
            ("bytes=0-99, 181-199", Partial(vec![r(0, 99), r(181, 199)])),
            ("bytes=0-0, 0-0, 0-0", Partial(vec![r(0, 0)])),
            ("bytes=-1, 0-", Partial(vec![r(0, 999)])),
            // Unsatisfiable.
            ("bytes=1000-", Unsatisfiable),
            ("bytes=1000-2000", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=5000-, 1000-1001", Unsatisfiable),
            ("bytes=5000-, 0-1", Partial(vec![r(0, 1)])),
            // Ignored: whole file.
            ("bytes=9-1", Whole),
            ("items=0-1", Whole),
            ("bytes=", Whole),
            ("bytes=a-b", Whole),
            ("bytes=0-1-2", Whole),
            ("bytes=+1-2", Whole),
            ("bytes=-", Whole),
            ("bytes 0-1", Whole),
            ("bytes=99999999999999999999999-", Whole),
        ];
        for (value, expected) in cases {
            assert_eq!(decide(value.as_bytes(), 1000), expected, "{value}");
        }
    }

    #[test]
    fn empty_files_satisfy_no_range() {
        assert_eq!(decide(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(decide(b"bytes=-1", 0), Unsatisfiable);
    }

    #[test]
    fn too_many_ranges_get_the_whole_file() {
        let many = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 1000, i * 1000))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            decide(format!("bytes={many}").as_bytes(), 10_000_000),
            Whole
        );
        let enough = (0..MAX_RANGES)
            .map(|i| format!("{}-{}", i * 1000, i * 1000))
            .collect::<Vec<_>>()
            .join(",");
        match decide(format!("bytes={enough}").as_bytes(), 10_000_000) {
            Partial(ranges) => assert_eq!(ranges.len(), MAX_RANGES),
            other => panic!("{other:?}"),
        }
        // Many overlapping ranges cost one part.
        let overlapping = vec!["0-999999"; MAX_RANGES].join(",");
        assert_eq!(
            decide(format!("bytes={overlapping}").as_bytes(), 10_000_000),
            Partial(vec![r(0, 999_999)])
        );
    }

    #[test]
    fn multipart_layout() {
        let m = multipart(&[r(0, 1), r(5, 9)], "text/plain", 10, "B");
        assert_eq!(
            m.parts[0].0,
            "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n"
        );
        assert_eq!(
            m.parts[1].0,
            "\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-9/10\r\n\r\n"
        );
        assert_eq!(m.tail, "\r\n--B--\r\n");
        let body_len = m
            .parts
            .iter()
            .map(|(h, r)| h.len() as u64 + r.len())
            .sum::<u64>()
            + m.tail.len() as u64;
        assert_eq!(m.length, body_len);
        assert_eq!(unsatisfied_range(10), "bytes */10");
        assert_eq!(r(5, 9).content_range(10), "bytes 5-9/10");
    }
}
