//! An origin on raw TCP that frames requests the way nginx and Node do, to test what the node
//! sends on a pooled connection byte for byte.
//!
//! It answers a request as soon as its head is read, before reading any body, and keeps the
//! connection alive; then, as nginx's discard of an unread body does, it reads and throws away
//! `Content-Length` bytes before parsing the next request on the same connection. A node that
//! forwards a `Content-Length` without the body thus has the next request's first bytes eaten:
//! the desync this origin makes visible. Every request head it parsed is recorded with the
//! number of the connection it came on; bytes that do not parse as a request are recorded as
//! garbage and the connection is closed after a 400.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bound on one request head; more is garbage.
const MAX_HEAD: usize = 64 * 1024;

/// One request head as the raw origin parsed it.
#[derive(Clone, Debug)]
pub struct RawRequest {
    /// Which accepted connection (0, 1, ...) carried it.
    pub conn: usize,
    pub method: String,
    pub target: String,
    /// Field names lower-cased, in order.
    pub headers: Vec<(String, String)>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Log {
    requests: Vec<RawRequest>,
    garbage: Vec<String>,
}

/// A running raw origin; dropping it stops it.
pub struct RawOrigin {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawOrigin {
    /// Answers every request `200` with body `origin:<target>` and `Cache-Control: max-age=60`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::dropping(0).await
    }

    /// Like [`RawOrigin::start`], but the first `drops` connections are closed as soon as a
    /// request head arrived, before any response byte: what a crashing or restarting origin
    /// does ("connection closed before message completed" at the node).
    pub async fn dropping(drops: usize) -> anyhow::Result<Self> {
        Self::spawn(drops, Arc::from(&b""[..])).await
    }

    /// Like [`RawOrigin::start`], but every response is preceded by `interim`, written as it is:
    /// interim (1xx) heads such as `HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n`.
    pub async fn with_interim(interim: &str) -> anyhow::Result<Self> {
        Self::spawn(0, Arc::from(interim.as_bytes())).await
    }

    async fn spawn(drops: usize, interim: Arc<[u8]>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Log::default()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(listener, log.clone(), accepted.clone(), drops, interim));
        Ok(Self { addr, log, accepted, task })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request head parsed so far, in order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.log.lock().map(|l| l.requests.clone()).unwrap_or_default()
    }

    /// Byte runs that did not parse as a request (what a desync leaves).
    pub fn garbage(&self) -> Vec<String> {
        self.log.lock().map(|l| l.garbage.clone()).unwrap_or_default()
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    log: Arc<Mutex<Log>>,
    accepted: Arc<AtomicUsize>,
    drops: usize,
    interim: Arc<[u8]>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0usize.. {
        let Ok((mut tcp, _)) = listener.accept().await else { continue };
        accepted.fetch_add(1, Ordering::SeqCst);
        if conn < drops {
            tasks.spawn(async move {
                let mut buf = Vec::new();
                let _ = read_head(&mut tcp, &mut buf).await;
                // Dropped: closed without a response byte.
            });
            continue;
        }
        tasks.spawn(serve(tcp, conn, log.clone(), interim.clone()));
    }
}

async fn serve(mut tcp: TcpStream, conn: usize, log: Arc<Mutex<Log>>, interim: Arc<[u8]>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(end) = read_head(&mut tcp, &mut buf).await else { return };
        let head: Vec<u8> = buf.drain(..end).collect();
        let Some(req) = parse(&head, conn) else {
            if let Ok(mut l) = log.lock() {
                l.garbage.push(String::from_utf8_lossy(&head).into_owned());
            }
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            return;
        };
        let length: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let chunked = req.header("transfer-encoding").is_some();
        let body = format!("origin:{}", req.target);
        if let Ok(mut l) = log.lock() {
            l.requests.push(req);
        }
        // Answer first, as nginx does for a static file or a GET it proxies without a body.
        let response =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=60\r\n\r\n{body}", body.len());
        if !interim.is_empty() && tcp.write_all(&interim).await.is_err() {
            return;
        }
        if tcp.write_all(response.as_bytes()).await.is_err() || chunked {
            return;
        }
        // Then discard the body the head declared, however long that takes.
        if !discard(&mut tcp, &mut buf, length).await {
            return;
        }
    }
}

/// Reads until `buf` holds a whole head; its length, or `None` at EOF or past [`MAX_HEAD`].
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn discard(tcp: &mut TcpStream, buf: &mut Vec<u8>, mut length: usize) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        let take = length.min(buf.len());
        buf.drain(..take);
        length -= take;
        if length == 0 {
            return true;
        }
        // An idle keep-alive connection stays open; nginx would time it out after a minute.
        match tokio::time::timeout(Duration::from_secs(60), tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
}

/// `METHOD SP target SP HTTP/1.1` and `name: value` lines; anything else is `None`.
fn parse(head: &[u8], conn: usize) -> Option<RawRequest> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !method_ok || !version.starts_with("HTTP/1.") || first.next().is_some() {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Some(RawRequest { conn, method: method.to_string(), target: target.to_string(), headers })
}
