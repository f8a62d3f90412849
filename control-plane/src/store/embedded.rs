//! [`EmbeddedStore`]: the [`Store`] in one redb file.
//!
//! redb is a pure-Rust, ACID, copy-on-write B-tree store: every commit is fsynced before it
//! returns, a crash leaves the last committed state, and it holds a lock so a second control
//! plane cannot open the same file. Records are JSON (the same form as the API's), so the file
//! stays readable across versions of these types as long as their JSON does.
//!
//! Tables:
//! - `services`: service id → [`ServiceRecord`]
//! - `tenant_services`: `"{tenant}/{id}"` → () (a tenant's services in id order; neither name
//!   can contain `/`)
//! - `hosts`: host pattern → service id (a pattern belongs to one service)
//! - `purges`: purge id → [`PurgeRecord`]
//! - `events`: seq → [`Event`]
//! - `meta`: `"last_seq"` → the highest sequence number given, kept apart from `events` so
//!   numbers are never reused when old events are compacted away; `"log_id"` → the log's
//!   identity, random, written when the file is created (or first opened by a version that
//!   did not have it)
//! - `nodes`: node id → [`StoredNode`] (registration and highest ack)
//! - `drains`: PoP name → when it was drained (milliseconds since the Unix epoch)
//! - `function_sets`, `function_blobs`, `function_refs`: uploaded functions (see
//!   [`functions`])
//! - `domains`, `service_domains`: each host's proof of control (see [`domains`])
//! - `acme_challenges`, `acme_states`, `acme_accounts`: the ACME driver's (see [`acme`])
//! - `certificates`: `"{service} {name}"` → [`StoredCertificate`] (see [`certificates`])
//!
//! The log keeps at most `max_events` ([`EmbeddedStore::with_max_events`]): the transaction
//! that appends an event drops the oldest beyond it.
//!
//! [`Store::backup`] copies every table in one read transaction into a new file (`backup`).
//!
//! redb's calls block (a commit waits for fsync), so each operation runs on tokio's blocking
//! pool.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outpost_config::{
    AcmeChallenge, CertificateName, Change, Event, NodeId, NodeRecord, PurgeId, PurgeRecord, Seq, ServiceId,
    ServiceRecord, TenantId, Timestamp,
};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AcmeState, Added, DomainQuery, Expect, FunctionChange, FunctionSet, NewFunction, NewPurge, NodeAck, ServicePut,
    ServiceQuery, Snapshot, Store, StoreError, StoreFuture, StoredCertificate, StoredNode, held_hosts,
};
use crate::domains::DomainRecord;
use crate::ratelimit::{BucketSpec, PurgeBuckets};
use crate::secrets::Sealed;
use crate::store::presence::{Claim, Hold, NodePresence};

const SERVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("services");
const TENANT_SERVICES: TableDefinition<&str, ()> = TableDefinition::new("tenant_services");
const HOSTS: TableDefinition<&str, &str> = TableDefinition::new("hosts");
const PURGES: TableDefinition<&str, &[u8]> = TableDefinition::new("purges");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const DRAINS: TableDefinition<&str, u64> = TableDefinition::new("drains");
const LAST_SEQ: &str = "last_seq";
const LOG_ID: &str = "log_id";

/// A new log's identity: 64 random bits from the system's generator.
pub(super) fn random_log_id() -> Result<u64, StoreError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| backend("log id", "no randomness from the system"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Events kept unless [`EmbeddedStore::with_max_events`] says otherwise (`limits.max_events`).
pub const DEFAULT_MAX_EVENTS: usize = 100_000;

/// The store in one redb file.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    max_events: u64,
    log_id: u64,
    /// Replica leases (this process's own): see `presence`.
    leases: presence::Leases,
    /// Tenants' purge buckets: one process, so memory is the whole fleet's.
    buckets: Arc<PurgeBuckets>,
}

