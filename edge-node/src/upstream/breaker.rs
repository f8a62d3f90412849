//! Circuit breaker of one upstream, fed by the outcomes of real requests (passive detection).
//!
//! Decides: whether a request may go to this upstream now ([`Breaker::try_acquire`]), and how
//! the breaker moves on each outcome ([`Breaker::record`]):
//!
//! ```text
//! Closed --passive.failure_threshold consecutive failures--> Open { until: now + ejection }
//! Open   --until passed, next try_acquire-------------------> HalfOpen (that request is the probe)
//! HalfOpen --probe succeeds--> Closed
//! HalfOpen --probe fails-----> Open { interval doubled, at most passive.max_ejection }
//! ```
//!
//! An open breaker ejects its upstream only while the service's ejection cap allows
//! (`super::ejection`): past it the upstream is readmitted ([`Breaker::admit_anyway`]), and a
//! success under that [`Permit::Readmitted`] closes the breaker at once (the upstream is back).
//!
//! Does not classify responses beyond [`RequestOutcome::of_status`], does not pick another
//! upstream (the balancer does, with this one marked ineligible) and does no I/O. A probe
//! whose request never reports (the client went away) frees its slot after one open interval,
//! so the breaker cannot stay half-open forever.

use std::time::{Duration, Instant};

use outpost_config::{MAX_DURATION, PassiveConfig};

/// How a request to the upstream went. A failure is a connect error, a timeout or (where the
/// service counts them) a 5xx; anything else, a 4xx included, is a success: the upstream is
/// working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    Success,
    Failure,
    /// The request failed because of the client (its body broke off, was malformed, too large
    /// or too slow): it says nothing about the upstream, so it neither counts as a failure nor
    /// resets the count. A probe that ends so leaves the next request to probe at once.
    ClientFault,
    /// A reused connection died before any response byte (the origin closed it while idle, or
    /// as the request arrived): the keep-alive race every HTTP/1.1 client meets, not a sign
    /// that the upstream is failing. Counts like `ClientFault`: neither a failure nor a success.
    StaleConnection,
}

impl RequestOutcome {
    /// A response head with this status: a 5xx fails when `count_5xx`, anything else
    /// succeeds. A 5xx is the upstream's own answer (RFC 9110 §15.6: the server is aware it
    /// erred), proof that the connection works: with a single upstream there is nobody else
    /// to ask, so by default it does not count (`passive.eject_on_5xx`).
    pub fn of_status(status: http::StatusCode, count_5xx: bool) -> Self {
        if count_5xx && status.is_server_error() { RequestOutcome::Failure } else { RequestOutcome::Success }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; consecutive failures are counted.
    Closed { consecutive_failures: u32 },
    /// No requests until `until`; `interval` is how long this opening lasts.
    Open { until: Instant, interval: Duration },
    /// One probe request is out since `probe_sent`; every other request is rejected.
    HalfOpen { probe_sent: Instant, interval: Duration },
}

/// What [`Breaker::try_acquire`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send the request; report its outcome with this permit.
    Permit(Permit),
    /// Do not send it: choose another upstream or fail.
    Rejected,
}

/// Which kind of request a permit was issued for; passed back to [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// An ordinary request while closed.
    Normal,
    /// The one trial request while half-open.
    Probe,
    /// A request let through an open breaker because the ejection cap readmitted the upstream
    /// (Envoy's `max_ejection_percent`, nginx never marking its last server down). A success
    /// closes the breaker; a failure changes nothing (no doubling while readmitted).
    Readmitted,
}

/// A change of [`BreakerState`], for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed or half-open → open, for `interval`.
    Opened { interval: Duration },
    /// Open → half-open: a probe was let through.
    HalfOpened,
    /// Half-open → closed: the probe succeeded.
    Closed,
}

/// One upstream's circuit breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    failure_threshold: u32,
    ejection: Duration,
    max_ejection: Duration,
}

