use outpost_config::{Change, PurgeId, PurgeTarget, Seq, ServiceId, TenantId, Timestamp};
use serde_json::json;

use super::EmbeddedStore;
use crate::store::{Expect, NewPurge, ServicePut, ServiceQuery, Store, StoreError};

fn id(name: &str) -> ServiceId {
    ServiceId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

fn put(name: &str, owner: &str, hosts: &[&str], expect: Expect) -> ServicePut {
    ServicePut {
        id: id(name),
        tenant: tenant(owner),
        config: json!({"name": name, "hosts": hosts, "origin": "http://o.example"}),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        expect,
        function: None,
    }
}

const AT: Timestamp = Timestamp(1_795_445_600_000);

fn open(dir: &tempfile::TempDir) -> EmbeddedStore {
    EmbeddedStore::open(&dir.path().join("cp.redb")).unwrap_or_else(|e| panic!("{e}"))
}

async fn ok<T>(future: crate::store::StoreFuture<'_, T>) -> T {
    future.await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn writes_are_versioned_by_their_event() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(&dir);
    assert_eq!(ok(store.last_seq()).await, Seq(0));
    let first = ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    assert_eq!(first.seq, Seq(1));
    let second = ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Version(Seq(1))), AT)).await;
    assert_eq!(second.seq, Seq(2));
    let stored = ok(store.service(&id("shop"))).await.unwrap_or_else(|| panic!("stored"));
    assert_eq!((stored.version, stored.tenant.as_str()), (Seq(2), "acme"));
    let events = ok(store.events(Seq(1), 10)).await;
    assert_eq!(events.iter().map(|e| e.seq.0).collect::<Vec<_>>(), [1, 2]);
    assert!(matches!(&events[1].change, Change::ServicePut { service } if service.version == Seq(2)));

    let deleted = ok(store.delete_service(&id("shop"), Seq(2), AT)).await;
    assert_eq!(deleted.seq, Seq(3));
    assert!(matches!(deleted.change, Change::ServiceDeleted { ref id, .. } if id.as_str() == "shop"));
    assert_eq!(ok(store.service(&id("shop"))).await, None);
    // Re-created, it continues from the log's numbers, never back at 1.
    let again = ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    assert_eq!(again.seq, Seq(4));
}

#[tokio::test]
async fn writes_that_expect_another_state_conflict() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(&dir);
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    let cases = [
        store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT),
        store.put_service(put("shop", "acme", &["shop.example"], Expect::Version(Seq(7))), AT),
        store.put_service(put("blog", "acme", &["blog.example"], Expect::Version(Seq(1))), AT),
        store.delete_service(&id("shop"), Seq(7), AT),
        store.delete_service(&id("blog"), Seq(1), AT),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        assert!(matches!(case.await, Err(StoreError::Conflict { .. })), "case {i}");
    }
    // Nothing was written by the failed attempts.
    assert_eq!(ok(store.last_seq()).await, Seq(1));
    assert_eq!(ok(store.events(Seq(1), 10)).await.len(), 1);
}

#[tokio::test]
async fn a_host_belongs_to_one_service() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(&dir);
    ok(store.put_service(put("shop", "acme", &["shop.example", "*.shop.example"], Expect::Absent), AT)).await;
    let taken = store.put_service(put("evil", "other", &["x.example", "*.shop.example"], Expect::Absent), AT).await;
    match taken {
        Err(StoreError::HostTaken { host, owner }) => {
            assert_eq!((host.as_str(), owner.as_str()), ("*.shop.example", "shop"))
        }
        other => panic!("{other:?}"),
    }
    // Nothing of the refused service was kept, not even its first, free host.
    assert_eq!(ok(store.service(&id("evil"))).await, None);
    ok(store.put_service(put("x", "other", &["x.example"], Expect::Absent), AT)).await;

    // Replacing a service's hosts frees the ones it dropped.
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Version(Seq(1))), AT)).await;
    ok(store.put_service(put("wild", "other", &["*.shop.example"], Expect::Absent), AT)).await;
    // Deleting frees them all.
    let shop = ok(store.service(&id("shop"))).await.unwrap_or_else(|| panic!("shop"));
    ok(store.delete_service(&id("shop"), shop.version, AT)).await;
    ok(store.put_service(put("shop2", "other", &["shop.example"], Expect::Absent), AT)).await;
}

