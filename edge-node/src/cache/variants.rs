//! The cache's one door for variants: a transform's output (an encoded body, a transcoded image)
//! stored beside the object it was made from, so the work is done once per object version.
//!
//! The transform phase names a variant ([`key`], from the base's key, a descriptor and the base's
//! [`version`]), looks it up ([`Cache::variant`]) and, on a miss, asks for the one fill every
//! request for it shares ([`Cache::fill_variant`]): the first request makes it
//! ([`VariantFill::Make`]), later ones wait for what it makes ([`VariantWait`]). Request
//! collapsing, storage and the stored object's reading stay inside the cache.
//!
//! A variant's key is the base object's key plus what was done (a descriptor such as `enc=br`
//! or an image's `img1:w=400,f=webp,q=75`) plus the base's version (its validators). So a new
//! version of the base never meets an old variant, and variants need no freshness of their own:
//! one is served only after its base was found servable. Its `url` is the base's, so purges by
//! URL and prefix reach it; a tag or service purge removes the base, whose refetch either has
//! new validators (new variant key) or the same ones (the same content, by RFC 9110 §8.8.3).

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use super::entry::StoredObject;
use super::fetch::store_derived;
use super::flight::{Follower, Join, Landing, Lead};
use super::key::{CacheKey, StorageKey};
use super::object_response::{self, Source};
use super::{Cache, Found};
use crate::body::EdgeBody;
use crate::error::EdgeError;
use crate::service::CompiledService;

/// Separates the base key, the descriptor and the version.
const SEP: char = '\u{1c}';

/// The key a variant of `base` made by `descriptor` from the base version `version` is stored under.
pub fn key(base: &CacheKey, descriptor: &str, version: &str) -> CacheKey {
    CacheKey {
        service: base.service.clone(),
        url: base.url.clone(),
        primary: StorageKey::new(format!("{}{SEP}{descriptor}{SEP}{version}", base.primary)),
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

/// A stored variant, or one streaming in as it is made.
pub enum VariantBody {
    Stored(Arc<StoredObject>),
    Streaming { body: EdgeBody, len: Option<u64> },
}

/// Who makes a missing variant.
pub enum VariantFill {
    /// This request makes it ([`VariantMaker::store`]) and reads it as the others do.
    Make(VariantMaker, VariantWait),
    /// Another request is making it.
    Wait(VariantWait),
}

/// The one request that makes a variant: it stores it while it streams to every waiter.
pub struct VariantMaker {
    cache: Arc<Cache>,
    key: CacheKey,
    lead: Lead,
}

/// A request waiting for a variant being made.
pub struct VariantWait(Follower);

/// What a waiter gets.
pub enum Made {
    /// The variant as it streams in; `content_type` is the maker's (an image's own type).
    Streaming { content_type: Option<HeaderValue>, body: VariantBody },
    /// Made, but joined too late to read it from its start: make it alone.
    TooLate,
    /// The maker failed (nothing was stored).
    Failed(EdgeError),
    /// The maker vanished, or landed something a variant never is.
    Gone,
}

impl Cache {
    /// The stored variant under `key`, unless absent, purged or soft-purged (a soft purge of the
    /// URL makes the base revalidate; the variant is then made again from it).
    pub async fn variant(&self, key: &CacheKey) -> Option<Arc<StoredObject>> {
        match self.lookup(key, &HeaderMap::new(), SystemTime::now()).await {
            Found::Object { object, soft_purged: false, .. } => Some(object),
            _ => None,
        }
    }

    /// The one fill of the variant under `key` that every request for it shares.
    pub fn fill_variant(self: &Arc<Self>, key: CacheKey) -> VariantFill {
        match self.flights.join(&key.primary) {
            Join::Lead(lead) => {
                let wait = VariantWait(lead.follower());
                VariantFill::Make(VariantMaker { cache: self.clone(), key, lead }, wait)
            }
            Join::Follow(f) => VariantFill::Wait(VariantWait(f)),
        }
    }

    /// The client's response from a variant under `headers` (the base's as served now): its
    /// conditionals, range and HEAD applied. `None` when a stored body cannot be read.
    pub async fn respond_variant(
        &self,
        headers: &HeaderMap,
        body: VariantBody,
        method: &Method,
        client: &HeaderMap,
    ) -> Option<Response<EdgeBody>> {
        let source = match body {
            VariantBody::Stored(object) => Source::Stored { store: self.store.clone(), object },
            VariantBody::Streaming { body, len } => Source::Streaming { body, len },
        };
        object_response::respond_as(StatusCode::OK, headers, source, method, client, None).await
    }
}

impl VariantMaker {
    /// Store the variant while it streams to the waiters. Per-request fields of the base as
    /// served to the making client (its `Set-Cookie`, its `Age`, its `Vary`) are never the
    /// variant's, which every client is served.
    pub async fn store(self, svc: &Arc<CompiledService>, mut headers: HeaderMap, body: EdgeBody) {
        headers.remove(header::VARY);
        headers.remove(header::AGE);
        super::policy::take_per_request(&mut headers);
        store_derived(&self.cache, svc, &self.key, self.lead, headers, body).await;
    }

    /// No variant: every waiter falls back to the original, and nothing half-made is stored.
    pub fn fail(mut self, error: EdgeError) {
        self.lead.close();
        self.lead.land(Landing::Failed(error));
    }
}

impl VariantWait {
    pub async fn wait(self) -> Made {
        let landing = self.0.wait().await;
        match landing.as_deref() {
            Some(Landing::Shared(shared)) => match shared.body.reader() {
                Some(reader) => Made::Streaming {
                    content_type: shared.meta.headers.get(header::CONTENT_TYPE).cloned(),
                    body: VariantBody::Streaming {
                        body: reader.into_body(),
                        len: crate::http::content_length(&shared.meta.headers),
                    },
                },
                None => Made::TooLate,
            },
            Some(Landing::Failed(e)) => Made::Failed(e.clone()),
            _ => Made::Gone,
        }
    }
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
}
