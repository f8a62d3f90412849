//! The control plane's state behind one trait: services, purges, and the numbered event log.
//!
//! [`Store`] is what the API needs, nothing more. Each write is one atomic step that also
//! appends its [`Event`] with the next sequence number, so the log and the state it describes
//! can never disagree, and a node replaying the log from any point reaches the same state.
//!
//! [`EmbeddedStore`] keeps everything in one redb file (nothing to install). [`PostgresStore`]
//! keeps it in PostgreSQL, for any number of control-plane replicas on one database. What a
//! store shared by several processes must provide (the PostgreSQL one does, see `postgres`):
//! - **One transaction per write**, with the event appended in it. `seq` is the next number
//!   after the highest ever given (a one-row counter table updated in the transaction; not a
//!   sequence object, whose numbers can skip on rollback: nodes rely on there being no gaps).
//! - **Conditional writes**: [`Expect`] is checked in the transaction (`SELECT ... FOR UPDATE`,
//!   or `UPDATE ... WHERE version = $1` and a row count), so two control planes that race on
//!   one service cannot both win; the loser gets [`StoreError::Conflict`].
//! - **Unique hosts**: a host pattern belongs to one service (a unique index on a hosts table),
//!   reported as [`StoreError::HostTaken`].
//! - Lists ordered by service id, so `after` pages through them.
//! - **A bounded log**: at most `max_events` events, the oldest dropped in the transaction
//!   that appends a new one. [`Store::first_seq`] reports the oldest kept; a node that needs
//!   events from before it gets a snapshot instead, which is built from the current state, so
//!   nothing is lost but the ability to resume.
//! - **Nodes**: registrations and each node's highest acknowledged `seq`, which never goes
//!   back (`GREATEST(acked, $1)`), so a restarted control plane still knows who applied what.
//! - **Node liveness and drains**: each node's last-seen time (`GREATEST(seen_at, $1)`) and
//!   drain time, kept across re-registrations; a node can be deleted.
//! - **Drained PoPs**: the PoPs an operator drained and when, so a restart keeps steering
//!   clients away from them.
//! - **Presence, shared by replicas** (`presence`): which replica holds each node's stream, with
//!   a per-replica lease that lapses when the replica dies; [`Store::presence`] is what every
//!   replica merges, so the node list, purge progress and the 409 holder check agree.
//! - **Purge buckets**: one token bucket per tenant ([`Store::take_purge`]), so a tenant's
//!   purge rate is bounded across every replica.
//! - **ACME** (see `acme`): challenge answers are state and events at once (a put or delete
//!   appends its event in the same transaction; snapshots carry them); each service's
//!   [`AcmeState`] is written by compare-and-set on its `revision`, so of two replicas only
//!   one takes a lease or moves an order on; accounts are kept per directory URL.
//! - **Certificates**: one per (service, name), written with its event; the private key only
//!   ever sealed ([`crate::secrets::Sealed`]: the store never sees it in clear). Deleting a
//!   service deletes its certificates in the same transaction. Lists ordered by (service,
//!   name). A snapshot carries them (without keys) with the services, as of the same instant.

mod acme;
mod embedded;
mod function_set;
pub mod postgres;
pub mod presence;
#[cfg(test)]
mod suite;

use std::future::Future;
use std::pin::Pin;

