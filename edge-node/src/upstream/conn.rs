//! What the upstream client knows about one of its connections, kept beside the socket: how
//! many responses it delivered (so a failure on it can tell a reused connection from a new
//! one) and, for the exchange on it now, how many request bytes went out and response bytes
//! came in (so a failure can tell "died before any response byte" from "broke mid-answer").
//!
//! The counters ride on the connection as a hyper_util `Connected` extra ([`ConnMark`]):
//! hyper_util copies it into every response's extensions and keeps it on every error
//! (`Error::connect_info`), so the send loop finds the connection a try used without any
//! bookkeeping of its own. The byte counts are taken below TLS, so on an `https` upstream they
//! include TLS records: the count can only err towards "a byte arrived", never hide one.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::Extensions;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Counters of one upstream connection.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Response heads received on it.
    responses: AtomicU64,
    /// Bytes written since the current exchange began (its first write after a read).
    written: AtomicU64,
    /// Bytes read since the current exchange began.
    read: AtomicU64,
    /// The last transfer was a read: the next write begins a new exchange. On HTTP/1.1 an
    /// exchange is one request and its response (hyper does not pipeline).
    reading: AtomicBool,
}

/// A snapshot of one connection, as a failed try left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnFacts {
    /// It delivered a response before: it came from the pool.
    pub reused: bool,
    /// Request bytes written in the last exchange.
    pub written: u64,
    /// Response bytes read in the last exchange.
    pub read: u64,
}

impl ConnState {
    pub fn facts(&self) -> ConnFacts {
        ConnFacts {
            reused: self.responses.load(Ordering::Acquire) > 0,
            written: self.written.load(Ordering::Acquire),
            read: self.read.load(Ordering::Acquire),
        }
    }

    fn wrote(&self, n: usize) {
        if self.reading.swap(false, Ordering::AcqRel) {
            self.written.store(0, Ordering::Release);
            self.read.store(0, Ordering::Release);
        }
        self.written.fetch_add(n as u64, Ordering::AcqRel);
    }

    fn got(&self, n: usize) {
        self.reading.store(true, Ordering::Release);
        self.read.fetch_add(n as u64, Ordering::AcqRel);
    }
}

/// The `Connected` extra that carries a connection's counters.
#[derive(Debug, Clone)]
pub struct ConnMark(pub Arc<ConnState>);

/// Counts a response head received on the connection `extensions` came from (a response's).
pub fn note_response(extensions: &Extensions) {
    if let Some(ConnMark(state)) = extensions.get::<ConnMark>() {
        state.responses.fetch_add(1, Ordering::AcqRel);
    }
}

/// The counters of the connection a failed try used, when it got as far as a connection.
pub fn facts_of(connected: Option<&Connected>) -> Option<ConnFacts> {
    let mut extensions = Extensions::new();
    connected?.get_extras(&mut extensions);
    extensions.get::<ConnMark>().map(|ConnMark(state)| state.facts())
}

/// A TCP connection that keeps its [`ConnState`].
#[derive(Debug)]
pub struct Tracked {
    tcp: TcpStream,
    state: Arc<ConnState>,
}

impl Tracked {
    pub fn new(tcp: TcpStream) -> Self {
        Self { tcp, state: Arc::default() }
    }
}

impl Connection for Tracked {
    fn connected(&self) -> Connected {
        self.tcp.connected().extra(ConnMark(self.state.clone()))
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.state.got(n);
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.state.wrote(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.state.wrote(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchange_begins_at_the_first_write_after_a_read() {
        let s = ConnState::default();
        // (step, written, read): w = write n bytes, r = read n bytes.
        let steps: [(char, usize, u64, u64); 7] = [
            ('w', 100, 100, 0), // request 1
            ('w', 20, 120, 0),  // its body: the same exchange
            ('r', 50, 120, 50), // response 1
            ('r', 10, 120, 60),
            ('w', 30, 30, 0), // request 2 on the reused connection: counts start again
            ('r', 0, 30, 0),  // EOF reads nothing
            ('w', 5, 35, 0),
        ];
        for (i, (op, n, written, read)) in steps.into_iter().enumerate() {
            match op {
                'w' => s.wrote(n),
                _ if n > 0 => s.got(n),
                _ => {}
            }
            assert_eq!((s.facts().written, s.facts().read), (written, read), "step {i}");
        }
        assert!(!s.facts().reused, "no response head counted yet");
    }

    #[test]
    fn a_response_head_marks_the_connection_reused() {
        let state = Arc::new(ConnState::default());
        let mut extensions = Extensions::new();
        extensions.insert(ConnMark(state.clone()));
        note_response(&extensions);
        assert!(state.facts().reused);
        let connected = Connected::new().extra(ConnMark(state));
        assert_eq!(facts_of(Some(&connected)).map(|f| f.reused), Some(true));
        assert_eq!(facts_of(Some(&Connected::new())), None, "a connection without counters");
        assert_eq!(facts_of(None), None);
    }
}
