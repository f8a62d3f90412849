//! Freshness lifetime, age and whether a stored response may be used: RFC 9111 §4.2,
//! stale-while-revalidate and stale-if-error (RFC 5861).

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::directives::{Directives, Source, response_directives};
use super::storable::{ServicePolicy, heuristic_enabled};
use crate::http::syntax::{delta_seconds, split_list, text};

/// What the cache needs to know about a stored response, computed when it is stored
/// (and again after a 304 merged new headers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponsePolicy {
    /// §4.2.1: s-maxage, max-age, Expires − Date, the service's default_ttl, heuristic (§4.2.2), else 0.
    pub freshness_lifetime: Duration,
    /// §4.2.3: max(apparent_age, Age + response_delay).
    pub corrected_initial_age: Duration,
    /// RFC 5861 §3; 0 when absent.
    pub stale_while_revalidate: Duration,
    /// RFC 5861 §4; 0 when absent.
    pub stale_if_error: Duration,
    /// must-revalidate, proxy-revalidate or s-maxage (§5.2.2.10): never served stale.
    pub must_revalidate: bool,
    /// §5.2.2.4: always revalidate before use.
    pub no_cache: bool,
    /// §3.5: public, s-maxage or must-revalidate; may answer requests with Authorization.
    pub serve_with_authorization: bool,
    /// RFC 8246.
    pub immutable: bool,
}

/// RFC 9110 §15.1 heuristically cacheable status codes.
const HEURISTIC_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

pub(super) fn heuristically_cacheable(status: StatusCode) -> bool {
    HEURISTIC_STATUSES.contains(&status.as_u16())
}

/// `request_time`: when the cache sent the request upstream; `response_time`: when it
/// received the response head.
pub fn response_policy(
    status: StatusCode,
    resp: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    policy: &ServicePolicy,
) -> ResponsePolicy {
    let (d, source) = response_directives(resp);
    // RFC 9110 §6.6.1: a response without Date gets the time it was received.
    let date = resp.get(DATE).and_then(|v| parse_http_date_at(v, response_time)).unwrap_or(response_time);
    let must_revalidate = d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some();
    ResponsePolicy {
        freshness_lifetime: freshness_lifetime(status, resp, (&d, source), (date, response_time), policy),
        corrected_initial_age: corrected_initial_age(resp, date, request_time, response_time),
        stale_while_revalidate: d.stale_while_revalidate.unwrap_or_default(),
        stale_if_error: d.stale_if_error.unwrap_or_default(),
        must_revalidate,
        no_cache: d.no_cache,
        serve_with_authorization: d.public || d.s_maxage.is_some() || d.must_revalidate,
        immutable: d.immutable,
    }
}

/// `(date, now)`: the response's Date, and when it was received (for two-digit years).
fn freshness_lifetime(
    status: StatusCode,
    resp: &HeaderMap,
    (d, source): (&Directives, Source),
    (date, now): (SystemTime, SystemTime),
    policy: &ServicePolicy,
) -> Duration {
    // §4.2.1: a shared cache uses s-maxage first, then max-age.
    if let Some(v) = d.s_maxage.or(d.max_age) {
        return v;
    }
    // §4.2.1 Expires − Date; §5.3 an invalid Expires (e.g. "0") means already expired.
    // RFC 9213 §2.1: Expires is ignored when a targeted field is used.
    if source == Source::CacheControl && resp.contains_key(EXPIRES) {
        return expires(resp, now).and_then(|e| e.duration_since(date).ok()).unwrap_or(Duration::ZERO);
    }
    // §4.2.2: heuristics only without explicit expiry and for heuristically cacheable
    // statuses or responses marked public.
    if !(heuristically_cacheable(status) || d.public) {
        return Duration::ZERO;
    }
    // The operator's default_ttl is an explicit choice; it comes before the RFC's heuristic.
    if let Some(ttl) = policy.default_ttl {
        return ttl;
    }
    if heuristic_enabled(policy)
        && let Some(lm) = resp.get(LAST_MODIFIED).and_then(|v| parse_http_date_at(v, now))
    {
        let since = date.duration_since(lm).unwrap_or(Duration::ZERO);
        let fraction = if policy.heuristic_fraction.is_nan() { 0.0 } else { policy.heuristic_fraction.clamp(0.0, 1.0) };
        let h = Duration::try_from_secs_f64(since.as_secs_f64() * fraction).unwrap_or(policy.max_heuristic_ttl);
        return h.min(policy.max_heuristic_ttl);
    }
    Duration::ZERO
}

