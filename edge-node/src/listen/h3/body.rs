//! The request body of an HTTP/3 request stream, read as the pipeline polls it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::Frame;

use crate::body::BoxError;

type RecvStream = RequestStream<h3_quinn::RecvStream, Bytes>;

/// The request body, read from the h3 stream as the pipeline polls it (QUIC flow control
/// bounds what the client can send ahead). Trailers are ignored.
pub struct H3Body {
    recv: RecvStream,
    /// What the probe in [`H3Body::new`] read (data or an error), handed out first.
    first: Option<Result<Bytes, BoxError>>,
    done: bool,
}

impl H3Body {
    /// Probe the stream once without waiting: a GET's HEADERS frame usually arrives with FIN, and
    /// a body known to be empty lets the upstream client send no body and retry safely.
    pub fn new(mut recv: RecvStream) -> Self {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (first, done) = match recv.poll_recv_data(&mut cx) {
            Poll::Ready(Ok(Some(mut buf))) => (Some(Ok(buf.copy_to_bytes(buf.remaining()))), false),
            Poll::Ready(Ok(None)) => (None, true),
            Poll::Ready(Err(e)) => (Some(Err(Box::new(e) as BoxError)), true),
            Poll::Pending => (None, false),
        };
        Self { recv, first, done }
    }
}

/// RFC 9114 §4.1.2: a response may be complete before the request body is (a 413, a cache
/// hit for a request with a body); the rest of the body is then refused with H3_NO_ERROR, so
/// the client reads the response instead of treating the stream as failed.
impl Drop for H3Body {
    fn drop(&mut self) {
        if !self.done {
            self.recv.stop_sending(h3::error::Code::H3_NO_ERROR);
        }
    }
}

impl http_body::Body for H3Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first.map(Frame::data)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        match self.recv.poll_recv_data(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(mut buf))) => Poll::Ready(Some(Ok(Frame::data(buf.copy_to_bytes(buf.remaining()))))),
            Poll::Ready(Ok(None)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.first.is_none()
    }
}
