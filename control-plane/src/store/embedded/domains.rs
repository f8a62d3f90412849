//! The embedded store's domain tables, each step inside the caller's transaction:
//! - `domains`: host pattern → [`DomainRecord`]
//! - `service_domains`: `"{service}/{host}"` → () (a service's domains in host order; a
//!   service id cannot contain `/`)
//!
//! A file written before domains existed gets, once (`meta` key `"domains"`), a domain
//! verified by the operator's word for each host its services hold: the upgrade keeps serving
//! what was served (those records have no `verified_hosts`, meaning every host).

use outpost_config::{Change, Event, ServiceId, ServiceRecord, Timestamp};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::{META, SERVICES, append, backend, decode, encode, next_seq};
use crate::domains::{DomainRecord, record::new_token};
use crate::store::{DomainQuery, StoreError, held_hosts, reserve};

pub(super) const DOMAINS: TableDefinition<&str, &[u8]> = TableDefinition::new("domains");
pub(super) const SERVICE_DOMAINS: TableDefinition<&str, ()> = TableDefinition::new("service_domains");
const MIGRATED: &str = "domains";

/// Creates the tables and grandfathers the hosts of a file from before domains (in `open`'s
/// first transaction).
pub(super) fn create_tables(txn: &WriteTransaction, at: Timestamp) -> Result<(), StoreError> {
    txn.open_table(DOMAINS).map_err(|e| backend("create table", e))?;
    txn.open_table(SERVICE_DOMAINS).map_err(|e| backend("create table", e))?;
    let mut meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
    if meta.get(MIGRATED).map_err(|e| backend("read meta", e))?.is_some() {
        return Ok(());
    }
    meta.insert(MIGRATED, 1).map_err(|e| backend("write meta", e))?;
    let services = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
    let mut grandfathered = Vec::new();
    for entry in services.iter().map_err(|e| backend("read services", e))? {
        let (id, value) = entry.map_err(|e| backend("read services", e))?;
        let record: ServiceRecord = decode(id.value(), value.value())?;
        for host in held_hosts(&record) {
            let token = new_token().map_err(|e| backend("token", e))?;
            grandfathered.push(DomainRecord::decreed(host, record.id.clone(), record.tenant.clone(), token, at));
        }
    }
    for domain in &grandfathered {
        write(txn, domain)?;
    }
    if !grandfathered.is_empty() {
        tracing::info!(domains = grandfathered.len(), "store: hosts of existing services kept as verified (operator)");
    }
    Ok(())
}

fn index_key(service: &ServiceId, host: &str) -> String {
    format!("{service}/{host}")
}

/// Writes (creates or replaces) one domain and its index entry.
pub(super) fn write(txn: &WriteTransaction, domain: &DomainRecord) -> Result<(), StoreError> {
    let mut domains = txn.open_table(DOMAINS).map_err(|e| backend("open domains", e))?;
    let previous = match domains.get(domain.host.as_str()).map_err(|e| backend("read domain", e))? {
        Some(v) => Some(decode::<DomainRecord>(&domain.host, v.value())?),
        None => None,
    };
    domains.insert(domain.host.as_str(), encode(domain)?.as_slice()).map_err(|e| backend("write domain", e))?;
    let mut index = txn.open_table(SERVICE_DOMAINS).map_err(|e| backend("open service_domains", e))?;
    if let Some(previous) = previous.filter(|p| p.service != domain.service) {
        index.remove(index_key(&previous.service, &previous.host).as_str()).map_err(|e| backend("write index", e))?;
    }
    index.insert(index_key(&domain.service, &domain.host).as_str(), ()).map_err(|e| backend("write index", e))?;
    Ok(())
}

/// Removes one domain of `service`.
pub(super) fn remove(txn: &WriteTransaction, service: &ServiceId, host: &str) -> Result<(), StoreError> {
    let mut domains = txn.open_table(DOMAINS).map_err(|e| backend("open domains", e))?;
    let owned = match domains.get(host).map_err(|e| backend("read domain", e))? {
        Some(v) => decode::<DomainRecord>(host, v.value())?.service == *service,
        None => false,
    };
    if owned {
        domains.remove(host).map_err(|e| backend("remove domain", e))?;
    }
    let mut index = txn.open_table(SERVICE_DOMAINS).map_err(|e| backend("open service_domains", e))?;
    index.remove(index_key(service, host).as_str()).map_err(|e| backend("write index", e))?;
    Ok(())
}

