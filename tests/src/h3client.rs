//! An HTTP/3 client (quinn + h3) for the node's QUIC listener: trusts the test CA, sends the
//! given SNI, offers ALPN `h3`.
//!
//! [`send`] makes one exchange on a fresh connection. [`H3Client`] keeps TLS sessions between
//! connections (so a second connection can resume and send 0-RTT data) and opens
//! [`H3Conn`]s that carry many requests, concurrently if asked. [`DelayRelay`] sits between a
//! client and the node and holds back the node's packets, so that a client's 0-RTT request
//! reaches the node while the handshake is still unfinished, every time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Buf, Bytes, BytesMut};
use h3::client::SendRequest;
use http::{Request, Version};
use quinn::crypto::rustls::QuicClientConfig;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{EXCHANGE_LIMIT, Req, Resp};
use crate::tls::{TestCa, provider};

/// Sends `req` over HTTP/3 to `addr` (UDP), with TLS SNI `sni`, on a connection of its own;
/// bounded by [`EXCHANGE_LIMIT`].
pub async fn send(addr: SocketAddr, ca: &TestCa, sni: &str, req: &Req) -> anyhow::Result<Resp> {
    let client = H3Client::new(ca, sni)?;
    let conn = client.connect(addr).await?;
    let resp = conn.send(req).await;
    conn.close().await;
    resp
}

/// A client endpoint whose TLS config (and so its session tickets) outlives connections.
pub struct H3Client {
    endpoint: quinn::Endpoint,
    sni: String,
}

impl H3Client {
    pub fn new(ca: &TestCa, sni: &str) -> anyhow::Result<Self> {
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(ca.roots()?)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        // Offer 0-RTT whenever a resumed session allows it; the server decides.
        tls.enable_early_data = true;
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?)));
        Ok(Self { endpoint, sni: sni.to_string() })
    }

    /// A connection after a full handshake, bounded by [`EXCHANGE_LIMIT`].
    pub async fn connect(&self, addr: SocketAddr) -> anyhow::Result<H3Conn> {
        let connecting = self.endpoint.connect(addr, &self.sni)?;
        let quic = tokio::time::timeout(EXCHANGE_LIMIT, connecting)
            .await
            .with_context(|| format!("QUIC handshake with {addr} timed out"))?
            .with_context(|| format!("QUIC handshake with {addr}"))?;
        H3Conn::over(quic, None).await
    }

    /// A connection that may send requests before its handshake completes (0-RTT), when a
    /// session from an earlier connection to the same name allows early data; `None` when not.
    pub async fn connect_0rtt(&self, addr: SocketAddr) -> anyhow::Result<Option<H3Conn>> {
        let connecting = self.endpoint.connect(addr, &self.sni)?;
        match connecting.into_0rtt() {
            Ok((quic, accepted)) => Ok(Some(H3Conn::over(quic, Some(accepted)).await?)),
            Err(connecting) => {
                // No early data possible: finish the handshake so the server is not left waiting.
                if let Ok(Ok(quic)) = tokio::time::timeout(EXCHANGE_LIMIT, connecting).await {
                    quic.close(0u32.into(), b"no 0-rtt");
                }
                Ok(None)
            }
        }
    }
}

/// One HTTP/3 connection; `send` may be called concurrently.
pub struct H3Conn {
    quic: quinn::Connection,
    sender: SendRequest<h3_quinn::OpenStreams, Bytes>,
    driver: JoinHandle<()>,
    zero_rtt: Option<quinn::ZeroRttAccepted>,
}

