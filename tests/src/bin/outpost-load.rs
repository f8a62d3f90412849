//! `outpost-load`: a small closed-loop load generator that speaks HTTP/1.1 and HTTP/2 over TLS
//! (hyper + rustls) and HTTP/3 (quinn + h3), so that `bench/protocols.sh` measures all three
//! protocols with the same client, the same timing and the same histogram.
//!
//! ```text
//! outpost-load --proto h1|h2|h3 --addr 127.0.0.1:8443 --host bench.test --path /1KiB.bin \
//!     --ca ca.pem [--connections 32] [--streams-per-connection 1] [--duration 10s] \
//!     [--warmup 2s] [--expect-bytes 1024] [--server-pid PID]
//! outpost-load certs --dir DIR --host bench.test   # ca.pem, cert.pem, key.pem for a node
//! ```
//!
//! How a run goes:
//! 1. Open `--connections` connections (TLS with the given SNI, trusting only `--ca`; ALPN
//!    `http/1.1`, `h2` or `h3`). A failure here ends the run: the setup is wrong.
//! 2. On each connection, `--streams-per-connection` workers each send a GET, read the whole
//!    body, and send the next one at once (closed loop). HTTP/1.1 allows one request at a time per
//!    connection, so there it must be 1. Connections are kept and reused for the whole run.
//! 3. Requests that start in the first `--warmup` are not counted. After that, for `--duration`,
//!    every request that starts and ends inside the window is counted: its latency (request sent
//!    to last body byte) goes into a histogram when it succeeded (status 200, and
//!    `--expect-bytes` body bytes when given), otherwise it counts as an error.
//! 4. A worker whose request fails at the transport level (or takes over 10 s) stops; once every
//!    worker of a connection has stopped, the connection is opened again, until the window ends.
//! 5. One line of JSON goes to stdout: requests, errors, req/s, p50/p90/p99/max latency in µs,
//!    body bytes received, the client's CPU use over the window, and the CPU use of
//!    `--server-pid` (the node under test) over the same window, from `/proc/<pid>/stat`.
//!
//! Everything is bounded: the duration, the warm-up, the connection and stream counts, each
//! connect and each request. The client runs on one thread (a current-thread tokio runtime):
//! pin it with `taskset` to keep it off the server's core.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::{Buf as _, Bytes};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use outpost_tests::tls::{TestCa, provider};
use quinn::crypto::rustls::QuicClientConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Bound on one request (send to last body byte); past it the request is an error.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Bound on one connect (TCP + TLS, or the QUIC handshake, and the HTTP/2 or HTTP/3 setup).
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// Pause before opening a connection again after it failed, so a dead server is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
const MAX_DURATION: Duration = Duration::from_secs(600);
const MAX_WARMUP: Duration = Duration::from_secs(60);
const MAX_CONNECTIONS: usize = 1000;
const MAX_STREAMS: usize = 1000;
/// `/proc/<pid>/stat` counts CPU time in clock ticks of 1/USER_HZ s; USER_HZ is 100 on Linux.
const USER_HZ: f64 = 100.0;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("certs") => write_certs(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Config::parse(&args).and_then(run),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outpost-load: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage:
  outpost-load --proto h1|h2|h3 --addr IP:PORT --host NAME --path /PATH --ca CA.pem
               [--connections N (32)] [--streams-per-connection M (1)] [--duration 10s]
               [--warmup 2s] [--expect-bytes BYTES] [--server-pid PID]
  outpost-load certs --dir DIR --host NAME   (writes ca.pem, cert.pem, key.pem)";

// ---------------------------------------------------------------------------------------------
// Arguments

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    H1,
    H2,
    H3,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::H1 => "h1",
            Proto::H2 => "h2",
            Proto::H3 => "h3",
        }
    }

    fn alpn(self) -> &'static [u8] {
        match self {
            Proto::H1 => b"http/1.1",
            Proto::H2 => b"h2",
            Proto::H3 => b"h3",
        }
    }
}

/// One run's settings, checked against the bounds above.
struct Config {
    proto: Proto,
    addr: SocketAddr,
    /// TLS SNI, and the `Host` header (HTTP/1.1) or `:authority` (HTTP/2, HTTP/3).
    host: String,
    path: String,
    ca: PathBuf,
    connections: usize,
    streams: usize,
    duration: Duration,
    warmup: Duration,
    expect_bytes: Option<u64>,
    server_pid: Option<u32>,
}

