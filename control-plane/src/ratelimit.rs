//! Per-tenant purge rate limits: one token bucket per tenant.
//!
//! [`TokenBucket`] is a pure core (time passed in); [`PurgeLimiter`] keeps one per tenant
//! behind a mutex that is never held across an await.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use outpost_config::TenantId;

/// A bucket of `capacity` tokens refilled one per `interval`; each purge takes one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    interval: Duration,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(capacity: u32, interval: Duration, now: Instant) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self { capacity, interval, tokens: capacity, updated: now }
    }

    /// Takes a token at `now`; when there is none, returns how long until there is one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(self.interval.mul_f64(1.0 - self.tokens))
    }

    /// Whether the bucket is full at `now` (it can be forgotten: a new one is the same).
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }

    fn refill(&mut self, now: Instant) {
        // An Instant earlier than the last update (never, with a monotonic clock) adds nothing.
        let elapsed = now.saturating_duration_since(self.updated);
        let earned = elapsed.as_secs_f64() / self.interval.as_secs_f64().max(f64::MIN_POSITIVE);
        self.tokens = (self.tokens + earned).min(self.capacity);
        self.updated = now;
    }
}

/// One [`TokenBucket`] per tenant. Memory is bounded by the number of tenants that purged
/// recently: full buckets are dropped when the map grows past [`PurgeLimiter::SWEEP_AT`].
#[derive(Debug)]
pub struct PurgeLimiter {
    burst: u32,
    interval: Duration,
    buckets: Mutex<HashMap<TenantId, TokenBucket>>,
}

impl PurgeLimiter {
    /// Buckets kept before full ones are swept.
    pub const SWEEP_AT: usize = 10_000;

    pub fn new(burst: u32, interval: Duration) -> Self {
        Self { burst, interval, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one purge from `tenant`'s bucket at `now`; `Err` holds the wait until the next.
    pub fn take(&self, tenant: &TenantId, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means another thread panicked mid-update of a bucket: the
        // numbers are still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= Self::SWEEP_AT && !buckets.contains_key(tenant) {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        let bucket = buckets.entry(tenant.clone()).or_insert_with(|| TokenBucket::new(self.burst, self.interval, now));
        bucket.take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_interval() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3, 100 * MS, start);
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
            let got = bucket.take(start + Duration::from_millis(*at));
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
    fn tenants_have_separate_buckets() {
        let limiter = PurgeLimiter::new(1, Duration::from_secs(1));
        let now = Instant::now();
        let (a, b) = (TenantId::parse("a"), TenantId::parse("b"));
        let (Ok(a), Ok(b)) = (a, b) else { panic!("tenant names") };
        assert_eq!(limiter.take(&a, now), Ok(()));
        assert!(limiter.take(&a, now).is_err());
        assert_eq!(limiter.take(&b, now), Ok(()));
        assert_eq!(limiter.take(&a, now + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn full_buckets_are_swept_when_the_map_is_large() {
        let limiter = PurgeLimiter::new(1, MS);
        let now = Instant::now();
        for i in 0..PurgeLimiter::SWEEP_AT {
            let tenant = TenantId::parse(&format!("t{i}")).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(limiter.take(&tenant, now), Ok(()));
        }
        let late = TenantId::parse("late").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(limiter.take(&late, now + Duration::from_secs(1)), Ok(()));
        let kept = limiter.buckets.lock().map(|b| b.len()).unwrap_or(0);
        assert_eq!(kept, 1, "every refilled bucket was dropped; only the new one is left");
    }
}
