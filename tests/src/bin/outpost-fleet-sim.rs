//! `outpost-fleet-sim`: many lightweight node-protocol clients in one process against real
//! control-plane processes (issue 16's bench). Each simulated node registers, holds its NDJSON
//! stream, and acknowledges every event it reads, as a real node's agent does; on a failed
//! stream it moves to the next replica of its list after a short jittered pause, registers
//! again and resumes after the last seq it applied.
//!
//! ```text
//! outpost-fleet-sim [--store postgres|redb] [--replicas 3] [--nodes 1000] [--pops 20] [--purges 200]
//! ```
//!
//! A run: start a throwaway PostgreSQL cluster and `--replicas` control planes on it (or one
//! control plane on redb), register and stream `--nodes` nodes spread over `--pops` PoPs and
//! round-robin over the replicas; measure each replica's resident memory before and after the
//! streams open (per stream); post `--purges` purges with `wait=true` one after another through
//! the first replica and report p50/p99/max and how many came back `complete`, with each
//! replica's CPU time over that phase; then SIGKILL the first replica (PostgreSQL) or restart
//! the only one (redb) and time until every node streams again. Prints one JSON line per
//! figure. Bounded: every wait has a limit, counts are capped.
//!
//! The control-plane binary is `OUTPOST_CONTROL_PLANE_BIN` (or built by cargo, as the tests do).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;
use outpost_tests::control::{ControlConfig, ControlPlane, NODE_TOKEN, OPERATOR};
use outpost_tests::pg::PgCluster;
use serde_json::json;

const MAX_NODES: usize = 10_000;
const MAX_PURGES: usize = 10_000;
/// Bound on every phase's wait (all nodes streaming, a purge's `wait=true`).
const PHASE_LIMIT: Duration = Duration::from_secs(120);
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// `/proc/<pid>/stat` counts CPU time in 1/100 s.
const USER_HZ: f64 = 100.0;

struct Args {
    postgres: bool,
    replicas: usize,
    nodes: usize,
    pops: usize,
    purges: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args { postgres: true, replicas: 3, nodes: 1000, pops: 20, purges: 200 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--store" => args.postgres = value == "postgres",
            "--replicas" => args.replicas = value.parse()?,
            "--nodes" => args.nodes = value.parse()?,
            "--pops" => args.pops = value.parse()?,
            "--purges" => args.purges = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    ensure!((1..=MAX_NODES).contains(&args.nodes), "--nodes: 1 to {MAX_NODES}");
    ensure!((1..=MAX_PURGES).contains(&args.purges), "--purges: 1 to {MAX_PURGES}");
    ensure!((1..=16).contains(&args.replicas) && args.pops >= 1, "--replicas 1 to 16, --pops at least 1");
    if !args.postgres {
        args.replicas = 1;
    }
    Ok(args)
}

/// What every simulated node shares with the driver.
#[derive(Default)]
struct Fleet {
    /// Nodes whose stream is open now.
    streaming: AtomicUsize,
    /// Bumped each time any node's stream opens.
    opened: AtomicU64,
    acks: AtomicU64,
    refusals: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let cluster = if args.postgres { Some(PgCluster::start().map_err(anyhow::Error::msg)?) } else { None };
    if let Some(cluster) = &cluster {
        cluster.create_database("cdn").map_err(anyhow::Error::msg)?;
    }
    let config = || {
        let base = ControlConfig::default().limit("max_connections = 20000");
        match &cluster {
            Some(cluster) => base.postgres(&cluster.url("cdn"), &["pool_size = 32"]),
            None => base,
        }
    };
    let mut replicas = Vec::new();
    for _ in 0..args.replicas {
        replicas.push(ControlPlane::start(config()).await?);
    }
    let store = if args.postgres { "postgres" } else { "redb" };
    let service = json!({"hosts": ["shop.test"], "origin": "http://127.0.0.1:9"}).to_string();
    let resp = replicas[0].call(Method::PUT, "/v1/services/shop", Some("acme-token"), &service).await?;
    ensure!(resp.status.is_success(), "PUT shop: {} {}", resp.status, resp.text());

    let rss_before: Vec<u64> = replicas.iter().map(|r| rss_kib(r.pid())).collect();
    let fleet = Arc::new(Fleet::default());
    let addrs: Vec<SocketAddr> = replicas.iter().map(ControlPlane::addr).collect();
    let start = Instant::now();
    for i in 0..args.nodes {
        let mut urls = addrs.clone();
        urls.rotate_left(i % addrs.len());
        let node =
            SimNode { id: format!("sim-{i:05}"), pop: format!("pop{:02}", i % args.pops), urls, fleet: fleet.clone() };
        tokio::spawn(node.run());
    }
    wait_streaming(&fleet, args.nodes).await?;
    let rss_after: Vec<u64> = replicas.iter().map(|r| rss_kib(r.pid())).collect();
    let per_replica = args.nodes.div_ceil(args.replicas);
    for (i, (before, after)) in rss_before.iter().zip(&rss_after).enumerate() {
        let per_stream = after.saturating_sub(*before) as f64 / per_replica as f64;
        report(json!({"store": store, "replica": i, "streams": per_replica, "rss_kib_before": before,
            "rss_kib_after": after, "kib_per_stream": per_stream}));
    }
    report(json!({"store": store, "nodes": args.nodes, "all_streaming_s": start.elapsed().as_secs_f64()}));