impl Config {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let (mut proto, mut addr, mut host, mut path, mut ca) = (None, None, None, None, None);
        let mut connections = 32;
        let mut streams = 1;
        let mut duration = Duration::from_secs(10);
        let mut warmup = Duration::from_secs(2);
        let (mut expect_bytes, mut server_pid) = (None, None);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
            let bad = || format!("{flag} {value}: not valid");
            match flag.as_str() {
                "--proto" => {
                    proto = Some(match value.as_str() {
                        "h1" => Proto::H1,
                        "h2" => Proto::H2,
                        "h3" => Proto::H3,
                        _ => bail!("--proto {value}: use h1, h2 or h3"),
                    })
                }
                "--addr" => addr = Some(value.parse::<SocketAddr>().with_context(bad)?),
                "--host" | "--sni" => host = Some(value.clone()),
                "--path" => path = Some(value.clone()),
                "--ca" => ca = Some(PathBuf::from(value)),
                "--connections" => connections = value.parse().with_context(bad)?,
                "--streams-per-connection" => streams = value.parse().with_context(bad)?,
                "--duration" => duration = parse_duration(value).with_context(bad)?,
                "--warmup" => warmup = parse_duration(value).with_context(bad)?,
                "--expect-bytes" => expect_bytes = Some(value.parse().with_context(bad)?),
                "--server-pid" => server_pid = Some(value.parse().with_context(bad)?),
                _ => bail!("unknown argument {flag}\n{USAGE}"),
            }
        }
        let need = |what: &str| format!("{what} is required\n{USAGE}");
        let cfg = Config {
            proto: proto.with_context(|| need("--proto"))?,
            addr: addr.with_context(|| need("--addr"))?,
            host: host.with_context(|| need("--host"))?,
            path: path.with_context(|| need("--path"))?,
            ca: ca.with_context(|| need("--ca"))?,
            connections,
            streams,
            duration,
            warmup,
            expect_bytes,
            server_pid,
        };
        ensure!((1..=MAX_CONNECTIONS).contains(&cfg.connections), "--connections: 1 to {MAX_CONNECTIONS}");
        ensure!((1..=MAX_STREAMS).contains(&cfg.streams), "--streams-per-connection: 1 to {MAX_STREAMS}");
        ensure!(
            cfg.proto != Proto::H1 || cfg.streams == 1,
            "--streams-per-connection: HTTP/1.1 sends one request at a time per connection; use 1"
        );
        ensure!(
            !cfg.duration.is_zero() && cfg.duration <= MAX_DURATION,
            "--duration: more than 0, at most {MAX_DURATION:?}"
        );
        ensure!(cfg.warmup <= MAX_WARMUP, "--warmup: at most {MAX_WARMUP:?}");
        ensure!(cfg.path.starts_with('/'), "--path must start with /");
        Ok(cfg)
    }
}

/// `10s`, `500ms`, `2m`, or a bare number of seconds (`0` allowed).
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse()?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        _ => bail!("unknown unit {unit:?}; use ms, s or m"),
    })
}

// ---------------------------------------------------------------------------------------------
// Latency histogram

/// A log-linear histogram of nanoseconds, in the manner of HdrHistogram: values below 128 have a
/// bucket each; above, every power of two is split into 64 buckets, so a bucket is at most 1/64
/// (1.6%) wide relative to its values. Recording is an index computation and an increment.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_ns: u128,
    max_ns: u64,
}

const SUB_BUCKETS: u64 = 64;
/// Buckets for every u64: 128 linear ones, then 64 per power of two from 2^7 to 2^63.
const BUCKETS: usize = 128 + 57 * SUB_BUCKETS as usize;

impl Histogram {
    fn new() -> Self {
        Self { counts: vec![0; BUCKETS], total: 0, sum_ns: 0, max_ns: 0 }
    }

    fn index(ns: u64) -> usize {
        if ns < 2 * SUB_BUCKETS {
            return ns as usize;
        }
        // Keep the 7 highest bits: `top` is in [64, 128), `shift` says how far it was moved.
        let shift = 63 - ns.leading_zeros() - 6;
        let top = ns >> shift;
        (shift as usize + 1) * SUB_BUCKETS as usize + (top - SUB_BUCKETS) as usize
    }

    /// The largest value that falls in bucket `i` (reported, as HdrHistogram does, so a
    /// percentile is never understated).
    fn highest(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB_BUCKETS {
            return i;
        }
        let shift = i / SUB_BUCKETS - 1;
        let top = i % SUB_BUCKETS + SUB_BUCKETS;
        // The last bucket ends at u64::MAX: (top + 1) << shift wraps to 0 there.
        ((top + 1) << shift).wrapping_sub(1)
    }

    fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The value at quantile `q` (0..=1) in µs: the smallest bucket holding the `ceil(q·n)`-th
    /// recorded value.
    fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::highest(i).min(self.max_ns) as f64 / 1000.0;
            }
        }
        self.max_ns as f64 / 1000.0
    }

    fn mean_us(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum_ns as f64 / self.total as f64 / 1000.0 }
    }
}

// ---------------------------------------------------------------------------------------------
// Timing and per-worker counts

/// When counting starts and when the run ends.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

/// What one worker (or, merged, the whole run) saw in the measured window.
struct Stats {
    latency: Histogram,
    errors: u64,
    bytes: u64,
    /// The first error, to say what went wrong without flooding stderr.
    first_error: Option<String>,
}

impl Stats {
    fn new() -> Self {
        Self { latency: Histogram::new(), errors: 0, bytes: 0, first_error: None }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Stats) {
        self.latency.merge(&other.latency);
        self.errors += other.errors;
        self.bytes += other.bytes;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections and requests, one shape for the three protocols

/// A handle that sends requests on one connection. HTTP/2 and HTTP/3 handles are clones sharing
/// the connection; an HTTP/1.1 handle is the connection.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    H3(h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>),
}

/// An open connection: its senders (one per worker), and what must stay alive beside them.
struct Connection {
    senders: Vec<Sender>,
    /// The task driving the connection (hyper's connection future, or h3's driver).
    driver: tokio::task::JoinHandle<()>,
    /// HTTP/3 only: the QUIC connection, closed explicitly when the run ends.
    quic: Option<quinn::Connection>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(quic) = &self.quic {
            quic.close(0u32.into(), b"done");
        }
        self.driver.abort();
    }
}

/// What [`connect`] needs, built once per run.
struct Target {
    cfg: Config,
    tls: Arc<rustls::ClientConfig>,
    /// `https://host/path`: the request target for HTTP/2 and HTTP/3.
    uri: http::Uri,
}

impl Target {
    fn new(cfg: Config) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&cfg.ca).with_context(|| format!("reading {}", cfg.ca.display()))? {
            roots.add(cert?).with_context(|| format!("{}: not a usable CA certificate", cfg.ca.display()))?;
        }
        // QUIC requires TLS 1.3 (RFC 9001 §4.2); HTTP/1.1 and HTTP/2 get it too, so the three
        // handshakes and record layers are alike.
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![cfg.proto.alpn().to_vec()];
        let uri = format!("https://{}{}", cfg.host, cfg.path).parse().context("--host and --path")?;
        Ok(Self { cfg, tls: Arc::new(tls), uri })
    }

    fn request(&self) -> anyhow::Result<Request<Empty<Bytes>>> {
        let builder = match self.cfg.proto {
            // HTTP/1.1: origin-form target and a Host header, as browsers and wrk send.
            Proto::H1 => Request::get(self.cfg.path.as_str()).header(http::header::HOST, self.cfg.host.as_str()),
            Proto::H2 | Proto::H3 => Request::get(self.uri.clone()),
        };
        Ok(builder.body(Empty::new())?)
    }
}

/// Opens one connection with one sender per worker (bounded by [`CONNECT_LIMIT`]).
async fn connect(target: &Target) -> anyhow::Result<Connection> {
    let cfg = &target.cfg;
    tokio::time::timeout(CONNECT_LIMIT, async {
        match cfg.proto {
            Proto::H1 | Proto::H2 => connect_tcp(target).await,
            Proto::H3 => connect_quic(target).await,
        }
    })
    .await
    .with_context(|| format!("{} connect to {} took over {CONNECT_LIMIT:?}", cfg.proto.name(), cfg.addr))?
    .with_context(|| format!("{} connect to {} (SNI {})", cfg.proto.name(), cfg.addr, cfg.host))
}

async fn connect_tcp(target: &Target) -> anyhow::Result<Connection> {
    let cfg = &target.cfg;
    let tcp = TcpStream::connect(cfg.addr).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(target.tls.clone())
        .connect(ServerName::try_from(cfg.host.clone())?, tcp)
        .await?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    ensure!(alpn.as_deref() == Some(cfg.proto.alpn()), "server chose ALPN {alpn:?}");
    let io = TokioIo::new(tls);
    let (senders, driver) = if cfg.proto == Proto::H1 {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        (vec![Sender::H1(sender)], tokio::spawn(async move { drop(conn.await) }))
    } else {
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        let senders = (0..cfg.streams).map(|_| Sender::H2(sender.clone())).collect();
        (senders, tokio::spawn(async move { drop(conn.await) }))
    };
    Ok(Connection { senders, driver, quic: None })
}

