//! Clients for the node's listeners: HTTP/1.1 and HTTP/2 (prior knowledge) over TCP, the same
//! over TLS with ALPN and a chosen SNI, and a raw TCP exchange for requests hyper would refuse
//! to send (malformed request lines, oversized header sections).
//!
//! Every exchange uses a fresh connection, so one test's requests never share state by accident.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::tls::TestCa;

/// Bound on one whole exchange (connect, head, body).
pub const EXCHANGE_LIMIT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// TLS options: the SNI to send and the CA to trust.
#[derive(Clone)]
pub struct TlsOpts {
    pub sni: String,
    pub config: Arc<rustls::ClientConfig>,
}

/// A request to send to a node.
#[derive(Clone)]
pub struct Req {
    pub method: Method,
    /// Host header (HTTP/1.1) or :authority (HTTP/2).
    pub host: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub proto: Proto,
    pub tls: Option<TlsOpts>,
}

impl Req {
    pub fn new(method: Method, host: &str, path: &str) -> Self {
        Self {
            method,
            host: host.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Bytes::new(),
            proto: Proto::H1,
            tls: None,
        }
    }

    pub fn get(host: &str, path: &str) -> Self {
        Self::new(Method::GET, host, path)
    }

    pub fn head(host: &str, path: &str) -> Self {
        Self::new(Method::HEAD, host, path)
    }

    pub fn post(host: &str, path: &str) -> Self {
        Self::new(Method::POST, host, path)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn h2(mut self) -> Self {
        self.proto = Proto::H2;
        self
    }

    /// Speak TLS with this SNI, trusting `ca`, offering the ALPN of the chosen protocol.
    pub fn tls(mut self, ca: &TestCa, sni: &str) -> anyhow::Result<Self> {
        let alpn: &[&[u8]] = match self.proto {
            Proto::H1 => &[b"http/1.1"],
            Proto::H2 => &[b"h2"],
        };
        self.tls = Some(TlsOpts { sni: sni.to_string(), config: Arc::new(ca.client_config(alpn)?) });
        Ok(self)
    }

    fn build(&self) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder().method(self.method.clone());
        match self.proto {
            Proto::H1 => {
                builder = builder.uri(self.path.as_str()).header("host", self.host.as_str());
            }
            Proto::H2 => {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                builder = builder.uri(format!("{scheme}://{}{}", self.host, self.path)).version(Version::HTTP_2);
            }
        }
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        Ok(builder.body(Full::new(self.body.clone()))?)
    }
}

/// A complete response.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The certificate the server presented (TLS only).
    pub peer_cert: Option<CertificateDer<'static>>,
    /// The negotiated ALPN protocol (TLS only).
    pub alpn: Option<Vec<u8>>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn has(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn cache_status(&self) -> CacheStatus {
        CacheStatus::parse(self.header("cache-status").unwrap_or(""))
    }

    /// Every `Cache-Status` entry, farthest from the client first (RFC 9211 §2: each cache
    /// appends its own): `[shield, edge]` through two tiers.
    pub fn cache_statuses(&self) -> Vec<CacheStatus> {
        let joined: Vec<&str> = self.headers.get_all("cache-status").iter().filter_map(|v| v.to_str().ok()).collect();
        CacheStatus::parse_all(&joined.join(", "))
    }

    pub fn request_id(&self) -> Option<&str> {
        self.header("x-request-id")
    }

    pub fn age(&self) -> Option<u64> {
        self.header("age").and_then(|a| a.trim().parse().ok())
    }

    /// A one-line summary for assertion messages.
    pub fn summary(&self) -> String {
        format!(
            "{} cache-status={:?} age={:?} body={:?}",
            self.status,
            self.header("cache-status"),
            self.header("age"),
            String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
        )
    }
}

/// The node's entry of a `Cache-Status` header (RFC 9211): the last list member, the one nearest
/// the client.
#[derive(Clone, Debug, Default)]
pub struct CacheStatus {
    pub raw: String,
    pub node: String,
    pub params: Vec<(String, Option<String>)>,
}

