//! [`PostgresStore`]: the [`Store`] on PostgreSQL, for a control plane of several replicas.
//!
//! Any number of `control-plane` processes may share one database: every guarantee of the
//! trait holds across them because each lives in a database transaction.
//! - **Gap-free numbers**: a write that appends an event first updates the one row of
//!   `outpost_log` (`last_seq = last_seq + 1`), holding its row lock until it commits. Writers
//!   therefore queue, take numbers in order and commit in that order: once event `n` is
//!   visible, every event before it is too, so a stream reading "after my cursor" never sees
//!   a hole that a slower transaction fills later. A rolled-back write gives its number back.
//! - **Conditional writes**: taken after that lock, every check of the transaction (the
//!   service's version, its hosts' owners) reads the latest committed state, so of two
//!   replicas racing on one service exactly one wins; the other gets [`StoreError::Conflict`].
//! - **Waking other replicas**: the transaction also runs `pg_notify('outpost_log', seq)`,
//!   delivered only if it commits (see [`follow`] for the listener and its catch-up read).
//!
//! Tables and migrations: [`schema`]. Connections come from a deadpool pool; statements are
//! prepared once per connection (`prepare_cached`).

mod acme;
mod certificates;
mod domains;
mod follow;
mod functions;
mod log;
mod nodes;
pub mod presence;
mod schema;
mod services;
pub mod settings;

use std::fmt::Display;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use outpost_config::{
    AcmeChallenge, CertificateName, Event, NodeId, NodeRecord, PurgeId, PurgeRecord, Seq, ServiceId, ServiceRecord,
    TenantId, Timestamp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub use follow::follow_head;
pub use settings::PostgresSettings;

use super::embedded::DEFAULT_MAX_EVENTS;
use super::{
    AcmeState, Added, Claim, DomainQuery, FunctionChange, FunctionSet, Hold, NewFunction, NewPurge, NodeAck,
    NodePresence, ServicePut, ServiceQuery, Snapshot, Store, StoreError, StoreFuture, StoredCertificate, StoredNode,
};
use crate::domains::DomainRecord;
use crate::ratelimit::BucketSpec;
use crate::secrets::Sealed;

/// The store on a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    max_events: u64,
    log_id: u64,
}

impl PostgresStore {
    /// Connects once: builds the pool, applies the migrations the database lacks, and reads
    /// (or, on a new database, creates) the log's identity.
    pub async fn connect(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let manager = Manager::from_config(
            settings.client_config(),
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| backend("pool", e))?;
        let mut client = pool.get().await.map_err(|e| backend("connect", e))?;
        let applied = schema::migrate(&mut client).await?;
        if applied > 0 {
            tracing::info!(applied, "postgres: schema migrated");
        }
        let log_id = log::identity(&client).await?;
        Ok(Self { pool, max_events: DEFAULT_MAX_EVENTS as u64, log_id })
    }

    /// [`connect`](Self::connect), retried with backoff (100ms doubling to 5s) until
    /// `settings.start_timeout` has passed: a database that starts after the control plane
    /// (or is briefly away) delays the start rather than failing it.
    pub async fn connect_with_retry(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let deadline = tokio::time::Instant::now() + settings.start_timeout;
        let mut wait = Duration::from_millis(100);
        loop {
            match Self::connect(settings).await {
                Ok(store) => return Ok(store),
                Err(error) if tokio::time::Instant::now() + wait < deadline => {
                    tracing::warn!(
                        target = %settings.redacted(),
                        retry_in = ?wait,
                        "postgres: cannot start the store: {error}"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    return Err(StoreError::Backend(format!(
                        "postgres {}: gave up after store.start_timeout ({:?}): {error}",
                        settings.redacted(),
                        settings.start_timeout
                    )));
                }
            }
        }
    }

    /// Keeps at most `max` events (at least 1): each append drops the oldest beyond it.
    pub fn with_max_events(mut self, max: usize) -> Self {
        self.max_events = u64::try_from(max.max(1)).unwrap_or(u64::MAX);
        self
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| backend("postgres pool", e))
    }
}

impl Store for PostgresStore {
    fn log_id(&self) -> u64 {
        self.log_id
    }

