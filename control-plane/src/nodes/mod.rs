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
//! - One node, one stream: a node id held by an open stream is refused to a second claimant
//!   ([`Claim::InUse`], 409 `node_id_in_use`), never taken over; a restarted node gets its id
//!   back once its old stream has ended (its connection closed, or a heartbeat write failed).
//! - Each node's last-seen time (registration, ack, or an open stream, recorded every
//!   [`SEEN_INTERVAL`] at most) is kept in the store: after a restart, a node seen within
//!   `nodes.offline_after` is still one a purge must reach.
//!
//! Flow of a purge: `create_purge` appends event n → [`Nodes::appended`] → every stream sends
//! `{"event": ...n}` → each node applies, persists, `POST .../ack {"seq": n}` →
//! [`Nodes::ack`] → `changes` → the waiting request sees the purge complete.

mod acks;
mod presence;
mod progress;
pub mod stream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use outpost_config::{NodeId, PurgeRecord, Seq, Timestamp};
use serde::Serialize;
use tokio::sync::{Notify, oneshot, watch};

pub use acks::AckWriter;
pub use presence::{Presence, is_expected, is_reconnecting};
pub use progress::{AckHistory, NodeProgress, PopProgress, PurgeProgress};

use crate::settings::NodeSettings;
use crate::store::{NodeAck, Store, StoreError, StoredNode};

/// Longest time between two records of the connected nodes' last-seen time (shorter when
/// `nodes.offline_after` is: a tenth of it, at least a second).
pub const SEEN_INTERVAL: Duration = Duration::from_secs(60);

/// The registry and the hub.
pub struct Nodes {
    registry: Mutex<Registry>,
    head: watch::Sender<Seq>,
    changes: watch::Sender<u64>,
    settings: NodeSettings,
    acks: AckWriter,
    store: Arc<dyn Store>,
    /// When this control plane loaded the registry (`nodes.startup_grace` runs from it).
    started: Instant,
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
    /// Registered before this control plane started (loaded from the store): the only nodes
    /// `nodes.startup_grace` applies to.
    known_at_start: bool,
}

/// A stream's claim on its node, from [`Nodes::connect`].
pub struct Connection {
    pub generation: u64,
    /// Resolves (with an error) when the node is deregistered or the server stops.
    pub stop: oneshot::Receiver<()>,
    /// Asks the stream for a heartbeat now (a second claimant came: find out whether the
    /// holder's connection still takes writes).
    pub poke: Arc<Notify>,
}

