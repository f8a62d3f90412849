//! The PostgreSQL store under the common suite (a fresh database per test in one throwaway
//! cluster per test binary), plus migrations and the notifications replicas wake on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use outpost_config::Seq;

use super::{PostgresSettings, PostgresStore, follow_head};
use crate::store::suite::{AT, Fixture, MAX, Opened, ok, purge, put, store_suite, with_every_test};
use crate::store::{Expect, Store};

#[path = "../../../../tests/src/pg.rs"]
#[allow(dead_code)]
mod pg;

/// One cluster for the whole test binary (stopped by its watchdog when the binary exits).
fn cluster() -> &'static pg::PgCluster {
    static CLUSTER: OnceLock<pg::PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| pg::PgCluster::start().unwrap_or_else(|e| panic!("postgres: {e}")))
}

/// A fresh database for one test.
struct PgFixture {
    settings: PostgresSettings,
}

impl PgFixture {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let cluster = cluster();
        cluster.create_database(&name).unwrap_or_else(|e| panic!("{e}"));
        let settings = PostgresSettings::from_url(&cluster.url(&name)).unwrap_or_else(|e| panic!("{e}"));
        Self { settings }
    }
}

impl Fixture for PgFixture {
    fn open(&self, max_events: usize) -> Opened {
        let settings = self.settings.clone();
        Box::pin(async move {
            let store = PostgresStore::connect(&settings).await.unwrap_or_else(|e| panic!("{e}"));
            Arc::new(store.with_max_events(max_events)) as Arc<dyn Store>
        })
    }

    fn open_another(&self) -> Option<Opened> {
        Some(self.open(MAX))
    }
}

with_every_test!(store_suite!(PgFixture::new()));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once_and_share_one_log() {
    let fixture = PgFixture::new();
    let opened: Vec<_> = (0..4).map(|_| fixture.open(MAX)).collect();
    let stores = futures_util::future::join_all(opened).await;
    let ids: Vec<u64> = stores.iter().map(|s| s.log_id()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one identity: {ids:?}");
    let client = PostgresStore::connect(&fixture.settings).await.unwrap_or_else(|e| panic!("{e}"));
    let client = client.client().await.unwrap_or_else(|e| panic!("{e}"));
    let rows = client.query("SELECT version FROM schema_migrations ORDER BY version", &[]).await;
    let versions: Vec<i32> = rows.unwrap_or_else(|e| panic!("{e}")).iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, super::schema::MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>());
    // Another database is another log.
    let other = PgFixture::new().open(MAX).await;
    assert_ne!(other.log_id(), ids[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_through_one_replica_wakes_the_other() {
    let fixture = PgFixture::new();
    let writer = fixture.open(MAX).await;
    let follower = PostgresStore::connect(&fixture.settings).await.unwrap_or_else(|e| panic!("{e}"));
    // A catch-up interval far beyond the test: only the notification can wake it in time.
    let mut settings = fixture.settings.clone();
    settings.catch_up_interval = Duration::from_secs(3600);
    let (tx, mut heads) = tokio::sync::watch::channel(Seq(0));
    let on_head = move |seq: Seq| {
        tx.send_if_modified(|h| {
            let moved = seq > *h;
            if moved {
                *h = seq;
            }
            moved
        });
    };
    let task = follow_head(follower, settings, Arc::new(on_head));
    ok(writer.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    for n in 0..3 {
        ok(writer.create_purge(purge("shop", n), AT)).await;
    }
    let reached = tokio::time::timeout(Duration::from_secs(20), heads.wait_for(|h| *h >= Seq(4))).await.is_ok();
    task.abort();
    assert!(reached, "the follower saw head {:?}", *heads.borrow());
}

/// The follower's `LISTEN` connection is killed by the database (as a failover or an idle
/// timeout would): the appends made meanwhile still arrive, by the catch-up read and by the
/// head read after the reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listen_connection_loses_no_append() {
    let fixture = PgFixture::new();
    let writer = PostgresStore::connect(&fixture.settings).await.unwrap_or_else(|e| panic!("{e}"));
    let follower = PostgresStore::connect(&fixture.settings).await.unwrap_or_else(|e| panic!("{e}"));
    let mut settings = fixture.settings.clone();
    settings.catch_up_interval = Duration::from_millis(50);
    let (tx, mut heads) = tokio::sync::watch::channel(Seq(0));
    let on_head = move |seq: Seq| {
        tx.send_if_modified(|h| {
            let moved = seq > *h;
            *h = seq.max(*h);
            moved
        });
    };
    let task = follow_head(follower, settings, Arc::new(on_head));
    ok(writer.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    let seen = tokio::time::timeout(Duration::from_secs(20), heads.wait_for(|h| *h >= Seq(1))).await.is_ok();
    assert!(seen, "the first append arrives");
    // The head may have come by a catch-up read before LISTEN was up: wait for the connection.
    let client = writer.client().await.unwrap_or_else(|e| panic!("{e}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let killed = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1 AND datname = current_database()",
                &[&super::follow::LISTENER_NAME],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if !killed.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no LISTEN connection to kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in 0..3 {
        ok(writer.create_purge(purge("shop", n), AT)).await;
    }
    let reached = tokio::time::timeout(Duration::from_secs(20), heads.wait_for(|h| *h >= Seq(4))).await.is_ok();
    task.abort();
    assert!(reached, "the follower saw head {:?}", *heads.borrow());
}

/// A database that never answers: start-up retries for `start_timeout`, then fails with an
/// error that names the target and the setting, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_the_start_after_start_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = closed.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    drop(closed);
    let mut settings =
        PostgresSettings::from_url(&format!("postgres://cp@127.0.0.1:{port}/cdn")).unwrap_or_else(|e| panic!("{e}"));
    settings.start_timeout = Duration::from_secs(1);
    let failed = PostgresStore::connect_with_retry(&settings).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(failed.contains(&format!("cp@127.0.0.1:{port}/cdn")), "{failed}");
    assert!(failed.contains("store.start_timeout"), "{failed}");
}
