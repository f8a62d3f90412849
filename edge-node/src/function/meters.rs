//! A function's metric handles, looked up once when the function is built. The `metrics` macros
//! look a series up by name and labels on every call (building the key, an allocation for the
//! service label, a hash and a map lookup), which a function pays for on each request otherwise.

use metrics::{Counter, Histogram};

use crate::metrics::{FUNCTION_DURATION, FUNCTION_INSTANTIATIONS, FUNCTION_REQUESTS};

/// How a guest's run ended, as metric labels: the order is [`Meters::ended`]'s index.
pub(super) const OUTCOMES: [&str; 6] = ["ok", "trap", "cpu", "wall", "memory", "capacity"];

pub(super) struct Meters {
    instantiations: Counter,
    requests: [Counter; OUTCOMES.len()],
    duration: [Histogram; OUTCOMES.len()],
}

impl Meters {
    pub(super) fn new(service: &str) -> Self {
        let service = service.to_string();
        Self {
            instantiations: metrics::counter!(FUNCTION_INSTANTIATIONS, "service" => service.clone()),
            requests: OUTCOMES.map(
                |outcome| metrics::counter!(FUNCTION_REQUESTS, "service" => service.clone(), "outcome" => outcome),
            ),
            duration: OUTCOMES.map(|outcome| metrics::histogram!(FUNCTION_DURATION, "outcome" => outcome)),
        }
    }

    pub(super) fn instantiated(&self) {
        self.instantiations.increment(1);
    }

    /// A run that ended with `OUTCOMES[outcome]` after `seconds`.
    pub(super) fn ended(&self, outcome: usize, seconds: f64) {
        if let (Some(requests), Some(duration)) = (self.requests.get(outcome), self.duration.get(outcome)) {
            requests.increment(1);
            duration.record(seconds);
        }
    }
}
