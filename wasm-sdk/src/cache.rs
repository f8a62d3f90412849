//! Cache headers for a function's responses and the requests it forwards.
//!
//! [`CacheControl`] builds a `Cache-Control` (RFC 9111 §5.2.2) or `CDN-Cache-Control` (RFC 9213:
//! read by the CDN, removed before the client sees it) value; [`ResponseExt`] sets it and the
//! `Surrogate-Key` tags the node's purge-by-tag matches (space-separated; the node strips the
//! header before the client sees it).
//!
//! ```
//! use outpost_sdk::{Body, CacheControl, Response, ResponseExt};
//! use std::time::Duration;
//!
//! let mut resp = Response::new(Body::from("hi"));
//! resp.set_cache_control(&CacheControl::new().public().max_age(Duration::from_secs(60)));
//! resp.set_cdn_cache_control(&CacheControl::new().max_age(Duration::from_secs(3600)));
//! resp.add_surrogate_keys(["product-42", "catalog"]).expect("valid tags");
//! assert_eq!(resp.headers()["cache-control"], "public, max-age=60");
//! assert_eq!(resp.headers()["surrogate-key"], "product-42 catalog");
//! ```

use std::fmt::{self, Write as _};
use std::time::Duration;

use http::HeaderValue;
use http::header::{CACHE_CONTROL, HeaderName};

/// `Surrogate-Key`: the response's purge tags, space-separated.
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// `CDN-Cache-Control` (RFC 9213): caching directives for the CDN only.
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// A `Cache-Control` value, built directive by directive; rendered in a fixed order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    public: bool,
    private: bool,
    no_store: bool,
    no_cache: bool,
    must_revalidate: bool,
    proxy_revalidate: bool,
    immutable: bool,
    max_age: Option<Duration>,
    s_maxage: Option<Duration>,
    stale_while_revalidate: Option<Duration>,
    stale_if_error: Option<Duration>,
}

impl CacheControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// `public` (RFC 9111 §5.2.2.9): storable by shared caches even when it would not be.
    pub fn public(mut self) -> Self {
        self.public = true;
        self
    }

    /// `private` (§5.2.2.7): only the client's own cache may store it; the node will not.
    pub fn private(mut self) -> Self {
        self.private = true;
        self
    }

    /// `no-store` (§5.2.2.5): no cache stores it.
    pub fn no_store(mut self) -> Self {
        self.no_store = true;
        self
    }

    /// `no-cache` (§5.2.2.4): stored, but revalidated before every use.
    pub fn no_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// `must-revalidate` (§5.2.2.2): never served stale.
    pub fn must_revalidate(mut self) -> Self {
        self.must_revalidate = true;
        self
    }

    /// `proxy-revalidate` (§5.2.2.8): never served stale by a shared cache.
    pub fn proxy_revalidate(mut self) -> Self {
        self.proxy_revalidate = true;
        self
    }

    /// `immutable` (RFC 8246): will not change while fresh.
    pub fn immutable(mut self) -> Self {
        self.immutable = true;
        self
    }

    /// `max-age` (§5.2.2.1), in whole seconds.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }

    /// `s-maxage` (§5.2.2.10): `max-age` for shared caches such as the node.
    pub fn s_maxage(mut self, d: Duration) -> Self {
        self.s_maxage = Some(d);
        self
    }

    /// `stale-while-revalidate` (RFC 5861 §3): served stale while refreshed in the background.
    pub fn stale_while_revalidate(mut self, d: Duration) -> Self {
        self.stale_while_revalidate = Some(d);
        self
    }

    /// `stale-if-error` (RFC 5861 §4): served stale when the origin fails.
    pub fn stale_if_error(mut self, d: Duration) -> Self {
        self.stale_if_error = Some(d);
        self
    }

    /// The header value. Always valid: directives are fixed tokens and integers.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::try_from(self.to_string()).unwrap_or_else(|_| HeaderValue::from_static("no-store"))
    }
}

