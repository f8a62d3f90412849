//! Clients that see interim (1xx) responses over HTTP/1.1 and HTTP/2, cleartext to the node's
//! HTTP listener. hyper's HTTP/2 client drops 1xx, so the HTTP/2 one speaks the h2 crate
//! directly (`ResponseFuture::poll_informational`); the HTTP/1.1 one is hyper's client with
//! `hyper::ext::on_informational`. (HTTP/3: [`crate::h3client`].)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use http::{Request, Response, Version};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::client::{EXCHANGE_LIMIT, Req, Resp};

/// One HTTP/2 request (prior knowledge, on a connection of its own), read head by head.
pub struct H2Exchange {
    response: h2::client::ResponseFuture,
    conn: JoinHandle<()>,
}

impl H2Exchange {
    /// Sends `req` (no body) to the node's cleartext listener at `addr`.
    pub async fn open(addr: SocketAddr, req: &Req) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, connection) = h2::client::handshake(tcp).await?;
        let conn = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut builder = Request::builder().method(req.method.clone()).uri(format!("http://{}{}", req.host, req.path));
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let (response, _) = sender.send_request(builder.version(Version::HTTP_2).body(())?, true)?;
        Ok(Self { response, conn })
    }

    /// The next interim response, or `None` once the final head is next (RFC 9113 §8.1).
    pub async fn next_interim(&mut self) -> anyhow::Result<Option<Response<()>>> {
        let polled = std::future::poll_fn(|cx| self.response.poll_informational(cx));
        match tokio::time::timeout(EXCHANGE_LIMIT, polled).await.context("HTTP/2 interim head timed out")? {
            Some(head) => Ok(Some(head?)),
            None => Ok(None),
        }
    }

    /// The final response and its body.
    pub async fn finish(self) -> anyhow::Result<Resp> {
        let read = async {
            let (parts, mut body) = self.response.await?.into_parts();
            let mut bytes = BytesMut::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk?;
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            anyhow::Ok(Resp {
                status: parts.status,
                version: parts.version,
                headers: parts.headers,
                body: bytes.freeze(),
                peer_cert: None,
                alpn: None,
            })
        };
        let resp = tokio::time::timeout(EXCHANGE_LIMIT, read).await.context("HTTP/2 response timed out")?;
        self.conn.abort();
        resp
    }
}

/// Sends `req` over HTTP/2 and returns the interim responses that came first, and the final.
pub async fn h2_send_with_interim(addr: SocketAddr, req: &Req) -> anyhow::Result<(Vec<Response<()>>, Resp)> {
    let mut exchange = H2Exchange::open(addr, req).await?;
    let mut interim = Vec::new();
    while let Some(head) = exchange.next_interim().await? {
        interim.push(head);
    }
    Ok((interim, exchange.finish().await?))
}

/// Sends `req` (no body) over HTTP/1.1 and returns the interim responses that came first (as
/// hyper's client reports them), and the final.
pub async fn h1_send_with_interim(addr: SocketAddr, req: &Req) -> anyhow::Result<(Vec<Response<()>>, Resp)> {
    let exchange = async {
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        let conn = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut builder =
            Request::builder().method(req.method.clone()).uri(req.path.as_str()).header("host", &req.host);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut request = builder.body(Empty::<Bytes>::new())?;
        let seen: Arc<Mutex<Vec<Response<()>>>> = Arc::default();
        let record = seen.clone();
        hyper::ext::on_informational(&mut request, move |res| {
            let mut head = Response::new(());
            *head.status_mut() = res.status();
            *head.headers_mut() = res.headers().clone();
            if let Ok(mut seen) = record.lock() {
                seen.push(head);
            }
        });
        let (parts, body) = sender.send_request(request).await?.into_parts();
        let body = body.collect().await?.to_bytes();
        conn.abort();
        let interim = seen.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default();
        let resp = Resp {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
            peer_cert: None,
            alpn: None,
        };
        anyhow::Ok((interim, resp))
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange).await.context("HTTP/1.1 exchange timed out")?
}