    // Purges with wait=true, one after another, through the first replica.
    let cpu_before: Vec<u64> = replicas.iter().map(|r| cpu_ticks(r.pid())).collect();
    let phase = Instant::now();
    let mut ms = Vec::with_capacity(args.purges);
    let mut complete = 0;
    for i in 0..args.purges {
        let body = json!({"tags": [format!("t{i}")]}).to_string();
        let started = Instant::now();
        let resp = replicas[0]
            .call(Method::POST, "/v1/services/shop/purge?wait=true&timeout=5s", Some(OPERATOR), &body)
            .await?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        if resp.status == 200 {
            complete += 1;
        } else if complete == 0 || i % 50 == 0 {
            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            let pending = body["pending"].as_array().map_or(0, Vec::len);
            report(json!({"purge": i, "status": resp.status.as_u16(), "pending": pending,
                "first_pending": body["pending"][0], "acks": fleet.acks.load(Ordering::Relaxed)}));
            // Why: the first replica's warnings so far.
            let stderr = replicas[0].stderr_text();
            let warnings: Vec<&str> = stderr
                .lines()
                .filter(|l| {
                    (l.contains("WARN") || l.contains("ERROR") || l.contains("panick") || l.contains("presence"))
                        && !l.contains("edge node")
                })
                .take(4)
                .collect();
            report(json!({"replica_0_warnings": warnings}));
            // How each replica sees the first pending node.
            for (r, replica) in replicas.iter().enumerate() {
                let list = replica.call(Method::GET, "/v1/nodes", Some(OPERATOR), "").await?;
                let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap_or_default();
                let nodes = list["nodes"].as_array().cloned().unwrap_or_default();
                let node = nodes.iter().find(|n| n["id"] == body["pending"][0]).cloned().unwrap_or_default();
                report(json!({"replica": r, "listed": nodes.len(), "node": node["id"], "acked": node["acked"],
                    "connected": node["connected"], "holder": node["replica"], "live": node["live"]}));
            }
        }
    }
    let secs = phase.elapsed().as_secs_f64();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    report(json!({"store": store, "purges": args.purges, "complete": complete, "p50_ms": at(0.5),
        "p99_ms": at(0.99), "max_ms": at(1.0), "acks": fleet.acks.load(Ordering::Relaxed)}));
    for (i, (replica, before)) in replicas.iter().zip(cpu_before).enumerate() {
        let cpu = (cpu_ticks(replica.pid()).saturating_sub(before)) as f64 / USER_HZ;
        report(json!({"store": store, "replica": i, "purge_phase_s": secs, "cpu_s": cpu,
            "cpu_share": cpu / secs, "cpu_ms_per_stream_per_purge": cpu * 1000.0 / (per_replica * args.purges) as f64}));
    }

