//! Whether a node is live: connected now, or dropped less than `nodes.grace` ago (it is
//! reconnecting). A pure function of the presence and `now`.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// A node's stream, as the registry sees it.
#[derive(Debug, Default)]
pub enum Presence {
    /// No stream since the control plane started.
    #[default]
    Never,
    /// A stream is open. Dropping `stop` ends it (a newer stream replaced it, or shutdown).
    Connected { generation: u64, stop: oneshot::Sender<()> },
    /// The stream ended at `since`.
    Dropped { since: Instant },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_while_connected_and_for_the_grace_after() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let (stop, _rx) = oneshot::channel();
        let cases = [
            (Presence::Never, t0, false),
            (Presence::Connected { generation: 1, stop }, t0 + Duration::from_secs(3600), true),
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
    fn only_the_current_generation_is_the_stream() {
        let (stop, _rx) = oneshot::channel();
        let presence = Presence::Connected { generation: 2, stop };
        assert!(presence.is_stream(2));
        assert!(!presence.is_stream(1));
        assert!(!Presence::Dropped { since: Instant::now() }.is_stream(2));
    }
}
