use outpost_config::{AcmeChallenge, ChallengeKind, Change, Timestamp};

use super::{AT, Fixture, MAX, id, ok, tenant};
use crate::store::{AcmeState, AcmeStatus, Lease};

fn challenge(token: &str) -> AcmeChallenge {
    AcmeChallenge {
        token: token.to_owned(),
        host: "www.example.test".to_owned(),
        kind: ChallengeKind::Http01,
        key_authorization: format!("{token}.thumb"),
        service: id("shop"),
        expires_at: Timestamp(AT.as_millis() + 60_000),
    }
}

pub(crate) async fn challenges_are_events_and_in_snapshots_across_a_reopen(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    let put = ok(store.put_challenge(challenge("t1"), AT)).await;
    assert!(matches!(&put.change, Change::AcmeChallengePut { challenge } if challenge.token == "t1"), "{put:?}");
    ok(store.put_challenge(challenge("t2"), AT)).await;
    let deleted = ok(store.delete_challenge("t1", AT)).await.unwrap_or_else(|| panic!("t1 was published"));
    assert_eq!(deleted.seq, put.seq.next().next());
    assert!(matches!(&deleted.change, Change::AcmeChallengeDeleted { token, .. } if token == "t1"));
    // Nothing to delete: no event, and no number used up.
    assert!(ok(store.delete_challenge("t1", AT)).await.is_none());
    assert_eq!(ok(store.last_seq()).await, deleted.seq);
    drop(store);
    let store = fixture.open(MAX).await;
    let snapshot = ok(store.snapshot()).await;
    assert_eq!(snapshot.seq, deleted.seq);
    let tokens: Vec<String> = snapshot.challenges.into_iter().map(|c| c.token).collect();
    assert_eq!(tokens, ["t2"]);
    assert_eq!(ok(store.challenges()).await.len(), 1);
}

pub(crate) async fn acme_states_are_compare_and_set_and_accounts_first_wins(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    let fresh = AcmeState::new(id("shop"), tenant("acme"), AT);
    let mine = AcmeState { lease: Some(Lease { holder: "a".into(), until: AT }), ..fresh.clone() };
    let written = ok(store.put_acme_state(mine)).await.unwrap_or_else(|| panic!("first write"));
    assert_eq!(written.revision, 1);
    // Another replica that read revision 0 loses.
    assert_eq!(ok(store.put_acme_state(fresh.clone())).await, None);
    let moved = AcmeState { status: AcmeStatus::Ordering, ..written.clone() };
    let moved = ok(store.put_acme_state(moved)).await.unwrap_or_else(|| panic!("second write"));
    assert_eq!((moved.revision, moved.status), (2, AcmeStatus::Ordering));
    assert_eq!(ok(store.put_acme_state(written)).await, None, "a stale revision loses");
    drop(store);
    let store = fixture.open(MAX).await;
    assert_eq!(ok(store.acme_state(&id("shop"))).await, Some(moved.clone()));
    assert_eq!(ok(store.acme_states()).await, vec![moved]);
    ok(store.delete_acme_state(&id("shop"))).await;
    assert_eq!(ok(store.acme_state(&id("shop"))).await, None);

    let directory = "https://acme.example/dir";
    assert_eq!(ok(store.acme_account(directory)).await, None);
    assert_eq!(ok(store.put_acme_account(directory, "first".into())).await, "first");
    assert_eq!(ok(store.put_acme_account(directory, "second".into())).await, "first");
    assert_eq!(ok(store.acme_account(directory)).await.as_deref(), Some("first"));
}
