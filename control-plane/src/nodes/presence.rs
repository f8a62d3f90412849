//! Whether a node is live: connected now, or dropped less than `nodes.grace` ago (it is
//! reconnecting). Whether a purge must wait for it: live, or seen within
//! `nodes.offline_after` (the last-seen time is in the store, so this holds across a restart
//! of the control plane). Pure functions of the presence, the times and `now`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use outpost_config::Timestamp;
use tokio::sync::{Notify, oneshot};

/// A node's stream, as the registry sees it.
#[derive(Debug, Default)]
pub enum Presence {
    /// No stream since the control plane started.
    #[default]
    Never,
    /// A stream is open. Dropping `stop` ends it (shutdown, deregistration).
    Connected {
        generation: u64,
        stop: oneshot::Sender<()>,
        /// The connection that holds it (logged and reported to a second claimant).
        peer: Option<SocketAddr>,
        /// Wakes the stream to send a heartbeat now: a write to a connection whose peer is
        /// gone fails, so a claimant's retry finds the id free once the holder is dead.
        poke: std::sync::Arc<Notify>,
    },
    /// The stream ended at `since`.
    Dropped { since: Instant },
}

/// Whether another replica's hold on a node (as of the last presence sync) makes it live at
/// `now`: while the holder's lease runs, and for `grace` after (its replica died or lost the
/// database: the node is reconnecting elsewhere), as a stream dropped here would be. A node
/// released (by any replica) less than `grace` ago is live too: `seen_at` is the release.
pub fn is_live_elsewhere(
    held_until: Option<Timestamp>,
    seen_at: Option<Timestamp>,
    now: Timestamp,
    grace: Duration,
) -> bool {
    let grace = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let within = |at: Timestamp| now.0 < at.0.saturating_add(grace);
    held_until.is_some_and(within) || seen_at.is_some_and(within)
}

impl Presence {
    /// Live while connected, and for `grace` after a drop.
    pub fn is_live(&self, now: Instant, grace: Duration) -> bool {
        match self {
            Presence::Never => false,
            Presence::Connected { .. } => true,
            Presence::Dropped { since } => now.saturating_duration_since(*since) < grace,
        }
    }

    /// Whether the stream of `generation` is the current one.
    pub fn is_stream(&self, generation: u64) -> bool {
        matches!(self, Presence::Connected { generation: current, .. } if *current == generation)
    }
}

/// Whether a node seen last at `last_seen` (wall clock) still counts as one the fleet has:
/// a purge is not complete without it. `live` nodes always count.
pub fn is_expected(live: bool, last_seen: Timestamp, now: Timestamp, offline_after: Duration) -> bool {
    let window = u64::try_from(offline_after.as_millis()).unwrap_or(u64::MAX);
    live || now.0.saturating_sub(last_seen.0) < window
}

/// Whether a node with no stream yet counts for PoP health in the control plane's first
/// `startup_grace`: it was expected (seen lately), its stream has not come back since the
/// start, and the grace is not over: a restart must not steer DNS away from PoPs whose edges
/// are reconnecting.
pub fn is_reconnecting(presence: &Presence, expected: bool, since_start: Duration, startup_grace: Duration) -> bool {
    matches!(presence, Presence::Never) && expected && since_start < startup_grace
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected(generation: u64) -> Presence {
        let (stop, _rx) = oneshot::channel();
        Presence::Connected { generation, stop, peer: None, poke: Default::default() }
    }

    #[test]
    fn live_while_connected_and_for_the_grace_after() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let cases = [
            (Presence::Never, t0, false),
            (connected(1), t0 + Duration::from_secs(3600), true),
            (Presence::Dropped { since: t0 }, t0, true),
            (Presence::Dropped { since: t0 }, t0 + Duration::from_millis(9_999), true),
            (Presence::Dropped { since: t0 }, t0 + grace, false),
            // A clock read before the drop (another thread's `now`) counts as no time passed.
            (Presence::Dropped { since: t0 + Duration::from_secs(1) }, t0, true),
        ];
        for (presence, now, live) in cases {
            assert_eq!(presence.is_live(now, grace), live, "{presence:?}");
        }
    }

    #[test]
    fn a_node_held_elsewhere_is_live_while_the_lease_runs_and_for_the_grace_after() {
        let grace = Duration::from_secs(10);
        // (held until, seen at, now, live)
        let cases = [
            (None, None, 1_000, false),
            (Some(5_000), None, 1_000, true),
            (Some(5_000), None, 14_999, true),
            (Some(5_000), None, 15_000, false),
            // Released at 2s: live until 12s, as a stream dropped here.
            (None, Some(2_000), 11_999, true),
            (None, Some(2_000), 12_000, false),
        ];
        for (until, seen, now, live) in cases {
            let got = is_live_elsewhere(until.map(Timestamp), seen.map(Timestamp), Timestamp(now), grace);
            assert_eq!(got, live, "{until:?} {seen:?} at {now}");
        }
    }

    #[test]
    fn only_the_current_generation_is_the_stream() {
        let presence = connected(2);
        assert!(presence.is_stream(2));
        assert!(!presence.is_stream(1));
        assert!(!Presence::Dropped { since: Instant::now() }.is_stream(2));
    }

    #[test]
    fn a_node_seen_within_the_window_is_expected() {
        let window = Duration::from_secs(600);
        let now = Timestamp(1_000_000);
        // (live, last seen, expected)
        let cases = [
            (true, Timestamp(0), true),
            (false, Timestamp(1_000_000), true),
            (false, Timestamp(1_000_000 - 599_999), true),
            (false, Timestamp(1_000_000 - 600_000), false),
            (false, Timestamp(0), false),
            // Seen "after" now (another clock): no time passed.
            (false, Timestamp(2_000_000), true),
        ];
        for (live, seen, expected) in cases {
            assert_eq!(is_expected(live, seen, now, window), expected, "{live} {seen:?}");
        }
    }

    #[test]
    fn only_an_expected_node_not_back_yet_is_reconnecting_during_the_startup_grace() {
        let grace = Duration::from_secs(15);
        let early = Duration::from_secs(3);
        assert!(is_reconnecting(&Presence::Never, true, early, grace));
        assert!(!is_reconnecting(&Presence::Never, true, grace, grace), "the grace is over");
        assert!(!is_reconnecting(&Presence::Never, false, early, grace), "gone longer than offline_after");
        // Back and dropped again: its own grace decides, not the start's.
        assert!(!is_reconnecting(&Presence::Dropped { since: Instant::now() }, true, early, grace));
        assert!(!is_reconnecting(&connected(1), true, early, grace));
    }
}
