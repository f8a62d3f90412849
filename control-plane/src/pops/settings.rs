//! `[health]`: how the control plane checks the PoPs' edge nodes.
//!
//! Each round (every `interval`) probes every registered edge node's admin `GET /healthz`
//! with `timeout`, at most `max_concurrent` at once. A node goes down after
//! `unhealthy_threshold` failed probes in a row and comes back after `healthy_threshold`
//! passing ones; its first probe after the control plane starts decides at once.
//!
//! **Detection time**: a node that stops answering is down at most
//! `unhealthy_threshold × interval + timeout` after its last passing probe (defaults:
//! 3 × 1s + 1s = 4s), and DNS answers move at that moment. A node that comes back is up
//! after `healthy_threshold` passing probes (defaults: about 2s) once its stream is open
//! again.

use std::time::Duration;

use serde::Deserialize;

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// Time between the starts of two probe rounds. Shorter detects failures sooner and costs
    /// one HTTP request per edge node per round. Default: `"1s"`; 100ms to 5m.
    #[serde(with = "outpost_config::units::duration")]
    pub interval: Duration,
    /// How long one probe (connect, request, response head) may take; past it the probe
    /// fails. Default: `"1s"`; 10ms to 1m.
    #[serde(with = "outpost_config::units::duration")]
    pub timeout: Duration,
    /// Failed probes in a row before a node is down. Default: 3; 1 to 100.
    pub unhealthy_threshold: u32,
    /// Passing probes in a row before a down node is up. Default: 2; 1 to 100.
    pub healthy_threshold: u32,
    /// Probes in flight at once; the others of a round wait their turn, so a round of many
    /// nodes takes longer. Bounds the sockets the checker holds. Default: 32; 1 to 4096.
    pub max_concurrent: usize,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            max_concurrent: 32,
        }
    }
}

impl HealthSettings {
    /// The longest a dead node stays up: `unhealthy_threshold × interval + timeout`.
    pub fn detection_time(&self) -> Duration {
        self.interval.saturating_mul(self.unhealthy_threshold).saturating_add(self.timeout)
    }

    /// Reports each problem as `(field path, message)`.
    pub fn check(&self, report: &mut dyn FnMut(&str, String)) {
        let ranges = [
            ("health.interval", self.interval, Duration::from_millis(100), Duration::from_secs(300), "100ms to 5m"),
            ("health.timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60), "10ms to 1m"),
        ];
        for (path, value, min, max, range) in ranges {
            if value < min || value > max {
                report(path, format!("{value:?} is out of range; use {range}"));
            }
        }
        let counts = [
            ("health.unhealthy_threshold", usize::try_from(self.unhealthy_threshold).unwrap_or(usize::MAX), 100),
            ("health.healthy_threshold", usize::try_from(self.healthy_threshold).unwrap_or(usize::MAX), 100),
            ("health.max_concurrent", self.max_concurrent, 4096),
        ];
        for (path, value, max) in counts {
            if !(1..=max).contains(&value) {
                report(path, format!("{value} is out of range; use 1 to {max}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_detect_a_dead_node_in_four_seconds() {
        assert_eq!(HealthSettings::default().detection_time(), Duration::from_secs(4));
        let mut problems = Vec::new();
        HealthSettings::default().check(&mut |path, message| problems.push(format!("{path}: {message}")));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn each_bound_names_its_field() {
        let cases = [
            (HealthSettings { interval: Duration::from_millis(10), ..Default::default() }, "health.interval"),
            (HealthSettings { timeout: Duration::from_secs(61), ..Default::default() }, "health.timeout"),
            (HealthSettings { unhealthy_threshold: 0, ..Default::default() }, "health.unhealthy_threshold"),
            (HealthSettings { healthy_threshold: 101, ..Default::default() }, "health.healthy_threshold"),
            (HealthSettings { max_concurrent: 0, ..Default::default() }, "health.max_concurrent"),
        ];
        for (settings, field) in cases {
            let mut problems = Vec::new();
            settings.check(&mut |path, message| problems.push((path.to_owned(), message)));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].0, field);
            assert!(problems[0].1.contains("out of range"), "{problems:?}");
        }
    }
}
