//! The control plane's state behind one trait: services, purges, and the numbered event log.
//!
//! [`Store`] is what the API needs, nothing more. Each write is one atomic step that also
//! appends its [`Event`] with the next sequence number, so the log and the state it describes
//! can never disagree, and a node replaying the log from any point reaches the same state.
//!
//! [`EmbeddedStore`] keeps everything in one redb file (nothing to install). For an HA control
//! plane the same trait can be backed by PostgreSQL; what such an implementation must provide:
//! - **One transaction per write**, with the event appended in it. `seq` is the next number
//!   after the highest ever given (a one-row counter table updated in the transaction; not a
//!   sequence object, whose numbers can skip on rollback: nodes rely on there being no gaps).
//! - **Conditional writes**: [`Expect`] is checked in the transaction (`SELECT ... FOR UPDATE`,
//!   or `UPDATE ... WHERE version = $1` and a row count), so two control planes that race on
//!   one service cannot both win; the loser gets [`StoreError::Conflict`].
//! - **Unique hosts**: a host pattern belongs to one service (a unique index on a hosts table),
//!   reported as [`StoreError::HostTaken`].
//! - Lists ordered by service id, so `after` pages through them.

mod embedded;

use std::future::Future;
use std::pin::Pin;

use outpost_config::{Event, PurgeId, PurgeRecord, PurgeTarget, Seq, ServiceId, ServiceRecord, TenantId, Timestamp};

pub use embedded::EmbeddedStore;

/// What every store method returns: a boxed future, so the API can hold any store as
/// `Arc<dyn Store>` and the choice of store is made at start-up, not at compile time.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The control plane's state. See the module docs for what an implementation must guarantee.
pub trait Store: Send + Sync {
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
}

/// The services as of one point of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub seq: Seq,
    pub services: Vec<ServiceRecord>,
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
    /// The store could not be read or written.
    #[error("store: {0}")]
    Backend(String),
    /// A stored record does not decode: a bug or a damaged file.
    #[error("store: corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
}
