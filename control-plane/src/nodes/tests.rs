use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_config::{NodeId, NodeRecord, PurgeId, PurgeRecord, PurgeTarget, Seq, ServiceId, TenantId, Timestamp};

use super::{AckOutcome, Nodes, Refusal};
use crate::settings::NodeSettings;
use crate::store::{EmbeddedStore, Store};

fn id(name: &str) -> NodeId {
    NodeId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

async fn nodes(dir: &tempfile::TempDir, names: &[&str]) -> (Arc<dyn Store>, Arc<Nodes>) {
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&dir.path().join("cp.redb")).unwrap_or_else(|e| panic!("{e}")));
    for name in names {
        let registration = serde_json::from_value(
            serde_json::json!({"pop": "fra", "role": "edge", "addresses": {"admin": "127.0.0.1:9"}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let record = NodeRecord { id: id(name), registration, registered_at: Timestamp(0) };
        store.put_node(record).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let nodes = Nodes::load(store.clone(), NodeSettings::default()).await.unwrap_or_else(|e| panic!("{e}"));
    (store, nodes)
}

fn purge(seq: u64) -> PurgeRecord {
    PurgeRecord {
        id: PurgeId("p".to_owned()),
        service: ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}")),
        tenant: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
        seq: Seq(seq),
        created_at: Timestamp(1000),
        soft: false,
        targets: vec![PurgeTarget::All],
    }
}

fn connect(nodes: &Nodes, name: &str, peer: &str) -> super::Connection {
    let peer = peer.parse().ok();
    nodes.connect(&id(name), peer).unwrap_or_else(|e| panic!("connect {name}: {e:?}"))
}

#[tokio::test]
async fn a_held_id_is_refused_to_a_second_stream_until_the_first_ends() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_store, nodes) = nodes(&dir, &["edge-1"]).await;
    assert_eq!(nodes.connect(&id("ghost"), None).err(), Some(Refusal::Unknown));
    let mut first = connect(&nodes, "edge-1", "127.0.0.1:4001");
    let holder = "127.0.0.1:4001".parse().ok();
    // A second claimant is refused with the holder's address, and the holder is poked (asked
    // for a heartbeat now, so a dead connection is found out).
    let poked = first.poke.clone();
    let claim = nodes.connect(&id("edge-1"), "127.0.0.1:4002".parse().ok());
    assert_eq!(claim.err(), Some(Refusal::InUse { holder, replica: None }));
    assert_eq!(nodes.holder(&id("edge-1")), Some(holder));
    tokio::time::timeout(Duration::from_secs(5), poked.notified()).await.unwrap_or_else(|_| panic!("not poked"));
    assert!(first.stop.try_recv().is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Empty));
    assert_eq!(nodes.list(Instant::now())[0].peer, holder);
    // A stale generation's end changes nothing; the holder's end frees the id.
    nodes.disconnect(&id("edge-1"), first.generation + 1);
    assert!(nodes.list(Instant::now())[0].connected);
    nodes.disconnect(&id("edge-1"), first.generation);
    let view = &nodes.list(Instant::now())[0];
    assert!(!view.connected && view.live, "dropped, within its grace");
    assert!(!nodes.list(Instant::now() + Duration::from_secs(11))[0].live);
    assert_eq!(nodes.holder(&id("edge-1")), None);
    let second = connect(&nodes, "edge-1", "127.0.0.1:4002");
    assert!(second.generation > first.generation);
}

#[tokio::test]
async fn after_a_restart_a_node_seen_lately_is_waited_for_and_one_gone_long_is_offline() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&dir.path().join("cp.redb")).unwrap_or_else(|e| panic!("{e}")));
    let now = Timestamp::from_system(std::time::SystemTime::now());
    // edge-1 registered just now; edge-2 an hour ago, seen (streaming) a minute ago; edge-3
    // registered and last seen an hour ago.
    for (name, registered) in [("edge-1", now.0), ("edge-2", now.0 - 3_600_000), ("edge-3", now.0 - 3_600_000)] {
        let registration = serde_json::from_value(
            serde_json::json!({"pop": "fra", "role": "edge", "addresses": {"admin": "127.0.0.1:9"}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let record = NodeRecord { id: id(name), registration, registered_at: Timestamp(registered) };
        store.put_node(record).await.unwrap_or_else(|e| panic!("{e}"));
    }
    store.mark_seen(vec![id("edge-2")], Timestamp(now.0 - 60_000)).await.unwrap_or_else(|e| panic!("{e}"));
    let nodes = Nodes::load(store.clone(), NodeSettings::default()).await.unwrap_or_else(|e| panic!("{e}"));
    // No stream yet (the control plane just started): not complete.
    let progress = nodes.progress(&purge(1), Instant::now());
    assert_eq!((progress.complete, progress.pending.clone()), (false, vec!["edge-1".to_owned(), "edge-2".to_owned()]));
    assert_eq!(progress.offline, ["edge-3"]);
    // During the startup grace, those seen lately count for PoP health; not edge-3.
    let list = nodes.list(Instant::now());
    let reconnecting: Vec<bool> = list.iter().map(|n| n.reconnecting).collect();
    assert_eq!(reconnecting, [true, true, false]);
    assert!(!nodes.list(Instant::now() + Duration::from_secs(16))[0].reconnecting, "the grace is over");
    // They ack: complete.
    for name in ["edge-1", "edge-2"] {
        let _stream = connect(&nodes, name, "127.0.0.1:4001");
        assert_eq!(nodes.ack(&id(name), Seq(1), now).await, Ok(AckOutcome::Advanced));
    }
    assert!(nodes.progress(&purge(1), Instant::now()).complete);
}

#[tokio::test]
async fn acks_only_go_up_and_feed_progress() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (store, nodes) = nodes(&dir, &["edge-1", "edge-2"]).await;
    let _one = connect(&nodes, "edge-1", "127.0.0.1:4001");
    let _two = connect(&nodes, "edge-2", "127.0.0.1:4002");
    let mut changes = nodes.changes();
    changes.borrow_and_update();
    let at = Timestamp(1012);
    assert_eq!(nodes.ack(&id("edge-1"), Seq(3), at).await, Ok(AckOutcome::Advanced));
    assert!(changes.has_changed().unwrap_or(false));
    assert_eq!(nodes.ack(&id("edge-1"), Seq(2), at).await, Ok(AckOutcome::Ignored));
    assert_eq!(nodes.ack(&id("ghost"), Seq(2), at).await, Ok(AckOutcome::Unknown));
    let progress = nodes.progress(&purge(3), Instant::now());
    assert_eq!(progress.pending, ["edge-2"]);
    assert_eq!(progress.nodes["edge-1"].ms, Some(12));
    // Persisted before `ack` returned.
    let stored = store.nodes().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.iter().map(|n| n.acked).collect::<Vec<_>>(), [Seq(3), Seq(0)]);
}

