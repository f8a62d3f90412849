//! The per-request meters: CPU time (the time the guest's thread spends inside the polls that
//! run the guest, by the thread's CPU clock once the guest runs past an epoch tick, so neither
//! time waiting for a backend or the client nor, for a guest that runs long, time the OS gives
//! other threads counts), the wall-clock limit, and memory (summed over the component's linear
//! memories).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Marks "not inside a poll" and "no CPU-clock reading yet" in [`CpuMeter`].
const IDLE: u64 = u64::MAX;

/// The calling thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds. Not in the vDSO:
/// a system call each (about a microsecond in a VM), hence read only for long-running guests.
pub(super) fn thread_cpu() -> u64 {
    nanos(rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime))
}

/// The monotonic clock (vDSO: tens of nanoseconds), in nanoseconds.
pub(super) fn monotonic() -> u64 {
    nanos(rustix::time::clock_gettime(rustix::time::ClockId::Monotonic))
}

fn nanos(t: rustix::time::Timespec) -> u64 {
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// CPU time of one request's guest. The guest only runs inside `poll` of the future that drives
/// it (wasmtime runs it on a fiber resumed from that poll, on the polling thread), so
/// [`Metered`] adds up the time each poll takes; the epoch callback, which runs on the guest's
/// fiber, adds the poll in progress and decides whether the guest goes on.
///
/// Two clocks, so that short guests cost no system call: until the guest's first epoch
/// deadline, polls are timed by the monotonic clock (their CPU time, unless the OS preempted
/// the thread during them: at most the first one or two epoch ticks can be overcounted so).
/// From the first deadline on, the guest is one that runs long, and every poll is timed by the
/// thread's CPU clock. Readings are nanoseconds passed in, so the logic is pure.
pub(super) struct CpuMeter {
    limit: Duration,
    /// Nanoseconds charged: finished polls, and the poll in progress up to its last check.
    spent: AtomicU64,
    /// The monotonic clock when the poll in progress began; `IDLE` between polls.
    poll_wall: AtomicU64,
    /// The thread CPU clock at the last reading in the poll in progress; `IDLE` before one.
    poll_cpu: AtomicU64,
    /// Whether an epoch deadline has passed: polls are then timed by the CPU clock.
    long: AtomicBool,
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
        Self {
            limit,
            spent: AtomicU64::new(0),
            poll_wall: AtomicU64::new(IDLE),
            poll_cpu: AtomicU64::new(IDLE),
            long: AtomicBool::new(false),
            exceeded: AtomicBool::new(false),
        }
    }

    fn charge(&self, nanos: u64) {
        self.spent.fetch_add(nanos, Ordering::Relaxed);
    }

    /// A poll begins: `wall` is the monotonic clock; `cpu` reads the thread's CPU clock, called
    /// only for a guest that runs long.
    fn enter(&self, wall: u64, cpu: impl FnOnce() -> u64) {
        self.poll_wall.store(wall.min(IDLE - 1), Ordering::Relaxed);
        let cpu = if self.long.load(Ordering::Relaxed) { cpu().min(IDLE - 1) } else { IDLE };
        self.poll_cpu.store(cpu, Ordering::Relaxed);
    }

    /// The poll ends: charges what it took since its last reading.
    fn leave(&self, wall: u64, cpu: impl FnOnce() -> u64) {
        let started = self.poll_wall.swap(IDLE, Ordering::Relaxed);
        let cpu_mark = self.poll_cpu.swap(IDLE, Ordering::Relaxed);
        if cpu_mark != IDLE {
            self.charge(cpu().saturating_sub(cpu_mark));
        } else if started != IDLE {
            self.charge(wall.saturating_sub(started));
        }
    }

    /// Called at each epoch deadline, on the thread running the guest, with both clocks' time.
    pub(super) fn check(&self, wall: u64, cpu: u64) -> Verdict {
        let cpu_mark = self.poll_cpu.swap(cpu.min(IDLE - 1), Ordering::Relaxed);
        if cpu_mark != IDLE {
            self.charge(cpu.saturating_sub(cpu_mark));
        } else {
            // The first reading in this poll: what ran before it counts by the monotonic clock.
            let started = self.poll_wall.load(Ordering::Relaxed);
            if started != IDLE {
                self.charge(wall.saturating_sub(started));
            }
        }
        self.long.store(true, Ordering::Relaxed);
        if self.used() > self.limit {
            self.exceeded.store(true, Ordering::Relaxed);
            Verdict::Stop
        } else {
            Verdict::Yield
        }
    }

    /// CPU time charged so far (the poll in progress up to its last check).
    pub(super) fn used(&self) -> Duration {
        Duration::from_nanos(self.spent.load(Ordering::Relaxed))
    }

    /// Whether [`check`](Self::check) stopped the guest.
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    pub(super) fn limit(&self) -> Duration {
        self.limit
    }
}

/// A future whose time inside `poll` is charged to a [`CpuMeter`].
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
        self.meter.enter(monotonic(), thread_cpu);
        let result = self.inner.as_mut().poll(cx);
        self.meter.leave(monotonic(), thread_cpu);
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
        let never = || -> u64 { panic!("a short guest reads no CPU clock") };
        let meter = CpuMeter::new(Duration::from_millis(50));
        // Short polls, before any epoch deadline: 10ms, then (a backend's answer later) 5ms
        // more, by the monotonic clock; the 390ms between them are not inside a poll.
        meter.enter(ms(100), never);
        meter.leave(ms(110), never);
        meter.enter(ms(500), never);
        meter.leave(ms(505), never);
        assert_eq!(meter.used(), Duration::from_millis(15));
        // A poll that runs into a deadline: its first 10ms by the monotonic clock, the rest by
        // the CPU clock (30ms of CPU in 100ms of wall time: the thread was preempted).
        meter.enter(ms(1000), never);
        assert_eq!(meter.check(ms(1010), ms(7000)), Verdict::Yield);
        assert_eq!(meter.used(), Duration::from_millis(25));
        meter.leave(ms(1100), || ms(7030));
        assert_eq!(meter.used(), Duration::from_millis(55));
        // Over the limit, but only a check stops a guest (this one has ended).
        assert!(!meter.exceeded());
    }

    #[test]
    fn a_long_guest_is_timed_by_the_cpu_clock_and_stopped_past_the_limit() {
        let ms = |n: u64| n * 1_000_000;
        let meter = CpuMeter::new(Duration::from_millis(50));
        meter.enter(ms(0), || panic!("not long yet"));
        assert_eq!(meter.check(ms(10), ms(200)), Verdict::Yield);
        meter.leave(ms(12), || ms(202));
        assert_eq!(meter.used(), Duration::from_millis(12));
        // From now on every poll reads the CPU clock: 100ms of wall time, 20ms of CPU.
        meter.enter(ms(20), || ms(300));
        meter.leave(ms(120), || ms(320));
        assert_eq!(meter.used(), Duration::from_millis(32));
        // A poll in progress counts up to each check.
        meter.enter(ms(200), || ms(400));
        assert_eq!(meter.check(ms(210), ms(410)), Verdict::Yield);
        assert_eq!(meter.used(), Duration::from_millis(42));
        assert!(!meter.exceeded());
        assert_eq!(meter.check(ms(220), ms(419)), Verdict::Stop);
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
