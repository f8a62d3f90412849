//! One line per request, errors included (`log.access`), as JSON or nginx's combined layout
//! (`log.access_format`).
//!
//! Cheap enough to leave on: a request formats its line straight into its worker's buffer
//! (no allocation, no syscall, an uncontended lock); a full buffer (`log.access_buffer`) goes
//! to a bounded queue (`log.access_queue`) and one writer thread writes it in one call. The
//! writer also sweeps the buffers every `log.access_flush`, which bounds how long a line waits.
//! A full queue or a failed write drops lines and counts them
//! (`outpost_access_log_dropped_total`): a request never waits for the log. Shutdown and
//! SIGHUP write every buffered line first; SIGHUP then reopens the file (log rotation).

mod buffer;
mod format;
mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use outpost_config::{AccessFormat, LogConfig};

use buffer::{Chunk, Command, Queue, Shards};

/// What one line says about a request.
pub struct AccessRecord<'a> {
    /// Seconds since the epoch, ms precision.
    pub ts: SystemTime,
    pub request_id: &'a str,
    pub client: SocketAddr,
    pub protocol: &'a str,
    pub tls: bool,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub service: Option<&'a str>,
    pub status: u16,
    pub cache: &'a str,
    pub cache_status: Option<&'a str>,
    pub bytes: Option<u64>,
    /// Written in milliseconds, µs precision.
    pub duration: Duration,
    pub error: Option<&'a dyn std::fmt::Display>,
}

/// What request threads and the writer thread share.
struct Shared {
    shards: Shards,
    queue: Queue,
    /// Emptied buffers for the next handover, so steady logging allocates nothing.
    spares: Mutex<Vec<Vec<u8>>>,
    /// Lines dropped because the queue was full, until the writer counts them.
    refused: AtomicU64,
    buffer: usize,
    max_spares: usize,
}

impl Shared {
    fn spare(&self) -> Vec<u8> {
        let spare = self.spares.lock().unwrap_or_else(PoisonError::into_inner).pop();
        // Room for the buffer and one more line, so a line never grows it.
        spare.unwrap_or_else(|| Vec::with_capacity(self.buffer + 4096))
    }

    fn recycle(&self, mut bytes: Vec<u8>) {
        bytes.clear();
        let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
        if spares.len() < self.max_spares && bytes.capacity() <= self.buffer * 2 + 4096 {
            spares.push(bytes);
        }
    }

    fn submit(&self, chunk: Chunk) {
        if let Err(refused) = self.queue.push(chunk) {
            self.refused.fetch_add(refused.lines, Ordering::Relaxed);
            self.recycle(refused.bytes);
        }
    }

    fn take_refused(&self) -> u64 {
        self.refused.swap(0, Ordering::Relaxed)
    }
}

/// Closes the queue when the last handle goes: the writer writes what is left and ends.
struct Handle {
    shared: Arc<Shared>,
    format: AccessFormat,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.queue.close();
    }
}

#[derive(Clone)]
pub struct AccessLog {
    handle: Option<Arc<Handle>>,
}

impl AccessLog {
    /// Opens the target and starts the writer thread (`"off"`: neither).
    pub fn start(cfg: &LogConfig) -> std::io::Result<Self> {
        // The series exists from the start, at 0: an alert on it needs no first drop.
        metrics::counter!(crate::metrics::ACCESS_LOG_DROPPED).increment(0);
        let Some(sink) = writer::Sink::open(&cfg.access)? else { return Ok(Self { handle: None }) };
        let buffer = usize::try_from(cfg.access_buffer.as_u64()).unwrap_or(usize::MAX);
        let queue = usize::try_from(cfg.access_queue.as_u64()).unwrap_or(usize::MAX);
        // Two per core: tokio's workers, plus room for blocking-pool threads that log.
        let count = std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(2, 64);
        let shared = Arc::new(Shared {
            shards: Shards::new(count, buffer),
            queue: Queue::new(queue),
            spares: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
            buffer,
            max_spares: count + 2,
        });
        let flush = cfg.access_flush;
        let for_writer = shared.clone();
        // A plain thread: writes block, and the request path must not.
        std::thread::Builder::new().name("access-log".into()).spawn(move || writer::run(for_writer, sink, flush))?;
        Ok(Self { handle: Some(Arc::new(Handle { shared, format: cfg.access_format })) })
    }

    /// False when `log.access = "off"`: the caller can skip building the record.
    pub fn is_on(&self) -> bool {
        self.handle.is_some()
    }

    pub fn write(&self, record: &AccessRecord<'_>) {
        let Some(h) = &self.handle else { return };
        let full = h.shared.shards.append(|buf| format::line(h.format, record, buf), || h.shared.spare());
        if let Some(chunk) = full {
            h.shared.submit(chunk);
        }
    }

    /// Writes every line logged so far and flushes the file; waits at most `bound` (a stuck
    /// disk must not hold up shutdown). False when the bound passed first.
    pub async fn flush(&self, bound: Duration) -> bool {
        let Some(h) = &self.handle else { return true };
        let (done, wait) = tokio::sync::oneshot::channel();
        h.shared.queue.command(Command::Flush(done));
        matches!(tokio::time::timeout(bound, wait).await, Ok(Ok(())))
    }

    /// Writes every line logged so far to the file in use, then opens the file again by its
    /// path, so lines go to a new file after logrotate renamed the old one. Waits at most
    /// `bound`. Stdout stays as it is.
    pub async fn reopen(&self, bound: Duration) -> Result<(), ReopenError> {
        let Some(h) = &self.handle else { return Ok(()) };
        let (done, wait) = tokio::sync::oneshot::channel();
        h.shared.queue.command(Command::Reopen(done));
        match tokio::time::timeout(bound, wait).await {
            Ok(Ok(result)) => result.map_err(ReopenError::Open),
            Ok(Err(_)) => Err(ReopenError::Stopped),
            Err(_) => Err(ReopenError::TimedOut(bound)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReopenError {
    #[error("open: {0}; lines keep going to the file already open")]
    Open(std::io::Error),
    #[error("the writer thread has stopped")]
    Stopped,
    #[error("the writer did not answer within {0:?} (a stuck disk?)")]
    TimedOut(Duration),
}

#[cfg(test)]
mod tests;
