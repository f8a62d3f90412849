//! Which responses are worth compressing, by their `Content-Type`.

use http::HeaderValue;
use outpost_config::TypePattern;

/// Whether a response with this `Content-Type` is compressible under the service's `types`.
/// The media type's essence (`type/subtype`) is matched case-insensitively; parameters
/// (`; charset=utf-8`) are ignored (RFC 9110 §8.3.1). No `Content-Type`, or one that is not
/// visible ASCII: not compressible.
pub fn compressible(content_type: Option<&HeaderValue>, types: &[TypePattern]) -> bool {
    let Some(text) = content_type.and_then(|value| value.to_str().ok()) else { return false };
    let essence = text.split(';').next().unwrap_or_default().trim_matches([' ', '\t']);
    !essence.is_empty() && types.iter().any(|pattern| pattern.matches(essence))
}

#[cfg(test)]
mod tests {
    use outpost_config::CompressionConfig;

    use super::*;

    #[test]
    fn matches_the_essence_of_content_type() {
        let types = CompressionConfig::default_types();
        let cases: &[(Option<&[u8]>, bool)] = &[
            (None, false),
            (Some(b""), false),
            (Some(b"text/html"), true),
            (Some(b"text/html; charset=utf-8"), true),
            (Some(b"Text/HTML;charset=UTF-8"), true),
            (Some(b"  text/css  ; x=y"), true),
            (Some(b"application/json"), true),
            (Some(b"application/problem+json"), true),
            (Some(b"application/javascript; charset=utf-8"), true),
            (Some(b"image/svg+xml"), true),
            (Some(b"application/wasm"), true),
            (Some(b"font/ttf"), true),
            (Some(b"image/png"), false),
            (Some(b"image/webp"), false),
            (Some(b"font/woff2"), false),
            (Some(b"application/octet-stream"), false),
            (Some(b"application/gzip"), false),
            (Some(b"video/mp4"), false),
            (Some(b"text"), false),
            (Some(b";text/html"), false),
            (Some(b"text/html\xff"), false),
        ];
        for (value, expected) in cases {
            let value = value.map(|v| HeaderValue::from_bytes(v).expect("valid header bytes"));
            assert_eq!(compressible(value.as_ref(), &types), *expected, "{value:?}");
        }
        assert!(!compressible(Some(&HeaderValue::from_static("text/html")), &[]));
    }
}
