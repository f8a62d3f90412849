//! The embedded store's ACME tables (see `store::acme`), each step inside the caller's
//! transaction:
//! - `acme_challenges`: token → [`AcmeChallenge`] (what snapshots carry)
//! - `acme_states`: service id → [`AcmeState`]
//! - `acme_accounts`: directory URL → the account credentials (sealed by the caller)

use outpost_config::{AcmeChallenge, Change, Event, ServiceId, Timestamp};
use redb::{ReadOnlyTable, ReadableTable, TableDefinition, WriteTransaction};

use super::{append, backend, decode, encode, next_seq};
use crate::store::{AcmeState, StoreError};

pub(super) const ACME_CHALLENGES: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_challenges");
pub(super) const ACME_STATES: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_states");
pub(super) const ACME_ACCOUNTS: TableDefinition<&str, &str> = TableDefinition::new("acme_accounts");

/// Creates the tables (in `open`'s first transaction).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ACME_CHALLENGES).map_err(|e| backend("create table", e))?;
    txn.open_table(ACME_STATES).map_err(|e| backend("create table", e))?;
    txn.open_table(ACME_ACCOUNTS).map_err(|e| backend("create table", e))?;
    Ok(())
}

pub(super) fn put_challenge(
    txn: &WriteTransaction,
    challenge: AcmeChallenge,
    at: Timestamp,
    max: u64,
) -> Result<Event, StoreError> {
    let mut table = txn.open_table(ACME_CHALLENGES).map_err(|e| backend("open acme_challenges", e))?;
    table
        .insert(challenge.token.as_str(), encode(&challenge)?.as_slice())
        .map_err(|e| backend("write challenge", e))?;
    let seq = next_seq(txn)?;
    append(txn, Event { seq, at, change: Change::AcmeChallengePut { challenge } }, max)
}

pub(super) fn delete_challenge(
    txn: &WriteTransaction,
    token: &str,
    at: Timestamp,
    max: u64,
) -> Result<Option<Event>, StoreError> {
    let mut table = txn.open_table(ACME_CHALLENGES).map_err(|e| backend("open acme_challenges", e))?;
    let Some(removed) = table.remove(token).map_err(|e| backend("delete challenge", e))? else { return Ok(None) };
    let challenge: AcmeChallenge = decode(token, removed.value())?;
    drop(removed);
    let seq = next_seq(txn)?;
    let change = Change::AcmeChallengeDeleted { token: token.to_owned(), service: challenge.service };
    append(txn, Event { seq, at, change }, max).map(Some)
}

/// Every challenge in `table`, in token order (the snapshot's read transaction passes its own).
pub(super) fn challenges(table: &ReadOnlyTable<&str, &[u8]>) -> Result<Vec<AcmeChallenge>, StoreError> {
    let mut all = Vec::new();
    for entry in table.iter().map_err(|e| backend("read challenges", e))? {
        let (token, value) = entry.map_err(|e| backend("read challenges", e))?;
        all.push(decode(token.value(), value.value())?);
    }
    Ok(all)
}

pub(super) fn states(table: &ReadOnlyTable<&str, &[u8]>) -> Result<Vec<AcmeState>, StoreError> {
    let mut all = Vec::new();
    for entry in table.iter().map_err(|e| backend("read acme states", e))? {
        let (id, value) = entry.map_err(|e| backend("read acme states", e))?;
        all.push(decode(id.value(), value.value())?);
    }
    Ok(all)
}

pub(super) fn put_state(txn: &WriteTransaction, mut state: AcmeState) -> Result<Option<AcmeState>, StoreError> {
    let mut table = txn.open_table(ACME_STATES).map_err(|e| backend("open acme_states", e))?;
    let key = state.service.as_str().to_owned();
    let stored = match table.get(key.as_str()).map_err(|e| backend("read acme state", e))? {
        Some(v) => decode::<AcmeState>(&key, v.value())?.revision,
        None => 0,
    };
    if stored != state.revision {
        return Ok(None);
    }
    state.revision += 1;
    table.insert(key.as_str(), encode(&state)?.as_slice()).map_err(|e| backend("write acme state", e))?;
    Ok(Some(state))
}

pub(super) fn delete_state(txn: &WriteTransaction, service: &ServiceId) -> Result<(), StoreError> {
    let mut table = txn.open_table(ACME_STATES).map_err(|e| backend("open acme_states", e))?;
    table.remove(service.as_str()).map_err(|e| backend("delete acme state", e))?;
    Ok(())
}

pub(super) fn put_account(txn: &WriteTransaction, directory: &str, credentials: String) -> Result<String, StoreError> {
    let mut table = txn.open_table(ACME_ACCOUNTS).map_err(|e| backend("open acme_accounts", e))?;
    if let Some(kept) = table.get(directory).map_err(|e| backend("read acme account", e))? {
        return Ok(kept.value().to_owned());
    }
    table.insert(directory, credentials.as_str()).map_err(|e| backend("write acme account", e))?;
    Ok(credentials)
}