#[tokio::test]
async fn lists_page_by_id_within_a_tenant() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(&dir);
    // "acme-2" sorts before "acme/" in the index: it must not leak into acme's list.
    for (name, owner) in [("c", "acme"), ("a", "acme"), ("b", "acme-2"), ("d", "acme"), ("e", "acm")] {
        ok(store.put_service(put(name, owner, &[&format!("{name}.example")], Expect::Absent), AT)).await;
    }
    let names =
        |records: Vec<outpost_config::ServiceRecord>| records.into_iter().map(|r| r.id.to_string()).collect::<Vec<_>>();
    let query = |tenant: Option<&str>, after: Option<&str>, limit| ServiceQuery {
        tenant: tenant.map(self::tenant),
        after: after.map(id),
        limit,
    };
    assert_eq!(names(ok(store.services(query(Some("acme"), None, 10))).await), ["a", "c", "d"]);
    assert_eq!(names(ok(store.services(query(Some("acme"), None, 2))).await), ["a", "c"]);
    assert_eq!(names(ok(store.services(query(Some("acme"), Some("c"), 2))).await), ["d"]);
    assert_eq!(names(ok(store.services(query(Some("acme-2"), None, 10))).await), ["b"]);
    assert_eq!(names(ok(store.services(query(Some("nobody"), None, 10))).await), Vec::<String>::new());
    assert_eq!(names(ok(store.services(query(None, None, 10))).await), ["a", "b", "c", "d", "e"]);
    assert_eq!(names(ok(store.services(query(None, Some("b"), 2))).await), ["c", "d"]);
    assert_eq!(ok(store.count_services(&tenant("acme"))).await, 3);
    assert_eq!(ok(store.count_services(&tenant("acm"))).await, 1);
    assert_eq!(ok(store.count_services(&tenant("nobody"))).await, 0);
}

#[tokio::test]
async fn everything_survives_a_restart_and_numbers_go_on() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log_id = {
        let store = open(&dir);
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
    let store = open(&dir);
    assert_eq!(store.log_id(), log_id, "the log keeps its identity");
    let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(open(&other).log_id(), log_id, "a new store is a new log");
    assert_eq!(ok(store.last_seq()).await, Seq(2));
    let shop = ok(store.service(&id("shop"))).await.unwrap_or_else(|| panic!("shop"));
    assert_eq!(shop.version, Seq(1));
    let purge = ok(store.purge(&PurgeId("p1".to_owned()))).await.unwrap_or_else(|| panic!("purge"));
    assert_eq!((purge.seq, purge.soft, purge.created_at), (Seq(2), true, AT));
    assert_eq!(ok(store.purge(&PurgeId("p2".to_owned()))).await, None);
    let next = ok(store.put_service(put("blog", "acme", &["blog.example"], Expect::Absent), AT)).await;
    assert_eq!(next.seq, Seq(3));
    // Hosts are still claimed after the restart.
    let taken = store.put_service(put("other", "x", &["shop.example"], Expect::Absent), AT).await;
    assert!(matches!(taken, Err(StoreError::HostTaken { .. })));
    let events = ok(store.events(Seq(2), 10)).await;
    assert_eq!(events.iter().map(|e| e.seq.0).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(ok(store.events(Seq(1), 1)).await.len(), 1);
    assert_eq!(ok(store.events(Seq(4), 10)).await.len(), 0);
}

#[tokio::test]
async fn a_snapshot_is_the_state_at_its_seq() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(&dir);
    let empty = ok(store.snapshot()).await;
    assert_eq!((empty.seq, empty.services.len()), (Seq(0), 0));
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    ok(store.put_service(put("blog", "other", &["blog.example"], Expect::Absent), AT)).await;
    ok(store.delete_service(&id("shop"), Seq(1), AT)).await;
    let snapshot = ok(store.snapshot()).await;
    assert_eq!(snapshot.seq, Seq(3));
    assert_eq!(snapshot.services.iter().map(|s| (s.id.as_str(), s.version)).collect::<Vec<_>>(), [("blog", Seq(2))]);
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let _first = open(&dir);
    let second = EmbeddedStore::open(&dir.path().join("cp.redb"));
    assert!(second.is_err(), "redb holds a lock on its file");
}

