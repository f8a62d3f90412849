//! A connector that dials one fixed address whatever host the request URI names.
//!
//! Requests to a shield carry the client's host in their URI (so HTTP/2's `:authority`, and
//! TLS SNI, name the site the shield routes by), while the TCP connection goes to the shield.
//! Each shield gets its own client, so its pool holds only connections to that shield. The
//! connection passes the service's [`Guard`](super::guard::Guard) like any other.

use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;

use super::conn::Tracked;
use super::guard::{Connecting, GuardedConnector};
use crate::body::BoxError;

#[derive(Clone)]
pub struct FixedDial {
    inner: GuardedConnector,
    /// `http://ip:port` of the upstream to dial.
    target: Uri,
}

impl FixedDial {
    pub fn new(inner: GuardedConnector, target: Uri) -> Self {
        Self { inner, target }
    }
}

impl tower_service::Service<Uri> for FixedDial {
    type Response = TokioIo<Tracked>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _requested: Uri) -> Self::Future {
        self.inner.call(self.target.clone())
    }
}
