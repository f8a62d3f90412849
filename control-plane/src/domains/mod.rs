//! Domain control before traffic: a service's host is served only once its tenant proved it
//! controls the name (issue 17).
//!
//! # Map
//! - `record`: [`DomainRecord`] (one host pattern of one service: status, method, token,
//!   times, last error) and its JSON.
//! - `rules`: the pure rules, time passed in: names under a domain, collisions with another
//!   tenant's claim, what a check's [`Outcome`] does to a domain, when one is due, what a
//!   service write does to its domains ([`rules::plan`]).
//! - `resolver`: a stub resolver (TXT, A, AAAA) over UDP/TCP to `domains.resolver`.
//! - `proof`: one check: the DNS proof, else the HTTP proof (SSRF-safe, bounded).
//! - `recheck`: the periodic check of pending, lapsed and served domains.
//! - `settings`: `[domains]`.
//!
//! # How a host becomes served
//! `PUT /v1/services/shop` with a new host → the store writes a pending domain with a fresh
//! token in the same transaction as the service, whose record lists the hosts nodes may serve
//! (`ServiceRecord::verified_hosts`, without the new one). The tenant publishes the token
//! (TXT `_outpost-challenge.<host>`, or `http://<host>/.well-known/outpost-challenge/<token>`)
//! and calls `POST /v1/services/shop/domains/<host>/check`, or waits for the periodic check.
//! A proof makes the domain verified: [`Store::put_domain`] writes it and, as the served set
//! changed, the service's next version, whose `service_put` event takes the host to every node.
//!
//! # For other parts (certificates, ACME)
//! - [`Store::domains`] with [`DomainQuery::service`]: a service's domains with their status.
//! - [`verified_for`]: whether a host or a certificate name is verified for a service, given
//!   its domains; [`is_verified`] reads them from the store first.
//! - `ServiceRecord::verified_hosts`: the same set as nodes see it.

pub mod proof;
pub mod recheck;
pub mod record;
pub mod resolver;
pub mod rules;
pub mod settings;

use std::sync::atomic::{AtomicU64, Ordering};

use outpost_config::{Event, ServiceId, TenantId, Timestamp};

pub use record::{DomainMethod, DomainRecord, DomainStatus};
pub use rules::{Claim, Collision, Outcome};
pub use settings::DomainSettings;

use crate::store::{DomainQuery, Store, StoreError};

/// Whether `name` (a host, or a certificate's name such as `*.shop.example`) is verified for
/// the service whose domains are `domains`: a served domain is that very pattern, or is a
/// wildcard matching the host.
pub fn verified_for(domains: &[DomainRecord], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    domains.iter().filter(|d| d.status.served()).any(|d| d.host == name || rules::wildcard_matches(&d.host, &name))
}

/// [`verified_for`] on the service's domains as stored now.
pub async fn is_verified(store: &dyn Store, service: &ServiceId, name: &str) -> Result<bool, StoreError> {
    let domains = store.domains(DomainQuery::service(service.clone())).await?;
    Ok(verified_for(&domains, name))
}

/// Most domains read at once for collision checks and rounds of the periodic check.
pub const MAX_SCAN: usize = 100_000;

/// What checks share: the settings, the owned domains parsed once, the prover and counters.
pub struct Domains {
    pub settings: DomainSettings,
    pub owned: Vec<Claim>,
    pub prover: proof::Prover,
    /// Checks by outcome: proven, refuted, inconclusive, collided.
    checks: [AtomicU64; 4],
}

/// The outcome labels of `checks`, in its order.
pub const CHECK_OUTCOMES: [&str; 4] = ["proven", "refuted", "inconclusive", "collided"];

/// What one check did.
#[derive(Debug)]
pub struct Checked {
    pub record: DomainRecord,
    pub outcome: Outcome,
    /// The domain was proven but another tenant's claim covers it: not verified.
    pub collision: Option<Collision>,
    /// The service's new version, when the served set changed.
    pub event: Option<Event>,
}

