//! Cache-Control, CDN-Cache-Control (RFC 9213), Surrogate-Control and Pragma as the cache reads
//! them, then the freshness and usability decisions made from them (RFC 9111 §4.2, §5.2).
//! Input: 8 bytes of time offsets, then response header lines, a blank line, request lines.
#![no_main]

use edge_node::cache::policy::{
    CDN_CACHE_CONTROL, Directives, ServicePolicy, Source, current_age, request_directives, response_directives,
    response_policy, stale_on_error_ok, storable, usability,
};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use outpost_fuzz::{header_map, take_u64, time};

fuzz_target!(|data: &[u8]| {
    let (bits, rest) = take_u64(data);
    let (resp_text, req_text) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let resp = header_map(resp_text);
    let req = header_map(req_text);
    let (d, source) = response_directives(&resp);
    let reparsed = Directives::parse_all(resp.get_all(http::header::CACHE_CONTROL).iter());
    // Unknown directives are ignored (§5.2.3): parsing is a pure function of the field.
    assert_eq!(reparsed, Directives::parse_all(resp.get_all(http::header::CACHE_CONTROL).iter()));
    // RFC 9213 §2.2: CDN-Cache-Control is used exactly when it parses (RFC 9651 §4.2) into a
    // non-empty Dictionary whose known directives have their types.
    if let Some(t) = Directives::targeted(&resp, &CDN_CACHE_CONTROL) {
        assert_eq!((d.clone(), source), (t, Source::CdnCacheControl));
    } else {
        assert_ne!(source, Source::CdnCacheControl);
    }
    let req_d = request_directives(&req);
    let status = StatusCode::from_u16(200 + (bits as u16 % 400)).unwrap_or(StatusCode::OK);
    let policy = ServicePolicy::default();
    let request_time = time(bits);
    let response_time = time(bits.rotate_left(17));
    let now = time(bits.rotate_left(31));
    let rp = response_policy(status, &resp, request_time, response_time, &policy);
    if d.s_maxage.is_some() {
        // §5.2.2.10: s-maxage implies proxy-revalidate.
        assert!(rp.must_revalidate);
    }
    let age = current_age(&rp, response_time, now);
    let _ = usability(&rp, age, &req_d, true);
    let _ = stale_on_error_ok(&rp, age, &req_d, true);
    let _ = storable(&Method::GET, &req, status, &resp, &policy);
});
