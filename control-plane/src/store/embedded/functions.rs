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

#[cfg(test)]
mod tests {
    use outpost_config::{Seq, TenantId};
    use serde_json::json;

    use super::super::EmbeddedStore;
    use super::*;
    use crate::store::{ServicePut, Store};

    const AT: Timestamp = Timestamp(1_795_445_600_000);

    fn id(name: &str) -> ServiceId {
        ServiceId::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"))
    }

    async fn service(store: &EmbeddedStore, name: &str) -> Seq {
        let put = ServicePut {
            id: id(name),
            tenant: acme(),
            config: json!({"name": name, "hosts": [format!("{name}.example")], "origin": "http://o"}),
            hosts: vec![format!("{name}.example")],
            expect: Expect::Absent,
            function: None,
        };
        store.put_service(put, AT).await.unwrap_or_else(|e| panic!("{e}")).seq
    }

    fn upload(name: &str, bytes: &'static [u8], max_versions: usize) -> NewFunction {
        let sha256 = crate::api::sha256_hex(bytes);
        NewFunction { service: id(name), tenant: acme(), sha256, bytes: bytes.into(), max_versions }
    }

    #[tokio::test]
    async fn versions_activate_roll_back_and_release_their_bytes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = EmbeddedStore::open(&dir.path().join("cp.redb")).unwrap_or_else(|e| panic!("{e}"));
        let version = service(&store, "shop").await;
        service(&store, "blog").await;
        let one = store.add_function(upload("shop", b"one", 2), AT).await.unwrap_or_else(|e| panic!("{e}"));
        let two = store.add_function(upload("shop", b"two", 2), AT).await.unwrap_or_else(|e| panic!("{e}"));
        // Another service uploading the same bytes shares them.
        store.add_function(upload("blog", b"one", 2), AT).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((one.version.version, two.version.version), (1, 2));

        let event = store.set_function(&id("shop"), version, FunctionChange::Activate(1), AT).await;
        let event = event.unwrap_or_else(|e| panic!("{e}"));
        let Change::ServicePut { service } = &event.change else { panic!("{event:?}") };
        assert_eq!(service.function, Some(one.version.reference()));
        assert_eq!(service.version, event.seq);
        let stale = store.set_function(&id("shop"), version, FunctionChange::Activate(2), AT).await;
        assert!(matches!(stale, Err(StoreError::Conflict { .. })), "the version moved on");
        let event = store.set_function(&id("shop"), event.seq, FunctionChange::Activate(2), AT).await;
        let event = event.unwrap_or_else(|e| panic!("{e}"));
        let event = store.set_function(&id("shop"), event.seq, FunctionChange::RollBack, AT).await;
        let event = event.unwrap_or_else(|e| panic!("{e}"));
        let Change::ServicePut { service } = &event.change else { panic!("{event:?}") };
        assert_eq!(service.function.as_ref().map(|f| f.version), Some(1));

        // A third upload beyond max_versions = 2 drops version 2 (inactive): its bytes go.
        store.add_function(upload("shop", b"three", 2), AT).await.unwrap_or_else(|e| panic!("{e}"));
        let gone = store.function_bytes(&two.version.sha256).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(gone, None);
        // Deleting shop keeps "one": blog still refers to it.
        store.delete_service(&id("shop"), event.seq, AT).await.unwrap_or_else(|e| panic!("{e}"));
        let kept = store.function_bytes(&one.version.sha256).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.as_deref(), Some(&b"one"[..]));
        let set = store.functions(&id("shop")).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(set.versions.is_empty(), "a re-created shop starts with no functions");
        let orphan = store.add_function(upload("shop", b"four", 2), AT).await;
        assert!(matches!(orphan, Err(StoreError::Conflict { .. })), "no upload to a deleted service");
    }
}