/// §4.2.1: "When there is more than one value present for a given directive (e.g., two
/// Expires header field lines ...), either the first occurrence should be used or the response
/// should be considered stale": several Expires lines that disagree are stale (`None`).
fn expires(resp: &HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let mut lines = resp.get_all(EXPIRES).iter();
    let first = parse_http_date_at(lines.next()?, now)?;
    lines.all(|v| parse_http_date_at(v, now) == Some(first)).then_some(first)
}

/// RFC 9111 §4.2.3.
fn corrected_initial_age(
    resp: &HeaderMap,
    date: SystemTime,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    // apparent_age = max(0, response_time - date_value)
    let apparent_age = response_time.duration_since(date).unwrap_or(Duration::ZERO);
    // response_delay = response_time - request_time
    let response_delay = response_time.duration_since(request_time).unwrap_or(Duration::ZERO);
    // corrected_age_value = age_value + response_delay
    let corrected_age_value = age_value(resp).saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// §5.1: the first member of Age; an invalid value is ignored (0).
fn age_value(resp: &HeaderMap) -> Duration {
    resp.get(AGE).and_then(|v| split_list(&text(v)).first().and_then(|s| delta_seconds(s))).unwrap_or(Duration::ZERO)
}

/// §4.2.3 current_age = corrected_initial_age + resident_time (now − response_time).
pub fn current_age(rp: &ResponsePolicy, response_time: SystemTime, now: SystemTime) -> Duration {
    let resident_time = now.duration_since(response_time).unwrap_or(Duration::ZERO);
    rp.corrected_initial_age.saturating_add(resident_time)
}

/// How a stored response may be used for a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Usability {
    /// Serve it.
    Fresh { ttl: Duration },
    /// Stale: revalidate. `while_revalidate`: may be served now while revalidating in the
    /// background (stale-while-revalidate window, or the client's max-stale allows it).
    Stale { stale_for: Duration, while_revalidate: bool },
    /// Revalidate before use: no-cache response, or the request asks for validation.
    MustRevalidate,
}

/// `age` is `current_age`. Request directives count only when `honor_client`.
pub fn usability(rp: &ResponsePolicy, age: Duration, req: &Directives, honor_client: bool) -> Usability {
    // §5.2.2.4: no-cache responses are never used without validation.
    if rp.no_cache {
        return Usability::MustRevalidate;
    }
    if honor_client {
        // §5.2.1.4 request no-cache.
        if req.no_cache {
            return Usability::MustRevalidate;
        }
        // §5.2.1.1 request max-age: the age must not exceed it; max-age=0 always validates.
        if let Some(max) = req.max_age
            && (max.is_zero() || age > max)
        {
            return Usability::MustRevalidate;
        }
    }
    // §4.2: fresh when freshness_lifetime > current_age.
    if let Some(ttl) = rp.freshness_lifetime.checked_sub(age).filter(|t| !t.is_zero()) {
        // §5.2.1.3 min-fresh: still fresh for at least that long.
        if honor_client && req.min_fresh.is_some_and(|m| ttl < m) {
            return Usability::MustRevalidate;
        }
        return Usability::Fresh { ttl };
    }
    let stale_for = age.saturating_sub(rp.freshness_lifetime);
    // §4.2.4: never serve stale when must-revalidate / proxy-revalidate / s-maxage apply.
    let client_wants_fresh = honor_client && req.min_fresh.is_some();
    let may_serve_stale = !(rp.must_revalidate || client_wants_fresh);
    // RFC 5861 §3 stale-while-revalidate window.
    let in_swr = !rp.stale_while_revalidate.is_zero() && stale_for <= rp.stale_while_revalidate;
    // §5.2.1.2 the client accepts this much staleness.
    let client_accepts = honor_client && max_stale_allows(req, stale_for);
    Usability::Stale { stale_for, while_revalidate: may_serve_stale && (in_swr || client_accepts) }
}

/// The policy of a response soft-purged at `purged_at`: its freshness lifetime ends at the age it
/// had then (or where it already ended), so it is stale from the purge on, and RFC 9111 §4.2.4
/// (must-revalidate), `no-cache`, the client's directives and the RFC 5861 windows
/// (stale-while-revalidate, stale-if-error) apply to it as to any stale response, counted from
/// the purge.
pub fn stale_from(rp: &ResponsePolicy, response_time: SystemTime, purged_at: SystemTime) -> ResponsePolicy {
    let age_at_purge = current_age(rp, response_time, purged_at);
    ResponsePolicy { freshness_lifetime: rp.freshness_lifetime.min(age_at_purge), ..*rp }
}

