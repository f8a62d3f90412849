//! A function's stdout and stderr: split into lines, each logged (target `outpost::function`)
//! with the request id, service and function version, up to `max_log_bytes` per request. What
//! goes past the bound is dropped and counted; one line at the end says how much.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line logged as one; a longer run without a newline is logged in pieces this long.
const MAX_LINE: usize = 4096;

/// Who wrote the lines: fields of every log line.
#[derive(Clone)]
pub(super) struct Origin {
    pub(super) request_id: Arc<str>,
    pub(super) service: Arc<str>,
    pub(super) version: Arc<str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The request's log budget and the partial line of each stream. Logs what is left when the
/// request's store (the last holder) drops it.
pub(super) struct Sink {
    origin: Origin,
    left: usize,
    dropped: u64,
    partial: [Vec<u8>; 2],
    /// Where lines go; the node's log by default, a vector in tests.
    emit: fn(&Origin, Stream, &str),
}

impl Sink {
    pub(super) fn new(origin: Origin, max_bytes: usize) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            origin,
            left: max_bytes,
            dropped: 0,
            partial: [Vec::new(), Vec::new()],
            emit: log_line,
        }))
    }

    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        let take = bytes.len().min(self.left);
        self.left -= take;
        self.dropped += (bytes.len() - take) as u64;
        let index = stream as usize;
        for &b in &bytes[..take] {
            if b == b'\n' {
                self.flush_line(stream);
            } else {
                self.partial[index].push(b);
                if self.partial[index].len() >= MAX_LINE {
                    self.flush_line(stream);
                }
            }
        }
    }

    fn flush_line(&mut self, stream: Stream) {
        let line = std::mem::take(&mut self.partial[stream as usize]);
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\r');
        // Blank lines (Rust's panic message starts with one) say nothing in a log.
        if !text.trim().is_empty() {
            (self.emit)(&self.origin, stream, text);
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if !self.partial[stream as usize].is_empty() {
                self.flush_line(stream);
            }
        }
        if self.dropped > 0 {
            let note = format!("[{} more bytes of output dropped: over max_log_bytes]", self.dropped);
            (self.emit)(&self.origin, Stream::Stderr, &note);
        }
    }
}

fn log_line(origin: &Origin, stream: Stream, line: &str) {
    tracing::info!(
        target: "outpost::function",
        request_id = %origin.request_id,
        service = %origin.service,
        function = %origin.version,
        stream = stream.as_str(),
        "{line}"
    );
}

/// One of the guest's standard streams, writing into the request's [`Sink`].
#[derive(Clone)]
pub(super) struct Pipe {
    sink: Arc<Mutex<Sink>>,
    stream: Stream,
}

impl Pipe {
    pub(super) fn new(sink: &Arc<Mutex<Sink>>, stream: Stream) -> Self {
        Self { sink: sink.clone(), stream }
    }

    fn write(&self, bytes: &[u8]) {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).write(self.stream, bytes);
    }
}

impl IsTerminal for Pipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Pipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Pipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        Pipe::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    /// Always room: past the budget bytes are counted and dropped, never refused, so a guest
    /// that logs too much is not stopped by it.
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Pipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Pipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pipe::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static LINES: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn record(_: &Origin, stream: Stream, line: &str) {
        LINES.with(|l| l.borrow_mut().push((stream.as_str().to_string(), line.to_string())));
    }

    fn sink(max: usize) -> Sink {
        let origin = Origin { request_id: "r1".into(), service: "shop".into(), version: "abc".into() };
        Sink { origin, left: max, dropped: 0, partial: [Vec::new(), Vec::new()], emit: record }
    }

    #[test]
    fn lines_are_split_per_stream_and_bounded() {
        LINES.with(|l| l.borrow_mut().clear());
        {
            let mut s = sink(24);
            s.write(Stream::Stdout, b"one\ntw");
            s.write(Stream::Stderr, b"err\n");
            s.write(Stream::Stdout, b"o\r\nthree and more");
        }
        let lines = LINES.with(|l| l.borrow().clone());
        let expected = [
            ("stdout", "one"),
            ("stderr", "err"),
            ("stdout", "two"),
            // 24 bytes in all: "one\ntw" (6) "err\n" (4) "o\r\nthree and m" (14); "ore" dropped.
            ("stdout", "three and m"),
            ("stderr", "[3 more bytes of output dropped: over max_log_bytes]"),
        ];
        let got: Vec<(&str, &str)> = lines.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_long_run_without_newline_is_logged_in_pieces() {
        LINES.with(|l| l.borrow_mut().clear());
        {
            let mut s = sink(1 << 20);
            s.write(Stream::Stdout, &vec![b'x'; MAX_LINE * 2 + 1]);
        }
        let lengths: Vec<usize> = LINES.with(|l| l.borrow().iter().map(|(_, line)| line.len()).collect());
        assert_eq!(lengths, [MAX_LINE, MAX_LINE, 1]);
    }
}
