//! The storage tier: a foyer `HybridCache` (memory over disk). Failures here never fail a
//! request: a read error is a miss, a write is best effort. The tombstone log makes removals
//! survive a restart, so an invalidated object cannot come back from disk.

use std::path::Path;

use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, HybridCachePolicy, LruConfig,
    RecoverMode,
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

#[derive(Clone)]
pub struct Store {
    cache: HybridCache<String, Entry>,
    chunk_size: usize,
}

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
        let err = |message: String| StoreError { path: cfg.disk_path.display().to_string(), message };
        std::fs::create_dir_all(&cfg.disk_path).map_err(|e| err(format!("create directory: {e}")))?;
        let (block_size, chunk_size) = layout(cfg.disk.as_u64());
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
        Ok(Self { cache, chunk_size })
    }

    /// Bodies larger than this are stored as chunks of this size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub async fn get(&self, key: &StorageKey) -> Option<Entry> {
        let key = key.as_str();
        match self.cache.get(key).await {
            Ok(found) => found.map(|e| e.value().clone()),
            Err(e) => {
                tracing::warn!(key, error = %e, "cache read failed; treated as a miss");
                metrics::counter!(crate::metrics::STORE_ERRORS, "op" => "read").increment(1);
                self.cache.remove(key);
                None
            }
        }
    }

    pub fn insert(&self, key: StorageKey, entry: Entry) {
        self.cache.insert(key.into_string(), entry);
    }

    pub fn remove(&self, key: &StorageKey) {
        self.cache.remove(key.as_str());
    }

    /// Bytes held by the memory tier (by the weighter).
    pub fn memory_usage(&self) -> usize {
        self.cache.memory().usage()
    }

    /// Flush and stop: on graceful shutdown, so everything in memory is on disk for the restart.
    pub async fn close(&self) {
        if let Err(e) = self.cache.close().await {
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
