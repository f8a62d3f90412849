//! Retries: whether a failed try may be retried ([`is_retryable`]), how long to wait first
//! ([`backoff`]), and whether the service can afford it ([`RetryBudget`]).
//!
//! Decides: per failed try, retry or give up. Does not choose the upstream for the retry (the
//! balancer does, with the failed one marked ineligible), does not sleep, and does not draw
//! the random jitter (the caller passes it in). The caller must also still hold the request
//! body to send it again; a streamed body that is gone cannot be retried whatever this says.

use std::time::{Duration, Instant};

use http::Method;
use outpost_config::RetryConfig;

/// Shared with the agent's reconnects: lives with the HTTP plumbing.
pub use crate::http::backoff::backoff;

/// How one try at an upstream ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A response head below 500: final, whatever it says.
    Answered,
    /// Connect error, timeout, 5xx head or broken response, before any response byte was sent
    /// to the client.
    FailedBeforeResponse,
    /// Failed after response bytes reached the client: a retry would splice two responses.
    FailedMidResponse,
}

/// Whether a try that ended in `outcome` may be retried: only an idempotent method
/// (RFC 9110 §9.2.2: PUT, DELETE and the safe methods GET, HEAD, OPTIONS, TRACE) and only
/// before the client got any response byte. A connect failure of a POST is not retried either,
/// though the request never left: its body may already be consumed.
pub fn is_retryable(method: &Method, outcome: AttemptOutcome) -> bool {
    let idempotent =
        matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE);
    idempotent && outcome == AttemptOutcome::FailedBeforeResponse
}

/// Slices per budget window: deposits and withdrawals older than the window drop out one
/// slice at a time.
const SLICES: usize = 10;
/// Tokens are counted in thousandths, so that a ratio of 0.2 deposits 200 per request.
const MILLI: u64 = 1000;

/// A service's retry budget (Finagle's `RetryBudget`, linkerd's `retryBudget`): every request
/// deposits `retry.budget_ratio` of a token, every retry withdraws one, and deposits and
/// withdrawals expire after `retry.budget_window`. On top, `retry.budget_min_per_sec` retries
/// per second are always allowed. So in an outage, retries add at most `budget_ratio` of load
/// plus the floor, instead of multiplying it by `1 + max_retries`.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    /// Milli-tokens deposited per request.
    deposit: u64,
    /// Milli-tokens always available per window, from `budget_min_per_sec`.
    reserve: u64,
    slice: Duration,
    start: Instant,
    /// Index of the slice last written, counted from `start`.
    current: u64,
    /// Per slice: milli-tokens deposited, milli-tokens withdrawn.
    slices: [(u64, u64); SLICES],
}

impl RetryBudget {
    pub fn new(config: &RetryConfig, now: Instant) -> Self {
        let ratio = if config.budget_ratio.is_nan() { 0.0 } else { config.budget_ratio.clamp(0.0, 1.0) };
        let window = config.budget_window.max(Duration::from_millis(SLICES as u64));
        let window_millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        Self {
            // ratio within 0..=1: the product is within 0..=1000.
            deposit: (ratio * MILLI as f64).round() as u64,
            reserve: u64::from(config.budget_min_per_sec).saturating_mul(window_millis),
            slice: window / SLICES as u32,
            start: now,
            current: 0,
            slices: [(0, 0); SLICES],
        }
    }

    /// Counts one request (first tries only, not retries).
    pub fn record_request(&mut self, now: Instant) {
        let slot = self.advance(now);
        self.slices[slot].0 = self.slices[slot].0.saturating_add(self.deposit);
    }

    /// Whether one retry fits the budget at `now`; when it does, it is withdrawn.
    pub fn can_retry(&mut self, now: Instant) -> bool {
        let slot = self.advance(now);
        let (deposited, withdrawn) =
            self.slices.iter().fold((0u64, 0u64), |(d, w), (sd, sw)| (d.saturating_add(*sd), w.saturating_add(*sw)));
        let available = deposited.saturating_add(self.reserve).saturating_sub(withdrawn);
        if available < MILLI {
            return false;
        }
        self.slices[slot].1 = self.slices[slot].1.saturating_add(MILLI);
        true
    }