/// A service's domains, in host order, inside a write transaction.
pub(super) fn of_service(txn: &WriteTransaction, service: &ServiceId) -> Result<Vec<DomainRecord>, StoreError> {
    let index = txn.open_table(SERVICE_DOMAINS).map_err(|e| backend("open service_domains", e))?;
    let domains = txn.open_table(DOMAINS).map_err(|e| backend("open domains", e))?;
    let prefix = format!("{service}/");
    let mut found = Vec::new();
    for entry in index.range::<&str>(prefix.as_str()..).map_err(|e| backend("read index", e))? {
        let (key, _) = entry.map_err(|e| backend("read index", e))?;
        let Some(host) = key.value().strip_prefix(prefix.as_str()).map(str::to_owned) else { break };
        if let Some(v) = domains.get(host.as_str()).map_err(|e| backend("read domain", e))? {
            found.push(decode::<DomainRecord>(&host, v.value())?);
        }
    }
    Ok(found)
}

/// Removes every domain of a deleted service.
pub(super) fn forget(txn: &WriteTransaction, service: &ServiceId) -> Result<(), StoreError> {
    for domain in of_service(txn, service)? {
        remove(txn, service, &domain.host)?;
    }
    Ok(())
}

/// [`Store::domains`](crate::store::Store::domains) in a read transaction.
pub(super) fn list(txn: &ReadTransaction, query: &DomainQuery) -> Result<Vec<DomainRecord>, StoreError> {
    let domains = txn.open_table(DOMAINS).map_err(|e| backend("open domains", e))?;
    let mut found = Vec::new();
    match &query.service {
        Some(service) => {
            let index = txn.open_table(SERVICE_DOMAINS).map_err(|e| backend("open service_domains", e))?;
            let prefix = format!("{service}/");
            for entry in index.range::<&str>(prefix.as_str()..).map_err(|e| backend("read index", e))? {
                let (key, _) = entry.map_err(|e| backend("read index", e))?;
                let Some(host) = key.value().strip_prefix(prefix.as_str()).map(str::to_owned) else { break };
                if let Some(v) = domains.get(host.as_str()).map_err(|e| backend("read domain", e))? {
                    let record = decode::<DomainRecord>(&host, v.value())?;
                    if query.selects(&record) && found.len() < query.limit {
                        found.push(record);
                    }
                }
            }
        }
        None => {
            for entry in domains.iter().map_err(|e| backend("read domains", e))? {
                let (host, value) = entry.map_err(|e| backend("read domains", e))?;
                let record = decode::<DomainRecord>(host.value(), value.value())?;
                if query.selects(&record) {
                    if found.len() == query.limit {
                        break;
                    }
                    found.push(record);
                }
            }
        }
    }
    Ok(found)
}

/// One domain, in a read transaction.
pub(super) fn get(txn: &ReadTransaction, host: &str) -> Result<Option<DomainRecord>, StoreError> {
    let domains = txn.open_table(DOMAINS).map_err(|e| backend("open domains", e))?;
    let found = domains.get(host).map_err(|e| backend("read domain", e))?;
    found.map(|v| decode(host, v.value())).transpose()
}

/// [`Store::put_domain`](crate::store::Store::put_domain) inside `txn`.
pub(super) fn put(
    txn: &WriteTransaction,
    record: DomainRecord,
    at: Timestamp,
    max: u64,
) -> Result<Option<Event>, StoreError> {
    let gone = || StoreError::DomainGone { host: record.host.clone() };
    let current = {
        let domains = txn.open_table(DOMAINS).map_err(|e| backend("open domains", e))?;
        let found = domains.get(record.host.as_str()).map_err(|e| backend("read domain", e))?;
        found.map(|v| decode::<DomainRecord>(&record.host, v.value())).transpose()?
    };
    if current.is_none_or(|c| c.service != record.service || c.token != record.token) {
        return Err(gone());
    }
    write(txn, &record)?;
    let domains = of_service(txn, &record.service)?;
    let mut services = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
    let service = match services.get(record.service.as_str()).map_err(|e| backend("read service", e))? {
        Some(v) => decode::<ServiceRecord>(record.service.as_str(), v.value())?,
        None => return Err(gone()),
    };
    let Some(served) = reserve(&service, &domains) else { return Ok(None) };
    let seq = next_seq(txn)?;
    let service = ServiceRecord { version: seq, updated_at: at, verified_hosts: Some(served), ..service };
    services.insert(service.id.as_str(), encode(&service)?.as_slice()).map_err(|e| backend("write service", e))?;
    append(txn, Event { seq, at, change: Change::ServicePut { service } }, max).map(Some)
}
