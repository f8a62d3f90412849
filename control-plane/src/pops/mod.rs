//! PoPs: the health of every PoP's edge nodes, operators' drains, and the [`PopTable`] DNS
//! answers from.
//!
//! - `checker` runs a probe round every `health.interval`: `GET /healthz` on each registered
//!   edge node's admin address (`probe`), at most `health.max_concurrent` at once. Each result
//!   moves the node's [`health::Probe`] state (thresholds in `[health]`).
//! - An edge node is **healthy** when its probe state is up AND its stream to the control plane
//!   is live (the node registry's liveness): a node that answers but no longer follows the
//!   control plane may serve stale configs and miss purges. A PoP is healthy when at least one
//!   of its edge nodes with a client address is, not drained by an operator.
//! - Right after the control plane starts, every stream is missing: for `nodes.startup_grace`
//!   a node seen lately whose stream has not come back yet counts by its probe alone
//!   (`reconnecting`), so a restart never steers DNS away from a PoP whose edges answer.
//! - A drained node (`POST /v1/nodes/{id}/drain`) is left out of the table: DNS never gives
//!   its address, and it does not make its PoP healthy.
//! - Drains are in the store (a restart keeps them) and mirrored here; drain and restore
//!   rebuild the table at once, on this replica, and on the others at their next presence
//!   sync (`crate::sync`: at once on PostgreSQL's notification, else within
//!   `nodes.sync_interval`).
//! - After each round and each drain the table is rebuilt and published through a `watch`;
//!   PoP transitions are logged and stamp the PoP's `since`.
//!
//! Shields are not probed: DNS sends clients to edges only.

mod checker;
pub mod health;
pub mod probe;
pub mod settings;
pub mod table;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use outpost_config::{NodeId, NodeRole, Timestamp};
use serde::Serialize;
use tokio::sync::watch;

pub use checker::spawn as spawn_checker;
pub use settings::HealthSettings;
pub use table::PopTable;

use self::health::{Probe, Thresholds};
use self::probe::ProbeError;
use self::table::{PopEntry, Target};
use crate::nodes::{NodeView, Nodes};
use crate::store::{Store, StoreError};

/// The PoPs' health and drains.
pub struct Pops {
    state: Mutex<State>,
    table: watch::Sender<Arc<PopTable>>,
    store: Arc<dyn Store>,
    nodes: Arc<Nodes>,
    settings: HealthSettings,
    /// PoPs the DNS region map names: known (listed, drainable) before any of their nodes
    /// registers.
    configured: Vec<String>,
}

#[derive(Default)]
struct State {
    health: HashMap<NodeId, NodeHealth>,
    drains: BTreeMap<String, Timestamp>,
    since: BTreeMap<String, Since>,
    /// The PoPs as of the last rebuild: what the table was built from and the API lists.
    last: BTreeMap<String, Assembled>,
}

#[derive(Debug, Clone, Default)]
struct NodeHealth {
    probe: Probe,
    error: Option<String>,
    checked_at: Option<Timestamp>,
}

/// When a PoP's `healthy` or `drained` last changed.
#[derive(Debug, Clone, Copy)]
struct Since {
    healthy: bool,
    drained: bool,
    at: Timestamp,
}

#[derive(Debug, Clone, Default)]
struct Assembled {
    region: Option<String>,
    healthy: bool,
    drained_at: Option<Timestamp>,
    nodes: Vec<PopNode>,
}

/// One PoP as `GET /v1/pops` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PopView {
    pub pop: String,
    /// Its edge nodes' region (`[node] region`), if they name one.
    pub region: Option<String>,
    /// At least one edge node is healthy.
    pub healthy: bool,
    /// Drained by an operator: DNS sends clients elsewhere while another PoP can take them.
    pub drained: bool,
    /// When `healthy` or `drained` last changed (or when this control plane first saw the PoP).
    pub since: Option<Timestamp>,
    pub drained_at: Option<Timestamp>,
    pub nodes: Vec<PopNode>,
}

/// One edge node of a PoP.
#[derive(Debug, Clone, Serialize)]
pub struct PopNode {
    pub id: NodeId,
    /// The IP DNS answers with (from `addresses.https`, else `addresses.http`); `null` when
    /// the node registered no client address, or an unspecified one (`0.0.0.0`).
    pub address: Option<IpAddr>,
    /// Where it is probed.
    pub admin: SocketAddr,
    /// Probe up and stream live (or reconnecting after a restart), not drained.
    pub healthy: bool,
    /// Drained by an operator: never in DNS answers.
    pub drained: bool,
    /// No stream yet since the control plane started, within `nodes.startup_grace`.
    pub reconnecting: bool,
    /// `"unknown"`, `"up"` or `"down"`.
    pub probe: &'static str,
    /// Its stream is connected (or dropped less than `nodes.grace` ago).
    pub live: bool,
    /// The last probe's failure, if it failed.
    pub error: Option<String>,
    pub checked_at: Option<Timestamp>,
}

