use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_config::{NodeId, NodeRecord, PurgeId, PurgeRecord, PurgeTarget, Seq, ServiceId, TenantId, Timestamp};

use super::{AckOutcome, Nodes};
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

#[tokio::test]
async fn a_new_stream_ends_the_old_and_only_the_current_one_drops_the_node() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_store, nodes) = nodes(&dir, &["edge-1"]).await;
    assert!(nodes.connect(&id("ghost")).is_none());
    let mut first = nodes.connect(&id("edge-1")).unwrap_or_else(|| panic!("registered"));
    assert!(first.stop.try_recv().is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Empty));
    let second = nodes.connect(&id("edge-1")).unwrap_or_else(|| panic!("registered"));
    // The first stream's stop fired (its sender was dropped).
    assert!(first.stop.await.is_err());
    // The first stream's end does not drop the node: the second holds it.
    nodes.disconnect(&id("edge-1"), first.generation);
    assert!(nodes.list(Instant::now())[0].connected);
    nodes.disconnect(&id("edge-1"), second.generation);
    let view = &nodes.list(Instant::now())[0];
    assert!(!view.connected && view.live, "dropped, within its grace");
    assert!(!nodes.list(Instant::now() + Duration::from_secs(11))[0].live);
}

#[tokio::test]
async fn acks_only_go_up_and_feed_progress() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (store, nodes) = nodes(&dir, &["edge-1", "edge-2"]).await;
    let _one = nodes.connect(&id("edge-1"));
    let _two = nodes.connect(&id("edge-2"));
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
    let connection = nodes.connect(&id("edge-1")).unwrap_or_else(|| panic!("registered"));
    nodes.shutdown();
    assert!(connection.stop.await.is_err());
    assert!(nodes.connect(&id("edge-1")).is_none());
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