    // Failover: SIGKILL the first replica (PostgreSQL), or restart the only one (redb).
    let opened = fleet.opened.load(Ordering::SeqCst);
    let moving = if args.postgres { per_replica } else { args.nodes };
    let killed = Instant::now();
    if args.postgres {
        replicas[0].kill()?;
    } else {
        let path = replicas[0].dir().join("control-plane.toml");
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(&path, text.replacen("listen = \"127.0.0.1:0\"", &format!("listen = \"{}\"", addrs[0]), 1))?;
        replicas[0].kill()?;
        replicas[0].restart().await?;
    }
    // Every node of the killed replica opened a stream again and every node streams.
    let limit = Instant::now() + PHASE_LIMIT;
    while fleet.opened.load(Ordering::SeqCst) < opened + moving as u64
        || fleet.streaming.load(Ordering::SeqCst) < args.nodes
    {
        ensure!(
            Instant::now() < limit,
            "nodes did not come back: {} streaming",
            fleet.streaming.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    report(json!({"store": store, "moved_nodes": moving, "all_resumed_s": killed.elapsed().as_secs_f64(),
        "refusals_409": fleet.refusals.load(Ordering::Relaxed)}));
    drop(replicas);
    drop(cluster);
    Ok(())
}

fn report(line: serde_json::Value) {
    println!("{line}");
}

async fn wait_streaming(fleet: &Fleet, n: usize) -> anyhow::Result<()> {
    let limit = Instant::now() + PHASE_LIMIT;
    while fleet.streaming.load(Ordering::SeqCst) < n {
        ensure!(Instant::now() < limit, "only {} of {n} nodes streaming", fleet.streaming.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Resident memory of `pid` in KiB (`VmRSS`), 0 when unknown.
fn rss_kib(pid: Option<u32>) -> u64 {
    let status = pid.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok()).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// utime + stime of `pid` in clock ticks, 0 when unknown.
fn cpu_ticks(pid: Option<u32>) -> u64 {
    let stat = pid.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

struct SimNode {
    id: String,
    pop: String,
    urls: Vec<SocketAddr>,
    fleet: Arc<Fleet>,
}

type Sender<B> = hyper::client::conn::http1::SendRequest<B>;

async fn connect<B>(addr: SocketAddr) -> anyhow::Result<Sender<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::time::timeout(REQUEST_LIMIT, tokio::net::TcpStream::connect(addr)).await??;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl SimNode {
    /// Round the replicas forever: register, stream, ack; a short jittered pause between tries.
    async fn run(self) {
        let mut applied = 0u64;
        let mut turn = 0usize;
        loop {
            let addr = self.urls[turn % self.urls.len()];
            if let Err(error) = self.session(addr, &mut applied).await
                && error.to_string().contains("409")
            {
                self.fleet.refusals.fetch_add(1, Ordering::Relaxed);
            }
            turn += 1;
            let jitter = (self.id.len() as u64 * 7919 + turn as u64 * 104_729) % 100;
            tokio::time::sleep(Duration::from_millis(20 + jitter)).await;
        }
    }

    async fn session(&self, addr: SocketAddr, applied: &mut u64) -> anyhow::Result<()> {
        let mut api: Sender<Full<Bytes>> = connect(addr).await?;
        let registration = json!({"pop": self.pop, "region": "sim", "role": "edge",
            "addresses": {"admin": "127.0.0.1:9", "http": "127.0.0.1:80"}});
        let request = http::Request::put(format!("/v1/nodes/{}", self.id))
            .header("host", "control-plane")
            .header("authorization", format!("Bearer {NODE_TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(registration.to_string())))?;
        let resp = tokio::time::timeout(REQUEST_LIMIT, api.send_request(request)).await??;
        let status = resp.status();
        resp.into_body().collect().await?;
        ensure!(status == 200, "register: {status}");
        let mut stream: Sender<Empty<Bytes>> = connect(addr).await?;
        let request = http::Request::get(format!("/v1/nodes/{}/stream?after={applied}", self.id))
            .header("host", "control-plane")
            .header("authorization", format!("Bearer {NODE_TOKEN}"))
            .body(Empty::new())?;
        let resp = tokio::time::timeout(REQUEST_LIMIT, stream.send_request(request)).await??;
        ensure!(resp.status() == 200, "stream: {}", resp.status());
        self.fleet.streaming.fetch_add(1, Ordering::SeqCst);
        self.fleet.opened.fetch_add(1, Ordering::SeqCst);
        let result = self.follow(resp.into_body(), &mut api, applied).await;
        self.fleet.streaming.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Reads lines until the stream ends; acks each event (and a snapshot's seq).
    async fn follow(
        &self,
        mut body: hyper::body::Incoming,
        api: &mut Sender<Full<Bytes>>,
        applied: &mut u64,
    ) -> anyhow::Result<()> {
        let mut buffer = Vec::new();
        loop {
            // Heartbeats come every 5 s by default: 3 missed end the session.
            let frame = tokio::time::timeout(Duration::from_secs(15), body.frame()).await?;
            let Some(frame) = frame else { anyhow::bail!("stream ended") };
            let Ok(data) = frame?.into_data() else { continue };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let message: serde_json::Value = serde_json::from_slice(&line)?;
                let seq = message["event"]["seq"].as_u64().or_else(|| message["snapshot"]["seq"].as_u64());
                if let Some(seq) = seq.filter(|seq| *seq > *applied) {
                    *applied = seq;
                    self.ack(api, seq).await?;
                }
            }
        }
    }

    async fn ack(&self, api: &mut Sender<Full<Bytes>>, seq: u64) -> anyhow::Result<()> {
        let request = http::Request::post(format!("/v1/nodes/{}/ack", self.id))
            .header("host", "control-plane")
            .header("authorization", format!("Bearer {NODE_TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json!({"seq": seq}).to_string())))?;
        api.ready().await?;
        let resp = tokio::time::timeout(REQUEST_LIMIT, api.send_request(request)).await??;
        let status = resp.status();
        resp.into_body().collect().await?;
        ensure!(status == 204, "ack: {status}");
        self.fleet.acks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
