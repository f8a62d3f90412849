//! The lease on a service's order: one replica drives it at a time. Taking it, and every write
//! while holding it, is a compare-and-set on the state's revision ([`Store::put_acme_state`]),
//! so a replica that lost it (its lease lapsed and another took over) finds out at its next
//! write and stops.

use std::sync::Arc;

use outpost_config::Timestamp;

use super::order::Failed;
use crate::store::{AcmeState, Lease, Store};

/// A state this replica holds the lease on, as last written.
pub struct Held {
    pub state: AcmeState,
}

impl Held {
    /// Takes the lease on `state` (as read) for `holder` until `until`, with `change` applied;
    /// `None` when another replica wrote first.
    pub async fn take(
        store: &Arc<dyn Store>,
        mut state: AcmeState,
        holder: &str,
        until: Timestamp,
        change: impl FnOnce(&mut AcmeState),
    ) -> Result<Option<Self>, Failed> {
        state.lease = Some(Lease { holder: holder.to_owned(), until });
        change(&mut state);
        let written = store.put_acme_state(state).await.map_err(|e| Failed::new("store", e))?;
        Ok(written.map(|state| Self { state }))
    }

    /// Writes `change` to the state; fails when another replica wrote since (the lease was
    /// lost).
    pub async fn save(&mut self, store: &Arc<dyn Store>, change: impl FnOnce(&mut AcmeState)) -> Result<(), Failed> {
        let mut next = self.state.clone();
        change(&mut next);
        next.updated_at = Timestamp::from_system(std::time::SystemTime::now());
        match store.put_acme_state(next).await.map_err(|e| Failed::new("store", e))? {
            Some(written) => {
                self.state = written;
                Ok(())
            }
            None => Err(Failed::new("lease", "another control-plane replica took the order over")),
        }
    }
}
