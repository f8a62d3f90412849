//! The storage tier: a foyer `HybridCache` (memory over disk). Failures here never fail a
//! request: a read error is a miss, a write is best effort. The tombstone log makes removals
//! survive a restart, so an invalidated object cannot come back from disk.
//!
//! A binary upgrade hands the disk tier to the successor process while this one still serves
//! ([`Store::release`]): foyer's files have one writer at a time, so from then on this process
//! writes to memory only and reads the disk as it stands. A block the successor rewrites under
//! it fails foyer's checksum or key check on read and is a miss, never another object. When the
//! upgrade fails, [`Store::reattach`] opens the disk tier again.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, HybridCachePolicy,
    HybridCacheProperties, Location, LruConfig, RecoverMode,
};
use outpost_config::CacheConfig;

use super::entry::Entry;
use super::key::StorageKey;

const MIB: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("cache store at {path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

/// Cheap to clone: a body being read holds one while the store goes on.
#[derive(Clone)]
pub struct Store(std::sync::Arc<Inner>);

pub struct Inner {
    /// Swapped only by [`Store::reattach`]; every operation clones the handle out (an `Arc`)
    /// and never holds the lock across an await.
    tier: RwLock<HybridCache<String, Entry>>,
    chunk_size: usize,
    cfg: CacheConfig,
    /// The disk tier belongs to a successor process: write to memory only.
    released: AtomicBool,
    /// Keys removed since the release. The disk still holds them (this process no longer
    /// writes tombstones), so they are looked up in memory only.
    removed: Mutex<HashSet<String>>,
}

/// Bound on [`Store::removed`]: past it, a released store reads nothing from disk.
impl std::ops::Deref for Store {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

const MAX_REMOVED_AFTER_RELEASE: usize = 100_000;

/// The disk engine's block size must hold the largest entry; bodies above the chunk size are split
/// into chunks so no entry outgrows a block. Sixteen blocks at least, between 1 and 4 MiB each.
pub fn layout(disk_bytes: u64) -> (usize, usize) {
    let target = (disk_bytes / 16) as usize;
    let block = target.clamp(MIB, 4 * MIB).next_power_of_two().min(4 * MIB);
    let block = if block > target.max(MIB) { block / 2 } else { block }.max(MIB);
    let chunk = (block / 4).min(MIB);
    (block, chunk)
}

impl Store {
    pub async fn open(cfg: &CacheConfig) -> Result<Self, StoreError> {
        let (_, chunk_size) = layout(cfg.disk.as_u64());
        Ok(Self(std::sync::Arc::new(Inner {
            tier: RwLock::new(Self::open_tier(cfg).await?),
            chunk_size,
            cfg: cfg.clone(),
            released: AtomicBool::new(false),
            removed: Mutex::new(HashSet::new()),
        })))
    }

    async fn open_tier(cfg: &CacheConfig) -> Result<HybridCache<String, Entry>, StoreError> {
        let err = |message: String| StoreError { path: cfg.disk_path.display().to_string(), message };
        std::fs::create_dir_all(&cfg.disk_path).map_err(|e| err(format!("create directory: {e}")))?;
        let (block_size, _) = layout(cfg.disk.as_u64());
        let device = FsDeviceBuilder::new(Path::new(&cfg.disk_path))
            .with_capacity(cfg.disk.as_usize())
            .build()
            .map_err(|e| err(format!("open disk device: {e}")))?;
        let cache = HybridCacheBuilder::new()
            .with_name("outpost")
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .memory(cfg.memory.as_usize())
            .with_shards(8)
            .with_eviction_config(LruConfig { high_priority_pool_ratio: 0.1 })
            .with_weighter(|k: &String, v: &Entry| k.len() + v.weight())
            .storage()
            .with_engine_config(BlockEngineConfig::new(device).with_block_size(block_size).with_tombstone_log(true))
            .with_recover_mode(RecoverMode::Quiet)
            .build()
            .await
            .map_err(|e| err(format!("build hybrid cache: {e}")))?;
        Ok(cache)
    }

    fn tier(&self) -> HybridCache<String, Entry> {
        self.tier.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn removed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.removed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the disk tier over: everything queued is written and the engine stops (as on a
    /// stop), then this process keeps serving from memory and reads from the disk as it
    /// stands. Returns once the files may be opened by another process.
    pub async fn release(&self) {
        self.released.store(true, Ordering::Release);
        if let Err(e) = self.tier().close().await {
            tracing::warn!(error = %e, "cache: flushing the disk tier for the handoff failed");
        }
    }

    /// Takes the disk tier back after a failed handoff: opened again from its files (what was
    /// inserted into memory since the release is dropped with the old handle).
    pub async fn reattach(&self) -> Result<(), StoreError> {
        if !self.released.load(Ordering::Acquire) {
            // Never released (the upgrade failed earlier): the tier in use is the only one.
            return Ok(());
        }
        let tier = Self::open_tier(&self.cfg).await?;
        *self.tier.write().unwrap_or_else(|e| e.into_inner()) = tier;
        self.removed().clear();
        self.released.store(false, Ordering::Release);
        Ok(())
    }

    /// Bodies larger than this are stored as chunks of this size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub async fn get(&self, key: &StorageKey) -> Option<Entry> {
        let key = key.as_str();
        let cache = self.tier();
        if self.released.load(Ordering::Acquire) {
            let removed = self.removed();
            if removed.contains(key) || removed.len() >= MAX_REMOVED_AFTER_RELEASE {
                return cache.memory().get(key).map(|e| e.value().clone());
            }
        }
        match cache.get(key).await {
            Ok(found) => found.map(|e| e.value().clone()),
            Err(e) => {
                tracing::warn!(key, error = %e, "cache read failed; treated as a miss");
                metrics::counter!(crate::metrics::STORE_ERRORS, "op" => "read").increment(1);
                self.remove_by_name(key);
                None
            }
        }
    }

    pub fn insert(&self, key: StorageKey, entry: Entry) {
        let cache = self.tier();
        if self.released.load(Ordering::Acquire) {
            // A newer entry in memory shadows the disk's again.
            self.removed().remove(key.as_str());
            let memory_only = HybridCacheProperties::default().with_location(Location::InMem);
            cache.insert_with_properties(key.into_string(), entry, memory_only);
        } else {
            cache.insert(key.into_string(), entry);
        }
    }

    pub fn remove(&self, key: &StorageKey) {
        self.remove_by_name(key.as_str());
    }

    fn remove_by_name(&self, key: &str) {
        let cache = self.tier();
        if self.released.load(Ordering::Acquire) {
            let mut removed = self.removed();
            if removed.len() < MAX_REMOVED_AFTER_RELEASE {
                removed.insert(key.to_owned());
            }
            cache.memory().remove(key);
        } else {
            cache.remove(key);
        }
    }

    /// Bytes held by the memory tier (by the weighter).
    pub fn memory_usage(&self) -> usize {
        self.tier().memory().usage()
    }

    /// Flush and stop: on graceful shutdown, so everything in memory is on disk for the restart.
    /// After a release the disk belongs to the successor: nothing is written.
    pub async fn close(&self) {
        if self.released.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.tier().close().await {
            tracing::warn!(error = %e, "cache close failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::layout;

    #[test]
    fn layout_keeps_sixteen_blocks_and_chunks_fit() {
        for (disk, block, chunk) in [
            (16u64 << 20, 1usize << 20, 256usize << 10),
            (64 << 20, 4 << 20, 1 << 20),
            (256 << 20, 4 << 20, 1 << 20),
            (4 << 30, 4 << 20, 1 << 20),
        ] {
            assert_eq!(layout(disk), (block, chunk), "disk {disk}");
        }
    }
}

#[cfg(test)]
mod handoff_tests {
    use bytes::Bytes;

    use super::*;

    fn cfg(dir: &Path) -> CacheConfig {
        CacheConfig {
            memory: outpost_config::ByteSize::mib(8),
            disk: outpost_config::ByteSize::mib(16),
            disk_path: dir.to_path_buf(),
            ..CacheConfig::default()
        }
    }

    fn key(k: &str) -> StorageKey {
        StorageKey::new(k.to_owned())
    }

    fn body(e: Option<Entry>) -> Option<Bytes> {
        match e {
            Some(Entry::Chunk(b)) => Some(b),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_released_store_writes_to_memory_only_and_a_successor_finds_what_was_flushed() {
        let dir = tempfile::tempdir().expect("dir");
        let old = Store::open(&cfg(dir.path())).await.expect("open");
        old.insert(key("a"), Entry::Chunk(Bytes::from_static(b"before")));
        old.release().await;
        // After the release: memory only, and a removal hides the disk's copy from this process.
        old.insert(key("b"), Entry::Chunk(Bytes::from_static(b"after")));
        assert_eq!(body(old.get(&key("b")).await).as_deref(), Some(&b"after"[..]));
        old.remove(&key("a"));
        assert_eq!(body(old.get(&key("a")).await), None, "removed after the release");
        // The successor opens the same files: what was stored before the release is there.
        let new = Store::open(&cfg(dir.path())).await.expect("successor");
        assert_eq!(body(new.get(&key("a")).await).as_deref(), Some(&b"before"[..]));
        assert_eq!(body(new.get(&key("b")).await), None, "written to the old process's memory only");
        new.close().await;
        drop(new);
        // A failed upgrade: the old process takes the disk back and writes to it again.
        old.reattach().await.expect("reattach");
        assert_eq!(body(old.get(&key("a")).await).as_deref(), Some(&b"before"[..]));
        old.insert(key("c"), Entry::Chunk(Bytes::from_static(b"again")));
        old.close().await;
        let next = Store::open(&cfg(dir.path())).await.expect("reopen");
        assert_eq!(body(next.get(&key("c")).await).as_deref(), Some(&b"again"[..]));
    }

    #[tokio::test]
    async fn reattach_without_a_release_keeps_the_tier_in_use() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&cfg(dir.path())).await.expect("open");
        store.insert(key("a"), Entry::Chunk(Bytes::from_static(b"x")));
        store.reattach().await.expect("no-op");
        assert_eq!(body(store.get(&key("a")).await).as_deref(), Some(&b"x"[..]), "still in memory");
    }
}
