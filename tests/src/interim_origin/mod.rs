//! A raw-TCP HTTP/1.1 origin that sends interim responses (`103 Early Hints`, `102`, `100`)
//! before its final one, as nginx (`early_hints`), h2o and Node do — hyper's server cannot.
//!
//! Each path is scripted with one answer per request in order (the last repeats): a list of
//! steps, each a write of raw bytes or a wait at a [`Hold`] the test releases, so a scenario
//! can keep the final response back until it has seen what the node sent before it. Requests
//! are recorded as [`RawRequest`]s; connections stay open (keep-alive), and the body a request
//! declares is read and discarded before the next request on it.
//!
//! [`InterimOrigin::start_h2`] serves the same scripts over HTTP/2 (h2c with prior knowledge),
//! as an origin behind `origin_protocol = "http2"` (see [`h2`]).

mod h2;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::raw_origin::{RawRequest, discard, parse, read_head};

/// Bound on a [`Hold`]: a test that never releases one still ends.
const HOLD_LIMIT: Duration = Duration::from_secs(20);

/// A point a scripted answer waits at until the test releases it (or [`HOLD_LIMIT`] passes).
#[derive(Clone)]
pub struct Hold(Arc<watch::Sender<bool>>);

impl Default for Hold {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Hold {
    pub fn release(&self) {
        self.0.send_replace(true);
    }

    pub(crate) async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = tokio::time::timeout(HOLD_LIMIT, rx.wait_for(|open| *open)).await;
    }
}

/// One step of a scripted answer.
#[derive(Clone)]
pub enum Step {
    Write(Bytes),
    Wait(Hold),
    /// Refuse the request unprocessed: over HTTP/2 a RST_STREAM with REFUSED_STREAM (RFC 9113
    /// §8.7); over HTTP/1.1 the connection is closed with nothing written.
    Refuse,
}

/// An interim response head: `HTTP/1.1 <status> <reason>`, the fields, an empty line.
pub fn interim(status: u16, reason: &str, fields: &[(&str, &str)]) -> Step {
    Step::Write(head(status, reason, fields).into())
}

/// A final response with `body` and its `Content-Length`.
pub fn final_response(status: u16, reason: &str, fields: &[(&str, &str)], body: &str) -> Step {
    let mut bytes = head(status, reason, &[fields, &[("content-length", &body.len().to_string())]].concat());
    bytes.push_str(body);
    Step::Write(bytes.into())
}

fn head(status: u16, reason: &str, fields: &[(&str, &str)]) -> String {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in fields {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out
}

#[derive(Default)]
struct State {
    /// Per path: the answers in order; the last one repeats.
    scripts: HashMap<String, Vec<Vec<Step>>>,
    requests: Vec<RawRequest>,
}

/// A running interim-capable origin; dropping it stops it.
pub struct InterimOrigin {
    /// It speaks TLS: its URL is `https://localhost:P`.
    tls: bool,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl InterimOrigin {
    /// An HTTP/1.1 origin.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_speaking(Speaks::Http1).await
    }

    /// An HTTP/2 origin (h2c with prior knowledge): its 1xx go out as HEADERS frames.
    pub async fn start_h2() -> anyhow::Result<Self> {
        Self::start_speaking(Speaks::H2c { max_streams: None }).await
    }

    /// An HTTP/2 origin behind TLS presenting `leaf` (ALPN h2), as an `https` origin reached
    /// with `origin_protocol = "auto"` finds it; its URL names `localhost`.
    pub async fn start_h2_tls(leaf: &crate::tls::Leaf) -> anyhow::Result<Self> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(leaf.server_config()?));
        Self::start_speaking(Speaks::H2Tls(acceptor)).await
    }

    /// An HTTP/2 origin that allows `max` concurrent streams per connection
    /// (SETTINGS_MAX_CONCURRENT_STREAMS, RFC 9113 §6.5.2).
    pub async fn start_h2_with_max_streams(max: u32) -> anyhow::Result<Self> {
        Self::start_speaking(Speaks::H2c { max_streams: Some(max) }).await
    }

    async fn start_speaking(speaks: Speaks) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let tls = matches!(speaks, Speaks::H2Tls(_));
        let task = tokio::spawn(accept_loop(listener, state.clone(), speaks));
        Ok(Self { addr, state, task, tls })
    }

    pub fn url(&self) -> String {
        if self.tls { format!("https://localhost:{}", self.addr.port()) } else { format!("http://{}", self.addr) }
    }

    /// The answers to requests for `path` (the target without query), in order; the last one
    /// repeats. An unscripted path gets 404.
    pub fn route(&self, path: &str, answers: Vec<Vec<Step>>) {
        if let Ok(mut s) = self.state.lock() {
            s.scripts.insert(path.to_string(), answers);
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.state.lock().map(|s| s.requests.clone()).unwrap_or_default()
    }

    /// Waits (within 20 s) until `n` requests have arrived; every request so far.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<RawRequest> {
        for _ in 0..2000 {
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.requests()
    }

    /// Requests received for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.target == path).count()
    }
}

impl Drop for InterimOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
enum Speaks {
    Http1,
    H2c { max_streams: Option<u32> },
    H2Tls(tokio_rustls::TlsAcceptor),
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>, speaks: Speaks) {
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0usize.. {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        match &speaks {
            Speaks::Http1 => tasks.spawn(serve(tcp, conn, state.clone())),
            Speaks::H2c { max_streams } => tasks.spawn(h2::serve(tcp, conn, state.clone(), *max_streams)),
            Speaks::H2Tls(acceptor) => {
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tasks.spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        h2::serve(tls, conn, state, None).await;
                    }
                })
            }
        };
    }
}

async fn serve(mut tcp: TcpStream, conn: usize, state: Arc<Mutex<State>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(end) = read_head(&mut tcp, &mut buf).await else { return };
        let head: Vec<u8> = buf.drain(..end).collect();
        let Some(req) = parse(&head, conn) else { return };
        let length: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let steps = answer(&state, req);
        for step in steps {
            let written = match step {
                Step::Write(bytes) => tcp.write_all(&bytes).await.is_ok(),
                Step::Refuse => false,
                Step::Wait(hold) => {
                    hold.wait().await;
                    true
                }
            };
            if !written {
                return;
            }
        }
        if !discard(&mut tcp, &mut buf, length).await {
            return;
        }
    }
}

/// Records `req` and picks its scripted answer (the n-th for the n-th request of its path).
fn answer(state: &Mutex<State>, req: RawRequest) -> Vec<Step> {
    let not_found = vec![final_response(404, "Not Found", &[], "")];
    let Ok(mut s) = state.lock() else { return not_found };
    let path = req.target.split('?').next().unwrap_or("").to_string();
    let nth = s.requests.iter().filter(|r| r.target.split('?').next() == Some(path.as_str())).count();
    s.requests.push(req);
    match s.scripts.get(&path) {
        Some(answers) => answers.get(nth).or(answers.last()).cloned().unwrap_or(not_found),
        None => not_found,
    }
}