impl fmt::Display for CacheControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = [
            (self.public, "public"),
            (self.private, "private"),
            (self.no_store, "no-store"),
            (self.no_cache, "no-cache"),
            (self.must_revalidate, "must-revalidate"),
            (self.proxy_revalidate, "proxy-revalidate"),
            (self.immutable, "immutable"),
        ];
        let ages = [
            (self.max_age, "max-age"),
            (self.s_maxage, "s-maxage"),
            (self.stale_while_revalidate, "stale-while-revalidate"),
            (self.stale_if_error, "stale-if-error"),
        ];
        let mut out = String::new();
        let mut sep = "";
        for (_, name) in flags.iter().filter(|(on, _)| *on) {
            let _ = write!(out, "{sep}{name}");
            sep = ", ";
        }
        for (age, name) in ages {
            if let Some(d) = age {
                let _ = write!(out, "{sep}{name}={}", d.as_secs());
                sep = ", ";
            }
        }
        f.write_str(&out)
    }
}

/// A surrogate key that cannot go in `Surrogate-Key`: empty, or not a run of visible ASCII.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSurrogateKey(pub String);

impl fmt::Display for InvalidSurrogateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid surrogate key {:?}: use visible ASCII without spaces", self.0)
    }
}

impl std::error::Error for InvalidSurrogateKey {}

/// Cache headers on any `http::Response`.
pub trait ResponseExt {
    /// Sets `Cache-Control` (what browsers and the node both obey).
    fn set_cache_control(&mut self, cc: &CacheControl);
    /// Sets `CDN-Cache-Control`: the node obeys it instead of `Cache-Control`, clients never
    /// see it.
    fn set_cdn_cache_control(&mut self, cc: &CacheControl);
    /// Appends tags to `Surrogate-Key`, for purge by tag. Every key is checked before any is
    /// added.
    fn add_surrogate_keys<I, K>(&mut self, keys: I) -> Result<(), InvalidSurrogateKey>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>;
}

impl<B> ResponseExt for http::Response<B> {
    fn set_cache_control(&mut self, cc: &CacheControl) {
        self.headers_mut().insert(CACHE_CONTROL, cc.to_header_value());
    }

    fn set_cdn_cache_control(&mut self, cc: &CacheControl) {
        self.headers_mut().insert(CDN_CACHE_CONTROL, cc.to_header_value());
    }

    fn add_surrogate_keys<I, K>(&mut self, keys: I) -> Result<(), InvalidSurrogateKey>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let mut value = self.headers().get(SURROGATE_KEY).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        for key in keys {
            let key = key.as_ref();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(InvalidSurrogateKey(key.to_owned()));
            }
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(key);
        }
        // Visible ASCII and spaces only: always a valid header value.
        if let Ok(v) = HeaderValue::try_from(value) {
            self.headers_mut().insert(SURROGATE_KEY, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_render_in_a_fixed_order() {
        let s = Duration::from_secs;
        let table: &[(CacheControl, &str)] = &[
            (CacheControl::new(), ""),
            (CacheControl::new().no_store(), "no-store"),
            (CacheControl::new().max_age(s(60)).public(), "public, max-age=60"),
            (CacheControl::new().private().no_cache(), "private, no-cache"),
            (
                CacheControl::new().s_maxage(s(600)).stale_while_revalidate(s(30)).stale_if_error(s(86_400)),
                "s-maxage=600, stale-while-revalidate=30, stale-if-error=86400",
            ),
            (CacheControl::new().immutable().max_age(Duration::from_millis(1500)), "immutable, max-age=1"),
            (CacheControl::new().must_revalidate().proxy_revalidate(), "must-revalidate, proxy-revalidate"),
        ];
        for (cc, want) in table {
            assert_eq!(cc.to_string(), *want);
            assert_eq!(cc.to_header_value(), *want);
        }
    }

    #[test]
    fn surrogate_keys_append_and_reject_spaces() {
        let mut resp = http::Response::new(());
        assert_eq!(resp.add_surrogate_keys(["a", "b"]), Ok(()));
        assert_eq!(resp.add_surrogate_keys(vec!["c".to_string()]), Ok(()));
        assert_eq!(resp.headers()[SURROGATE_KEY], "a b c");
        assert_eq!(resp.add_surrogate_keys(["ok", "has space"]), Err(InvalidSurrogateKey("has space".into())));
        assert_eq!(resp.add_surrogate_keys([""]), Err(InvalidSurrogateKey(String::new())));
        assert_eq!(resp.headers()[SURROGATE_KEY], "a b c", "nothing added when one key is bad");
    }
}
