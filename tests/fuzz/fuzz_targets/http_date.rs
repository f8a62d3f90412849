//! HTTP-dates (RFC 9110 §5.6.7) and the conditionals that read them and entity tags
//! (§13.1.1-§13.1.4, evaluated in the §13.2.2 order), plus the 304 merge (RFC 9111 §4.3.4).
//! Input: request header lines, a NUL byte, stored header lines, a NUL byte, the 304's lines;
//! the whole input is also tried as one field value.
#![no_main]

use edge_node::cache::policy::{
    evaluate_preconditions, merge_not_modified, not_modified_headers, not_modified_matches, parse_etag,
    parse_http_date, revalidation_headers,
};
use http::{HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use outpost_fuzz::header_map;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let req = header_map(parts.next().unwrap_or_default());
    let stored_text = parts.next().unwrap_or_default();
    let mut stored = header_map(stored_text);
    let not_modified = header_map(parts.next().unwrap_or_default());
    if let Ok(v) = HeaderValue::from_bytes(data) {
        if let Some(t) = parse_http_date(&v) {
            // A date that parsed formats back to one that parses to the same second.
            let again = HeaderValue::from_str(&httpdate::fmt_http_date(t)).ok().and_then(|h| parse_http_date(&h));
            assert_eq!(again, Some(t));
        }
        let _ = parse_etag(&v);
    }
    // A fixed clock keeps runs reproducible; 2026-12-07 puts 70-76 on both sides of the
    // RFC 9110 §5.6.7 50-year window.
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_601_600);
    for method in [Method::GET, Method::HEAD, Method::PUT] {
        let _ = evaluate_preconditions(&method, &req, StatusCode::OK, &stored, now);
    }
    let _ = not_modified_headers(&stored);
    let _ = revalidation_headers(&stored);
    if not_modified_matches(&stored, &not_modified) {
        merge_not_modified(&mut stored, &not_modified);
    }
});
