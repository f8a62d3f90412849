//! The store test suite, one set of tests for every [`Store`]: each test is a function of a
//! [`Fixture`] (a way to open, and reopen, one store's data), and [`store_suite!`] turns the
//! list into `#[tokio::test]`s beside each implementation. A guarantee of the trait's docs is
//! tested here, once, so both stores are held to the same words.

mod acme;
mod certificates;
mod concurrent;
mod domains;
mod functions;
mod log;
mod presence;
mod services;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use outpost_config::{PurgeId, PurgeTarget, ServiceId, TenantId, Timestamp};
use serde_json::json;

pub(crate) use acme::*;
pub(crate) use certificates::*;
pub(crate) use concurrent::*;
pub(crate) use domains::*;
pub(crate) use functions::*;
pub(crate) use log::*;
pub(crate) use presence::*;
pub(crate) use services::*;

use super::{Expect, NewPurge, ServicePut, Store, StoreFuture};

pub(crate) type Opened = Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>>;

/// One store's data, opened as often as a test needs.
pub(crate) trait Fixture: Send + Sync {
    /// Opens the store (again) with `max_events`. A single-process store may require that the
    /// previous handle was dropped first; the tests drop it.
    fn open(&self, max_events: usize) -> Opened;

    /// A second, independent handle on the same data while the first is open (another
    /// replica), if the store supports several; `None` for a single-process store.
    fn open_another(&self) -> Option<Opened>;
}

/// Generates one `#[tokio::test]` per suite test, each with a fresh fixture from `$make`.
macro_rules! store_suite {
    ($make:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let fixture = $make;
                $crate::store::suite::$test(&fixture).await;
            }
        )*
    };
}
pub(crate) use store_suite;

/// Every suite test, for `store_suite!(fixture; all_suite_tests!())`-style lists.
macro_rules! with_every_test {
    ($callback:ident!($make:expr)) => {
        $callback!($make;
            writes_are_versioned_by_their_event,
            writes_that_expect_another_state_conflict,
            a_host_belongs_to_one_service,
            lists_page_by_id_within_a_tenant,
            everything_survives_a_reopen_and_numbers_go_on,
            a_snapshot_is_the_state_at_its_seq,
            drains_are_kept_across_a_reopen,
            the_log_keeps_at_most_max_events_and_never_reuses_a_number,
            node_acks_only_go_up_and_survive_a_reregistration_and_a_reopen,
            seen_times_and_node_drains_survive_a_reregistration_and_a_reopen,
            a_deleted_node_is_gone_with_its_acks,
            versions_activate_roll_back_and_release_their_bytes,
            certificates_are_events_listed_in_order_and_go_with_their_service,
            concurrent_writers_get_unique_gap_free_numbers,
            of_racing_conditional_writes_exactly_one_wins,
            domains_follow_their_hosts_and_verification_writes_a_version,
            a_hold_stands_while_its_replica_renews_and_lapses_when_it_stops,
            a_release_clears_only_its_own_streams_hold,
            presence_lists_every_node_with_its_acks_and_drains,
            a_tenants_purge_bucket_is_shared_by_every_handle,
            challenges_are_events_and_in_snapshots_across_a_reopen,
            acme_states_are_compare_and_set_and_accounts_first_wins,
        );
    };
}
pub(crate) use with_every_test;

pub(crate) fn id(name: &str) -> ServiceId {
    ServiceId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn put(name: &str, owner: &str, hosts: &[&str], expect: Expect) -> ServicePut {
    ServicePut {
        id: id(name),
        tenant: tenant(owner),
        config: json!({"name": name, "hosts": hosts, "origin": "http://o.example"}),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        expect,
        function: None,
        decreed: Vec::new(),
    }
}

pub(crate) fn purge(service: &str, n: usize) -> NewPurge {
    NewPurge {
        id: PurgeId(format!("p-{service}-{n}")),
        service: id(service),
        tenant: tenant("acme"),
        soft: false,
        targets: vec![PurgeTarget::All],
    }
}

pub(crate) const AT: Timestamp = Timestamp(1_795_445_600_000);

pub(crate) const MAX: usize = crate::store::embedded::DEFAULT_MAX_EVENTS;

pub(crate) async fn ok<T>(future: StoreFuture<'_, T>) -> T {
    future.await.unwrap_or_else(|e| panic!("{e}"))
}
