//! The pure rules of domain control, time passed in: which names a claim covers, when a new
//! claim collides with another tenant's, what a check's outcome does to a domain, when a
//! domain is due for a check, and what a service write does to its domains.

use std::time::Duration;

use outpost_config::{ServiceId, TenantId, Timestamp};

use super::record::{DomainMethod, DomainRecord, DomainStatus};

/// Whether `name` is `domain` or a name under it (`a.shop.example` under `shop.example`).
/// Both lower-case, without a trailing dot.
pub fn under(name: &str, domain: &str) -> bool {
    name == domain
        || (name.len() > domain.len()
            && name.ends_with(domain)
            && name.as_bytes().get(name.len() - domain.len() - 1) == Some(&b'.'))
}

/// The name a pattern's proof is about: the host itself, or for `*.suffix` the suffix (the
/// DNS proof of a wildcard is a TXT record at the suffix, so it proves control of the zone).
pub fn root(pattern: &str) -> &str {
    pattern.strip_prefix("*.").unwrap_or(pattern)
}

/// Whether the wildcard pattern `pattern` (`*.suffix`) matches `host`: one label or more in
/// front of the suffix, as the nodes route.
pub fn wildcard_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host != suffix && under(host, suffix),
        None => false,
    }
}

/// Someone's standing claim on a part of the name space: a served domain of a tenant, or a
/// domain the control plane's config says a tenant owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub tenant: TenantId,
    /// The pattern claimed (`shop.example`, `*.shop.example`) or the owned domain.
    pub name: String,
}

/// Why `tenant` may not claim a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub pattern: String,
    /// The other tenant's verified (or owned) domain, as it names it.
    pub domain: String,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pattern == self.domain {
            write!(f, "{} is verified by another tenant", self.pattern)
        } else if self.pattern.starts_with("*.") && !under(root(&self.pattern), root(&self.domain)) {
            write!(f, "{} would cover {}, which another tenant verified", self.pattern, self.domain)
        } else {
            write!(f, "{} is under {}, which another tenant verified", self.pattern, self.domain)
        }
    }
}

/// Whether `tenant` may claim `pattern` beside `claims` (every tenant's served domains and
/// owned domains; the tenant's own are skipped): refused when the pattern is the other
/// claim's name or under it, or is a wildcard whose zone holds the other claim. A tenant the
/// config says owns a domain holding the pattern may claim it whatever others verified (the
/// operator's word stands over a proof).
pub fn collision(tenant: &TenantId, pattern: &str, claims: &[Claim], owned: &[Claim]) -> Option<Collision> {
    let mine = root(pattern);
    if owned.iter().any(|o| o.tenant == *tenant && under(mine, root(&o.name))) {
        return None;
    }
    let wildcard = pattern.starts_with("*.");
    claims.iter().chain(owned).filter(|c| c.tenant != *tenant).find_map(|c| {
        let theirs = root(&c.name);
        let hit = under(mine, theirs) || (wildcard && under(theirs, mine));
        hit.then(|| Collision { pattern: pattern.to_owned(), domain: c.name.clone() })
    })
}

/// Whether the config says `tenant` owns a domain holding `pattern`: such a host is verified by
/// the operator's word when it is added.
pub fn owned_by(tenant: &TenantId, pattern: &str, owned: &[Claim]) -> bool {
    owned.iter().any(|o| o.tenant == *tenant && under(root(pattern), root(&o.name)))
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The token was found, by this method.
    Proven(DomainMethod),
    /// An answer came and it does not hold the token (no TXT record, another value, an HTTP
    /// answer without it, a refused address): counts toward a lapse.
    Refuted(String),
    /// No answer could be had (the resolver is away or failing): says nothing about the
    /// domain, so it changes nothing but `last_error`.
    Inconclusive(String),
}

impl Outcome {
    /// The label metrics count it under.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Proven(_) => "proven",
            Outcome::Refuted(_) => "refuted",
            Outcome::Inconclusive(_) => "inconclusive",
        }
    }
}

/// The re-check policy (`[domains]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub pending_interval: Duration,
    pub recheck_interval: Duration,
    /// Refuted re-checks in a row after which a served domain lapses. At least 2.
    pub lapse_after: u32,
}

