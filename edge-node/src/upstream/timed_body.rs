use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

#[derive(Debug, thiserror::Error)]
#[error("no body bytes from upstream within {0:?}")]
pub struct BetweenBytesTimeout(pub Duration);

#[derive(Debug, thiserror::Error)]
#[error("upstream response not complete within the total timeout {0:?}")]
pub struct TotalTimeout(pub Duration);

/// An upstream body that fails when no frame arrives within `between_bytes_timeout`, or when it
/// is not complete by the deadline of `total_timeout`.
pub struct TimedBody<B> {
    inner: B,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
    total: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<B> TimedBody<B> {
    /// `started`: when the request was sent (the total timeout counts from then).
    pub fn new(inner: B, limit: Duration, total: Duration, started: Instant) -> Self {
        Self {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
            total,
            deadline: Box::pin(tokio::time::sleep_until(started + total)),
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(TotalTimeout(this.total)))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let limit = this.limit;
                this.sleep.as_mut().reset(Instant::now() + limit);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BetweenBytesTimeout(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
