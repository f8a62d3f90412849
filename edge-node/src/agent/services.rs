//! The control plane's service records → the services the node runs beside its file's.
//!
//! Each record's config is parsed into a [`ServiceConfig`] and validated as the control plane
//! did (the name must be the id). The whole set then goes to the [`Reloader`], which merges it
//! with the file's services (a control-plane service replaces a file service of the same name),
//! checks the merged set and compiles it in one swap.
//!
//! A version that cannot run on this node is **rejected, logged, and counted**
//! (`outpost_control_rejected_services`), and every other service still applies: one tenant's
//! config never blocks the rest. Reasons are local to the node, since the control plane
//! validated the config: a host that one of this node's file services (under another name)
//! already serves, an `origin_ca` missing here, a function that does not compile here (it
//! imports an interface this node's host does not offer, say), or a function file this node
//! cannot have (see [`super::functions::FunctionFiles::bind`]; such a version is tried again
//! with the next set, since the file may come). The service then **keeps the
//! version it ran before** (config and function: nodes compile a new version before they
//! switch to it), and the node reports that version as the one it runs. A service with no
//! earlier version on this node is left out (the file's service of the same name, if any,
//! keeps serving). The event still counts as applied (the sequence number moves on and is
//! acknowledged): the node cannot do better by retrying it, and the next version of the
//! service is tried afresh. The versions kept this way are saved with the control state, so a
//! restarted node runs them again.
//!
//! One config serves both tiers: on a shield, a service's `shields` are dropped (a shield's
//! misses go to the origins, never to another shield or itself), and so is its function (the
//! agent binds none there): functions run on the edge that takes the client's request, and
//! what a shield receives is already the function's fetch.

use std::collections::{BTreeMap, HashMap};

use outpost_config::{NodeRole, Seq, ServiceConfig, ServiceId, ServiceRecord};

use super::functions::Bound;
use crate::reload::{ReloadError, Reloader};

/// Applies record sets, remembering what runs for each service and which versions failed (so
/// that a later set does not try them again: trying costs a full recompile each).
pub struct ServiceApplier {
    role: NodeRole,
    /// Versions rejected on this node, by service.
    rejected: HashMap<ServiceId, Seq>,
    /// Versions whose function file could not be had in the last set, by service.
    unavailable: HashMap<ServiceId, Seq>,
    /// The record each control-plane service runs from (as bound to its function file): the
    /// newest version, or an earlier one when the newest was rejected.
    in_force: HashMap<ServiceId, ServiceRecord>,
}

/// A record that could not be applied, and why.
#[derive(Debug)]
pub struct Rejected {
    pub id: ServiceId,
    pub version: Seq,
    pub reason: String,
}

/// One service as it goes to the reloader.
struct Candidate<'a> {
    /// The newest record, when it is to be tried (not rejected already).
    newest: Option<(&'a ServiceRecord, ServiceConfig)>,
    /// The version in force before, to keep when the newest cannot run.
    earlier: Option<(ServiceRecord, ServiceConfig)>,
}

impl Candidate<'_> {
    /// The record and config tried first.
    fn first(&self) -> Option<(&ServiceRecord, &ServiceConfig)> {
        match (&self.newest, &self.earlier) {
            (Some((record, config)), _) => Some((*record, config)),
            (None, Some((record, config))) => Some((record, config)),
            (None, None) => None,
        }
    }
}

impl ServiceApplier {
    pub fn new(role: NodeRole) -> Self {
        Self { role, rejected: HashMap::new(), unavailable: HashMap::new(), in_force: HashMap::new() }
    }

    /// An applier that knows the earlier versions `kept` (from the saved control state), so a
    /// restarted node falls back to them again. The newest versions they stood in for are
    /// tried once more: the node may have changed (an upgrade, a CA file put in place).
    pub fn restore(role: NodeRole, kept: Vec<ServiceRecord>) -> Self {
        let mut applier = Self::new(role);
        for record in kept {
            applier.in_force.insert(record.id.clone(), record);
        }
        applier
    }

    /// What runs, for the ack: service id → `"<version>:<sha256 first 12>"` of its function,
    /// for the services in force with one.
    pub fn running(&self) -> BTreeMap<String, String> {
        self.in_force.iter().filter_map(|(id, r)| r.function.as_ref().map(|f| (id.to_string(), f.label()))).collect()
    }

    /// The earlier versions kept in force because the newest was rejected: saved with the
    /// control state.
    pub fn kept(&self) -> Vec<ServiceRecord> {
        let mut kept: Vec<ServiceRecord> = self
            .in_force
            .iter()
            .filter(|(id, record)| {
                let newest = self.rejected.get(*id).or_else(|| self.unavailable.get(*id));
                newest.is_some_and(|newest| *newest != record.version)
            })
            .map(|(_, record)| record.clone())
            .collect();
        kept.sort_by(|a, b| a.id.cmp(&b.id));
        kept
    }

