//! The event log: its identity, the sequence counter, appends (with compaction and the
//! notification), reads, snapshots, and purges (the one write that is only an event).

use deadpool_postgres::{GenericClient, Transaction};
use outpost_config::{Change, Event, PurgeRecord, Seq, Timestamp};
use tokio_postgres::IsolationLevel;

use super::{decode_column, encode, execute, int, pg_error, query, query_opt, uint};
use crate::store::{NewPurge, Snapshot, StoreError};

/// The channel `pg_notify` wakes other replicas on; the payload is the new `seq`.
pub(super) const CHANNEL: &str = "outpost_log";

/// The log's identity: created with a random value by the first replica on a new database
/// (`ON CONFLICT DO NOTHING`: of replicas starting together, one row wins and all read it).
pub(super) async fn identity(client: &impl GenericClient) -> Result<u64, StoreError> {
    let candidate = i64::from_le_bytes(crate::store::embedded::random_log_id()?.to_le_bytes());
    execute(
        client,
        "INSERT INTO outpost_log (id, log_id, last_seq) VALUES (1, $1, 0) ON CONFLICT (id) DO NOTHING",
        &[&candidate],
    )
    .await?;
    let row = query_opt(client, "SELECT log_id FROM outpost_log WHERE id = 1", &[]).await?;
    let row = row.ok_or_else(|| StoreError::Corrupt { key: "outpost_log".to_owned(), reason: "no row".to_owned() })?;
    let id: i64 = row.try_get(0).map_err(pg_error("read log_id"))?;
    Ok(u64::from_le_bytes(id.to_le_bytes()))
}

/// Takes the next sequence number in `txn`. Call it first in a write: its row lock queues the
/// writers, so everything the transaction checks after it is the latest committed state, and
/// transactions commit in the order of their numbers (see the module docs).
pub(super) async fn next_seq(txn: &Transaction<'_>) -> Result<Seq, StoreError> {
    let rows =
        query(txn, "UPDATE outpost_log SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq", &[]).await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt { key: "outpost_log".to_owned(), reason: "no row".to_owned() })?;
    Ok(Seq(uint(row, 0)?))
}

/// Appends `event`, drops the events beyond `max` (numbers have no gaps, so those are the
/// ones at or below `seq - max`) and notifies the other replicas, all in `txn`.
pub(super) async fn append(txn: &Transaction<'_>, event: Event, max: u64) -> Result<Event, StoreError> {
    let seq = int(event.seq.0)?;
    let record = encode(&event)?;
    execute(txn, "INSERT INTO events (seq, record) VALUES ($1, $2::text::jsonb)", &[&seq, &record]).await?;
    let oldest_kept = int(event.seq.0.saturating_sub(max))?;
    execute(txn, "DELETE FROM events WHERE seq <= $1", &[&oldest_kept]).await?;
    // Delivered at commit, and only then (PostgreSQL: NOTIFY "is not delivered until and
    // unless the transaction is committed").
    execute(txn, "SELECT pg_notify($1, $2)", &[&CHANNEL, &event.seq.0.to_string()]).await?;
    Ok(event)
}

pub(super) async fn create_purge(
    txn: &Transaction<'_>,
    purge: NewPurge,
    at: Timestamp,
    max: u64,
) -> Result<PurgeRecord, StoreError> {
    let seq = next_seq(txn).await?;
    let record = PurgeRecord {
        id: purge.id,
        service: purge.service,
        tenant: purge.tenant,
        seq,
        created_at: at,
        soft: purge.soft,
        targets: purge.targets,
    };
    execute(
        txn,
        "INSERT INTO purges (id, seq, record) VALUES ($1, $2, $3::text::jsonb)",
        &[&record.id.0, &int(seq.0)?, &encode(&record)?],
    )
    .await?;
    append(txn, Event { seq, at, change: Change::Purge { purge: record.clone() } }, max).await?;
    Ok(record)
}

pub(super) async fn events(client: &impl GenericClient, from: Seq, limit: usize) -> Result<Vec<Event>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(
        client,
        "SELECT record::text, seq FROM events WHERE seq >= $1 ORDER BY seq LIMIT $2",
        &[&i64::try_from(from.0).unwrap_or(i64::MAX), &limit],
    )
    .await?;
    rows.iter().map(|row| decode_column(row, &format!("event {}", uint(row, 1).unwrap_or(0)))).collect()
}

pub(super) async fn last_seq(client: &impl GenericClient) -> Result<Seq, StoreError> {
    let row = query_opt(client, "SELECT last_seq FROM outpost_log WHERE id = 1", &[]).await?;
    row.map_or(Ok(Seq(0)), |row| Ok(Seq(uint(&row, 0)?)))
}

pub(super) async fn first_seq(client: &impl GenericClient) -> Result<Option<Seq>, StoreError> {
    let rows = query(client, "SELECT min(seq) FROM events", &[]).await?;
    let first: Option<i64> = match rows.first() {
        Some(row) => row.try_get(0).map_err(pg_error("read first seq"))?,
        None => None,
    };
    Ok(first.and_then(|n| u64::try_from(n).ok()).map(Seq))
}

/// The services and `last_seq` read in one REPEATABLE READ transaction: both as of one
/// instant, so the events after `seq` are exactly what the snapshot lacks.
pub(super) async fn snapshot(client: &mut deadpool_postgres::Client) -> Result<Snapshot, StoreError> {
    let txn = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg_error("begin snapshot"))?;
    let seq = last_seq(&txn).await?;
    let rows = query(&txn, "SELECT record::text, id FROM services ORDER BY id", &[]).await?;
    let services = rows
        .iter()
        .map(|row| decode_column(row, &row.try_get::<_, String>(1).unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;
    let certificates = super::certificates::list(&txn, None, usize::MAX).await?;
    let certificates = certificates.into_iter().map(|c| c.record).collect();
    let challenges = super::acme::challenges(&txn).await?;
    txn.commit().await.map_err(pg_error("end snapshot"))?;
    Ok(Snapshot { seq, services, certificates, challenges })
}