#[tokio::test]
async fn shutdown_ends_every_stream_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_store, nodes) = nodes(&dir, &["edge-1"]).await;
    let connection = connect(&nodes, "edge-1", "127.0.0.1:4001");
    nodes.shutdown();
    assert!(connection.stop.await.is_err());
    assert_eq!(nodes.connect(&id("edge-1"), None).err(), Some(Refusal::Closing));
}

#[tokio::test]
async fn the_hub_only_moves_forward() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_store, nodes) = nodes(&dir, &[]).await;
    let mut head = nodes.head();
    nodes.appended(Seq(2));
    assert!(head.has_changed().unwrap_or(false));
    assert_eq!(*head.borrow_and_update(), Seq(2));
    nodes.appended(Seq(1));
    assert!(!head.has_changed().unwrap_or(true));
}

/// Two registries on one store stand for two replicas: what one holds and acks, the other
/// learns from the store's presence (`merge`), and refuses a second stream for.
#[tokio::test]
async fn another_replicas_hold_and_acks_reach_this_one_through_the_store() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (store, a) = nodes(&dir, &["edge-1", "edge-2"]).await;
    let b = Nodes::load(store.clone(), NodeSettings::default()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(a.replica(), b.replica());
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let lease = Timestamp(now.0 + 3_000);
    store.renew_replica(a.replica(), now, lease).await.unwrap_or_else(|e| panic!("{e}"));
    let _stream = a.claim(&id("edge-1"), "127.0.0.1:4001".parse().ok()).await.unwrap_or_else(|e| panic!("{e:?}"));
    let merged = b.merge(store.presence().await.unwrap_or_else(|e| panic!("{e}")), now);
    assert!(merged.changed && !merged.reload);
    let view = &b.list(Instant::now())[0];
    assert!(view.connected && view.live);
    assert_eq!(view.replica.as_deref(), Some(a.replica()));
    assert_eq!(view.peer, "127.0.0.1:4001".parse().ok());
    // B refuses a second stream for it, naming A; its registration too.
    let refused = b.claim(&id("edge-1"), "127.0.0.1:4002".parse().ok()).await.err();
    let holder = "127.0.0.1:4001".parse().ok();
    assert_eq!(refused, Some(Refusal::InUse { holder, replica: Some(a.replica().to_owned()) }));
    assert_eq!(b.holder(&id("edge-1")), Some(holder));
    assert!(!b.is_connected(&id("edge-2")));
    // edge-1 acks through A: B's progress of the purge counts it once merged.
    assert_eq!(a.ack(&id("edge-1"), Seq(1), Timestamp(1012)).await, Ok(AckOutcome::Advanced));
    // (edge-2 registered long ago and never streamed: offline, not waited for.)
    assert_eq!(b.progress(&purge(1), Instant::now()).pending, ["edge-1"]);
    b.merge(store.presence().await.unwrap_or_else(|e| panic!("{e}")), now);
    let progress = b.progress(&purge(1), Instant::now());
    assert!(progress.complete && progress.pending.is_empty(), "{progress:?}");
    assert_eq!(progress.nodes["edge-1"].ms, Some(12));
    // The store goes away at B: liveness is judged as of the last sync, past the lease.
    assert!(b.sync_failed());
    assert!(!b.sync_failed(), "logged once");
    assert!(b.list(Instant::now() + Duration::from_secs(60))[0].connected);
    // Back, and A's lease is over (A died): the hold lapses after the grace; B may claim.
    let later = Timestamp(lease.0 + 1);
    b.merge(store.presence().await.unwrap_or_else(|e| panic!("{e}")), later);
    assert!(!b.is_away());
    assert!(!b.list(Instant::now() + Duration::from_secs(15))[0].live, "the lease and the grace are over");
    store.renew_replica(a.replica(), now, now).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(b.claim(&id("edge-1"), None).await.is_ok(), "A's lease ended: B takes the node");
}
