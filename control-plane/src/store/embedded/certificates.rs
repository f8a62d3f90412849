//! The embedded store's certificates: table `certificates`, `"{service} {name}"` →
//! [`StoredCertificate`] (JSON; the key sealed). Neither part can contain a space, which sorts
//! before every character they can hold, so keys sort by (service, name) as PostgreSQL's
//! composite key does, and a service's certificates are the keys under `"{service} "`.

use outpost_config::{CertificateName, Change, Event, Seq, ServiceId, ServiceRecord, Timestamp};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{SERVICES, append, backend, decode, encode, next_seq};
use crate::secrets::Sealed;
use crate::store::{Expect, StoreError, StoredCertificate};

/// Between service and name in a key.
pub(super) const SEPARATOR: char = ' ';

pub(super) const CERTIFICATES: TableDefinition<&str, &[u8]> = TableDefinition::new("certificates");

fn key(service: &ServiceId, name: &CertificateName) -> String {
    format!("{service}{SEPARATOR}{name}")
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CERTIFICATES).map_err(|e| backend("create table", e))?;
    Ok(())
}

pub(super) fn put(
    txn: &WriteTransaction,
    mut put: StoredCertificate,
    at: Timestamp,
    max_events: u64,
) -> Result<Event, StoreError> {
    let service = {
        let services = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
        let found = services.get(put.record.service.as_str()).map_err(|e| backend("read service", e))?;
        found.map(|v| decode::<ServiceRecord>(put.record.service.as_str(), v.value())).transpose()?
    };
    if service.as_ref().is_none_or(|s| s.tenant != put.record.tenant) {
        // Deleted (or given to another tenant) since the caller looked it up.
        return Err(StoreError::Conflict { id: put.record.service, expected: Expect::Absent, found: None });
    }
    let seq = next_seq(txn)?;
    put.record.version = seq;
    put.record.updated_at = at;
    let mut table = txn.open_table(CERTIFICATES).map_err(|e| backend("open certificates", e))?;
    let k = key(&put.record.service, &put.record.name);
    table.insert(k.as_str(), encode(&put)?.as_slice()).map_err(|e| backend("write certificate", e))?;
    append(txn, Event { seq, at, change: Change::CertificatePut { certificate: put.record } }, max_events)
}

pub(super) fn delete(
    txn: &WriteTransaction,
    service: &ServiceId,
    name: &CertificateName,
    at: Timestamp,
    max_events: u64,
) -> Result<Option<Event>, StoreError> {
    let mut table = txn.open_table(CERTIFICATES).map_err(|e| backend("open certificates", e))?;
    let k = key(service, name);
    let removed = table.remove(k.as_str()).map_err(|e| backend("delete certificate", e))?;
    let Some(removed) = removed.map(|v| decode::<StoredCertificate>(&k, v.value())).transpose()? else {
        return Ok(None);
    };
    drop(table);
    let seq = next_seq(txn)?;
    let change =
        Change::CertificateDeleted { service: service.clone(), tenant: removed.record.tenant, name: name.clone() };
    append(txn, Event { seq, at, change }, max_events).map(Some)
}

pub(super) fn reseal(
    txn: &WriteTransaction,
    service: &ServiceId,
    name: &CertificateName,
    version: Seq,
    sealed: Sealed,
) -> Result<bool, StoreError> {
    let mut table = txn.open_table(CERTIFICATES).map_err(|e| backend("open certificates", e))?;
    let k = key(service, name);
    let found = table.get(k.as_str()).map_err(|e| backend("read certificate", e))?;
    let found = found.map(|v| decode::<StoredCertificate>(&k, v.value())).transpose()?;
    let Some(mut stored) = found.filter(|s| s.record.version == version) else { return Ok(false) };
    stored.key = sealed;
    table.insert(k.as_str(), encode(&stored)?.as_slice()).map_err(|e| backend("write certificate", e))?;
    Ok(true)
}

/// Deletes every certificate of `service` (with the service, in its transaction).
pub(super) fn forget(txn: &WriteTransaction, service: &ServiceId) -> Result<(), StoreError> {
    let mut table = txn.open_table(CERTIFICATES).map_err(|e| backend("open certificates", e))?;
    let prefix = format!("{service}{SEPARATOR}");
    let keys = keys_under(&table, &prefix, usize::MAX)?;
    for k in keys {
        table.remove(k.as_str()).map_err(|e| backend("delete certificate", e))?;
    }
    Ok(())
}

/// Keys under `prefix` in order, at most `limit`.
pub(super) fn keys_under(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    for entry in table.range::<&str>(prefix..).map_err(|e| backend("list certificates", e))? {
        let (k, _) = entry.map_err(|e| backend("list certificates", e))?;
        if !k.value().starts_with(prefix) || keys.len() == limit {
            break;
        }
        keys.push(k.value().to_owned());
    }
    Ok(keys)
}

/// Certificates under `prefix` (`""` for all), in order, at most `limit`.
pub(super) fn list(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    limit: usize,
) -> Result<Vec<StoredCertificate>, StoreError> {
    let mut out = Vec::new();
    for entry in table.range::<&str>(prefix..).map_err(|e| backend("list certificates", e))? {
        let (k, v) = entry.map_err(|e| backend("list certificates", e))?;
        if !k.value().starts_with(prefix) || out.len() == limit {
            break;
        }
        out.push(decode(k.value(), v.value())?);
    }
    Ok(out)
}

pub(super) fn one(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    service: &ServiceId,
    name: &CertificateName,
) -> Result<Option<StoredCertificate>, StoreError> {
    let k = key(service, name);
    let found = table.get(k.as_str()).map_err(|e| backend("read certificate", e))?;
    found.map(|v| decode(&k, v.value())).transpose()
}
