//! The writer thread: the only place access-log bytes meet the disk (or stdout). It wakes when
//! a buffer fills, on a command, and every `log.access_flush` to sweep the buffers, so no line
//! waits longer than that. A failed write (a full disk, a closed pipe) drops its lines, counts
//! them and warns at most every [`WARN_EVERY`]; the next write tries again.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_config::AccessLog as Target;

use super::Shared;
use super::buffer::{Chunk, Command};

/// At most one warning per this long about lines lost; the count covers everything since.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where the lines go: stdout's descriptor or a file opened for appending.
pub struct Sink {
    file: File,
    path: Option<PathBuf>,
    /// A failed write left part of a line that could not be cut away (a pipe): the next write
    /// starts with `\n` so the lines after it stay whole.
    torn: bool,
}

impl Sink {
    /// `None` for `"off"`.
    pub fn open(target: &Target) -> io::Result<Option<Self>> {
        let (file, path) = match target {
            Target::Off => return Ok(None),
            // The descriptor itself, not `Stdout`: its line buffer would make one write per line.
            Target::Stdout => (File::from(io::stdout().as_fd().try_clone_to_owned()?), None),
            Target::File(path) => (append(path)?, Some(path.clone())),
        };
        Ok(Some(Self { file, path, torn: false }))
    }

    /// Opens the file again by its path (after logrotate renamed it); stdout stays.
    fn reopen(&mut self) -> io::Result<()> {
        if let Some(path) = &self.path {
            self.file = append(path)?;
            self.torn = false;
        }
        Ok(())
    }

    /// Writes whole lines; on an error returns how many lines were written whole.
    fn write(&mut self, chunk: &Chunk) -> Result<(), (u64, io::Error)> {
        if self.torn {
            self.file.write_all(b"\n").map_err(|e| (0, e))?;
            self.torn = false;
        }
        let mut done = 0;
        while done < chunk.bytes.len() {
            match self.file.write(&chunk.bytes[done..]) {
                Ok(0) => return Err(self.cut(chunk, done, io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.cut(chunk, done, e)),
            }
        }
        Ok(())
    }

    /// After a short write: removes the part of a line that made it (a file is cut back to its
    /// last whole line), so a reader never sees half a record.
    fn cut(&mut self, chunk: &Chunk, done: usize, error: io::Error) -> (u64, io::Error) {
        let written = &chunk.bytes[..done];
        let whole = written.iter().filter(|&&b| b == b'\n').count() as u64;
        let tail = written.iter().rev().position(|&b| b == b'\n').unwrap_or(written.len()) as u64;
        if tail > 0 {
            let cut = self.path.is_some()
                && self.file.metadata().and_then(|m| self.file.set_len(m.len().saturating_sub(tail))).is_ok();
            self.torn = !cut;
        }
        (whole, error)
    }
}

fn append(path: &std::path::Path) -> io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Lines lost and the first reason, until the next warning.
#[derive(Default)]
struct Losses {
    lines: u64,
    reason: Option<String>,
    last_warning: Option<Instant>,
    failing: bool,
}

impl Losses {
    fn add(&mut self, lines: u64, reason: impl FnOnce() -> String) {
        if lines == 0 {
            return;
        }
        metrics::counter!(crate::metrics::ACCESS_LOG_DROPPED).increment(lines);
        self.lines += lines;
        self.reason.get_or_insert_with(reason);
    }

    fn warn_if_due(&mut self, now: Instant) {
        if self.lines == 0 || self.last_warning.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return;
        }
        let reason = self.reason.take().unwrap_or_default();
        tracing::warn!(dropped = self.lines, %reason, "access log: lines dropped");
        self.lines = 0;
        self.last_warning = Some(now);
    }
}

/// Runs until the queue is closed; then writes what is left and returns.
pub fn run(shared: Arc<Shared>, mut sink: Sink, flush: Duration) {
    let mut losses = Losses::default();
    let mut next_sweep = Instant::now() + flush;
    loop {
        let work = shared.queue.wait(next_sweep.saturating_duration_since(Instant::now()));
        for chunk in work.chunks {
            write(&shared, &mut sink, chunk, &mut losses);
        }
        let now = Instant::now();
        if now >= next_sweep || !work.commands.is_empty() || work.closed {
            for chunk in shared.shards.take_all() {
                write(&shared, &mut sink, chunk, &mut losses);
            }
            next_sweep = now + flush;
        }
        for command in work.commands {
            answer(command, &mut sink);
        }
        losses.add(shared.take_refused(), || {
            "the queue was full (log.access_queue): the disk or pipe is slower than the requests".into()
        });
        losses.warn_if_due(now);
        if work.closed {
            let _ = sink.file.flush();
            return;
        }
    }
}

fn write(shared: &Shared, sink: &mut Sink, chunk: Chunk, losses: &mut Losses) {
    match sink.write(&chunk) {
        Ok(()) => {
            if std::mem::take(&mut losses.failing) {
                tracing::info!("access log: writing again");
            }
        }
        Err((whole, error)) => {
            losses.failing = true;
            losses.add(chunk.lines.saturating_sub(whole), || format!("write failed: {error}"));
        }
    }
    shared.recycle(chunk.bytes);
}

fn answer(command: Command, sink: &mut Sink) {
    match command {
        Command::Flush(done) => {
            let _ = sink.file.flush();
            let _ = done.send(());
        }
        Command::Reopen(done) => {
            let result = sink.reopen();
            let _ = done.send(result);
        }
    }
}