use outpost_config::{
    AcmeChallenge, CertificateName, CertificateRecord, Event, FunctionRef, NodeId, NodeRecord, PurgeId, PurgeRecord,
    PurgeTarget, Seq, ServiceId, ServiceRecord, TenantId, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::domains::DomainRecord;
pub use acme::{AcmeFailure, AcmeState, AcmeStatus, IssuedDates, Lease};
pub use embedded::EmbeddedStore;
pub use function_set::{Added, FunctionSet, FunctionVersion};
pub use postgres::PostgresStore;
pub use presence::{Claim, Hold, NodePresence};

use crate::ratelimit::BucketSpec;

use crate::secrets::Sealed;

/// What every store method returns: a boxed future, so the API can hold any store as
/// `Arc<dyn Store>` and the choice of store is made at start-up, not at compile time.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The control plane's state. See the module docs for what an implementation must guarantee.
pub trait Store: Send + Sync {
    /// The log's identity: a random number made when the store was created, the same for as
    /// long as the store lives. Nodes compare it on each registration, so a store made anew
    /// (its numbers starting over) is never taken for the one they followed.
    fn log_id(&self) -> u64;

    /// One service, whoever owns it.
    fn service(&self, id: &ServiceId) -> StoreFuture<'_, Option<ServiceRecord>>;

    /// Services ordered by id: those of `query.tenant`, or every tenant's when it is `None`;
    /// at most `query.limit`, starting after `query.after`.
    fn services(&self, query: ServiceQuery) -> StoreFuture<'_, Vec<ServiceRecord>>;

    /// How many services `tenant` owns.
    fn count_services(&self, tenant: &TenantId) -> StoreFuture<'_, usize>;

    /// Creates or replaces a service if `put.expect` holds, claiming its hosts, and appends a
    /// `service_put` event. The new version is the event's `seq`.
    fn put_service(&self, put: ServicePut, at: Timestamp) -> StoreFuture<'_, Event>;

    /// Deletes a service if its version is `expect`, releasing its hosts, and appends a
    /// `service_deleted` event.
    fn delete_service(&self, id: &ServiceId, expect: Seq, at: Timestamp) -> StoreFuture<'_, Event>;

    /// Records a purge and appends its `purge` event; the record's `seq` is the event's.
    fn create_purge(&self, purge: NewPurge, at: Timestamp) -> StoreFuture<'_, PurgeRecord>;

    /// One purge.
    fn purge(&self, id: &PurgeId) -> StoreFuture<'_, Option<PurgeRecord>>;

    /// Events with `seq >= from`, in order, at most `limit`.
    fn events(&self, from: Seq, limit: usize) -> StoreFuture<'_, Vec<Event>>;

    /// The highest sequence number given so far; `Seq(0)` before the first event.
    fn last_seq(&self) -> StoreFuture<'_, Seq>;

    /// Every service and the sequence number they are current at, read at one instant: a
    /// node that applies this and then the events after `seq` misses nothing (the node
    /// stream's first message).
    fn snapshot(&self) -> StoreFuture<'_, Snapshot>;

    /// The oldest event the log still holds; `None` when it holds none.
    fn first_seq(&self) -> StoreFuture<'_, Option<Seq>>;

    /// Creates or replaces a node's registration, keeping what it acknowledged.
    fn put_node(&self, node: NodeRecord) -> StoreFuture<'_, StoredNode>;

    /// Every registered node, ordered by id.
    fn nodes(&self) -> StoreFuture<'_, Vec<StoredNode>>;

    /// Records that these nodes held a stream at `at` (`seen_at` moves up, never back); an
    /// unknown node is skipped. Written every few minutes for the connected nodes, so a
    /// restarted control plane knows which nodes were live lately (purge completeness waits
    /// for them).
    fn mark_seen(&self, nodes: Vec<NodeId>, at: Timestamp) -> StoreFuture<'_, ()>;

    /// Removes a node's registration and acks; `false` when it was not registered.
    fn delete_node(&self, id: &NodeId) -> StoreFuture<'_, bool>;

    /// Drains one node as of `at` (DNS stops answering with its address), or restores it
    /// (`None`); `false` when it is not registered. Kept across re-registrations.
    fn set_node_drain(&self, id: &NodeId, at: Option<Timestamp>) -> StoreFuture<'_, bool>;

    /// Records acknowledgements, all in one transaction (the ack handlers' group commit). An
    /// ack lower than the node's last is ignored; one for an unknown node is skipped.
    fn record_acks(&self, acks: Vec<NodeAck>) -> StoreFuture<'_, ()>;

    /// Writes a consistent copy of the whole store, taken at one instant while it serves, to a
    /// new file at `to` (never overwriting one); returns how many records it holds. A store
    /// with its own tooling (PostgreSQL: `pg_dump`) may refuse with [`StoreError::Backend`].
    fn backup(&self, to: std::path::PathBuf) -> StoreFuture<'_, u64>;

    /// Every drained PoP with the time it was drained, ordered by name.
    fn drained_pops(&self) -> StoreFuture<'_, Vec<(String, Timestamp)>>;

    /// Drains `pop` as of `at`, or restores it (`None`). Not an event: nodes do not need it.
    fn set_drain(&self, pop: &str, at: Option<Timestamp>) -> StoreFuture<'_, ()>;

    /// Stores an uploaded function for a service `new.tenant` owns (else
    /// [`StoreError::Conflict`]): its bytes once per hash, a version in the service's
    /// [`FunctionSet`], the oldest inactive versions beyond `new.max_versions` deleted, and
    /// bytes no version refers to any more removed. Not an event: nothing runs it until it is
    /// activated.
    fn add_function(&self, new: NewFunction, at: Timestamp) -> StoreFuture<'_, Added>;

    /// A service's versions and activations (empty when it has none).
    fn functions(&self, service: &ServiceId) -> StoreFuture<'_, FunctionSet>;

    /// The bytes with this SHA-256, if some service's version still refers to them.
    fn function_bytes(&self, sha256: &str) -> StoreFuture<'_, Option<Vec<u8>>>;

    /// Activates a version or rolls back, if the service is at version `expect` and the set
    /// allows it (else [`StoreError::Conflict`]), writing the service's new record with its
    /// `function` and appending a `service_put` event.
    fn set_function(
        &self,
        id: &ServiceId,
        expect: Seq,
        change: FunctionChange,
        at: Timestamp,
    ) -> StoreFuture<'_, Event>;

    /// Domains ordered by host: one service's, one tenant's, or every one; at most
    /// `query.limit`, starting after `query.after`. [`Store::put_service`] creates and removes
    /// them with the service's hosts.
    fn domains(&self, query: DomainQuery) -> StoreFuture<'_, Vec<DomainRecord>>;

    /// One domain by host pattern.
    fn domain(&self, host: &str) -> StoreFuture<'_, Option<DomainRecord>>;

    /// Writes a domain's new standing (after a check, a decree or a revocation), if a domain of
    /// that host still belongs to `record.service` with the same token (else
    /// [`StoreError::DomainGone`]). When the hosts the service serves change with it, also
    /// writes the service's next version with its new `verified_hosts` and appends that
    /// `service_put` event, which is returned.
    fn put_domain(&self, record: DomainRecord, at: Timestamp) -> StoreFuture<'_, Option<Event>>;

    // Presence shared by replicas, and fleet-wide purge buckets (see `presence`).

    /// Extends `replica`'s lease to `until` (written at `now`); `until <= now` ends it (a
    /// replica stopping lets its nodes move at once). Leases expired for an hour are removed.
    fn renew_replica(&self, replica: &str, now: Timestamp, until: Timestamp) -> StoreFuture<'_, ()>;

    /// Gives the node's stream to `hold.replica` unless another replica's hold stands at `now`
    /// ([`presence::may_take`]); a granted claim also moves `seen_at` up to `now`.
    fn claim_node(&self, id: &NodeId, hold: Hold, now: Timestamp) -> StoreFuture<'_, Claim>;

    /// Clears the node's hold if it is still `replica`'s of `generation` (a newer stream's hold
    /// is kept), moving `seen_at` up to `at`; `false` when nothing was cleared.
    fn release_node(&self, id: &NodeId, replica: &str, generation: u64, at: Timestamp) -> StoreFuture<'_, bool>;

    /// Every registered node's presence (holds with their replica's lease, acks, seen and
    /// drain times), ordered by id: cheap enough to read every second.
    fn presence(&self) -> StoreFuture<'_, Vec<NodePresence>>;

    /// Takes one purge from `tenant`'s bucket at `now`: `Ok(Err(wait))` when it is empty.
    fn take_purge(
        &self,
        tenant: &TenantId,
        spec: BucketSpec,
        now: Timestamp,
    ) -> StoreFuture<'_, Result<(), std::time::Duration>>;

    /// Publishes an ACME challenge answer (replacing one with the same token) and appends an
    /// `acme_challenge_put` event.
    fn put_challenge(&self, challenge: AcmeChallenge, at: Timestamp) -> StoreFuture<'_, Event>;

    /// Withdraws a challenge answer and appends an `acme_challenge_deleted` event; `None` (and
    /// no event) when no challenge has that token.
    fn delete_challenge(&self, token: &str, at: Timestamp) -> StoreFuture<'_, Option<Event>>;

    /// Every published challenge, in token order.
    fn challenges(&self) -> StoreFuture<'_, Vec<AcmeChallenge>>;

    /// A service's ACME state.
    fn acme_state(&self, service: &ServiceId) -> StoreFuture<'_, Option<AcmeState>>;

    /// Every service's ACME state, in service order.
    fn acme_states(&self) -> StoreFuture<'_, Vec<AcmeState>>;

    /// Writes `state` with `revision + 1` if the stored state's revision is `state.revision`
    /// (an absent state counts as revision 0); returns what was written, or `None` when
    /// another replica wrote first. Not an event: nodes do not need it.
    fn put_acme_state(&self, state: AcmeState) -> StoreFuture<'_, Option<AcmeState>>;

    /// Forgets a service's ACME state (the service was deleted or left `tls = "auto"`).
    fn delete_acme_state(&self, service: &ServiceId) -> StoreFuture<'_, ()>;

    /// The ACME account credentials kept for a directory URL (sealed by the caller).
    fn acme_account(&self, directory: &str) -> StoreFuture<'_, Option<String>>;

    /// Keeps the account credentials for a directory URL, unless some are kept already
    /// (two replicas creating an account at once: the first one written wins); returns the
    /// ones kept.
    fn put_acme_account(&self, directory: &str, credentials: String) -> StoreFuture<'_, String>;

    /// Forgets the account kept for a directory URL (the CA no longer knows it: RFC 8555
    /// `accountDoesNotExist`), so the next order creates one.
    fn delete_acme_account(&self, directory: &str) -> StoreFuture<'_, ()>;

    /// Creates or replaces the certificate `(put.record.service, put.record.name)` for a
    /// service `put.record.tenant` owns (else [`StoreError::Conflict`]), and appends its
    /// `certificate_put` event. The record's `version` and `updated_at` are the event's.
    fn put_certificate(&self, put: StoredCertificate, at: Timestamp) -> StoreFuture<'_, Event>;

    /// One certificate with its sealed key.
    fn certificate(&self, service: &ServiceId, name: &CertificateName) -> StoreFuture<'_, Option<StoredCertificate>>;

    /// The certificates of `service`, or of every service when `None`, ordered by (service,
    /// name); at most `limit`.
    fn certificates(&self, service: Option<ServiceId>, limit: usize) -> StoreFuture<'_, Vec<StoredCertificate>>;

    /// Deletes a certificate and appends its `certificate_deleted` event; `None` (nothing
    /// written) when there was none.
    fn delete_certificate(
        &self,
        service: &ServiceId,
        name: &CertificateName,
        at: Timestamp,
    ) -> StoreFuture<'_, Option<Event>>;

    /// Replaces a certificate's sealed key (the same key, sealed anew: key rotation) if the
    /// certificate is still at `version`; `false` when it is not. Not an event: nodes get the
    /// key in clear over their connection, so nothing they hold changes.
    fn reseal_certificate(
        &self,
        service: &ServiceId,
        name: &CertificateName,
        version: Seq,
        key: Sealed,
    ) -> StoreFuture<'_, bool>;
}

/// Which domains [`Store::domains`] lists.
#[derive(Debug, Clone)]
pub struct DomainQuery {
    /// Only this service's.
    pub service: Option<ServiceId>,
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
    /// Start after this host.
    pub after: Option<String>,
    pub limit: usize,
}

impl DomainQuery {
    /// Every domain of `service` (a service has at most as many as its config has hosts).
    pub fn service(service: ServiceId) -> Self {
        Self { service: Some(service), tenant: None, after: None, limit: usize::MAX }
    }

    /// Every domain, at most `limit`.
    pub fn all(limit: usize) -> Self {
        Self { service: None, tenant: None, after: None, limit }
    }

    /// Whether `record` is one this query lists (before `after` and `limit`).
    pub fn selects(&self, record: &DomainRecord) -> bool {
        self.service.as_ref().is_none_or(|s| *s == record.service)
            && self.tenant.as_ref().is_none_or(|t| *t == record.tenant)
            && self.after.as_ref().is_none_or(|a| record.host.as_str() > a.as_str())
    }
}

/// The service record as a domain write leaves it: its served hosts recomputed from
/// `domains` (all of the service's, after the write) in the order of its config's hosts;
/// `None` when they did not change.
pub(crate) fn reserve(service: &ServiceRecord, domains: &[DomainRecord]) -> Option<Vec<String>> {
    let hosts = held_hosts(service);
    let served: Vec<String> =
        hosts.iter().filter(|h| domains.iter().any(|d| d.host == **h && d.status.served())).cloned().collect();
    let before: Vec<String> = hosts.iter().filter(|h| service.serves(h)).cloned().collect();
    (served != before || service.verified_hosts.is_none()).then_some(served)
}

/// The host patterns a stored service claimed, read back from its config.
pub(crate) fn held_hosts(service: &ServiceRecord) -> Vec<String> {
    let hosts = service.config.get("hosts").and_then(|h| h.as_array());
    let patterns = hosts.into_iter().flatten().filter_map(|h| h.as_str());
    patterns.filter_map(|h| h.parse::<outpost_config::HostPattern>().ok()).map(|p| p.to_string()).collect()
}

/// A certificate as stored: what nodes get, and the private key sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCertificate {
    pub record: CertificateRecord,
    pub key: Sealed,
}

