//! The open API connections: how many (`limits.max_connections`), which are idle and since
//! when, and the watchdog that closes a connection idle too long. The same bookkeeping as the
//! edge node's listeners (`edge-node/src/listen/conns.rs`; the crates share no server code, as
//! `outpost-config` knows no server).
//!
//! A connection is busy while a request on it is in progress (its response body not yet all
//! sent: a node's event stream stays busy), idle otherwise. An idle connection that never had
//! a request is closed `header_read_timeout` after accept (protocol detection and an HTTP/2
//! preface that never finish included); one idle after a request, `keepalive_timeout` after its
//! last request ended. When full, a new connection closes the connection idle the longest; with
//! none idle it is refused. Requests in progress are never cut to make room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
// tokio's clock, so that tests under a paused clock see time pass.
use tokio::time::Instant;

/// The timeouts the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From accept to the first request (TLS, detection, preface, headers).
    pub first_request: Duration,
    /// From the end of one request to the next.
    pub keepalive: Duration,
}

/// One connection's activity, shared by its requests and the watchdog.
pub struct Activity {
    in_flight: AtomicUsize,
    /// Nanoseconds from [`Conns::epoch`] to when the connection last became idle.
    idle_since: AtomicU64,
    /// Requests begun on the connection.
    requests: AtomicU64,
    close: Notify,
    epoch: Instant,
}

/// Why the watchdog ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No complete first request within `header_read_timeout` of accept.
    FirstRequestTimeout,
    /// Idle for `keepalive_timeout` after a request.
    KeepaliveTimeout,
    /// Closed to make room for a new connection, being the one idle the longest.
    Evicted,
}

impl Closed {
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::FirstRequestTimeout => "first_request_timeout",
            Closed::KeepaliveTimeout => "keepalive_timeout",
            Closed::Evicted => "evicted",
        }
    }
}

impl Activity {
    fn new(epoch: Instant, now: Instant) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(nanos(epoch, now)),
            requests: AtomicU64::new(0),
            close: Notify::new(),
            epoch,
        }
    }

    /// A request begins; the connection is busy until the returned guard drops (hold it until
    /// the response body is sent).
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// When the connection became idle, or `None` while busy.
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.epoch + Duration::from_nanos(self.idle_since.load(Ordering::Acquire)))
    }

    /// Resolves when the connection must close: idle past its timeout, or evicted. Sleeps at
    /// most one timer at a time; a busy connection is looked at again a keep-alive later.
    pub async fn expired(&self, timeouts: Timeouts) -> Closed {
        loop {
            let now = Instant::now();
            let first = self.requests.load(Ordering::Relaxed) == 0;
            let deadline = match deadline(self.idle_since(), first, timeouts) {
                Some(at) if at <= now => {
                    return if first { Closed::FirstRequestTimeout } else { Closed::KeepaliveTimeout };
                }
                Some(at) => at,
                None => now + timeouts.keepalive,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.close.notified() => return Closed::Evicted,
            }
        }
    }
}

/// When an idle connection times out: `None` while busy. Pure, for the table test.
fn deadline(idle_since: Option<Instant>, first_request: bool, timeouts: Timeouts) -> Option<Instant> {
    let limit = if first_request { timeouts.first_request } else { timeouts.keepalive };
    idle_since.map(|since| since + limit)
}

/// A request in progress; dropping it (the response body sent, or the request abandoned) may
/// make the connection idle.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(nanos(a.epoch, Instant::now()), Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn nanos(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// The connections open on one listener.
pub struct Conns {
    max: usize,
    epoch: Instant,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Activity>>,
}

/// An admitted connection: leaves the table when dropped.
pub struct Slot {
    conns: Arc<Conns>,
    id: u64,
    pub activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut table) = self.conns.table.lock() {
            table.open.remove(&self.id);
        }
    }
}

/// What [`Conns::admit`] did.
pub enum Admission {
    Admitted(Slot),
    /// Admitted after closing the connection idle the longest.
    MadeRoom(Slot),
    /// Full, and every connection busy.
    Refused,
}

