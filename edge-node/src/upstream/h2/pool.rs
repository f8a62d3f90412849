//! Which HTTP/2 connection a new stream goes on: a pure choice over the connections' loads.
//!
//! HTTP/2 multiplexes, so one connection per upstream is the aim (RFC 9113 §9.1: "clients
//! SHOULD NOT open more than one HTTP/2 connection to a given host and port pair"). A stream
//! goes on the oldest usable connection with a free slot under the peer's
//! SETTINGS_MAX_CONCURRENT_STREAMS (§6.5.2); when every slot is taken, another connection is
//! opened, up to `upstream.h2_max_connections`; past that the stream waits on the least loaded
//! connection for a slot (h2 holds it "pending open" until one frees). A connection that got a
//! GOAWAY (§6.8) or failed is not usable: it finishes its streams and closes.
//!
//! Others: Envoy opens another connection when `max_concurrent_streams` is reached (bounded by
//! its `max_connections` breaker); hyper's pool shares one connection and lets h2 queue.

/// One connection as the choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Streams in flight on it (ours, counted until their response body ends).
    pub open: usize,
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS as h2 applies it.
    pub max: usize,
    /// Neither closed nor going away.
    pub usable: bool,
}

/// Where the next stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// On this connection, which has a free slot.
    Use(usize),
    /// On a new connection.
    Dial,
    /// On this connection, waiting for a slot: the connection bound is reached.
    Queue(usize),
}

/// The choice for a new stream among `conns` (oldest first), with at most `max_conns` usable
/// connections.
pub fn pick(conns: &[Load], max_conns: usize) -> Pick {
    let usable = || conns.iter().enumerate().filter(|(_, c)| c.usable);
    if let Some((i, _)) = usable().find(|(_, c)| c.open < c.max) {
        return Pick::Use(i);
    }
    if usable().count() < max_conns.max(1) {
        return Pick::Dial;
    }
    match usable().min_by_key(|(_, c)| c.open) {
        Some((i, _)) => Pick::Queue(i),
        None => Pick::Dial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(open: usize, max: usize, usable: bool) -> Load {
        Load { open, max, usable }
    }

    #[test]
    fn streams_share_a_connection_until_its_slots_are_taken() {
        // (case, connections, max connections, pick)
        let cases = [
            ("no connection yet: dial", vec![], 4, Pick::Dial),
            ("RFC 9113 §9.1: one connection while it has room", vec![load(3, 100, true)], 4, Pick::Use(0)),
            (
                "§6.5.2: SETTINGS_MAX_CONCURRENT_STREAMS reached: another connection",
                vec![load(2, 2, true)],
                4,
                Pick::Dial,
            ),
            ("the oldest with room first", vec![load(2, 2, true), load(1, 2, true), load(0, 2, true)], 4, Pick::Use(1)),
            ("bound reached: wait on the least loaded", vec![load(5, 2, true), load(3, 2, true)], 2, Pick::Queue(1)),
            ("§6.8: a connection going away takes no stream", vec![load(0, 100, false)], 4, Pick::Dial),
            (
                "connections going away do not count towards the bound",
                vec![load(0, 100, false), load(0, 100, false)],
                1,
                Pick::Dial,
            ),
            ("§6.5.2: a peer that allows 0 streams: dial", vec![load(0, 0, true)], 2, Pick::Dial),
            ("a bound of 0 reads as 1", vec![], 0, Pick::Dial),
            ("a bound of 0 reads as 1, then queues", vec![load(1, 1, true)], 0, Pick::Queue(0)),
        ];
        for (name, conns, max_conns, expected) in cases {
            assert_eq!(pick(&conns, max_conns), expected, "{name}");
        }
    }
}