    /// Moves to the slice of `now`, clearing the slices that expired; returns its index. A
    /// clock reading before the last one stays in the current slice.
    fn advance(&mut self, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let index = u64::try_from(elapsed / self.slice.as_nanos().max(1)).unwrap_or(u64::MAX);
        let passed = index.saturating_sub(self.current).min(SLICES as u64);
        for step in 1..=passed {
            self.slices[slot(self.current.saturating_add(step))] = (0, 0);
        }
        self.current = self.current.max(index);
        slot(self.current)
    }
}

fn slot(index: u64) -> usize {
    (index % SLICES as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptOutcome::{Answered, FailedBeforeResponse as Before, FailedMidResponse as Mid};

    #[test]
    fn retryable_only_when_idempotent_and_nothing_sent() {
        let method = |m: &str| Method::from_bytes(m.as_bytes()).unwrap_or_else(|e| panic!("{m}: {e}"));
        let cases = [
            ("GET", Before, true),      // §9.2.1 safe, so idempotent
            ("HEAD", Before, true),     // §9.2.1
            ("OPTIONS", Before, true),  // §9.2.1
            ("TRACE", Before, true),    // §9.2.1
            ("PUT", Before, true),      // §9.2.2
            ("DELETE", Before, true),   // §9.2.2
            ("POST", Before, false),    // §9.2.2: not idempotent
            ("PATCH", Before, false),   // RFC 5789 §2: not idempotent
            ("CONNECT", Before, false), // §9.3.6: a tunnel
            ("PURGE", Before, false),   // extension methods are unknown
            ("GET", Mid, false),        // bytes already reached the client
            ("GET", Answered, false),   // a 4xx or 2xx is final
            ("POST", Mid, false),
        ];
        for (name, outcome, expected) in cases {
            assert_eq!(is_retryable(&method(name), outcome), expected, "{name} {outcome:?}");
        }
    }

    fn budget(ratio: f64, min_per_sec: u32) -> (RetryBudget, Instant) {
        let config = RetryConfig {
            budget_ratio: ratio,
            budget_window: Duration::from_secs(10),
            budget_min_per_sec: min_per_sec,
            ..RetryConfig::default()
        };
        let now = Instant::now();
        (RetryBudget::new(&config, now), now)
    }

    /// Records `requests` requests at `at`, then counts the retries allowed at `at`.
    fn retries_allowed(budget: &mut RetryBudget, at: Instant, requests: u32) -> u32 {
        (0..requests).for_each(|_| budget.record_request(at));
        (0..100_000).take_while(|_| budget.can_retry(at)).count() as u32
    }

    #[test]
    fn budget_allows_ratio_of_requests_plus_the_floor() {
        // (ratio, min_per_sec, requests, retries allowed): floor = min_per_sec * 10s window.
        let cases = [
            (0.2, 0, 100, 20), // 20% of 100 requests
            (0.2, 0, 4, 0),    // 0.8 of a token is not a retry
            (0.2, 0, 5, 1),
            (0.2, 3, 0, 30),        // the floor alone: 3/s over 10s
            (0.2, 3, 100, 50),      // both
            (0.0, 0, 1000, 0),      // retries off
            (1.0, 0, 7, 7),         // one retry per request
            (f64::NAN, 1, 100, 10), // a NaN ratio counts as 0
        ];
        for (ratio, min_per_sec, requests, expected) in cases {
            let (mut b, now) = budget(ratio, min_per_sec);
            assert_eq!(retries_allowed(&mut b, now, requests), expected, "{ratio} {min_per_sec} {requests}");
        }
    }

    #[test]
    fn deposits_and_withdrawals_expire_after_the_window() {
        let s = Duration::from_secs;
        let (mut b, start) = budget(0.5, 0);
        assert_eq!(retries_allowed(&mut b, start, 10), 5);
        assert_eq!(retries_allowed(&mut b, start + s(9), 0), 0, "still spent within the window");
        assert_eq!(retries_allowed(&mut b, start + s(9), 4), 2, "new deposits count at once");
        assert_eq!(retries_allowed(&mut b, start + s(10), 0), 0, "the first slice expired: both sides");
        assert_eq!(retries_allowed(&mut b, start + s(25), 6), 3, "after a long gap, only new deposits");
        assert_eq!(retries_allowed(&mut b, start + s(3600), 0), 0, "hours later, nothing is left");
        assert_eq!(retries_allowed(&mut b, start, 2), 1, "a clock reading from the past stays current");
    }
}