impl H3Conn {
    async fn over(quic: quinn::Connection, zero_rtt: Option<quinn::ZeroRttAccepted>) -> anyhow::Result<Self> {
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(quic.clone())).await?;
        let driver = tokio::spawn(async move {
            driver.wait_idle().await;
        });
        Ok(Self { quic, sender, driver, zero_rtt })
    }

    /// Whether the server accepted this connection's 0-RTT data (waits for the handshake).
    pub async fn zero_rtt_accepted(&mut self) -> bool {
        match self.zero_rtt.take() {
            Some(accepted) => tokio::time::timeout(EXCHANGE_LIMIT, accepted).await.unwrap_or(false),
            None => false,
        }
    }

    /// The certificate the server presented (its leaf).
    pub fn peer_cert(&self) -> Option<rustls_pki_types::CertificateDer<'static>> {
        self.quic
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
            .and_then(|chain| chain.first().cloned())
    }

    /// One request on a new stream of this connection, bounded by [`EXCHANGE_LIMIT`].
    pub async fn send(&self, req: &Req) -> anyhow::Result<Resp> {
        self.send_with_trailers(req, None).await
    }

    /// Like [`H3Conn::send`], ending the request body with a trailer section.
    pub async fn send_with_trailers(&self, req: &Req, trailers: Option<http::HeaderMap>) -> anyhow::Result<Resp> {
        tokio::time::timeout(EXCHANGE_LIMIT, self.exchange(req, trailers))
            .await
            .with_context(|| format!("HTTP/3 {} {} timed out after {EXCHANGE_LIMIT:?}", req.method, req.path))?
    }

    /// Like [`H3Conn::send`], also returning the interim (1xx) responses that came first, in
    /// order (RFC 9114 §4.1).
    pub async fn send_with_interim(&self, req: &Req) -> anyhow::Result<(Vec<http::Response<()>>, Resp)> {
        let exchange = async {
            let mut stream = self.open(req).await?;
            let mut interim = Vec::new();
            loop {
                let head = stream.next_head().await?;
                if !head.status().is_informational() {
                    return anyhow::Ok((interim, stream.finish(head).await?));
                }
                interim.push(head);
            }
        };
        tokio::time::timeout(EXCHANGE_LIMIT, exchange)
            .await
            .with_context(|| format!("HTTP/3 {} {} timed out after {EXCHANGE_LIMIT:?}", req.method, req.path))?
    }

    /// Sends a body-less request and returns its stream, whose response heads the caller reads
    /// one at a time with [`H3Exchange::next_head`] (interim ones first).
    pub async fn open(&self, req: &Req) -> anyhow::Result<H3Exchange> {
        let mut stream = self.request_stream(req).await?;
        if !req.body.is_empty() {
            stream.send_data(req.body.clone()).await?;
        }
        stream.finish().await?;
        Ok(H3Exchange { stream, peer_cert: self.peer_cert() })
    }

    /// Sends the head of `req` only; its body goes with [`H3Exchange::send_body`] (after the
    /// node's `100 Continue`, say).
    pub async fn open_head_only(&self, req: &Req) -> anyhow::Result<H3Exchange> {
        let stream = self.request_stream(req).await?;
        Ok(H3Exchange { stream, peer_cert: self.peer_cert() })
    }

    async fn request_stream(&self, req: &Req) -> anyhow::Result<ClientStream> {
        let mut sender = self.sender.clone();
        let uri = format!("https://{}{}", req.host, req.path);
        let mut builder = Request::builder().method(req.method.clone()).uri(uri);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        Ok(sender.send_request(builder.body(())?).await?)
    }

    async fn exchange(&self, req: &Req, trailers: Option<http::HeaderMap>) -> anyhow::Result<Resp> {
        let mut stream = self.request_stream(req).await?;
        // A server may answer before reading the whole body (413) and stop the upload (RFC 9114
        // §4.1.2): as a browser does, read the response whatever became of the upload.
        // After a refused upload the send side is dead: finishing it would make h3 close the
        // whole connection (H3_INTERNAL_ERROR for a write while one is pending).
        let uploaded = req.body.is_empty() || stream.send_data(req.body.clone()).await.is_ok();
        if uploaded {
            if let Some(trailers) = trailers {
                stream.send_trailers(trailers).await?;
            }
            let _ = stream.finish().await;
        }
        // RFC 9114 §4.1: interim responses (1xx) may come first; a client reads past them.
        let mut head = stream.recv_response().await?;
        while head.status().is_informational() {
            head = stream.recv_response().await?;
        }
        H3Exchange { stream, peer_cert: self.peer_cert() }.finish(head).await
    }

    /// Resolves when the connection closes, with the reason (bounded by `limit`).
    pub async fn closed_within(&self, limit: Duration) -> Option<quinn::ConnectionError> {
        tokio::time::timeout(limit, self.quic.closed()).await.ok()
    }

    pub async fn close(self) {
        self.quic.close(0u32.into(), b"done");
        self.driver.abort();
    }
}

type ClientStream = h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// One request's stream, read head by head.
pub struct H3Exchange {
    stream: ClientStream,
    peer_cert: Option<rustls_pki_types::CertificateDer<'static>>,
}

impl H3Exchange {
    /// The next response head: an interim one (1xx), or the final one, after which only
    /// [`H3Exchange::finish`] makes sense. Bounded by [`EXCHANGE_LIMIT`].
    pub async fn next_head(&mut self) -> anyhow::Result<http::Response<()>> {
        tokio::time::timeout(EXCHANGE_LIMIT, self.stream.recv_response())
            .await
            .context("HTTP/3 response head timed out")?
            .context("HTTP/3 response head")
    }

    /// Sends `body` and ends the request.
    pub async fn send_body(&mut self, body: Bytes) -> anyhow::Result<()> {
        self.stream.send_data(body).await?;
        Ok(self.stream.finish().await?)
    }

    /// Reads the body that follows the final head `head`.
    pub async fn finish(mut self, head: http::Response<()>) -> anyhow::Result<Resp> {
        let mut body = BytesMut::new();
        while let Some(mut chunk) = self.stream.recv_data().await? {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        let (parts, ()) = head.into_parts();
        Ok(Resp {
            status: parts.status,
            version: Version::HTTP_3,
            headers: parts.headers,
            body: body.freeze(),
            peer_cert: self.peer_cert,
            alpn: Some(b"h3".to_vec()),
        })
    }
}

/// A UDP relay on loopback for one client: the client's datagrams go to the node at once, the
/// node's come back `delay` late (in order). A client resuming with 0-RTT thus sends its request
/// while it cannot yet finish the handshake, and the node reads it as early data.
pub struct DelayRelay {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DelayRelay {
    pub async fn start(node: SocketAddr, delay: Duration) -> anyhow::Result<Self> {
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let back = UdpSocket::bind("127.0.0.1:0").await?;
        back.connect(node).await?;
        let addr = front.local_addr()?;
        let task = tokio::spawn(relay(front, back, delay));
        Ok(Self { addr, task })
    }

    /// Where the client should connect instead of the node.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(front: UdpSocket, back: UdpSocket, delay: Duration) {
    let mut client: Option<SocketAddr> = None;
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let (mut up, mut down) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    loop {
        let next_due = held.front().map(|(due, _)| *due);
        tokio::select! {
            r = front.recv_from(&mut up) => {
                let Ok((n, from)) = r else { return };
                client = Some(from);
                let _ = back.send(&up[..n]).await;
            }
            r = back.recv(&mut down) => {
                let Ok(n) = r else { return };
                held.push_back((Instant::now() + delay, down[..n].to_vec()));
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if next_due.is_some() => {
                if let (Some((_, datagram)), Some(to)) = (held.pop_front(), client) {
                    let _ = front.send_to(&datagram, to).await;
                }
            }
        }
    }
}
