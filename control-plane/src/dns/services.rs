//! Which services exist, for `<service>.<zone>` queries: the set of ids, cached as of the
//! event log's head and reloaded from the store when the head has moved (a write in between).
//! A query reads the cache without waiting; only the first query after a write reloads, and
//! the others that arrive meanwhile wait for that one reload.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use outpost_config::{Seq, ServiceId};
use tokio::sync::watch;

use crate::store::{ServiceQuery, Store, StoreError};

/// Services read per store call while reloading.
const PAGE: usize = 1000;

pub struct ServiceIndex {
    store: Arc<dyn Store>,
    head: watch::Receiver<Seq>,
    cached: RwLock<Option<(Seq, Arc<HashSet<ServiceId>>)>>,
    reload: tokio::sync::Mutex<()>,
}

impl ServiceIndex {
    /// `head` is the log's head as the API bumps it after each write (`Nodes::head`).
    pub fn new(store: Arc<dyn Store>, head: watch::Receiver<Seq>) -> Self {
        Self { store, head, cached: RwLock::new(None), reload: tokio::sync::Mutex::new(()) }
    }

    /// Whether `id` is a service now.
    pub async fn contains(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let head = *self.head.borrow();
        if let Some(ids) = self.current(head) {
            return Ok(ids.contains(id));
        }
        let _reloading = self.reload.lock().await;
        if let Some(ids) = self.current(head) {
            return Ok(ids.contains(id));
        }
        let ids = Arc::new(self.load().await?);
        let found = ids.contains(id);
        *self.cached.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((head, ids));
        Ok(found)
    }

    fn current(&self, head: Seq) -> Option<Arc<HashSet<ServiceId>>> {
        let cached = self.cached.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        cached.as_ref().filter(|(seq, _)| *seq >= head).map(|(_, ids)| ids.clone())
    }

    async fn load(&self) -> Result<HashSet<ServiceId>, StoreError> {
        let mut ids = HashSet::new();
        let mut after = None;
        loop {
            let page = self.store.services(ServiceQuery { tenant: None, after: after.take(), limit: PAGE }).await?;
            let full = page.len() == PAGE;
            after = page.last().map(|s| s.id.clone());
            ids.extend(page.into_iter().map(|s| s.id));
            if !full {
                return Ok(ids);
            }
        }
    }
}