/// The domain after a check with `outcome` at `now`:
/// - proven: verified (failures reset, the error cleared);
/// - refuted: a pending or lapsed domain stays so; a served one counts a failure, and lapses
///   (stops being served) at `lapse_after` in a row, failing until then; a domain the operator
///   decreed stays verified (a decree is not undone by a lookup);
/// - inconclusive: only `last_error` and `checked_at` change.
pub fn after_check(record: &DomainRecord, outcome: &Outcome, now: Timestamp, policy: &Policy) -> DomainRecord {
    let mut next = record.clone();
    next.checked_at = Some(now);
    let decreed = record.method == Some(DomainMethod::Operator) && record.status.served();
    match outcome {
        Outcome::Proven(method) => {
            next.status = DomainStatus::Verified;
            next.method = Some(*method);
            next.verified_at = Some(now);
            next.failures = 0;
            next.last_error = None;
        }
        Outcome::Refuted(why) if decreed => next.last_error = Some(why.clone()),
        Outcome::Refuted(why) => {
            next.failures = record.failures.saturating_add(1);
            next.last_error = Some(why.clone());
            next.status = match record.status {
                DomainStatus::Pending | DomainStatus::Lapsed => record.status,
                DomainStatus::Verified | DomainStatus::Failing if next.failures >= policy.lapse_after.max(2) => {
                    DomainStatus::Lapsed
                }
                DomainStatus::Verified | DomainStatus::Failing => DomainStatus::Failing,
            };
        }
        Outcome::Inconclusive(why) => next.last_error = Some(why.clone()),
    }
    next
}

/// Whether the periodic check should look at `record` at `now`: pending and lapsed domains every
/// `pending_interval`, served ones every `recheck_interval`, never a decreed one.
pub fn due(record: &DomainRecord, now: Timestamp, policy: &Policy) -> bool {
    if record.method == Some(DomainMethod::Operator) && record.status.served() {
        return false;
    }
    let every = if record.status.served() { policy.recheck_interval } else { policy.pending_interval };
    let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    record.checked_at.is_none_or(|at| now.0.saturating_sub(at.0) >= every)
}

/// What a service write does to its domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The service's domains after the write, in the order of its hosts: kept as they are,
    /// or new (pending, or decreed when owned).
    pub domains: Vec<DomainRecord>,
    /// Hosts whose domains go (no longer in the config).
    pub removed: Vec<String>,
    /// The hosts nodes serve: `ServiceRecord::verified_hosts`.
    pub verified_hosts: Vec<String>,
}

/// Plans the domains of service `service` of `tenant` whose config now lists `hosts`:
/// `existing` are its domains before the write; `decreed` the new hosts verified by the
/// operator's word; `token` makes a fresh token for each new domain.
pub fn plan(
    service: &ServiceId,
    tenant: &TenantId,
    hosts: &[String],
    decreed: &[String],
    existing: &[DomainRecord],
    at: Timestamp,
    mut token: impl FnMut() -> Result<String, String>,
) -> Result<Plan, String> {
    let mut domains = Vec::with_capacity(hosts.len());
    for host in hosts {
        // A domain moves with its host only within its service and tenant.
        let kept = existing.iter().find(|d| d.host == *host && d.service == *service && d.tenant == *tenant);
        let record = match kept {
            Some(kept) => kept.clone(),
            None if decreed.contains(host) => {
                DomainRecord::decreed(host.clone(), service.clone(), tenant.clone(), token()?, at)
            }
            None => DomainRecord::pending(host.clone(), service.clone(), tenant.clone(), token()?, at),
        };
        domains.push(record);
    }
    let removed = existing.iter().filter(|d| !hosts.contains(&d.host)).map(|d| d.host.clone()).collect();
    let verified_hosts = served_hosts(&domains);
    Ok(Plan { domains, removed, verified_hosts })
}