impl EmbeddedStore {
    /// Opens `path`, creating the file and its tables if they do not exist.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| backend(format!("open {}", path.display()), e))?;
        let txn = db.begin_write().map_err(|e| backend("begin", e))?;
        // Opening a table in a write transaction creates it: readers can then assume it exists.
        txn.open_table(SERVICES).map_err(|e| backend("create table", e))?;
        txn.open_table(TENANT_SERVICES).map_err(|e| backend("create table", e))?;
        txn.open_table(HOSTS).map_err(|e| backend("create table", e))?;
        txn.open_table(PURGES).map_err(|e| backend("create table", e))?;
        txn.open_table(EVENTS).map_err(|e| backend("create table", e))?;
        let log_id = {
            let mut meta = txn.open_table(META).map_err(|e| backend("create table", e))?;
            let stored = meta.get(LOG_ID).map_err(|e| backend("read log_id", e))?.map(|v| v.value());
            match stored {
                Some(id) => id,
                None => {
                    let id = random_log_id()?;
                    meta.insert(LOG_ID, id).map_err(|e| backend("write log_id", e))?;
                    id
                }
            }
        };
        txn.open_table(NODES).map_err(|e| backend("create table", e))?;
        txn.open_table(DRAINS).map_err(|e| backend("create table", e))?;
        functions::create_tables(&txn)?;
        domains::create_tables(&txn, Timestamp::from_system(std::time::SystemTime::now()))?;
        acme::create_tables(&txn)?;
        certificates::create_tables(&txn)?;
        txn.commit().map_err(|e| backend("commit", e))?;
        Ok(Self {
            db: Arc::new(db),
            max_events: DEFAULT_MAX_EVENTS as u64,
            log_id,
            leases: presence::Leases::default(),
            buckets: Arc::default(),
        })
    }

    /// Keeps at most `max` events (at least 1): each append drops the oldest beyond it.
    pub fn with_max_events(mut self, max: usize) -> Self {
        self.max_events = u64::try_from(max.max(1)).unwrap_or(u64::MAX);
        self
    }

    /// Runs `op` on the blocking pool with the database.
    fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let db = self.db.clone();
        Box::pin(
            async move { tokio::task::spawn_blocking(move || op(&db)).await.map_err(|e| backend("blocking task", e))? },
        )
    }

    /// Runs `op` in one write transaction on the blocking pool; commits only if it succeeds.
    fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(|e| backend("begin", e))?;
            let value = op(&txn)?;
            txn.commit().map_err(|e| backend("commit", e))?;
            Ok(value)
        })
    }
}

