use outpost_config::{Change, Seq};

use super::{AT, Fixture, MAX, id, ok, put, tenant};
use crate::store::{Expect, ServiceQuery, StoreError};

pub(crate) async fn writes_are_versioned_by_their_event(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
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

pub(crate) async fn writes_that_expect_another_state_conflict(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
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
    // Nothing was written by the failed attempts, and no number was used up by them.
    assert_eq!(ok(store.last_seq()).await, Seq(1));
    assert_eq!(ok(store.events(Seq(1), 10)).await.len(), 1);
    let next = ok(store.put_service(put("blog", "acme", &["blog.example"], Expect::Absent), AT)).await;
    assert_eq!(next.seq, Seq(2));
}

pub(crate) async fn a_host_belongs_to_one_service(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
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

pub(crate) async fn lists_page_by_id_within_a_tenant(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    // "acme-2" sorts before "acme/" in the embedded index: it must not leak into acme's list.
    for (name, owner) in
        [("c", "acme"), ("a", "acme"), ("b", "acme-2"), ("d", "acme"), ("e", "acm"), ("ab", "acme"), ("a-c", "acme")]
    {
        ok(store.put_service(put(name, owner, &[&format!("{name}.example")], Expect::Absent), AT)).await;
    }
    let names =
        |records: Vec<outpost_config::ServiceRecord>| records.into_iter().map(|r| r.id.to_string()).collect::<Vec<_>>();
    let query = |tenant: Option<&str>, after: Option<&str>, limit| ServiceQuery {
        tenant: tenant.map(super::tenant),
        after: after.map(id),
        limit,
    };
    // Byte order ("a-c" before "ab"), whatever the database's locale (which may ignore "-").
    assert_eq!(names(ok(store.services(query(Some("acme"), None, 10))).await), ["a", "a-c", "ab", "c", "d"]);
    assert_eq!(names(ok(store.services(query(Some("acme"), None, 2))).await), ["a", "a-c"]);
    assert_eq!(names(ok(store.services(query(Some("acme"), Some("c"), 2))).await), ["d"]);
    assert_eq!(names(ok(store.services(query(Some("acme-2"), None, 10))).await), ["b"]);
    assert_eq!(names(ok(store.services(query(Some("nobody"), None, 10))).await), Vec::<String>::new());
    assert_eq!(names(ok(store.services(query(None, None, 10))).await), ["a", "a-c", "ab", "b", "c", "d", "e"]);
    assert_eq!(names(ok(store.services(query(None, Some("b"), 2))).await), ["c", "d"]);
    assert_eq!(ok(store.count_services(&tenant("acme"))).await, 5);
    assert_eq!(ok(store.count_services(&tenant("acm"))).await, 1);
    assert_eq!(ok(store.count_services(&tenant("nobody"))).await, 0);
}