impl Conns {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max: max.max(1), epoch: Instant::now(), table: Mutex::new(Table::default()) })
    }

    /// A slot for a new connection, closing the longest-idle one when the listener is full.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let now = Instant::now();
        let Ok(mut table) = self.table.lock() else { return Admission::Refused };
        let mut made_room = false;
        if table.open.len() >= self.max {
            let idle = table.open.iter().map(|(id, a)| (*id, a.idle_since()));
            let Some(victim) = longest_idle(idle) else { return Admission::Refused };
            if let Some(activity) = table.open.remove(&victim) {
                // Its task sees this and drops the connection (and its socket) at once.
                activity.close.notify_one();
            }
            made_room = true;
        }
        let id = table.next_id;
        table.next_id += 1;
        let activity = Arc::new(Activity::new(self.epoch, now));
        table.open.insert(id, activity.clone());
        drop(table);
        let slot = Slot { conns: self.clone(), id, activity };
        if made_room { Admission::MadeRoom(slot) } else { Admission::Admitted(slot) }
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.table.lock().map(|t| t.open.len()).unwrap_or(0)
    }
}

/// The connection idle the longest (ties: the lowest id, the oldest); `None` when all are busy.
fn longest_idle(conns: impl Iterator<Item = (u64, Option<Instant>)>) -> Option<u64> {
    conns.filter_map(|(id, since)| since.map(|s| (s, id))).min().map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts { first_request: Duration::from_secs(10), keepalive: Duration::from_secs(60) };

    #[test]
    fn deadlines() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (case, idle since, before its first request, deadline)
        let cases = [
            ("fresh connection: header_read_timeout from accept", Some(t0), true, Some(t0 + s(10))),
            ("between requests: keepalive_timeout from the last one", Some(t0), false, Some(t0 + s(60))),
            ("busy (a request or a body in progress): no deadline", None, false, None),
            ("busy with its first request", None, true, None),
        ];
        for (case, since, first, want) in cases {
            assert_eq!(deadline(since, first, T), want, "{case}");
        }
    }

    #[test]
    fn the_longest_idle_goes_first_and_busy_ones_never() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        type Case = (&'static str, Vec<(u64, Option<Instant>)>, Option<u64>);
        let cases: [Case; 4] = [
            ("oldest idle", vec![(1, Some(t0 + s(5))), (2, Some(t0)), (3, Some(t0 + s(9)))], Some(2)),
            ("busy skipped", vec![(1, None), (2, Some(t0 + s(3))), (3, None)], Some(2)),
            ("all busy: refuse", vec![(1, None), (2, None)], None),
            ("tie: the older connection", vec![(7, Some(t0)), (4, Some(t0))], Some(4)),
        ];
        for (case, conns, want) in cases {
            assert_eq!(longest_idle(conns.into_iter()), want, "{case}");
        }
    }

    #[test]
    fn a_full_table_evicts_an_idle_connection_and_refuses_when_all_are_busy() {
        let conns = Conns::new(2);
        let Admission::Admitted(a) = conns.admit() else { panic!("room for a") };
        let Admission::Admitted(b) = conns.admit() else { panic!("room for b") };
        let busy_b = b.activity.begin();
        let Admission::MadeRoom(c) = conns.admit() else { panic!("a is idle: made room") };
        assert_eq!(conns.open(), 2);
        let _busy_c = c.activity.begin();
        assert!(matches!(conns.admit(), Admission::Refused), "b and c busy");
        drop(busy_b);
        assert!(matches!(conns.admit(), Admission::MadeRoom(_)), "b idle again");
        drop(a);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_closes_idle_connections_and_spares_busy_ones() {
        let conns = Conns::new(4);
        let Admission::Admitted(slot) = conns.admit() else { panic!("admitted") };
        assert_eq!(slot.activity.expired(T).await, Closed::FirstRequestTimeout);
        let Admission::Admitted(slot) = conns.admit() else { panic!("admitted") };
        let busy = slot.activity.begin();
        let watch = slot.activity.clone();
        let expired = tokio::spawn(async move { watch.expired(T).await });
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(!expired.is_finished(), "a request in progress is never timed out");
        drop(busy);
        assert_eq!(expired.await.ok(), Some(Closed::KeepaliveTimeout));
    }
}