impl Breaker {
    /// Closed. A threshold below 1 counts as 1; `max_ejection` below `ejection` counts as
    /// `ejection`.
    pub fn new(config: &PassiveConfig) -> Self {
        Self {
            state: BreakerState::Closed { consecutive_failures: 0 },
            failure_threshold: config.failure_threshold.max(1),
            ejection: config.ejection,
            max_ejection: config.max_ejection.max(config.ejection),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a request go to this upstream at `now`? The transition is `HalfOpened` when this
    /// call let the probe through.
    pub fn try_acquire(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        match self.state {
            BreakerState::Closed { .. } => (Admission::Permit(Permit::Normal), None),
            BreakerState::Open { until, interval } if now >= until => {
                self.state = BreakerState::HalfOpen { probe_sent: now, interval };
                (Admission::Permit(Permit::Probe), Some(Transition::HalfOpened))
            }
            BreakerState::HalfOpen { probe_sent, interval } if now >= add(probe_sent, interval) => {
                // The probe never reported: let another one through.
                self.state = BreakerState::HalfOpen { probe_sent: now, interval };
                (Admission::Permit(Permit::Probe), None)
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => (Admission::Rejected, None),
        }
    }

    /// A permit whatever the state, for an upstream the ejection cap readmitted: the ordinary
    /// one (or the probe) when [`Breaker::try_acquire`] grants it, else [`Permit::Readmitted`].
    pub fn admit_anyway(&mut self, now: Instant) -> (Permit, Option<Transition>) {
        match self.try_acquire(now) {
            (Admission::Permit(permit), transition) => (permit, transition),
            (Admission::Rejected, _) => (Permit::Readmitted, None),
        }
    }

    /// Since when the breaker keeps its upstream out at `now`: `None` while it admits requests
    /// (closed, or open or half-open with a probe due).
    pub fn ejected_since(&self, now: Instant) -> Option<Instant> {
        match self.state {
            BreakerState::Closed { .. } => None,
            BreakerState::Open { until, interval } if now < until => Some(until.checked_sub(interval).unwrap_or(until)),
            BreakerState::HalfOpen { probe_sent, interval } if now < add(probe_sent, interval) => Some(probe_sent),
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => None,
        }
    }

    /// Applies the outcome of a request sent under `permit`. Outcomes of ordinary requests
    /// that finish after the breaker opened are ignored: the probe decides.
    pub fn record(&mut self, permit: Permit, outcome: RequestOutcome, now: Instant) -> Option<Transition> {
        if permit == Permit::Readmitted {
            return self.record_readmitted(outcome, now);
        }
        match (self.state, permit, outcome) {
            (BreakerState::Closed { .. }, Permit::Normal, RequestOutcome::Success) => {
                self.state = BreakerState::Closed { consecutive_failures: 0 };
                None
            }
            (BreakerState::Closed { consecutive_failures }, Permit::Normal, RequestOutcome::Failure) => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= self.failure_threshold {
                    Some(self.open(now, self.ejection))
                } else {
                    self.state = BreakerState::Closed { consecutive_failures: failures };
                    None
                }
            }
            (BreakerState::HalfOpen { .. }, Permit::Probe, RequestOutcome::Success) => {
                self.state = BreakerState::Closed { consecutive_failures: 0 };
                Some(Transition::Closed)
            }
            (BreakerState::HalfOpen { interval, .. }, Permit::Probe, RequestOutcome::Failure) => {
                let doubled = interval.saturating_mul(2).min(self.max_ejection);
                Some(self.open(now, doubled))
            }
            (
                BreakerState::HalfOpen { interval, .. },
                Permit::Probe,
                RequestOutcome::ClientFault | RequestOutcome::StaleConnection,
            ) => {
                // The probe proved nothing: the next request is the probe.
                self.state = BreakerState::Open { until: now, interval };
                None
            }
            _ => None,
        }
    }

    /// A readmitted request's outcome: a success proves the upstream is back and closes the
    /// breaker; anything else leaves it as it is (it was already open: nothing to learn).
    fn record_readmitted(&mut self, outcome: RequestOutcome, now: Instant) -> Option<Transition> {
        match (self.state, outcome) {
            (BreakerState::Closed { .. }, _) => self.record(Permit::Normal, outcome, now),
            (_, RequestOutcome::Success) => {
                self.state = BreakerState::Closed { consecutive_failures: 0 };
                Some(Transition::Closed)
            }
            (_, RequestOutcome::Failure | RequestOutcome::ClientFault | RequestOutcome::StaleConnection) => None,
        }
    }

    fn open(&mut self, now: Instant, interval: Duration) -> Transition {
        self.state = BreakerState::Open { until: add(now, interval), interval };
        Transition::Opened { interval }
    }
}

/// `at + d`, capped at `at + MAX_DURATION` (the longest duration the config accepts) where the
/// clock would overflow.
fn add(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(MAX_DURATION)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permit::{Normal, Probe, Readmitted};
    use RequestOutcome::{ClientFault as C, Failure as F, StaleConnection as X, Success as S};

    /// One step at `at` seconds: acquire (expecting an admission) or record an outcome.
    #[derive(Clone, Copy)]
    enum Step {
        Acquire(u64, Admission),
        Record(u64, Permit, RequestOutcome),
    }
    use Step::{Acquire, Record};

    const GO: Admission = Admission::Permit(Normal);
    const PROBE: Admission = Admission::Permit(Probe);
    const NO: Admission = Admission::Rejected;

    fn opened(secs: u64) -> Transition {
        Transition::Opened { interval: Duration::from_secs(secs) }
    }

    /// Runs the steps on a breaker with threshold 3, ejection 10s, max 25s; returns every
    /// transition with the index of the step that caused it.
    fn run(steps: &[Step]) -> Vec<(usize, Transition)> {
        let config = PassiveConfig {
            failure_threshold: 3,
            ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            ..PassiveConfig::default()
        };
        let mut breaker = Breaker::new(&config);
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut seen = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let transition = match *step {
                Acquire(t, expected) => {
                    let (admission, transition) = breaker.try_acquire(at(t));
                    assert_eq!(admission, expected, "step {i}");
                    transition
                }
                Record(t, permit, outcome) => breaker.record(permit, outcome, at(t)),
            };
            seen.extend(transition.map(|t| (i, t)));
        }
        seen
    }

    #[test]
    fn transitions() {
        let half = Transition::HalfOpened;
        let closed = Transition::Closed;
        let trip = [Record(0, Normal, F), Record(0, Normal, F), Record(1, Normal, F)];
        type Case = (&'static str, Vec<Step>, Vec<(usize, Transition)>);
        let cases: Vec<Case> = vec![
            ("closed lets requests through", vec![Acquire(0, GO), Record(0, Normal, S)], vec![]),
            ("2 failures stay closed", vec![Record(0, Normal, F), Record(0, Normal, F), Acquire(0, GO)], vec![]),
            (
                "a success resets the count",
                vec![
                    Record(0, Normal, F),
                    Record(0, Normal, F),
                    Record(0, Normal, S),
                    Record(0, Normal, F),
                    Record(0, Normal, F),
                    Acquire(0, GO),
                ],
                vec![],
            ),
            ("3 consecutive failures open it", [&trip[..], &[Acquire(1, NO)]].concat(), vec![(2, opened(10))]),
            (
                "rejects until the interval has passed",
                [&trip[..], &[Acquire(10, NO), Acquire(11, PROBE)]].concat(),
                vec![(2, opened(10)), (4, half)],
            ),
            (
                "exactly one probe while half-open",
                [&trip[..], &[Acquire(11, PROBE), Acquire(11, NO), Acquire(12, NO)]].concat(),
                vec![(2, opened(10)), (3, half)],
            ),
            (
                "probe success closes it",
                [&trip[..], &[Acquire(11, PROBE), Record(12, Probe, S), Acquire(12, GO)]].concat(),
                vec![(2, opened(10)), (3, half), (4, closed)],
            ),
            (
                "probe failure reopens for twice as long",
                [&trip[..], &[Acquire(11, PROBE), Record(12, Probe, F), Acquire(31, NO), Acquire(32, PROBE)]].concat(),
                vec![(2, opened(10)), (3, half), (4, opened(20)), (6, half)],
            ),
            (
                "doubling stops at max_ejection",
                [
                    &trip[..],
                    &[
                        Acquire(11, PROBE),
                        Record(11, Probe, F),
                        Acquire(31, PROBE),
                        Record(31, Probe, F),
                        Acquire(55, NO),
                        Acquire(56, PROBE),
                    ],
                ]
                .concat(),
                vec![(2, opened(10)), (3, half), (4, opened(20)), (5, half), (6, opened(25)), (8, half)],
            ),
            (
                "after closing, the interval starts from ejection again",
                [
                    &trip[..],
                    &[
                        Acquire(11, PROBE),
                        Record(11, Probe, F),
                        Acquire(31, PROBE),
                        Record(31, Probe, S),
                        Record(32, Normal, F),
                        Record(32, Normal, F),
                        Record(32, Normal, F),
                        Acquire(41, NO),
                        Acquire(42, PROBE),
                    ],
                ]
                .concat(),
                vec![(2, opened(10)), (3, half), (4, opened(20)), (5, half), (6, closed), (9, opened(10)), (11, half)],
            ),
            (
                "late ordinary outcomes while open are ignored",
                [&trip[..], &[Record(2, Normal, S), Acquire(3, NO), Record(3, Normal, F), Acquire(11, PROBE)]].concat(),
                vec![(2, opened(10)), (6, half)],
            ),
            (
                "ordinary outcomes do not decide the probe",
                [&trip[..], &[Acquire(11, PROBE), Record(11, Normal, S), Acquire(12, NO)]].concat(),
                vec![(2, opened(10)), (3, half)],
            ),
            (
                "a probe that never reports frees its slot after one interval",
                [&trip[..], &[Acquire(11, PROBE), Acquire(20, NO), Acquire(21, PROBE), Record(21, Probe, S)]].concat(),
                vec![(2, opened(10)), (3, half), (6, closed)],
            ),
            (
                "client faults neither count nor reset the count",
                vec![
                    Record(0, Normal, F),
                    Record(0, Normal, C),
                    Record(0, Normal, C),
                    Record(0, Normal, C),
                    Record(0, Normal, C),
                    Record(0, Normal, C),
                    Record(0, Normal, F),
                    Acquire(0, GO),
                    Record(0, Normal, F),
                ],
                vec![(8, opened(10))],
            ),
            (
                "issue 15: 20 stale keep-alive connections in a row neither count nor reset the count",
                [
                    &[Record(0, Normal, F), Record(0, Normal, F)][..],
                    &[Record(0, Normal, X); 20][..],
                    &[Record(0, Normal, F)][..],
                ]
                .concat(),
                vec![(22, opened(10))],
            ),
            (
                "a probe ended by a stale connection lets the next request probe",
                [&trip[..], &[Acquire(11, PROBE), Record(11, Probe, X), Acquire(11, PROBE), Record(12, Probe, S)]]
                    .concat(),
                vec![(2, opened(10)), (3, half), (5, half), (6, closed)],
            ),
            (
                "a probe ended by a client fault lets the next request probe",
                [&trip[..], &[Acquire(11, PROBE), Record(11, Probe, C), Acquire(11, PROBE), Record(12, Probe, S)]]
                    .concat(),
                vec![(2, opened(10)), (3, half), (5, half), (6, closed)],
            ),
            (
                "a 4xx is a success",
                vec![
                    Record(0, Normal, F),
                    Record(0, Normal, F),
                    Record(0, Normal, RequestOutcome::of_status(http::StatusCode::NOT_FOUND, true)),
                    Record(0, Normal, F),
                    Acquire(0, GO),
                ],
                vec![],
            ),
        ];
        for (name, steps, expected) in cases {
            assert_eq!(run(&steps), expected, "{name}");
        }
    }

    #[test]
    fn outcome_of_status() {
        // (status, counted when 5xx count, counted when they do not)
        let cases = [
            (200, S, S),
            (304, S, S),
            (404, S, S), // RFC 9110 §15.5: a client error says the server works
            (429, S, S),
            (499, S, S),
            (500, F, S), // RFC 9110 §15.6: the server's own answer; counts only where asked
            (502, F, S),
            (503, F, S),
            (504, F, S),
            (599, F, S),
        ];
        for (code, counted, uncounted) in cases {
            let status = http::StatusCode::from_u16(code).unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!(RequestOutcome::of_status(status, true), counted, "{code}");
            assert_eq!(RequestOutcome::of_status(status, false), uncounted, "{code}");
        }
    }

    #[test]
    fn readmitted_requests_close_an_open_breaker_on_success() {
        // Envoy's max_ejection_percent / nginx's last server: the cap readmits an upstream whose
        // breaker is open; a success there shows it is back, a failure adds nothing.
        let trip = [Record(0, Normal, F), Record(0, Normal, F), Record(1, Normal, F)];
        type Case = (&'static str, Vec<Step>, Vec<(usize, Transition)>);
        let cases: Vec<Case> = vec![
            (
                "success closes at once",
                [&trip[..], &[Record(2, Readmitted, S), Acquire(2, GO)]].concat(),
                vec![(2, opened(10)), (3, Transition::Closed)],
            ),
            (
                "failure neither extends nor doubles",
                [&trip[..], &[Record(2, Readmitted, F), Acquire(10, NO), Acquire(11, PROBE)]].concat(),
                vec![(2, opened(10)), (5, Transition::HalfOpened)],
            ),
            (
                "while half-open, success closes too",
                [&trip[..], &[Acquire(11, PROBE), Record(12, Readmitted, S), Acquire(12, GO)]].concat(),
                vec![(2, opened(10)), (3, Transition::HalfOpened), (4, Transition::Closed)],
            ),
            (
                "a client fault changes nothing",
                [&trip[..], &[Record(2, Readmitted, C), Acquire(2, NO)]].concat(),
                vec![(2, opened(10))],
            ),
            (
                "closed meanwhile: counts as an ordinary request",
                vec![Record(0, Readmitted, F), Record(0, Normal, F), Record(0, Readmitted, F), Acquire(0, NO)],
                vec![(2, opened(10))],
            ),
        ];
        for (name, steps, expected) in cases {
            assert_eq!(run(&steps), expected, "{name}");
        }
    }

    #[test]
    fn admit_anyway_and_ejected_since() {
        let config = PassiveConfig { failure_threshold: 1, ..PassiveConfig::default() };
        let mut breaker = Breaker::new(&config);
        let now = Instant::now();
        let later = |s| now + Duration::from_secs(s);
        assert_eq!(breaker.ejected_since(now), None, "closed");
        assert_eq!(breaker.admit_anyway(now), (Normal, None), "closed: an ordinary permit");
        breaker.record(Normal, F, now);
        assert_eq!(breaker.ejected_since(later(1)), Some(now), "open since the failure");
        assert_eq!(breaker.admit_anyway(later(1)), (Readmitted, None), "open: readmitted");
        assert_eq!(breaker.ejected_since(later(30)), None, "a probe is due: not ejected");
        assert_eq!(breaker.admit_anyway(later(30)), (Probe, Some(Transition::HalfOpened)), "the probe");
        assert_eq!(breaker.ejected_since(later(31)), Some(later(30)), "half-open with its probe out");
    }

    #[test]
    fn odd_config_and_clocks_do_not_panic() {
        let config = PassiveConfig {
            failure_threshold: 0,
            ejection: Duration::ZERO,
            max_ejection: Duration::ZERO,
            ..PassiveConfig::default()
        };
        let mut breaker = Breaker::new(&config);
        let now = Instant::now();
        assert_eq!(breaker.record(Normal, F, now), Some(Transition::Opened { interval: Duration::ZERO }));
        assert_eq!(breaker.try_acquire(now).0, PROBE);
        let huge = PassiveConfig {
            failure_threshold: 1,
            ejection: Duration::MAX,
            max_ejection: Duration::MAX,
            ..PassiveConfig::default()
        };
        let mut breaker = Breaker::new(&huge);
        assert!(breaker.record(Normal, F, now).is_some());
        let earlier = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        assert_eq!(breaker.try_acquire(earlier).0, Admission::Rejected);
    }
}
