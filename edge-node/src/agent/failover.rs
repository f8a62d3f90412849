//! Which control plane the agent tries next, and how long it waits first: a pure state machine
//! over the outcomes of its sessions (the caller draws the jitter).
//!
//! - A failure moves to the next URL of `control.urls`, round and round the list.
//! - Within a round (some URL not yet tried since the last success), the next one is tried after
//!   a short jittered pause (0 to `backoff_min`): while any replica answers, a node is back within
//!   a moment, not a backoff.
//! - A round in which every URL failed ends with full-jitter exponential backoff
//!   (`backoff_min` doubling per failed round, at most `backoff_max`), so a fleet whose control
//!   planes are all down does not hammer them, nor reconnect in step.
//! - A session that streamed starts over: the next failure is the first of a new round.
//!
//! Envoy's xDS client and Consul's agents follow the same pattern: rotate through the server
//! list at once, back off only when all of it fails.

use std::time::Duration;

use crate::upstream::retry::backoff;

/// The rotation over `count` control-plane URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    count: usize,
    current: usize,
    /// URLs that failed since the last success or the last full round.
    failed_in_round: usize,
    /// Full rounds that failed in a row.
    rounds: u32,
}

impl Failover {
    /// Starts at the first of `count` URLs (at least one).
    pub fn new(count: usize) -> Self {
        Self { count: count.max(1), current: 0, failed_in_round: 0, rounds: 0 }
    }

    /// The index of the URL to use now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The session on the current URL streamed: failures counted so far are forgotten.
    pub fn streamed(&mut self) {
        self.failed_in_round = 0;
        self.rounds = 0;
    }

    /// The current URL failed: moves to the next and returns how long to wait before trying it.
    /// `jitter` is drawn from 0..=1.
    pub fn failed(&mut self, min: Duration, max: Duration, jitter: f64) -> Duration {
        self.current = (self.current + 1) % self.count;
        self.failed_in_round += 1;
        if self.failed_in_round < self.count {
            // Another replica is left in this round: a short pause, jittered so that a fleet
            // moving off a dead replica does not arrive at the next in one burst.
            return backoff(1, min, min, jitter);
        }
        self.failed_in_round = 0;
        self.rounds = self.rounds.saturating_add(1);
        backoff(self.rounds, min, max, jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    #[test]
    fn one_url_backs_off_exponentially_up_to_the_cap() {
        let mut f = Failover::new(1);
        // (jitter, wait): full jitter of min(max, min * 2^(round - 1)).
        let waits: Vec<Duration> = (0..7).map(|_| f.failed(MIN, MAX, 1.0)).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(f.current(), 0);
        assert_eq!(f.failed(MIN, MAX, 0.5), Duration::from_secs(1), "jitter scales the capped wait");
    }

    #[test]
    fn a_failure_moves_on_at_once_while_the_round_has_urls_left() {
        let mut f = Failover::new(3);
        // (index after the failure, wait with jitter 1)
        let steps: Vec<(usize, u128)> =
            (0..7).map(|_| (f.failed(MIN, MAX, 1.0).as_millis(), f.current())).map(|(wait, at)| (at, wait)).collect();
        // Two short pauses, then the round's backoff (100ms, then 200ms, ...).
        assert_eq!(steps, [(1, 100), (2, 100), (0, 100), (1, 100), (2, 100), (0, 200), (1, 100)]);
    }

    #[test]
    fn streaming_forgets_the_failures() {
        let mut f = Failover::new(2);
        for _ in 0..6 {
            f.failed(MIN, MAX, 1.0);
        }
        f.streamed();
        assert_eq!(f.failed(MIN, MAX, 1.0), MIN, "the next replica, soon");
        assert_eq!(f.failed(MIN, MAX, 1.0), MIN, "the first failed round");
        assert_eq!(f.failed(MIN, MAX, 0.0), Duration::ZERO, "jitter 0 waits nothing");
    }

    #[test]
    fn a_list_of_none_is_treated_as_one() {
        let mut f = Failover::new(0);
        f.failed(MIN, MAX, 1.0);
        assert_eq!(f.current(), 0);
    }
}
