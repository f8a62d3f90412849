//! The request body of an HTTP/2 stream, read as the pipeline polls it. Each DATA frame's bytes
//! are given back to the client's flow-control window once the pipeline has taken them
//! (RFC 9113 §6.9), so a client can send no more than the window ahead of what the node reads.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::RecvStream;
use http_body::{Frame, SizeHint};

use super::stream::Continue;
use crate::body::BoxError;

pub struct H2Body {
    recv: RecvStream,
    /// What the request's Content-Length says is still to come: h2 itself refuses DATA that
    /// disagrees with it (RFC 9113 §8.1.1, a stream error); here it is the size hint the
    /// upstream request is framed by.
    remaining: Option<u64>,
    data_done: bool,
    /// Asks for `100 Continue` on the first read (RFC 9110 §10.1.1), once.
    continues: Option<Continue>,
    /// A CONNECT stream: no body is read from it.
    tunnel: bool,
}

impl H2Body {
    pub fn new(recv: RecvStream, declared: Option<u64>, continues: Option<Continue>) -> Self {
        Self { recv, remaining: declared, data_done: false, continues, tunnel: false }
    }

    /// A CONNECT request's body as hyper's glue gave it: none. Its DATA would be tunnel bytes
    /// (RFC 9113 §8.5), which a reverse proxy has no tunnel to carry; the request reaches the
    /// pipeline as a head alone.
    pub fn tunnel(recv: RecvStream) -> Self {
        Self { recv, remaining: Some(0), data_done: true, continues: None, tunnel: true }
    }
}

impl http_body::Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.tunnel {
            return Poll::Ready(None);
        }
        if let Some(c) = this.continues.take() {
            c.ask();
        }
        if !this.data_done {
            match this.recv.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => {
                    // Credit the window by what the pipeline took: the client may send more.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.remaining = this.remaining.map(|r| r.saturating_sub(data.len() as u64));
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => this.data_done = true,
            }
        }
        match this.recv.poll_trailers(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.tunnel || self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining.map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
