//! Properties of the RFC 9111 / RFC 9110 field parsers, checked on generated input in every
//! test run (the coverage-guided fuzz targets in `tests/fuzz` go further, outside CI). Each
//! property names the clause it holds the parser to. Cases are bounded so the whole file runs
//! in well under a second.

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;

use super::*;

/// delta-seconds saturate at 2^31 (RFC 9111 §1.2.2).
const CAP: Duration = Duration::from_secs(1 << 31);

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// A field value made of what the list and quoted-string grammars care about.
fn field_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[a-z0-9=,;" \\\t+*-]{0,48}"#).unwrap_or_else(|e| panic!("{e}"))
}

fn header(name: &'static str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
    h
}

proptest! {
    #![proptest_config(config())]

    /// §5.2: any Cache-Control value parses to directives whose durations respect the cap.
    #[test]
    fn directives_are_total_and_capped(value in field_text(), n in any::<u64>()) {
        let text = format!("{value}, max-age={n}, s-maxage={n}");
        let h = header("cache-control", &text);
        let (d, source) = response_directives(&h);
        prop_assert_eq!(source, Source::CacheControl);
        for v in [d.max_age, d.s_maxage, d.stale_while_revalidate, d.stale_if_error, d.min_fresh].into_iter().flatten() {
            prop_assert!(v <= CAP, "{v:?} from {text:?}");
        }
    }

    /// §4.2.1: max-age given twice with different values is stale, the same value twice is
    /// that value, whatever the order.
    #[test]
    fn repeated_max_age_conflict_is_stale(a in 0u64..1_000_000, b in 0u64..1_000_000) {
        let d1 = response_directives(&header("cache-control", &format!("max-age={a}, max-age={b}"))).0;
        let d2 = response_directives(&header("cache-control", &format!("max-age={b}, max-age={a}"))).0;
        let want = if a == b { a } else { 0 };
        prop_assert_eq!(d1.max_age, Some(Duration::from_secs(want)));
        prop_assert_eq!(d1, d2);
    }

    /// RFC 9213 §2.1: CDN-Cache-Control is used exactly when it parses as a non-empty
    /// Dictionary whose known directives have their types; otherwise Cache-Control applies.
    #[test]
    fn cdn_cache_control_is_all_or_nothing(value in field_text()) {
        let mut h = header("cache-control", "max-age=7");
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(CDN_CACHE_CONTROL, v);
        }
        let (d, source) = response_directives(&h);
        match Directives::targeted(&h, &CDN_CACHE_CONTROL) {
            Some(t) => {
                prop_assert_eq!(source, Source::CdnCacheControl);
                prop_assert_eq!(d, t);
            }
            None => {
                prop_assert_eq!(source, Source::CacheControl);
                prop_assert_eq!(d.max_age, Some(Duration::from_secs(7)));
            }
        }
    }

    /// RFC 9213 §2.1: a non-empty CDN-Cache-Control overrides Cache-Control entirely.
    #[test]
    fn cdn_cache_control_wins(cc in field_text(), secs in 0u64..100_000) {
        let mut h = header("cache-control", &cc);
        h.insert(CDN_CACHE_CONTROL, HeaderValue::from_str(&format!("max-age={secs}")).unwrap_or_else(|e| panic!("{e}")));
        let (d, source) = response_directives(&h);
        prop_assert_eq!(source, Source::CdnCacheControl);
        prop_assert_eq!(d.max_age, Some(Duration::from_secs(secs)));
    }

    /// RFC 9110 §14.1.2: a 206 range lies inside the representation; `bytes=a-b` with a <= b
    /// inside it is served exactly; a first-pos at or past the end is unsatisfiable.
    #[test]
    fn ranges_stay_inside_the_representation(first in 0u64..5000, span in 0u64..5000, len in 0u64..5000, suffix in 0u64..6000) {
        let last = first + span;
        for spec in [format!("bytes={first}-{last}"), format!("bytes={first}-"), format!("bytes=-{suffix}")] {
            match decide_range(&Method::GET, &header("range", &spec), &HeaderMap::new(), len, UNIX_EPOCH) {
                RangeDecision::Partial { start, end_inclusive } => {
                    prop_assert!(start <= end_inclusive && end_inclusive < len, "{spec} of {len}: {start}-{end_inclusive}");
                }
                RangeDecision::Unsatisfiable | RangeDecision::Full => {}
            }
        }
        let exact = decide_range(&Method::GET, &header("range", &format!("bytes={first}-{last}")), &HeaderMap::new(), len, UNIX_EPOCH);
        if last < len {
            prop_assert_eq!(exact, RangeDecision::Partial { start: first, end_inclusive: last });
        } else if first >= len {
            prop_assert_eq!(exact, RangeDecision::Unsatisfiable);
        }
    }

    /// RFC 9110 §5.6.7: every IMF-fixdate a sender can write (years 1970 to 9999) parses back
    /// to the same second, in all three formats' preferred one.
    #[test]
    fn http_dates_round_trip(secs in 0u64..253_402_300_800) {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        let text = httpdate::fmt_http_date(t);
        let v = HeaderValue::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(parse_http_date(&v), Some(t), "{}", text);
    }

    /// RFC 9111 §4.1: the secondary key has one line per Vary field, and two requests whose
    /// values of a varied field differ (as tokens) never share a key.
    #[test]
    fn vary_keys_separate_values(a in "[!-~]{0,24}", b in "[!-~]{0,24}", names in "[a-z-]{1,12}( *, *[a-z-]{1,12}){0,4}") {
        let fields = vary_fields(&header("vary", &format!("{names}, accept"))).unwrap_or_default();
        let key_a = vary_key(&fields, &header("accept", &a));
        let key_b = vary_key(&fields, &header("accept", &b));
        prop_assert_eq!(key_a.matches('\n').count(), fields.len());
        let token = |s: &str| !s.contains([',', '"', ' ']);
        if a != b && token(&a) && token(&b) {
            prop_assert_ne!(key_a, key_b);
        }
    }
}
