//! A request body kept while it streams upstream, so the request can be sent once more.
//!
//! A body is streamed to the upstream, never buffered first (the client's bytes go out as
//! they arrive). [`Keep`] copies what passes, up to `upstream.replay_body_max`: when the
//! whole body went through within that bound, [`Replay::body`] gives it again. A larger body,
//! one with trailers, or one that failed is not kept, and a request carrying it is never sent
//! twice. Pingora keeps a 64 KiB retry buffer the same way.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;

use crate::body::{self, BoxError, EdgeBody};

#[derive(Debug)]
enum Kept {
    /// Streaming; what passed so far.
    Filling(BytesMut),
    /// The whole body passed, and this is it.
    Complete(Bytes),
    /// Not kept: too large, trailers, or failed.
    Dropped,
}

/// The copy of a body, shared between [`Keep`] and the send loop.
#[derive(Debug, Clone)]
pub struct Replay(Arc<Mutex<Kept>>);

impl Replay {
    /// The body again, when all of it was kept.
    pub fn body(&self) -> Option<EdgeBody> {
        match &*self.0.lock().ok()? {
            Kept::Complete(bytes) if bytes.is_empty() => Some(body::empty()),
            Kept::Complete(bytes) => Some(body::full(bytes.clone())),
            Kept::Filling(_) | Kept::Dropped => None,
        }
    }

    /// Whether [`Replay::body`] would give the body.
    pub fn held(&self) -> bool {
        self.0.lock().is_ok_and(|k| matches!(*k, Kept::Complete(_)))
    }

    fn set(&self, kept: Kept) {
        if let Ok(mut k) = self.0.lock() {
            *k = kept;
        }
    }
}

/// `body` as sent, keeping a copy of up to `max` bytes, and the handle to that copy. An empty
/// body is complete at once; a body that declares more than `max` is not copied at all.
pub fn keep(body: EdgeBody, max: u64) -> (EdgeBody, Replay) {
    let kept = if body.is_end_stream() {
        Kept::Complete(Bytes::new())
    } else if body.size_hint().lower() > max {
        Kept::Dropped
    } else {
        Kept::Filling(BytesMut::new())
    };
    let dropped = matches!(kept, Kept::Dropped | Kept::Complete(_));
    let replay = Replay(Arc::new(Mutex::new(kept)));
    if dropped {
        return (body, replay);
    }
    let declared = body.size_hint().exact();
    (Keep { inner: body, replay: replay.clone(), max, declared }.boxed_unsync(), replay)
}

/// A body that copies its data frames into a [`Replay`] as they pass.
struct Keep {
    inner: EdgeBody,
    replay: Replay,
    max: u64,
    /// The length the body declared, if any: hyper stops polling a body once it has sent
    /// that many bytes, so the end may never be polled.
    declared: Option<u64>,
}

impl Keep {
    fn copy(&self, frame: Option<&Frame<Bytes>>) {
        let Ok(mut kept) = self.replay.0.lock() else { return };
        let Kept::Filling(buf) = &mut *kept else { return };
        match frame.map(|f| f.data_ref()) {
            None => *kept = Kept::Complete(std::mem::take(buf).freeze()),
            Some(Some(data)) if (buf.len() + data.len()) as u64 <= self.max => {
                buf.extend_from_slice(data);
                if self.inner.is_end_stream() || self.declared == Some(buf.len() as u64) {
                    *kept = Kept::Complete(std::mem::take(buf).freeze());
                }
            }
            // Past the bound, or trailers (not replayed: rare, and their meaning may depend
            // on the body having been processed once).
            Some(_) => *kept = Kept::Dropped,
        }
    }
}

impl Body for Keep {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => self.copy(Some(frame)),
            Poll::Ready(None) => self.copy(None),
            Poll::Ready(Some(Err(_))) => self.replay.set(Kept::Dropped),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(chunks: &[&'static str]) -> EdgeBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            chunks.iter().map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes())))).collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    async fn replayed(body: EdgeBody, max: u64, drain: bool) -> Option<Bytes> {
        let (sent, replay) = keep(body, max);
        if drain {
            let _ = sent.collect().await;
        }
        let again = replay.body()?;
        again.collect().await.ok().map(|c| c.to_bytes())
    }

    #[tokio::test]
    async fn only_a_whole_body_within_the_bound_is_replayed() {
        let b = |s: &'static str| Some(Bytes::from_static(s.as_bytes()));
        // (case, body, bound, drained before the replay, what the replay sends)
        let cases: Vec<(&str, EdgeBody, u64, bool, Option<Bytes>)> = vec![
            ("empty: complete at once", body::empty(), 0, false, b("")),
            ("streamed within the bound", streamed(&["ab", "cd"]), 4, true, b("abcd")),
            ("streamed past the bound", streamed(&["ab", "cde"]), 4, true, None),
            ("declared past the bound: never copied", body::full("abcde"), 4, true, None),
            ("full body within the bound", body::full("abc"), 64, true, b("abc")),
            ("not yet sent: nothing to replay", streamed(&["ab"]), 64, false, None),
            ("bound 0 keeps no body", streamed(&["a"]), 0, true, None),
        ];
        for (name, body, max, drain, expected) in cases {
            assert_eq!(replayed(body, max, drain).await, expected, "{name}");
        }
    }

    #[tokio::test]
    async fn a_body_sent_to_its_declared_length_is_kept_unpolled_end_or_not() {
        // hyper's HTTP/1.1 encoder stops at Content-Length without polling the end.
        let (mut sent, replay) = keep(body::full("abc"), 64);
        assert!(sent.frame().await.is_some_and(|f| f.is_ok()));
        let again = replay.body().map(|b| b.size_hint().exact());
        assert_eq!(again, Some(Some(3)), "the replay declares the same length");
    }

    #[tokio::test]
    async fn a_failed_body_is_not_replayed() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            vec![Ok(Frame::data(Bytes::from_static(b"ab"))), Err("client went away".into())];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
        let (mut sent, replay) = keep(body, 64);
        while let Some(frame) = sent.frame().await {
            if frame.is_err() {
                break;
            }
        }
        assert!(replay.body().is_none());
    }
}
