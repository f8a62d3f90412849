//! The embedded store's function tables, each step inside the caller's write transaction:
//! - `function_sets`: service id → [`FunctionSet`] (versions and activation history)
//! - `function_blobs`: SHA-256 → the `.wasm` bytes, stored once however many versions share them
//! - `function_refs`: SHA-256 → how many services' versions refer to the bytes; at 0 the
//!   bytes are deleted

use outpost_config::{Change, Event, ServiceId, ServiceRecord, Timestamp};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{SERVICES, append, backend, check_expect, decode, encode, next_seq};
use crate::store::{Added, Expect, FunctionChange, FunctionSet, FunctionVersion, NewFunction, StoreError};

pub(super) const FUNCTION_SETS: TableDefinition<&str, &[u8]> = TableDefinition::new("function_sets");
pub(super) const FUNCTION_BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("function_blobs");
pub(super) const FUNCTION_REFS: TableDefinition<&str, u64> = TableDefinition::new("function_refs");

/// Creates the tables (in `open`'s first transaction).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(FUNCTION_SETS).map_err(|e| backend("create table", e))?;
    txn.open_table(FUNCTION_BLOBS).map_err(|e| backend("create table", e))?;
    txn.open_table(FUNCTION_REFS).map_err(|e| backend("create table", e))?;
    Ok(())
}

/// [`Store::add_function`](crate::store::Store::add_function) inside `txn`.
pub(super) fn add(txn: &WriteTransaction, new: NewFunction, at: Timestamp) -> Result<Added, StoreError> {
    let service = read_service(txn, &new.service)?;
    if service.as_ref().is_none_or(|s| s.tenant != new.tenant) {
        // Deleted (or given to another tenant) since the handler looked it up.
        return Err(StoreError::Conflict { id: new.service, expected: Expect::Absent, found: None });
    }
    let mut set = read_set(txn, &new.service)?;
    let size = u64::try_from(new.bytes.len()).unwrap_or(u64::MAX);
    let added = set.add(&new.sha256, size, at, new.max_versions);
    if added.created {
        let mut blobs = txn.open_table(FUNCTION_BLOBS).map_err(|e| backend("open function_blobs", e))?;
        let held = blobs.get(new.sha256.as_str()).map_err(|e| backend("read function", e))?.is_some();
        if !held {
            blobs.insert(new.sha256.as_str(), new.bytes.as_ref()).map_err(|e| backend("write function", e))?;
        }
        add_ref(txn, &new.sha256, 1)?;
    }
    for dropped in &added.dropped {
        add_ref(txn, &dropped.sha256, -1)?;
    }
    write_set(txn, &new.service, &set)?;
    Ok(added)
}

/// [`Store::set_function`](crate::store::Store::set_function) inside `txn`.
pub(super) fn set(
    txn: &WriteTransaction,
    id: ServiceId,
    expect: outpost_config::Seq,
    change: FunctionChange,
    at: Timestamp,
    max_events: u64,
) -> Result<Event, StoreError> {
    let current = read_service(txn, &id)?;
    check_expect(&id, Expect::Version(expect), current.as_ref())?;
    let Some(mut record) = current else {
        return Err(StoreError::Conflict { id, expected: Expect::Version(expect), found: None });
    };
    let mut set = read_set(txn, &id)?;
    let applied = match change {
        FunctionChange::Activate(version) => set.activate(version),
        FunctionChange::RollBack => set.roll_back(),
    };
    let active = set.active().map(FunctionVersion::reference);
    if !applied || active.is_none() {
        // The handler checked; the set changed since (a concurrent rollback or upload).
        return Err(StoreError::Conflict { id, expected: Expect::Version(expect), found: Some(record.version) });
    }
    write_set(txn, &id, &set)?;
    let seq = next_seq(txn)?;
    record.version = seq;
    record.updated_at = at;
    record.function = active;
    let mut services = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
    services.insert(id.as_str(), encode(&record)?.as_slice()).map_err(|e| backend("write service", e))?;
    append(txn, Event { seq, at, change: Change::ServicePut { service: record } }, max_events)
}

/// Deletes a deleted service's versions, releasing their bytes.
pub(super) fn forget(txn: &WriteTransaction, id: &ServiceId) -> Result<(), StoreError> {
    let mut sets = txn.open_table(FUNCTION_SETS).map_err(|e| backend("open function_sets", e))?;
    let removed = sets.remove(id.as_str()).map_err(|e| backend("delete function_set", e))?;
    let set: Option<FunctionSet> = removed.map(|v| decode(id.as_str(), v.value())).transpose()?;
    drop(sets);
    for version in set.map(|s| s.versions).unwrap_or_default() {
        add_ref(txn, &version.sha256, -1)?;
    }
    Ok(())
}

pub(super) fn read_set_in<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    id: &ServiceId,
) -> Result<FunctionSet, StoreError> {
    let found = table.get(id.as_str()).map_err(|e| backend("read function_set", e))?;
    Ok(found.map(|v| decode(id.as_str(), v.value())).transpose()?.unwrap_or_default())
}

fn read_set(txn: &WriteTransaction, id: &ServiceId) -> Result<FunctionSet, StoreError> {
    let sets = txn.open_table(FUNCTION_SETS).map_err(|e| backend("open function_sets", e))?;
    read_set_in(&sets, id)
}

fn write_set(txn: &WriteTransaction, id: &ServiceId, set: &FunctionSet) -> Result<(), StoreError> {
    let mut sets = txn.open_table(FUNCTION_SETS).map_err(|e| backend("open function_sets", e))?;
    sets.insert(id.as_str(), encode(set)?.as_slice()).map_err(|e| backend("write function_set", e))?;
    Ok(())
}

fn read_service(txn: &WriteTransaction, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
    let services = txn.open_table(SERVICES).map_err(|e| backend("open services", e))?;
    let found = services.get(id.as_str()).map_err(|e| backend("read service", e))?;
    found.map(|v| decode(id.as_str(), v.value())).transpose()
}

/// Changes the reference count of `sha256` by `delta`; at 0 its bytes are deleted.
fn add_ref(txn: &WriteTransaction, sha256: &str, delta: i64) -> Result<(), StoreError> {
    let mut refs = txn.open_table(FUNCTION_REFS).map_err(|e| backend("open function_refs", e))?;
    let count = refs.get(sha256).map_err(|e| backend("read function_ref", e))?.map_or(0, |v| v.value());
    let count = count.saturating_add_signed(delta);
    if count == 0 {
        refs.remove(sha256).map_err(|e| backend("delete function_ref", e))?;
        let mut blobs = txn.open_table(FUNCTION_BLOBS).map_err(|e| backend("open function_blobs", e))?;
        blobs.remove(sha256).map_err(|e| backend("delete function", e))?;
    } else {
        refs.insert(sha256, count).map_err(|e| backend("write function_ref", e))?;
    }
    Ok(())
}