impl Store for EmbeddedStore {
    fn service(&self, id: &ServiceId) -> StoreFuture<'_, Option<ServiceRecord>> {
        let id = id.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
            let found = table.get(id.as_str()).map_err(|e| backend("read service", e))?;
            found.map(|v| decode(id.as_str(), v.value())).transpose()
        })
    }

    fn services(&self, query: ServiceQuery) -> StoreFuture<'_, Vec<ServiceRecord>> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let services = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
            let ids = match &query.tenant {
                None => page_of_ids(&services, "", query.after.as_ref(), query.limit)?,
                Some(tenant) => {
                    let index = txn.open_table(TENANT_SERVICES).map_err(|e| backend("open index", e))?;
                    page_of_ids(&index, &format!("{tenant}/"), query.after.as_ref(), query.limit)?
                }
            };
            let mut records = Vec::with_capacity(ids.len());
            for id in ids {
                let found = services.get(id.as_str()).map_err(|e| backend("read service", e))?;
                let Some(value) = found else {
                    return Err(StoreError::Corrupt { key: id, reason: "indexed but not stored".to_owned() });
                };
                records.push(decode(&id, value.value())?);
            }
            Ok(records)
        })
    }

    fn count_services(&self, tenant: &TenantId) -> StoreFuture<'_, usize> {
        let prefix = format!("{tenant}/");
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let index = txn.open_table(TENANT_SERVICES).map_err(|e| backend("open index", e))?;
            let range = index.range::<&str>(prefix.as_str()..).map_err(|e| backend("count services", e))?;
            let mut count = 0;
            for entry in range {
                let (key, _) = entry.map_err(|e| backend("count services", e))?;
                if !key.value().starts_with(prefix.as_str()) {
                    break;
                }
                count += 1;
            }
            Ok(count)
        })
    }

    fn put_service(&self, put: ServicePut, at: Timestamp) -> StoreFuture<'_, Event> {
        let max = self.max_events;
        self.write(move |txn| {
            let mut services = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
            let current = match services.get(put.id.as_str()).map_err(|e| backend("read service", e))? {
                Some(v) => Some(decode::<ServiceRecord>(put.id.as_str(), v.value())?),
                None => None,
            };
            check_expect(&put.id, put.expect, current.as_ref())?;
            let mut hosts = txn.open_table(HOSTS).map_err(|e| backend("open hosts", e))?;
            for host in &put.hosts {
                let owner =
                    hosts.get(host.as_str()).map_err(|e| backend("read host", e))?.map(|o| o.value().to_owned());
                if let Some(owner) = owner.filter(|o| o != put.id.as_str()) {
                    let owner =
                        ServiceId::parse(&owner).map_err(|reason| StoreError::Corrupt { key: host.clone(), reason })?;
                    return Err(StoreError::HostTaken { host: host.clone(), owner });
                }
            }
            if let Some(current) = &current {
                release_hosts(&mut hosts, current)?;
            }
            for host in &put.hosts {
                hosts.insert(host.as_str(), put.id.as_str()).map_err(|e| backend("claim host", e))?;
            }
            let existing = domains::of_service(txn, &put.id)?;
            let plan = crate::domains::rules::plan(
                &put.id,
                &put.tenant,
                &put.hosts,
                &put.decreed,
                &existing,
                at,
                crate::domains::record::new_token,
            )
            .map_err(|e| backend("token", e))?;
            for host in &plan.removed {
                domains::remove(txn, &put.id, host)?;
            }
            for domain in &plan.domains {
                domains::write(txn, domain)?;
            }
            let seq = next_seq(txn)?;
            let record = ServiceRecord {
                id: put.id,
                tenant: put.tenant,
                version: seq,
                updated_at: at,
                config: put.config,
                function: put.function,
                verified_hosts: Some(plan.verified_hosts),
            };
            services
                .insert(record.id.as_str(), encode(&record)?.as_slice())
                .map_err(|e| backend("write service", e))?;
            let mut index = txn.open_table(TENANT_SERVICES).map_err(|e| backend("open index", e))?;
            index.insert(index_key(&record.tenant, &record.id).as_str(), ()).map_err(|e| backend("write index", e))?;
            append(txn, Event { seq, at, change: Change::ServicePut { service: record } }, max)
        })
    }

    fn delete_service(&self, id: &ServiceId, expect: Seq, at: Timestamp) -> StoreFuture<'_, Event> {
        let (id, max) = (id.clone(), self.max_events);
        self.write(move |txn| {
            let mut services = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
            let current = match services.remove(id.as_str()).map_err(|e| backend("delete service", e))? {
                Some(v) => Some(decode::<ServiceRecord>(id.as_str(), v.value())?),
                None => None,
            };
            check_expect(&id, Expect::Version(expect), current.as_ref())?;
            let Some(current) = current else {
                return Err(StoreError::Conflict { id, expected: Expect::Version(expect), found: None });
            };
            let mut hosts = txn.open_table(HOSTS).map_err(|e| backend("open hosts", e))?;
            release_hosts(&mut hosts, &current)?;
            let mut index = txn.open_table(TENANT_SERVICES).map_err(|e| backend("open index", e))?;
            index.remove(index_key(&current.tenant, &id).as_str()).map_err(|e| backend("write index", e))?;
            // A later service under this id, maybe another tenant's, starts with no functions
            // and no domains.
            functions::forget(txn, &id)?;
            domains::forget(txn, &id)?;
            certificates::forget(txn, &id)?;
            let seq = next_seq(txn)?;
            append(txn, Event { seq, at, change: Change::ServiceDeleted { id, tenant: current.tenant } }, max)
        })
    }

    fn create_purge(&self, purge: NewPurge, at: Timestamp) -> StoreFuture<'_, PurgeRecord> {
        let max = self.max_events;
        self.write(move |txn| {
            let seq = next_seq(txn)?;
            let record = PurgeRecord {
                id: purge.id,
                service: purge.service,
                tenant: purge.tenant,
                seq,
                created_at: at,
                soft: purge.soft,
                targets: purge.targets,
            };
            let mut purges = txn.open_table(PURGES).map_err(|e| backend("open purges", e))?;
            purges.insert(record.id.0.as_str(), encode(&record)?.as_slice()).map_err(|e| backend("write purge", e))?;
            append(txn, Event { seq, at, change: Change::Purge { purge: record.clone() } }, max)?;
            Ok(record)
        })
    }

    fn purge(&self, id: &PurgeId) -> StoreFuture<'_, Option<PurgeRecord>> {
        let id = id.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(PURGES).map_err(|e| backend("open purges", e))?;
            let found = table.get(id.0.as_str()).map_err(|e| backend("read purge", e))?;
            found.map(|v| decode(&id.0, v.value())).transpose()
        })
    }

    fn events(&self, from: Seq, limit: usize) -> StoreFuture<'_, Vec<Event>> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(EVENTS).map_err(|e| backend("open events", e))?;
            let mut events = Vec::new();
            for entry in table.range(from.0..).map_err(|e| backend("read events", e))?.take(limit) {
                let (seq, value) = entry.map_err(|e| backend("read events", e))?;
                events.push(decode(&format!("event {}", seq.value()), value.value())?);
            }
            Ok(events)
        })
    }

    fn log_id(&self) -> u64 {
        self.log_id
    }

    fn last_seq(&self) -> StoreFuture<'_, Seq> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
            let last = meta.get(LAST_SEQ).map_err(|e| backend("read last_seq", e))?;
            Ok(Seq(last.map_or(0, |v| v.value())))
        })
    }

    fn snapshot(&self) -> StoreFuture<'_, Snapshot> {
        self.blocking(|db| {
            // One read transaction: redb's MVCC gives every table as of the same commit.
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
            let seq = Seq(meta.get(LAST_SEQ).map_err(|e| backend("read last_seq", e))?.map_or(0, |v| v.value()));
            let table = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
            let mut services = Vec::new();
            for entry in table.iter().map_err(|e| backend("read services", e))? {
                let (id, value) = entry.map_err(|e| backend("read services", e))?;
                services.push(decode(id.value(), value.value())?);
            }
            let challenges = acme::challenges(
                &txn.open_table(acme::ACME_CHALLENGES).map_err(|e| backend("open acme_challenges", e))?,
            )?;
            let table = txn.open_table(certificates::CERTIFICATES).map_err(|e| backend("open certificates", e))?;
            let certificates = certificates::list(&table, "", usize::MAX)?.into_iter().map(|c| c.record).collect();
            Ok(Snapshot { seq, services, certificates, challenges })
        })
    }

    fn first_seq(&self) -> StoreFuture<'_, Option<Seq>> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(EVENTS).map_err(|e| backend("open events", e))?;
            let first = table.first().map_err(|e| backend("read events", e))?;
            Ok(first.map(|(seq, _)| Seq(seq.value())))
        })
    }

    fn put_node(&self, node: NodeRecord) -> StoreFuture<'_, StoredNode> {
        self.write(move |txn| {
            let mut nodes = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
            let key = node.id.as_str().to_owned();
            let current = match nodes.get(key.as_str()).map_err(|e| backend("read node", e))? {
                Some(v) => Some(decode::<StoredNode>(&key, v.value())?),
                None => None,
            };
            let stored = match current {
                Some(c) => StoredNode { node, ..c },
                None => StoredNode { node, acked: Seq(0), acked_at: None, seen_at: None, drained_at: None, hold: None },
            };
            nodes.insert(key.as_str(), encode(&stored)?.as_slice()).map_err(|e| backend("write node", e))?;
            Ok(stored)
        })
    }

    fn nodes(&self) -> StoreFuture<'_, Vec<StoredNode>> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
            let mut nodes = Vec::new();
            for entry in table.iter().map_err(|e| backend("read nodes", e))? {
                let (id, value) = entry.map_err(|e| backend("read nodes", e))?;
                nodes.push(decode(id.value(), value.value())?);
            }
            Ok(nodes)
        })
    }

    fn record_acks(&self, acks: Vec<NodeAck>) -> StoreFuture<'_, ()> {
        self.write(move |txn| {
            let mut nodes = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
            for ack in acks {
                let key = ack.node.as_str();
                let found = match nodes.get(key).map_err(|e| backend("read node", e))? {
                    Some(v) => Some(decode::<StoredNode>(key, v.value())?),
                    None => None,
                };
                let Some(mut stored) = found.filter(|s| s.acked < ack.seq) else { continue };
                stored.acked = ack.seq;
                stored.acked_at = Some(ack.at);
                nodes.insert(key, encode(&stored)?.as_slice()).map_err(|e| backend("write node", e))?;
            }
            Ok(())
        })
    }

    fn mark_seen(&self, ids: Vec<NodeId>, at: Timestamp) -> StoreFuture<'_, ()> {
        self.write(move |txn| {
            let mut nodes = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
            for id in ids {
                update_node(&mut nodes, &id, |stored| {
                    stored.seen_at = stored.seen_at.max(Some(at));
                })?;
            }
            Ok(())
        })
    }

    fn delete_node(&self, id: &NodeId) -> StoreFuture<'_, bool> {
        let id = id.clone();
        self.write(move |txn| {
            let mut nodes = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
            let removed = nodes.remove(id.as_str()).map_err(|e| backend("remove node", e))?;
            Ok(removed.is_some())
        })
    }

    fn set_node_drain(&self, id: &NodeId, at: Option<Timestamp>) -> StoreFuture<'_, bool> {
        let id = id.clone();
        self.write(move |txn| {
            let mut nodes = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
            update_node(&mut nodes, &id, |stored| stored.drained_at = at)
        })
    }

    fn backup(&self, to: std::path::PathBuf) -> StoreFuture<'_, u64> {
        self.blocking(move |db| backup::copy(db, &to))
    }

    fn drained_pops(&self) -> StoreFuture<'_, Vec<(String, Timestamp)>> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(DRAINS).map_err(|e| backend("open drains", e))?;
            let mut drains = Vec::new();
            for entry in table.iter().map_err(|e| backend("read drains", e))? {
                let (pop, at) = entry.map_err(|e| backend("read drains", e))?;
                drains.push((pop.value().to_owned(), Timestamp(at.value())));
            }
            Ok(drains)
        })
    }

    fn set_drain(&self, pop: &str, at: Option<Timestamp>) -> StoreFuture<'_, ()> {
        let pop = pop.to_owned();
        self.write(move |txn| {
            let mut drains = txn.open_table(DRAINS).map_err(|e| backend("open drains", e))?;
            match at {
                Some(at) => drains.insert(pop.as_str(), at.0).map_err(|e| backend("write drain", e))?,
                None => drains.remove(pop.as_str()).map_err(|e| backend("remove drain", e))?,
            };
            Ok(())
        })
    }

    fn add_function(&self, new: NewFunction, at: Timestamp) -> StoreFuture<'_, Added> {
        self.write(move |txn| functions::add(txn, new, at))
    }

    fn functions(&self, service: &ServiceId) -> StoreFuture<'_, FunctionSet> {
        let id = service.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let sets = txn.open_table(functions::FUNCTION_SETS).map_err(|e| backend("open function_sets", e))?;
            functions::read_set_in(&sets, &id)
        })
    }

    fn function_bytes(&self, sha256: &str) -> StoreFuture<'_, Option<Vec<u8>>> {
        let sha256 = sha256.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let blobs = txn.open_table(functions::FUNCTION_BLOBS).map_err(|e| backend("open function_blobs", e))?;
            let found = blobs.get(sha256.as_str()).map_err(|e| backend("read function", e))?;
            Ok(found.map(|v| v.value().to_vec()))
        })
    }

    fn set_function(
        &self,
        id: &ServiceId,
        expect: Seq,
        change: FunctionChange,
        at: Timestamp,
    ) -> StoreFuture<'_, Event> {
        let (id, max) = (id.clone(), self.max_events);
        self.write(move |txn| functions::set(txn, id, expect, change, at, max))
    }

    fn domains(&self, query: DomainQuery) -> StoreFuture<'_, Vec<DomainRecord>> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            domains::list(&txn, &query)
        })
    }

    fn domain(&self, host: &str) -> StoreFuture<'_, Option<DomainRecord>> {
        let host = host.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            domains::get(&txn, &host)
        })
    }

    fn put_domain(&self, record: DomainRecord, at: Timestamp) -> StoreFuture<'_, Option<Event>> {
        let max = self.max_events;
        self.write(move |txn| domains::put(txn, record, at, max))
    }

    fn renew_replica(&self, replica: &str, now: Timestamp, until: Timestamp) -> StoreFuture<'_, ()> {
        presence::renew(&self.leases, replica, now, until);
        Box::pin(async { Ok(()) })
    }

    fn claim_node(&self, id: &NodeId, hold: Hold, now: Timestamp) -> StoreFuture<'_, Claim> {
        let (id, leases) = (id.clone(), self.leases.clone());
        self.write(move |txn| presence::claim(txn, &leases, &id, hold, now))
    }

    fn release_node(&self, id: &NodeId, replica: &str, generation: u64, at: Timestamp) -> StoreFuture<'_, bool> {
        let (id, replica) = (id.clone(), replica.to_owned());
        self.write(move |txn| presence::release(txn, &id, &replica, generation, at))
    }

    fn presence(&self) -> StoreFuture<'_, Vec<NodePresence>> {
        let leases = self.leases.clone();
        self.blocking(move |db| presence::read(db, &leases))
    }

    fn take_purge(&self, tenant: &TenantId, spec: BucketSpec, now: Timestamp) -> StoreFuture<'_, Result<(), Duration>> {
        let taken = self.buckets.take(tenant, spec, now);
        Box::pin(async move { Ok(taken) })
    }

    fn put_challenge(&self, challenge: AcmeChallenge, at: Timestamp) -> StoreFuture<'_, Event> {
        let max = self.max_events;
        self.write(move |txn| acme::put_challenge(txn, challenge, at, max))
    }

    fn delete_challenge(&self, token: &str, at: Timestamp) -> StoreFuture<'_, Option<Event>> {
        let (token, max) = (token.to_owned(), self.max_events);
        self.write(move |txn| acme::delete_challenge(txn, &token, at, max))
    }

    fn challenges(&self) -> StoreFuture<'_, Vec<AcmeChallenge>> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            acme::challenges(&txn.open_table(acme::ACME_CHALLENGES).map_err(|e| backend("open acme_challenges", e))?)
        })
    }

    fn acme_state(&self, service: &ServiceId) -> StoreFuture<'_, Option<AcmeState>> {
        let service = service.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(acme::ACME_STATES).map_err(|e| backend("open acme_states", e))?;
            let found = table.get(service.as_str()).map_err(|e| backend("read acme state", e))?;
            found.map(|v| decode(service.as_str(), v.value())).transpose()
        })
    }

    fn acme_states(&self) -> StoreFuture<'_, Vec<AcmeState>> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            acme::states(&txn.open_table(acme::ACME_STATES).map_err(|e| backend("open acme_states", e))?)
        })
    }

    fn put_acme_state(&self, state: AcmeState) -> StoreFuture<'_, Option<AcmeState>> {
        self.write(move |txn| acme::put_state(txn, state))
    }

    fn delete_acme_state(&self, service: &ServiceId) -> StoreFuture<'_, ()> {
        let service = service.clone();
        self.write(move |txn| acme::delete_state(txn, &service))
    }

    fn acme_account(&self, directory: &str) -> StoreFuture<'_, Option<String>> {
        let directory = directory.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(acme::ACME_ACCOUNTS).map_err(|e| backend("open acme_accounts", e))?;
            let found = table.get(directory.as_str()).map_err(|e| backend("read acme account", e))?;
            Ok(found.map(|v| v.value().to_owned()))
        })
    }

    fn put_acme_account(&self, directory: &str, credentials: String) -> StoreFuture<'_, String> {
        let directory = directory.to_owned();
        self.write(move |txn| acme::put_account(txn, &directory, credentials))
    }

    fn delete_acme_account(&self, directory: &str) -> StoreFuture<'_, ()> {
        let directory = directory.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(acme::ACME_ACCOUNTS).map_err(|e| backend("open acme_accounts", e))?;
            table.remove(directory.as_str()).map_err(|e| backend("delete acme account", e))?;
            Ok(())
        })
    }

    fn put_certificate(&self, put: StoredCertificate, at: Timestamp) -> StoreFuture<'_, Event> {
        let max = self.max_events;
        self.write(move |txn| certificates::put(txn, put, at, max))
    }

    fn certificate(&self, service: &ServiceId, name: &CertificateName) -> StoreFuture<'_, Option<StoredCertificate>> {
        let (service, name) = (service.clone(), name.clone());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(certificates::CERTIFICATES).map_err(|e| backend("open certificates", e))?;
            certificates::one(&table, &service, &name)
        })
    }

    fn certificates(&self, service: Option<ServiceId>, limit: usize) -> StoreFuture<'_, Vec<StoredCertificate>> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin", e))?;
            let table = txn.open_table(certificates::CERTIFICATES).map_err(|e| backend("open certificates", e))?;
            let prefix = service.map(|s| format!("{s}{}", certificates::SEPARATOR)).unwrap_or_default();
            certificates::list(&table, &prefix, limit)
        })
    }

    fn delete_certificate(
        &self,
        service: &ServiceId,
        name: &CertificateName,
        at: Timestamp,
    ) -> StoreFuture<'_, Option<Event>> {
        let (service, name, max) = (service.clone(), name.clone(), self.max_events);
        self.write(move |txn| certificates::delete(txn, &service, &name, at, max))
    }

    fn reseal_certificate(
        &self,
        service: &ServiceId,
        name: &CertificateName,
        version: Seq,
        key: Sealed,
    ) -> StoreFuture<'_, bool> {
        let (service, name) = (service.clone(), name.clone());
        self.write(move |txn| certificates::reseal(txn, &service, &name, version, key))
    }
}