    fn service(&self, id: &ServiceId) -> StoreFuture<'_, Option<ServiceRecord>> {
        let id = id.clone();
        Box::pin(async move { services::one(&self.client().await?, &id).await })
    }

    fn services(&self, query: ServiceQuery) -> StoreFuture<'_, Vec<ServiceRecord>> {
        Box::pin(async move { services::page(&self.client().await?, &query).await })
    }

    fn count_services(&self, tenant: &TenantId) -> StoreFuture<'_, usize> {
        let tenant = tenant.clone();
        Box::pin(async move { services::count(&self.client().await?, &tenant).await })
    }

    fn put_service(&self, put: ServicePut, at: Timestamp) -> StoreFuture<'_, Event> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let event = services::put(&txn, put, at, self.max_events).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(event)
        })
    }

    fn delete_service(&self, id: &ServiceId, expect: Seq, at: Timestamp) -> StoreFuture<'_, Event> {
        let id = id.clone();
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let event = services::delete(&txn, id, expect, at, self.max_events).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(event)
        })
    }

    fn create_purge(&self, purge: NewPurge, at: Timestamp) -> StoreFuture<'_, PurgeRecord> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let record = log::create_purge(&txn, purge, at, self.max_events).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(record)
        })
    }

    fn purge(&self, id: &PurgeId) -> StoreFuture<'_, Option<PurgeRecord>> {
        let id = id.clone();
        Box::pin(async move {
            let client = self.client().await?;
            let row = query_opt(&client, "SELECT record::text FROM purges WHERE id = $1", &[&id.0]).await?;
            row.map(|row| decode_column(&row, &id.0)).transpose()
        })
    }

    fn events(&self, from: Seq, limit: usize) -> StoreFuture<'_, Vec<Event>> {
        Box::pin(async move { log::events(&self.client().await?, from, limit).await })
    }

    fn last_seq(&self) -> StoreFuture<'_, Seq> {
        Box::pin(async move { log::last_seq(&self.client().await?).await })
    }

    fn snapshot(&self) -> StoreFuture<'_, Snapshot> {
        Box::pin(async move { log::snapshot(&mut self.client().await?).await })
    }

    fn first_seq(&self) -> StoreFuture<'_, Option<Seq>> {
        Box::pin(async move { log::first_seq(&self.client().await?).await })
    }

    fn put_node(&self, node: NodeRecord) -> StoreFuture<'_, StoredNode> {
        Box::pin(async move { nodes::put(&self.client().await?, node).await })
    }

    fn nodes(&self) -> StoreFuture<'_, Vec<StoredNode>> {
        Box::pin(async move { nodes::all(&self.client().await?).await })
    }

    fn record_acks(&self, acks: Vec<NodeAck>) -> StoreFuture<'_, ()> {
        Box::pin(async move { nodes::record_acks(&self.client().await?, acks).await })
    }

    fn mark_seen(&self, seen: Vec<NodeId>, at: Timestamp) -> StoreFuture<'_, ()> {
        Box::pin(async move { nodes::mark_seen(&self.client().await?, seen, at).await })
    }

    fn delete_node(&self, id: &NodeId) -> StoreFuture<'_, bool> {
        let id = id.clone();
        Box::pin(async move { nodes::delete(&self.client().await?, &id).await })
    }

    fn set_node_drain(&self, id: &NodeId, at: Option<Timestamp>) -> StoreFuture<'_, bool> {
        let id = id.clone();
        Box::pin(async move { nodes::set_node_drain(&self.client().await?, &id, at).await })
    }

    /// PostgreSQL has its own consistent, online backup: `pg_dump` (README, "Backups").
    fn backup(&self, _to: std::path::PathBuf) -> StoreFuture<'_, u64> {
        Box::pin(async {
            Err(StoreError::Backend(
                "the PostgreSQL store is backed up with pg_dump (a consistent copy while it serves), not by the control plane"
                    .to_owned(),
            ))
        })
    }

    fn drained_pops(&self) -> StoreFuture<'_, Vec<(String, Timestamp)>> {
        Box::pin(async move { nodes::drained(&self.client().await?).await })
    }

    fn set_drain(&self, pop: &str, at: Option<Timestamp>) -> StoreFuture<'_, ()> {
        let pop = pop.to_owned();
        Box::pin(async move { nodes::set_drain(&self.client().await?, &pop, at).await })
    }

    fn add_function(&self, new: NewFunction, at: Timestamp) -> StoreFuture<'_, Added> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let added = functions::add(&txn, new, at).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(added)
        })
    }

    fn functions(&self, service: &ServiceId) -> StoreFuture<'_, FunctionSet> {
        let id = service.clone();
        Box::pin(async move { functions::read_set(&self.client().await?, &id).await })
    }

    fn function_bytes(&self, sha256: &str) -> StoreFuture<'_, Option<Vec<u8>>> {
        let sha256 = sha256.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            let row = query_opt(&client, "SELECT bytes FROM function_blobs WHERE sha256 = $1", &[&sha256]).await?;
            row.map(|row| row.try_get::<_, Vec<u8>>(0).map_err(pg_error("read function"))).transpose()
        })
    }

    fn set_function(
        &self,
        id: &ServiceId,
        expect: Seq,
        change: FunctionChange,
        at: Timestamp,
    ) -> StoreFuture<'_, Event> {
        let id = id.clone();
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let event = functions::set(&txn, id, expect, change, at, self.max_events).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(event)
        })
    }

    fn domains(&self, query: DomainQuery) -> StoreFuture<'_, Vec<DomainRecord>> {
        Box::pin(async move { domains::list(&self.client().await?, &query).await })
    }

    fn domain(&self, host: &str) -> StoreFuture<'_, Option<DomainRecord>> {
        let host = host.to_owned();
        Box::pin(async move { domains::one(&self.client().await?, &host).await })
    }

    fn put_domain(&self, record: DomainRecord, at: Timestamp) -> StoreFuture<'_, Option<Event>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let event = domains::put(&txn, record, at, self.max_events).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(event)
        })
    }

    fn put_certificate(&self, put: StoredCertificate, at: Timestamp) -> StoreFuture<'_, Event> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let event = certificates::put(&txn, put, at, self.max_events).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(event)
        })
    }

    fn renew_replica(&self, replica: &str, now: Timestamp, until: Timestamp) -> StoreFuture<'_, ()> {
        let replica = replica.to_owned();
        Box::pin(async move { presence::renew(&self.client().await?, &replica, now, until).await })
    }

    fn claim_node(&self, id: &NodeId, hold: Hold, now: Timestamp) -> StoreFuture<'_, Claim> {
        let id = id.clone();
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let claim = presence::claim(&txn, &id, hold, now).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(claim)
        })
    }

    fn release_node(&self, id: &NodeId, replica: &str, generation: u64, at: Timestamp) -> StoreFuture<'_, bool> {
        let (id, replica) = (id.clone(), replica.to_owned());
        Box::pin(async move { presence::release(&self.client().await?, &id, &replica, generation, at).await })
    }

    fn presence(&self) -> StoreFuture<'_, Vec<NodePresence>> {
        Box::pin(async move { presence::read(&self.client().await?).await })
    }

    fn take_purge(&self, tenant: &TenantId, spec: BucketSpec, now: Timestamp) -> StoreFuture<'_, Result<(), Duration>> {
        let tenant = tenant.clone();
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let taken = presence::take_purge(&txn, &tenant, spec, now).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(taken)
        })
    }

    fn certificate(&self, service: &ServiceId, name: &CertificateName) -> StoreFuture<'_, Option<StoredCertificate>> {
        let (service, name) = (service.clone(), name.clone());
        Box::pin(async move { certificates::one(&self.client().await?, &service, &name).await })
    }

    fn certificates(&self, service: Option<ServiceId>, limit: usize) -> StoreFuture<'_, Vec<StoredCertificate>> {
        Box::pin(async move { certificates::list(&self.client().await?, service.as_ref(), limit).await })
    }

    fn delete_certificate(
        &self,
        service: &ServiceId,
        name: &CertificateName,
        at: Timestamp,
    ) -> StoreFuture<'_, Option<Event>> {
        let (service, name) = (service.clone(), name.clone());
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let event = certificates::delete(&txn, &service, &name, at, self.max_events).await?;
            if event.is_some() {
                txn.commit().await.map_err(pg_error("commit"))?;
            }
            Ok(event)
        })
    }

    fn reseal_certificate(
        &self,
        service: &ServiceId,
        name: &CertificateName,
        version: Seq,
        key: Sealed,
    ) -> StoreFuture<'_, bool> {
        let (service, name) = (service.clone(), name.clone());
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let done = certificates::reseal(&txn, &service, &name, version, key).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(done)
        })
    }

    fn put_challenge(&self, challenge: AcmeChallenge, at: Timestamp) -> StoreFuture<'_, Event> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let event = acme::put_challenge(&txn, challenge, at, self.max_events).await?;
            txn.commit().await.map_err(pg_error("commit"))?;
            Ok(event)
        })
    }

    fn delete_challenge(&self, token: &str, at: Timestamp) -> StoreFuture<'_, Option<Event>> {
        let token = token.to_owned();
        Box::pin(async move {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(pg_error("begin"))?;
            let event = acme::delete_challenge(&txn, &token, at, self.max_events).await?;
            if event.is_some() {
                txn.commit().await.map_err(pg_error("commit"))?;
            }
            // Else dropped: rolled back, the number taken with it (no gap in the log).
            Ok(event)
        })
    }

    fn challenges(&self) -> StoreFuture<'_, Vec<AcmeChallenge>> {
        Box::pin(async move { acme::challenges(&self.client().await?).await })
    }

    fn acme_state(&self, service: &ServiceId) -> StoreFuture<'_, Option<AcmeState>> {
        let service = service.clone();
        Box::pin(async move { acme::state(&self.client().await?, &service).await })
    }

    fn acme_states(&self) -> StoreFuture<'_, Vec<AcmeState>> {
        Box::pin(async move { acme::states(&self.client().await?).await })
    }

    fn put_acme_state(&self, state: AcmeState) -> StoreFuture<'_, Option<AcmeState>> {
        Box::pin(async move { acme::put_state(&self.client().await?, state).await })
    }

    fn delete_acme_state(&self, service: &ServiceId) -> StoreFuture<'_, ()> {
        let service = service.clone();
        Box::pin(async move { acme::delete_state(&self.client().await?, &service).await })
    }

    fn acme_account(&self, directory: &str) -> StoreFuture<'_, Option<String>> {
        let directory = directory.to_owned();
        Box::pin(async move { acme::account(&self.client().await?, &directory).await })
    }

    fn put_acme_account(&self, directory: &str, credentials: String) -> StoreFuture<'_, String> {
        let directory = directory.to_owned();
        Box::pin(async move { acme::put_account(&self.client().await?, &directory, credentials).await })
    }

    fn delete_acme_account(&self, directory: &str) -> StoreFuture<'_, ()> {
        let directory = directory.to_owned();
        Box::pin(async move {
            let sql = "DELETE FROM acme_accounts WHERE directory = $1";
            execute(&self.client().await?, sql, &[&directory]).await.map(|_| ())
        })
    }
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs a prepared (and cached per connection) statement.
async fn query(client: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(pg_error(sql))?;
    client.query(&statement, params).await.map_err(pg_error(sql))
}