async fn connect_quic(target: &Target) -> anyhow::Result<Connection> {
    let cfg = &target.cfg;
    // One UDP socket per connection, as each TCP connection has its own socket.
    let local = SocketAddr::new(if cfg.addr.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() }, 0);
    let mut endpoint = quinn::Endpoint::client(local)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(
        (*target.tls).clone(),
    )?)));
    let quic = endpoint.connect(cfg.addr, &cfg.host)?.await?;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(quic.clone())).await?;
    let driver = tokio::spawn(async move {
        driver.wait_idle().await;
        drop(endpoint);
    });
    let senders = (0..cfg.streams).map(|_| Sender::H3(sender.clone())).collect();
    Ok(Connection { senders, driver, quic: Some(quic) })
}

/// A response: its status and how many body bytes were read.
struct Fetched {
    status: StatusCode,
    bytes: u64,
}

impl Sender {
    /// Sends one GET and reads the whole body, counting its bytes (the data is dropped as it
    /// comes, the same way for the three protocols).
    async fn fetch(&mut self, target: &Target) -> anyhow::Result<Fetched> {
        let response = match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(target.request()?).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(target.request()?).await?
            }
            Sender::H3(s) => return fetch_h3(s, target).await,
        };
        let status = response.status();
        let mut body = response.into_body();
        let mut bytes = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                bytes += data.len() as u64;
            }
        }
        Ok(Fetched { status, bytes })
    }
}

async fn fetch_h3(
    sender: &mut h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    target: &Target,
) -> anyhow::Result<Fetched> {
    let (parts, _) = target.request()?.into_parts();
    let mut stream = sender.send_request(Request::from_parts(parts, ())).await?;
    stream.finish().await?;
    let status = stream.recv_response().await?.status();
    let mut bytes = 0;
    while let Some(chunk) = stream.recv_data().await? {
        bytes += chunk.remaining() as u64;
    }
    Ok(Fetched { status, bytes })
}

// ---------------------------------------------------------------------------------------------
// The run

/// One worker: requests one after another on `sender` until the window ends or a request fails
/// at the transport level (then the connection may be gone; see [`drive`]).
async fn work(mut sender: Sender, target: Arc<Target>, window: Window) -> Stats {
    let mut stats = Stats::new();
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        let result = tokio::time::timeout(REQUEST_LIMIT, sender.fetch(&target)).await;
        let finished = Instant::now();
        let counted = started >= window.measure_from && finished <= window.end;
        let failure = match result {
            Ok(Ok(got)) => {
                let length_ok = target.cfg.expect_bytes.is_none_or(|n| n == got.bytes);
                if counted && got.status == StatusCode::OK && length_ok {
                    stats.latency.record(finished - started);
                    stats.bytes += got.bytes;
                } else if counted {
                    stats.error(format!("status {}, {} body bytes", got.status, got.bytes));
                }
                continue;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => format!("no complete response within {REQUEST_LIMIT:?}"),
        };
        if finished <= window.end {
            stats.error(failure);
        }
        break;
    }
    stats
}

