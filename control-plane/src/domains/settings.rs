//! `[domains]`: how proofs of domain control are checked and re-checked, and which domains
//! tenants own by the operator's word.
//!
//! ```toml
//! [domains]
//! resolver = "10.0.0.2:53"        # default: the first nameserver of /etc/resolv.conf
//! recheck_interval = "1h"
//! pending_interval = "5m"
//! lapse_after = 3
//! check_timeout = "10s"
//! http_port = 80
//! max_checks_per_round = 100
//! owned = { acme = ["acme.example"], globex = ["globex.example", "globex.test"] }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use outpost_config::TenantId;
use serde::Deserialize;

use super::rules::{Claim, Policy};

/// `[domains]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainSettings {
    /// The recursive resolver every proof is looked up through: the TXT records, and the
    /// addresses the HTTP proof is fetched from. `"IP:PORT"`. Default: the first `nameserver`
    /// of `/etc/resolv.conf` on port 53 (127.0.0.1:53 when it names none).
    pub resolver: Option<SocketAddr>,
    /// How often a served domain's proof is looked up again; the proof must stay in place
    /// (DNS TXT record, or the HTTP token answered through the service's origin). Default:
    /// `"1h"`; 1s to 30 days.
    #[serde(with = "outpost_config::units::duration")]
    pub recheck_interval: Duration,
    /// How often a pending or lapsed domain is looked up without being asked (a tenant that
    /// sets its TXT record need not call the check endpoint). Default: `"5m"`; 1s to 1 day.
    #[serde(with = "outpost_config::units::duration")]
    pub pending_interval: Duration,
    /// Re-checks in a row that must find the proof gone (an answer without the token, not a
    /// resolver that does not answer, which changes nothing) before a served domain lapses
    /// and nodes stop serving it; until then it is `failing` and still served. With the
    /// defaults a removed proof stops traffic after about 2 hours, never on one lookup.
    /// Default: 3; 2 to 100.
    pub lapse_after: u32,
    /// Time allowed for one DNS lookup, and for the whole HTTP proof exchange with one address.
    /// Default: `"10s"`; 100ms to 1m.
    #[serde(with = "outpost_config::units::duration")]
    pub check_timeout: Duration,
    /// The port the HTTP proof is fetched from (`http://<host>:<port>/.well-known/...`).
    /// Default: 80; change it only for tests or a setup that maps port 80 elsewhere.
    pub http_port: u16,
    /// Domains checked per round of the periodic check (one round every `pending_interval`
    /// or every minute, whichever is shorter); the rest wait for the next round. Bounds the
    /// lookups one round makes (they run one after another). Default: 100; 1 to 10000.
    pub max_checks_per_round: usize,
    /// Domains each tenant owns by the operator's word: a host a tenant adds that is one of
    /// them or under one (`shop.acme.example` under `acme.example`; `*.acme.example` too) is
    /// verified at once (`method: operator`), and another tenant's host there is refused with
    /// 409 `domain_claimed`. Default: none.
    pub owned: BTreeMap<String, Vec<String>>,
}

impl Default for DomainSettings {
    fn default() -> Self {
        Self {
            resolver: None,
            recheck_interval: Duration::from_secs(3600),
            pending_interval: Duration::from_secs(300),
            lapse_after: 3,
            check_timeout: Duration::from_secs(10),
            http_port: 80,
            max_checks_per_round: 100,
            owned: BTreeMap::new(),
        }
    }
}

impl DomainSettings {
    /// The re-check policy.
    pub fn policy(&self) -> Policy {
        Policy {
            pending_interval: self.pending_interval,
            recheck_interval: self.recheck_interval,
            lapse_after: self.lapse_after,
        }
    }

