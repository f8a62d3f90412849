//! Node-wide bounds on the codec work of the transform phase: how many bodies are coded at once
//! (`limits.max_concurrent_encodes`), how much memory their codecs may hold together
//! (`limits.max_codec_memory`), and which base objects are known to decode past
//! `max_decoded_size` (so the next request does not decode them again).
//!
//! A decompression bomb costs CPU per request and memory per codec, not per byte it expands
//! to (decoding streams, see [`super::stream`]); what multiplies it is many requests at once or
//! one after another. The slots and the memory budget bound the first; the refusal marks the
//! second. Beyond a bound the request is not queued: it gets the base object as it is (the
//! origin's bytes, a correct response for every client that takes their coding), as nginx does
//! without `gunzip`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::coding::Coding;

/// How long a base object that decoded past `max_decoded_size` is served as it is without
/// trying again. Its key names the base's version (validators, length, coding), so a new
/// version is tried at once. Default: 1 h.
pub const REFUSAL_TTL: Duration = Duration::from_secs(3600);
/// Bound on remembered refusals; past it expired ones are swept and, if still full, a new one
/// is not recorded (the cost is decoding that object again).
const MAX_REFUSALS: usize = 100_000;
/// Memory counted per body besides the codecs: one chunk in and one out (see [`super::CHUNK`]),
/// with room for the allocator.
const PER_BODY: u64 = 256 << 10;

/// Why a codec could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// `limits.max_concurrent_encodes` bodies are being coded.
    Slots,
    /// Their codecs hold `limits.max_codec_memory` between them.
    Memory,
}

impl Busy {
    /// Bounded label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Busy::Slots => "busy",
            Busy::Memory => "memory",
        }
    }
}

/// A running codec's share of the node's bounds; released when dropped.
#[derive(Debug)]
pub struct CodecPermit {
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

#[derive(Debug)]
pub struct Codecs {
    slots: Arc<Semaphore>,
    /// Permits are KiB of codec memory.
    memory: Arc<Semaphore>,
    memory_kib: u32,
    refused: Mutex<HashMap<String, Instant>>,
}

impl Codecs {
    pub fn new(max_concurrent: usize, max_memory_bytes: u64) -> Self {
        let memory_kib = u32::try_from(max_memory_bytes >> 10).unwrap_or(u32::MAX).min(Semaphore::MAX_PERMITS as u32);
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// A slot and the memory for decoding `from` and encoding `to` at `level`, or why not. Never
    /// waits: a request that finds the node at its bound is served the base as it is.
    pub fn try_start(&self, from: Coding, to: Coding, level: u32) -> Result<CodecPermit, Busy> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| Busy::Slots)?;
        // A cost above the whole budget would never fit: it takes the whole budget instead.
        let kib = u32::try_from(memory_cost(from, to, level) >> 10).unwrap_or(u32::MAX).min(self.memory_kib);
        let memory = self.memory.clone().try_acquire_many_owned(kib).map_err(|_| Busy::Memory)?;
        Ok(CodecPermit { _slot: slot, _memory: memory })
    }

    /// Remember that the base under `key` decoded past `max_decoded_size`.
    pub fn refuse(&self, key: &str, now: Instant) {
        let Ok(mut refused) = self.refused.lock() else { return };
        if refused.len() >= MAX_REFUSALS {
            refused.retain(|_, until| *until > now);
            if refused.len() >= MAX_REFUSALS {
                return;
            }
        }
        refused.insert(key.to_string(), now + REFUSAL_TTL);
    }

    pub fn is_refused(&self, key: &str, now: Instant) -> bool {
        self.refused.lock().ok().and_then(|m| m.get(key).copied()).is_some_and(|until| until > now)
    }
}

