//! A response body that keeps its connection busy until it is all sent (or dropped), so a long
//! download is never mistaken for an idle connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::conns::Busy;
use crate::body::{BoxError, EdgeBody};

pub struct TrackedBody {
    inner: EdgeBody,
    busy: Option<Busy>,
}

impl TrackedBody {
    pub fn new(inner: EdgeBody, busy: Busy) -> Self {
        Self { inner, busy: Some(busy) }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.busy = None;
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
