//! Range and If-Range against a stored representation (RFC 9110 §14.1.2, §14.2, §13.1.5).
//! Input: 8 bytes of total length, then request header lines, a blank line, stored header lines.
#![no_main]

use edge_node::cache::policy::{RangeDecision, decide_range};
use http::Method;
use libfuzzer_sys::fuzz_target;
use outpost_fuzz::{header_map, take_u64};

fuzz_target!(|data: &[u8]| {
    let (bits, rest) = take_u64(data);
    // Small lengths most of the time (where off-by-ones live), any u64 now and then.
    let total = if bits & 1 == 0 { (bits >> 1) % 4096 } else { bits };
    let (req_text, stored_text) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let req = header_map(req_text);
    let stored = header_map(stored_text);
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_601_600);
    for method in [Method::GET, Method::HEAD, Method::POST] {
        match decide_range(&method, &req, &stored, total, now) {
            // RFC 9110 §14.1.2: a satisfiable range lies inside the representation.
            RangeDecision::Partial { start, end_inclusive } => {
                assert!(start <= end_inclusive, "{start}-{end_inclusive}/{total}");
                assert!(end_inclusive < total, "{start}-{end_inclusive}/{total}");
                assert_eq!(method, Method::GET, "§14.2: Range applies to GET only");
            }
            RangeDecision::Full | RangeDecision::Unsatisfiable => {}
        }
    }
});