/// Up to `limit` service ids from a table keyed by `{prefix}{id}` (the services table with an
/// empty prefix, or the tenant index with `"{tenant}/"`), in order, after `after`.
fn page_of_ids<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static str, V>,
    prefix: &str,
    after: Option<&ServiceId>,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    use std::ops::Bound;
    let start = format!("{prefix}{}", after.map_or("", |a| a.as_str()));
    // Without `after`, the start is the bare prefix, which is no key: excluding it skips nothing.
    let bounds = (Bound::Excluded(start.as_str()), Bound::Unbounded);
    let mut ids = Vec::new();
    for entry in table.range::<&str>(bounds).map_err(|e| backend("list services", e))? {
        let (key, _) = entry.map_err(|e| backend("list services", e))?;
        let Some(id) = key.value().strip_prefix(prefix).map(str::to_owned) else { break };
        if ids.len() == limit {
            break;
        }
        ids.push(id);
    }
    Ok(ids)
}

fn check_expect(id: &ServiceId, expect: Expect, current: Option<&ServiceRecord>) -> Result<(), StoreError> {
    let found = current.map(|c| c.version);
    let holds = match expect {
        Expect::Absent => found.is_none(),
        Expect::Version(version) => found == Some(version),
    };
    if holds { Ok(()) } else { Err(StoreError::Conflict { id: id.clone(), expected: expect, found }) }
}

