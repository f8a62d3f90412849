//! The request body of an HTTP/3 request stream, read as the pipeline polls it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::Frame;

use crate::body::BoxError;
use crate::listen::LengthMismatch;

type RecvStream = RequestStream<h3_quinn::RecvStream, Bytes>;

/// The request body, read from the h3 stream as the pipeline polls it (QUIC flow control
/// bounds what the client can send ahead). Trailers are ignored.
pub struct H3Body {
    recv: RecvStream,
    /// What the probe in [`H3Body::new`] read (data or an error), handed out first.
    first: Option<Result<Bytes, BoxError>>,
    done: bool,
    /// The request's Content-Length, which the DATA received must add up to.
    declared: Option<u64>,
    received: u64,
    /// The last read returned Pending: h3-quinn then holds the QUIC stream inside its read
    /// future, and its `stop_sending` would panic (it unwraps the stream), so Drop leaves the
    /// stopping to quinn's own drop of the stream.
    reading: bool,
    /// Set when the DATA disagreed with `declared`: the stream is then reset, not answered.
    malformed: Arc<AtomicBool>,
    /// `Expect: 100-continue` with no content received yet: told (once) when the pipeline first
    /// reads the body, so the connection sends `100 Continue` then (RFC 9110 §10.1.1).
    continue_wanted: Option<Arc<tokio::sync::Notify>>,
}

impl H3Body {
    /// Probe the stream once without waiting: a GET's HEADERS frame usually arrives with FIN, and
    /// a body known to be empty lets the upstream client send no body and retry safely.
    pub fn new(mut recv: RecvStream, declared: Option<u64>, malformed: Arc<AtomicBool>) -> Self {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (first, done, reading) = match recv.poll_recv_data(&mut cx) {
            Poll::Ready(Ok(Some(mut buf))) => (Some(Ok(buf.copy_to_bytes(buf.remaining()))), false, false),
            Poll::Ready(Ok(None)) => (None, true, false),
            Poll::Ready(Err(e)) => (Some(Err(Box::new(e) as BoxError)), true, false),
            Poll::Pending => (None, false, true),
        };
        Self { recv, first, done, declared, received: 0, reading, malformed, continue_wanted: None }
    }

    /// Whether the client is still waiting for `100 Continue` before it sends content: it
    /// asked (`expect`), and the probe in [`H3Body::new`] found neither content nor its end.
    pub fn awaits_continue(&self, expect: bool) -> bool {
        expect && self.reading
    }

    /// Have `wanted` told when the body is first read (see [`H3Body::awaits_continue`]).
    pub fn tell_when_read(&mut self, wanted: Arc<tokio::sync::Notify>) {
        self.continue_wanted = Some(wanted);
    }

    /// RFC 9114 §4.1.2: "A request or response that is defined as having content when it
    /// contains a Content-Length header field is malformed if the value of the Content-Length
    /// header field does not equal the sum of the DATA frame lengths received." Checked as
    /// each frame arrives (too many bytes) and at the end (too few).
    fn check(&mut self, frame: Option<Result<Bytes, BoxError>>) -> Option<Result<Bytes, BoxError>> {
        let over = match &frame {
            Some(Ok(data)) => {
                self.received = self.received.saturating_add(data.len() as u64);
                self.declared.is_some_and(|d| self.received > d)
            }
            None => self.declared.is_some_and(|d| self.received != d),
            Some(Err(_)) => false,
        };
        if !over {
            return frame;
        }
        self.malformed.store(true, Ordering::Release);
        self.done = true;
        self.recv.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
        let declared = self.declared.unwrap_or(0);
        Some(Err(Box::new(LengthMismatch { declared, got: self.received })))
    }
}

/// RFC 9114 §4.1.2: a response may be complete before the request body is (a 413, a cache
/// hit for a request with a body); the rest of the body is then refused with H3_NO_ERROR, so
/// the client reads the response instead of treating the stream as failed.
impl Drop for H3Body {
    fn drop(&mut self) {
        if !self.done && !self.reading {
            self.recv.stop_sending(h3::error::Code::H3_NO_ERROR);
        }
    }
}

impl http_body::Body for H3Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(wanted) = self.continue_wanted.take() {
            wanted.notify_one();
        }
        if let Some(first) = self.first.take() {
            let checked = self.check(Some(first));
            return Poll::Ready(checked.map(|f| f.map(Frame::data)));
        }
        if self.done {
            // The probe saw FIN (or the check failed, and said so once).
            let end = if self.malformed.load(Ordering::Acquire) { None } else { self.check(None) };
            return Poll::Ready(end.map(|f| f.map(Frame::data)));
        }
        let polled = self.recv.poll_recv_data(cx);
        self.reading = polled.is_pending();
        let frame = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Some(mut buf))) => Some(Ok(buf.copy_to_bytes(buf.remaining()))),
            Poll::Ready(Ok(None)) => {
                self.done = true;
                None
            }
            Poll::Ready(Err(e)) => {
                self.done = true;
                Some(Err(Box::new(e) as BoxError))
            }
        };
        Poll::Ready(self.check(frame).map(|f| f.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        // A body that ended short of its Content-Length still has its error to report.
        self.done && self.first.is_none() && self.declared.is_none_or(|d| d == self.received)
    }
}
