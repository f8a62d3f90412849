//! The embedded store under the common suite, plus what only a one-file store has.

use std::path::PathBuf;
use std::sync::Arc;

use super::EmbeddedStore;
use crate::store::suite::{AT, Fixture, MAX, Opened, id, node, node_ack, ok, purge, put, store_suite, with_every_test};
use crate::store::{Expect, Store, StoreError};
use outpost_config::Seq;

/// A redb file in a temporary directory, reopened from the same path.
struct RedbFixture {
    dir: tempfile::TempDir,
}

impl RedbFixture {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")) }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("cp.redb")
    }
}

impl Fixture for RedbFixture {
    fn open(&self, max_events: usize) -> Opened {
        let store = EmbeddedStore::open(&self.path()).unwrap_or_else(|e| panic!("{e}")).with_max_events(max_events);
        Box::pin(async move { Arc::new(store) as Arc<dyn Store> })
    }

    fn open_another(&self) -> Option<Opened> {
        None
    }
}

with_every_test!(store_suite!(RedbFixture::new()));

#[tokio::test]
async fn a_second_process_cannot_open_the_same_file() {
    let fixture = RedbFixture::new();
    let _first = fixture.open(10).await;
    let second = EmbeddedStore::open(&fixture.path());
    assert!(matches!(second, Err(StoreError::Backend(_))), "redb holds a lock on its file");
}

#[tokio::test]
async fn a_new_file_is_a_new_log() {
    let (one, two) = (RedbFixture::new(), RedbFixture::new());
    assert_ne!(one.open(10).await.log_id(), two.open(10).await.log_id());
}

#[tokio::test]
async fn a_backup_taken_while_open_reopens_with_everything() {
    let fixture = RedbFixture::new();
    let store = fixture.open(MAX).await;
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    ok(store.create_purge(purge("shop", 0), AT)).await;
    ok(store.put_node(node("edge-1", "fra"))).await;
    ok(store.record_acks(vec![node_ack("edge-1", 2)])).await;
    ok(store.set_drain("fra", Some(AT))).await;
    let copy = fixture.dir.path().join("backup.redb");
    let records = ok(store.backup(copy.clone())).await;
    assert!(records >= 7, "{records}");
    // Never over an existing file (the live store's included).
    assert!(store.backup(copy.clone()).await.is_err());
    assert!(store.backup(fixture.path()).await.is_err());
    // Writes after the backup are not in it.
    ok(store.create_purge(purge("shop", 1), AT)).await;
    drop(store);
    let restored = EmbeddedStore::open(&copy).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok(restored.last_seq()).await, Seq(2));
    assert!(ok(restored.service(&id("shop"))).await.is_some());
    assert_eq!(ok(restored.nodes()).await[0].acked, Seq(2));
    assert_eq!(ok(restored.drained_pops()).await.len(), 1);
    let original = fixture.open(MAX).await;
    assert_eq!(restored.log_id(), original.log_id(), "the same log: nodes resume, not resync");
}

/// A file from before domains existed: its services' hosts are kept as verified (by the
/// operator's word) once, on the first open, so the upgrade serves what was served.
#[tokio::test]
async fn a_file_from_before_domains_keeps_its_hosts_served() {
    use redb::ReadableTable as _;

    use crate::domains::{DomainMethod, DomainStatus};
    use crate::store::DomainQuery;

    let fixture = RedbFixture::new();
    let store = EmbeddedStore::open(&fixture.path()).unwrap_or_else(|e| panic!("{e}"));
    ok(store.put_service(put("shop", "acme", &["shop.example", "*.shop.example"], Expect::Absent), AT)).await;
    // Make it as an older version left it: no domain tables' content, no marker, records
    // without verified_hosts.
    {
        let txn = store.db.begin_write().unwrap_or_else(|e| panic!("{e}"));
        txn.delete_table(super::domains::DOMAINS).unwrap_or_else(|e| panic!("{e}"));
        txn.delete_table(super::domains::SERVICE_DOMAINS).unwrap_or_else(|e| panic!("{e}"));
        {
            let mut meta = txn.open_table(super::META).unwrap_or_else(|e| panic!("{e}"));
            meta.remove("domains").unwrap_or_else(|e| panic!("{e}"));
            let mut services = txn.open_table(super::SERVICES).unwrap_or_else(|e| panic!("{e}"));
            let old = services.get("shop").unwrap_or_else(|e| panic!("{e}")).map(|v| v.value().to_vec());
            let mut record: serde_json::Value =
                serde_json::from_slice(&old.unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
            record.as_object_mut().map(|r| r.remove("verified_hosts"));
            let bytes = serde_json::to_vec(&record).unwrap_or_else(|e| panic!("{e}"));
            services.insert("shop", bytes.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        }
        txn.commit().unwrap_or_else(|e| panic!("{e}"));
    }
    drop(store);
    let store = fixture.open(MAX).await;
    let domains = ok(store.domains(DomainQuery::service(id("shop")))).await;
    let view: Vec<(&str, DomainStatus, Option<DomainMethod>)> =
        domains.iter().map(|d| (d.host.as_str(), d.status, d.method)).collect();
    assert_eq!(
        view,
        [
            ("*.shop.example", DomainStatus::Verified, Some(DomainMethod::Operator)),
            ("shop.example", DomainStatus::Verified, Some(DomainMethod::Operator))
        ]
    );
    let record = ok(store.service(&id("shop"))).await.unwrap_or_else(|| panic!("kept"));
    assert_eq!(record.verified_hosts, None, "an old record means every host, which is what is verified");
    // Once only: a later open does not bring back what a revocation took.
    drop(store);
    let store = fixture.open(MAX).await;
    assert_eq!(ok(store.domains(DomainQuery::service(id("shop")))).await.len(), 2);
}
