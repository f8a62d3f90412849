//! Node presence shared by control-plane replicas (issue 16): several real `control-plane`
//! processes on one throwaway PostgreSQL, each an authoritative DNS server for `cdn.example.`,
//! and edges of two PoPs (PoP `a` on 127.0.1.x, PoP `b` on 127.0.2.1) whose `control.urls`
//! name every replica. Clients in 10.1.0.0/16 prefer `a`, clients in 10.2.0.0/16 prefer `b`.
//!
//! What must hold on every replica, whichever one a node streams from: the node list, purge
//! progress, the 409 for a node id held elsewhere, PoP drains in DNS, a tenant's purge rate;
//! DNS answers from the last known state while the database is away; and a replica SIGKILLed
//! while purges flow through the others loses no purge, applies none twice, leaves no gap,
//! and DNS answers never point a client to the wrong PoP, from the survivors or from the
//! killed replica once it is back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use outpost_tests::control::{ControlConfig, ControlPlane, NODE_TOKEN, NodeStream, OPERATOR, expect_error, json};
use outpost_tests::dig;
use outpost_tests::fleet::{PROPAGATION_LIMIT, TENANT_TOKEN, wait_metric, wait_served};
use outpost_tests::pg::PgCluster;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply};
use serde_json::{Value, json};

const HEALTH: [&str; 4] =
    ["interval = \"200ms\"", "timeout = \"500ms\"", "unhealthy_threshold = 2", "healthy_threshold = 2"];

const DNS: &str = r#"
[dns]
listen = "127.0.0.1:0"
zone = "cdn.example."
ttl = "5s"
ns = ["ns1.cdn.example.", "ns2.cdn.example."]
default_pops = ["b"]

[dns.soa]
rname = "noc.cdn.example."

[dns.regions.ra]
subnets = ["10.1.0.0/16"]
pops = ["a", "b"]

[dns.regions.rb]
subnets = ["10.2.0.0/16"]
pops = ["b", "a"]
"#;

const IN_RA: &str = "10.1.7.0/24";
const IN_RB: &str = "10.2.7.0/24";
const POP_A: [&str; 2] = ["127.0.1.1", "127.0.1.2"];
const POP_B: [&str; 1] = ["127.0.2.1"];

/// A cluster with one empty database, `cdn`.
fn database() -> anyhow::Result<(PgCluster, String)> {
    let cluster = PgCluster::start().map_err(anyhow::Error::msg)?;
    cluster.create_database("cdn").map_err(anyhow::Error::msg)?;
    let url = cluster.url("cdn");
    Ok((cluster, url))
}

/// A replica on `url` with DNS, fast probes and heartbeats; a second's lease (a dead replica's
/// nodes move within it) and a 2 s grace (a node moving between replicas stays in DNS).
fn replica_config(url: &str) -> ControlConfig {
    HEALTH
        .iter()
        .fold(ControlConfig::default(), |config, line| config.health(line))
        .nodes("heartbeat_interval = \"200ms\"")
        .nodes("grace = \"2s\"")
        .nodes("replica_lease = \"1s\"")
        .nodes("sync_interval = \"250ms\"")
        .nodes("offline_after = \"30s\"")
        .postgres(url, &[])
        .tables(DNS)
}

async fn replicas(url: &str, n: usize) -> anyhow::Result<Vec<ControlPlane>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(ControlPlane::start(replica_config(url)).await?);
    }
    Ok(out)
}

/// An edge of `pop` on `ip` following the replicas at `urls`, in that order.
async fn edge(name: &str, pop: &str, ip: &str, urls: &[SocketAddr]) -> anyhow::Result<EdgeNode> {
    let mut config = NodeConfig::default()
        .name(name)
        .node_line(&format!("pop = \"{pop}\""))
        .node_line(&format!("region = \"r{pop}\""));
    config.http_listen = format!("{ip}:0");
    config.admin_listen = format!("{ip}:0");
    let urls: Vec<String> = urls.iter().map(|a| format!("\"http://{a}\"")).collect();
    config.extra = format!(
        "\n[control]\nurls = [{}]\ntoken = \"{NODE_TOKEN}\"\nbackoff_min = \"20ms\"\n\
         backoff_max = \"300ms\"\nheartbeat_timeout = \"2s\"\nrequest_timeout = \"2s\"\n",
        urls.join(", ")
    );
    EdgeNode::start(config).await
}