#[tokio::test]
async fn drains_are_kept_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let store = open(&dir);
        assert!(ok(store.drained_pops()).await.is_empty());
        ok(store.set_drain("fra", Some(AT))).await;
        ok(store.set_drain("ams", Some(AT))).await;
        ok(store.set_drain("ams", None)).await;
        // Restoring an undrained PoP is no error.
        ok(store.set_drain("iad", None)).await;
    }
    let store = open(&dir);
    assert_eq!(ok(store.drained_pops()).await, vec![("fra".to_owned(), AT)]);
}

fn purge(service: &str) -> NewPurge {
    NewPurge {
        id: PurgeId(format!("p-{service}")),
        service: id(service),
        tenant: tenant("acme"),
        soft: false,
        targets: vec![PurgeTarget::All],
    }
}

#[tokio::test]
async fn the_log_keeps_at_most_max_events_and_never_reuses_a_number() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(&dir).with_max_events(3);
    assert_eq!(ok(store.first_seq()).await, None);
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    for _ in 0..4 {
        ok(store.create_purge(purge("shop"), AT)).await;
    }
    let kept: Vec<Seq> = ok(store.events(Seq(1), 100)).await.iter().map(|e| e.seq).collect();
    assert_eq!(kept, [Seq(3), Seq(4), Seq(5)]);
    assert_eq!((ok(store.first_seq()).await, ok(store.last_seq()).await), (Some(Seq(3)), Seq(5)));
    // The state survives compaction: the snapshot still has the service written by event 1.
    let snapshot = ok(store.snapshot()).await;
    assert_eq!((snapshot.seq, snapshot.services[0].version), (Seq(5), Seq(1)));
    drop(store);
    // A lower bound after a restart drops the excess on the next append.
    let store = open(&dir).with_max_events(1);
    let event = ok(store.delete_service(&id("shop"), Seq(1), AT)).await;
    assert_eq!(event.seq, Seq(6));
    assert_eq!(ok(store.events(Seq(1), 100)).await.iter().map(|e| e.seq).collect::<Vec<_>>(), [Seq(6)]);
}

fn node(name: &str, pop: &str) -> outpost_config::NodeRecord {
    let registration =
        serde_json::from_value(json!({"pop": pop, "role": "edge", "addresses": {"admin": "127.0.0.1:9"}}))
            .unwrap_or_else(|e| panic!("{e}"));
    outpost_config::NodeRecord {
        id: outpost_config::NodeId::parse(name).unwrap_or_else(|e| panic!("{e}")),
        registration,
        registered_at: AT,
    }
}

fn node_ack(name: &str, seq: u64) -> crate::store::NodeAck {
    crate::store::NodeAck {
        node: outpost_config::NodeId::parse(name).unwrap_or_else(|e| panic!("{e}")),
        seq: Seq(seq),
        at: Timestamp(AT.0 + seq),
    }
}

