//! The embedded store's presence: holds in the node records (one fsync per stream opened or
//! closed, as for acks), replica leases in memory. One process uses the file (redb locks it),
//! so its leases need not outlive it: after a restart every old hold's replica is unknown, and
//! the hold lapses at once, as a dead replica's would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use outpost_config::{NodeId, Timestamp};
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use super::{NODES, backend, decode, update_node};
use crate::store::presence::{Claim, Hold, NodePresence, may_take};
use crate::store::{StoreError, StoredNode};

/// Replica id → until when its lease runs.
pub(super) type Leases = Arc<Mutex<HashMap<String, Timestamp>>>;

fn until(leases: &Leases, replica: &str) -> Option<Timestamp> {
    leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(replica).copied()
}

pub(super) fn renew(leases: &Leases, replica: &str, now: Timestamp, until: Timestamp) {
    let mut leases = leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    leases.insert(replica.to_owned(), until);
    // Leases over for an hour name replicas long gone.
    leases.retain(|_, until| until.0.saturating_add(3_600_000) > now.0);
}

pub(super) fn claim(
    txn: &WriteTransaction,
    leases: &Leases,
    id: &NodeId,
    hold: Hold,
    now: Timestamp,
) -> Result<Claim, StoreError> {
    let mut nodes = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
    let current = match nodes.get(id.as_str()).map_err(|e| backend("read node", e))? {
        Some(v) => decode::<StoredNode>(id.as_str(), v.value())?,
        None => return Ok(Claim::Unknown),
    };
    if let Some(held) = &current.hold {
        let lease = until(leases, &held.replica);
        if !may_take(Some(held), lease, &hold.replica, now) {
            let until = lease.unwrap_or(now);
            return Ok(Claim::Held { hold: held.clone(), until });
        }
    }
    update_node(&mut nodes, id, |stored| {
        stored.hold = Some(hold);
        stored.seen_at = stored.seen_at.max(Some(now));
    })?;
    Ok(Claim::Claimed)
}

pub(super) fn release(
    txn: &WriteTransaction,
    id: &NodeId,
    replica: &str,
    generation: u64,
    at: Timestamp,
) -> Result<bool, StoreError> {
    let mut nodes = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
    let mut released = false;
    update_node(&mut nodes, id, |stored| {
        if stored.hold.as_ref().is_some_and(|h| h.replica == replica && h.generation == generation) {
            stored.hold = None;
            stored.seen_at = stored.seen_at.max(Some(at));
            released = true;
        }
    })?;
    Ok(released)
}

pub(super) fn read(db: &Database, leases: &Leases) -> Result<Vec<NodePresence>, StoreError> {
    let txn = db.begin_read().map_err(|e| backend("begin", e))?;
    let table = txn.open_table(NODES).map_err(|e| backend("open nodes", e))?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(|e| backend("read nodes", e))? {
        let (id, value) = entry.map_err(|e| backend("read nodes", e))?;
        let stored: StoredNode = decode(id.value(), value.value())?;
        let held_until = stored.hold.as_ref().and_then(|h| until(leases, &h.replica));
        out.push(NodePresence {
            id: stored.node.id,
            registered_at: stored.node.registered_at,
            acked: stored.acked,
            acked_at: stored.acked_at,
            seen_at: stored.seen_at,
            drained_at: stored.drained_at,
            hold: stored.hold,
            held_until,
        });
    }
    Ok(out)
}
