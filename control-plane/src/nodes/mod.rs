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
//! - One node, one stream, across replicas: a stream first claims the node here, then in the
//!   store ([`Store::claim_node`], a hold under this replica's lease, see
//!   `crate::store::presence`). A node id held by an open stream, on this replica or another
//!   whose lease runs, is refused to a second claimant ([`Refusal::InUse`], 409
//!   `node_id_in_use`), never taken over; a restarted node gets its id back once its old
//!   stream has ended (its connection closed, or a heartbeat write failed), or once the
//!   holding replica's lease ran out (it died).
//! - Other replicas' holds, acks, seen and drain times reach this registry through
//!   [`Nodes::merge`] (the presence sync, `crate::sync`), so the node list, purge progress
//!   and the 409 agree on every replica. While the store does not answer, liveness is judged
//!   as of the last sync that succeeded: the last known state, which DNS keeps serving.
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
pub use presence::{Presence, is_expected, is_live_elsewhere, is_reconnecting};
pub use progress::{AckHistory, NodeProgress, PopProgress, PurgeProgress};

use crate::settings::NodeSettings;
use crate::store::presence::holds;
use crate::store::{Claim, Hold, NodeAck, NodePresence, Store, StoreError, StoredNode};

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
    /// This replica's id in the store's holds: random, new at every start.
    replica: String,
}

#[derive(Default)]
struct Registry {
    nodes: BTreeMap<NodeId, Entry>,
    next_generation: u64,
    /// Shutting down: no new streams.
    closing: bool,
    /// The last presence sync that succeeded, and whether the ones since failed (the store is
    /// away: liveness is judged as of that sync).
    synced: Option<(Instant, Timestamp)>,
    away: bool,
}

/// Another replica's hold on a node's stream, as of the last presence sync.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remote {
    hold: Hold,
    until: Option<Timestamp>,
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
    /// Another replica holds its stream (or did until its lease ran out).
    remote: Option<Remote>,
    /// When this replica's current stream claimed the node (wall clock): a hold another
    /// replica took before it is an older one, not a takeover.
    claimed_at: Timestamp,
}

/// A stream's claim on its node, from [`Nodes::connect`].
pub struct Connection {
    pub generation: u64,
    /// Resolves (with an error) when the node is deregistered or the server stops.
    pub stop: oneshot::Receiver<()>,
    /// Asks the stream for a heartbeat now (a second claimant came: find out whether the
    /// holder's connection still takes writes).
    pub poke: Arc<Notify>,
    /// When the node's previous stream here dropped, if it did (restored when the store
    /// refuses the claim).
    dropped_before: Option<Instant>,
}

/// Why [`Nodes::connect`] gave no stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    /// The control plane is stopping.
    Closing,
    /// Another connection holds the node's stream (`holder`: its address; `replica`: the
    /// replica holding it, when it is another one).
    InUse {
        holder: Option<SocketAddr>,
        replica: Option<String>,
    },
    /// The store did not answer the claim.
    Store(String),
}

