//! Counters of DNS answers, reported under `"dns"` in `GET /v1/pops`: by response kind, by
//! how the PoP was picked, and by PoP. Every label is bounded: kinds and picks are fixed sets,
//! and a PoP is counted only when it was answered (so it is in the table).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::steer::Pick;

/// What kind of answer a query got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Records in the answer section.
    Answer,
    /// The name exists, not with that type (NOERROR, empty, SOA in authority).
    NoData,
    /// NXDOMAIN: no such service, or another name in the zone.
    NxDomain,
    /// REFUSED: a name outside the zone, or a class other than IN.
    Refused,
    /// FORMERR, NOTIMP, BADVERS: a malformed or unsupported query.
    Malformed,
    /// SERVFAIL: the store could not say whether the service exists.
    ServFail,
}

const OUTCOMES: [Outcome; 6] =
    [Outcome::Answer, Outcome::NoData, Outcome::NxDomain, Outcome::Refused, Outcome::Malformed, Outcome::ServFail];

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Answer => "answer",
            Outcome::NoData => "nodata",
            Outcome::NxDomain => "nxdomain",
            Outcome::Refused => "refused",
            Outcome::Malformed => "malformed",
            Outcome::ServFail => "servfail",
        }
    }

    fn index(self) -> usize {
        OUTCOMES.iter().position(|o| *o == self).unwrap_or(0)
    }
}

const PICKS: [Pick; 3] = [Pick::Healthy, Pick::AllDown, Pick::AllDrained];

/// The counters.
#[derive(Debug, Default)]
pub struct Stats {
    outcomes: [AtomicU64; 6],
    picks: [AtomicU64; 3],
    by_pop: Mutex<BTreeMap<String, u64>>,
}

/// The counters as JSON.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatsView {
    /// Queries by outcome: `answer`, `nodata`, `nxdomain`, `refused`, `malformed`, `servfail`.
    pub queries: BTreeMap<&'static str, u64>,
    /// Service answers by how the PoP was picked: `healthy`, `all_down` (every undrained PoP
    /// was down), `all_drained`.
    pub picks: BTreeMap<&'static str, u64>,
    /// Service answers by PoP.
    pub pops: BTreeMap<String, u64>,
}

impl Stats {
    pub fn count(&self, outcome: Outcome) {
        if let Some(counter) = self.outcomes.get(outcome.index()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A service answered from `pop`.
    pub fn picked(&self, pop: &str, pick: Pick) {
        if let Some(counter) = PICKS.iter().position(|p| *p == pick).and_then(|i| self.picks.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let mut by_pop = self.by_pop.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match by_pop.get_mut(pop) {
            Some(count) => *count += 1,
            None => {
                by_pop.insert(pop.to_owned(), 1);
            }
        }
    }

    pub fn view(&self) -> StatsView {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsView {
            queries: OUTCOMES.iter().zip(&self.outcomes).map(|(o, c)| (o.name(), load(c))).collect(),
            picks: PICKS.iter().zip(&self.picks).map(|(p, c)| (p.name(), load(c))).collect(),
            pops: self.by_pop.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_outcome_pick_and_pop() {
        let stats = Stats::default();
        stats.count(Outcome::Answer);
        stats.count(Outcome::Answer);
        stats.count(Outcome::Refused);
        stats.picked("fra", Pick::Healthy);
        stats.picked("fra", Pick::AllDown);
        let view = stats.view();
        assert_eq!(view.queries["answer"], 2);
        assert_eq!(view.queries["refused"], 1);
        assert_eq!(view.queries["servfail"], 0);
        assert_eq!(view.queries.len(), OUTCOMES.len());
        assert_eq!((view.picks["healthy"], view.picks["all_down"], view.picks["all_drained"]), (1, 1, 0));
        assert_eq!(view.pops["fra"], 2);
    }
}
