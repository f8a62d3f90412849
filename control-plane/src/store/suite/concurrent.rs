//! Several writers at once, through two handles when the store has them (two replicas on one
//! database): numbers stay unique and gap-free, and a compare-and-swap has one winner.

use std::sync::Arc;

use outpost_config::{Change, Seq};

use super::{AT, Fixture, MAX, ok, purge, put};
use crate::store::{Expect, Store, StoreError};

/// Two handles: independent ones when the store has them, else one shared.
async fn two(fixture: &dyn Fixture) -> [Arc<dyn Store>; 2] {
    let first = fixture.open(MAX).await;
    let second = match fixture.open_another() {
        Some(opened) => opened.await,
        None => first.clone(),
    };
    [first, second]
}

pub(crate) async fn concurrent_writers_get_unique_gap_free_numbers(fixture: &dyn Fixture) {
    let stores = two(fixture).await;
    ok(stores[0].put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = stores[writer % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..EACH {
                let record = ok(store.create_purge(purge("shop", writer * EACH + n), AT)).await;
                seqs.push(record.seq.0);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap_or_else(|e| panic!("{e}"));
        // One writer's numbers grow: a later commit never gets an earlier number.
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        seqs.extend(mine);
    }
    seqs.sort_unstable();
    let expected: Vec<u64> = (2..2 + (WRITERS * EACH) as u64).collect();
    assert_eq!(seqs, expected, "every number once, none skipped");
    for store in &stores {
        assert_eq!(ok(store.last_seq()).await, Seq(1 + (WRITERS * EACH) as u64));
    }
    let events = ok(stores[1].events(Seq(1), 1000)).await;
    let numbers: Vec<u64> = events.iter().map(|e| e.seq.0).collect();
    assert_eq!(numbers, (1..2 + (WRITERS * EACH) as u64).collect::<Vec<_>>());
    for event in &events[1..] {
        let Change::Purge { purge } = &event.change else { panic!("{event:?}") };
        assert_eq!(purge.seq, event.seq, "the record and its event agree");
    }
}

pub(crate) async fn of_racing_conditional_writes_exactly_one_wins(fixture: &dyn Fixture) {
    let stores = two(fixture).await;
    let mut version = ok(stores[0].put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await.seq;
    for round in 0..5 {
        // Replaces of one version, creates of one id, and claims of one host, all at once.
        let mut tasks = Vec::new();
        for racer in 0..6 {
            let store = stores[racer % 2].clone();
            let host = format!("r{round}.example");
            tasks.push(tokio::spawn(async move {
                let hosts = ["shop.example", &format!("shop-{racer}.example")];
                let replace = store.put_service(put("shop", "acme", &hosts, Expect::Version(version)), AT).await;
                let create = store.put_service(put(&format!("new-{round}"), "acme", &[], Expect::Absent), AT).await;
                let claim =
                    store.put_service(put(&format!("c-{round}-{racer}"), "acme", &[&host], Expect::Absent), AT).await;
                (replace, create, claim)
            }));
        }
        let (mut replaced, mut created, mut claimed) = (Vec::new(), 0, 0);
        for task in tasks {
            let (replace, create, claim) = task.await.unwrap_or_else(|e| panic!("{e}"));
            match replace {
                Ok(event) => replaced.push(event.seq),
                Err(StoreError::Conflict { .. }) => {}
                Err(other) => panic!("replace: {other}"),
            }
            match create {
                Ok(_) => created += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(other) => panic!("create: {other}"),
            }
            match claim {
                Ok(_) => claimed += 1,
                Err(StoreError::HostTaken { .. }) => {}
                Err(other) => panic!("claim: {other}"),
            }
        }
        assert_eq!((replaced.len(), created, claimed), (1, 1, 1), "round {round}");
        version = replaced[0];
        let stored = ok(stores[1].service(&super::id("shop"))).await.unwrap_or_else(|| panic!("shop"));
        assert_eq!(stored.version, version);
    }
    // The losers used up no numbers: 1 + 3 winners per round.
    assert_eq!(ok(stores[0].last_seq()).await, Seq(1 + 5 * 3));
}
