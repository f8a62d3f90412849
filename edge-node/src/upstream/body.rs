//! The one body type an upstream response carries, whichever client fetched it: hyper's
//! `Incoming` (HTTP/1.1 upstreams) or an h2 stream (HTTP/2 upstreams: origins and shields,
//! reached through [`super::h2`] so that their 1xx responses are seen). Both yield data frames
//! and then, when the upstream sent them, trailers (RFC 9110 §6.5).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::h2::H2Body;
use crate::body::BoxError;

/// An upstream response's body.
pub enum UpstreamBody {
    /// From hyper's client (HTTP/1.1).
    Hyper(Incoming),
    /// From an HTTP/2 stream of the node's own h2 client.
    H2(H2Body),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamBody::H2(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Hyper(b) => b.is_end_stream(),
            UpstreamBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Hyper(b) => b.size_hint(),
            UpstreamBody::H2(b) => b.size_hint(),
        }
    }
}
