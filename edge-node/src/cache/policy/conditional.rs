//! Conditional requests (RFC 9110 §13) answered from a stored or just-fetched response, and
//! revalidation of stored responses (RFC 9111 §4.3).

use http::header::{
    AGE, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE, DATE, ETAG, EXPIRES,
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED, VARY,
};
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::freshness::{parse_http_date, parse_http_date_at};
use super::headers::{connection_named, is_hop_by_hop};
use super::refresh::is_per_request;

/// Outcome of evaluating a request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the response as usual.
    Proceed,
    /// Answer 304 with `not_modified_headers`.
    NotModified,
    /// Answer 412.
    Failed,
}

/// An entity tag (RFC 9110 §8.8.3); `opaque` includes the double quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    pub opaque: &'a str,
}

impl EntityTag<'_> {
    /// RFC 9110 §8.8.3.2 strong comparison: both strong and identical.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }
    /// RFC 9110 §8.8.3.2 weak comparison: opaque tags identical.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// Parses one entity-tag at the start of `s`; returns it and the rest of the input.
fn parse_one(s: &str) -> Option<(EntityTag<'_>, &str)> {
    let (weak, s) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let inner = s.strip_prefix('"')?;
    let end = inner.find('"')?;
    let opaque = s.get(..end + 2)?;
    // etagc = %x21 / %x23-7E / obs-text (obs-text arrives as U+FFFD and is accepted).
    if opaque.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return None;
    }
    Some((EntityTag { weak, opaque }, s.get(end + 2..)?))
}

/// A single entity tag field value (ETag).
pub fn parse_etag(v: &HeaderValue) -> Option<EntityTag<'_>> {
    let s = v.to_str().ok()?.trim();
    match parse_one(s)? {
        (tag, "") => Some(tag),
        _ => None,
    }
}

/// An If-Match / If-None-Match value: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagList<'a> {
    Any,
    Tags(Vec<EntityTag<'a>>),
}

/// All lines of a list-of-entity-tags field. `None` when absent or syntactically invalid.
fn tag_list<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<TagList<'a>> {
    let mut tags = Vec::new();
    let mut seen = false;
    for v in h.get_all(name) {
        seen = true;
        let mut s = v.to_str().ok()?;
        loop {
            s = s.trim_start_matches([' ', '\t', ',']);
            if s.is_empty() {
                break;
            }
            if let Some(rest) = s.strip_prefix('*') {
                if rest.trim_start_matches([' ', '\t', ',']).is_empty() && tags.is_empty() {
                    return Some(TagList::Any);
                }
                return None;
            }
            let (tag, rest) = parse_one(s)?;
            tags.push(tag);
            s = rest.trim_start_matches([' ', '\t']);
            if !(s.is_empty() || s.starts_with(',')) {
                return None;
            }
        }
    }
    seen.then_some(TagList::Tags(tags))
}

/// A single-member date field; ignored when repeated or invalid (RFC 9110 §13.1.3, §13.1.4).
/// `now` places an RFC 850 two-digit year (RFC 9110 §5.6.7).
fn single_date(h: &HeaderMap, name: &HeaderName, now: SystemTime) -> Option<SystemTime> {
    let mut values = h.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date_at(first, now)
}