impl Domains {
    pub fn new(settings: DomainSettings, allow: Vec<outpost_config::Cidr>) -> Self {
        let resolver = resolver::Resolver { server: settings.resolver(), timeout: settings.check_timeout };
        let prover = proof::Prover { resolver, http_port: settings.http_port, allow, timeout: settings.check_timeout };
        let owned = settings.owned_claims();
        Self { settings, owned, prover, checks: Default::default() }
    }

    /// Every served domain as a claim (the other side of collision checks).
    pub async fn claims(&self, store: &dyn Store) -> Result<Vec<Claim>, StoreError> {
        let all = store.domains(DomainQuery::all(MAX_SCAN)).await?;
        let served = all.into_iter().filter(|d| d.status.served());
        Ok(served.map(|d| Claim { tenant: d.tenant, name: d.host }).collect())
    }

    /// Whether `tenant` may claim `pattern` now.
    pub fn collision(&self, tenant: &TenantId, pattern: &str, claims: &[Claim]) -> Option<Collision> {
        rules::collision(tenant, pattern, claims, &self.owned)
    }

    /// Whether the config says `tenant` owns a domain holding `pattern`.
    pub fn owned_by(&self, tenant: &TenantId, pattern: &str) -> bool {
        rules::owned_by(tenant, pattern, &self.owned)
    }

    /// Checks `domain` now and records what the check found (a proof that collides with
    /// another tenant's claim is recorded as refuted, naming the domain).
    pub async fn check(&self, store: &dyn Store, domain: &DomainRecord, now: Timestamp) -> Result<Checked, StoreError> {
        let outcome = self.prover.check(domain).await;
        let mut collision = None;
        let recorded = match &outcome {
            Outcome::Proven(_) if !domain.status.served() => {
                let claims = self.claims(store).await?;
                collision = self.collision(&domain.tenant, &domain.host, &claims);
                match &collision {
                    Some(c) => Outcome::Refuted(c.to_string()),
                    None => outcome.clone(),
                }
            }
            other => other.clone(),
        };
        let slot = if collision.is_some() {
            3
        } else {
            CHECK_OUTCOMES.iter().position(|l| *l == outcome.label()).unwrap_or(2)
        };
        self.checks[slot].fetch_add(1, Ordering::Relaxed);
        let next = rules::after_check(domain, &recorded, now, &self.settings.policy());
        let event = store.put_domain(next.clone(), now).await?;
        tracing::info!(host = %domain.host, service = %domain.service, outcome = outcome.label(),
            status = %next.status, error = next.last_error.as_deref().unwrap_or(""), "domain checked");
        Ok(Checked { record: next, outcome, collision, event })
    }

    /// Checks by outcome, in [`CHECK_OUTCOMES`]' order.
    pub fn check_counts(&self) -> [u64; 4] {
        [0, 1, 2, 3].map(|i| self.checks[i].load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_verified_by_its_own_served_domain_or_a_matching_wildcard() {
        let service = ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}"));
        let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
        let domain = |host: &str, status| DomainRecord {
            status,
            ..DomainRecord::pending(host.into(), service.clone(), tenant.clone(), "t".into(), Timestamp(0))
        };
        let domains = [
            domain("shop.example", DomainStatus::Verified),
            domain("*.shop.example", DomainStatus::Failing),
            domain("new.example", DomainStatus::Pending),
            domain("old.example", DomainStatus::Lapsed),
        ];
        let cases = [
            ("shop.example", true),
            ("SHOP.example", true),
            ("www.shop.example", true),
            ("*.shop.example", true),
            ("a.b.shop.example", true),
            ("new.example", false),
            ("old.example", false),
            ("*.example", false),
            ("example", false),
        ];
        for (name, expected) in cases {
            assert_eq!(verified_for(&domains, name), expected, "{name}");
        }
    }
}
