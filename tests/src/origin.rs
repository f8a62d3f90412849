//! A scripted origin: a real hyper 1 server (HTTP/1.1 and h2c, or TLS with ALPN) on
//! `127.0.0.1:0`, running in the test's runtime.
//!
//! The test decides, per path, what the origin answers ([`Reply`]); the origin records every
//! request it receives ([`Recorded`]) so the test can assert on what the edge sent upstream:
//! how many requests per path, and the exact headers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::tls::Leaf;

/// How long a [`Gate`] waits before opening by itself, so a broken test never hangs.
const GATE_LIMIT: Duration = Duration::from_secs(10);

/// One request as the origin received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// Path only, without the query.
    pub path: String,
    /// Path and query, as on the request line.
    pub path_and_query: String,
    pub version: Version,
    /// The request target's authority (HTTP/2 :authority, or an absolute-form target).
    pub authority: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The Host header, or the :authority of an HTTP/2 request.
    pub fn host(&self) -> Option<&str> {
        self.header("host").or(self.authority.as_deref())
    }

    /// All values of a header, joined with ", " (the list form of RFC 9110 §5.3).
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    fn matches(&self, path: &str) -> bool {
        self.path == path || self.path_and_query == path
    }
}

/// A point the origin's body waits at until the test opens it (or [`GATE_LIMIT`] passes).
#[derive(Clone)]
pub struct Gate {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Self { tx: Arc::new(watch::channel(false).0) }
    }

    pub fn open(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_open(&self) -> bool {
        *self.tx.borrow()
    }

    async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = tokio::time::timeout(GATE_LIMIT, rx.wait_for(|open| *open)).await;
    }
}

/// One step of a streamed body.
#[derive(Clone)]
pub enum Chunk {
    Data(Bytes),
    Sleep(Duration),
    Wait(Gate),
}

#[derive(Clone)]
enum BodySpec {
    Full(Bytes),
    Chunks(Vec<Chunk>),
}

