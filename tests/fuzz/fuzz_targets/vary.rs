//! Vary (RFC 9111 §4.1) and the other response fields the cache keys and invalidates by:
//! the secondary key, Surrogate-Key / Cache-Tag, Location / Content-Location (§4.4), and the
//! hop-by-hop and CDN-only fields it strips (RFC 9110 §7.6.1, RFC 9213 §2).
//! Input: response header lines, a NUL byte, request header lines, a NUL byte, then
//! `host\npath?query` of the request.
#![no_main]

use std::sync::Arc;

use edge_node::cache::key::CacheKey;
use edge_node::cache::policy::{
    MAX_TAG_LEN, MAX_TAGS, invalidation_targets, strip_cdn_headers, strip_hop_by_hop, tags, vary_fields, vary_key,
};
use libfuzzer_sys::fuzz_target;
use outpost_fuzz::{header_map, split2, text};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let mut resp = header_map(parts.next().unwrap_or_default());
    let req = header_map(parts.next().unwrap_or_default());
    let (host, path) = split2(parts.next().unwrap_or_default(), b'\n');
    let (host, path) = (text(host), text(path));
    if let Ok(fields) = vary_fields(&resp) {
        let key = vary_key(&fields, &req);
        // One line per field, and no value can forge a line of another field.
        assert_eq!(key.matches('\n').count(), fields.len(), "{key:?}");
        let service: Arc<str> = Arc::from("svc");
        let _ = CacheKey::new(&service, &host, &path).variant(&key);
    }
    let t = tags(&resp);
    assert!(t.len() <= MAX_TAGS);
    assert!(t.iter().all(|tag| !tag.is_empty() && tag.len() <= MAX_TAG_LEN));
    let targets = invalidation_targets(&host, &path, &resp);
    assert_eq!(targets.first(), Some(&path));
    strip_hop_by_hop(&mut resp);
    strip_cdn_headers(&mut resp);
});