/// Why [`Nodes::connect`] gave no stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    /// The control plane is stopping.
    Closing,
    /// Another connection holds the node's stream (`holder`: its address).
    InUse {
        holder: Option<SocketAddr>,
    },
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
    /// The last time the node was known live (stream, registration or ack).
    pub last_seen: Timestamp,
    /// Seen within `nodes.offline_after`: a purge waits for its ack.
    pub expected: bool,
    /// No stream yet since this control plane started, within `nodes.startup_grace`: PoP
    /// health counts it by its probe alone.
    pub reconnecting: bool,
    /// The address of the connection that holds its stream.
    pub peer: Option<SocketAddr>,
    /// Drained by an operator: DNS leaves its address out.
    pub drained_at: Option<Timestamp>,
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
                    Entry {
                        stored,
                        presence: Presence::Never,
                        history,
                        functions: BTreeMap::new(),
                        known_at_start: true,
                    },
                )
            })
            .collect();
        let registry = Registry { nodes, next_generation: 1, closing: false };
        let nodes = Arc::new(Self {
            registry: Mutex::new(registry),
            head: watch::Sender::new(head),
            changes: watch::Sender::new(0),
            settings,
            acks: AckWriter::start(store.clone()),
            store,
            started: Instant::now(),
        });
        tokio::spawn(record_seen(Arc::downgrade(&nodes)));
        Ok(nodes)
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
            Some(entry) => {
                entry.stored.node = stored.node;
                entry.stored.drained_at = stored.drained_at;
            }
            None => {
                let history = AckHistory::after(stored.acked);
                let entry = Entry {
                    stored: stored.clone(),
                    presence: Presence::Never,
                    history,
                    functions: BTreeMap::new(),
                    known_at_start: false,
                };
                registry.nodes.insert(stored.node.id, entry);
            }
        }
    }

    pub fn is_registered(&self, id: &NodeId) -> bool {
        lock(&self.registry).nodes.contains_key(id)
    }

    /// Which connection holds the node's stream, if one does: `Some(holder)` refuses a
    /// registration from anyone else (it would replace the holder's addresses), and pokes the
    /// holder so a dead one is found out.
    pub fn holder(&self, id: &NodeId) -> Option<Option<SocketAddr>> {
        let registry = lock(&self.registry);
        match registry.nodes.get(id).map(|entry| &entry.presence) {
            Some(Presence::Connected { peer, poke, .. }) => {
                poke.notify_one();
                Some(*peer)
            }
            _ => None,
        }
    }

    /// Claims the node's one stream for the connection from `peer`. Refused while another
    /// stream holds it: one node, one identity (a stolen or misconfigured id must not take
    /// over a live node's registration and DNS answers).
    pub fn connect(&self, id: &NodeId, peer: Option<SocketAddr>) -> Result<Connection, Refusal> {
        let connection = {
            let mut registry = lock(&self.registry);
            if registry.closing {
                return Err(Refusal::Closing);
            }
            let generation = registry.next_generation;
            let entry = registry.nodes.get_mut(id).ok_or(Refusal::Unknown)?;
            if let Presence::Connected { peer: holder, poke, .. } = &entry.presence {
                poke.notify_one();
                return Err(Refusal::InUse { holder: *holder });
            }
            let (stop, stopped) = oneshot::channel();
            let poke = Arc::new(Notify::new());
            entry.presence = Presence::Connected { generation, stop, peer, poke: poke.clone() };
            entry.stored.seen_at = Some(wall_now());
            registry.next_generation += 1;
            Connection { generation, stop: stopped, poke }
        };
        self.changed();
        Ok(connection)
    }

    /// Forgets a node (after the store deleted it), ending its stream if one is open.
    pub fn remove(&self, id: &NodeId) {
        let removed = lock(&self.registry).nodes.remove(id).is_some();
        if removed {
            self.changed();
        }
    }

    /// Whether the node's stream is open.
    pub fn is_connected(&self, id: &NodeId) -> bool {
        lock(&self.registry).nodes.get(id).is_some_and(|e| matches!(e.presence, Presence::Connected { .. }))
    }

    /// Mirrors a node drain the store has written.
    pub fn drained(&self, id: &NodeId, at: Option<Timestamp>) {
        if let Some(entry) = lock(&self.registry).nodes.get_mut(id) {
            entry.stored.drained_at = at;
        }
    }

    /// The stream of `generation` ended; the node stays live for `nodes.grace`.
    pub fn disconnect(&self, id: &NodeId, generation: u64) {
        let dropped = {
            let mut registry = lock(&self.registry);
            match registry.nodes.get_mut(id) {
                Some(entry) if entry.presence.is_stream(generation) => {
                    entry.presence = Presence::Dropped { since: Instant::now() };
                    entry.stored.seen_at = Some(wall_now());
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
        let registry = lock(&self.registry);
        let wall = wall_now();
        registry
            .nodes
            .values()
            .map(|entry| {
                let (live, expected, reconnecting) = self.standing(entry, now, wall);
                let peer = match &entry.presence {
                    Presence::Connected { peer, .. } => *peer,
                    _ => None,
                };
                NodeView {
                    node: entry.stored.node.clone(),
                    live,
                    connected: matches!(entry.presence, Presence::Connected { .. }),
                    acked: entry.stored.acked,
                    acked_at: entry.stored.acked_at,
                    last_seen: entry.stored.last_seen(),
                    expected,
                    reconnecting,
                    peer,
                    drained_at: entry.stored.drained_at,
                    functions: entry.functions.clone(),
                }
            })
            .collect()
    }

    /// `(live, expected, reconnecting)` of one node as of `now` (and `wall`, the same instant
    /// on the wall clock).
    fn standing(&self, entry: &Entry, now: Instant, wall: Timestamp) -> (bool, bool, bool) {
        let live = entry.presence.is_live(now, self.settings.grace());
        let expected = is_expected(live, entry.stored.last_seen(), wall, self.settings.offline_after);
        let since_start = now.saturating_duration_since(self.started);
        let reconnecting = entry.known_at_start
            && is_reconnecting(&entry.presence, expected, since_start, self.settings.startup_grace());
        (live, expected, reconnecting)
    }

    /// The purge's progress on the nodes, as of `now`.
    pub fn progress(&self, purge: &PurgeRecord, now: Instant) -> PurgeProgress {
        let registry = lock(&self.registry);
        let wall = wall_now();
        let nodes = registry.nodes.values().map(|entry| {
            let (live, expected, _) = self.standing(entry, now, wall);
            progress::NodeAcks {
                id: entry.stored.node.id.as_str(),
                pop: entry.stored.node.registration.pop.as_deref(),
                live,
                expected,
                acked: entry.stored.acked,
                history: &entry.history,
            }
        });
        progress::progress(purge.seq, purge.created_at, nodes)
    }

    /// The connected nodes, their last-seen time set to `at` in memory.
    fn touch_connected(&self, at: Timestamp) -> Vec<NodeId> {
        let mut registry = lock(&self.registry);
        let connected = registry.nodes.values_mut().filter(|e| matches!(e.presence, Presence::Connected { .. }));
        connected
            .map(|entry| {
                entry.stored.seen_at = Some(at);
                entry.stored.node.id.clone()
            })
            .collect()
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

fn wall_now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// Records the connected nodes' last-seen time in the store every [`SEEN_INTERVAL`] (or a
/// tenth of `nodes.offline_after`), until the registry is dropped. A failed write is logged
/// and retried at the next tick: it only makes a restart wait less long for a node.
async fn record_seen(nodes: std::sync::Weak<Nodes>) {
    let every = match nodes.upgrade() {
        Some(nodes) => (nodes.settings.offline_after / 10).clamp(Duration::from_secs(1), SEEN_INTERVAL),
        None => return,
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(nodes) = nodes.upgrade() else { return };
        let at = wall_now();
        let ids = nodes.touch_connected(at);
        if ids.is_empty() {
            continue;
        }
        let store = nodes.store.clone();
        drop(nodes);
        if let Err(error) = store.mark_seen(ids, at).await {
            tracing::warn!(%error, "recording the connected nodes' last-seen time");
        }
    }
}

#[cfg(test)]
mod tests;