/// Memory a body coded from `from` to `to` (at `level`) holds at most: the decoder's window and
/// state, the encoder's, and [`PER_BODY`]. Upper estimates from the codecs' parameters (brotli:
/// RFC 7932 §9.1 windows up to 16 MiB, large windows refused; zstd: RFC 9659's 8 MiB window
/// bound; gzip: RFC 1951's 32 KiB window) and from the encoders measured at their levels.
pub fn memory_cost(from: Coding, to: Coding, level: u32) -> u64 {
    const MIB: u64 = 1 << 20;
    let decoder = match from {
        Coding::Identity => 0,
        Coding::Gzip => MIB / 4,
        Coding::Br => 17 * MIB,
        Coding::Zstd => 9 * MIB,
    };
    let encoder = match (to, level) {
        (Coding::Identity, _) => 0,
        (Coding::Gzip, _) => MIB / 2,
        // Measured (issue 18): a gzip→br body at level 6 held about 25 to 30 MiB of RSS, the
        // encoder's 4 MiB window and tables plus its output buffers and the allocator's arenas.
        (Coding::Br, 0..=4) => 16 * MIB,
        (Coding::Br, 5..=6) => 24 * MIB,
        (Coding::Br, 7..=9) => 32 * MIB,
        (Coding::Br, _) => 48 * MIB,
        (Coding::Zstd, 0..=3) => 4 * MIB,
        (Coding::Zstd, 4..=8) => 6 * MIB,
        (Coding::Zstd, 9..=15) => 32 * MIB,
        (Coding::Zstd, _) => 85 * MIB,
    };
    decoder + encoder + PER_BODY
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn memory_cost_table() {
        let cases = [
            ("RFC 1951 §2: a 32 KiB window to decode, br 6 to encode", Coding::Gzip, Coding::Br, 6, 24 * MIB + MIB / 4),
            ("RFC 7932 §9.1: br windows up to 16 MiB", Coding::Br, Coding::Identity, 0, 17 * MIB),
            ("RFC 9659 §3: zstd windows up to 8 MiB", Coding::Zstd, Coding::Gzip, 6, 9 * MIB + MIB / 2),
            ("identity to zstd 19: its 8 MiB window and tables", Coding::Identity, Coding::Zstd, 19, 85 * MIB),
            ("identity to br 11", Coding::Identity, Coding::Br, 11, 48 * MIB),
        ];
        for (why, from, to, level, codecs) in cases {
            assert_eq!(memory_cost(from, to, level), codecs + PER_BODY, "{why}");
        }
    }

    #[tokio::test]
    async fn slots_and_memory_bound_codecs_and_come_back() {
        let one_br6 = memory_cost(Coding::Gzip, Coding::Br, 6);
        let codecs = Codecs::new(8, 2 * one_br6 + one_br6 / 2);
        let a = codecs.try_start(Coding::Gzip, Coding::Br, 6).unwrap();
        let _b = codecs.try_start(Coding::Gzip, Coding::Br, 6).unwrap();
        assert_eq!(codecs.try_start(Coding::Gzip, Coding::Br, 6).unwrap_err(), Busy::Memory);
        // A cheap one still fits in what is left.
        let _c = codecs.try_start(Coding::Gzip, Coding::Identity, 0).unwrap();
        drop(a);
        let _d = codecs.try_start(Coding::Gzip, Coding::Br, 6).unwrap();

        let few = Codecs::new(1, 1 << 30);
        let _only = few.try_start(Coding::Identity, Coding::Gzip, 6).unwrap();
        assert_eq!(few.try_start(Coding::Identity, Coding::Gzip, 6).unwrap_err(), Busy::Slots);
    }

    #[test]
    fn a_cost_above_the_budget_takes_all_of_it() {
        let codecs = Codecs::new(4, 16 * MIB);
        let big = codecs.try_start(Coding::Br, Coding::Zstd, 19).unwrap();
        assert_eq!(codecs.try_start(Coding::Identity, Coding::Gzip, 1).unwrap_err(), Busy::Memory);
        drop(big);
        assert!(codecs.try_start(Coding::Identity, Coding::Gzip, 1).is_ok());
    }

    #[test]
    fn refusals_expire_and_name_one_version() {
        let codecs = Codecs::new(1, MIB);
        let t0 = Instant::now();
        codecs.refuse("k|v1", t0);
        assert!(codecs.is_refused("k|v1", t0 + Duration::from_secs(1)));
        assert!(!codecs.is_refused("k|v2", t0), "a new version is tried");
        assert!(!codecs.is_refused("k|v1", t0 + REFUSAL_TTL + Duration::from_secs(1)));
    }
}
