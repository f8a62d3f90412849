//! One node's probe state: a pure state machine over probe results, thresholds passed in.

/// What the probes of one node say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Probe {
    /// Not probed since the control plane started (or since the node registered).
    #[default]
    Unknown,
    /// Passing; `failures` failed probes in a row so far (fewer than the threshold).
    Up { failures: u32 },
    /// Failing; `successes` passing probes in a row so far (fewer than the threshold).
    Down { successes: u32 },
}

/// `health.unhealthy_threshold` and `health.healthy_threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub unhealthy: u32,
    pub healthy: u32,
}

impl Probe {
    /// The state after one more probe. The first probe decides at once: a control plane that
    /// restarts should not send clients to dead PoPs, nor away from live ones, for several
    /// rounds.
    pub fn observe(self, passed: bool, thresholds: Thresholds) -> Probe {
        match (self, passed) {
            (Probe::Unknown, true) => Probe::Up { failures: 0 },
            (Probe::Unknown, false) => Probe::Down { successes: 0 },
            (Probe::Up { .. }, true) => Probe::Up { failures: 0 },
            (Probe::Up { failures }, false) if failures + 1 >= thresholds.unhealthy => Probe::Down { successes: 0 },
            (Probe::Up { failures }, false) => Probe::Up { failures: failures + 1 },
            (Probe::Down { successes }, true) if successes + 1 >= thresholds.healthy => Probe::Up { failures: 0 },
            (Probe::Down { successes }, true) => Probe::Down { successes: successes + 1 },
            (Probe::Down { .. }, false) => Probe::Down { successes: 0 },
        }
    }

    pub fn is_up(self) -> bool {
        matches!(self, Probe::Up { .. })
    }

    /// `"unknown"`, `"up"` or `"down"` (the API's and the logs' word).
    pub fn name(self) -> &'static str {
        match self {
            Probe::Unknown => "unknown",
            Probe::Up { .. } => "up",
            Probe::Down { .. } => "down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_the_transitions() {
        let t = Thresholds { unhealthy: 3, healthy: 2 };
        // (results, final state)
        let cases: [(&[bool], Probe); 9] = [
            (&[true], Probe::Up { failures: 0 }),
            (&[false], Probe::Down { successes: 0 }),
            (&[true, false], Probe::Up { failures: 1 }),
            (&[true, false, false], Probe::Up { failures: 2 }),
            (&[true, false, false, false], Probe::Down { successes: 0 }),
            // A pass in between starts the count again.
            (&[true, false, false, true, false, false], Probe::Up { failures: 2 }),
            (&[false, true], Probe::Down { successes: 1 }),
            (&[false, true, true], Probe::Up { failures: 0 }),
            (&[false, true, false, true], Probe::Down { successes: 1 }),
        ];
        for (results, want) in cases {
            let got = results.iter().fold(Probe::Unknown, |state, passed| state.observe(*passed, t));
            assert_eq!(got, want, "{results:?}");
        }
    }

    #[test]
    fn thresholds_of_one_flip_at_once() {
        let t = Thresholds { unhealthy: 1, healthy: 1 };
        let up = Probe::Up { failures: 0 };
        assert_eq!(up.observe(false, t), Probe::Down { successes: 0 });
        assert_eq!(Probe::Down { successes: 0 }.observe(true, t), up);
        assert!(up.is_up() && !Probe::Unknown.is_up());
        assert_eq!([Probe::Unknown.name(), up.name(), Probe::Down { successes: 0 }.name()], ["unknown", "up", "down"]);
    }
}
