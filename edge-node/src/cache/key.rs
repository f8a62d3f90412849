//! Cache keys. The primary key is the service plus the URL key (`host/path?query`: the scheme is
//! not part of it, so http and https share objects). A response with `Vary` is stored under the
//! primary key plus the request's values of the varying fields (RFC 9111 §4.1); the primary key
//! then holds the list of fields.

use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct CacheKey {
    pub service: Arc<str>,
    /// `host/path?query`, the form purges by URL and prefix match against.
    pub url: String,
    pub primary: StorageKey,
}

/// The key one store entry (an object, a Vary index, a variant, a body chunk) lives under, and
/// the key of the one flight that fills it. Built only here and in [`super::variants`], so a
/// flight or an entry cannot be keyed by an arbitrary string (a request that fetches alone has
/// no key at all, not an empty one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageKey(String);

impl StorageKey {
    pub(super) fn new(key: String) -> Self {
        Self(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for StorageKey {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const SERVICE_SEP: char = '\u{1f}';
const VARIANT_SEP: char = '\u{1e}';

impl CacheKey {
    pub fn new(service: &Arc<str>, host: &str, path_and_query: &str) -> Self {
        let url = format!("{host}{path_and_query}");
        let primary = StorageKey(format!("{service}{SERVICE_SEP}{url}"));
        Self { service: service.clone(), url, primary }
    }

    /// This key with the header and cookie values the route phase's rules added to it
    /// ([`super::overrides::Overrides::key_extra`]), after the URL: purges by URL and prefix,
    /// which match `url`, reach every such object.
    pub fn with_extra(mut self, extensions: &http::Extensions) -> Self {
        if let Some(extra) = extensions.get::<super::overrides::Overrides>().and_then(|o| o.key_extra.as_deref()) {
            let mut primary = self.primary.0;
            primary.push_str(extra);
            self.primary = StorageKey(primary);
        }
        self
    }

    pub fn variant(&self, vary_key: &str) -> StorageKey {
        StorageKey(format!("{}{VARIANT_SEP}{vary_key}", self.primary))
    }
}

pub fn chunk_key(object_id: u64, index: u32) -> StorageKey {
    StorageKey(format!("\u{1d}chunk{SERVICE_SEP}{object_id:016x}{SERVICE_SEP}{index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide_across_services_or_variants() {
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let ka = CacheKey::new(&a, "x.test", "/p?q=1");
        let kb = CacheKey::new(&b, "x.test", "/p?q=1");
        assert_ne!(ka.primary, kb.primary);
        assert_eq!(ka.url, "x.test/p?q=1");
        assert_ne!(ka.variant("en"), ka.variant("fr"));
        assert_ne!(ka.variant(""), ka.primary);
        assert_ne!(chunk_key(1, 0), chunk_key(1, 1));
    }
}