#[tokio::test]
async fn node_acks_only_go_up_and_survive_a_reregistration_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let store = open(&dir);
        let stored = ok(store.put_node(node("edge-2", "fra"))).await;
        assert_eq!((stored.acked, stored.acked_at), (Seq(0), None));
        ok(store.put_node(node("edge-1", "fra"))).await;
        // One batch: edge-1 moves to 5 (not back to 3), an unknown node is skipped.
        ok(store.record_acks(vec![node_ack("edge-1", 5), node_ack("edge-1", 3), node_ack("ghost", 9)])).await;
        ok(store.record_acks(vec![node_ack("edge-2", 2)])).await;
        // Re-registering keeps the acks and replaces the rest.
        let again = ok(store.put_node(node("edge-1", "ams"))).await;
        assert_eq!((again.acked, again.node.registration.pop.as_deref()), (Seq(5), Some("ams")));
    }
    let store = open(&dir);
    let nodes = ok(store.nodes()).await;
    let summary: Vec<(&str, Seq, Option<Timestamp>)> =
        nodes.iter().map(|n| (n.node.id.as_str(), n.acked, n.acked_at)).collect();
    assert_eq!(summary, [("edge-1", Seq(5), Some(Timestamp(AT.0 + 5))), ("edge-2", Seq(2), Some(Timestamp(AT.0 + 2)))]);
}

fn node_id(name: &str) -> outpost_config::NodeId {
    outpost_config::NodeId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn seen_times_and_node_drains_survive_a_reregistration_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let store = open(&dir);
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
    let store = open(&dir);
    let nodes = ok(store.nodes()).await;
    let summary: Vec<(&str, Option<Timestamp>, Option<Timestamp>)> =
        nodes.iter().map(|n| (n.node.id.as_str(), n.seen_at, n.drained_at)).collect();
    assert_eq!(summary, [("edge-1", Some(Timestamp(AT.0 + 50)), None), ("edge-2", None, Some(Timestamp(AT.0 + 7)))]);
    assert_eq!(nodes[0].last_seen(), Timestamp(AT.0 + 50).max(nodes[0].node.registered_at));
    assert!(ok(store.set_node_drain(&node_id("edge-2"), None)).await);
    assert_eq!(ok(store.nodes()).await[1].drained_at, None);
}

#[tokio::test]
async fn a_deleted_node_is_gone_with_its_acks() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(&dir);
    ok(store.put_node(node("edge-1", "fra"))).await;
    ok(store.record_acks(vec![node_ack("edge-1", 5)])).await;
    assert!(ok(store.delete_node(&node_id("edge-1"))).await);
    assert!(!ok(store.delete_node(&node_id("edge-1"))).await);
    assert!(ok(store.nodes()).await.is_empty());
    // Registering again starts from nothing acked.
    let again = ok(store.put_node(node("edge-1", "fra"))).await;
    assert_eq!((again.acked, again.acked_at), (Seq(0), None));
}

#[tokio::test]
async fn a_backup_taken_while_open_reopens_with_everything() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(&dir);
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    ok(store.create_purge(purge("shop"), AT)).await;
    ok(store.put_node(node("edge-1", "fra"))).await;
    ok(store.record_acks(vec![node_ack("edge-1", 2)])).await;
    ok(store.set_drain("fra", Some(AT))).await;
    let copy = dir.path().join("backup.redb");
    let records = ok(store.backup(copy.clone())).await;
    assert!(records >= 7, "{records}");
    // Never over an existing file (the live store's included).
    assert!(store.backup(copy.clone()).await.is_err());
    assert!(store.backup(dir.path().join("cp.redb")).await.is_err());
    // Writes after the backup are not in it.
    ok(store.create_purge(purge("shop"), AT)).await;
    drop(store);
    let restored = EmbeddedStore::open(&copy).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok(restored.last_seq()).await, Seq(2));
    assert!(ok(restored.service(&id("shop"))).await.is_some());
    assert_eq!(ok(restored.nodes()).await[0].acked, Seq(2));
    assert_eq!(ok(restored.drained_pops()).await.len(), 1);
    let original = open(&dir);
    assert_eq!(restored.log_id(), original.log_id(), "the same log: nodes resume, not resync");
}
