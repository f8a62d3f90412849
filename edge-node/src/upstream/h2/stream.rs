//! One request on an HTTP/2 upstream stream: its body sent under flow control (RFC 9113 §5.2,
//! trailers as a last HEADERS frame, §8.1), its interim responses passed to the request's
//! relay as they come (RFC 9110 §15.2: hyper's h2 client drops them, the reason this client
//! exists), and the response body read back with its trailers as an `http_body::Body`.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;

use super::conn::StreamSlot;
use crate::body::{BoxError, EdgeBody};
use crate::hints::HintRelay;

/// Streams `body` on `tx`, within the peer's flow-control windows; stops when the peer resets
/// the stream, and resets it (CANCEL, RFC 9113 §8.1: a request is not complete without its
/// END_STREAM) when the body fails, so a broken client body never reaches the upstream as a
/// complete request.
pub async fn pump(mut body: EdgeBody, mut tx: h2::SendStream<Bytes>) {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = poll_fn(|cx| tx.poll_reset(cx)) => return,
        };
        match frame {
            None => {
                let _ = tx.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(_)) => {
                tx.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if send_all(&mut tx, data).await.is_err() {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = tx.send_trailers(trailers);
                        return;
                    }
                }
            },
        }
    }
}

/// Sends `data` in pieces no larger than the capacity h2 grants (the peer's window).
async fn send_all(tx: &mut h2::SendStream<Bytes>, mut data: Bytes) -> Result<(), BoxError> {
    while !data.is_empty() {
        tx.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| tx.poll_capacity(cx)).await {
            Some(granted) => granted?,
            None => return Err("upstream stream closed while the request body was sent".into()),
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        tx.send_data(piece, false)?;
    }
    Ok(())
}

/// Waits for the final response head, passing every 1xx before it to `relay` (dropped when
/// there is none: a background fetch).
pub async fn response(
    mut fut: h2::client::ResponseFuture,
    relay: Option<&HintRelay>,
) -> Result<http::Response<h2::RecvStream>, h2::Error> {
    while let Some(interim) = poll_fn(|cx| fut.poll_informational(cx)).await {
        let interim = interim?;
        if let Some(relay) = relay {
            relay.from_upstream(interim.status(), interim.headers());
        }
    }
    fut.await
}

/// An HTTP/2 response body: DATA frames (their flow-control capacity released as they are
/// read, so the window reopens at the pace the node consumes), then trailers. It holds the
/// stream's slot on its connection until it ends or is dropped.
pub struct H2Body {
    recv: h2::RecvStream,
    /// Body bytes still announced by Content-Length; `None` when unknown.
    remaining: Option<u64>,
    data_done: bool,
    slot: Option<StreamSlot>,
}

impl H2Body {
    pub(super) fn new(recv: h2::RecvStream, headers: &HeaderMap, slot: StreamSlot) -> Self {
        // As hyper does: a stream already ended has nothing more, whatever its head announced
        // (a response to HEAD, RFC 9110 §9.3.2).
        let remaining = if recv.is_end_stream() { Some(0) } else { crate::http::length::declared_length(headers) };
        Self { recv, remaining, data_done: false, slot: Some(slot) }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.recv.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                // The bytes are ours now: let the peer send as many more.
                let _ = self.recv.flow_control().release_capacity(data.len());
                self.remaining = self.remaining.map(|r| r.saturating_sub(data.len() as u64));
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                self.data_done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if !this.data_done {
            match this.poll_data(cx) {
                Poll::Ready(None) => {}
                other => return other,
            }
        }
        let polled = match this.recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => return Poll::Pending,
        };
        // The stream is over: its slot frees for the next request.
        this.slot = None;
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
