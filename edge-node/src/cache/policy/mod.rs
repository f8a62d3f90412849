//! HTTP caching policy for an edge node acting as a shared cache (RFC 9111), as pure functions
//! of headers and times passed in.
//!
//! Decides:
//! - which directives apply to a response (`CDN-Cache-Control`, `Surrogate-Control`,
//!   `Cache-Control`, RFC 9213) and to a request ([`directives`]);
//! - whether a response may be stored ([`storable`]);
//! - its freshness lifetime, its age, and whether a stored response may be served, served stale
//!   while revalidating, or served stale on error ([`freshness`]);
//! - the answer to conditional requests, the validators of a revalidation and how a 304 updates
//!   a stored response ([`conditional`]);
//! - whether to answer a Range request with 200, 206 or 416 ([`range`]);
//! - surrogate keys, the Vary secondary key, fields to strip and URIs to invalidate ([`headers`]).
//!
//! Does not: read clocks, do I/O, hold state, build cache keys beyond the Vary part, store
//! bodies, or decide request collapsing. Every function is total: hostile header values give a
//! conservative answer (not storable, stale, `Full`), never a panic.
//!
//! Flow on a miss: [`storable`] → [`response_policy`] at store time; on a hit:
//! [`current_age`] → [`usability`] → [`evaluate_preconditions`] → [`decide_range`]; on
//! revalidation: [`revalidation_headers`] → [`not_modified_matches`] → [`merge_not_modified`]
//! → [`refresh`] → [`response_policy`] again; on upstream failure: [`stale_on_error_ok`].

pub mod conditional;
pub mod directives;
pub mod freshness;
pub mod headers;
pub mod range;
pub mod refresh;
mod sf;
pub mod storable;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties;

pub use self::conditional::{
    EntityTag, Precondition, evaluate_preconditions, merge_not_modified, not_modified_headers, not_modified_matches,
    parse_etag, revalidation_headers,
};
pub use self::directives::{
    CDN_CACHE_CONTROL, Directives, SURROGATE_CONTROL, Source, obeyed_request_directives, request_directives,
    response_directives,
};
pub use self::freshness::{
    ResponsePolicy, Usability, current_age, parse_http_date, parse_http_date_at, response_policy, stale_from,
    stale_on_error_ok, usability,
};
pub use self::headers::{
    CACHE_TAG, MAX_TAG_LEN, MAX_TAGS, SURROGATE_KEY, VaryStar, invalidation_targets, strip_cdn_headers,
    strip_hop_by_hop, tags, vary_fields, vary_key,
};
pub use self::range::{RangeDecision, decide_range};
pub use self::refresh::{Refresh, is_per_request, per_request_fields, refresh, take_per_request};
pub use self::storable::{NotStorable, ServicePolicy, storable};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod hostile_tests {
    //! Principle 8 (never panic on input): every entry point on pseudo-random header values
    //! built from the characters the parsers care about.

    use std::time::{Duration, UNIX_EPOCH};

    use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

    use super::*;

    const ALPHABET: &[u8] = b"0123456789-=,;\"\\/ W*?#:@[]%.+\t\xff\xc3abzGMTbytes";
    const NAMES: &[&str] = &[
        "cache-control",
        "cdn-cache-control",
        "surrogate-control",
        "pragma",
        "expires",
        "date",
        "age",
        "last-modified",
        "etag",
        "vary",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "range",
        "connection",
        "surrogate-key",
        "cache-tag",
        "location",
        "content-location",
        "authorization",
        "set-cookie",
    ];

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap()
        }
    }

    fn random_map(rng: &mut Rng) -> HeaderMap {
        let mut h = HeaderMap::new();
        for _ in 0..rng.below(12) {
            let len = rng.below(40);
            let bytes: Vec<u8> = (0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect();
            let name = HeaderName::from_static(NAMES[rng.below(NAMES.len())]);
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                h.append(name, v);
            }
        }
        h
    }

    #[test]
    fn no_panics_on_hostile_values() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        let policy = ServicePolicy {
            default_ttl: Some(Duration::MAX),
            max_heuristic_ttl: Duration::MAX,
            heuristic_fraction: 1e300,
            ..ServicePolicy::default()
        };
        for _ in 0..10_000 {
            let (req, mut resp) = (random_map(&mut rng), random_map(&mut rng));
            let status = StatusCode::from_u16(u16::try_from(100 + rng.below(600)).unwrap()).unwrap();
            let _ = storable(&Method::GET, &req, status, &resp, &policy);
            let rp = response_policy(status, &resp, t(u64::MAX / 4), t(0), &policy);
            let age = current_age(&rp, t(0), t(u64::MAX / 4));
            let rd = request_directives(&req);
            let _ = usability(&rp, age, &rd, true);
            let _ = stale_on_error_ok(&rp, age, &rd, true);
            let _ = evaluate_preconditions(&Method::GET, &req, status, &resp, t(0));
            let _ = decide_range(&Method::GET, &req, &resp, [0, 100, u64::MAX][rng.below(3)], t(u64::MAX / 4));
            let _ = (not_modified_headers(&resp), revalidation_headers(&resp), not_modified_matches(&resp, &req));
            let _ = (tags(&resp), vary_key(&vary_fields(&resp).unwrap_or_default(), &req));
            let _ = invalidation_targets("shop.example:80", "/a/b?c", &resp);
            merge_not_modified(&mut resp, &req);
            strip_hop_by_hop(&mut resp);
            strip_cdn_headers(&mut resp);
        }
    }
}
