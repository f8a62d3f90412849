//! Zero-downtime binary upgrade (SIGUSR2): the running node starts its executable again, hands
//! it the listening sockets (TCP and the QUIC UDP socket) and its disk cache, then drains and
//! exits. Under constant load from HTTP/1.1, HTTP/1.1 + TLS, HTTP/2 + TLS and HTTP/3 clients no
//! request fails and no connection is refused; an upgrade that fails leaves the old process
//! serving, its cache intact.
//!
//! The clients behave as browsers and curl do: a connection the server closed cleanly
//! (`Connection: close` after a response, an HTTP/2 or HTTP/3 GOAWAY) is replaced by a new one
//! before the next request, and a request the server refused unprocessed (RFC 9113 §8.7, RFC
//! 9114 §5.2: above a GOAWAY's stream id) is sent again; those are counted apart. Anything else
//! (a refused or reset connection, an error response, a request cut off) is a failure.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use outpost_tests::h3client::H3Client;
use outpost_tests::node::SETTLE;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec, TestCa};
use tokio::sync::watch;

const HOST: &str = "shop.test";
/// The drain bound the nodes run with.
const DRAIN: Duration = Duration::from_secs(5);
/// Bound on the new process writing its ready file.
const READY: Duration = Duration::from_secs(60);

/// What one protocol's clients saw.
#[derive(Debug, Default, Clone)]
struct Tally {
    ok: u64,
    /// Connections opened (the first ones, then replacements for those the server closed).
    connections: u64,
    /// Requests the server refused unprocessed, sent again.
    resent: u64,
    failures: Vec<String>,
    /// Successful requests after the old process had exited.
    ok_after_exit: u64,
}

type Shared = Arc<Mutex<Tally>>;

fn note(t: &Shared, f: impl FnOnce(&mut Tally)) {
    f(&mut t.lock().unwrap_or_else(|e| e.into_inner()));
}

struct Topology {
    ca: TestCa,
    origin: Origin,
    node: EdgeNode,
}

async fn topology() -> anyhow::Result<Topology> {
    let ca = TestCa::new("upgrade test CA")?;
    let cert = ca.issue(&[HOST])?;
    let origin = Origin::start().await?;
    origin.route("/hot", Reply::ok("hot object").cache_control("max-age=300"));
    origin.route("/kept", Reply::ok("kept across the upgrade").cache_control("max-age=300"));
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &[HOST], origin.url()))
        .certificate(cert)
        .http3(true)
        .limits_line(&format!("drain_timeout = \"{}s\"", DRAIN.as_secs()))
        .limits_line("upgrade_timeout = \"60s\"");
    let node = EdgeNode::start(config).await?;
    Ok(Topology { ca, origin, node })
}

/// The process id in the node's ready file.
fn ready_pid(node: &EdgeNode) -> Option<u32> {
    let text = std::fs::read_to_string(node.dir().join("ready.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("pid")?.as_u64().and_then(|p| u32::try_from(p).ok())
}

/// Waits (bounded) until the ready file names a process other than `old`.
async fn new_ready_pid(node: &EdgeNode, old: u32) -> anyhow::Result<u32> {
    let start = Instant::now();
    loop {
        if let Some(pid) = ready_pid(node).filter(|p| *p != old) {
            return Ok(pid);
        }
        anyhow::ensure!(start.elapsed() < READY, "no new process ready within {READY:?}\n{}", node.stderr_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid}: {status}");
    Ok(())
}

/// The upgraded process is not the test's child: stopped here (SIGKILL if the test failed).
struct Stray(u32);

impl Drop for Stray {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = signal(self.0, "KILL");
        }
    }
}

/// An HTTP/1.1 or HTTP/2 connection's request half.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn open_tcp(addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>, h2: bool) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let io: Box<dyn Io> = match tls {
        Some(config) => {
            let name = rustls_pki_types::ServerName::try_from(HOST)?;
            Box::new(tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.context("TLS handshake")?)
        }
        None => Box::new(tcp),
    };
    let io = TokioIo::new(io);
    if h2 {
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        Ok(Sender::H1(sender))
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Whether an HTTP/2 request error says the server never processed it (safe to send again).
fn refused_unprocessed(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>()
            && (h2.reason() == Some(h2::Reason::REFUSED_STREAM) || (h2.is_go_away() && h2.is_remote()))
        {
            return true;
        }
        source = err.source();
    }
    e.is_canceled()
}

