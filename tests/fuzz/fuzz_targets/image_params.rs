//! Image URL parameters, both styles (`?width=400&format=auto`, `/cdn-cgi/image/width=400/a.jpg`),
//! `Accept` negotiation of `format=auto`, and the output geometry planned from them.
//! Input: 8 bytes (source size and flags), then the request target, a NUL byte, `Accept`.
#![no_main]

use edge_node::transform::image::{Bounds, ImageRequest, plan};
use http::{HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use outpost_config::ImagesConfig;
use outpost_fuzz::{split2, take_u64};

fuzz_target!(|data: &[u8]| {
    let (bits, rest) = take_u64(data);
    let (target, accept) = split2(rest, 0);
    let Ok(uri) = Uri::try_from(target) else { return };
    let cfg = ImagesConfig { enabled: true, query: bits & 1 == 0, ..ImagesConfig::default() };
    let Ok(Some(req)) = ImageRequest::parse(&uri, &cfg) else { return };
    // The source the origin sees is itself a request target; image parameters are gone from it.
    assert!(req.source.as_str().starts_with('/'), "{:?}", req.source);
    assert!((1..=100).contains(&req.ops.quality));
    let accept = HeaderValue::from_bytes(accept).ok();
    let resolved = req.ops.resolve(accept.as_ref());
    let _ = resolved.descriptor();
    let bounds = Bounds { max_width: cfg.max_width, max_height: cfg.max_height, max_pixels: cfg.max_source_pixels };
    // Decoded sources are at least 1x1.
    let (sw, sh) = ((bits >> 8) as u32 % 100_000 + 1, (bits >> 40) as u32 % 100_000 + 1);
    let p = plan(sw, sh, resolved.width, resolved.height, resolved.fit, bounds);
    // The output always fits the bounds (geometry.rs's promise) and is never empty.
    assert!(p.width >= 1 && p.height >= 1, "{p:?}");
    assert!(p.width <= bounds.max_width && p.height <= bounds.max_height, "{p:?}");
    assert!(u64::from(p.width) * u64::from(p.height) <= bounds.max_pixels, "{p:?}");
});
