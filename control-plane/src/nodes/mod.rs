//! The nodes that follow the control plane: who registered, whose stream is open, what each
//! acknowledged, and the hub that wakes every stream when the log grows.
//!
//! - Registrations and acks are in the store (so a restart keeps them) and mirrored here in
//!   memory, behind one `std::sync::Mutex` that is never held across an `.await`.
//! - The hub is a `watch` of the log's head: a write bumps it ([`Nodes::appended`]), and each
//!   stream's task (`stream`) reads the events after its own cursor from the store. The store
//!   is the one source of order, so a stream never skips or reorders, however writes race,
//!   and a slow node slows only its own task; its bounded buffer then makes its sends wait,
//!   and a node that stops reading is disconnected (see `stream`).
//! - `changes` is bumped on every ack and every connect or drop: purges waiting for
//!   completion (`wait=true`) recompute their progress then.
//!
//! Flow of a purge: `create_purge` appends event n → [`Nodes::appended`] → every stream sends
//! `{"event": ...n}` → each node applies, persists, `POST .../ack {"seq": n}` →
//! [`Nodes::ack`] → `changes` → the waiting request sees the purge complete.

mod acks;
mod presence;
mod progress;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use outpost_config::{NodeId, PurgeRecord, Seq, Timestamp};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

pub use acks::AckWriter;
pub use presence::Presence;
pub use progress::{AckHistory, NodeProgress, PopProgress, PurgeProgress};

use crate::settings::NodeSettings;
use crate::store::{NodeAck, Store, StoreError, StoredNode};

/// The registry and the hub.
pub struct Nodes {
    registry: Mutex<Registry>,
    head: watch::Sender<Seq>,
    changes: watch::Sender<u64>,
    settings: NodeSettings,
    acks: AckWriter,
}

#[derive(Default)]
struct Registry {
    nodes: BTreeMap<NodeId, Entry>,
    next_generation: u64,
    /// Shutting down: no new streams.
    closing: bool,
}

struct Entry {
    stored: StoredNode,
    presence: Presence,
    history: AckHistory,
    /// What the node's last ack said it runs (memory only: nodes repeat their ack on reconnect).
    functions: BTreeMap<String, String>,
}

/// A stream's claim on its node, from [`Nodes::connect`].
pub struct Connection {
    pub generation: u64,
    /// Resolves (with an error) when a newer stream replaces this one or the server stops.
    pub stop: oneshot::Receiver<()>,
}

/// What an ack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The node is not registered.
    Unknown,
    /// The node's acked seq moved up to the new one.
    Advanced,
    /// Not above what the node acked already (acks never go back).
    Ignored,
}

