//! Variants: a transform's output (an encoded body, a transcoded image) stored beside the object
//! it was made from, so the work is done once per object version.
//!
//! A variant's key is the base object's key plus what was done (a descriptor such as `enc=br`
//! or an image's `img1:w=400,f=webp,q=75`) plus the base's version (its validators). So a new
//! version of the base never meets an old variant, and variants need no freshness of their own:
//! one is served only after its base was found servable. Its `url` is the base's, so purges by
//! URL and prefix reach it; a tag or service purge removes the base, whose refetch either has
//! new validators (new variant key) or the same ones (the same content, by RFC 9110 §8.8.3).

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, header};

use crate::cache::key::CacheKey;
use crate::cache::{Cache, Found, entry::StoredObject};

/// Separates the base key, the descriptor and the version.
const SEP: char = '\u{1c}';

/// The key a variant of `base` made by `descriptor` from the base version `version` is stored under.
pub fn key(base: &CacheKey, descriptor: &str, version: &str) -> CacheKey {
    CacheKey {
        service: base.service.clone(),
        url: base.url.clone(),
        primary: format!("{}{SEP}{descriptor}{SEP}{version}", base.primary),
    }
}

/// What identifies the version of a base response: its `ETag` when it has one (the origin's
/// own name for the content), else `Last-Modified`, else `Date`, each with the length and
/// coding. `None` when it has none of them: such a response's variants are not stored.
pub fn version(headers: &HeaderMap) -> Option<String> {
    let get = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let validator = get(header::ETAG)
        .map(|e| format!("e={e}"))
        .or_else(|| get(header::LAST_MODIFIED).map(|lm| format!("lm={lm}")))
        .or_else(|| get(header::DATE).map(|d| format!("d={d}")))?;
    let len = get(header::CONTENT_LENGTH).unwrap_or("");
    let coding = get(header::CONTENT_ENCODING).unwrap_or("");
    Some(format!("{validator};l={len};c={coding}"))
}

/// The stored variant under `key`, unless absent, purged or soft-purged (a soft purge of the
/// URL makes the base revalidate; the variant is then made again from it).
pub async fn lookup(cache: &Cache, key: &CacheKey) -> Option<Arc<StoredObject>> {
    match cache.lookup(key, &HeaderMap::new(), SystemTime::now()).await {
        Found::Object { object, soft_purged: false, .. } => Some(object),
        _ => None,
    }
}

/// The entity tag of a variant: the base's with the descriptor's tag appended inside the quotes
/// (`"abc"` → `"abc-br"`), so caches and conditionals tell variants apart (RFC 9110 §8.8.3);
/// a weak tag stays weak.
pub fn etag(base: &HeaderValue, suffix: &str) -> Option<HeaderValue> {
    let text = base.to_str().ok()?;
    let (weak, quoted) = match text.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", text),
    };
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    HeaderValue::from_str(&format!("{weak}\"{inner}-{suffix}\"")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_keys_differ_by_descriptor_and_version_and_keep_the_url() {
        let svc: Arc<str> = "shop".into();
        let base = CacheKey::new(&svc, "shop.test", "/app.js");
        let br = key(&base, "enc=br", "e=\"1\"");
        assert_eq!(br.url, base.url, "purges by URL reach variants");
        assert_ne!(br.primary, key(&base, "enc=gzip", "e=\"1\"").primary);
        assert_ne!(br.primary, key(&base, "enc=br", "e=\"2\"").primary);
        assert_ne!(br.primary, base.primary);
    }

    #[test]
    fn versions_prefer_the_etag() {
        let mut h = HeaderMap::new();
        assert_eq!(version(&h), None);
        h.insert(header::DATE, HeaderValue::from_static("Mon, 23 Nov 2026 10:00:00 GMT"));
        assert!(version(&h).is_some_and(|v| v.starts_with("d=")));
        h.insert(header::LAST_MODIFIED, HeaderValue::from_static("Sun, 22 Nov 2026 10:00:00 GMT"));
        assert!(version(&h).is_some_and(|v| v.starts_with("lm=")));
        h.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        assert_eq!(version(&h).as_deref(), Some("e=\"v1\";l=10;c="));
    }

    #[test]
    fn etags_get_the_suffix_inside_the_quotes() {
        let cases = [("\"abc\"", Some("\"abc-br\"")), ("W/\"abc\"", Some("W/\"abc-br\"")), ("abc", None)];
        for (base, want) in cases {
            let got = etag(&HeaderValue::from_static(base), "br");
            assert_eq!(got.as_ref().and_then(|v| v.to_str().ok()), want, "{base}");
        }
    }
}
