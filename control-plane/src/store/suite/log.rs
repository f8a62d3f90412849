use outpost_config::{PurgeId, PurgeTarget, Seq, Timestamp};
use serde_json::json;

use super::{AT, Fixture, MAX, id, ok, purge, put, tenant};
use crate::store::{Expect, NewPurge, NodeAck, StoreError};

pub(crate) async fn everything_survives_a_reopen_and_numbers_go_on(fixture: &dyn Fixture) {
    let log_id = {
        let store = fixture.open(MAX).await;
        ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
        let purge = NewPurge {
            id: PurgeId("p1".to_owned()),
            service: id("shop"),
            tenant: tenant("acme"),
            soft: true,
            targets: vec![PurgeTarget::Tag { tag: "t".to_owned() }],
        };
        let record = ok(store.create_purge(purge, AT)).await;
        assert_eq!(record.seq, Seq(2));
        store.log_id()
    };
    let store = fixture.open(MAX).await;
    assert_eq!(store.log_id(), log_id, "the log keeps its identity");
    assert_eq!(ok(store.last_seq()).await, Seq(2));
    let shop = ok(store.service(&id("shop"))).await.unwrap_or_else(|| panic!("shop"));
    assert_eq!(shop.version, Seq(1));
    let purge = ok(store.purge(&PurgeId("p1".to_owned()))).await.unwrap_or_else(|| panic!("purge"));
    assert_eq!((purge.seq, purge.soft, purge.created_at), (Seq(2), true, AT));
    assert_eq!(ok(store.purge(&PurgeId("p2".to_owned()))).await, None);
    let next = ok(store.put_service(put("blog", "acme", &["blog.example"], Expect::Absent), AT)).await;
    assert_eq!(next.seq, Seq(3));
    // Hosts are still claimed after the reopen.
    let taken = store.put_service(put("other", "x", &["shop.example"], Expect::Absent), AT).await;
    assert!(matches!(taken, Err(StoreError::HostTaken { .. })));
    let events = ok(store.events(Seq(2), 10)).await;
    assert_eq!(events.iter().map(|e| e.seq.0).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(ok(store.events(Seq(1), 1)).await.len(), 1);
    assert_eq!(ok(store.events(Seq(4), 10)).await.len(), 0);
}

pub(crate) async fn a_snapshot_is_the_state_at_its_seq(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    let empty = ok(store.snapshot()).await;
    assert_eq!((empty.seq, empty.services.len()), (Seq(0), 0));
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    ok(store.put_service(put("blog", "other", &["blog.example"], Expect::Absent), AT)).await;
    ok(store.delete_service(&id("shop"), Seq(1), AT)).await;
    let snapshot = ok(store.snapshot()).await;
    assert_eq!(snapshot.seq, Seq(3));
    assert_eq!(snapshot.services.iter().map(|s| (s.id.as_str(), s.version)).collect::<Vec<_>>(), [("blog", Seq(2))]);
}

pub(crate) async fn drains_are_kept_across_a_reopen(fixture: &dyn Fixture) {
    {
        let store = fixture.open(MAX).await;
        assert!(ok(store.drained_pops()).await.is_empty());
        ok(store.set_drain("fra", Some(AT))).await;
        ok(store.set_drain("ams", Some(AT))).await;
        ok(store.set_drain("ams", None)).await;
        // Restoring an undrained PoP is no error.
        ok(store.set_drain("iad", None)).await;
    }
    let store = fixture.open(MAX).await;
    assert_eq!(ok(store.drained_pops()).await, vec![("fra".to_owned(), AT)]);
}

pub(crate) async fn the_log_keeps_at_most_max_events_and_never_reuses_a_number(fixture: &dyn Fixture) {
    let store = fixture.open(3).await;
    assert_eq!(ok(store.first_seq()).await, None);
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    for n in 0..4 {
        ok(store.create_purge(purge("shop", n), AT)).await;
    }
    let kept: Vec<Seq> = ok(store.events(Seq(1), 100)).await.iter().map(|e| e.seq).collect();
    assert_eq!(kept, [Seq(3), Seq(4), Seq(5)]);
    assert_eq!((ok(store.first_seq()).await, ok(store.last_seq()).await), (Some(Seq(3)), Seq(5)));
    // The state survives compaction: the snapshot still has the service written by event 1.
    let snapshot = ok(store.snapshot()).await;
    assert_eq!((snapshot.seq, snapshot.services[0].version), (Seq(5), Seq(1)));
    drop(store);
    // A lower bound after a reopen drops the excess on the next append.
    let store = fixture.open(1).await;
    let event = ok(store.delete_service(&id("shop"), Seq(1), AT)).await;
    assert_eq!(event.seq, Seq(6));
    assert_eq!(ok(store.events(Seq(1), 100)).await.iter().map(|e| e.seq).collect::<Vec<_>>(), [Seq(6)]);
}

pub(crate) fn node(name: &str, pop: &str) -> outpost_config::NodeRecord {
    let registration =
        serde_json::from_value(json!({"pop": pop, "role": "edge", "addresses": {"admin": "127.0.0.1:9"}}))
            .unwrap_or_else(|e| panic!("{e}"));
    outpost_config::NodeRecord {
        id: outpost_config::NodeId::parse(name).unwrap_or_else(|e| panic!("{e}")),
        registration,
        registered_at: AT,
    }
}

pub(crate) fn node_ack(name: &str, seq: u64) -> NodeAck {
    NodeAck {
        node: outpost_config::NodeId::parse(name).unwrap_or_else(|e| panic!("{e}")),
        seq: Seq(seq),
        at: Timestamp(AT.0 + seq),
    }
}

pub(crate) async fn node_acks_only_go_up_and_survive_a_reregistration_and_a_reopen(fixture: &dyn Fixture) {
    {
        let store = fixture.open(MAX).await;
        let stored = ok(store.put_node(node("edge-2", "fra"))).await;
        assert_eq!((stored.acked, stored.acked_at), (Seq(0), None));
        ok(store.put_node(node("edge-1", "fra"))).await;
        // One batch: edge-1 moves to 5 (not back to 3), an unknown node is skipped.
        ok(store.record_acks(vec![node_ack("edge-1", 5), node_ack("edge-1", 3), node_ack("ghost", 9)])).await;
        ok(store.record_acks(vec![node_ack("edge-2", 2)])).await;
        // A later batch with a lower ack changes nothing (GREATEST).
        ok(store.record_acks(vec![node_ack("edge-2", 1)])).await;
        ok(store.record_acks(Vec::new())).await;
        // Re-registering keeps the acks and replaces the rest.
        let again = ok(store.put_node(node("edge-1", "ams"))).await;
        assert_eq!((again.acked, again.node.registration.pop.as_deref()), (Seq(5), Some("ams")));
    }
    let store = fixture.open(MAX).await;
    let nodes = ok(store.nodes()).await;
    let summary: Vec<(&str, Seq, Option<Timestamp>)> =
        nodes.iter().map(|n| (n.node.id.as_str(), n.acked, n.acked_at)).collect();
    assert_eq!(summary, [("edge-1", Seq(5), Some(Timestamp(AT.0 + 5))), ("edge-2", Seq(2), Some(Timestamp(AT.0 + 2)))]);
}

fn node_id(name: &str) -> outpost_config::NodeId {
    outpost_config::NodeId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) async fn seen_times_and_node_drains_survive_a_reregistration_and_a_reopen(fixture: &dyn Fixture) {
    {
        let store = fixture.open(MAX).await;
        ok(store.put_node(node("edge-1", "fra"))).await;
        ok(store.put_node(node("edge-2", "fra"))).await;
        // Seen times only move up; an unknown node is skipped.
        ok(store.mark_seen(vec![node_id("edge-1"), node_id("ghost")], Timestamp(AT.0 + 50))).await;
        ok(store.mark_seen(vec![node_id("edge-1")], Timestamp(AT.0 + 10))).await;
        assert!(ok(store.set_node_drain(&node_id("edge-2"), Some(Timestamp(AT.0 + 7)))).await);
        assert!(!ok(store.set_node_drain(&node_id("ghost"), Some(AT))).await);
        // A re-registration keeps both.
        let again = ok(store.put_node(node("edge-2", "ams"))).await;
        assert_eq!(again.drained_at, Some(Timestamp(AT.0 + 7)));
    }
    let store = fixture.open(MAX).await;
    let nodes = ok(store.nodes()).await;
    let summary: Vec<(&str, Option<Timestamp>, Option<Timestamp>)> =
        nodes.iter().map(|n| (n.node.id.as_str(), n.seen_at, n.drained_at)).collect();
    assert_eq!(summary, [("edge-1", Some(Timestamp(AT.0 + 50)), None), ("edge-2", None, Some(Timestamp(AT.0 + 7)))]);
    assert_eq!(nodes[0].last_seen(), Timestamp(AT.0 + 50).max(nodes[0].node.registered_at));
    assert!(ok(store.set_node_drain(&node_id("edge-2"), None)).await);
    assert_eq!(ok(store.nodes()).await[1].drained_at, None);
}

pub(crate) async fn a_deleted_node_is_gone_with_its_acks(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    ok(store.put_node(node("edge-1", "fra"))).await;
    ok(store.record_acks(vec![node_ack("edge-1", 5)])).await;
    assert!(ok(store.delete_node(&node_id("edge-1"))).await);
    assert!(!ok(store.delete_node(&node_id("edge-1"))).await);
    assert!(ok(store.nodes()).await.is_empty());
    // Registering again starts from nothing acked.
    let again = ok(store.put_node(node("edge-1", "fra"))).await;
    assert_eq!((again.acked, again.acked_at), (Seq(0), None));
}