    /// Whether the last set had versions whose function file could not be had.
    pub fn has_unavailable(&self) -> bool {
        !self.unavailable.is_empty()
    }

    /// Every record in force (the function files they name must stay on disk).
    pub fn in_force(&self) -> impl Iterator<Item = &ServiceRecord> {
        self.in_force.values()
    }

    /// Puts `records` in force as the control plane's services (each its newest version, or
    /// the one it ran before when the newest cannot run here). Returns how many run.
    pub async fn apply<'a>(
        &mut self,
        reloader: &Reloader,
        records: impl Iterator<Item = &'a Bound>,
    ) -> Result<usize, ReloadError> {
        let mut candidates = Vec::new();
        let mut rejected = Vec::new();
        // Versions that failed before: not tried again, without another error line.
        let mut known: HashMap<ServiceId, Seq> = HashMap::new();
        // Versions whose function file is not here: tried again with the next set (the file
        // may come), so not remembered as rejected.
        let mut missing = Vec::new();
        for Bound { record, unavailable } in records {
            let earlier = self.earlier(record);
            if let Some(reason) = unavailable {
                missing.push(Rejected { id: record.id.clone(), version: record.version, reason: reason.clone() });
                candidates.push(Candidate { newest: None, earlier });
                continue;
            }
            if self.rejected.get(&record.id) == Some(&record.version) {
                known.insert(record.id.clone(), record.version);
                candidates.push(Candidate { newest: None, earlier });
                continue;
            }
            match parse(record, self.role) {
                // No host of it is verified (domain control not proven yet, or lapsed): there
                // is nothing to serve, and no earlier version stands in for it.
                Ok(config) if config.hosts.is_empty() => {}
                Ok(config) => candidates.push(Candidate { newest: Some((record, config)), earlier }),
                Err(reason) => {
                    rejected.push(Rejected { id: record.id.clone(), version: record.version, reason });
                    candidates.push(Candidate { newest: None, earlier });
                }
            }
        }
        let first: Vec<(&ServiceRecord, &ServiceConfig)> = candidates.iter().filter_map(Candidate::first).collect();
        let configs: Vec<ServiceConfig> = first.iter().map(|(_, c)| (*c).clone()).collect();
        let in_force = match reloader.set_remote(configs).await {
            Ok(_) => first.into_iter().map(|(r, _)| (r.id.clone(), r.clone())).collect(),
            Err(ReloadError::Join(e)) => return Err(ReloadError::Join(e)),
            // One of them (or more) does not fit this node: find which, one at a time.
            Err(_) => apply_one_by_one(reloader, &candidates, &mut rejected).await?,
        };
        for r in rejected.iter().chain(&missing) {
            let kept = in_force.get(&r.id).map(|k: &ServiceRecord| k.version.to_string());
            let kept = kept.as_deref().unwrap_or("none: the service is left out");
            tracing::error!(service = %r.id, version = %r.version, kept, reason = %r.reason,
                "control-plane service version not applied on this node; the version in force stays");
        }
        known.extend(rejected.iter().map(|r| (r.id.clone(), r.version)));
        let unavailable: HashMap<ServiceId, Seq> = missing.into_iter().map(|r| (r.id, r.version)).collect();
        metrics::gauge!(crate::metrics::CONTROL_REJECTED_SERVICES).set((known.len() + unavailable.len()) as f64);
        self.rejected = known;
        self.unavailable = unavailable;
        self.in_force = in_force;
        Ok(self.in_force.len())
    }

    /// The version of `record`'s service in force before, when it is an earlier one that this
    /// node can still parse.
    fn earlier(&self, record: &ServiceRecord) -> Option<(ServiceRecord, ServiceConfig)> {
        let earlier = self.in_force.get(&record.id).filter(|e| e.version != record.version)?;
        parse(earlier, self.role).ok().filter(|c| !c.hosts.is_empty()).map(|config| (earlier.clone(), config))
    }
}

