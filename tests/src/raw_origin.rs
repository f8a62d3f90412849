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
    /// Requests that met a closing connection instead of an answer.
    killed: Vec<RawRequest>,
}

/// How a connection the origin gives up on treats the request that arrives on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    /// Read the request (head and `Content-Length` body), then close: a FIN, as an origin that
    /// read the request and crashed, or closed the idle connection just as it arrived.
    ReadAndClose,
    /// Close with the request unread in the socket: the kernel answers with a RST ("data was
    /// lost", RFC 9293 §3.6.1), as when a keep-alive timeout fires while the request is on its
    /// way.
    CloseUnread,
}

/// What the origin does, connection by connection.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// The first `n` connections are closed as soon as a request head arrived.
    Drop(usize),
    /// Connections answer one request, keep alive, and kill the next, `n` times in all.
    KillSecond(usize, Kill),
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
        Self::scripted(Script::Drop(drops)).await
    }

    /// Like [`RawOrigin::start`], but a connection answers its first request keep-alive and
    /// then kills the second one as `kill` says, without a response byte: the idle keep-alive
    /// connection the origin closes just as the node reuses it. After `kills` such deaths,
    /// connections are kept alive as usual.
    pub async fn closing_reused(kills: usize, kill: Kill) -> anyhow::Result<Self> {
        Self::scripted(Script::KillSecond(kills, kill)).await
    }

    async fn scripted(script: Script) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Log::default()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(listener, log.clone(), accepted.clone(), script));
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

    /// Requests that met a killed connection instead of an answer, in order.
    pub fn killed(&self) -> Vec<RawRequest> {
        self.log.lock().map(|l| l.killed.clone()).unwrap_or_default()
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

async fn accept_loop(listener: TcpListener, log: Arc<Mutex<Log>>, accepted: Arc<AtomicUsize>, script: Script) {
    let mut tasks = tokio::task::JoinSet::new();
    let budget = Arc::new(AtomicUsize::new(match script {
        Script::KillSecond(kills, _) => kills,
        Script::Drop(_) => 0,
    }));
    for conn in 0usize.. {
        let Ok((mut tcp, _)) = listener.accept().await else { continue };
        accepted.fetch_add(1, Ordering::SeqCst);
        match script {
            Script::Drop(drops) if conn < drops => {
                tasks.spawn(async move {
                    let mut buf = Vec::new();
                    let _ = read_head(&mut tcp, &mut buf).await;
                    // Dropped: closed without a response byte.
                });
            }
            Script::KillSecond(_, kill) => {
                tasks.spawn(serve(tcp, conn, log.clone(), Some((kill, budget.clone()))));
            }
            _ => {
                tasks.spawn(serve(tcp, conn, log.clone(), None));
            }
        }
    }
}

/// Serves requests on `tcp`; with `kill = Some((how, budget))`, answers one and kills the
/// second while the budget of kills lasts.
async fn serve(mut tcp: TcpStream, conn: usize, log: Arc<Mutex<Log>>, kill: Option<(Kill, Arc<AtomicUsize>)>) {
    let mut buf: Vec<u8> = Vec::new();
    for served in 0usize.. {
        if let Some((how, budget)) = kill.as_ref().filter(|_| served == 1 && buf.is_empty()) {
            // Only a request that arrives spends a kill (a connection the node closes does not).
            let mut byte = [0u8; 1];
            if !matches!(tcp.peek(&mut byte).await, Ok(n) if n > 0) {
                return;
            }
            let spent = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1));
            if spent.is_ok() {
                return kill_next(tcp, buf, conn, &log, *how).await;
            }
        }
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
        if tcp.write_all(response.as_bytes()).await.is_err() || chunked {
            return;
        }
        // Then discard the body the head declared, however long that takes.
        if !discard(&mut tcp, &mut buf, length).await {
            return;
        }
    }
}

/// Kills the connection under the next request, as `how` says, and records that request.
async fn kill_next(mut tcp: TcpStream, mut buf: Vec<u8>, conn: usize, log: &Mutex<Log>, how: Kill) {
    let head = match how {
        Kill::ReadAndClose => {
            let Some(end) = read_head(&mut tcp, &mut buf).await else { return };
            let head: Vec<u8> = buf.drain(..end).collect();
            let req = parse(&head, conn);
            let length = req.as_ref().and_then(|r| r.header("content-length")?.parse().ok()).unwrap_or(0);
            discard(&mut tcp, &mut buf, length).await;
            req
        }
        Kill::CloseUnread => peek_request(&tcp).await.and_then(|(head, _)| parse(&head, conn)),
    };
    if let (Some(req), Ok(mut l)) = (head, log.lock()) {
        l.killed.push(req);
    }
    // Dropped here: a FIN, or a RST when bytes are left unread.
    drop(tcp);
}

/// Waits, without reading, until the socket holds a whole request (head and `Content-Length`
/// body); its head and total length. `None` at EOF or past [`MAX_HEAD`].
async fn peek_request(tcp: &TcpStream) -> Option<(Vec<u8>, usize)> {
    let mut chunk = vec![0u8; MAX_HEAD + 1];
    loop {
        let n = tcp.peek(&mut chunk).await.ok().filter(|n| *n > 0)?;
        let seen = &chunk[..n];
        if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = seen[..i + 4].to_vec();
            let length: usize =
                parse(&head, 0).and_then(|r| r.header("content-length").and_then(|v| v.parse().ok())).unwrap_or(0);
            if n >= i + 4 + length {
                return Some((head, i + 4 + length));
            }
        }
        if n > MAX_HEAD {
            return None;
        }
        // More is on its way: peek returns what is there at once, so wait a moment.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Reads until `buf` holds a whole head; its length, or `None` at EOF or past [`MAX_HEAD`].
pub(crate) async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
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

/// Drops the `length` body bytes a request declared (some may already be in `buf`); false when
/// the connection closed or went idle first.
pub(crate) async fn discard(tcp: &mut TcpStream, buf: &mut Vec<u8>, mut length: usize) -> bool {
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
pub(crate) fn parse(head: &[u8], conn: usize) -> Option<RawRequest> {
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
