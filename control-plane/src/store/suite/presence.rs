//! Presence shared by replicas: holds, the leases that make them lapse, and purge buckets.
//! Time is passed in (`AT` plus milliseconds), so expiry is tested without sleeping.

use std::time::Duration;

use outpost_config::{NodeId, Timestamp};

use super::log::node;
use super::{AT, Fixture, MAX, ok, tenant};
use crate::ratelimit::BucketSpec;
use crate::store::presence::{Claim, Hold};

fn at(ms: u64) -> Timestamp {
    Timestamp(AT.0 + ms)
}

fn hold(replica: &str, generation: u64, ms: u64) -> Hold {
    Hold {
        replica: replica.to_owned(),
        generation,
        peer: Some(format!("127.0.0.1:{}", 4000 + generation)),
        since: at(ms),
    }
}

fn edge(name: &str) -> NodeId {
    NodeId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) async fn a_hold_stands_while_its_replica_renews_and_lapses_when_it_stops(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    ok(store.put_node(node("edge-1", "fra"))).await;
    assert_eq!(ok(store.claim_node(&edge("ghost"), hold("a", 1, 0), at(0))).await, Claim::Unknown);
    // Replica a holds edge-1 with a lease to +3s.
    ok(store.renew_replica("a", at(0), at(3000))).await;
    assert_eq!(ok(store.claim_node(&edge("edge-1"), hold("a", 1, 0), at(0))).await, Claim::Claimed);
    // b is refused while a's lease runs, and told who holds it until when.
    let refused = ok(store.claim_node(&edge("edge-1"), hold("b", 1, 1000), at(1000))).await;
    assert_eq!(refused, Claim::Held { hold: hold("a", 1, 0), until: at(3000) });
    // a renews: still refused after the first lease's end.
    ok(store.renew_replica("a", at(2000), at(5000))).await;
    let refused = ok(store.claim_node(&edge("edge-1"), hold("b", 1, 4000), at(4000))).await;
    assert!(matches!(refused, Claim::Held { until, .. } if until == at(5000)), "{refused:?}");
    // a stops renewing (it died): at the lease's end b takes the node over.
    assert_eq!(ok(store.claim_node(&edge("edge-1"), hold("b", 7, 5000), at(5000))).await, Claim::Claimed);
    let presence = ok(store.presence()).await;
    assert_eq!(presence.len(), 1);
    assert_eq!(presence[0].hold, Some(hold("b", 7, 5000)));
    assert_eq!(presence[0].held_until, None, "b has no lease yet");
    assert_eq!(presence[0].seen_at, Some(at(5000)), "a granted claim is a sighting");
    // a comes back: b's hold (no lease) lapsed at once; a may take it again.
    ok(store.renew_replica("a", at(6000), at(9000))).await;
    assert_eq!(ok(store.claim_node(&edge("edge-1"), hold("a", 2, 6000), at(6000))).await, Claim::Claimed);
}

pub(crate) async fn a_release_clears_only_its_own_streams_hold(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    ok(store.put_node(node("edge-1", "fra"))).await;
    ok(store.renew_replica("a", at(0), at(3000))).await;
    ok(store.claim_node(&edge("edge-1"), hold("a", 1, 0), at(0))).await;
    // The holder itself may claim again (its own registry decides between its streams).
    ok(store.claim_node(&edge("edge-1"), hold("a", 2, 10), at(10))).await;
    // The first stream's end must not clear the second's hold; another replica's neither.
    assert!(!ok(store.release_node(&edge("edge-1"), "a", 1, at(20))).await);
    assert!(!ok(store.release_node(&edge("edge-1"), "b", 2, at(20))).await);
    assert_eq!(ok(store.presence()).await[0].hold, Some(hold("a", 2, 10)));
    assert!(ok(store.release_node(&edge("edge-1"), "a", 2, at(30))).await);
    let presence = ok(store.presence()).await;
    assert_eq!((presence[0].hold.clone(), presence[0].seen_at), (None, Some(at(30))));
    assert_eq!(presence[0].held_until, None);
    // Free now: b takes it within a's lease.
    assert_eq!(ok(store.claim_node(&edge("edge-1"), hold("b", 1, 40), at(40))).await, Claim::Claimed);
    // A lease ended on purpose (a stopping replica) lets others in at once.
    ok(store.renew_replica("b", at(50), at(3050))).await;
    ok(store.renew_replica("b", at(60), at(60))).await;
    assert_eq!(ok(store.claim_node(&edge("edge-1"), hold("a", 3, 70), at(70))).await, Claim::Claimed);
    // A re-registration keeps the hold.
    let again = ok(store.put_node(node("edge-1", "ams"))).await;
    assert_eq!(again.hold, Some(hold("a", 3, 70)));
    let listed = ok(store.nodes()).await;
    assert_eq!(listed[0].hold, Some(hold("a", 3, 70)));
}

pub(crate) async fn presence_lists_every_node_with_its_acks_and_drains(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    ok(store.put_node(node("edge-2", "fra"))).await;
    ok(store.put_node(node("edge-1", "ams"))).await;
    ok(store.record_acks(vec![super::log::node_ack("edge-2", 4)])).await;
    assert!(ok(store.set_node_drain(&edge("edge-1"), Some(at(5)))).await);
    ok(store.renew_replica("a", at(0), at(3000))).await;
    ok(store.claim_node(&edge("edge-2"), hold("a", 1, 0), at(0))).await;
    let presence = ok(store.presence()).await;
    let summary: Vec<_> =
        presence.iter().map(|p| (p.id.as_str(), p.registered_at, p.acked.0, p.drained_at, p.held_until)).collect();
    assert_eq!(summary, [("edge-1", AT, 0, Some(at(5)), None), ("edge-2", AT, 4, None, Some(at(3000)))]);
    // Another handle (another replica) reads the same.
    if let Some(other) = fixture.open_another() {
        let other = other.await;
        assert_eq!(ok(other.presence()).await, presence);
    }
}

pub(crate) async fn a_tenants_purge_bucket_is_shared_by_every_handle(fixture: &dyn Fixture) {
    let spec = BucketSpec { burst: 3, interval: Duration::from_millis(100) };
    let store = fixture.open(MAX).await;
    let other = match fixture.open_another() {
        Some(other) => other.await,
        None => store.clone(),
    };
    let acme = tenant("acme");
    // Three tokens across both handles, then refused with the wait for the next.
    assert_eq!(ok(store.take_purge(&acme, spec, at(0))).await, Ok(()));
    assert_eq!(ok(other.take_purge(&acme, spec, at(0))).await, Ok(()));
    assert_eq!(ok(store.take_purge(&acme, spec, at(10))).await, Ok(()));
    let refused = ok(other.take_purge(&acme, spec, at(10))).await;
    assert!(
        refused.is_err_and(|wait| wait.abs_diff(Duration::from_millis(90)) < Duration::from_millis(2)),
        "{refused:?}"
    );
    // Another tenant has its own bucket; one interval later acme has one token again.
    assert_eq!(ok(other.take_purge(&tenant("globex"), spec, at(10))).await, Ok(()));
    assert_eq!(ok(other.take_purge(&acme, spec, at(110))).await, Ok(()));
    assert!(ok(store.take_purge(&acme, spec, at(111))).await.is_err());
}