/// One client: requests `/hot` back to back until `stop`, replacing closed connections.
async fn tcp_client(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    h2: bool,
    tally: Shared,
    exited: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let mut sender: Option<Sender> = None;
    while !*stop.borrow() {
        let s = match &mut sender {
            Some(s) => s,
            None => match open_tcp(addr, tls.clone(), h2).await {
                Ok(s) => {
                    note(&tally, |t| t.connections += 1);
                    sender.insert(s)
                }
                Err(e) => {
                    note(&tally, |t| t.failures.push(format!("connection: {e:#}")));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        // A connection the server closed after its last response is not used again.
        let ready = match s {
            Sender::H1(s) => s.ready().await.is_ok(),
            Sender::H2(s) => s.ready().await.is_ok(),
        };
        if !ready {
            sender = None;
            continue;
        }
        let (scheme, version) = if h2 { ("https", http::Version::HTTP_2) } else { ("http", http::Version::HTTP_11) };
        let mut builder =
            http::Request::get(if h2 { format!("{scheme}://{HOST}/hot") } else { "/hot".into() }).version(version);
        if !h2 {
            builder = builder.header("host", HOST);
        }
        let Ok(req) = builder.body(Full::new(Bytes::new())) else { return };
        let sent = match s {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        };
        match sent {
            Ok(resp) => {
                let status = resp.status();
                match resp.into_body().collect().await.map(|b| b.to_bytes()) {
                    Ok(body) if status == 200 && body == "hot object" => {
                        let after = *exited.borrow();
                        note(&tally, |t| {
                            t.ok += 1;
                            t.ok_after_exit += u64::from(after);
                        });
                    }
                    Ok(_) => note(&tally, |t| t.failures.push(format!("status {status} or wrong body"))),
                    Err(e) => note(&tally, |t| t.failures.push(format!("body: {e}"))),
                }
            }
            Err(e) if h2 && refused_unprocessed(&e) => {
                note(&tally, |t| t.resent += 1);
                sender = None;
            }
            Err(e) => {
                note(&tally, |t| t.failures.push(format!("request: {e:?}")));
                sender = None;
            }
        }
    }
}

/// Whether an HTTP/3 request error says the server never processed it: H3_REQUEST_REJECTED,
/// or a GOAWAY that came before the request was sent (RFC 9114 §5.2).
fn h3_refused_unprocessed(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    // h3's own words: a request refused before it was sent once a GOAWAY came in, or one the
    // server reset with H3_REQUEST_REJECTED.
    text.contains("Remote is closing the connection") || text.contains("H3_REQUEST_REJECTED")
}

async fn h3_client(
    addr: SocketAddr,
    client: H3Client,
    tally: Shared,
    exited: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let mut conn = None;
    while !*stop.borrow() {
        let c = match &mut conn {
            Some(c) => c,
            None => match client.connect(addr).await {
                Ok(c) => {
                    note(&tally, |t| t.connections += 1);
                    conn.insert(c)
                }
                Err(e) => {
                    note(&tally, |t| t.failures.push(format!("QUIC connection: {e:#}")));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if c.closed_within(Duration::ZERO).await.is_some() {
            conn = None;
            continue;
        }
        match c.send(&Req::get(HOST, "/hot")).await {
            Ok(resp) if resp.status == 200 && resp.text() == "hot object" => {
                let after = *exited.borrow();
                note(&tally, |t| {
                    t.ok += 1;
                    t.ok_after_exit += u64::from(after);
                });
            }
            Ok(resp) => note(&tally, |t| t.failures.push(format!("HTTP/3: {}", resp.summary()))),
            Err(e) if h3_refused_unprocessed(&e) => {
                note(&tally, |t| t.resent += 1);
                conn = None;
            }
            Err(e) => {
                note(&tally, |t| t.failures.push(format!("HTTP/3 request: {e:#}")));
                conn = None;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_under_load_fails_no_request_and_keeps_the_cache() -> anyhow::Result<()> {
    let mut t = topology().await?;
    let old = t.node.pid().context("old pid")?;
    let kept = t.node.prime(HOST, "/kept").await?;
    assert!(!kept.cache_status().hit(), "{}", kept.summary());
    t.node.prime(HOST, "/hot").await?;
    let (http, https) = (t.node.http_addr(), t.node.https_addr()?);

    let (stop_tx, stop) = watch::channel(false);
    let (exited_tx, exited) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut tallies = Vec::new();
    for (name, clients) in [("h1", 2), ("h1+tls", 1), ("h2+tls", 2), ("h3", 2)] {
        let tally = Shared::default();
        tallies.push((name, tally.clone()));
        for _ in 0..clients {
            let (tally, stop, exited) = (tally.clone(), stop.clone(), exited.clone());
            match name {
                "h1" => tasks.spawn(tcp_client(http, None, false, tally, exited, stop)),
                "h1+tls" => {
                    let tls = Arc::new(t.ca.client_config(&[b"http/1.1".as_slice()])?);
                    tasks.spawn(tcp_client(https, Some(tls), false, tally, exited, stop))
                }
                "h2+tls" => {
                    let tls = Arc::new(t.ca.client_config(&[b"h2".as_slice()])?);
                    tasks.spawn(tcp_client(https, Some(tls), true, tally, exited, stop))
                }
                _ => tasks.spawn(h3_client(https, H3Client::new(&t.ca, HOST)?, tally, exited, stop)),
            };
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    signal(old, "USR2")?;
    let upgraded = Instant::now();
    let new = new_ready_pid(&t.node, old).await?;
    let _stray = Stray(new);
    let ready_after = upgraded.elapsed();
    // The old process drains (at most DRAIN) and exits by itself, successfully.
    let status = t.node.wait_exit().await?;
    let exit_after = upgraded.elapsed();
    assert!(status.success(), "old process exit: {status}");
    exited_tx.send(true)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_tx.send(true)?;
    while tasks.join_next().await.is_some() {}

    eprintln!("new process ready {ready_after:?} after SIGUSR2; old exited {exit_after:?} after it");
    for (name, tally) in &tallies {
        let tally = tally.lock().unwrap_or_else(|e| e.into_inner()).clone();
        eprintln!(
            "{name}: {} ok ({} after the old process exited), {} connections, {} resent, {} failed",
            tally.ok,
            tally.ok_after_exit,
            tally.connections,
            tally.resent,
            tally.failures.len()
        );
        assert!(tally.failures.is_empty(), "{name}: {:?}", &tally.failures[..tally.failures.len().min(10)]);
        assert!(tally.ok >= 20, "{name}: only {} requests", tally.ok);
        assert!(tally.ok_after_exit > 0, "{name}: nothing served by the new process alone");
        assert!(tally.connections >= 2, "{name}: clients moved to the new process on new connections");
    }
    assert!(exit_after < READY + DRAIN + Duration::from_secs(5), "old process exited after {exit_after:?}");
    let stderr = t.node.stderr_text();
    assert!(stderr.contains("upgrade: the new process serves; draining"), "{stderr}");
    assert!(stderr.contains("edge node stopped"), "the old process drained and stopped: {stderr}");

    // The new process serves from the same disk cache: the object stored before is a hit.
    let kept = outpost_tests::client::send(http, &Req::get(HOST, "/kept")).await?;
    assert!(kept.cache_status().hit(), "{}", kept.summary());
    assert_eq!(kept.text(), "kept across the upgrade");
    assert_eq!(t.origin.count("/kept"), 1);
    assert_eq!(t.origin.count("/hot"), 1, "every load request was a hit, in both processes");

    // The new process upgrades again, once its predecessor has gone: the handoff repeats.
    signal(new, "TERM")?;
    let start = Instant::now();
    while alive(new) {
        anyhow::ensure!(start.elapsed() < DRAIN + Duration::from_secs(10), "new process did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// An upgrade whose new process cannot start (a config that does not load), then one whose new
/// process dies after the old one released its disk cache (the new cache path cannot be
/// opened): each time the old process serves on, over TCP and QUIC, its cache intact and
/// written again.
#[tokio::test]
async fn a_failed_upgrade_leaves_the_old_process_serving() -> anyhow::Result<()> {
    let mut t = topology().await?;
    let old = t.node.pid().context("old pid")?;
    t.node.prime(HOST, "/kept").await?;
    let config_path = t.node.dir().join("edge.toml");
    let config = std::fs::read_to_string(&config_path).context("config")?;

    let failed = |n: usize| {
        let node = &t.node;
        async move {
            let start = Instant::now();
            loop {
                let count = node.stderr_text().matches("upgrade failed; this process serves on").count();
                if count >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                anyhow::ensure!(start.elapsed() < READY, "no failed upgrade logged\n{}", node.stderr_text());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // 1. The new process refuses its config and exits before it asks for anything.
    std::fs::write(&config_path, format!("{config}\n[nonsense]\n"))?;
    signal(old, "USR2")?;
    failed(1).await?;

    // 2. The new process takes the sockets and the disk cache, then fails to open its cache.
    let broken = config.replace(
        &format!("disk_path = \"{}\"", t.node.dir().join("cache").display()),
        "disk_path = \"/dev/null/cache\"",
    );
    assert_ne!(broken, config, "the test rewrote the cache path");
    std::fs::write(&config_path, broken)?;
    signal(old, "USR2")?;
    failed(2).await?;
    assert!(t.node.stderr_text().contains("exited"), "{}", t.node.stderr_text());
    std::fs::write(&config_path, &config)?;

    assert!(t.node.is_running());
    assert_eq!(ready_pid(&t.node), Some(old), "the ready file still names the old process");
    let kept = t.node.get(HOST, "/kept").await?;
    assert!(kept.cache_status().hit(), "{}", kept.summary());
    let h3 = outpost_tests::h3client::send(t.node.https_addr()?, &t.ca, HOST, &Req::get(HOST, "/kept")).await?;
    assert!(h3.cache_status().hit(), "{}", h3.summary());
    // The disk tier is written again: an object stored now survives a restart.
    t.origin.route("/after", Reply::ok("stored after the failed upgrade").cache_control("max-age=300"));
    t.node.prime(HOST, "/after").await?;
    tokio::time::sleep(SETTLE).await;
    t.node.restart().await?;
    for path in ["/kept", "/after"] {
        let resp = t.node.get(HOST, path).await?;
        assert!(resp.cache_status().hit(), "{path} after the restart: {}", resp.summary());
    }
    assert_eq!(t.origin.count("/kept"), 1);
    assert_eq!(t.origin.count("/after"), 1);
    Ok(())
}