async fn put_shop(cp: &ControlPlane, origin: &Origin) -> anyhow::Result<()> {
    let config = json!({"hosts": ["shop.test"], "origin": origin.url()});
    let resp = cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), &config.to_string()).await?;
    anyhow::ensure!(resp.status.is_success(), "PUT shop: {} {}", resp.status, resp.text());
    Ok(())
}

/// `GET /v1/nodes` on `cp`: the answering replica's id and the nodes by id.
async fn node_list(cp: &ControlPlane) -> anyhow::Result<(String, Vec<Value>)> {
    let resp = cp.call(Method::GET, "/v1/nodes", Some(OPERATOR), "").await?;
    anyhow::ensure!(resp.status == 200, "nodes: {} {}", resp.status, resp.text());
    let body = json(&resp)?;
    let replica = body["replica"].as_str().unwrap_or_default().to_owned();
    Ok((replica, body["nodes"].as_array().cloned().unwrap_or_default()))
}

/// `(id, connected, replica)` of every node `cp` lists.
async fn holders(cp: &ControlPlane) -> anyhow::Result<Vec<(String, bool, String)>> {
    let (_, nodes) = node_list(cp).await?;
    Ok(nodes
        .iter()
        .map(|n| {
            let id = n["id"].as_str().unwrap_or_default().to_owned();
            (id, n["connected"].as_bool().unwrap_or(false), n["replica"].as_str().unwrap_or_default().to_owned())
        })
        .collect())
}