/// Finds which candidates fit with the others: each tries its newest version, then its earlier
/// one; what fits stays. Puts the set that fits in force and returns its records.
async fn apply_one_by_one(
    reloader: &Reloader,
    candidates: &[Candidate<'_>],
    rejected: &mut Vec<Rejected>,
) -> Result<HashMap<ServiceId, ServiceRecord>, ReloadError> {
    let mut accepted: Vec<ServiceConfig> = Vec::new();
    let mut in_force = HashMap::new();
    for candidate in candidates {
        let newest = candidate.newest.as_ref().map(|(r, c)| (*r, c));
        let earlier = candidate.earlier.as_ref().map(|(r, c)| (r, c));
        let mut newest_failed = false;
        for (record, config) in newest.into_iter().chain(earlier) {
            accepted.push(config.clone());
            match reloader.set_remote(accepted.clone()).await {
                Ok(_) => {
                    in_force.insert(record.id.clone(), record.clone());
                    break;
                }
                Err(ReloadError::Join(e)) => return Err(ReloadError::Join(e)),
                Err(e) => {
                    accepted.pop();
                    if candidate.newest.is_some() && !newest_failed {
                        newest_failed = true;
                        rejected.push(Rejected {
                            id: record.id.clone(),
                            version: record.version,
                            reason: e.to_string(),
                        });
                    } else {
                        tracing::error!(service = %record.id, version = %record.version, error = %e,
                            "the version in force before no longer runs on this node either");
                    }
                }
            }
        }
    }
    // The last attempt may have been refused: put the accepted set in force.
    reloader.set_remote(accepted).await?;
    Ok(in_force)
}

/// A record's config as a node in `role` runs it: parsed, named after the record, validated
/// alone; on a shield, without `shields`; with only the hosts whose domain control the control
/// plane verified ([`ServiceRecord::serves`]), which may leave none.
pub fn parse(record: &ServiceRecord, role: NodeRole) -> Result<ServiceConfig, String> {
    // From the text rather than the `Value`: serde_json then reports where a problem is.
    let config: ServiceConfig = serde_json::from_str(&record.config.to_string()).map_err(|e| format!("config: {e}"))?;
    if config.name != record.id.as_str() {
        return Err(format!("config: name \"{}\" is not the service id \"{}\"", config.name, record.id));
    }
    let mut config = config;
    if role == NodeRole::Shield {
        config.shields.clear();
    }
    outpost_config::validate_service(&config).map_err(|e| format!("config: {}", e.to_string().replace('\n', "; ")))?;
    config.hosts.retain(|host| record.serves(&host.to_string()));
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use outpost_config::{TenantId, Timestamp};

    use super::*;

    fn record(id: &str, config: serde_json::Value) -> ServiceRecord {
        ServiceRecord {
            id: ServiceId::parse(id).unwrap(),
            tenant: TenantId::parse("acme").unwrap(),
            version: Seq(3),
            updated_at: Timestamp(0),
            config,
            function: None,
            verified_hosts: None,
        }
    }

    #[test]
    fn records_parse_into_service_configs_or_say_why_not() {
        let good =
            record("shop", serde_json::json!({"name": "shop", "hosts": ["shop.test"], "origin": "http://127.0.0.1:1"}));
        assert_eq!(parse(&good, NodeRole::Edge).unwrap().hosts[0].to_string(), "shop.test");
        let tiered = record(
            "shop",
            serde_json::json!({"name": "shop", "hosts": ["shop.test"], "origin": "http://o",
                "shields": [{"url": "http://127.0.0.1:2", "pop": "fra"}]}),
        );
        assert_eq!(parse(&tiered, NodeRole::Edge).unwrap().shields.len(), 1);
        assert!(parse(&tiered, NodeRole::Shield).unwrap().shields.is_empty(), "a shield goes to the origin");
        let cases = [
            (
                serde_json::json!({"name": "blog", "hosts": ["shop.test"], "origin": "http://o"}),
                "is not the service id",
            ),
            (
                serde_json::json!({"name": "shop", "hosts": ["shop.test"], "origin": "http://o", "x": 1}),
                "unknown field `x`",
            ),
            (serde_json::json!({"name": "shop", "hosts": ["shop.test"], "origin": "ftp://o"}), "unsupported scheme"),
            (
                serde_json::json!({"name": "shop", "hosts": ["shop.test"], "origin": "http://o", "default_ttl": "0s"}),
                "default_ttl",
            ),
            (serde_json::json!("shop"), "config:"),
        ];
        for (config, expected) in cases {
            let error = parse(&record("shop", config.clone()), NodeRole::Edge).err().unwrap_or_default();
            assert!(error.contains(expected), "{config}: {error}");
        }
    }

    #[test]
    fn only_verified_hosts_are_served() {
        let config = serde_json::json!({"name": "shop", "hosts": ["shop.test", "*.shop.test", "new.test"],
            "origin": "http://127.0.0.1:1"});
        let mut partly = record("shop", config.clone());
        partly.verified_hosts = Some(vec!["*.shop.test".to_owned(), "shop.test".to_owned()]);
        let hosts: Vec<String> = parse(&partly, NodeRole::Edge).unwrap().hosts.iter().map(|h| h.to_string()).collect();
        assert_eq!(hosts, ["shop.test", "*.shop.test"]);
        let mut none = record("shop", config.clone());
        none.verified_hosts = Some(Vec::new());
        assert!(parse(&none, NodeRole::Edge).unwrap().hosts.is_empty(), "parsed, with nothing to serve");
        // Written before verification existed: every host, as before.
        assert_eq!(parse(&record("shop", config), NodeRole::Edge).unwrap().hosts.len(), 3);
    }
}
