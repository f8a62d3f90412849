//! Active health of one upstream (a shield or an origin): the verdict of its health probes.
//!
//! Decides: whether the upstream is [`Health::Healthy`] or [`Health::Unhealthy`], from
//! consecutive probe results against `health.unhealthy_threshold` and
//! `health.healthy_threshold`, and reports each transition so that the caller can log it and
//! count it. Does not send probes (the prober does, every `health.interval`), and does not
//! count failures of real requests: those feed the upstream's [`Breaker`](super::breaker).
//! An upstream gets requests when it is healthy here and its breaker lets them through.
//!
//! A new upstream starts healthy: it takes requests until probes say otherwise, so that a
//! config change or a restart does not wait `healthy_threshold` intervals before serving.

use std::time::{Duration, Instant};

use outpost_config::HealthConfig;

/// Result of one probe: a 2xx or 3xx head within `health.timeout` is a success; anything else
/// (connect error, timeout, other status) a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    Failure,
}

/// The health of one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Takes requests. Counts consecutive failed probes towards `unhealthy_threshold`.
    Healthy { consecutive_failures: u32 },
    /// Takes no requests since `since`. Counts consecutive successful probes towards
    /// `healthy_threshold`.
    Unhealthy { since: Instant, consecutive_successes: u32 },
}

/// A change of [`Health`], for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `failures` consecutive probes failed.
    WentDown { failures: u32 },
    /// Back after `down_for`.
    CameUp { down_for: Duration },
}

/// One upstream's health and the thresholds that move it.
#[derive(Debug, Clone)]
pub struct HealthState {
    health: Health,
    unhealthy_threshold: u32,
    healthy_threshold: u32,
}

impl HealthState {
    /// A new upstream: healthy. Thresholds below 1 count as 1.
    pub fn new(config: &HealthConfig) -> Self {
        Self {
            health: Health::Healthy { consecutive_failures: 0 },
            unhealthy_threshold: config.unhealthy_threshold.max(1),
            healthy_threshold: config.healthy_threshold.max(1),
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    pub fn is_healthy(&self) -> bool {
        matches!(self.health, Health::Healthy { .. })
    }

    /// Applies one probe result at `now`; returns the transition it caused, if any.
    pub fn observe(&mut self, outcome: ProbeOutcome, now: Instant) -> Option<Transition> {
        let (next, transition) = match (self.health, outcome) {
            (Health::Healthy { .. }, ProbeOutcome::Success) => (Health::Healthy { consecutive_failures: 0 }, None),
            (Health::Healthy { consecutive_failures }, ProbeOutcome::Failure) => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= self.unhealthy_threshold {
                    let down = Health::Unhealthy { since: now, consecutive_successes: 0 };
                    (down, Some(Transition::WentDown { failures }))
                } else {
                    (Health::Healthy { consecutive_failures: failures }, None)
                }
            }
            (Health::Unhealthy { since, .. }, ProbeOutcome::Failure) => {
                (Health::Unhealthy { since, consecutive_successes: 0 }, None)
            }
            (Health::Unhealthy { since, consecutive_successes }, ProbeOutcome::Success) => {
                let successes = consecutive_successes.saturating_add(1);
                if successes >= self.healthy_threshold {
                    let down_for = now.saturating_duration_since(since);
                    (Health::Healthy { consecutive_failures: 0 }, Some(Transition::CameUp { down_for }))
                } else {
                    (Health::Unhealthy { since, consecutive_successes: successes }, None)
                }
            }
        };
        self.health = next;
        transition
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeOutcome::{Failure as F, Success as S};

    fn state(unhealthy: u32, healthy: u32) -> HealthState {
        let config = HealthConfig { unhealthy_threshold: unhealthy, healthy_threshold: healthy, ..Default::default() };
        HealthState::new(&config)
    }

    /// Feeds probes one second apart; returns the transitions with the second they happened.
    fn run(state: &mut HealthState, start: Instant, probes: &[ProbeOutcome]) -> Vec<(u64, Transition)> {
        let mut seen = Vec::new();
        for (second, outcome) in (0u64..).zip(probes) {
            if let Some(t) = state.observe(*outcome, start + Duration::from_secs(second)) {
                seen.push((second, t));
            }
        }
        seen
    }

    #[test]
    fn thresholds_move_the_state() {
        let down = |second, failures| (second, Transition::WentDown { failures });
        let up = |second, secs| (second, Transition::CameUp { down_for: Duration::from_secs(secs) });
        type Case = (&'static str, u32, u32, &'static [ProbeOutcome], Vec<(u64, Transition)>);
        let cases: Vec<Case> = vec![
            ("starts healthy; successes change nothing", 3, 2, &[S, S, S], vec![]),
            ("below the threshold stays up", 3, 2, &[F, F], vec![]),
            ("3 consecutive failures mark it down", 3, 2, &[F, F, F], vec![down(2, 3)]),
            ("a success resets the failure count", 3, 2, &[F, F, S, F, F], vec![]),
            ("further failures while down: no new transition", 3, 2, &[F, F, F, F, F], vec![down(2, 3)]),
            ("2 consecutive successes mark it up", 3, 2, &[F, F, F, S, S], vec![down(2, 3), up(4, 2)]),
            ("a failure resets the success count", 3, 2, &[F, F, F, S, F, S, S], vec![down(2, 3), up(6, 4)]),
            ("threshold 1 flips on every change", 1, 1, &[F, S, F], vec![down(0, 1), up(1, 1), down(2, 1)]),
            ("threshold 0 counts as 1", 0, 0, &[F, S], vec![down(0, 1), up(1, 1)]),
        ];
        for (name, unhealthy, healthy, probes, expected) in cases {
            let mut s = state(unhealthy, healthy);
            assert_eq!(run(&mut s, Instant::now(), probes), expected, "{name}");
        }
    }

    #[test]
    fn unhealthy_remembers_since_when() {
        let start = Instant::now();
        let mut s = state(2, 2);
        run(&mut s, start, &[F, F, S, F]);
        assert!(!s.is_healthy());
        assert_eq!(s.health(), Health::Unhealthy { since: start + Duration::from_secs(1), consecutive_successes: 0 });
    }

    #[test]
    fn a_clock_that_goes_backwards_does_not_panic() {
        let start = Instant::now() + Duration::from_secs(60);
        let mut s = state(1, 1);
        assert_eq!(s.observe(F, start), Some(Transition::WentDown { failures: 1 }));
        let earlier = start - Duration::from_secs(30);
        assert_eq!(s.observe(S, earlier), Some(Transition::CameUp { down_for: Duration::ZERO }));
    }
}
