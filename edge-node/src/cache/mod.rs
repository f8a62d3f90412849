//! Cache phase: RFC 9111 as a shared cache over a hybrid memory/disk store.
//!
//! A request's way through: [`Cache::lookup`] finds the object for its key (following the Vary
//! index to the variant, checking purges and retention), [`serve`] decides from its freshness
//! (fresh → serve; stale → revalidate, in the background while serving stale when
//! stale-while-revalidate allows; missing → fetch), and [`fetch`] makes the one upstream request
//! per key that every waiting client shares, storing the response while it streams.
//!
//! The pure rules (freshness, storability, conditionals, ranges, Vary) live in [`policy`].
//! Transforms store and find their variants through one door, [`variants`]; request
//! collapsing ([`flight`]) stays inside.

pub mod entry;
mod fetch;
mod flight;
pub mod key;
mod object_response;
pub mod overrides;
pub mod policy;
pub mod purge;
pub mod serve;
mod shared_body;
/// RFC 9211 `Cache-Status`: the field lives with the shared HTTP plumbing (errors carry it too).
pub use crate::http::cache_status as status;
pub mod store;
pub mod variants;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use outpost_config::CacheConfig;

use entry::{Entry, StoredObject, VariantIndex};
use flight::Flights;
use key::{CacheKey, StorageKey};
use purge::{PurgeLog, Verdict};
use store::Store;

/// The cache: a closed box. Its fields are its own; other modules go through its doors:
/// [`serve::serve`] (lookups and fills, with request collapsing inside), [`variants`] (the
/// transforms' variants), [`purge::record`], and the few accessors below.
pub struct Cache {
    store: Store,
    purges: PurgeLog,
    flights: Arc<Flights>,
    /// `cache.buffer_before_answer` in bytes (0: off), read at start.
    buffer_before_answer: u64,
}