/// An upload to store; the store adds the version number and time.
#[derive(Debug, Clone)]
pub struct NewFunction {
    pub service: ServiceId,
    pub tenant: TenantId,
    /// SHA-256 of `bytes`, 64 lower-case hex digits.
    pub sha256: String,
    pub bytes: bytes::Bytes,
    /// `limits.max_function_versions`.
    pub max_versions: usize,
}

/// What [`Store::set_function`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionChange {
    Activate(u32),
    RollBack,
}

/// A node as stored: its registration and the highest `seq` it acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredNode {
    pub node: NodeRecord,
    /// `Seq(0)` before its first ack.
    pub acked: Seq,
    pub acked_at: Option<Timestamp>,
    /// The last time the node was known to hold a stream ([`Store::mark_seen`]); absent in
    /// records written before it existed.
    #[serde(default)]
    pub seen_at: Option<Timestamp>,
    /// Drained by an operator ([`Store::set_node_drain`]).
    #[serde(default)]
    pub drained_at: Option<Timestamp>,
    /// The replica holding its stream ([`Store::claim_node`]); the embedded store keeps it in
    /// this record, PostgreSQL in its own column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

impl StoredNode {
    /// The last time the node is known to have been live: its last registration, ack or
    /// recorded stream, whichever is latest.
    pub fn last_seen(&self) -> Timestamp {
        let seen = [self.acked_at, self.seen_at].into_iter().flatten();
        seen.fold(self.node.registered_at, Timestamp::max)
    }
}