/// RFC 9110 §13.2.2 evaluation order, for a request answered with a stored response at `now`.
/// Preconditions apply only when the response would be 2xx (§13.2.1).
pub fn evaluate_preconditions(
    method: &Method,
    req: &HeaderMap,
    stored_status: StatusCode,
    stored: &HeaderMap,
    now: SystemTime,
) -> Precondition {
    if !stored_status.is_success() {
        return Precondition::Proceed;
    }
    let get_or_head = method == Method::GET || method == Method::HEAD;
    let etag = stored.get(ETAG).and_then(parse_etag);
    let last_modified = stored.get(LAST_MODIFIED).and_then(|v| parse_http_date_at(v, now));
    // Step 1: If-Match, strong comparison (§13.1.1).
    if req.contains_key(IF_MATCH) {
        let ok = match tag_list(req, &IF_MATCH) {
            Some(TagList::Any) => true,
            Some(TagList::Tags(tags)) => etag.is_some_and(|e| tags.iter().any(|t| t.strong_eq(&e))),
            None => false,
        };
        if !ok {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(lm)) = (single_date(req, &IF_UNMODIFIED_SINCE, now), last_modified) {
        // Step 2: If-Unmodified-Since only without If-Match (§13.1.4).
        if lm > since {
            return Precondition::Failed;
        }
    }
    // Step 3: If-None-Match, weak comparison (§13.1.2).
    if req.contains_key(IF_NONE_MATCH) {
        let matched = match tag_list(req, &IF_NONE_MATCH) {
            Some(TagList::Any) => true,
            Some(TagList::Tags(tags)) => etag.is_some_and(|e| tags.iter().any(|t| t.weak_eq(&e))),
            None => false,
        };
        if matched {
            return if get_or_head { Precondition::NotModified } else { Precondition::Failed };
        }
        return Precondition::Proceed;
    }
    // Step 4: If-Modified-Since, GET/HEAD only, only without If-None-Match (§13.1.3).
    if get_or_head
        && let (Some(since), Some(lm)) = (single_date(req, &IF_MODIFIED_SINCE, now), last_modified)
        && lm <= since
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Fields a 304 carries from the stored response (RFC 9110 §15.4.5): Cache-Control,
/// Content-Location, Date, ETag, Expires, Vary, and Last-Modified (allowed "for the purpose of
/// guiding cache updates"). The caller adds Age.
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY, LAST_MODIFIED] {
        for v in stored.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

/// Validators for revalidating a stored response upstream (RFC 9111 §4.3.1): the cache MUST
/// send the stored entity tag (If-None-Match) and SHOULD send Last-Modified (If-Modified-Since).
/// Both are sent; the origin prefers If-None-Match and ignores If-Modified-Since when both are
/// present (RFC 9110 §13.1.3, §13.2.2).
pub fn revalidation_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    // ETag is a singleton; if several valid lines arrive, all are offered.
    let tags: Vec<&str> = stored
        .get_all(ETAG)
        .iter()
        .filter(|v| parse_etag(v).is_some())
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .collect();
    let joined = tags.join(", ");
    if let Ok(v) = HeaderValue::from_str(&joined)
        && !joined.is_empty()
    {
        out.insert(IF_NONE_MATCH, v);
    }
    if let Some(lm) = stored.get(LAST_MODIFIED)
        && parse_http_date(lm).is_some()
    {
        out.insert(IF_MODIFIED_SINCE, lm.clone());
    }
    out
}

/// RFC 9111 §3.2, applied by §4.3.4: each field of the 304 replaces the stored field of that
/// name, except:
/// - Content-Length (§3.2 names it);
/// - Content-Encoding and Content-Range: they describe the stored bytes ("fields necessary to
///   assure integrity of the stored response", §3.2);
/// - hop-by-hop fields and fields named in the 304's Connection (§3.1);
/// - `Set-Cookie` (and `Set-Cookie2`): the 304 answers one client's request, and its cookie
///   is that client's, not the stored response's ([`super::refresh`]); the caller gives it to
///   the requesting client only.
///
/// Date and Age describe the message, not the representation: both are taken from the 304 and
/// dropped when it has none, so the recomputed age starts at the revalidation.
pub fn merge_not_modified(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    let named = connection_named(not_modified);
    stored.remove(AGE);
    if !not_modified.contains_key(DATE) {
        stored.remove(DATE);
    }
    for name in not_modified.keys() {
        let excluded = *name == CONTENT_LENGTH
            || *name == CONTENT_ENCODING
            || *name == CONTENT_RANGE
            || is_hop_by_hop(name)
            || is_per_request(name)
            || named.contains(name);
        if excluded {
            continue;
        }
        stored.remove(name);
        for v in not_modified.get_all(name) {
            stored.append(name.clone(), v.clone());
        }
    }
}

/// Does a 304 select the stored response (RFC 9111 §4.3.4)?
/// - a strong ETag in the 304 must equal the stored strong ETag;
/// - a weak ETag must match the stored ETag by weak comparison;
/// - without ETag, a Last-Modified in the 304 must equal the stored one;
/// - without any validator the 304 answers the conditional request built from this very
///   response (`revalidation_headers`), so it is taken as matching. (§4.3.4 asks that the stored
///   response also lack a validator; this cache validates one stored response per request, and
///   origins often omit validators from 304s.)
pub fn not_modified_matches(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    if let Some(v) = not_modified.get(ETAG) {
        let (Some(new), Some(old)) = (parse_etag(v), stored.get(ETAG).and_then(parse_etag)) else {
            return false;
        };
        return if new.weak { new.weak_eq(&old) } else { new.strong_eq(&old) };
    }
    if let Some(v) = not_modified.get(LAST_MODIFIED) {
        let new = parse_http_date(v);
        return new.is_some() && new == stored.get(LAST_MODIFIED).and_then(parse_http_date);
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type H = &'static [(&'static str, &'static str)];

    /// 2026-12-07T00:00:00Z.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_601_600)
    }

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sat, 05 Nov 1994 08:49:37 GMT";
    const AFTER: &str = "Mon, 07 Nov 1994 08:49:37 GMT";

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    struct Case {
        clause: &'static str,
        method: Method,
        req: &'static [(&'static str, &'static str)],
        status: u16,
        stored: &'static [(&'static str, &'static str)],
        want: Precondition,
    }

    #[test]
    fn preconditions_table() {
        use Precondition::*;
        let strong: &[(&str, &str)] = &[("etag", "\"v1\""), ("last-modified", LM)];
        let weak: &[(&str, &str)] = &[("etag", "W/\"v1\""), ("last-modified", LM)];
        let get = || Method::GET;
        let cases = [
            Case {
                clause: "RFC 9110 §13.2.2 no preconditions",
                method: get(),
                req: &[],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.1 If-Match strong match",
                method: Method::PUT,
                req: &[("if-match", "\"x\", \"v1\"")],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.1 If-Match uses strong comparison (weak stored tag fails)",
                method: get(),
                req: &[("if-match", "W/\"v1\"")],
                status: 200,
                stored: weak,
                want: Failed,
            },
            Case {
                clause: "RFC 9110 §13.1.1 If-Match no match → 412",
                method: get(),
                req: &[("if-match", "\"v2\"")],
                status: 200,
                stored: strong,
                want: Failed,
            },
            Case {
                clause: "RFC 9110 §13.1.1 If-Match: * with a representation",
                method: get(),
                req: &[("if-match", "*")],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.1 If-Match without stored ETag",
                method: get(),
                req: &[("if-match", "\"v1\"")],
                status: 200,
                stored: &[("last-modified", LM)],
                want: Failed,
            },
            Case {
                clause: "RFC 9110 §13.1.4 If-Unmodified-Since: modified after → 412",
                method: get(),
                req: &[("if-unmodified-since", BEFORE)],
                status: 200,
                stored: strong,
                want: Failed,
            },
            Case {
                clause: "RFC 9110 §13.1.4 If-Unmodified-Since: not modified since",
                method: get(),
                req: &[("if-unmodified-since", LM)],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.4 If-Unmodified-Since ignored with If-Match",
                method: get(),
                req: &[("if-match", "\"v1\""), ("if-unmodified-since", BEFORE)],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.4 invalid If-Unmodified-Since ignored",
                method: get(),
                req: &[("if-unmodified-since", "garbage")],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.2 If-None-Match weak comparison → 304",
                method: get(),
                req: &[("if-none-match", "W/\"v1\"")],
                status: 200,
                stored: strong,
                want: NotModified,
            },
            Case {
                clause: "RFC 9110 §13.1.2 If-None-Match on HEAD → 304",
                method: Method::HEAD,
                req: &[("if-none-match", "\"a\", \"v1\"")],
                status: 200,
                stored: weak,
                want: NotModified,
            },
            Case {
                clause: "RFC 9110 §13.1.2 If-None-Match on other methods → 412",
                method: Method::DELETE,
                req: &[("if-none-match", "\"v1\"")],
                status: 200,
                stored: strong,
                want: Failed,
            },
            Case {
                clause: "RFC 9110 §13.1.2 If-None-Match: * matches any representation",
                method: get(),
                req: &[("if-none-match", "*")],
                status: 200,
                stored: strong,
                want: NotModified,
            },
            Case {
                clause: "RFC 9110 §13.1.2 If-None-Match no match → proceed",
                method: get(),
                req: &[("if-none-match", "\"v2\"")],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.2.2 If-None-Match beats If-Modified-Since",
                method: get(),
                req: &[("if-none-match", "\"v2\""), ("if-modified-since", AFTER)],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.2.2 If-Match failure precedes If-None-Match",
                method: get(),
                req: &[("if-match", "\"v2\""), ("if-none-match", "\"v1\"")],
                status: 200,
                stored: strong,
                want: Failed,
            },
            Case {
                clause: "RFC 9110 §13.1.3 If-Modified-Since not modified → 304",
                method: get(),
                req: &[("if-modified-since", LM)],
                status: 200,
                stored: strong,
                want: NotModified,
            },
            Case {
                clause: "RFC 9110 §5.6.7 If-Modified-Since as rfc850-date",
                method: get(),
                req: &[("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT")],
                status: 200,
                stored: strong,
                want: NotModified,
            },
            Case {
                clause: "RFC 9110 §5.6.7 If-Modified-Since as asctime-date",
                method: get(),
                req: &[("if-modified-since", "Sun Nov  6 08:49:37 1994")],
                status: 200,
                stored: strong,
                want: NotModified,
            },
            Case {
                clause: "RFC 9110 §5.6.7 two-digit year 76 within 50 years: 2076",
                method: get(),
                req: &[("if-modified-since", "Wednesday, 01-Jan-76 00:00:00 GMT")],
                status: 200,
                stored: &[("last-modified", "Wed, 01 Jan 2076 00:00:00 GMT")],
                want: NotModified,
            },
            Case {
                clause: "RFC 9110 §5.6.7 If-Unmodified-Since as rfc850-date, modified after → 412",
                method: get(),
                req: &[("if-unmodified-since", "Saturday, 05-Nov-94 08:49:37 GMT")],
                status: 200,
                stored: strong,
                want: Failed,
            },
            Case {
                clause: "RFC 9110 §13.1.3 If-Modified-Since modified → proceed",
                method: get(),
                req: &[("if-modified-since", BEFORE)],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.3 If-Modified-Since ignored for POST",
                method: Method::POST,
                req: &[("if-modified-since", AFTER)],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.3 invalid If-Modified-Since ignored",
                method: get(),
                req: &[("if-modified-since", "yesterday")],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.3 If-Modified-Since without Last-Modified ignored",
                method: get(),
                req: &[("if-modified-since", AFTER)],
                status: 200,
                stored: &[("etag", "\"v1\"")],
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.1.3 If-Modified-Since with several members ignored",
                method: get(),
                req: &[("if-modified-since", AFTER), ("if-modified-since", AFTER)],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §13.2.1 preconditions ignored for a non-2xx response",
                method: get(),
                req: &[("if-none-match", "*")],
                status: 404,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §8.8.3 malformed If-None-Match never matches",
                method: get(),
                req: &[("if-none-match", "v1")],
                status: 200,
                stored: strong,
                want: Proceed,
            },
            Case {
                clause: "RFC 9110 §8.8.3 comma inside an entity tag",
                method: get(),
                req: &[("if-none-match", "\"a,b\"")],
                status: 200,
                stored: &[("etag", "\"a,b\"")],
                want: NotModified,
            },
        ];
        for c in cases {
            let got = evaluate_preconditions(
                &c.method,
                &map(c.req),
                StatusCode::from_u16(c.status).unwrap(),
                &map(c.stored),
                now(),
            );
            assert_eq!(got, c.want, "{}", c.clause);
        }
    }

    #[test]
    fn comparison_table() {
        // RFC 9110 §8.8.3.2 example table.
        let cases = [
            ("W/\"1\"", "W/\"1\"", false, true),
            ("W/\"1\"", "W/\"2\"", false, false),
            ("W/\"1\"", "\"1\"", false, true),
            ("\"1\"", "\"1\"", true, true),
        ];
        for (a, b, strong, weak) in cases {
            let (a, b) = (HeaderValue::from_static(a), HeaderValue::from_static(b));
            let (a, b) = (parse_etag(&a).unwrap(), parse_etag(&b).unwrap());
            assert_eq!((a.strong_eq(&b), a.weak_eq(&b)), (strong, weak), "RFC 9110 §8.8.3.2 {a:?} {b:?}");
        }
        for bad in ["v1", "\"unterminated", "W/v1", "\"a\" \"b\"", "\"a b\""] {
            assert_eq!(parse_etag(&HeaderValue::from_static(bad)), None, "RFC 9110 §8.8.3 {bad}");
        }
    }

    #[test]
    fn not_modified_headers_from_stored() {
        // RFC 9110 §15.4.5: fields a 200 would carry; no content metadata.
        let stored = map(&[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("vary", "accept"),
            ("date", LM),
            ("expires", AFTER),
            ("content-location", "/a"),
            ("last-modified", LM),
            ("content-length", "10"),
            ("content-type", "text/plain"),
        ]);
        let h = not_modified_headers(&stored);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary"]);
    }

    #[test]
    fn revalidation_headers_table() {
        let cases: [(&str, H, H); 4] = [
            (
                "RFC 9111 §4.3.1 MUST send the entity tag, SHOULD send Last-Modified",
                &[("etag", "W/\"v1\""), ("last-modified", LM)],
                &[("if-none-match", "W/\"v1\""), ("if-modified-since", LM)],
            ),
            ("RFC 9111 §4.3.1 Last-Modified only", &[("last-modified", LM)], &[("if-modified-since", LM)]),
            ("RFC 9111 §4.3.1 invalid validators are not sent", &[("etag", "v1"), ("last-modified", "0")], &[]),
            ("RFC 9111 §4.3.1 no validator: unconditional", &[], &[]),
        ];
        for (clause, stored, want) in cases {
            assert_eq!(revalidation_headers(&map(stored)), map(want), "{clause}");
        }
    }

    #[test]
    fn merge_table() {
        let stored = || {
            map(&[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=60"),
                ("content-length", "10"),
                ("content-encoding", "gzip"),
                ("x-a", "1"),
                ("x-a", "2"),
                ("age", "30"),
                ("date", BEFORE),
                ("content-type", "text/plain"),
            ])
        };
        type Row = (&'static str, &'static [(&'static str, &'static str)], &'static str, Option<&'static str>);
        let cases: [Row; 11] = [
            (
                "RFC 9111 §3.2 a field in the 304 replaces the stored one",
                &[("cache-control", "max-age=5")],
                "cache-control",
                Some("max-age=5"),
            ),
            ("RFC 9111 §3.2 all stored lines of that name are replaced", &[("x-a", "3")], "x-a", Some("3")),
            (
                "RFC 9111 §3.2 fields absent from the 304 are kept",
                &[("cache-control", "max-age=5")],
                "content-type",
                Some("text/plain"),
            ),
            ("RFC 9111 §3.2 Content-Length is never updated", &[("content-length", "0")], "content-length", Some("10")),
            (
                "RFC 9111 §3.2 Content-Encoding describes the stored bytes",
                &[("content-encoding", "br")],
                "content-encoding",
                Some("gzip"),
            ),
            (
                "RFC 9111 §3.1 hop-by-hop fields are not stored",
                &[("transfer-encoding", "chunked")],
                "transfer-encoding",
                None,
            ),
            (
                "RFC 9111 §3.1 fields named by Connection are not stored",
                &[("connection", "x-hop"), ("x-hop", "1")],
                "x-hop",
                None,
            ),
            ("RFC 9111 §4.2.3 Age comes from the 304 only", &[("date", LM)], "age", None),
            (
                "RFC 9111 §3.2 / RFC 6265 §3 a 304's Set-Cookie is the requester's, never stored",
                &[("set-cookie", "session=alice")],
                "set-cookie",
                None,
            ),
            ("RFC 9111 §3.1 Keep-Alive in a 304 is hop-by-hop", &[("keep-alive", "timeout=5")], "keep-alive", None),
            ("RFC 9110 §6.6.1 Date comes from the 304 only", &[("cache-control", "max-age=5")], "date", None),
        ];
        for (clause, nm, name, want) in cases {
            let mut s = stored();
            merge_not_modified(&mut s, &map(nm));
            let got: Vec<&str> = s.get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{clause}");
        }
    }

    #[test]
    fn not_modified_matches_table() {
        let cases: [(&str, H, H, bool); 9] = [
            ("RFC 9111 §4.3.4 strong ETag equal", &[("etag", "\"v1\"")], &[("etag", "\"v1\"")], true),
            ("RFC 9111 §4.3.4 strong ETag different", &[("etag", "\"v1\"")], &[("etag", "\"v2\"")], false),
            ("RFC 9111 §4.3.4 strong ETag vs weak stored", &[("etag", "W/\"v1\"")], &[("etag", "\"v1\"")], false),
            ("RFC 9111 §4.3.4 weak ETag matches", &[("etag", "W/\"v1\"")], &[("etag", "W/\"v1\"")], true),
            ("RFC 9111 §4.3.4 ETag in 304, none stored", &[("last-modified", LM)], &[("etag", "\"v1\"")], false),
            ("RFC 9111 §4.3.4 Last-Modified equal", &[("last-modified", LM)], &[("last-modified", LM)], true),
            ("RFC 9111 §4.3.4 Last-Modified different", &[("last-modified", LM)], &[("last-modified", AFTER)], false),
            (
                "RFC 9111 §4.3.4 ETag decides over Last-Modified",
                &[("etag", "\"v1\""), ("last-modified", LM)],
                &[("etag", "\"v2\""), ("last-modified", LM)],
                false,
            ),
            ("RFC 9111 §4.3.4 no validator in the 304", &[("etag", "\"v1\"")], &[("cache-control", "max-age=5")], true),
        ];
        for (clause, stored, nm, want) in cases {
            assert_eq!(not_modified_matches(&map(stored), &map(nm)), want, "{clause}");
        }
    }
}