/// What the origin answers to one request.
#[derive(Clone)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: BodySpec,
    delay: Duration,
    conditional: bool,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: Vec::new(),
            body: BodySpec::Full(Bytes::new()),
            delay: Duration::ZERO,
            conditional: false,
        }
    }

    /// 200 with this body.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self::status(200).body(body)
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = BodySpec::Full(body.into());
        self
    }

    /// A body sent frame by frame, with sleeps and gates between frames (chunked on HTTP/1.1
    /// unless a content-length header is set).
    pub fn chunks(mut self, chunks: Vec<Chunk>) -> Self {
        self.body = BodySpec::Chunks(chunks);
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn cache_control(self, value: &str) -> Self {
        self.header("cache-control", value)
    }

    pub fn etag(self, value: &str) -> Self {
        self.header("etag", value)
    }

    /// Wait this long before sending the response head.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answer 304 (same headers, no body) when If-None-Match matches this reply's ETag, or,
    /// without If-None-Match, when If-Modified-Since is not earlier than its Last-Modified.
    pub fn conditional(mut self) -> Self {
        self.conditional = true;
        self
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// RFC 9110 §13.1.1 (weak comparison) and §13.1.3, as far as these tests need.
    fn not_modified(&self, req: &Recorded) -> bool {
        if let Some(inm) = req.header_joined("if-none-match") {
            let Some(etag) = self.get("etag") else {
                return false;
            };
            let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
            return inm.trim() == "*" || inm.split(',').any(|t| strip(t) == strip(etag));
        }
        match (req.header("if-modified-since"), self.get("last-modified")) {
            (Some(ims), Some(lm)) => match (httpdate::parse_http_date(ims), httpdate::parse_http_date(lm)) {
                (Ok(ims), Ok(lm)) => lm <= ims,
                _ => false,
            },
            _ => false,
        }
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Handler>>,
    /// Checked in order when no exact route matches.
    prefix_routes: Mutex<Vec<(String, Handler)>>,
    requests: Mutex<Vec<Recorded>>,
    /// Paths whose handler has produced a response head, in order.
    responded: Mutex<Vec<String>>,
    /// Number of complete response bodies sent, per path.
    finished: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running origin. Dropping it stops it.
pub struct Origin {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    task: Option<JoinHandle<()>>,
}

impl Origin {
    /// A cleartext origin speaking HTTP/1.1 and h2c (prior knowledge).
    pub async fn start() -> anyhow::Result<Self> {
        Self::spawn(None).await
    }

    /// An origin behind TLS presenting `leaf`, speaking h2 or http/1.1 by ALPN.
    pub async fn start_tls(leaf: &Leaf) -> anyhow::Result<Self> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(leaf.server_config()?));
        Self::spawn(Some(acceptor)).await
    }

    /// An origin behind TLS presenting `leaf` that offers only http/1.1 by ALPN (RFC 7301), as
    /// an HTTP/1.1-only server does.
    pub async fn start_tls_http1(leaf: &Leaf) -> anyhow::Result<Self> {
        let mut config = leaf.server_config()?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::spawn(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn spawn(tls: Option<tokio_rustls::TlsAcceptor>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, tls.clone(), state.clone()));
        Ok(Self { addr, tls, state, task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The origin as a service's `origin` field names it: `http://127.0.0.1:P`, or
    /// `https://localhost:P` for a TLS origin (its certificate is for "localhost").
    pub fn url(&self) -> String {
        if self.tls.is_some() {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Answer `path` (a path, or a path with query for an exact match) with `reply` every time.
    pub fn route(&self, path: &str, reply: Reply) {
        self.route_fn(path, move |_| reply.clone());
    }

    /// Answer `path` with whatever `f` returns for the request.
    pub fn route_fn(&self, path: &str, f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        lock(&self.state.routes).insert(path.to_string(), Arc::new(f));
    }

    /// Answer every path that starts with `prefix` and has no exact route with whatever `f`
    /// returns (the first matching prefix, in the order they were added).
    pub fn route_prefix(&self, prefix: &str, f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        lock(&self.state.prefix_routes).push((prefix.to_string(), Arc::new(f)));
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// Requests received for `path` (path only, or path and query).
    pub fn requests_for(&self, path: &str) -> Vec<Recorded> {
        lock(&self.state.requests).iter().filter(|r| r.matches(path)).cloned().collect()
    }

    pub fn count(&self, path: &str) -> usize {
        lock(&self.state.requests).iter().filter(|r| r.matches(path)).count()
    }

    pub fn total(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// The last request received for `path`.
    pub fn last(&self, path: &str) -> anyhow::Result<Recorded> {
        self.requests_for(path).pop().ok_or_else(|| anyhow::anyhow!("the origin received no request for {path}"))
    }

    /// How many response heads the origin has sent for `path` (delays elapsed).
    pub fn responded(&self, path: &str) -> usize {
        lock(&self.state.responded).iter().filter(|p| p.as_str() == path).count()
    }

    /// How many response bodies the origin has finished sending for `path`.
    pub fn finished(&self, path: &str) -> usize {
        lock(&self.state.finished).get(path).copied().unwrap_or(0)
    }

    /// Waits (bounded) until the origin has received `n` requests for `path`.
    pub async fn wait_for_count(&self, path: &str, n: usize, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let seen = self.count(path);
            if seen >= n {
                return Ok(());
            }
            if start.elapsed() > limit {
                anyhow::bail!("origin saw {seen} requests for {path} after {limit:?}, expected {n}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops listening and closes every open connection: the edge's pooled connections break
    /// and new ones are refused.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same address after [`Origin::stop`], with the same routes and the
    /// same record of requests: the origin is back.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.task.is_none(), "the origin is running");
        let listener = TcpListener::bind(self.addr).await?;
        self.task = Some(tokio::spawn(accept_loop(listener, self.tls.clone(), self.state.clone())));
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Requests received so far, per path (without the query), counted without copying them:
    /// cheap enough to poll while load runs.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in lock(&self.state.requests).iter() {
            *counts.entry(r.path.clone()).or_default() += 1;
        }
        counts
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, state: Arc<State>) {
    // Dropping the JoinSet (when this task is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let state = state.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(tcp).await else { return };
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            let io = TokioIo::new(stream);
                            let _ = if h2 {
                                builder.http2_only().serve_connection(io, svc).await
                            } else {
                                builder.http1_only().serve_connection(io, svc).await
                            };
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<OriginBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        path_and_query: parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into()),
        version: parts.version,
        authority: parts.uri.authority().map(|a| a.to_string()),
        headers: parts.headers,
        body,
        at: Instant::now(),
    };
    lock(&state.requests).push(recorded.clone());

    let handler = {
        let routes = lock(&state.routes);
        routes.get(&recorded.path_and_query).or_else(|| routes.get(&recorded.path)).cloned()
    };
    let handler = handler.or_else(|| {
        lock(&state.prefix_routes).iter().find(|(p, _)| recorded.path.starts_with(p.as_str())).map(|(_, h)| h.clone())
    });
    let reply = match handler {
        Some(h) => h(&recorded),
        None => Reply::status(404).body("no route at the test origin\n"),
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    lock(&state.responded).push(recorded.path.clone());

    let not_modified = reply.conditional && reply.not_modified(&recorded);
    let status = if not_modified { StatusCode::NOT_MODIFIED } else { reply.status };
    let mut response = Response::builder().status(status);
    for (name, value) in &reply.headers {
        if not_modified && name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            response = response.header(n, v);
        }
    }
    if recorded.method == Method::HEAD && !not_modified && reply.get("content-length").is_none() {
        // A HEAD answer carries the Content-Length a GET would have (RFC 9110 §9.3.2).
        if let BodySpec::Full(b) = &reply.body {
            response = response.header("content-length", b.len());
        }
    }
    let head_only = not_modified || recorded.method == Method::HEAD;
    let body = match (&reply.body, head_only) {
        (_, true) => OriginBody::full(Bytes::new(), &state, &recorded.path),
        (BodySpec::Full(b), false) => OriginBody::full(b.clone(), &state, &recorded.path),
        (BodySpec::Chunks(chunks), false) => OriginBody::streamed(chunks.clone(), state.clone(), recorded.path.clone()),
    };
    Ok(response.body(body).unwrap_or_else(|_| {
        let mut r =
            Response::new(OriginBody::full(Bytes::from_static(b"bad scripted reply\n"), &state, &recorded.path));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    }))
}

/// The origin's response body: either whole, or frames fed by a task that follows the script.
pub struct OriginBody {
    full: Option<Bytes>,
    rx: Option<mpsc::Receiver<Bytes>>,
}

impl OriginBody {
    fn full(bytes: Bytes, state: &State, path: &str) -> Self {
        *lock(&state.finished).entry(path.to_string()).or_default() += 1;
        Self { full: (!bytes.is_empty()).then_some(bytes), rx: None }
    }

    fn streamed(chunks: Vec<Chunk>, state: Arc<State>, path: String) -> Self {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            for chunk in chunks {
                match chunk {
                    Chunk::Data(bytes) => {
                        if tx.send(bytes).await.is_err() {
                            return;
                        }
                    }
                    Chunk::Sleep(d) => tokio::time::sleep(d).await,
                    Chunk::Wait(gate) => gate.wait().await,
                }
            }
            *lock(&state.finished).entry(path).or_default() += 1;
        });
        Self { full: None, rx: Some(rx) }
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(bytes) = self.full.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        match self.rx.as_mut() {
            Some(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none() && self.rx.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.full, &self.rx) {
            (Some(b), _) => SizeHint::with_exact(b.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            (None, Some(_)) => SizeHint::default(),
        }
    }
}

/// An address nothing listens on: connecting to it is refused.
pub async fn refused_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(addr)
}