/// One acknowledgement to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAck {
    pub node: NodeId,
    pub seq: Seq,
    pub at: Timestamp,
}

/// The services, certificates and ACME challenge answers as of one point of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub seq: Seq,
    pub services: Vec<ServiceRecord>,
    pub challenges: Vec<AcmeChallenge>,
    /// In (service, name) order; no keys.
    pub certificates: Vec<CertificateRecord>,
}

/// A page of services.
#[derive(Debug, Clone)]
pub struct ServiceQuery {
    /// Only this tenant's services; `None` for all.
    pub tenant: Option<TenantId>,
    /// Start after this id.
    pub after: Option<ServiceId>,
    pub limit: usize,
}

/// What the service must look like for a write to go ahead: the compare of a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The service does not exist (a create).
    Absent,
    /// The service exists at this version (a replace).
    Version(Seq),
}

/// A service to write; the store adds the version and time.
#[derive(Debug, Clone)]
pub struct ServicePut {
    pub id: ServiceId,
    pub tenant: TenantId,
    /// The validated config, as JSON.
    pub config: serde_json::Value,
    /// The config's host patterns as written by `HostPattern`'s `Display`, each claimed for
    /// this service.
    pub hosts: Vec<String>,
    pub expect: Expect,
    /// The function the new version runs (a tenant's `PUT` keeps the active one).
    pub function: Option<FunctionRef>,
    /// Hosts of `hosts` verified by the operator's word (`domains.owned`) if they are new to
    /// the service; every other new host gets a pending domain.
    pub decreed: Vec<String>,
}

/// A purge to record; the store adds its sequence number and time.
#[derive(Debug, Clone)]
pub struct NewPurge {
    pub id: PurgeId,
    pub service: ServiceId,
    pub tenant: TenantId,
    pub soft: bool,
    pub targets: Vec<PurgeTarget>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The service is not as [`Expect`]ed: someone else changed it first.
    #[error("service {id} changed concurrently (expected {expected:?}, found version {found:?})")]
    Conflict { id: ServiceId, expected: Expect, found: Option<Seq> },
    /// A host of the new config belongs to another service.
    #[error("host {host} belongs to service {owner}")]
    HostTaken { host: String, owner: ServiceId },
    /// The domain is no longer the service's (its host was removed, or added anew with
    /// another token): the write is dropped.
    #[error("domain {host} is no longer as it was read (removed from its service, or added anew)")]
    DomainGone { host: String },
    /// The store could not be read or written.
    #[error("store: {0}")]
    Backend(String),
    /// A stored record does not decode: a bug or a damaged file.
    #[error("store: corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
}