/// Waits until every replica lists every one of `ids` connected, each held by the same replica
/// on all of them; returns the holders by id.
async fn wait_all_connected(cps: &[&ControlPlane], ids: &[&str]) -> anyhow::Result<Vec<(String, bool, String)>> {
    let start = Instant::now();
    loop {
        let mut lists = Vec::new();
        for cp in cps {
            lists.push(holders(cp).await?);
        }
        let first = &lists[0];
        let all_there = ids.iter().all(|id| first.iter().any(|(n, connected, _)| n == id && *connected));
        if all_there && lists.iter().all(|l| l == first) {
            return Ok(first.clone());
        }
        anyhow::ensure!(start.elapsed() < PROPAGATION_LIMIT, "the replicas disagree or miss nodes: {lists:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `cp`'s DNS until a client in `subnet` gets exactly `ips`.
async fn wait_answer(cp: &ControlPlane, subnet: &str, ips: &[&str]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let answer = dig::a_for(cp.dns_addr()?, "shop.cdn.example", subnet, Duration::from_secs(2)).await?;
        if answer.status == "NOERROR" && answer.ips == ips {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < PROPAGATION_LIMIT,
            "a client in {subnet} still gets {answer:?} from {}, not {ips:?}",
            cp.addr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether an answer sends a client to `pop` (only that PoP's edges, at least one).
fn points_to(answer: &dig::Answer, pop: &[&str]) -> bool {
    answer.status == "NOERROR" && !answer.ips.is_empty() && answer.ips.iter().all(|ip| pop.contains(&ip.as_str()))
}

async fn purge(cp: &ControlPlane, tag: &str, query: &str) -> anyhow::Result<outpost_tests::client::Resp> {
    let body = json!({"tags": [tag]}).to_string();
    cp.call(Method::POST, &format!("/v1/services/shop/purge{query}"), Some(TENANT_TOKEN), &body).await
}

/// Two replicas, an edge streaming from each. Both replicas list both nodes connected and by
/// the same holder; a purge through one waits for the ack of the node on the other; a stream
/// for a node id held through one replica is refused by the other (409, naming the holder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_purge_progress_and_the_holder_check_agree_on_every_replica() -> anyhow::Result<()> {
    let (_cluster, url) = database()?;
    let cps = replicas(&url, 2).await?;
    let (a, b) = (&cps[0], &cps[1]);
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home".to_owned()));
    put_shop(a, &origin).await?;
    let on_a = edge("edge-a", "a", POP_A[0], &[a.addr()]).await?;
    let on_b = edge("edge-b", "b", POP_B[0], &[b.addr()]).await?;
    for node in [&on_a, &on_b] {
        wait_served(node, "shop.test", "/").await?;
    }

    let held = wait_all_connected(&[a, b], &["edge-a", "edge-b"]).await?;
    let (id_a, _) = node_list(a).await?;
    let (id_b, _) = node_list(b).await?;
    anyhow::ensure!(id_a != id_b, "two replicas, two ids");
    let replica_of = |node: &str| held.iter().find(|h| h.0 == node).map(|h| h.2.clone()).unwrap_or_default();
    anyhow::ensure!(replica_of("edge-a") == id_a && replica_of("edge-b") == id_b, "holders: {held:?}");

    // A purge through A completes only with edge-b's ack, taken by B.
    let started = Instant::now();
    let resp = purge(a, "t1", "?wait=true&timeout=10s").await?;
    anyhow::ensure!(resp.status == 200, "wait=true through A: {} {}", resp.status, resp.text());
    let body = json(&resp)?;
    anyhow::ensure!(body["status"] == "complete", "{body}");
    for node in ["edge-a", "edge-b"] {
        anyhow::ensure!(body["nodes"][node]["acked"] == true, "{node} not acked: {body}");
    }
    anyhow::ensure!(body["pops"]["b"]["acked"] == 1 && body["pops"]["a"]["acked"] == 1, "{body}");
    println!("purge wait=true across replicas: {:?}", started.elapsed());
    // B tells the same.
    let id = body["id"].as_str().unwrap_or_default();
    let on_b_view = json(&b.call(Method::GET, &format!("/v1/purges/{id}"), Some(OPERATOR), "").await?)?;
    anyhow::ensure!(on_b_view["status"] == "complete" && on_b_view["pending"] == json!([]), "{on_b_view}");

    // edge-a's id is held through A: B refuses a second stream for it.
    let refused = NodeStream::open(b.addr(), "edge-a", 0, NODE_TOKEN).await?;
    anyhow::ensure!(refused.status == 409, "B opened a second stream for edge-a, which A holds: {}", refused.status);
    let register = json!({"pop": "a", "role": "edge", "addresses": {"admin": "127.0.0.1:9"}}).to_string();
    let resp = b.call(Method::PUT, "/v1/nodes/edge-a", Some(NODE_TOKEN), &register).await?;
    expect_error(&resp, 409, "node_id_in_use")?;
    drop((on_a, on_b));
    Ok(())
}

/// A tenant's purge bucket is one for the fleet: a burst of 4 through two replicas allows 4
/// purges in all, not 4 per replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_purge_rate_is_bounded_across_replicas() -> anyhow::Result<()> {
    let (_cluster, url) = database()?;
    let mut cps = Vec::new();
    for _ in 0..2 {
        let config = ControlConfig::default().limit("purge_burst = 4").limit("purge_rate = 0.1").postgres(&url, &[]);
        cps.push(ControlPlane::start(config).await?);
    }
    let origin = Origin::start().await?;
    put_shop(&cps[0], &origin).await?;
    let mut accepted = 0;
    let mut limited = 0;
    for i in 0..8 {
        let resp = purge(&cps[i % 2], &format!("t{i}"), "").await?;
        match resp.status.as_u16() {
            202 => accepted += 1,
            429 => {
                expect_error(&resp, 429, "rate_limited")?;
                limited += 1;
            }
            other => anyhow::bail!("purge {i}: {other} {}", resp.text()),
        }
    }
    anyhow::ensure!((accepted, limited) == (4, 4), "accepted {accepted}, limited {limited}");
    Ok(())
}

/// A PoP drained through one replica leaves the DNS answers of the other at once (its
/// presence sync), and a restore through the other brings it back on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_through_one_replica_moves_dns_on_every_replica() -> anyhow::Result<()> {
    let (_cluster, url) = database()?;
    let cps = replicas(&url, 2).await?;
    let (a, b) = (&cps[0], &cps[1]);
    let origin = Origin::start().await?;
    put_shop(a, &origin).await?;
    let urls = [a.addr(), b.addr()];
    let _a1 = edge("a1", "a", POP_A[0], &urls).await?;
    let _b1 = edge("b1", "b", POP_B[0], &urls).await?;
    for cp in [a, b] {
        wait_answer(cp, IN_RA, &POP_A[..1]).await?;
    }
    let resp = a.call(Method::POST, "/v1/pops/a/drain", Some(OPERATOR), "").await?;
    anyhow::ensure!(resp.status == 200, "drain: {} {}", resp.status, resp.text());
    for cp in [a, b] {
        let took = wait_answer(cp, IN_RA, &POP_B).await?;
        println!("drain through A reached {}'s DNS in {took:?}", cp.addr());
    }
    let resp = b.call(Method::POST, "/v1/pops/a/restore", Some(OPERATOR), "").await?;
    anyhow::ensure!(resp.status == 200, "restore: {} {}", resp.status, resp.text());
    for cp in [a, b] {
        wait_answer(cp, IN_RA, &POP_A[..1]).await?;
    }
    Ok(())
}

/// The database stops: every replica keeps answering DNS from its last known state (the
/// edges' PoPs, as before), for longer than the nodes' grace and the replicas' leases; once it
/// is back, the replicas recover: the node list agrees and a purge reaches every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_from_the_last_known_state_while_the_database_is_away() -> anyhow::Result<()> {
    let (cluster, url) = database()?;
    let cps = replicas(&url, 2).await?;
    let (a, b) = (&cps[0], &cps[1]);
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home".to_owned()));
    put_shop(a, &origin).await?;
    let a1 = edge("a1", "a", POP_A[0], &[a.addr(), b.addr()]).await?;
    let b1 = edge("b1", "b", POP_B[0], &[b.addr(), a.addr()]).await?;
    for node in [&a1, &b1] {
        wait_served(node, "shop.test", "/").await?;
    }
    for cp in [a, b] {
        wait_answer(cp, IN_RA, &POP_A[..1]).await?;
        wait_answer(cp, IN_RB, &POP_B).await?;
    }

    cluster.pause().map_err(anyhow::Error::msg)?;
    let away = Instant::now();
    let mut asked = 0;
    // Longer than the grace (2 s), the lease (1 s) and several probe rounds.
    while away.elapsed() < Duration::from_secs(5) {
        for cp in [a, b] {
            for (subnet, pop) in [(IN_RA, &POP_A[..]), (IN_RB, &POP_B[..])] {
                let answer = dig::a_for(cp.dns_addr()?, "shop.cdn.example", subnet, Duration::from_secs(2)).await?;
                anyhow::ensure!(
                    points_to(&answer, pop),
                    "{:?} after the database left: {} sends a client in {subnet} to {answer:?}",
                    away.elapsed(),
                    cp.addr()
                );
                asked += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{asked} DNS answers while the database was away, all from the last known state");
    // The edges still serve (from their own state) and their streams held on.
    let before = wait_metric(&a1, "outpost_control_applied_seq", |_| true).await?;

    cluster.resume().map_err(anyhow::Error::msg)?;
    wait_all_connected(&[a, b], &["a1", "b1"]).await?;
    let resp = purge(b, "after", "?wait=true&timeout=15s").await?;
    anyhow::ensure!(resp.status == 200, "purge after recovery: {} {}", resp.status, resp.text());
    let seq = json(&resp)?["seq"].as_u64().unwrap_or(0);
    anyhow::ensure!(seq as f64 > before, "a new event");
    for node in [&a1, &b1] {
        wait_metric(node, "outpost_control_applied_seq", |v| v >= seq as f64).await?;
    }
    for cp in [a, b] {
        wait_answer(cp, IN_RA, &POP_A[..1]).await?;
        wait_answer(cp, IN_RB, &POP_B).await?;
    }
    Ok(())
}

/// `outpost_purges_total` from the control plane, summed over its series.
async fn purges_applied(node: &EdgeNode) -> anyhow::Result<u64> {
    let text = node.admin(Method::GET, "/metrics", "").await?.text();
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("outpost_purges_total{") && l.contains("source=\"control\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(total as u64)
}

/// What the DNS watcher saw: answers, and those that pointed a client to the wrong PoP or
/// failed.
#[derive(Default)]
struct Watch {
    answers: AtomicUsize,
    wrong: std::sync::Mutex<Vec<String>>,
}

/// Asks each of `servers` where clients in each region go, every 50 ms until `stop`.
fn watch_dns(servers: Vec<SocketAddr>, watch: Arc<Watch>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            for server in &servers {
                for (subnet, pop) in [(IN_RA, &POP_A[..]), (IN_RB, &POP_B[..])] {
                    let answer = dig::a_for(*server, "shop.cdn.example", subnet, Duration::from_secs(1)).await;
                    match answer {
                        Ok(answer) if points_to(&answer, pop) => {
                            watch.answers.fetch_add(1, Ordering::SeqCst);
                        }
                        other => {
                            let mut wrong = watch.wrong.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            wrong.push(format!("{server} for {subnet}: {other:?}"));
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// The issue's scenario: three replicas, two PoPs of edges naming all three. The replica two
/// edges stream from is SIGKILLed while purges are posted through the other two in a loop.
/// Every purge is applied and acked by every node, none lost or applied twice, the log has no
/// gap; DNS answers from the survivors throughout, never to the wrong PoP. The killed replica
/// restarts: its DNS answers never point to the wrong PoP either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_no_purge_and_dns_never_points_to_the_wrong_pop() -> anyhow::Result<()> {
    const PURGES: usize = 40;
    const KILL_AFTER: usize = 12;
    let (_cluster, url) = database()?;
    let mut cps = replicas(&url, 3).await?;
    let addrs: Vec<SocketAddr> = cps.iter().map(ControlPlane::addr).collect();
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home".to_owned()));
    put_shop(&cps[1], &origin).await?;
    // a1 and b1 stream from replica 0 (the victim), a2 from replica 1.
    let edges = vec![
        edge("a1", "a", POP_A[0], &[addrs[0], addrs[1], addrs[2]]).await?,
        edge("a2", "a", POP_A[1], &[addrs[1], addrs[2], addrs[0]]).await?,
        edge("b1", "b", POP_B[0], &[addrs[0], addrs[2], addrs[1]]).await?,
    ];
    let mut before = Vec::new();
    for node in &edges {
        wait_served(node, "shop.test", "/").await?;
        before.push(purges_applied(node).await?);
    }
    let all: Vec<&ControlPlane> = cps.iter().collect();
    let held = wait_all_connected(&all, &["a1", "a2", "b1"]).await?;
    let (victim_id, _) = node_list(&cps[0]).await?;
    anyhow::ensure!(
        held.iter().filter(|h| h.2 == victim_id).count() == 2,
        "a1 and b1 stream from the victim: {held:?}"
    );
    for cp in &cps {
        wait_answer(cp, IN_RA, &POP_A).await?;
        wait_answer(cp, IN_RB, &POP_B).await?;
    }

    let watch = Arc::new(Watch::default());
    let stop = Arc::new(AtomicBool::new(false));
    let survivors_dns = vec![cps[1].dns_addr()?, cps[2].dns_addr()?];
    let watcher = watch_dns(survivors_dns, watch.clone(), stop.clone());

    let survivors = Arc::new([addrs[1], addrs[2]]);
    let posted = Arc::new(AtomicUsize::new(0));
    let poster = {
        let posted = posted.clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            let mut failed = Vec::new();
            while posted.load(Ordering::SeqCst) < PURGES {
                let body = json!({"tags": [format!("t{n}")]}).to_string();
                let req = outpost_tests::Req::new(Method::POST, "control-plane", "/v1/services/shop/purge")
                    .header("authorization", format!("Bearer {TENANT_TOKEN}"))
                    .header("content-type", "application/json")
                    .body(body);
                let sent = outpost_tests::client::send(survivors[n % 2], &req);
                match tokio::time::timeout(Duration::from_secs(5), sent).await {
                    Ok(Ok(resp)) if resp.status == 202 => {
                        posted.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failed.push(format!("{other:?}")),
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            failed
        })
    };
    let start = Instant::now();
    while posted.load(Ordering::SeqCst) < KILL_AFTER {
        anyhow::ensure!(start.elapsed() < PROPAGATION_LIMIT, "purges stalled before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cps[0].kill()?;
    let killed = Instant::now();
    let failed = tokio::time::timeout(PROPAGATION_LIMIT * 2, poster).await??;
    anyhow::ensure!(failed.is_empty(), "purges through the survivors failed: {failed:?}");

    // Every node back on a survivor.
    let survivors_cps = [&cps[1], &cps[2]];
    // The survivors may list the dead replica's holds until its lease lapses
    // (`nodes.replica_lease`) and their next presence sync: wait for the moves, bounded.
    let moved = Instant::now();
    loop {
        let held = wait_all_connected(&survivors_cps, &["a1", "a2", "b1"]).await?;
        if held.iter().all(|h| h.2 != victim_id) {
            break;
        }
        anyhow::ensure!(
            moved.elapsed() < PROPAGATION_LIMIT,
            "a node still held by the dead replica after {PROPAGATION_LIMIT:?}: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("all nodes streaming from the survivors {:?} after the kill", killed.elapsed());

    let resp = cps[1].call(Method::GET, "/v1/events?from=1&limit=1000", Some(OPERATOR), "").await?;
    let events = json(&resp)?["events"].as_array().cloned().unwrap_or_default();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap_or(0)).collect();
    anyhow::ensure!(seqs == (1..=seqs.len() as u64).collect::<Vec<_>>(), "gaps in the log: {seqs:?}");
    let purges_logged = events.iter().filter(|e| e["type"] == "purge").count() as u64;
    anyhow::ensure!(purges_logged == PURGES as u64, "{purges_logged} purges logged, {PURGES} acknowledged");
    let head = *seqs.last().unwrap_or(&0);
    for (node, before) in edges.iter().zip(before) {
        wait_metric(node, "outpost_control_applied_seq", |v| v >= head as f64).await?;
        wait_metric(node, "outpost_control_acked_seq", |v| v >= head as f64).await?;
        let applied = purges_applied(node).await? - before;
        let stderr = node.stderr_text();
        anyhow::ensure!(applied == purges_logged, "{}: {applied} purges applied, {purges_logged} logged", node.name());
        anyhow::ensure!(!stderr.contains("skipped events"), "{}: a gap reached the node\n{stderr}", node.name());
    }
    // The last purge is complete on every survivor: every node's ack, wherever it was taken.
    let last = events.iter().rev().find(|e| e["type"] == "purge").cloned().unwrap_or_default();
    let last_id = last["purge"]["id"].as_str().or_else(|| last["id"].as_str()).unwrap_or_default().to_owned();
    for cp in survivors_cps {
        let resp = cp.call(Method::GET, &format!("/v1/purges/{last_id}"), Some(OPERATOR), "").await?;
        if resp.status == 200 {
            let body = json(&resp)?;
            anyhow::ensure!(body["status"] == "complete", "{}: {body}", cp.addr());
        }
    }

    // The killed replica comes back on its address; from its first answer on, DNS never
    // sends a client to the wrong PoP.
    let path = cps[0].dir().join("control-plane.toml");
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, text.replacen("listen = \"127.0.0.1:0\"", &format!("listen = \"{}\"", addrs[0]), 1))?;
    cps[0].restart().await?;
    let restarted = watch_dns(vec![cps[0].dns_addr()?], watch.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::SeqCst);
    watcher.await?;
    restarted.await?;
    let wrong = watch.wrong.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let answers = watch.answers.load(Ordering::SeqCst);
    println!("{answers} DNS answers from the survivors and the restarted replica, {} wrong", wrong.len());
    anyhow::ensure!(wrong.is_empty(), "DNS answers to the wrong PoP or none: {wrong:#?}");
    anyhow::ensure!(answers > 40, "only {answers} DNS answers");
    Ok(())
}
