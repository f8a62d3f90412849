//! The per-request meters: CPU time (the CPU the guest's thread spends inside the polls that run
//! the guest, so neither time waiting for a backend or the client nor time the OS gives other
//! threads counts) and memory (summed over the component's linear memories).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Marks "not inside a poll" in [`CpuMeter::poll_started`].
const IDLE: u64 = u64::MAX;

/// The calling thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`, read through the vDSO: tens of
/// nanoseconds), in nanoseconds.
pub(super) fn thread_cpu() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// CPU time of one request's guest. The guest only runs inside `poll` of the future that drives
/// it (wasmtime runs it on a fiber resumed from that poll, on the polling thread), so
/// [`Metered`] adds up the thread CPU time each poll takes; the epoch callback, which runs on
/// the guest's fiber, adds the poll in progress and decides whether the guest goes on.
/// Readings are nanoseconds of the polling thread's CPU clock, passed in so the logic is pure.
pub(super) struct CpuMeter {
    limit: Duration,
    /// Nanoseconds spent in finished polls.
    spent: AtomicU64,
    /// The thread CPU clock when the poll in progress began; `IDLE` between polls.
    poll_started: AtomicU64,
    exceeded: AtomicBool,
}

/// What the epoch callback does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Under the limit: yield to the runtime (other requests run), then go on.
    Yield,
    /// Over the limit: stop the guest with a trap.
    Stop,
}

impl CpuMeter {
    pub(super) fn new(limit: Duration) -> Self {
        Self { limit, spent: AtomicU64::new(0), poll_started: AtomicU64::new(IDLE), exceeded: AtomicBool::new(false) }
    }

    fn enter(&self, clock: u64) {
        self.poll_started.store(clock.min(IDLE - 1), Ordering::Relaxed);
    }

    fn leave(&self, clock: u64) {
        let started = self.poll_started.swap(IDLE, Ordering::Relaxed);
        if started != IDLE {
            self.spent.fetch_add(clock.saturating_sub(started), Ordering::Relaxed);
        }
    }

    /// CPU time used when the polling thread's clock reads `clock`, the poll in progress
    /// included.
    pub(super) fn used(&self, clock: u64) -> Duration {
        let mut nanos = self.spent.load(Ordering::Relaxed);
        let started = self.poll_started.load(Ordering::Relaxed);
        if started != IDLE {
            nanos = nanos.saturating_add(clock.saturating_sub(started));
        }
        Duration::from_nanos(nanos)
    }

    /// Called at each epoch deadline, on the thread running the guest.
    pub(super) fn check(&self, clock: u64) -> Verdict {
        if self.used(clock) > self.limit {
            self.exceeded.store(true, Ordering::Relaxed);
            Verdict::Stop
        } else {
            Verdict::Yield
        }
    }

    /// Whether [`check`](Self::check) stopped the guest.
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    pub(super) fn limit(&self) -> Duration {
        self.limit
    }
}

/// A future whose thread CPU time inside `poll` is charged to a [`CpuMeter`].
pub(super) struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Arc<CpuMeter>,
}

impl<F> Metered<F> {
    pub(super) fn new(meter: Arc<CpuMeter>, inner: F) -> Self {
        Self { inner: Box::pin(inner), meter }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.meter.enter(thread_cpu());
        let result = self.inner.as_mut().poll(cx);
        self.meter.leave(thread_cpu());
        result
    }
}

/// A future with a wall-clock limit, like `tokio::time::timeout`, except that the timer is only
/// set when the future first returns `Pending`: most guests answer in their first poll, and
/// then no timer entry is made and removed for them. A guest that runs on without yielding
/// still yields at its next epoch deadline, and the timer is set then. `None` once the limit
/// passed.
pub(super) struct WallClock<F> {
    inner: Pin<Box<F>>,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F> WallClock<F> {
    pub(super) fn new(limit: Duration, inner: F) -> Self {
        let deadline = tokio::time::Instant::now() + limit;
        Self { inner: Box::pin(inner), deadline, sleep: None }
    }
}

impl<F: Future> Future for WallClock<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        let deadline = self.deadline;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        sleep.as_mut().poll(cx).map(|()| None)
    }
}

