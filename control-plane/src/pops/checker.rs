//! The probe loop: every `health.interval`, probe every registered edge node (at most
//! `health.max_concurrent` at once), record the results, rebuild the table. A round that
//! takes longer than the interval delays the next one rather than overlapping it.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::Pops;
use super::probe::probe;

/// Starts the loop; it runs until the task is aborted (at shutdown).
pub fn spawn(pops: Arc<Pops>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(pops.settings.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            round(&pops).await;
        }
    })
}

/// One round: probe, record, rebuild.
pub async fn round(pops: &Pops) {
    let timeout = pops.settings.timeout;
    let token = pops.settings.node_admin_token.as_ref();
    let probes =
        pops.targets().into_iter().map(|(id, pop, admin)| async move { (id, pop, probe(admin, timeout, token).await) });
    let results: Vec<_> =
        futures_util::stream::iter(probes).buffer_unordered(pops.settings.max_concurrent).collect().await;
    pops.record(results);
}
