//! Per-tenant purge rate limits: one token bucket per tenant, fleet-wide.
//!
//! [`TokenBucket`] is a pure core (time passed in, wall-clock milliseconds). The buckets live
//! in the store ([`crate::Store::take_purge`]): PostgreSQL keeps one row per tenant and
//! updates it under a row lock, so every replica takes from the same bucket and a tenant's
//! rate is bounded across the fleet exactly (up to the replicas' clock skew, which can add at
//! most `skew × purge_rate` tokens). The embedded store keeps them in memory with
//! [`PurgeBuckets`] (one process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use outpost_config::{TenantId, Timestamp};

/// `limits.purge_burst` and the interval of `limits.purge_rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketSpec {
    pub burst: u32,
    pub interval: Duration,
}

/// A bucket of `capacity` tokens refilled one per `interval`; each purge takes one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    interval: Duration,
    pub tokens: f64,
    pub updated: Timestamp,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(spec: BucketSpec, now: Timestamp) -> Self {
        let capacity = f64::from(spec.burst.max(1));
        Self { capacity, interval: spec.interval, tokens: capacity, updated: now }
    }

    /// A bucket as stored: `tokens` left at `updated` (clamped to the capacity, which a
    /// smaller `purge_burst` since may have lowered).
    pub fn stored(spec: BucketSpec, tokens: f64, updated: Timestamp) -> Self {
        let capacity = f64::from(spec.burst.max(1));
        Self { capacity, interval: spec.interval, tokens: tokens.clamp(0.0, capacity), updated }
    }

    /// Takes a token at `now`; when there is none, returns how long until there is one.
    pub fn take(&mut self, now: Timestamp) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(self.interval.mul_f64(1.0 - self.tokens))
    }

    /// Whether the bucket is full at `now` (it can be forgotten: a new one is the same).
    fn is_full(&mut self, now: Timestamp) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }

    fn refill(&mut self, now: Timestamp) {
        // A time earlier than the last update (another replica's clock, a step back) adds
        // nothing and does not move `updated` back.
        let elapsed = Duration::from_millis(now.0.saturating_sub(self.updated.0));
        let earned = elapsed.as_secs_f64() / self.interval.as_secs_f64().max(f64::MIN_POSITIVE);
        self.tokens = (self.tokens + earned).min(self.capacity);
        self.updated = self.updated.max(now);
    }
}

/// One [`TokenBucket`] per tenant, in memory (the embedded store's). Memory is bounded by the
/// number of tenants that purged recently: full buckets are dropped when the map grows past
/// [`PurgeBuckets::SWEEP_AT`].
#[derive(Debug, Default)]
pub struct PurgeBuckets {
    buckets: Mutex<HashMap<TenantId, TokenBucket>>,
}

impl PurgeBuckets {
    /// Buckets kept before full ones are swept.
    pub const SWEEP_AT: usize = 10_000;

    /// Takes one purge from `tenant`'s bucket at `now`; `Err` holds the wait until the next.
    pub fn take(&self, tenant: &TenantId, spec: BucketSpec, now: Timestamp) -> Result<(), Duration> {
        // A poisoned lock only means another thread panicked mid-update of a bucket: the
        // numbers are still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= Self::SWEEP_AT && !buckets.contains_key(tenant) {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        let bucket = buckets.entry(tenant.clone()).or_insert_with(|| TokenBucket::new(spec, now));
        let mut current = TokenBucket::stored(spec, bucket.tokens, bucket.updated);
        let taken = current.take(now);
        *bucket = current;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn spec(burst: u32, interval: Duration) -> BucketSpec {
        BucketSpec { burst, interval }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_interval() {
        let start = Timestamp(1_000_000);
        let mut bucket = TokenBucket::new(spec(3, 100 * MS), start);
        // (time since start, expected outcome)
        let steps: &[(u64, Result<(), Duration>)] = &[
            (0, Ok(())),
            (0, Ok(())),
            (0, Ok(())),
            (0, Err(100 * MS)),
            (40, Err(60 * MS)),
            (100, Ok(())),
            (100, Err(100 * MS)),
            (1_000, Ok(())),
            (1_000, Ok(())),
            (1_000, Ok(())),
            (1_000, Err(100 * MS)),
        ];
        for (i, (at, expected)) in steps.iter().enumerate() {
            let got = bucket.take(Timestamp(start.0 + at));
            match (got, expected) {
                (Ok(()), Ok(())) => {}
                (Err(wait), Err(want)) => {
                    let diff = wait.abs_diff(*want);
                    assert!(diff < Duration::from_micros(10), "step {i}: waited {wait:?}, expected {want:?}");
                }
                _ => panic!("step {i} at {at}ms: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn a_clock_behind_the_last_update_earns_nothing_and_a_lower_burst_clamps() {
        let mut bucket = TokenBucket::stored(spec(2, 100 * MS), 2.0, Timestamp(1000));
        assert_eq!(bucket.take(Timestamp(900)), Ok(()));
        assert_eq!(bucket.updated, Timestamp(1000), "time never goes back");
        assert_eq!(bucket.take(Timestamp(1000)), Ok(()));
        assert!(bucket.take(Timestamp(1050)).is_err());
        // Stored with more tokens than the burst now allows.
        let clamped = TokenBucket::stored(spec(1, 100 * MS), 50.0, Timestamp(0));
        assert_eq!(clamped.tokens, 1.0);
    }

    #[test]
    fn tenants_have_separate_buckets() {
        let limiter = PurgeBuckets::default();
        let one = spec(1, Duration::from_secs(1));
        let now = Timestamp(5_000);
        let (a, b) = (TenantId::parse("a"), TenantId::parse("b"));
        let (Ok(a), Ok(b)) = (a, b) else { panic!("tenant names") };
        assert_eq!(limiter.take(&a, one, now), Ok(()));
        assert!(limiter.take(&a, one, now).is_err());
        assert_eq!(limiter.take(&b, one, now), Ok(()));
        assert_eq!(limiter.take(&a, one, Timestamp(now.0 + 1000)), Ok(()));
    }

    #[test]
    fn full_buckets_are_swept_when_the_map_is_large() {
        let limiter = PurgeBuckets::default();
        let one = spec(1, MS);
        let now = Timestamp(5_000);
        for i in 0..PurgeBuckets::SWEEP_AT {
            let tenant = TenantId::parse(&format!("t{i}")).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(limiter.take(&tenant, one, now), Ok(()));
        }
        let late = TenantId::parse("late").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(limiter.take(&late, one, Timestamp(now.0 + 1000)), Ok(()));
        let kept = limiter.buckets.lock().map(|b| b.len()).unwrap_or(0);
        assert_eq!(kept, 1, "every refilled bucket was dropped; only the new one is left");
    }
}
