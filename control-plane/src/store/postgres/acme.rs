//! The PostgreSQL store's ACME tables (migration 5, see `schema`): challenge answers (state and
//! event in one transaction), each service's [`AcmeState`] written by compare-and-set on its
//! `revision` column (of two replicas only one moves an order on), and accounts per directory.

use deadpool_postgres::{GenericClient, Transaction};
use outpost_config::{AcmeChallenge, Change, Event, ServiceId, Timestamp};

use super::log::{append, next_seq};
use super::{decode_column, encode, execute, int, query, query_opt};
use crate::store::{AcmeState, StoreError};

pub(super) async fn put_challenge(
    txn: &Transaction<'_>,
    challenge: AcmeChallenge,
    at: Timestamp,
    max: u64,
) -> Result<Event, StoreError> {
    let seq = next_seq(txn).await?;
    execute(
        txn,
        "INSERT INTO acme_challenges (token, record) VALUES ($1, $2::text::jsonb)
         ON CONFLICT (token) DO UPDATE SET record = EXCLUDED.record",
        &[&challenge.token, &encode(&challenge)?],
    )
    .await?;
    append(txn, Event { seq, at, change: Change::AcmeChallengePut { challenge } }, max).await
}

pub(super) async fn delete_challenge(
    txn: &Transaction<'_>,
    token: &str,
    at: Timestamp,
    max: u64,
) -> Result<Option<Event>, StoreError> {
    // The counter first (see `log::next_seq`); with nothing to delete the caller rolls back,
    // and the number with it.
    let seq = next_seq(txn).await?;
    let rows = query(txn, "DELETE FROM acme_challenges WHERE token = $1 RETURNING record::text", &[&token]).await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let challenge: AcmeChallenge = decode_column(row, token)?;
    let change = Change::AcmeChallengeDeleted { token: token.to_owned(), service: challenge.service };
    append(txn, Event { seq, at, change }, max).await.map(Some)
}

pub(super) async fn challenges(client: &impl GenericClient) -> Result<Vec<AcmeChallenge>, StoreError> {
    let rows = query(client, "SELECT record::text, token FROM acme_challenges ORDER BY token", &[]).await?;
    rows.iter().map(|row| decode_column(row, &row.try_get::<_, String>(1).unwrap_or_default())).collect()
}

pub(super) async fn state(client: &impl GenericClient, service: &ServiceId) -> Result<Option<AcmeState>, StoreError> {
    let row =
        query_opt(client, "SELECT record::text FROM acme_states WHERE service = $1", &[&service.as_str()]).await?;
    row.map(|row| decode_column(&row, service.as_str())).transpose()
}

pub(super) async fn states(client: &impl GenericClient) -> Result<Vec<AcmeState>, StoreError> {
    let rows = query(client, "SELECT record::text, service FROM acme_states ORDER BY service", &[]).await?;
    rows.iter().map(|row| decode_column(row, &row.try_get::<_, String>(1).unwrap_or_default())).collect()
}

/// Compare-and-set on `revision`: an insert when the state is new (a concurrent insert loses
/// on the primary key and reports nothing written), an update guarded by the old revision.
pub(super) async fn put_state(
    client: &impl GenericClient,
    mut state: AcmeState,
) -> Result<Option<AcmeState>, StoreError> {
    let expect = int(state.revision)?;
    state.revision += 1;
    let (service, revision, record) = (state.service.as_str().to_owned(), int(state.revision)?, encode(&state)?);
    let written = if expect == 0 {
        execute(
            client,
            "INSERT INTO acme_states (service, revision, record) VALUES ($1, $2, $3::text::jsonb)
             ON CONFLICT (service) DO NOTHING",
            &[&service, &revision, &record],
        )
        .await?
    } else {
        execute(
            client,
            "UPDATE acme_states SET revision = $2, record = $3::text::jsonb WHERE service = $1 AND revision = $4",
            &[&service, &revision, &record, &expect],
        )
        .await?
    };
    Ok((written == 1).then_some(state))
}

pub(super) async fn delete_state(client: &impl GenericClient, service: &ServiceId) -> Result<(), StoreError> {
    execute(client, "DELETE FROM acme_states WHERE service = $1", &[&service.as_str()]).await?;
    Ok(())
}

pub(super) async fn account(client: &impl GenericClient, directory: &str) -> Result<Option<String>, StoreError> {
    let row = query_opt(client, "SELECT credentials FROM acme_accounts WHERE directory = $1", &[&directory]).await?;
    row.map(|row| row.try_get::<_, String>(0).map_err(super::pg_error("read acme account"))).transpose()
}

pub(super) async fn put_account(
    client: &impl GenericClient,
    directory: &str,
    credentials: String,
) -> Result<String, StoreError> {
    execute(
        client,
        "INSERT INTO acme_accounts (directory, credentials) VALUES ($1, $2) ON CONFLICT (directory) DO NOTHING",
        &[&directory, &credentials],
    )
    .await?;
    account(client, directory).await?.ok_or_else(|| StoreError::Corrupt {
        key: format!("acme account {directory}"),
        reason: "written but not read back".to_owned(),
    })
}