/// Takes the next sequence number, in the caller's transaction.
fn next_seq(txn: &WriteTransaction) -> Result<Seq, StoreError> {
    let mut meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
    let last = meta.get(LAST_SEQ).map_err(|e| backend("read last_seq", e))?.map_or(0, |v| v.value());
    let seq = Seq(last).next();
    meta.insert(LAST_SEQ, seq.0).map_err(|e| backend("write last_seq", e))?;
    Ok(seq)
}

/// Appends `event`, then drops the oldest events beyond `max` (one per append once the log is
/// full; more only after `max` was lowered).
fn append(txn: &WriteTransaction, event: Event, max: u64) -> Result<Event, StoreError> {
    let mut events = txn.open_table(EVENTS).map_err(|e| backend("open events", e))?;
    events.insert(event.seq.0, encode(&event)?.as_slice()).map_err(|e| backend("append event", e))?;
    let held = events.len().map_err(|e| backend("count events", e))?;
    for _ in max..held {
        events.pop_first().map_err(|e| backend("compact events", e))?;
    }
    Ok(event)
}

/// Frees the host patterns `service` holds (those still held by it: never another's).
fn release_hosts(hosts: &mut redb::Table<'_, &str, &str>, service: &ServiceRecord) -> Result<(), StoreError> {
    for host in held_hosts(service) {
        let owned = hosts
            .get(host.as_str())
            .map_err(|e| backend("read host", e))?
            .is_some_and(|o| o.value() == service.id.as_str());
        if owned {
            hosts.remove(host.as_str()).map_err(|e| backend("release host", e))?;
        }
    }
    Ok(())
}

fn index_key(tenant: &TenantId, id: &ServiceId) -> String {
    format!("{tenant}/{id}")
}

/// Rewrites one node's record with `change`; `false` (nothing written) when it is unknown.
fn update_node(
    nodes: &mut redb::Table<'_, &str, &[u8]>,
    id: &NodeId,
    change: impl FnOnce(&mut StoredNode),
) -> Result<bool, StoreError> {
    let key = id.as_str();
    let found = match nodes.get(key).map_err(|e| backend("read node", e))? {
        Some(v) => Some(decode::<StoredNode>(key, v.value())?),
        None => None,
    };
    let Some(mut stored) = found else { return Ok(false) };
    change(&mut stored);
    nodes.insert(key, encode(&stored)?.as_slice()).map_err(|e| backend("write node", e))?;
    Ok(true)
}

fn encode(value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| backend("encode", e))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_owned(), reason: e.to_string() })
}

fn backend(what: impl std::fmt::Display, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: {error}"))
}

mod acme;
mod backup;
mod certificates;
mod domains;
mod functions;
mod presence;

#[cfg(test)]
mod tests;
