//! Keeping this replica in step with the others through the store: the presence sync and the
//! replica lease.
//!
//! - **Presence sync**: read every node's presence ([`Store::presence`]) and the PoP drains,
//!   merge them into the registry ([`Nodes::merge`]) and the PoPs, rebuild the DNS table when
//!   something changed. It runs every `nodes.sync_interval`, and at once when another replica
//!   announces a change (PostgreSQL's `outpost_presence` notification: an ack batch, a hold,
//!   a drain), so `wait=true` on one replica sees acks taken by another within a round trip.
//!   Wakes that arrive during a sync collapse into one more sync.
//! - **Lease**: renew this replica's lease every third of `nodes.replica_lease`, so its holds
//!   on node streams stand; [`end_lease`] at shutdown lets its nodes move at once.
//! - **The store away**: a failed sync changes nothing; the registry judges liveness as of the
//!   last sync that succeeded (the last known state), and DNS keeps answering from it. The
//!   first failure and the recovery are logged.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use outpost_config::Timestamp;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::nodes::Nodes;
use crate::pops::Pops;
use crate::store::{Store, StoreError};

fn wall_now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// Before serving: the lease (so this replica's first holds stand for the others) and one
/// sync (so the node list and DNS start from the fleet's state). A failure is logged; the
/// loops retry.
pub async fn first(nodes: &Nodes, pops: &Pops) {
    let lease = nodes.settings().replica_lease;
    if let Err(error) = renew(nodes.store().as_ref(), nodes.replica(), wall_now(), lease).await {
        tracing::warn!(%error, "replica lease not taken yet; retrying");
    }
    if let Err(error) = sync_once(nodes, pops).await {
        nodes.sync_failed();
        tracing::warn!(%error, "presence sync: the store does not answer yet; retrying");
    }
}

/// Starts the presence sync (woken by `wake` besides its interval) and the lease renewal.
pub fn spawn(nodes: Arc<Nodes>, pops: Arc<Pops>, wake: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(sync_loop(&nodes, &pops, &wake), renew_loop(&nodes));
    })
}

async fn sync_loop(nodes: &Nodes, pops: &Pops, wake: &Notify) {
    let mut ticks = tokio::time::interval(nodes.settings().sync_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = wake.notified() => {}
        }
        if let Err(error) = sync_once(nodes, pops).await
            && nodes.sync_failed()
        {
            tracing::warn!(%error, "presence sync: the store does not answer; serving the last known state (DNS included)");
        }
    }
}

/// One sync: read, merge, rebuild when something changed.
pub async fn sync_once(nodes: &Nodes, pops: &Pops) -> Result<(), StoreError> {
    let store = nodes.store().clone();
    let was_away = nodes.is_away();
    let read_at = wall_now();
    let presence = store.presence().await?;
    let drains = store.drained_pops().await?;
    let reloaded = {
        let merged = nodes.merge(presence, read_at);
        for (id, generation) in merged.release {
            nodes.release(id, generation);
        }
        if merged.reload {
            nodes.reload(store.nodes().await?);
        }
        merged.changed || merged.reload
    };
    if was_away {
        tracing::info!("presence sync: the store answers again");
    }
    if pops.set_drains(drains) | reloaded {
        pops.rebuild();
    }
    Ok(())
}

async fn renew_loop(nodes: &Nodes) {
    let lease = nodes.settings().replica_lease;
    let mut ticks = tokio::time::interval(lease / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        let now = wall_now();
        match renew(nodes.store().as_ref(), nodes.replica(), now, lease).await {
            Ok(()) if std::mem::take(&mut failing) => tracing::info!("replica lease renewed again"),
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "replica lease not renewed; other replicas may take this one's nodes");
            }
            Err(_) => {}
        }
    }
}

async fn renew(store: &dyn Store, replica: &str, now: Timestamp, lease: Duration) -> Result<(), StoreError> {
    let lease = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    store.renew_replica(replica, now, Timestamp(now.0.saturating_add(lease))).await
}

/// Ends this replica's lease (it is stopping): its holds lapse at once, so its nodes are taken
/// by the replicas they move to without waiting for the lease to run out. Bounded by `within`.
pub async fn end_lease(nodes: &Nodes, within: Duration) {
    let now = wall_now();
    let ended = tokio::time::timeout(within, nodes.store().renew_replica(nodes.replica(), now, now)).await;
    match ended {
        Ok(Ok(())) => tracing::debug!("replica lease ended"),
        Ok(Err(error)) => tracing::warn!(%error, "replica lease not ended; its nodes move once it runs out"),
        Err(_) => tracing::warn!("replica lease not ended in time; its nodes move once it runs out"),
    }
}