/// What a lookup found.
pub enum Found {
    Object {
        /// The key it is stored under (primary, or the Vary variant's).
        storage_key: StorageKey,
        object: Arc<StoredObject>,
        /// Soft-purged: `object`'s policy makes it stale from the purge on (revalidated before
        /// use unless a stale-while-revalidate or stale-if-error window, counted from the purge,
        /// allows it).
        soft_purged: bool,
    },
    Miss {
        /// The flight / storage key a fetch for this request uses.
        flight_key: StorageKey,
        /// true when the URL is known but not this request's Vary variant.
        vary_miss: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CacheOpenError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Purges(#[from] purge::PurgeLogError),
}

impl Cache {
    pub async fn open(cfg: &CacheConfig) -> Result<Arc<Self>, CacheOpenError> {
        let store = Store::open(cfg).await?;
        let purges = PurgeLog::open(&cfg.disk_path, cfg.max_purge_records, cfg.max_retention, SystemTime::now())?;
        let buffer_before_answer = cfg.buffer_before_answer.as_u64();
        Ok(Arc::new(Self { store, purges, flights: Arc::new(Flights::default()), buffer_before_answer }))
    }

    pub async fn lookup(&self, key: &CacheKey, req: &HeaderMap, now: SystemTime) -> Found {
        let mut storage_key = key.primary.clone();
        let mut entry = self.store.get(&storage_key).await;
        let mut vary_miss = false;
        if let Some(Entry::Variants(index)) = &entry {
            if !self.index_live(key, index, now) {
                // Left for the refetch to overwrite: removing it here could drop the index a
                // concurrent fetch has just written.
                return Found::Miss { flight_key: storage_key, vary_miss: false };
            }
            storage_key = key.variant(&policy::vary_key(&index.fields, req));
            entry = self.store.get(&storage_key).await;
            vary_miss = true;
        }
        let Some(Entry::Object(object)) = entry else {
            return Found::Miss { flight_key: storage_key, vary_miss };
        };
        let meta = &object.meta;
        let retention = self.purges.retention();
        if now.duration_since(meta.request_time).is_ok_and(|age| age > retention) {
            self.store.remove(&storage_key);
            return Found::Miss { flight_key: storage_key, vary_miss };
        }
        match self.purges.verdict(&key.service, &key.url, &meta.tags, meta.request_time) {
            Verdict::Hard => {
                self.store.remove(&storage_key);
                Found::Miss { flight_key: storage_key, vary_miss }
            }
            Verdict::Soft { at_ms } => {
                // Judged from here on as a response whose lifetime ended at the purge.
                let purged_at = UNIX_EPOCH + Duration::from_millis(at_ms);
                let mut stale = StoredObject::clone(&object);
                stale.meta.policy = policy::stale_from(&meta.policy, meta.response_time, purged_at);
                Found::Object { storage_key, object: Arc::new(stale), soft_purged: true }
            }
            Verdict::Live => Found::Object { storage_key, object, soft_purged: false },
        }
    }

    /// Whether the URL is still known through its Vary index. RFC 9211 §2.2: `uri-miss` when
    /// the cache holds nothing for the URL, `vary-miss` when it holds the URL but not this
    /// request's variant. A purge that reached the response which last wrote the index (by URL,
    /// prefix, tag or service) took the URL's variants with it, and so does the retention that
    /// removes objects older than the purge log remembers: the URL is unknown again.
    fn index_live(&self, key: &CacheKey, index: &VariantIndex, now: SystemTime) -> bool {
        index_live(index.written, self.purges.retention(), now, |written| {
            self.purges.verdict(&key.service, &key.url, &index.tags, written)
        })
    }

    /// Bytes held by the memory tier (for the admin listener's metrics).
    pub fn memory_usage(&self) -> usize {
        self.store.memory_usage()
    }

    /// Purge records held (for the admin listener's metrics).
    pub fn purge_records(&self) -> usize {
        self.purges.len()
    }

    /// Hands the disk tier to a successor process (binary upgrade): flushed, then written by
    /// this process no more ([`store`]'s module doc).
    pub async fn release_disk(&self) {
        self.store.release().await;
    }

    /// Takes the disk tier back after a failed upgrade.
    pub async fn reattach_disk(&self) -> Result<(), store::StoreError> {
        self.store.reattach().await
    }

    /// Flush and stop the store: on graceful shutdown, so what is in memory is on disk for the
    /// restart.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// RFC 9111 §4.4: after an unsafe request succeeds, the URLs it names are invalidated.
    /// Removing the primary key drops the object or the Vary index (and so every variant); the
    /// store's tombstone log keeps the removal across a restart.
    pub fn invalidate(&self, service: &Arc<str>, host: &str, paths: &[String]) {
        for path in paths {
            let key = CacheKey::new(service, host, path);
            self.store.remove(&key.primary);
        }
    }
}

/// The pure core of [`Cache::index_live`]: an index written at `written` is live unless older
/// than `retention` or hard-purged since. A soft purge keeps it: each variant is then judged
/// stale by itself, and the URL is still known. An index without a time is never judged.
fn index_live(
    written: Option<SystemTime>,
    retention: Duration,
    now: SystemTime,
    verdict: impl FnOnce(SystemTime) -> Verdict,
) -> bool {
    let Some(written) = written else { return true };
    if now.duration_since(written).is_ok_and(|age| age > retention) {
        return false;
    }
    !matches!(verdict(written), Verdict::Hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purged_index_makes_the_url_unknown() {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let day = Duration::from_secs(86_400);
        let cases: &[(&str, Option<SystemTime>, SystemTime, Verdict, bool)] = &[
            ("RFC 9211 §2.2 vary-miss: the URL is known, not this variant", Some(t(100)), t(200), Verdict::Live, true),
            (
                "RFC 9211 §2.2 uri-miss: a hard purge took every variant and the index",
                Some(t(100)),
                t(200),
                Verdict::Hard,
                false,
            ),
            (
                "RFC 9111 §4.3 a soft purge keeps the URL known; variants revalidate",
                Some(t(100)),
                t(200),
                Verdict::Soft { at_ms: 150_000 },
                true,
            ),
            (
                "older than the purge log's retention: judged as removed, as objects are",
                Some(t(100)),
                t(100) + day * 2,
                Verdict::Live,
                false,
            ),
            ("an index stored before it carried a time is never judged", None, t(200), Verdict::Hard, true),
        ];
        for (clause, written, now, verdict, want) in cases {
            assert_eq!(index_live(*written, day, *now, |_| *verdict), *want, "{clause}");
        }
    }
}
