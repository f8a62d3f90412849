//! Range requests (RFC 9110 §14) served from a complete stored 200 response.

use http::header::{DATE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use std::time::SystemTime;

use http::{HeaderMap, Method};

use super::conditional::parse_etag;
use super::freshness::parse_http_date_at;

/// How to answer a request that may carry Range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// 200 with the whole representation.
    Full,
    /// 206 with `Content-Range: bytes start-end_inclusive/total`.
    Partial { start: u64, end_inclusive: u64 },
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable,
}

/// For GET requests answered with a stored 200 of `total_len` bytes (the caller checks the
/// status). Only a single byte range is served as 206; several ranges, other units and syntax
/// errors give `Full`, which RFC 9110 §14.2 allows ("a server MAY ignore the Range header").
/// `now` places an RFC 850 two-digit year in If-Range (RFC 9110 §5.6.7).
pub fn decide_range(
    method: &Method,
    req: &HeaderMap,
    stored: &HeaderMap,
    total_len: u64,
    now: SystemTime,
) -> RangeDecision {
    // RFC 9110 §14.2: Range is defined for GET only.
    if method != Method::GET {
        return RangeDecision::Full;
    }
    let mut lines = req.get_all(RANGE).iter();
    let (Some(range), None) = (lines.next(), lines.next()) else {
        return RangeDecision::Full;
    };
    if req.contains_key(IF_RANGE) && !if_range_holds(req, stored, now) {
        return RangeDecision::Full;
    }
    let Ok(range) = range.to_str() else {
        return RangeDecision::Full;
    };
    match parse_single(range) {
        Some(spec) => satisfy(spec, total_len),
        None => RangeDecision::Full,
    }
}

/// RFC 9110 §13.1.5: If-Range holds on a strong ETag match, or an exact match of a strong
/// Last-Modified date (one at least a second before Date, §8.8.2.2).
fn if_range_holds(req: &HeaderMap, stored: &HeaderMap, now: SystemTime) -> bool {
    let mut lines = req.get_all(IF_RANGE).iter();
    let (Some(v), None) = (lines.next(), lines.next()) else {
        return false;
    };
    let text = v.to_str().unwrap_or("").trim();
    if text.starts_with('"') || text.starts_with("W/") {
        let stored_tag = stored.get(ETAG).and_then(parse_etag);
        return matches!((parse_etag(v), stored_tag), (Some(a), Some(b)) if a.strong_eq(&b));
    }
    let (Some(since), Some(lm), Some(date)) = (
        parse_http_date_at(v, now),
        stored.get(LAST_MODIFIED).and_then(|v| parse_http_date_at(v, now)),
        stored.get(DATE).and_then(|v| parse_http_date_at(v, now)),
    ) else {
        return false;
    };
    let strong = date.duration_since(lm).is_ok_and(|d| d.as_secs() >= 1);
    strong && since == lm
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// first-pos "-" [ last-pos ]
    From { first: u64, last: Option<u64> },
    /// "-" suffix-length
    Suffix(u64),
}

/// `bytes=` (unit case-insensitive, §14.1) with exactly one range-spec (empty list elements
/// are allowed, RFC 9110 §5.6.1).
fn parse_single(s: &str) -> Option<Spec> {
    let (unit, set) = s.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = set.split(',').map(|p| p.trim_matches([' ', '\t'])).filter(|p| !p.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return None;
    };
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    let last = if last.is_empty() { None } else { Some(digits(last)?) };
    // §14.1.1: last-pos < first-pos is invalid.
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(Spec::From { first, last })
}

/// 1*DIGIT, saturating at u64::MAX (a huge position is past the end, not an error).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))))
}

