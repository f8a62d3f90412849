//! The periodic check: every round (`domains.pending_interval`, at most a minute apart), the
//! domains due ([`rules::due`]) are checked one after another, at most
//! `domains.max_checks_per_round`; a change to what is served reaches the nodes as the
//! service's next version. Each control-plane replica runs its own: a domain checked twice
//! is harmless (the second finds it not due, or records the same outcome).

use std::sync::Arc;

use outpost_config::Timestamp;

use super::{Domains, MAX_SCAN, rules};
use crate::nodes::Nodes;
use crate::store::{DomainQuery, Store, StoreError};

/// Starts the periodic check; abort the handle to stop it.
pub fn spawn(store: Arc<dyn Store>, domains: Arc<Domains>, nodes: Arc<Nodes>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = domains.settings.round_interval();
        loop {
            tokio::time::sleep(every).await;
            match round(store.as_ref(), &domains, &nodes).await {
                Ok(0) => {}
                Ok(checked) => tracing::debug!(checked, "domains: round done"),
                Err(error) => tracing::warn!("domains: periodic check: {error}"),
            }
        }
    })
}

/// One round; returns how many domains it checked.
pub async fn round(store: &dyn Store, domains: &Domains, nodes: &Nodes) -> Result<usize, StoreError> {
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let policy = domains.settings.policy();
    let all = store.domains(DomainQuery::all(MAX_SCAN)).await?;
    let due: Vec<_> =
        all.into_iter().filter(|d| rules::due(d, now, &policy)).take(domains.settings.max_checks_per_round).collect();
    let mut checked = 0;
    for domain in due {
        let now = Timestamp::from_system(std::time::SystemTime::now());
        match domains.check(store, &domain, now).await {
            Ok(done) => {
                checked += 1;
                if let Some(event) = done.event {
                    nodes.appended(event.seq);
                }
            }
            // Removed from its service meanwhile.
            Err(StoreError::DomainGone { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(checked)
}