async fn query_opt(client: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(pg_error(sql))?;
    client.query_opt(&statement, params).await.map_err(pg_error(sql))
}

async fn execute(client: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(pg_error(sql))?;
    client.execute(&statement, params).await.map_err(pg_error(sql))
}

/// A JSON record in the row's first column (selected as `record::text`).
fn decode_column<T: DeserializeOwned>(row: &Row, key: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(0).map_err(pg_error("read record"))?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt { key: key.to_owned(), reason: e.to_string() })
}

fn encode(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| backend("encode", e))
}

/// A sequence number or time as PostgreSQL's `bigint`.
fn int(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| backend("encode", format!("{n} does not fit a bigint")))
}

/// A `bigint` column back; the schema's CHECKs keep them non-negative.
fn uint(row: &Row, column: usize) -> Result<u64, StoreError> {
    let n: i64 = row.try_get(column).map_err(pg_error("read integer"))?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt { key: format!("column {column}"), reason: format!("{n} < 0") })
}

fn pg_error(what: impl Display) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |error| {
        // The server's own message (and detail) says far more than "db error".
        match error.as_db_error() {
            Some(db) => StoreError::Backend(format!("postgres: {what}: {} ({})", db.message(), db.code().code())),
            None => StoreError::Backend(format!("postgres: {what}: {error}")),
        }
    }
}

fn backend(what: impl Display, error: impl Display) -> StoreError {
    StoreError::Backend(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests;