impl CacheStatus {
    pub fn parse(raw: &str) -> Self {
        let entry = raw.rsplit(',').next().unwrap_or("").trim();
        let mut parts = entry.split(';').map(str::trim);
        let node = parts.next().unwrap_or("").to_string();
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().trim_matches('"').to_string())),
                None => (p.to_ascii_lowercase(), None),
            })
            .collect();
        Self { raw: raw.to_string(), node, params }
    }

    /// Every entry of a `Cache-Status` field value, in list order.
    pub fn parse_all(raw: &str) -> Vec<Self> {
        raw.split(',').map(str::trim).filter(|e| !e.is_empty()).map(Self::parse).collect()
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    pub fn flag(&self, name: &str) -> bool {
        self.params.iter().any(|(k, _)| k == name)
    }

    pub fn hit(&self) -> bool {
        self.flag("hit")
    }

    pub fn fwd(&self) -> Option<&str> {
        self.param("fwd")
    }

    pub fn fwd_status(&self) -> Option<u16> {
        self.param("fwd-status").and_then(|s| s.parse().ok())
    }

    pub fn stored(&self) -> bool {
        self.flag("stored")
    }

    pub fn collapsed(&self) -> bool {
        self.flag("collapsed")
    }

    pub fn ttl(&self) -> Option<i64> {
        self.param("ttl").and_then(|s| s.parse().ok())
    }

    pub fn detail(&self) -> Option<&str> {
        self.param("detail")
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

struct Connected {
    io: Box<dyn Io>,
    peer_cert: Option<CertificateDer<'static>>,
    alpn: Option<Vec<u8>>,
}

async fn connect(addr: SocketAddr, tls: Option<&TlsOpts>) -> anyhow::Result<Connected> {
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(Connected { io: Box::new(tcp), peer_cert: None, alpn: None });
    };
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let name = ServerName::try_from(tls.sni.clone())?;
    let stream =
        connector.connect(name, tcp).await.with_context(|| format!("TLS handshake with {addr} for SNI {}", tls.sni))?;
    let session = stream.get_ref().1;
    let peer_cert = session.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned());
    let alpn = session.alpn_protocol().map(|p| p.to_vec());
    Ok(Connected { io: Box::new(stream), peer_cert, alpn })
}

/// A response whose body has not been read yet; the connection lives as long as it does.
pub struct Streaming {
    pub response: Response<Incoming>,
    pub peer_cert: Option<CertificateDer<'static>>,
    pub alpn: Option<Vec<u8>>,
}

impl Streaming {
    /// The next chunk of body data, `None` at the end. Non-data frames are skipped.
    pub async fn next_data(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            match self.response.body_mut().frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    pub async fn rest(self) -> anyhow::Result<Bytes> {
        Ok(self.response.into_body().collect().await?.to_bytes())
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One connection kept open for several requests: keep-alive on HTTP/1.1, streams on HTTP/2.
pub struct Conn {
    sender: Sender,
}

impl Conn {
    /// Connects the way `template` says (protocol, TLS); its method and path are ignored.
    pub async fn open(addr: SocketAddr, template: &Req) -> anyhow::Result<Self> {
        let conn = connect(addr, template.tls.as_ref()).await?;
        let io = TokioIo::new(conn.io);
        let sender = match template.proto {
            Proto::H1 => {
                let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(connection);
                Sender::H1(sender)
            }
            Proto::H2 => {
                let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                Sender::H2(sender)
            }
        };
        Ok(Self { sender })
    }

    /// Sends `req` on this connection and reads the whole response (bounded). On HTTP/2 several
    /// may be in flight at once (clone-free: call from one task after another, or use `h2_sender`).
    pub async fn send(&mut self, req: &Req) -> anyhow::Result<Resp> {
        let request = req.build()?;
        let exchange = async {
            let response = match &mut self.sender {
                Sender::H1(s) => {
                    s.ready().await?;
                    s.send_request(request).await?
                }
                Sender::H2(s) => {
                    s.ready().await?;
                    s.send_request(request).await?
                }
            };
            collect(response).await
        };
        tokio::time::timeout(EXCHANGE_LIMIT, exchange)
            .await
            .with_context(|| format!("{} {}{} took over {EXCHANGE_LIMIT:?}", req.method, req.host, req.path))?
    }

    /// A handle for concurrent streams on an HTTP/2 connection.
    pub fn h2_sender(&self) -> Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
        match &self.sender {
            Sender::H2(s) => Some(s.clone()),
            Sender::H1(_) => None,
        }
    }
}

/// Sends `req` on a shared HTTP/2 connection handle (see [`Conn::h2_sender`]).
pub async fn send_on(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    req: &Req,
) -> anyhow::Result<Resp> {
    let request = req.build()?;
    let exchange = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        collect(response).await
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange).await.context("HTTP/2 stream timed out")?
}

async fn collect(response: Response<Incoming>) -> anyhow::Result<Resp> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Resp { status: parts.status, version: parts.version, headers: parts.headers, body, peer_cert: None, alpn: None })
}

