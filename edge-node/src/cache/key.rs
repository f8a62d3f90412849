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
    pub primary: String,
}

const SERVICE_SEP: char = '\u{1f}';
const VARIANT_SEP: char = '\u{1e}';

impl CacheKey {
    pub fn new(service: &Arc<str>, host: &str, path_and_query: &str) -> Self {
        let url = format!("{host}{path_and_query}");
        let primary = format!("{service}{SERVICE_SEP}{url}");
        Self { service: service.clone(), url, primary }
    }

    pub fn variant(&self, vary_key: &str) -> String {
        format!("{}{VARIANT_SEP}{vary_key}", self.primary)
    }
}

pub fn chunk_key(object_id: u64, index: u32) -> String {
    format!("\u{1d}chunk{SERVICE_SEP}{object_id:016x}{SERVICE_SEP}{index}")
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