    /// `owned` as claims; entries that do not parse (validation refused them) are left out.
    pub fn owned_claims(&self) -> Vec<Claim> {
        let mut claims = Vec::new();
        for (tenant, domains) in &self.owned {
            let Ok(tenant) = TenantId::parse(tenant) else { continue };
            for domain in domains {
                if let Ok(pattern) = domain.parse::<outpost_config::HostPattern>() {
                    claims.push(Claim { tenant: tenant.clone(), name: pattern.to_string() });
                }
            }
        }
        claims
    }

    /// `resolver`, or the system's.
    pub fn resolver(&self) -> SocketAddr {
        self.resolver.unwrap_or_else(|| {
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            super::resolver::first_nameserver(&text).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 53)))
        })
    }

    /// How often the periodic check runs a round.
    pub fn round_interval(&self) -> Duration {
        self.pending_interval.min(Duration::from_secs(60))
    }

    /// Reports each problem as `(field path, message)`.
    pub fn check(&self, report: &mut dyn FnMut(&str, String)) {
        let ranges = [
            (
                "domains.recheck_interval",
                self.recheck_interval,
                Duration::from_secs(1),
                Duration::from_secs(30 * 86_400),
                "1s to 30 days",
            ),
            (
                "domains.pending_interval",
                self.pending_interval,
                Duration::from_secs(1),
                Duration::from_secs(86_400),
                "1s to 1 day",
            ),
            (
                "domains.check_timeout",
                self.check_timeout,
                Duration::from_millis(100),
                Duration::from_secs(60),
                "100ms to 1m",
            ),
        ];
        for (path, value, min, max, range) in ranges {
            if value < min || value > max {
                report(path, format!("{value:?} is out of range; use {range}"));
            }
        }
        if !(2..=100).contains(&self.lapse_after) {
            report(
                "domains.lapse_after",
                format!(
                    "{} is out of range; use 2 to 100 (one failed lookup never stops a served host)",
                    self.lapse_after
                ),
            );
        }
        if !(1..=10_000).contains(&self.max_checks_per_round) {
            report(
                "domains.max_checks_per_round",
                format!("{} is out of range; use 1 to 10000", self.max_checks_per_round),
            );
        }
        if self.http_port == 0 {
            report("domains.http_port", "0 is not a port; use 1 to 65535 (default 80)".to_owned());
        }
        for (tenant, domains) in &self.owned {
            if let Err(why) = TenantId::parse(tenant) {
                report(&format!("domains.owned.{tenant}"), why);
            }
            for (i, domain) in domains.iter().enumerate() {
                if let Err(why) = domain.parse::<outpost_config::HostPattern>() {
                    report(&format!("domains.owned.{tenant}[{i}]"), why);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_bad_values_name_their_field() {
        let mut problems = Vec::new();
        DomainSettings::default().check(&mut |path, message| problems.push(format!("{path}: {message}")));
        assert!(problems.is_empty(), "{problems:?}");
        let bad = DomainSettings {
            lapse_after: 1,
            http_port: 0,
            recheck_interval: Duration::from_millis(500),
            owned: BTreeMap::from([("ACME".to_owned(), vec!["ok.example".to_owned(), "a b".to_owned()])]),
            ..DomainSettings::default()
        };
        bad.check(&mut |path, message| problems.push(format!("{path}: {message}")));
        let expected = [
            "domains.recheck_interval: 500ms is out of range",
            "domains.lapse_after: 1 is out of range",
            "domains.http_port: 0 is not a port",
            "domains.owned.ACME: \"ACME\" is not a valid tenant name",
            "domains.owned.ACME[1]: \"a b\"",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:?}");
        for (problem, expected) in problems.iter().zip(expected) {
            assert!(problem.starts_with(expected), "{problem} / {expected}");
        }
    }

    #[test]
    fn owned_domains_become_claims() {
        let settings = DomainSettings {
            owned: BTreeMap::from([("acme".to_owned(), vec!["Acme.Example".to_owned(), "*.wild.example".to_owned()])]),
            ..DomainSettings::default()
        };
        let names: Vec<String> = settings.owned_claims().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["acme.example", "*.wild.example"]);
    }
}