/// One connection for the whole run: its workers, and a new connection whenever all of them
/// have stopped before the window's end.
async fn drive(mut conn: Connection, target: Arc<Target>, window: Window) -> Stats {
    let mut stats = Stats::new();
    loop {
        let mut workers = JoinSet::new();
        for sender in std::mem::take(&mut conn.senders) {
            workers.spawn(work(sender, target.clone(), window));
        }
        while let Some(done) = workers.join_next().await {
            match done {
                Ok(s) => stats.merge(s),
                Err(e) => stats.error(format!("worker failed: {e}")),
            }
        }
        drop(conn);
        loop {
            if Instant::now() >= window.end {
                return stats;
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
            match connect(&target).await {
                Ok(c) => {
                    conn = c;
                    break;
                }
                Err(e) => stats.error(format!("reconnect: {e:#}")),
            }
        }
    }
}

fn run(cfg: Config) -> anyhow::Result<()> {
    // One thread: the client's cost is the same for every protocol, and it stays on its core.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = runtime.block_on(measure(cfg))?;
    println!("{report}");
    Ok(())
}

async fn measure(cfg: Config) -> anyhow::Result<serde_json::Value> {
    let target = Arc::new(Target::new(cfg)?);
    let cfg = &target.cfg;
    let mut conns = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections {
        conns.push(connect(&target).await?);
    }
    let start = Instant::now();
    let window = Window { measure_from: start + cfg.warmup, end: start + cfg.warmup + cfg.duration };
    let drivers: Vec<_> = conns.into_iter().map(|c| tokio::spawn(drive(c, target.clone(), window))).collect();
    let cpu = tokio::spawn(cpu_over(window, cfg.server_pid));

    let mut stats = Stats::new();
    for driver in drivers {
        stats.merge(driver.await?);
    }
    let (client_cpu, server_cpu) = cpu.await??;
    let secs = cfg.duration.as_secs_f64();
    let requests = stats.latency.total;
    let round = |v: f64| (v * 10.0).round() / 10.0;
    if let Some(e) = &stats.first_error {
        eprintln!("outpost-load: {} errors; the first: {e}", stats.errors);
    }
    Ok(serde_json::json!({
        "proto": cfg.proto.name(),
        "connections": cfg.connections,
        "streams_per_connection": cfg.streams,
        "duration_s": secs,
        "requests": requests,
        "errors": stats.errors,
        "rps": round(requests as f64 / secs),
        "p50_us": stats.latency.quantile_us(0.50),
        "p90_us": stats.latency.quantile_us(0.90),
        "p99_us": stats.latency.quantile_us(0.99),
        "max_us": stats.latency.max_ns as f64 / 1000.0,
        "mean_us": round(stats.latency.mean_us()),
        "bytes": stats.bytes,
        "client_cpu_s": client_cpu,
        "server_cpu_s": server_cpu,
        "first_error": stats.first_error,
    }))
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc

/// CPU seconds (user + system, all threads) of this process and of `server` over the window.
async fn cpu_over(window: Window, server: Option<u32>) -> anyhow::Result<(f64, Option<f64>)> {
    let sample = || -> anyhow::Result<(f64, Option<f64>)> {
        Ok((cpu_seconds("self")?, server.map(|pid| cpu_seconds(&pid.to_string())).transpose()?))
    };
    tokio::time::sleep_until(window.measure_from.into()).await;
    let before = sample()?;
    tokio::time::sleep_until(window.end.into()).await;
    let after = sample()?;
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    Ok((round(after.0 - before.0), after.1.zip(before.1).map(|(a, b)| round(a - b))))
}

/// utime + stime of a process (fields 14 and 15 of `/proc/<pid>/stat`), in seconds.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces; count after it.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).with_context(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).with_context(|| format!("{path}: too few fields"))?.parse::<u64>()? as f64)
    };
    // After the name come field 3 (state) onwards: utime is field 14, at index 11 here.
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

// ---------------------------------------------------------------------------------------------
// `certs`: a throwaway CA and a leaf for the node under test

/// Writes `ca.pem` (what `--ca` takes), and `cert.pem` and `key.pem` (a `[[tls.certificates]]`
/// entry for the node) for `--host`, into `--dir`. Made by the test harness's [`TestCa`].
fn write_certs(args: &[String]) -> anyhow::Result<()> {
    let (mut dir, mut host) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--host" => host = Some(value.clone()),
            _ => bail!("certs: unknown argument {flag}\n{USAGE}"),
        }
    }
    let (dir, host) = (dir.context("certs: --dir is required")?, host.context("certs: --host is required")?);
    let ca = TestCa::new("outpost-load bench CA")?;
    let leaf = ca.issue(&[host.as_str()])?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, pem) in [("ca.pem", ca.cert_pem()), ("cert.pem", leaf.cert_pem), ("key.pem", leaf.key_pem)] {
        let path = dir.join(name);
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_contiguous_and_narrow() {
        let mut previous = None;
        for ns in (0..100_000u64).chain([1 << 20, (1 << 20) + 12_345, u64::MAX / 3, u64::MAX]) {
            let i = Histogram::index(ns);
            assert!(Histogram::highest(i) >= ns, "{ns} above its bucket's highest value");
            assert!(i == 0 || Histogram::highest(i - 1) < ns, "{ns} belongs in an earlier bucket");
            assert!(Histogram::highest(i) - ns <= ns / 64, "bucket of {ns} wider than 1/64");
            if let Some(p) = previous {
                assert!(i >= p, "index not monotonic at {ns}");
            }
            previous = Some(i);
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_known_values() {
        let mut h = Histogram::new();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let close = |got: f64, want: f64| (got - want).abs() <= want / 64.0 + 0.001;
        assert!(close(h.quantile_us(0.5), 500.0), "p50 {}", h.quantile_us(0.5));
        assert!(close(h.quantile_us(0.99), 990.0), "p99 {}", h.quantile_us(0.99));
        assert_eq!(h.quantile_us(1.0), 1000.0);
        assert!(close(h.mean_us(), 500.5));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").ok(), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0").ok(), Some(Duration::ZERO));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }
}