fn max_stale_allows(req: &Directives, stale_for: Duration) -> bool {
    match req.max_stale {
        Some(None) => true,
        Some(Some(max)) => stale_for <= max,
        None => false,
    }
}

/// May the stored response be served because revalidation failed (no answer or a 5xx,
/// §4.3.3)? A fresh response may; a stale one within stale-if-error (response, or the
/// request's stale-if-error / max-stale when honored, RFC 5861 §4), never with
/// must-revalidate (§4.2.4). Never with no-cache (§5.2.2.4: not without successful validation).
pub fn stale_on_error_ok(rp: &ResponsePolicy, age: Duration, req: &Directives, honor_client: bool) -> bool {
    if rp.no_cache {
        return false;
    }
    if age < rp.freshness_lifetime {
        return true;
    }
    if rp.must_revalidate {
        return false;
    }
    let stale_for = age.saturating_sub(rp.freshness_lifetime);
    let in_window = |w: Duration| !w.is_zero() && stale_for <= w;
    in_window(rp.stale_if_error)
        || (honor_client && (req.stale_if_error.is_some_and(in_window) || max_stale_allows(req, stale_for)))
}

/// HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, rfc850-date or asctime-date. An rfc850-date's
/// two-digit year is read with a fixed pivot (00-69 → 20xx, 70-99 → 19xx); where the time of
/// receipt is known, use [`parse_http_date_at`], which applies §5.6.7's 50-year rule.
pub fn parse_http_date(v: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(v.to_str().ok()?.trim()).ok()
}

/// Average Gregorian year (365.2425 days), for the 50-year window.
const YEAR_SECS: u64 = 31_556_952;

/// [`parse_http_date`] received at `now`. RFC 9110 §5.6.7: "Recipients of a timestamp value in
/// rfc850-date format, which uses a two-digit year, MUST interpret a timestamp that appears to
/// be more than 50 years in the future as representing the most recent year in the past that
/// had the same last two digits." The year is the latest one with those digits that starts no
/// more than 50 years after `now`; the day name must then match the date (httpdate checks it).
pub fn parse_http_date_at(v: &HeaderValue, now: SystemTime) -> Option<SystemTime> {
    let s = v.to_str().ok()?.trim();
    let Some((day, rest)) = rfc850_parts(s) else {
        return httpdate::parse_http_date(s).ok();
    };
    let b = rest.as_bytes();
    let yy = digit(*b.get(7)?)? * 10 + digit(*b.get(8)?)?;
    let limit = now.checked_add(Duration::from_secs(50 * YEAR_SECS))?;
    let base = (civil_year(now) / 100).checked_mul(100)?.checked_add(yy)?;
    let year = [base.checked_add(100), Some(base), base.checked_sub(100)]
        .into_iter()
        .flatten()
        .find(|y| year_start(*y).is_some_and(|t| t <= limit))?;
    // Rebuilt as an IMF-fixdate: httpdate checks every field and the day name.
    let imf = format!("{day}, {} {} {year:04} {} GMT", rest.get(..2)?, rest.get(3..6)?, rest.get(10..18)?);
    httpdate::parse_http_date(&imf).ok()
}

/// `Sunday, 06-Nov-94 08:49:37 GMT` → ("Sun", "06-Nov-94 08:49:37 GMT").
fn rfc850_parts(s: &str) -> Option<(&'static str, &str)> {
    const DAYS: [(&str, &str); 7] = [
        ("Monday", "Mon"),
        ("Tuesday", "Tue"),
        ("Wednesday", "Wed"),
        ("Thursday", "Thu"),
        ("Friday", "Fri"),
        ("Saturday", "Sat"),
        ("Sunday", "Sun"),
    ];
    let (name, rest) = s.split_once(", ")?;
    let (_, abbrev) = DAYS.iter().find(|(full, _)| *full == name)?;
    let b = rest.as_bytes();
    (b.len() == 22 && b.get(2) == Some(&b'-') && b.get(6) == Some(&b'-')).then_some((*abbrev, rest))
}

fn digit(c: u8) -> Option<u16> {
    c.is_ascii_digit().then(|| u16::from(c - b'0'))
}

/// The Gregorian year `t` falls in (0 before 1970, saturating far ahead).
fn civil_year(t: SystemTime) -> u16 {
    let days = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    let mut year = u16::try_from(1970 + days.saturating_mul(400) / 146_097).unwrap_or(u16::MAX);
    // The 400-year average can be a day off around 1 January.
    while year_start(year).is_some_and(|s| s > t) {
        year -= 1;
    }
    year
}