/// Why a drain or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum PopError {
    #[error("no PoP \"{0}\": no edge node registered in it and the DNS region map does not name it")]
    Unknown(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every update leaves the state whole before it can panic; keep serving with it.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

impl Pops {
    /// Loads the drains from `store` and builds the first table (every node's probe unknown,
    /// so every PoP down until the first round).
    pub async fn load(
        store: Arc<dyn Store>,
        nodes: Arc<Nodes>,
        settings: HealthSettings,
        configured: Vec<String>,
    ) -> Result<Arc<Self>, StoreError> {
        let drains = store.drained_pops().await?.into_iter().collect();
        let state = State { drains, ..State::default() };
        let pops = Arc::new(Pops {
            state: Mutex::new(state),
            table: watch::Sender::new(Arc::new(PopTable::default())),
            store,
            nodes,
            settings,
            configured,
        });
        pops.rebuild();
        Ok(pops)
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.settings
    }

    /// The table as of the last rebuild (cheap: an `Arc`).
    pub fn table(&self) -> Arc<PopTable> {
        self.table.borrow().clone()
    }

    /// Every known PoP, by name.
    pub fn list(&self) -> Vec<PopView> {
        let state = lock(&self.state);
        state.last.iter().map(|(pop, assembled)| view(pop, assembled, state.since.get(pop))).collect()
    }

    /// One PoP; `None` when unknown.
    pub fn get(&self, pop: &str) -> Option<PopView> {
        let state = lock(&self.state);
        state.last.get(pop).map(|assembled| view(pop, assembled, state.since.get(pop)))
    }

    /// The edge nodes to probe this round: `(id, pop, admin address)`.
    fn targets(&self) -> Vec<(NodeId, String, SocketAddr)> {
        let nodes = self.nodes.list(Instant::now());
        let edges = nodes.into_iter().filter(|n| n.node.registration.role == NodeRole::Edge);
        edges
            .filter_map(|n| {
                let registration = n.node.registration;
                registration.pop.map(|pop| (n.node.id, pop, registration.addresses.admin))
            })
            .collect()
    }

    /// Records one round's results, logs each node that changed state, and rebuilds.
    fn record(&self, results: Vec<(NodeId, String, Result<(), ProbeError>)>) {
        let thresholds =
            Thresholds { unhealthy: self.settings.unhealthy_threshold, healthy: self.settings.healthy_threshold };
        let at = now();
        {
            let mut state = lock(&self.state);
            for (id, pop, result) in results {
                let entry = state.health.entry(id.clone()).or_default();
                let before = entry.probe;
                entry.probe = before.observe(result.is_ok(), thresholds);
                entry.checked_at = Some(at);
                entry.error = result.err().map(|e| e.to_string());
                match (before.is_up(), entry.probe.is_up(), before == Probe::Unknown) {
                    (false, true, _) => tracing::info!(node = %id, %pop, "edge node up: /healthz passes"),
                    (true, false, _) | (false, false, true) => {
                        let error = entry.error.as_deref().unwrap_or("");
                        tracing::warn!(node = %id, %pop, %error, "edge node down: /healthz fails");
                    }
                    _ => {}
                }
            }
        }
        self.rebuild();
    }

    /// Reassembles the PoPs from the registry (liveness now) and the probe states, logs PoP
    /// transitions, and publishes the new table.
    pub fn rebuild(&self) {
        let nodes = self.nodes.list(Instant::now());
        let at = now();
        let mut state = lock(&self.state);
        let assembled = assemble(&nodes, &state.health, &state.drains, &self.configured);
        for (pop, entry) in &assembled {
            let drained = entry.drained_at.is_some();
            match state.since.get(pop) {
                Some(since) if since.healthy == entry.healthy && since.drained == drained => continue,
                Some(since) if since.healthy != entry.healthy => {
                    if entry.healthy {
                        tracing::info!(%pop, "PoP up: DNS answers with it again");
                    } else {
                        tracing::warn!(%pop, "PoP down: no healthy edge node; DNS answers move to the next nearest PoP");
                    }
                }
                Some(_) => {}
                None => tracing::info!(%pop, healthy = entry.healthy, drained, "PoP seen"),
            }
            state.since.insert(pop.clone(), Since { healthy: entry.healthy, drained, at });
        }
        let table = PopTable {
            pops: assembled
                .iter()
                .map(|(pop, entry)| {
                    let targets = entry
                        .nodes
                        .iter()
                        .filter(|node| !node.drained)
                        .filter_map(|node| node.address.map(|ip| Target { ip, healthy: node.healthy }))
                        .collect();
                    let entry = PopEntry { healthy: entry.healthy, drained: entry.drained_at.is_some(), targets };
                    (pop.clone(), entry)
                })
                .collect(),
        };
        state.last = assembled;
        drop(state);
        self.table.send_if_modified(|current| {
            let changed = **current != table;
            if changed {
                *current = Arc::new(table);
            }
            changed
        });
    }

    /// Takes the drains as the store has them (a drain or restore through another replica);
    /// whether they changed. The caller rebuilds.
    pub fn set_drains(&self, drains: Vec<(String, Timestamp)>) -> bool {
        let drains: BTreeMap<String, Timestamp> = drains.into_iter().collect();
        let mut state = lock(&self.state);
        if state.drains == drains {
            return false;
        }
        for pop in drains.keys().filter(|pop| !state.drains.contains_key(*pop)) {
            tracing::info!(%pop, "PoP drained (through another replica): DNS answers move to the next nearest PoP");
        }
        for pop in state.drains.keys().filter(|pop| !drains.contains_key(*pop)) {
            tracing::info!(%pop, "PoP restored (through another replica)");
        }
        state.drains = drains;
        true
    }

    /// Drains `pop` (`drain`: DNS stops answering with it while another PoP can take its
    /// clients) or restores it; persisted before it takes effect. Draining a drained PoP, or
    /// restoring an undrained one, changes nothing.
    pub async fn set_drained(&self, pop: &str, drain: bool) -> Result<PopView, PopError> {
        // Fresh from the registry, so a PoP whose first node registered a moment ago is known.
        self.rebuild();
        let drained = {
            let state = lock(&self.state);
            if !state.last.contains_key(pop) {
                return Err(PopError::Unknown(pop.to_owned()));
            }
            state.drains.contains_key(pop)
        };
        if drained != drain {
            let at = now();
            self.store.set_drain(pop, drain.then_some(at)).await?;
            {
                let mut state = lock(&self.state);
                if drain {
                    state.drains.insert(pop.to_owned(), at);
                } else {
                    state.drains.remove(pop);
                }
            }
            if drain {
                tracing::info!(%pop, "PoP drained: DNS answers move to the next nearest PoP");
            } else {
                tracing::info!(%pop, "PoP restored");
            }
            self.rebuild();
        }
        self.get(pop).ok_or_else(|| PopError::Unknown(pop.to_owned()))
    }
}

fn view(pop: &str, assembled: &Assembled, since: Option<&Since>) -> PopView {
    PopView {
        pop: pop.to_owned(),
        region: assembled.region.clone(),
        healthy: assembled.healthy,
        drained: assembled.drained_at.is_some(),
        since: since.map(|s| s.at),
        drained_at: assembled.drained_at,
        nodes: assembled.nodes.clone(),
    }
}

/// Every PoP: those of registered edge nodes, those the region map names, and drained ones.
/// Pure.
fn assemble(
    nodes: &[NodeView],
    health: &HashMap<NodeId, NodeHealth>,
    drains: &BTreeMap<String, Timestamp>,
    configured: &[String],
) -> BTreeMap<String, Assembled> {
    let mut pops: BTreeMap<String, Assembled> = BTreeMap::new();
    for name in configured.iter().chain(drains.keys()) {
        pops.entry(name.clone()).or_default();
    }
    for view in nodes {
        let registration = &view.node.registration;
        let (NodeRole::Edge, Some(pop)) = (registration.role, &registration.pop) else { continue };
        let node_health = health.get(&view.node.id).cloned().unwrap_or_default();
        let addresses = &registration.addresses;
        let address = addresses.https.or(addresses.http).map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
        let entry = pops.entry(pop.clone()).or_default();
        if entry.region.is_none() {
            entry.region.clone_from(&registration.region);
        }
        let drained = view.drained_at.is_some();
        entry.nodes.push(PopNode {
            id: view.node.id.clone(),
            address,
            admin: addresses.admin,
            healthy: node_health.probe.is_up() && (view.live || view.reconnecting) && !drained,
            drained,
            reconnecting: view.reconnecting,
            probe: node_health.probe.name(),
            live: view.live,
            error: node_health.error,
            checked_at: node_health.checked_at,
        });
    }
    for (pop, entry) in &mut pops {
        entry.healthy = entry.nodes.iter().any(|n| n.healthy && n.address.is_some());
        entry.drained_at = drains.get(pop).copied();
    }
    pops
}

#[cfg(test)]
mod tests;