/// The hosts of `domains` that nodes serve, in their order.
pub fn served_hosts(domains: &[DomainRecord]) -> Vec<String> {
    domains.iter().filter(|d| d.status.served()).map(|d| d.host.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn claim(tenant_name: &str, name: &str) -> Claim {
        Claim { tenant: tenant(tenant_name), name: name.to_owned() }
    }

    fn domain(status: DomainStatus, method: Option<DomainMethod>, failures: u32) -> DomainRecord {
        let service = ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}"));
        let mut d = DomainRecord::pending("shop.example".into(), service, tenant("acme"), "t".into(), Timestamp(0));
        d.status = status;
        d.method = method;
        d.failures = failures;
        d
    }

    const POLICY: Policy = Policy {
        pending_interval: Duration::from_secs(60),
        recheck_interval: Duration::from_secs(3600),
        lapse_after: 3,
    };

    #[test]
    fn names_under_a_domain() {
        let cases = [
            ("shop.example", "shop.example", true),
            ("a.shop.example", "shop.example", true),
            ("a.b.shop.example", "shop.example", true),
            ("evilshop.example", "shop.example", false),
            ("shop.example", "a.shop.example", false),
            ("example", "shop.example", false),
            ("shop.example", "example", true),
        ];
        for (name, domain, expected) in cases {
            assert_eq!(under(name, domain), expected, "{name} under {domain}");
        }
    }

    #[test]
    fn wildcards_match_one_label_or_more_in_front() {
        let cases = [
            ("*.shop.example", "a.shop.example", true),
            ("*.shop.example", "a.b.shop.example", true),
            ("*.shop.example", "shop.example", false),
            ("*.shop.example", "xshop.example", false),
            ("shop.example", "shop.example", false),
        ];
        for (pattern, host, expected) in cases {
            assert_eq!(wildcard_matches(pattern, host), expected, "{pattern} ~ {host}");
        }
    }

    #[test]
    fn collisions_with_another_tenants_claims() {
        let claims = [claim("acme", "acme.test"), claim("acme", "*.wild.test"), claim("acme", "www.site.test")];
        let owned = [claim("initech", "initech.test"), claim("globex", "mine.test")];
        // (tenant, pattern, the domain it collides with)
        let cases = [
            ("globex", "acme.test", Some("acme.test")),
            ("globex", "evil.acme.test", Some("acme.test")),
            ("globex", "*.acme.test", Some("acme.test")),
            ("globex", "a.b.wild.test", Some("*.wild.test")),
            ("globex", "wild.test", Some("*.wild.test")),
            // A wildcard whose zone holds another's verified host.
            ("globex", "*.site.test", Some("www.site.test")),
            ("globex", "*.test", Some("acme.test")),
            // Beside, above an exact host, or one's own: free.
            ("globex", "site.test", None),
            ("globex", "api.site.test", None),
            ("globex", "acmex.test", None),
            ("acme", "evil.acme.test", None),
            // Owned by config: refused to others, free for the owner.
            ("globex", "x.initech.test", Some("initech.test")),
            ("initech", "x.initech.test", None),
            ("globex", "a.mine.test", None),
        ];
        for (who, pattern, expected) in cases {
            let got = collision(&tenant(who), pattern, &claims, &owned);
            assert_eq!(got.as_ref().map(|c| c.domain.as_str()), expected, "{who} claims {pattern}");
        }
        // The owner by config may claim under another's proof.
        let theirs = [claim("acme", "shop.mine.test")];
        assert_eq!(collision(&tenant("globex"), "x.shop.mine.test", &theirs, &owned), None);
        let message = collision(&tenant("globex"), "*.site.test", &claims, &owned).map(|c| c.to_string());
        assert_eq!(message.as_deref(), Some("*.site.test would cover www.site.test, which another tenant verified"));
        let message = collision(&tenant("globex"), "evil.acme.test", &claims, &owned).map(|c| c.to_string());
        assert_eq!(message.as_deref(), Some("evil.acme.test is under acme.test, which another tenant verified"));
    }

    #[test]
    fn checks_move_a_domain_through_its_states() {
        use DomainStatus::{Failing, Lapsed, Pending, Verified};
        let now = Timestamp(1_000);
        let proven = Outcome::Proven(DomainMethod::Dns);
        let refuted = Outcome::Refuted("no TXT record".into());
        let away = Outcome::Inconclusive("resolver timed out".into());
        let operator = Some(DomainMethod::Operator);
        let dns = Some(DomainMethod::Dns);
        // (status, method, failures before, outcome, status after, failures after)
        let cases = [
            (Pending, None, 0, &proven, Verified, 0),
            (Pending, None, 4, &refuted, Pending, 5),
            (Pending, None, 0, &away, Pending, 0),
            (Verified, dns, 0, &refuted, Failing, 1),
            (Failing, dns, 1, &refuted, Failing, 2),
            (Failing, dns, 2, &refuted, Lapsed, 3),
            (Failing, dns, 2, &away, Failing, 2),
            (Failing, dns, 2, &proven, Verified, 0),
            (Verified, dns, 0, &away, Verified, 0),
            (Lapsed, dns, 3, &refuted, Lapsed, 4),
            (Lapsed, dns, 3, &proven, Verified, 0),
            // A decree is not undone by a lookup.
            (Verified, operator, 0, &refuted, Verified, 0),
        ];
        for (status, method, failures, outcome, expected, expected_failures) in cases {
            let after = after_check(&domain(status, method, failures), outcome, now, &POLICY);
            assert_eq!((after.status, after.failures), (expected, expected_failures), "{status} {outcome:?}");
            assert_eq!(after.checked_at, Some(now));
            assert_eq!(after.last_error.is_none(), matches!(outcome, Outcome::Proven(_)), "{status} {outcome:?}");
        }
        let verified = after_check(&domain(Pending, None, 0), &Outcome::Proven(DomainMethod::Http), now, &POLICY);
        assert_eq!((verified.method, verified.verified_at), (Some(DomainMethod::Http), Some(now)));
        // One failed lookup never stops a served host, whatever lapse_after says.
        let once = Policy { lapse_after: 1, ..POLICY };
        assert_eq!(after_check(&domain(Verified, dns, 0), &refuted, now, &once).status, Failing);
    }

    #[test]
    fn what_is_due_for_a_check() {
        let minute = 60_000;
        let checked = |status, method, at: Option<u64>| {
            let mut d = domain(status, method, 0);
            d.checked_at = at.map(Timestamp);
            d
        };
        let dns = Some(DomainMethod::Dns);
        let now = Timestamp(100 * minute);
        let cases = [
            (checked(DomainStatus::Pending, None, None), true),
            (checked(DomainStatus::Pending, None, Some(99 * minute + 1)), false),
            (checked(DomainStatus::Pending, None, Some(99 * minute)), true),
            (checked(DomainStatus::Lapsed, dns, Some(98 * minute)), true),
            (checked(DomainStatus::Verified, dns, Some(98 * minute)), false),
            (checked(DomainStatus::Failing, dns, Some(40 * minute)), true),
            (checked(DomainStatus::Verified, Some(DomainMethod::Operator), None), false),
        ];
        for (record, expected) in cases {
            assert_eq!(due(&record, now, &POLICY), expected, "{:?} {:?}", record.status, record.checked_at);
        }
    }

    #[test]
    fn a_write_keeps_known_domains_adds_new_ones_and_drops_old_ones() {
        let shop = ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}"));
        let mut verified = domain(DomainStatus::Verified, Some(DomainMethod::Dns), 0);
        verified.host = "shop.example".into();
        let mut old = verified.clone();
        old.host = "old.example".into();
        let hosts = ["shop.example".to_owned(), "new.example".to_owned(), "owned.example".to_owned()];
        let mut n = 0;
        let token = || {
            n += 1;
            Ok(format!("token{n}"))
        };
        let existing = [verified.clone(), old];
        let plan = plan(&shop, &tenant("acme"), &hosts, &["owned.example".into()], &existing, Timestamp(5), token);
        let plan = plan.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.domains[0], verified);
        assert_eq!((plan.domains[1].status, plan.domains[1].token.as_str()), (DomainStatus::Pending, "token1"));
        assert_eq!(plan.domains[2].method, Some(DomainMethod::Operator));
        assert_eq!(plan.removed, ["old.example"]);
        assert_eq!(plan.verified_hosts, ["shop.example", "owned.example"]);
        // Another tenant's record of the host (a service given away) is not kept.
        let theirs = DomainRecord { tenant: tenant("globex"), ..verified };
        let plan = super::plan(&shop, &tenant("acme"), &hosts[..1], &[], &[theirs], Timestamp(5), || Ok("t".into()));
        assert_eq!(plan.map(|p| p.verified_hosts).ok(), Some(vec![]));
    }
}
