//! Presence shared by replicas on PostgreSQL: `nodes.hold` (JSON), the `replicas` leases and
//! `purge_buckets`. Every change here, and every ack batch and drain, runs
//! `pg_notify('outpost_presence', '')`, which wakes the other replicas' presence sync (see
//! `crate::sync`); their periodic read covers a lost notification.

use deadpool_postgres::{GenericClient, Transaction};
use outpost_config::{NodeId, Seq, TenantId, Timestamp};

use super::{encode, execute, int, pg_error, query, query_opt, uint};
use crate::ratelimit::{BucketSpec, TokenBucket};
use crate::store::StoreError;
use crate::store::presence::{Claim, Hold, NodePresence, may_take};

/// The channel presence changes are announced on (no payload: the sync reads them all).
pub const CHANNEL: &str = "outpost_presence";

/// Announces a presence change; delivered when the surrounding transaction commits (at once
/// outside one).
pub(super) async fn notify(client: &impl GenericClient) -> Result<(), StoreError> {
    execute(client, "SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
    Ok(())
}

pub(super) async fn renew(
    client: &impl GenericClient,
    replica: &str,
    now: Timestamp,
    until: Timestamp,
) -> Result<(), StoreError> {
    execute(
        client,
        "INSERT INTO replicas (id, alive_until) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET alive_until = EXCLUDED.alive_until",
        &[&replica, &int(until.0)?],
    )
    .await?;
    // Leases over for an hour name replicas long gone.
    execute(client, "DELETE FROM replicas WHERE alive_until < $1", &[&int(now.0.saturating_sub(3_600_000))?]).await?;
    if until <= now {
        // A replica stopping: its nodes may move at once; tell the others.
        notify(client).await?;
    }
    Ok(())
}

/// The whole claim in `txn`: the node's row locked (`FOR UPDATE`), so two replicas claiming
/// one node at once queue and the second sees the first's hold.
pub(super) async fn claim(txn: &Transaction<'_>, id: &NodeId, hold: Hold, now: Timestamp) -> Result<Claim, StoreError> {
    let row = query_opt(
        txn,
        "SELECT n.hold::text, r.alive_until FROM nodes n
         LEFT JOIN replicas r ON r.id = n.hold->>'replica'
         WHERE n.id = $1 FOR UPDATE OF n",
        &[&id.as_str()],
    )
    .await?;
    let Some(row) = row else { return Ok(Claim::Unknown) };
    let current = decode_hold(&row, 0, id)?;
    let until = time(&row, 1)?;
    if let Some(held) = current.filter(|held| !may_take(Some(held), until, &hold.replica, now)) {
        return Ok(Claim::Held { hold: held, until: until.unwrap_or(now) });
    }
    execute(
        txn,
        "UPDATE nodes SET hold = $2::text::jsonb, seen_at = GREATEST(seen_at, $3) WHERE id = $1",
        &[&id.as_str(), &encode(&hold)?, &int(now.0)?],
    )
    .await?;
    notify(txn).await?;
    Ok(Claim::Claimed)
}

pub(super) async fn release(
    client: &impl GenericClient,
    id: &NodeId,
    replica: &str,
    generation: u64,
    at: Timestamp,
) -> Result<bool, StoreError> {
    let cleared = execute(
        client,
        "UPDATE nodes SET hold = NULL, seen_at = GREATEST(seen_at, $4)
         WHERE id = $1 AND hold->>'replica' = $2 AND (hold->>'generation')::bigint = $3",
        &[&id.as_str(), &replica, &int(generation)?, &int(at.0)?],
    )
    .await?;
    if cleared > 0 {
        notify(client).await?;
    }
    Ok(cleared > 0)
}

pub(super) async fn read(client: &impl GenericClient) -> Result<Vec<NodePresence>, StoreError> {
    let rows = query(
        client,
        "SELECT n.id, n.record->>'registered_at', n.acked, n.acked_at, n.seen_at, n.drained_at, n.hold::text,
                r.alive_until
         FROM nodes n LEFT JOIN replicas r ON r.id = n.hold->>'replica'
         ORDER BY n.id",
        &[],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0).map_err(pg_error("read node id"))?;
        let id = NodeId::parse(&id).map_err(|reason| StoreError::Corrupt { key: id.clone(), reason })?;
        let registered: Option<String> = row.try_get(1).map_err(pg_error("read registered_at"))?;
        let registered_at = registered.as_deref().and_then(|t| Timestamp::parse(t).ok()).unwrap_or(Timestamp(0));
        out.push(NodePresence {
            registered_at,
            acked: Seq(uint(&row, 2)?),
            acked_at: time(&row, 3)?,
            seen_at: time(&row, 4)?,
            drained_at: time(&row, 5)?,
            hold: decode_hold(&row, 6, &id)?,
            held_until: time(&row, 7)?,
            id,
        });
    }
    Ok(out)
}

/// The bucket's row locked, refilled and taken from with the same pure core as the embedded
/// store ([`TokenBucket`]), all in `txn`: replicas taking from one tenant's bucket queue on its
/// row, so the bound holds across the fleet.
pub(super) async fn take_purge(
    txn: &Transaction<'_>,
    tenant: &TenantId,
    spec: BucketSpec,
    now: Timestamp,
) -> Result<Result<(), std::time::Duration>, StoreError> {
    execute(
        txn,
        "INSERT INTO purge_buckets (tenant, tokens, updated_at) VALUES ($1, $2, $3) ON CONFLICT (tenant) DO NOTHING",
        &[&tenant.as_str(), &f64::from(spec.burst.max(1)), &int(now.0)?],
    )
    .await?;
    let row = query_opt(
        txn,
        "SELECT tokens, updated_at FROM purge_buckets WHERE tenant = $1 FOR UPDATE",
        &[&tenant.as_str()],
    )
    .await?
    .ok_or_else(|| StoreError::Backend("postgres: purge bucket vanished".to_owned()))?;
    let tokens: f64 = row.try_get(0).map_err(pg_error("read purge bucket"))?;
    let mut bucket = TokenBucket::stored(spec, tokens, Timestamp(uint(&row, 1)?));
    let taken = bucket.take(now);
    execute(
        txn,
        "UPDATE purge_buckets SET tokens = $2, updated_at = $3 WHERE tenant = $1",
        &[&tenant.as_str(), &bucket.tokens, &int(bucket.updated.0)?],
    )
    .await?;
    Ok(taken)
}

fn decode_hold(row: &tokio_postgres::Row, column: usize, id: &NodeId) -> Result<Option<Hold>, StoreError> {
    let text: Option<String> = row.try_get(column).map_err(pg_error("read hold"))?;
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt { key: format!("nodes/{id}/hold"), reason: e.to_string() })
    })
    .transpose()
}

fn time(row: &tokio_postgres::Row, column: usize) -> Result<Option<Timestamp>, StoreError> {
    let at: Option<i64> = row.try_get(column).map_err(pg_error("read time"))?;
    Ok(at.and_then(|t| u64::try_from(t).ok()).map(Timestamp))
}