/// RFC 9110 §14.1.1 satisfiability and clamping to the representation.
fn satisfy(spec: Spec, len: u64) -> RangeDecision {
    let Some(last_byte) = len.checked_sub(1) else {
        // Empty representation: no int-range is satisfiable; a suffix range would select
        // nothing, so the whole (empty) representation is sent.
        return match spec {
            Spec::From { .. } | Spec::Suffix(0) => RangeDecision::Unsatisfiable,
            Spec::Suffix(_) => RangeDecision::Full,
        };
    };
    match spec {
        // §14.1.1: satisfiable when first-pos < length; last-pos clamped to length - 1.
        Spec::From { first, .. } if first > last_byte => RangeDecision::Unsatisfiable,
        Spec::From { first, last } => {
            RangeDecision::Partial { start: first, end_inclusive: last.map_or(last_byte, |l| l.min(last_byte)) }
        }
        // §14.1.1: a suffix-length of 0 is unsatisfiable; longer than the representation: all of it.
        Spec::Suffix(0) => RangeDecision::Unsatisfiable,
        Spec::Suffix(n) => RangeDecision::Partial { start: len.saturating_sub(n), end_inclusive: last_byte },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const DATE_LATER: &str = "Sun, 06 Nov 1994 09:49:37 GMT";

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn range_table() {
        use RangeDecision::*;
        let p = |start, end_inclusive| Partial { start, end_inclusive };
        let stored: &[(&str, &str)] = &[("etag", "\"v1\""), ("last-modified", LM), ("date", DATE_LATER)];
        type Row = (
            &'static str,
            Method,
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
            u64,
            RangeDecision,
        );
        let cases: Vec<Row> = vec![
            ("RFC 9110 §14.2 no Range", Method::GET, &[], stored, 100, Full),
            ("RFC 9110 §14.1.2 int-range", Method::GET, &[("range", "bytes=0-9")], stored, 100, p(0, 9)),
            (
                "RFC 9110 §14.1 unit is case-insensitive, OWS allowed",
                Method::GET,
                &[("range", "Bytes= 10-19 ")],
                stored,
                100,
                p(10, 19),
            ),
            ("RFC 9110 §14.1.2 open range bytes=N-", Method::GET, &[("range", "bytes=90-")], stored, 100, p(90, 99)),
            (
                "RFC 9110 §14.1.2 last-pos clamped to length-1",
                Method::GET,
                &[("range", "bytes=90-500")],
                stored,
                100,
                p(90, 99),
            ),
            ("RFC 9110 §14.1.2 suffix bytes=-N", Method::GET, &[("range", "bytes=-10")], stored, 100, p(90, 99)),
            (
                "RFC 9110 §14.1.2 suffix longer than the representation",
                Method::GET,
                &[("range", "bytes=-500")],
                stored,
                100,
                p(0, 99),
            ),
            (
                "RFC 9110 §14.1.1 suffix-length 0 unsatisfiable",
                Method::GET,
                &[("range", "bytes=-0")],
                stored,
                100,
                Unsatisfiable,
            ),
            (
                "RFC 9110 §14.1.1 first-pos >= length unsatisfiable",
                Method::GET,
                &[("range", "bytes=100-")],
                stored,
                100,
                Unsatisfiable,
            ),
            (
                "RFC 9110 §14.1.1 huge first-pos unsatisfiable",
                Method::GET,
                &[("range", "bytes=99999999999999999999999-")],
                stored,
                100,
                Unsatisfiable,
            ),
            (
                "RFC 9110 §14.1.1 any int-range on empty content unsatisfiable",
                Method::GET,
                &[("range", "bytes=0-")],
                stored,
                0,
                Unsatisfiable,
            ),
            (
                "RFC 9110 §14.2 several ranges: MAY ignore",
                Method::GET,
                &[("range", "bytes=0-1,5-6")],
                stored,
                100,
                Full,
            ),
            (
                "RFC 9110 §5.6.1 empty list elements ignored",
                Method::GET,
                &[("range", "bytes=0-1, ,")],
                stored,
                100,
                p(0, 1),
            ),
            (
                "RFC 9110 §14.1.1 last < first is invalid: ignore",
                Method::GET,
                &[("range", "bytes=9-1")],
                stored,
                100,
                Full,
            ),
            ("RFC 9110 §14.2 syntax error: ignore", Method::GET, &[("range", "bytes=a-b")], stored, 100, Full),
            ("RFC 9110 §14.2 missing '-': ignore", Method::GET, &[("range", "bytes=5")], stored, 100, Full),
            ("RFC 9110 §14.2 unknown unit: ignore", Method::GET, &[("range", "items=0-1")], stored, 100, Full),
            ("RFC 9110 §14.2 Range only for GET", Method::HEAD, &[("range", "bytes=0-1")], stored, 100, Full),
            (
                "RFC 9110 §14.2 two Range lines: ignore",
                Method::GET,
                &[("range", "bytes=0-1"), ("range", "bytes=2-3")],
                stored,
                100,
                Full,
            ),
            (
                "RFC 9110 §13.1.5 If-Range strong ETag match",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", "\"v1\"")],
                stored,
                100,
                p(0, 1),
            ),
            (
                "RFC 9110 §13.1.5 If-Range ETag mismatch: full",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", "\"v2\"")],
                stored,
                100,
                Full,
            ),
            (
                "RFC 9110 §13.1.5 If-Range weak ETag never matches",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", "W/\"v1\"")],
                &[("etag", "W/\"v1\"")],
                100,
                Full,
            ),
            (
                "RFC 9110 §13.1.5 If-Range exact strong date",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", LM)],
                stored,
                100,
                p(0, 1),
            ),
            (
                "RFC 9110 §5.6.7 If-Range as asctime-date",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", "Sun Nov  6 08:49:37 1994")],
                stored,
                100,
                p(0, 1),
            ),
            (
                "RFC 9110 §5.6.7 If-Range as rfc850-date",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", "Sunday, 06-Nov-94 08:49:37 GMT")],
                stored,
                100,
                p(0, 1),
            ),
            (
                "RFC 9110 §13.1.5 If-Range date mismatch: full",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", DATE_LATER)],
                stored,
                100,
                Full,
            ),
            (
                "RFC 9110 §8.8.2.2 weak Last-Modified (== Date) never matches",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", LM)],
                &[("last-modified", LM), ("date", LM)],
                100,
                Full,
            ),
            (
                "RFC 9110 §13.1.5 If-Range invalid: full",
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", "garbage")],
                stored,
                100,
                Full,
            ),
        ];
        for (clause, m, req, stored, len, want) in cases {
            assert_eq!(decide_range(&m, &map(req), &map(stored), len, SystemTime::UNIX_EPOCH), want, "{clause}");
        }
    }
}