/// 1 January of `year` (1970 or later), 00:00:00 UTC (days_from_civil, H. Hinnant).
fn year_start(year: u16) -> Option<SystemTime> {
    let y = i64::from(year) - 1;
    let (era, yoe) = (y.div_euclid(400), y.rem_euclid(400));
    // 1 January is day 306 of the March-based year before.
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + 306 - 719_468;
    let secs = u64::try_from(days).ok()?.checked_mul(86_400)?;
    std::time::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderName;
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_000_000_000;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }
    fn date(s: u64) -> String {
        httpdate::fmt_http_date(at(s))
    }
    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    fn map(pairs: &[(&str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    struct Case {
        clause: &'static str,
        status: u16,
        resp: Vec<(&'static str, String)>,
        request_time: u64,
        response_time: u64,
        policy: ServicePolicy,
        lifetime: u64,
        initial_age: u64,
    }

    #[test]
    fn lifetime_and_age_table() {
        let p = ServicePolicy::default;
        let cc = |v: &str| ("cache-control", v.to_string());
        let d0 = ("date", date(T0));
        let cases = [
            Case {
                clause: "RFC 9111 §4.2.1 max-age",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60")],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 60,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.1 s-maxage beats max-age in a shared cache",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60, s-maxage=5")],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 5,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.1 max-age beats Expires",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60"), ("expires", date(T0 + 600))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 60,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.1 two Expires lines that disagree: stale",
                status: 200,
                resp: vec![d0.clone(), ("expires", date(T0 + 600)), ("expires", date(T0 + 60))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.1 two identical Expires lines: no conflict",
                status: 200,
                resp: vec![d0.clone(), ("expires", date(T0 + 600)), ("expires", date(T0 + 600))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 600,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9110 §5.6.7 rfc850-date Expires and asctime Date",
                status: 200,
                // T0 = Sun, 09 Sep 2001 01:46:40 GMT.
                resp: vec![
                    ("date", "Sun Sep  9 01:46:40 2001".into()),
                    ("expires", "Sunday, 09-Sep-01 01:56:40 GMT".into()),
                ],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 600,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.2 heuristic from an asctime Last-Modified",
                status: 200,
                resp: vec![d0.clone(), ("last-modified", "Sun Sep  9 01:30:00 2001".into())],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 100,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §5.3 garbage Expires: stale",
                status: 200,
                resp: vec![d0.clone(), ("expires", "next tuesday".into()), ("last-modified", date(T0 - 1000))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.1 Expires − Date",
                status: 200,
                resp: vec![d0.clone(), ("expires", date(T0 + 600))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 600,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §5.3 invalid Expires means already expired",
                status: 200,
                resp: vec![d0.clone(), ("expires", "0".into()), ("last-modified", date(T0 - 1000))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §5.3 Expires before Date is stale",
                status: 200,
                resp: vec![d0.clone(), ("expires", date(T0 - 10))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9110 §6.6.1 Expires without Date: Date = response_time",
                status: 200,
                resp: vec![("expires", date(T0 + 100))],
                request_time: T0 + 10,
                response_time: T0 + 10,
                policy: p(),
                lifetime: 90,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9213 §2.1 targeted field: Cache-Control and Expires ignored",
                status: 200,
                resp: vec![
                    d0.clone(),
                    cc("max-age=600"),
                    ("expires", date(T0 + 600)),
                    ("cdn-cache-control", "no-transform".into()),
                ],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9213 §2.1 CDN-Cache-Control max-age",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=5"), ("cdn-cache-control", "max-age=600".into())],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 600,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.2 heuristic: 10% of Date − Last-Modified",
                status: 200,
                resp: vec![d0.clone(), ("last-modified", date(T0 - 1000))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 100,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.2 heuristic capped at max_heuristic_ttl",
                status: 200,
                resp: vec![d0.clone(), ("last-modified", date(T0 - 100_000_000))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 86_400,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.2 no heuristic for a non-heuristically-cacheable status",
                status: 500,
                resp: vec![d0.clone(), ("last-modified", date(T0 - 1000))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.2 heuristic for a response marked public",
                status: 500,
                resp: vec![d0.clone(), cc("public"), ("last-modified", date(T0 - 1000))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 100,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.2 Last-Modified after Date: heuristic 0",
                status: 200,
                resp: vec![d0.clone(), ("last-modified", date(T0 + 1000))],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.2 default_ttl without Last-Modified",
                status: 200,
                resp: vec![d0.clone()],
                request_time: T0,
                response_time: T0,
                policy: ServicePolicy { default_ttl: Some(secs(30)), ..p() },
                lifetime: 30,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.2 hostile heuristic_fraction (NaN) disables heuristics",
                status: 200,
                resp: vec![d0.clone(), ("last-modified", date(T0 - 1000))],
                request_time: T0,
                response_time: T0,
                policy: ServicePolicy { heuristic_fraction: f64::NAN, ..p() },
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.1 nothing: lifetime 0",
                status: 200,
                resp: vec![d0.clone()],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 0,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §4.2.3 apparent_age = response_time − Date",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60")],
                request_time: T0 + 7,
                response_time: T0 + 7,
                policy: p(),
                lifetime: 60,
                initial_age: 7,
            },
            Case {
                clause: "RFC 9111 §4.2.3 Age header added to response_delay",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60"), ("age", "20".into())],
                request_time: T0,
                response_time: T0 + 3,
                policy: p(),
                lifetime: 60,
                initial_age: 23,
            },
            Case {
                clause: "RFC 9111 §4.2.3 response_delay alone",
                status: 200,
                resp: vec![("date", date(T0 + 5)), cc("max-age=60")],
                request_time: T0,
                response_time: T0 + 5,
                policy: p(),
                lifetime: 60,
                initial_age: 5,
            },
            Case {
                clause: "RFC 9111 §4.2.3 apparent_age wins over a smaller corrected Age",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60"), ("age", "2".into())],
                request_time: T0 + 30,
                response_time: T0 + 30,
                policy: p(),
                lifetime: 60,
                initial_age: 30,
            },
            Case {
                clause: "RFC 9111 §4.2.3 Date in the future: apparent_age 0",
                status: 200,
                resp: vec![("date", date(T0 + 500)), cc("max-age=60")],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 60,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §5.1 list Age: first member used",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60"), ("age", "4, 90".into())],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 60,
                initial_age: 4,
            },
            Case {
                clause: "RFC 9111 §5.1 invalid Age ignored",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60"), ("age", "-4".into())],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 60,
                initial_age: 0,
            },
            Case {
                clause: "RFC 9111 §1.2.2 huge Age saturates at 2^31",
                status: 200,
                resp: vec![d0.clone(), cc("max-age=60"), ("age", "999999999999999999999999".into())],
                request_time: T0,
                response_time: T0,
                policy: p(),
                lifetime: 60,
                initial_age: 1 << 31,
            },
        ];
        for c in cases {
            let rp = response_policy(
                StatusCode::from_u16(c.status).unwrap(),
                &map(&c.resp),
                at(c.request_time),
                at(c.response_time),
                &c.policy,
            );
            assert_eq!(
                (rp.freshness_lifetime, rp.corrected_initial_age),
                (secs(c.lifetime), secs(c.initial_age)),
                "{}",
                c.clause
            );
        }
    }

    #[test]
    fn flags_table() {
        let cases: [(&str, &str, bool, bool, bool); 6] = [
            // (clause, cache-control, must_revalidate, no_cache, serve_with_authorization)
            ("RFC 9111 §5.2.2.2 must-revalidate", "max-age=5, must-revalidate", true, false, true),
            ("RFC 9111 §5.2.2.8 proxy-revalidate", "max-age=5, proxy-revalidate", true, false, false),
            ("RFC 9111 §5.2.2.10 s-maxage implies proxy-revalidate", "s-maxage=5", true, false, true),
            ("RFC 9111 §5.2.2.4 no-cache", "no-cache", false, true, false),
            ("RFC 9111 §3.5 public allows Authorization", "public, max-age=5", false, false, true),
            ("RFC 9111 §3.5 plain max-age does not", "max-age=5", false, false, false),
        ];
        for (clause, cc, mr, nc, auth) in cases {
            let rp = response_policy(
                StatusCode::OK,
                &map(&[("cache-control", cc.into())]),
                at(T0),
                at(T0),
                &ServicePolicy::default(),
            );
            assert_eq!((rp.must_revalidate, rp.no_cache, rp.serve_with_authorization), (mr, nc, auth), "{clause}");
        }
        let rp = response_policy(
            StatusCode::OK,
            &map(&[("cache-control", "max-age=5, immutable, stale-while-revalidate=7, stale-if-error=9".into())]),
            at(T0),
            at(T0),
            &ServicePolicy::default(),
        );
        assert!(rp.immutable, "RFC 8246 immutable");
        assert_eq!((rp.stale_while_revalidate, rp.stale_if_error), (secs(7), secs(9)), "RFC 5861 windows");
    }

    #[test]
    fn current_age_adds_resident_time() {
        // RFC 9111 §4.2.3 current_age = corrected_initial_age + resident_time
        let rp = response_policy(
            StatusCode::OK,
            &map(&[("age", "10".into()), ("date", date(T0))]),
            at(T0),
            at(T0),
            &ServicePolicy::default(),
        );
        assert_eq!(current_age(&rp, at(T0), at(T0 + 5)), secs(15));
        assert_eq!(current_age(&rp, at(T0), at(T0 - 5)), secs(10), "clock going backwards");
    }

    fn rp(lifetime: u64, swr: u64, sie: u64, must_revalidate: bool, no_cache: bool) -> ResponsePolicy {
        ResponsePolicy {
            freshness_lifetime: secs(lifetime),
            corrected_initial_age: Duration::ZERO,
            stale_while_revalidate: secs(swr),
            stale_if_error: secs(sie),
            must_revalidate,
            no_cache,
            serve_with_authorization: false,
            immutable: false,
        }
    }

    fn req(cc: &str) -> Directives {
        Directives::parse_all([&HeaderValue::from_str(cc).unwrap()])
    }

    #[test]
    fn soft_purged_responses_are_stale_from_the_purge() {
        // Stored at T0, soft-purged at T0 + 10 s; each case is judged at `now` seconds after T0.
        let purged = at(T0 + 10);
        let cases = [
            (
                "RFC 5861 §3: inside stale-while-revalidate, served while revalidating",
                rp(600, 30, 0, false, false),
                "",
                40,
                Usability::Stale { stale_for: secs(30), while_revalidate: true },
            ),
            (
                "RFC 5861 §3: the window is counted from the purge, and ends",
                rp(600, 30, 0, false, false),
                "",
                41,
                Usability::Stale { stale_for: secs(31), while_revalidate: false },
            ),
            (
                "RFC 9111 §4.3: no window, validated first",
                rp(600, 0, 600, false, false),
                "",
                10,
                Usability::Stale { stale_for: secs(0), while_revalidate: false },
            ),
            (
                "RFC 9111 §4.2.4: must-revalidate wins over the window",
                rp(600, 30, 0, true, false),
                "",
                11,
                Usability::Stale { stale_for: secs(1), while_revalidate: false },
            ),
            (
                "RFC 9111 §5.2.2.4: no-cache is always validated",
                rp(600, 30, 0, false, true),
                "",
                11,
                Usability::MustRevalidate,
            ),
            (
                "RFC 9111 §5.2.1.2: the client's max-stale counts from the purge",
                rp(600, 0, 0, false, false),
                "max-stale=5",
                15,
                Usability::Stale { stale_for: secs(5), while_revalidate: true },
            ),
            (
                "already stale before the purge: its own expiry counts",
                rp(5, 30, 0, false, false),
                "",
                36,
                Usability::Stale { stale_for: secs(31), while_revalidate: false },
            ),
        ];
        for (clause, rp, request, now, want) in cases {
            let soft = stale_from(&rp, at(T0), purged);
            let age = current_age(&soft, at(T0), at(T0 + now));
            assert_eq!(usability(&soft, age, &req(request), true), want, "{clause}");
        }
        // stale-if-error is counted from the purge too, and a fresh lifetime left does not serve
        // a soft-purged response on error.
        let soft = stale_from(&rp(600, 0, 20, false, false), at(T0), purged);
        assert!(stale_on_error_ok(&soft, secs(30), &req(""), true), "20 s after the purge");
        assert!(!stale_on_error_ok(&soft, secs(31), &req(""), true), "21 s after the purge");
        let soft = stale_from(&rp(600, 0, 0, false, false), at(T0), purged);
        assert!(!stale_on_error_ok(&soft, secs(11), &req(""), true), "no window: the error is served");
    }

    #[test]
    fn usability_table() {
        struct U {
            clause: &'static str,
            rp: ResponsePolicy,
            age: u64,
            req: &'static str,
            honor: bool,
            want: Usability,
        }
        let stale = |s: u64, w: bool| Usability::Stale { stale_for: secs(s), while_revalidate: w };
        let fresh = |t: u64| Usability::Fresh { ttl: secs(t) };
        let cases = [
            U {
                clause: "RFC 9111 §4.2 fresh while lifetime > age",
                rp: rp(60, 0, 0, false, false),
                age: 10,
                req: "",
                honor: true,
                want: fresh(50),
            },
            U {
                clause: "RFC 9111 §4.2 stale when age == lifetime",
                rp: rp(60, 0, 0, false, false),
                age: 60,
                req: "",
                honor: true,
                want: stale(0, false),
            },
            U {
                clause: "RFC 9111 §4.2.4 stale, no window: revalidate first",
                rp: rp(60, 0, 0, false, false),
                age: 70,
                req: "",
                honor: true,
                want: stale(10, false),
            },
            U {
                clause: "RFC 5861 §3 inside stale-while-revalidate",
                rp: rp(60, 30, 0, false, false),
                age: 90,
                req: "",
                honor: true,
                want: stale(30, true),
            },
            U {
                clause: "RFC 5861 §3 past stale-while-revalidate",
                rp: rp(60, 30, 0, false, false),
                age: 91,
                req: "",
                honor: true,
                want: stale(31, false),
            },
            U {
                clause: "RFC 9111 §4.2.4 must-revalidate forbids stale-while-revalidate",
                rp: rp(60, 30, 0, true, false),
                age: 70,
                req: "",
                honor: true,
                want: stale(10, false),
            },
            U {
                clause: "RFC 9111 §5.2.2.4 no-cache response: always revalidate",
                rp: rp(60, 30, 0, false, true),
                age: 1,
                req: "",
                honor: true,
                want: Usability::MustRevalidate,
            },
            U {
                clause: "RFC 9111 §5.2.1.4 request no-cache",
                rp: rp(60, 0, 0, false, false),
                age: 1,
                req: "no-cache",
                honor: true,
                want: Usability::MustRevalidate,
            },
            U {
                clause: "RFC 9111 §5.2.1.4 request no-cache not honored",
                rp: rp(60, 0, 0, false, false),
                age: 1,
                req: "no-cache",
                honor: false,
                want: fresh(59),
            },
            U {
                clause: "RFC 9111 §5.2.1.1 client max-age=0",
                rp: rp(60, 0, 0, false, false),
                age: 0,
                req: "max-age=0",
                honor: true,
                want: Usability::MustRevalidate,
            },
            U {
                clause: "RFC 9111 §5.2.1.1 client max-age exceeded",
                rp: rp(60, 0, 0, false, false),
                age: 11,
                req: "max-age=10",
                honor: true,
                want: Usability::MustRevalidate,
            },
            U {
                clause: "RFC 9111 §5.2.1.1 client max-age satisfied",
                rp: rp(60, 0, 0, false, false),
                age: 10,
                req: "max-age=10",
                honor: true,
                want: fresh(50),
            },
            U {
                clause: "RFC 9111 §5.2.1.3 min-fresh not met",
                rp: rp(60, 0, 0, false, false),
                age: 50,
                req: "min-fresh=20",
                honor: true,
                want: Usability::MustRevalidate,
            },
            U {
                clause: "RFC 9111 §5.2.1.3 min-fresh met",
                rp: rp(60, 0, 0, false, false),
                age: 30,
                req: "min-fresh=20",
                honor: true,
                want: fresh(30),
            },
            U {
                clause: "RFC 9111 §5.2.1.3 min-fresh forbids stale-while-revalidate",
                rp: rp(60, 30, 0, false, false),
                age: 70,
                req: "min-fresh=1",
                honor: true,
                want: stale(10, false),
            },
            U {
                clause: "RFC 9111 §5.2.1.2 max-stale (any) allows stale",
                rp: rp(60, 0, 0, false, false),
                age: 1000,
                req: "max-stale",
                honor: true,
                want: stale(940, true),
            },
            U {
                clause: "RFC 9111 §5.2.1.2 max-stale=10 within",
                rp: rp(60, 0, 0, false, false),
                age: 70,
                req: "max-stale=10",
                honor: true,
                want: stale(10, true),
            },
            U {
                clause: "RFC 9111 §5.2.1.2 max-stale=10 exceeded",
                rp: rp(60, 0, 0, false, false),
                age: 71,
                req: "max-stale=10",
                honor: true,
                want: stale(11, false),
            },
            U {
                clause: "RFC 9111 §4.2.4 must-revalidate beats client max-stale",
                rp: rp(60, 0, 0, true, false),
                age: 70,
                req: "max-stale",
                honor: true,
                want: stale(10, false),
            },
            U {
                clause: "RFC 9111 §5.2.1.2 max-stale ignored when not honored",
                rp: rp(60, 0, 0, false, false),
                age: 70,
                req: "max-stale",
                honor: false,
                want: stale(10, false),
            },
        ];
        for c in cases {
            assert_eq!(usability(&c.rp, secs(c.age), &req(c.req), c.honor), c.want, "{}", c.clause);
        }
    }

    #[test]
    fn stale_on_error_table() {
        let cases: [(&str, ResponsePolicy, u64, &str, bool, bool); 9] = [
            (
                "RFC 9111 §4.3.3 fresh response may answer when upstream fails",
                rp(60, 0, 0, false, false),
                10,
                "",
                true,
                true,
            ),
            ("RFC 5861 §4 inside stale-if-error", rp(60, 0, 100, false, false), 160, "", true, true),
            ("RFC 5861 §4 past stale-if-error", rp(60, 0, 100, false, false), 161, "", true, false),
            ("RFC 9111 §4.2.4 no window: no stale", rp(60, 0, 0, false, false), 61, "", true, false),
            (
                "RFC 9111 §4.2.4 must-revalidate forbids stale-if-error",
                rp(60, 0, 100, true, false),
                70,
                "",
                true,
                false,
            ),
            (
                "RFC 9111 §5.2.2.4 no-cache: not without successful validation",
                rp(60, 0, 100, false, true),
                10,
                "",
                true,
                false,
            ),
            ("RFC 5861 §4 request stale-if-error", rp(60, 0, 0, false, false), 70, "stale-if-error=10", true, true),
            ("RFC 9111 §5.2.1.2 request max-stale", rp(60, 0, 0, false, false), 70, "max-stale=10", true, true),
            (
                "RFC 5861 §4 request stale-if-error not honored",
                rp(60, 0, 0, false, false),
                70,
                "stale-if-error=10",
                false,
                false,
            ),
        ];
        for (clause, rp, age, r, honor, want) in cases {
            assert_eq!(stale_on_error_ok(&rp, secs(age), &req(r), honor), want, "{clause}");
        }
    }

    #[test]
    fn two_digit_years_table() {
        // Received at 2026-12-07T00:00:00Z; the 50-year window ends early in December 2076.
        let now = UNIX_EPOCH + Duration::from_secs(1_796_601_600);
        let at = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
        let cases: [(&str, &str, Option<SystemTime>); 7] = [
            ("RFC 9110 §5.6.7 94 is 50+ years ahead as 2094: 1994", "Sunday, 06-Nov-94 08:49:37 GMT", at(784_111_777)),
            ("RFC 9110 §5.6.7 76 as 2076 is within 50 years", "Wednesday, 01-Jan-76 00:00:00 GMT", at(3_345_062_400)),
            ("RFC 9110 §5.6.7 the day name must fit the year chosen", "Thursday, 01-Jan-76 00:00:00 GMT", None),
            (
                "RFC 9110 §5.6.7 77 as 2077 is past the window: 1977",
                "Saturday, 01-Jan-77 00:00:00 GMT",
                at(220_924_800),
            ),
            ("RFC 9110 §5.6.7 27 is next year", "Friday, 01-Jan-27 00:00:00 GMT", at(1_798_761_600)),
            ("RFC 9110 §5.6.7 abbreviated day name is no rfc850-date", "Fri, 01-Jan-27 00:00:00 GMT", None),
            ("RFC 9110 §5.6.7 IMF-fixdate unchanged", "Sun, 06 Nov 1994 08:49:37 GMT", at(784_111_777)),
        ];
        for (clause, v, want) in cases {
            assert_eq!(parse_http_date_at(&HeaderValue::from_static(v), now), want, "{clause}: {v}");
        }
        // Total on absurd clocks.
        for now in [UNIX_EPOCH, UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)] {
            let _ = parse_http_date_at(&HeaderValue::from_static("Sunday, 06-Nov-94 08:49:37 GMT"), now);
        }
    }

    #[test]
    fn http_date_forms() {
        // RFC 9110 §5.6.7: all three forms; anything else is invalid.
        let want = Some(UNIX_EPOCH + Duration::from_secs(784_111_777));
        for v in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(parse_http_date(&HeaderValue::from_static(v)), want, "{v}");
        }
        for v in ["0", "", "yesterday", "Sun, 06 Nov 1994 08:49:37 PST"] {
            assert_eq!(parse_http_date(&HeaderValue::from_static(v)), None, "{v}");
        }
    }
}