/// A node as `GET /v1/nodes` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: outpost_config::NodeRecord,
    pub live: bool,
    pub connected: bool,
    pub acked: Seq,
    pub acked_at: Option<Timestamp>,
    /// The edge functions the node runs, as its last ack reported: service id →
    /// `"<version>:<sha256 first 12>"`.
    pub functions: BTreeMap<String, String>,
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    // A panic while holding the lock cannot leave the registry half-updated in a way that
    // matters more than stopping to serve nodes would: keep going with its contents.
    registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Nodes {
    /// Loads the registered nodes and the log's head from `store` and starts the ack writer.
    /// Call inside the runtime.
    pub async fn load(store: Arc<dyn Store>, settings: NodeSettings) -> Result<Arc<Self>, StoreError> {
        let stored = store.nodes().await?;
        let head = store.last_seq().await?;
        let nodes = stored
            .into_iter()
            .map(|stored| {
                let history = AckHistory::after(stored.acked);
                (
                    stored.node.id.clone(),
                    Entry { stored, presence: Presence::Never, history, functions: BTreeMap::new() },
                )
            })
            .collect();
        let registry = Registry { nodes, next_generation: 1, closing: false };
        Ok(Arc::new(Self {
            registry: Mutex::new(registry),
            head: watch::Sender::new(head),
            changes: watch::Sender::new(0),
            settings,
            acks: AckWriter::start(store),
        }))
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// The log grew to `seq`: wake the streams.
    pub fn appended(&self, seq: Seq) {
        self.head.send_if_modified(|head| {
            let moved = seq > *head;
            if moved {
                *head = seq;
            }
            moved
        });
    }

    /// Watches the log's head.
    pub fn head(&self) -> watch::Receiver<Seq> {
        self.head.subscribe()
    }

    /// Watches acks and liveness (a counter that moves on each).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Mirrors a (re-)registration the store has written.
    pub fn registered(&self, stored: StoredNode) {
        let mut registry = lock(&self.registry);
        match registry.nodes.get_mut(&stored.node.id) {
            Some(entry) => entry.stored.node = stored.node,
            None => {
                let history = AckHistory::after(stored.acked);
                let entry =
                    Entry { stored: stored.clone(), presence: Presence::Never, history, functions: BTreeMap::new() };
                registry.nodes.insert(stored.node.id, entry);
            }
        }
    }

    pub fn is_registered(&self, id: &NodeId) -> bool {
        lock(&self.registry).nodes.contains_key(id)
    }

    /// Claims the node's one stream, ending the one it had. `None` for an unknown node or
    /// while shutting down.
    pub fn connect(&self, id: &NodeId) -> Option<Connection> {
        let connection = {
            let mut registry = lock(&self.registry);
            if registry.closing {
                return None;
            }
            let generation = registry.next_generation;
            registry.next_generation += 1;
            let entry = registry.nodes.get_mut(id)?;
            let (stop, stopped) = oneshot::channel();
            // Replacing the presence drops the old stream's `stop`, which ends it.
            entry.presence = Presence::Connected { generation, stop };
            Connection { generation, stop: stopped }
        };
        self.changed();
        Some(connection)
    }

    /// The stream of `generation` ended; the node stays live for `nodes.grace`.
    pub fn disconnect(&self, id: &NodeId, generation: u64) {
        let dropped = {
            let mut registry = lock(&self.registry);
            match registry.nodes.get_mut(id) {
                Some(entry) if entry.presence.is_stream(generation) => {
                    entry.presence = Presence::Dropped { since: Instant::now() };
                    true
                }
                _ => false,
            }
        };
        if dropped {
            self.changed();
        }
    }

    /// Records an ack in memory (progress sees it at once), then in the store; returns once
    /// it is persisted.
    pub async fn ack(&self, id: &NodeId, seq: Seq, at: Timestamp) -> Result<AckOutcome, String> {
        let outcome = {
            let mut registry = lock(&self.registry);
            match registry.nodes.get_mut(id) {
                None => AckOutcome::Unknown,
                Some(entry) if seq <= entry.stored.acked => AckOutcome::Ignored,
                Some(entry) => {
                    entry.stored.acked = seq;
                    entry.stored.acked_at = Some(at);
                    entry.history.push(seq, at, self.settings.ack_history);
                    AckOutcome::Advanced
                }
            }
        };
        if outcome == AckOutcome::Advanced {
            self.changed();
            self.acks.persist(NodeAck { node: id.clone(), seq, at }).await?;
        }
        Ok(outcome)
    }

    /// Records what a node said it runs (with an ack, even one that did not advance).
    pub fn report_functions(&self, id: &NodeId, functions: BTreeMap<String, String>) {
        if let Some(entry) = lock(&self.registry).nodes.get_mut(id) {
            entry.functions = functions;
        }
    }

    /// Every node, by id, as of `now`.
    pub fn list(&self, now: Instant) -> Vec<NodeView> {
        let grace = self.settings.grace();
        let registry = lock(&self.registry);
        registry
            .nodes
            .values()
            .map(|entry| NodeView {
                node: entry.stored.node.clone(),
                live: entry.presence.is_live(now, grace),
                connected: matches!(entry.presence, Presence::Connected { .. }),
                acked: entry.stored.acked,
                acked_at: entry.stored.acked_at,
                functions: entry.functions.clone(),
            })
            .collect()
    }

    /// The purge's progress on the nodes, as of `now`.
    pub fn progress(&self, purge: &PurgeRecord, now: Instant) -> PurgeProgress {
        let grace = self.settings.grace();
        let registry = lock(&self.registry);
        let nodes = registry.nodes.values().map(|entry| progress::NodeAcks {
            id: entry.stored.node.id.as_str(),
            pop: entry.stored.node.registration.pop.as_deref(),
            live: entry.presence.is_live(now, grace),
            acked: entry.stored.acked,
            history: &entry.history,
        });
        progress::progress(purge.seq, purge.created_at, nodes)
    }

    /// Ends every stream and refuses new ones: the server is stopping, and open streams
    /// would keep its graceful shutdown waiting forever.
    pub fn shutdown(&self) {
        let mut registry = lock(&self.registry);
        registry.closing = true;
        let now = Instant::now();
        for entry in registry.nodes.values_mut() {
            if let Presence::Connected { .. } = entry.presence {
                entry.presence = Presence::Dropped { since: now };
            }
        }
    }
}

#[cfg(test)]
mod tests;