/// The component's linear memories together may hold at most `limit` bytes. A growth past it is
/// refused (`memory.grow` returns -1): Rust's allocator then aborts, a trap, and `hit` tells the
/// host why.
pub(super) struct MemoryBudget {
    limit: usize,
    used: usize,
    pub(super) hit: bool,
}

/// Table elements per table: wasmtime's pooling default, so a guest that fits the pool fits here.
const MAX_TABLE_ELEMENTS: usize = 20_000;

impl MemoryBudget {
    pub(super) fn new(limit: usize) -> Self {
        Self { limit, used: 0, hit: false }
    }
}

impl wasmtime::ResourceLimiter for MemoryBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Called for each memory's initial size too (current = 0), so `used` is the sum.
        let more = desired.saturating_sub(current);
        if self.used.saturating_add(more) > self.limit {
            self.hit = true;
            return Ok(false);
        }
        self.used += more;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter as _;

    use super::*;

    #[test]
    fn cpu_counts_only_time_inside_polls() {
        let ms = |n: u64| n * 1_000_000;
        let meter = CpuMeter::new(Duration::from_millis(50));
        // 10ms of running, then (a backend's answer later) 30ms more: the thread's clock only
        // advances while it runs.
        meter.enter(ms(100));
        meter.leave(ms(110));
        meter.enter(ms(500));
        meter.leave(ms(530));
        assert_eq!(meter.used(ms(900)), Duration::from_millis(40));
        assert_eq!(meter.check(ms(900)), Verdict::Yield);
        assert!(!meter.exceeded());
        // A poll in progress counts up to the moment of the check.
        meter.enter(ms(1000));
        assert_eq!(meter.used(ms(1005)), Duration::from_millis(45));
        assert_eq!(meter.check(ms(1005)), Verdict::Yield);
        assert_eq!(meter.check(ms(1011)), Verdict::Stop);
        assert!(meter.exceeded());
    }

    #[test]
    fn the_thread_clock_advances_with_work_only() {
        let before = thread_cpu();
        std::thread::sleep(Duration::from_millis(30));
        let slept = thread_cpu() - before;
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let worked = thread_cpu() - before - slept;
        assert!(worked > slept, "spinning took {worked} ns of CPU, sleeping {slept} ns");
    }

    #[tokio::test(start_paused = true)]
    async fn the_wall_clock_stops_a_future_that_waits_too_long_only() {
        let quick = WallClock::new(Duration::from_millis(10), async { 7 });
        assert_eq!(quick.await, Some(7));
        let slow = WallClock::new(Duration::from_millis(10), tokio::time::sleep(Duration::from_millis(11)));
        assert_eq!(slow.await, None);
        let in_time = WallClock::new(Duration::from_millis(10), tokio::time::sleep(Duration::from_millis(9)));
        assert_eq!(in_time.await, Some(()));
    }

    #[test]
    fn memory_is_summed_over_memories() {
        let mut budget = MemoryBudget::new(10 << 20);
        // Two memories start at 4 MiB each; the first grows by 2, then by 1 more is refused.
        assert!(budget.memory_growing(0, 4 << 20, None).unwrap_or(false));
        assert!(budget.memory_growing(0, 4 << 20, None).unwrap_or(false));
        assert!(budget.memory_growing(4 << 20, 6 << 20, None).unwrap_or(false));
        assert!(!budget.hit);
        assert!(!budget.memory_growing(6 << 20, 7 << 20, None).unwrap_or(true));
        assert!(budget.hit);
        assert!(budget.table_growing(0, 1000, None).unwrap_or(false));
        assert!(!budget.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).unwrap_or(true));
    }
}
