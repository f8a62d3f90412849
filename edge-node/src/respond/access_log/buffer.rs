//! Where lines wait: per-worker buffers (sharded, so request threads do not contend for one
//! lock) and the bounded queue of filled buffers the writer thread drains. Both are bounded in
//! bytes; nothing here blocks on I/O, so a request thread holds a lock only while it formats
//! one line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Lines handed over together: complete lines only, each ending in `\n`.
#[derive(Debug, Default)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub lines: u64,
}

/// One buffer per worker thread (by a thread's slot number, modulo the count), each handed
/// over when it reaches `limit` bytes (`log.access_buffer`) or when the writer sweeps it
/// (`log.access_flush`).
pub struct Shards {
    shards: Box<[Mutex<Chunk>]>,
    limit: usize,
}

/// Each thread's slot, given out in turn on its first line.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
}

impl Shards {
    pub fn new(count: usize, limit: usize) -> Self {
        let shards = (0..count.max(1)).map(|_| Mutex::new(Chunk::default())).collect();
        Self { shards, limit }
    }

    /// Appends one line made by `fill` to this thread's buffer; returns the buffer's lines
    /// when that filled it, leaving `spare` in its place.
    pub fn append(&self, fill: impl FnOnce(&mut Vec<u8>), spare: impl FnOnce() -> Vec<u8>) -> Option<Chunk> {
        let slot = SLOT.with(|s| *s) % self.shards.len();
        let mut shard = lock(&self.shards[slot]);
        fill(&mut shard.bytes);
        shard.lines += 1;
        if shard.bytes.len() < self.limit {
            return None;
        }
        let full = std::mem::replace(&mut *shard, Chunk { bytes: spare(), lines: 0 });
        Some(full)
    }

    /// Takes every buffer that holds a line (the time-based flush, and before a reopen or exit).
    pub fn take_all(&self) -> Vec<Chunk> {
        let mut taken = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            if shard.lines > 0 {
                taken.push(std::mem::take(&mut *shard));
            }
        }
        taken
    }
}

/// A request that the writer thread answers once every line logged before it is written.
pub enum Command {
    /// Write everything and flush the file (shutdown).
    Flush(tokio::sync::oneshot::Sender<()>),
    /// Write everything, then open the file again by its path (SIGHUP, after a rotation).
    Reopen(tokio::sync::oneshot::Sender<std::io::Result<()>>),
}

#[derive(Default)]
struct Pending {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    commands: Vec<Command>,
    closed: bool,
}

/// What the writer thread has to do after a wait.
#[derive(Default)]
pub struct Work {
    pub chunks: Vec<Chunk>,
    pub commands: Vec<Command>,
    pub closed: bool,
}

/// Filled buffers on their way to the writer, at most `limit` bytes (`log.access_queue`).
pub struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    limit: usize,
}

impl Queue {
    pub fn new(limit: usize) -> Self {
        Self { pending: Mutex::new(Pending::default()), wake: Condvar::new(), limit }
    }

    /// Queues `chunk`, or gives it back when that would pass the limit (the caller counts its
    /// lines as dropped). Never waits for the writer.
    pub fn push(&self, chunk: Chunk) -> Result<(), Chunk> {
        let mut pending = lock(&self.pending);
        if pending.bytes + chunk.bytes.len() > self.limit {
            return Err(chunk);
        }
        pending.bytes += chunk.bytes.len();
        pending.chunks.push_back(chunk);
        drop(pending);
        self.wake.notify_one();
        Ok(())
    }

    pub fn command(&self, command: Command) {
        lock(&self.pending).commands.push(command);
        self.wake.notify_one();
    }

    /// The writer is to write what is left and stop.
    pub fn close(&self) {
        lock(&self.pending).closed = true;
        self.wake.notify_one();
    }

    /// Waits at most `timeout` for work, then takes all of it.
    pub fn wait(&self, timeout: Duration) -> Work {
        let mut pending = lock(&self.pending);
        let idle = |p: &mut Pending| p.chunks.is_empty() && p.commands.is_empty() && !p.closed;
        if idle(&mut pending) {
            pending = self.wake.wait_timeout_while(pending, timeout, idle).unwrap_or_else(PoisonError::into_inner).0;
        }
        pending.bytes = 0;
        Work {
            chunks: pending.chunks.drain(..).collect(),
            commands: std::mem::take(&mut pending.commands),
            closed: pending.closed,
        }
    }
}

/// A panic elsewhere while a lock was held leaves only whole lines or none: keep logging.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(out: &mut Vec<u8>) {
        out.extend_from_slice(b"0123456789\n");
    }

    #[test]
    fn a_buffer_is_handed_over_once_it_reaches_its_size() {
        let shards = Shards::new(1, 32);
        assert!(shards.append(line, Vec::new).is_none());
        assert!(shards.append(line, Vec::new).is_none());
        let full = shards.append(line, Vec::new).expect("33 bytes reach 32");
        assert_eq!((full.bytes.len(), full.lines), (33, 3));
        assert!(shards.take_all().is_empty(), "the buffer starts again empty");
    }

    #[test]
    fn the_sweep_takes_only_buffers_with_lines() {
        let shards = Shards::new(4, 1024);
        assert!(shards.take_all().is_empty());
        shards.append(line, Vec::new);
        let taken = shards.take_all();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].lines, 1);
        assert!(shards.take_all().is_empty());
    }

    #[test]
    fn the_queue_refuses_what_would_pass_its_limit_and_takes_again_once_drained() {
        let queue = Queue::new(20);
        let chunk = |n| Chunk { bytes: vec![b'x'; n], lines: 1 };
        assert!(queue.push(chunk(15)).is_ok());
        let refused = queue.push(chunk(6)).expect_err("21 bytes > 20");
        assert_eq!(refused.lines, 1);
        assert!(queue.push(chunk(5)).is_ok(), "20 bytes fit");
        let work = queue.wait(Duration::ZERO);
        assert_eq!(work.chunks.len(), 2);
        assert!(queue.push(chunk(20)).is_ok(), "drained: room again");
    }

    #[test]
    fn a_wait_without_work_returns_after_its_timeout_empty() {
        let queue = Queue::new(20);
        let work = queue.wait(Duration::from_millis(1));
        assert!(work.chunks.is_empty() && work.commands.is_empty() && !work.closed);
        queue.close();
        assert!(queue.wait(Duration::from_secs(60)).closed, "close wakes the writer at once");
    }
}
