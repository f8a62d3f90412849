//! The embedded store under the common suite, plus what only a one-file store has.

use std::path::PathBuf;
use std::sync::Arc;

use super::EmbeddedStore;
use crate::store::suite::{Fixture, Opened, store_suite, with_every_test};
use crate::store::{Store, StoreError};

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