/// What [`Nodes::merge`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Something a waiting purge, the node list or PoP health reads changed.
    pub changed: bool,
    /// A node is new or re-registered elsewhere: read the registrations again.
    pub reload: bool,
    /// Holds of this replica's streams that have ended here (a release that failed): clear them.
    pub release: Vec<(NodeId, u64)>,
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
    /// The replica holding its stream (this one's id, or another's).
    pub replica: Option<String>,
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
                        remote: None,
                        claimed_at: Timestamp(0),
                    },
                )
            })
            .collect();
        let registry = Registry { nodes, next_generation: 1, ..Registry::default() };
        let nodes = Arc::new(Self {
            registry: Mutex::new(registry),
            head: watch::Sender::new(head),
            changes: watch::Sender::new(0),
            settings,
            acks: AckWriter::start(store.clone()),
            store,
            started: Instant::now(),
            replica: new_replica_id(),
        });
        tokio::spawn(record_seen(Arc::downgrade(&nodes)));
        Ok(nodes)
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// This replica's id (in the store's holds and `GET /v1/nodes`).
    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
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
                    remote: None,
                    claimed_at: Timestamp(0),
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
        let (_, wall) = self.as_of(&registry, Instant::now());
        let entry = registry.nodes.get(id)?;
        match &entry.presence {
            Presence::Connected { peer, poke, .. } => {
                poke.notify_one();
                Some(*peer)
            }
            _ => entry.remote.as_ref().filter(|r| holds(r.until, wall)).map(|r| peer_of(&r.hold)),
        }
    }

    /// Claims the node's stream for the connection from `peer`: here first ([`Nodes::connect`]),
    /// then in the store, where another replica's standing hold refuses it.
    pub async fn claim(&self, id: &NodeId, peer: Option<SocketAddr>) -> Result<Connection, Refusal> {
        let connection = self.connect(id, peer)?;
        let now = wall_now();
        let hold = Hold {
            replica: self.replica.clone(),
            generation: connection.generation,
            peer: peer.map(|p| p.to_string()),
            since: now,
        };
        let refusal = match self.store.claim_node(id, hold, now).await {
            Ok(Claim::Claimed) => return Ok(connection),
            Ok(Claim::Held { hold, until }) => {
                let holder = peer_of(&hold);
                let replica = Some(hold.replica.clone());
                if let Some(entry) = lock(&self.registry).nodes.get_mut(id) {
                    entry.remote = Some(Remote { hold, until: Some(until) });
                }
                Refusal::InUse { holder, replica }
            }
            Ok(Claim::Unknown) => Refusal::Unknown,
            Err(error) => Refusal::Store(error.to_string()),
        };
        self.undo(id, &connection);
        Err(refusal)
    }

    /// Takes back a local claim the store refused: the node is as before it.
    fn undo(&self, id: &NodeId, connection: &Connection) {
        let undone = {
            let mut registry = lock(&self.registry);
            match registry.nodes.get_mut(id) {
                Some(entry) if entry.presence.is_stream(connection.generation) => {
                    entry.presence = match connection.dropped_before {
                        Some(since) => Presence::Dropped { since },
                        None => Presence::Never,
                    };
                    true
                }
                _ => false,
            }
        };
        if undone {
            self.changed();
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
            let dropped_before = match &entry.presence {
                Presence::Connected { peer: holder, poke, .. } => {
                    poke.notify_one();
                    return Err(Refusal::InUse { holder: *holder, replica: None });
                }
                Presence::Dropped { since } => Some(*since),
                Presence::Never => None,
            };
            let (stop, stopped) = oneshot::channel();
            let poke = Arc::new(Notify::new());
            entry.presence = Presence::Connected { generation, stop, peer, poke: poke.clone() };
            entry.claimed_at = wall_now();
            entry.stored.seen_at = Some(entry.claimed_at);
            registry.next_generation += 1;
            Connection { generation, stop: stopped, poke, dropped_before }
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

    /// Whether the node's stream is open, here or on another replica whose lease runs.
    pub fn is_connected(&self, id: &NodeId) -> bool {
        let registry = lock(&self.registry);
        let (_, wall) = self.as_of(&registry, Instant::now());
        registry.nodes.get(id).is_some_and(|e| is_connected(e, wall))
    }

    /// Mirrors a node drain the store has written.
    pub fn drained(&self, id: &NodeId, at: Option<Timestamp>) {
        if let Some(entry) = lock(&self.registry).nodes.get_mut(id) {
            entry.stored.drained_at = at;
        }
    }

    /// The stream of `generation` ended; the node stays live for `nodes.grace`. Its hold in
    /// the store is cleared in the background (a failure is retried by the next sync).
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
        self.release(id.clone(), generation);
    }

    /// Clears this replica's hold of `generation` on the node in the store, in the background.
    pub fn release(&self, id: NodeId, generation: u64) {
        let (store, replica) = (self.store.clone(), self.replica.clone());
        tokio::spawn(async move {
            if let Err(error) = store.release_node(&id, &replica, generation, wall_now()).await {
                tracing::debug!(node = %id, %error, "release of the stream's hold failed; the next sync retries");
            }
        });
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

    /// Every node, by id, as of `now` (as of the last sync while the store is away).
    pub fn list(&self, now: Instant) -> Vec<NodeView> {
        let registry = lock(&self.registry);
        let (now, wall) = self.as_of(&registry, now);
        registry
            .nodes
            .values()
            .map(|entry| {
                let (live, expected, reconnecting) = self.standing(entry, now, wall);
                let remote = entry.remote.as_ref().filter(|r| holds(r.until, wall));
                let (peer, replica) = match (&entry.presence, remote) {
                    (Presence::Connected { peer, .. }, _) => (*peer, Some(self.replica.clone())),
                    (_, Some(remote)) => (peer_of(&remote.hold), Some(remote.hold.replica.clone())),
                    _ => (None, None),
                };
                NodeView {
                    node: entry.stored.node.clone(),
                    live,
                    connected: is_connected(entry, wall),
                    acked: entry.stored.acked,
                    acked_at: entry.stored.acked_at,
                    last_seen: entry.stored.last_seen(),
                    expected,
                    reconnecting,
                    peer,
                    replica,
                    drained_at: entry.stored.drained_at,
                    functions: entry.functions.clone(),
                }
            })
            .collect()
    }

    /// `(live, expected, reconnecting)` of one node as of `now` (and `wall`, the same instant
    /// on the wall clock).
    fn standing(&self, entry: &Entry, now: Instant, wall: Timestamp) -> (bool, bool, bool) {
        let until = entry.remote.as_ref().and_then(|r| r.until);
        let live = entry.presence.is_live(now, self.settings.grace())
            || is_live_elsewhere(until, entry.stored.seen_at, wall, self.settings.grace());
        let expected = is_expected(live, entry.stored.last_seen(), wall, self.settings.offline_after);
        let since_start = now.saturating_duration_since(self.started);
        let reconnecting = entry.known_at_start
            && is_reconnecting(&entry.presence, expected, since_start, self.settings.startup_grace());
        (live, expected, reconnecting)
    }

    /// The purge's progress on the nodes, as of `now`.
    pub fn progress(&self, purge: &PurgeRecord, now: Instant) -> PurgeProgress {
        let registry = lock(&self.registry);
        let (now, wall) = self.as_of(&registry, now);
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

    /// The instant liveness is judged at: `now`, or while the store is away, the last sync
    /// that succeeded (the last known state). `wall` is the same instant on the wall clock.
    fn as_of(&self, registry: &Registry, now: Instant) -> (Instant, Timestamp) {
        match registry.synced {
            Some(at) if registry.away => at,
            _ => (now, wall_at(now)),
        }
    }

    /// Whether the last presence sync failed (liveness is frozen at the one before).
    pub fn is_away(&self) -> bool {
        lock(&self.registry).away
    }

    /// A presence sync failed: keep judging liveness as of the last one that succeeded.
    pub fn sync_failed(&self) -> bool {
        let mut registry = lock(&self.registry);
        let first = !registry.away;
        registry.away = true;
        first
    }

    /// Merges every node's presence read from the store at `read_at` (wall clock): other
    /// replicas' holds, acks, seen and drain times. Ends a stream of this replica whose hold
    /// another replica took over (this replica's lease ran out meanwhile).
    pub fn merge(&self, presence: Vec<NodePresence>, read_at: Timestamp) -> Merged {
        let mut out = Merged::default();
        let mut registry = lock(&self.registry);
        registry.synced = Some((Instant::now(), read_at));
        let recovered = std::mem::take(&mut registry.away);
        out.changed |= recovered;
        let mut seen = std::collections::HashSet::with_capacity(presence.len());
        for p in presence {
            seen.insert(p.id.clone());
            let Some(entry) = registry.nodes.get_mut(&p.id) else {
                out.reload = true;
                continue;
            };
            out.reload |= entry.stored.node.registered_at != p.registered_at;
            out.changed |= merge_one(entry, p, &self.replica, read_at, self.settings.ack_history, &mut out.release);
        }
        // Deleted through another replica. A node registered here after the read began is not
        // in it: only entries registered well before the read count as deleted.
        let margin = u64::try_from(self.settings.replica_lease.as_millis()).unwrap_or(u64::MAX);
        let before = registry.nodes.len();
        registry.nodes.retain(|id, entry| {
            seen.contains(id) || entry.stored.node.registered_at.0.saturating_add(margin) > read_at.0
        });
        out.changed |= registry.nodes.len() != before;
        drop(registry);
        if out.changed {
            self.changed();
        }
        out
    }

    /// Registrations read again after [`Nodes::merge`] asked for it: new nodes are added,
    /// changed registrations replace the old.
    pub fn reload(&self, stored: Vec<StoredNode>) {
        for node in stored {
            self.registered(node);
        }
        self.changed();
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

/// `now` on the wall clock (a later instant, as tests pass, is as far past the wall clock).
fn wall_at(now: Instant) -> Timestamp {
    let ahead = now.saturating_duration_since(Instant::now());
    let ahead = u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX);
    Timestamp(wall_now().0.saturating_add(ahead))
}

/// A replica id: `cp-` and 64 random bits in hex (a new one at every start, so a restarted
/// replica never mistakes its predecessor's holds for its own).
fn new_replica_id() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    // Without randomness, the time still tells replicas apart (they start at different ms).
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        bytes = wall_now().0.to_le_bytes();
    }
    format!("cp-{}", crate::auth::hex(&bytes))
}

fn peer_of(hold: &Hold) -> Option<SocketAddr> {
    hold.peer.as_deref().and_then(|p| p.parse().ok())
}

/// Connected here, or held by another replica whose lease runs at `wall`.
fn is_connected(entry: &Entry, wall: Timestamp) -> bool {
    matches!(entry.presence, Presence::Connected { .. }) || entry.remote.as_ref().is_some_and(|r| holds(r.until, wall))
}

/// Merges one node's presence into its entry; whether anything that matters changed.
fn merge_one(
    entry: &mut Entry,
    p: NodePresence,
    me: &str,
    read_at: Timestamp,
    ack_history: usize,
    release: &mut Vec<(NodeId, u64)>,
) -> bool {
    let mut changed = false;
    if p.acked > entry.stored.acked {
        entry.stored.acked = p.acked;
        entry.stored.acked_at = p.acked_at;
        entry.history.push(p.acked, p.acked_at.unwrap_or(read_at), ack_history);
        changed = true;
    }
    entry.stored.seen_at = entry.stored.seen_at.max(p.seen_at);
    if entry.stored.drained_at != p.drained_at {
        entry.stored.drained_at = p.drained_at;
        changed = true;
    }
    let remote = match p.hold {
        Some(hold) if hold.replica != me => {
            let ours = matches!(entry.presence, Presence::Connected { .. });
            if ours && holds(p.held_until, read_at) && hold.since > entry.claimed_at {
                // Our lease ran out (the store was away) and another replica took the node:
                // one stream per node, so ours ends (dropping `stop`).
                tracing::warn!(node = %p.id, replica = %hold.replica, "another replica took over this node's stream; ending ours");
                entry.presence = Presence::Dropped { since: Instant::now() };
            }
            Some(Remote { hold, until: p.held_until })
        }
        Some(hold) => {
            if !entry.presence.is_stream(hold.generation) {
                release.push((p.id.clone(), hold.generation));
            }
            None
        }
        None => None,
    };
    if entry.remote != remote {
        entry.remote = remote;
        changed = true;
    }
    changed
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
