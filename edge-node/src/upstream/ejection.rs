//! The ejection cap: how many upstreams of one list (a service's shields, or its origins) open
//! circuit breakers may keep out at once, and which ones go back in past it.
//!
//! Decides: per selection, given each upstream's health, weight and since when its breaker
//! ejects it, which ejected upstreams are readmitted and whether the list is in panic (every
//! usable upstream ejected). Does not move any breaker and does no I/O.
//!
//! The model is Envoy's outlier detection (`max_ejection_percent`: an ejection past the cap
//! does not happen) and nginx's upstream module (a server is never marked down when it is the
//! last one; when all are down, all are tried again). Unset, the cap is "all but one": a
//! single-origin service always reaches its origin, whatever its breaker says.

use std::time::Instant;

/// One upstream as the cap sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Healthy by the active probes and of weight above 0: it counts toward the cap.
    pub usable: bool,
    /// Since when its breaker keeps it out; `None` when the breaker admits requests.
    pub ejected_since: Option<Instant>,
}

/// What the cap decides for one list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Indexes of ejected candidates that get requests anyway.
    pub readmitted: Vec<usize>,
    /// Every usable candidate was ejected: traffic goes to them regardless (Envoy's panic mode).
    pub panic: bool,
}

/// Most of `usable` upstreams that may be ejected at once: `percent` of them, rounded down, or
/// all but one when `percent` is unset. Percentages above 100 count as 100.
pub fn max_ejected(usable: usize, percent: Option<u8>) -> usize {
    match percent {
        None => usable.saturating_sub(1),
        Some(p) => usable.saturating_mul(usize::from(p.min(100))) / 100,
    }
}

/// Why a list is in panic (Envoy's panic threshold: with too few healthy hosts, health is
/// ignored and traffic spreads over all of them, since sending nowhere is worse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panic {
    /// Every upstream fails its active health checks: health is ignored for the list.
    Unhealthy,
    /// Every usable upstream's breaker ejects it: the newest ejections are readmitted.
    Ejected,
}

/// Whether the active checks leave nobody: a non-empty list none of whose upstreams is
/// healthy. Then every upstream counts as healthy, as Envoy's panic mode does (nginx has no
/// active checks in its open-source build; its passive `max_fails` never marks the last
/// server down either). A list with a fallback behind it (shields before the origins) sets
/// `allowed` false: the fallback serves instead.
pub fn health_panic(healthy: &[bool], allowed: bool) -> bool {
    allowed && !healthy.is_empty() && !healthy.iter().any(|h| *h)
}

/// Which ejected candidates are readmitted under the cap. Past it, the most recently ejected
/// ones go back in (as Envoy would have refused to eject them); ties go to the later index.
pub fn plan(candidates: &[Candidate], percent: Option<u8>) -> Plan {
    let usable = candidates.iter().filter(|c| c.usable).count();
    let mut ejected: Vec<(usize, Instant)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.usable)
        .filter_map(|(i, c)| c.ejected_since.map(|since| (i, since)))
        .collect();
    let over = ejected.len().saturating_sub(max_ejected(usable, percent));
    if over == 0 {
        return Plan::default();
    }
    let panic = ejected.len() == usable;
    // Newest ejection first.
    ejected.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    Plan { readmitted: ejected.iter().take(over).map(|(i, _)| *i).collect(), panic }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn max_ejected_by_percent() {
        // (usable, percent, most ejected at once)
        let cases = [
            (0, None, 0),                              // nothing to eject
            (1, None, 0),                              // nginx: the last server is never marked down
            (2, None, 1),                              // all but one
            (5, None, 4),                              //
            (1, Some(100), 1),                         // an operator may let the last one go (the old behaviour)
            (4, Some(50), 2),                          // Envoy max_ejection_percent, rounded down
            (3, Some(50), 1),                          //
            (1, Some(50), 0),                          //
            (10, Some(10), 1),                         // Envoy's own default of 10%
            (4, Some(0), 0),                           // ejection off
            (4, Some(200), 4),                         // above 100 counts as 100
            (usize::MAX, Some(100), usize::MAX / 100), // no overflow: saturates
        ];
        for (usable, percent, expected) in cases {
            assert_eq!(max_ejected(usable, percent), expected, "{usable} usable, {percent:?}");
        }
    }

    #[test]
    fn health_is_ignored_only_when_nobody_is_healthy() {
        // (healthy flags, panic allowed, panic)
        let cases: [(&[bool], bool, bool); 6] = [
            (&[false], true, true), // a single origin failing its checks still gets traffic (Envoy panic)
            (&[false, false], true, true), // every one down
            (&[false, true], true, false), // one healthy: it takes the traffic
            (&[true], true, false), //
            (&[], true, false),     // nothing to send to
            (&[false], false, false), // shields with the origins behind them: the origins serve
        ];
        for (healthy, allowed, expected) in cases {
            assert_eq!(health_panic(healthy, allowed), expected, "{healthy:?} allowed {allowed}");
        }
    }

    #[test]
    fn plan_readmits_the_newest_ejections_past_the_cap() {
        let t0 = Instant::now();
        let at = |s| Some(t0 + Duration::from_secs(s));
        let up = |since| Candidate { usable: true, ejected_since: since };
        let down = |since| Candidate { usable: false, ejected_since: since };
        let plan_of = |readmitted: &[usize], panic| Plan { readmitted: readmitted.to_vec(), panic };
        type Case = (&'static str, Vec<Candidate>, Option<u8>, Plan);
        let cases: Vec<Case> = vec![
            ("none ejected", vec![up(None), up(None)], None, Plan::default()),
            ("one of two ejected: within all-but-one", vec![up(at(1)), up(None)], None, Plan::default()),
            ("single origin ejected: panic, it stays in (nginx)", vec![up(at(1))], None, plan_of(&[0], true)),
            ("both of two ejected: the newer goes back", vec![up(at(1)), up(at(2))], None, plan_of(&[1], true)),
            ("same instant: the later index", vec![up(at(1)), up(at(1))], None, plan_of(&[1], true)),
            ("100% lets every breaker eject", vec![up(at(1)), up(at(2))], Some(100), Plan::default()),
            (
                "Envoy 50% of 4: the third ejection is refused",
                vec![up(at(1)), up(at(3)), up(at(2)), up(None)],
                Some(50),
                plan_of(&[1], false),
            ),
            ("0% ejects nothing", vec![up(at(1)), up(at(2)), up(None)], Some(0), plan_of(&[1, 0], false)),
            (
                "unhealthy upstreams neither count nor return",
                vec![down(at(5)), up(at(1)), down(None)],
                None,
                plan_of(&[1], true),
            ),
            ("all unhealthy: nothing to readmit", vec![down(at(1)), down(None)], None, Plan::default()),
            ("empty list", vec![], None, Plan::default()),
        ];
        for (name, candidates, percent, expected) in cases {
            assert_eq!(plan(&candidates, percent), expected, "{name}");
        }
    }
}