/// Sends `req` and returns once the response head has arrived.
pub async fn send_streaming(addr: SocketAddr, req: &Req) -> anyhow::Result<Streaming> {
    let request = req.build()?;
    let conn = connect(addr, req.tls.as_ref()).await?;
    let io = TokioIo::new(conn.io);
    let response = match req.proto {
        Proto::H1 => {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(connection);
            sender.send_request(request).await?
        }
        Proto::H2 => {
            let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(connection);
            sender.send_request(request).await?
        }
    };
    Ok(Streaming { response, peer_cert: conn.peer_cert, alpn: conn.alpn })
}

/// Sends `req` to `addr` over a new connection and reads the whole response (bounded).
pub async fn send(addr: SocketAddr, req: &Req) -> anyhow::Result<Resp> {
    let exchange = async {
        let streaming = send_streaming(addr, req).await?;
        let (parts, body) = streaming.response.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(Resp {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
            peer_cert: streaming.peer_cert,
            alpn: streaming.alpn,
        })
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange)
        .await
        .with_context(|| format!("{} {}{} to {addr} took over {EXCHANGE_LIMIT:?}", req.method, req.host, req.path))?
        .with_context(|| format!("{} {}{} to {addr}", req.method, req.host, req.path))
}

/// A response read off a raw socket.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Bytes,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `bytes` to a new connection and reads one response: the head, then a Content-Length
/// body or everything until the peer closes (bounded by [`EXCHANGE_LIMIT`]).
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> anyhow::Result<RawResponse> {
    raw_exchange_from(None, addr, bytes).await
}

/// [`raw_exchange`] from the local address `from` (e.g. `127.0.0.2`: every 127/8 address is
/// this host's on Linux), so the node sees a client other than the other test processes.
pub async fn raw_exchange_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    bytes: &[u8],
) -> anyhow::Result<RawResponse> {
    let exchange = async {
        let tcp = match from {
            Some(ip) => {
                let socket =
                    if ip.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
            None => TcpStream::connect(addr).await?,
        };
        let (mut tcp, mut writer) = tcp.into_split();
        // Write while reading: the server may answer (413, 431) and stop reading before it has
        // everything. A failed write is fine as long as a response comes back.
        let bytes = bytes.to_vec();
        let _writer = AbortOnDrop(tokio::spawn(async move {
            let _ = writer.write_all(&bytes).await;
            // Keep the write half open: some servers treat a half-close as the end.
            std::future::pending::<()>().await;
        }));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = tcp.read(&mut chunk).await.context("reading the response head")?;
            if n == 0 {
                anyhow::bail!(
                    "connection closed before a complete response head; got {:?}",
                    String::from_utf8_lossy(&buf)
                );
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status in {head:?}"))?;
        let mut response = RawResponse { status, head, body: Bytes::new() };
        let length: Option<usize> = response.header("content-length").and_then(|v| v.parse().ok());
        let mut body = buf[head_end..].to_vec();
        loop {
            if length.is_some_and(|l| body.len() >= l) {
                break;
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        response.body = Bytes::from(body);
        anyhow::Ok(response)
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange).await.context("raw exchange timed out")?
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `n` connections to `addr` that send `prefix` (nothing, or part of a request or preface) and
/// then nothing more: the idle-connection flood of issue 18. Hold them to keep them open.
pub async fn idle_connections(addr: SocketAddr, n: usize, prefix: &[u8]) -> anyhow::Result<Vec<TcpStream>> {
    use tokio::io::AsyncWriteExt;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        if !prefix.is_empty() {
            tcp.write_all(prefix).await?;
        }
        held.push(tcp);
    }
    Ok(held)
}

/// Whether the peer closes `tcp` (end of stream or a reset) within `limit`, reading and
/// discarding whatever it sends first. A bounded wait on the connection's state, not a
/// timing assertion: `limit` is far above the timeout under test.
pub async fn closed_by_peer(tcp: &mut TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, reading).await.is_ok()
}
