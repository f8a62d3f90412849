//! The control plane's service records → the services the node runs beside its file's.
//!
//! Each record's config is parsed into a [`ServiceConfig`] and validated as the control plane
//! did (the name must be the id). The whole set then goes to the [`Reloader`], which merges it
//! with the file's services (a control-plane service replaces a file service of the same name),
//! checks the merged set and compiles it in one swap.
//!
//! A record that cannot run on this node is **left out, logged, and counted**
//! (`outpost_control_rejected_services`), and every other service still applies: one tenant's
//! config never blocks the rest. Reasons are local to the node, since the control plane
//! validated the config: a host that one of this node's file services (under another name)
//! already serves, an `origin_ca` missing here, a compile error. The file's service of the same
//! name, if any, keeps serving. The event still counts as applied (the sequence number moves on
//! and is acknowledged): the node cannot do better by retrying it, and the next version of the
//! service is tried afresh.
//!
//! One config serves both tiers: on a shield, a service's `shields` are dropped (a shield's
//! misses go to the origins, never to another shield or itself).

use std::collections::HashMap;

use outpost_config::{NodeRole, Seq, ServiceConfig, ServiceId, ServiceRecord};

use crate::reload::{ReloadError, Reloader};

/// Applies record sets, remembering which versions failed so that a later set does not try
/// them again (trying costs a full recompile each).
pub struct ServiceApplier {
    role: NodeRole,
    rejected: HashMap<ServiceId, Seq>,
}

/// A record that could not be applied, and why.
#[derive(Debug)]
pub struct Rejected {
    pub id: ServiceId,
    pub version: Seq,
    pub reason: String,
}

impl ServiceApplier {
    pub fn new(role: NodeRole) -> Self {
        Self { role, rejected: HashMap::new() }
    }

    /// Whether `record`'s version was left out (its service does not run from it).
    pub fn is_rejected(&self, record: &ServiceRecord) -> bool {
        self.rejected.get(&record.id) == Some(&record.version)
    }

    /// Puts `records` in force as the control plane's services. Returns how many run.
    pub async fn apply<'a>(
        &mut self,
        reloader: &Reloader,
        records: impl Iterator<Item = &'a ServiceRecord>,
    ) -> Result<usize, ReloadError> {
        let mut candidates = Vec::new();
        let mut rejected = Vec::new();
        // Versions that failed before: left out again, without another error line.
        let mut known: HashMap<ServiceId, Seq> = HashMap::new();
        for record in records {
            if self.rejected.get(&record.id) == Some(&record.version) {
                known.insert(record.id.clone(), record.version);
                continue;
            }
            match parse(record, self.role) {
                Ok(config) => candidates.push((record, config)),
                Err(reason) => rejected.push(Rejected { id: record.id.clone(), version: record.version, reason }),
            }
        }
        let configs: Vec<ServiceConfig> = candidates.iter().map(|(_, c)| c.clone()).collect();
        let applied = match reloader.set_remote(configs).await {
            Ok(_) => candidates.len(),
            Err(ReloadError::Join(e)) => return Err(ReloadError::Join(e)),
            // One of them (or more) does not fit this node: find which, one at a time.
            Err(_) => self.apply_one_by_one(reloader, candidates, &mut rejected).await?,
        };
        for r in &rejected {
            tracing::error!(service = %r.id, version = %r.version, reason = %r.reason, "control-plane service not applied on this node");
            known.insert(r.id.clone(), r.version);
        }
        metrics::gauge!(crate::metrics::CONTROL_REJECTED_SERVICES).set(known.len() as f64);
        self.rejected = known;
        Ok(applied)
    }

    async fn apply_one_by_one(
        &self,
        reloader: &Reloader,
        candidates: Vec<(&ServiceRecord, ServiceConfig)>,
        rejected: &mut Vec<Rejected>,
    ) -> Result<usize, ReloadError> {
        let mut accepted: Vec<ServiceConfig> = Vec::new();
        for (record, config) in candidates {
            accepted.push(config);
            match reloader.set_remote(accepted.clone()).await {
                Ok(_) => {}
                Err(ReloadError::Join(e)) => return Err(ReloadError::Join(e)),
                Err(e) => {
                    accepted.pop();
                    rejected.push(Rejected { id: record.id.clone(), version: record.version, reason: e.to_string() });
                }
            }
        }
        // The last attempt may have been refused: put the accepted set in force.
        reloader.set_remote(accepted.clone()).await?;
        Ok(accepted.len())
    }
}

/// A record's config as a node in `role` runs it: parsed, named after the record, validated
/// alone; on a shield, without `shields`.
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
}
