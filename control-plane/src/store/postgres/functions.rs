//! Uploaded functions: each service's [`FunctionSet`] (a JSON row) and the content-addressed
//! bytes with their reference counts. Rules live in the pure [`FunctionSet`]; this reads it,
//! applies one change and writes it back in the caller's transaction, the service's row locked
//! so two uploads to one service queue instead of losing one.

use std::collections::BTreeMap;

use deadpool_postgres::{GenericClient, Transaction};
use outpost_config::{Change, Event, Seq, ServiceId, Timestamp};

use super::log::{append, next_seq};
use super::services::{check_expect, lock, write};
use super::{decode_column, encode, execute, query_opt, uint};
use crate::store::{Added, Expect, FunctionChange, FunctionSet, FunctionVersion, NewFunction, StoreError};

pub(super) async fn read_set(client: &impl GenericClient, id: &ServiceId) -> Result<FunctionSet, StoreError> {
    let row = query_opt(client, "SELECT record::text FROM function_sets WHERE service = $1", &[&id.as_str()]).await?;
    Ok(row.map(|row| decode_column(&row, id.as_str())).transpose()?.unwrap_or_default())
}

async fn write_set(txn: &Transaction<'_>, id: &ServiceId, set: &FunctionSet) -> Result<(), StoreError> {
    execute(
        txn,
        "INSERT INTO function_sets (service, record) VALUES ($1, $2::text::jsonb)
         ON CONFLICT (service) DO UPDATE SET record = EXCLUDED.record",
        &[&id.as_str(), &encode(set)?],
    )
    .await?;
    Ok(())
}

pub(super) async fn add(txn: &Transaction<'_>, new: NewFunction, at: Timestamp) -> Result<Added, StoreError> {
    let service = lock(txn, &new.service).await?;
    if service.as_ref().is_none_or(|s| s.tenant != new.tenant) {
        // Deleted (or given to another tenant) since the handler looked it up.
        return Err(StoreError::Conflict { id: new.service, expected: Expect::Absent, found: None });
    }
    let mut set = read_set(txn, &new.service).await?;
    let size = u64::try_from(new.bytes.len()).unwrap_or(u64::MAX);
    let added = set.add(&new.sha256, size, at, new.max_versions);
    let mut deltas = BTreeMap::new();
    if added.created {
        execute(
            txn,
            // Counted below with the other changes: a new blob starts at 0 references.
            "INSERT INTO function_blobs (sha256, bytes, refs) VALUES ($1, $2, 0) ON CONFLICT (sha256) DO NOTHING",
            &[&new.sha256, &new.bytes.as_ref()],
        )
        .await?;
        *deltas.entry(new.sha256.clone()).or_insert(0) += 1;
    }
    for dropped in &added.dropped {
        *deltas.entry(dropped.sha256.clone()).or_insert(0) -= 1;
    }
    change_refs(txn, deltas).await?;
    write_set(txn, &new.service, &set).await?;
    Ok(added)
}

/// Adds each delta to its blob's count (in hash order, so two transactions never wait on each
/// other's blobs in opposite orders) and deletes the blobs no version refers to any more.
async fn change_refs(txn: &Transaction<'_>, deltas: BTreeMap<String, i64>) -> Result<(), StoreError> {
    for (sha256, delta) in deltas.into_iter().filter(|(_, d)| *d != 0) {
        let row = query_opt(
            txn,
            "UPDATE function_blobs SET refs = refs + $2 WHERE sha256 = $1 RETURNING refs",
            &[&sha256, &delta],
        )
        .await?;
        let left = match row {
            Some(row) => i64::try_from(uint(&row, 0)?).unwrap_or(i64::MAX),
            None => 0,
        };
        if left <= 0 {
            execute(txn, "DELETE FROM function_blobs WHERE sha256 = $1", &[&sha256]).await?;
        }
    }
    Ok(())
}

pub(super) async fn set(
    txn: &Transaction<'_>,
    id: ServiceId,
    expect: Seq,
    change: FunctionChange,
    at: Timestamp,
    max: u64,
) -> Result<Event, StoreError> {
    let seq = next_seq(txn).await?;
    let current = lock(txn, &id).await?;
    check_expect(&id, Expect::Version(expect), current.as_ref())?;
    let Some(mut record) = current else {
        return Err(StoreError::Conflict { id, expected: Expect::Version(expect), found: None });
    };
    let mut set = read_set(txn, &id).await?;
    let applied = match change {
        FunctionChange::Activate(version) => set.activate(version),
        FunctionChange::RollBack => set.roll_back(),
    };
    let active = set.active().map(FunctionVersion::reference);
    if !applied || active.is_none() {
        // The handler checked; the set changed since (a concurrent rollback or upload).
        return Err(StoreError::Conflict { id, expected: Expect::Version(expect), found: Some(record.version) });
    }
    write_set(txn, &id, &set).await?;
    record.version = seq;
    record.updated_at = at;
    record.function = active;
    write(txn, &record).await?;
    append(txn, Event { seq, at, change: Change::ServicePut { service: record } }, max).await
}

/// Deletes a deleted service's versions, releasing their bytes.
pub(super) async fn forget(txn: &Transaction<'_>, id: &ServiceId) -> Result<(), StoreError> {
    let set = read_set(txn, id).await?;
    execute(txn, "DELETE FROM function_sets WHERE service = $1", &[&id.as_str()]).await?;
    let mut deltas = BTreeMap::new();
    for version in set.versions {
        *deltas.entry(version.sha256).or_insert(0) -= 1;
    }
    change_refs(txn, deltas).await
}
