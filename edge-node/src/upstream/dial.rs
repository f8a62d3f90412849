//! A connector that dials one fixed address whatever host the request URI names.
//!
//! Requests to a shield carry the client's host in their URI (so HTTP/2's `:authority`, and
//! TLS SNI, name the site the shield routes by), while the TCP connection goes to the shield.
//! Each shield gets its own client, so its pool holds only connections to that shield.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::BoxError;

#[derive(Clone)]
pub struct FixedDial {
    inner: HttpConnector,
    /// `http://ip:port` of the upstream to dial.
    target: Uri,
}

impl FixedDial {
    pub fn new(inner: HttpConnector, target: Uri) -> Self {
        Self { inner, target }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl tower_service::Service<Uri> for FixedDial {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, _requested: Uri) -> Self::Future {
        let connecting = self.inner.call(self.target.clone());
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}
