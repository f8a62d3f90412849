//! Node registrations with their highest ack, and drained PoPs.

use deadpool_postgres::GenericClient;
use outpost_config::{NodeId, NodeRecord, Seq, Timestamp};
use tokio_postgres::Row;

use super::{decode_column, encode, execute, int, pg_error, query, uint};
use crate::store::{NodeAck, StoreError, StoredNode};

/// Creates or replaces the registration; what the node acknowledged, when it was last seen and
/// its drain stay.
pub(super) async fn put(client: &impl GenericClient, node: NodeRecord) -> Result<StoredNode, StoreError> {
    let rows = query(
        client,
        "INSERT INTO nodes (id, record) VALUES ($1, $2::text::jsonb)
         ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record
         RETURNING acked, acked_at, seen_at, drained_at, hold::text",
        &[&node.id.as_str(), &encode(&node)?],
    )
    .await?;
    let row = rows.first().ok_or_else(|| StoreError::Backend("postgres: upsert node returned no row".to_owned()))?;
    let stored = stored(node, row, 0)?;
    super::presence::notify(client).await?;
    Ok(stored)
}

pub(super) async fn all(client: &impl GenericClient) -> Result<Vec<StoredNode>, StoreError> {
    let rows = query(
        client,
        "SELECT record::text, acked, acked_at, seen_at, drained_at, hold::text, id FROM nodes ORDER BY id",
        &[],
    )
    .await?;
    let mut nodes = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(6).map_err(pg_error("read node"))?;
        nodes.push(stored(decode_column(&row, &id)?, &row, 1)?);
    }
    Ok(nodes)
}

/// A node with the five columns `acked, acked_at, seen_at, drained_at, hold::text` read from
/// `row`, starting at column `from`.
fn stored(node: NodeRecord, row: &Row, from: usize) -> Result<StoredNode, StoreError> {
    let hold: Option<String> = row.try_get(from + 4).map_err(pg_error("read hold"))?;
    let hold = hold
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| StoreError::Corrupt { key: format!("nodes/{}/hold", node.id), reason: e.to_string() })?;
    Ok(StoredNode {
        acked: Seq(uint(row, from)?),
        acked_at: time(row, from + 1)?,
        seen_at: time(row, from + 2)?,
        drained_at: time(row, from + 3)?,
        hold,
        node,
    })
}

fn time(row: &Row, column: usize) -> Result<Option<Timestamp>, StoreError> {
    let at: Option<i64> = row.try_get(column).map_err(pg_error("read node"))?;
    Ok(at.and_then(|t| u64::try_from(t).ok()).map(Timestamp))
}

/// One statement: `seen_at` moves up only (`GREATEST` ignores a NULL); unknown ids match no row.
pub(super) async fn mark_seen(
    client: &impl GenericClient,
    nodes: Vec<NodeId>,
    at: Timestamp,
) -> Result<(), StoreError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = nodes.iter().map(NodeId::as_str).collect();
    execute(
        client,
        "UPDATE nodes SET seen_at = GREATEST(seen_at, $2) WHERE id = ANY($1::text[])",
        &[&ids, &int(at.0)?],
    )
    .await?;
    Ok(())
}

/// The registration and its acks go with the row.
pub(super) async fn delete(client: &impl GenericClient, id: &NodeId) -> Result<bool, StoreError> {
    let deleted = execute(client, "DELETE FROM nodes WHERE id = $1", &[&id.as_str()]).await? > 0;
    super::presence::notify(client).await?;
    Ok(deleted)
}

pub(super) async fn set_node_drain(
    client: &impl GenericClient,
    id: &NodeId,
    at: Option<Timestamp>,
) -> Result<bool, StoreError> {
    let at = at.map(|t| int(t.0)).transpose()?;
    let found = execute(client, "UPDATE nodes SET drained_at = $2 WHERE id = $1", &[&id.as_str(), &at]).await? > 0;
    super::presence::notify(client).await?;
    Ok(found)
}

/// One statement for the whole batch: per node the highest ack of the batch, written only where
/// it is above the stored one, so acks never go back however replicas' batches interleave
/// (the row's `acked` only moves up, as `GREATEST(acked, $seq)` would).
pub(super) async fn record_acks(client: &impl GenericClient, acks: Vec<NodeAck>) -> Result<(), StoreError> {
    if acks.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(acks.len());
    let mut seqs = Vec::with_capacity(acks.len());
    let mut ats = Vec::with_capacity(acks.len());
    for ack in &acks {
        ids.push(ack.node.as_str());
        seqs.push(int(ack.seq.0)?);
        ats.push(int(ack.at.0)?);
    }
    execute(
        client,
        "UPDATE nodes SET acked = a.seq, acked_at = a.at
         FROM (SELECT DISTINCT ON (id) id, seq, at
               FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS t (id, seq, at)
               ORDER BY id, seq DESC) AS a
         WHERE nodes.id = a.id AND nodes.acked < a.seq",
        &[&ids, &seqs, &ats],
    )
    .await?;
    // Purges waiting on other replicas (`wait=true`) learn of these acks at once.
    super::presence::notify(client).await?;
    Ok(())
}

pub(super) async fn drained(client: &impl GenericClient) -> Result<Vec<(String, Timestamp)>, StoreError> {
    let rows = query(client, "SELECT pop, drained_at FROM drains ORDER BY pop", &[]).await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<_, String>(0).map_err(pg_error("read drain"))?, Timestamp(uint(row, 1)?))))
        .collect()
}

pub(super) async fn set_drain(client: &impl GenericClient, pop: &str, at: Option<Timestamp>) -> Result<(), StoreError> {
    match at {
        Some(at) => {
            execute(
                client,
                "INSERT INTO drains (pop, drained_at) VALUES ($1, $2)
                 ON CONFLICT (pop) DO UPDATE SET drained_at = EXCLUDED.drained_at",
                &[&pop, &int(at.0)?],
            )
            .await?
        }
        None => execute(client, "DELETE FROM drains WHERE pop = $1", &[&pop]).await?,
    };
    // Every replica's DNS follows the drain at once.
    super::presence::notify(client).await?;
    Ok(())
}
