//! Several control-plane replicas on one PostgreSQL (issue 16): a throwaway cluster per test,
//! real `control-plane` processes sharing its database, and edges each streaming from one
//! replica. A change committed through any replica must reach the streams every replica holds,
//! and a replica killed mid-stream must cost the survivors' nodes nothing: no purge lost, none
//! applied twice, numbers without gaps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use outpost_tests::control::{ControlConfig, ControlPlane, OPERATOR, json};
use outpost_tests::fleet::{PROPAGATION_LIMIT, TENANT_TOKEN, follower, wait_metric, wait_served};
use outpost_tests::pg::PgCluster;
use outpost_tests::{EdgeNode, Origin, Reply};
use serde_json::{Value, json};

/// A cluster with one empty database, `cdn`.
fn database() -> anyhow::Result<(PgCluster, String)> {
    let cluster = PgCluster::start().map_err(anyhow::Error::msg)?;
    cluster.create_database("cdn").map_err(anyhow::Error::msg)?;
    let url = cluster.url("cdn");
    Ok((cluster, url))
}

/// A replica on `url`, with `[nodes]` and `store` items.
async fn replica(url: &str, heartbeat: &str, store: &[&str]) -> anyhow::Result<ControlPlane> {
    let config = ControlConfig::default().nodes(&format!("heartbeat_interval = \"{heartbeat}\"")).postgres(url, store);
    ControlPlane::start(config).await
}

/// An edge following the replica at `cp`, hearing nothing for up to `quiet` before it
/// reconnects on its own.
async fn edge(name: &str, cp: &ControlPlane, quiet: &str) -> anyhow::Result<EdgeNode> {
    let mut config = follower(name, "fra", "eu-central", cp.addr());
    config.extra = config.extra.replace("heartbeat_timeout = \"2s\"", &format!("heartbeat_timeout = \"{quiet}\""));
    EdgeNode::start(config).await
}

/// `outpost_purges_total` summed over its series from the control plane (`source="control"`).
async fn purges_applied(node: &EdgeNode) -> anyhow::Result<u64> {
    let text = node.admin(Method::GET, "/metrics", "").await?.text();
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("outpost_purges_total{") && l.contains("source=\"control\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(total as u64)
}

async fn put_shop(cp: &ControlPlane, origin: &Origin) -> anyhow::Result<Value> {
    let config = json!({"hosts": ["shop.test"], "origin": origin.url()});
    let resp = cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), &config.to_string()).await?;
    anyhow::ensure!(resp.status.is_success(), "PUT shop: {} {}", resp.status, resp.text());
    json(&resp)
}

/// Posts a purge of tag `tag` (no wait) as the tenant; its `seq`.
async fn purge(cp: &ControlPlane, tag: &str) -> anyhow::Result<u64> {
    purge_as(cp, tag, TENANT_TOKEN).await
}

async fn purge_as(cp: &ControlPlane, tag: &str, token: &str) -> anyhow::Result<u64> {
    let body = json!({"tags": [tag]}).to_string();
    let resp = cp.call(Method::POST, "/v1/services/shop/purge", Some(token), &body).await?;
    anyhow::ensure!(resp.status == 202, "purge {tag}: {} {}", resp.status, resp.text());
    json(&resp)?["seq"].as_u64().ok_or_else(|| anyhow::anyhow!("no seq: {}", resp.text()))
}

/// The whole log as one replica reads it: `(seq, type)`.
async fn log(cp: &ControlPlane) -> anyhow::Result<Vec<(u64, String)>> {
    let resp = cp.call(Method::GET, "/v1/events?from=1&limit=1000", Some(OPERATOR), "").await?;
    anyhow::ensure!(resp.status == 200, "events: {} {}", resp.status, resp.text());
    let events = json(&resp)?["events"].as_array().cloned().unwrap_or_default();
    Ok(events.iter().map(|e| (e["seq"].as_u64().unwrap_or(0), e["type"].as_str().unwrap_or("").to_owned())).collect())
}

/// With heartbeats and catch-up reads a minute apart (and nodes that wait five before they
/// reconnect), only the commit's notification can carry a change to another replica's streams
/// within the propagation limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_replica_reaches_nodes_streaming_from_another() -> anyhow::Result<()> {
    let (_cluster, url) = database()?;
    let slow = ["catch_up_interval = \"1m\""];
    let a = replica(&url, "1m", &slow).await?;
    let b = replica(&url, "1m", &slow).await?;
    let origin = Origin::start().await?;
    origin.route("/a", Reply::ok("a".to_owned()).cache_control("max-age=600"));
    let on_a = edge("edge-a", &a, "5m").await?;
    let on_b = edge("edge-b", &b, "5m").await?;
    wait_metric(&on_a, "outpost_control_connected", |v| v == 1.0).await?;
    wait_metric(&on_b, "outpost_control_connected", |v| v == 1.0).await?;

    // A service put through A is served by the node streaming from B.
    put_shop(&a, &origin).await?;
    wait_served(&on_b, "shop.test", "/a").await?;
    wait_served(&on_a, "shop.test", "/a").await?;
    for node in [&on_a, &on_b] {
        let again = node.get("shop.test", "/a").await?;
        anyhow::ensure!(again.cache_status().hit(), "{}: /a not cached: {}", node.name(), again.summary());
    }
    let fetched = origin.count("/a");

    // A purge through B is applied by the node streaming from A, and the other way round.
    let first = purge(&b, "t1").await?;
    wait_metric(&on_a, "outpost_control_applied_seq", |v| v >= first as f64).await?;
    let second = purge(&a, "t2").await?;
    for node in [&on_a, &on_b] {
        wait_metric(node, "outpost_control_applied_seq", |v| v >= second as f64).await?;
    }
    for node in [&on_a, &on_b] {
        anyhow::ensure!(purges_applied(node).await? == 2, "{}: purges applied", node.name());
    }
    anyhow::ensure!(origin.count("/a") == fetched, "a tag purge of another tag leaves /a cached");
    Ok(())
}

/// Three replicas, an edge on each; purges posted through every replica in a loop while the
/// first is SIGKILLed. The log has no gap; the nodes on the survivors applied every purge of it
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_purges_flow_loses_none_for_the_survivors_nodes() -> anyhow::Result<()> {
    const PURGES: usize = 40;
    const KILL_AFTER: usize = 12;
    let (_cluster, url) = database()?;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&url, "200ms", &[]).await?);
    }
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home".to_owned()));
    let mut edges = Vec::new();
    for (i, cp) in replicas.iter().enumerate() {
        edges.push(edge(&format!("edge-{i}"), cp, "2s").await?);
    }
    put_shop(&replicas[0], &origin).await?;
    // A node's first snapshot may soft-purge what its cache holds (`resync`): count from here.
    let mut before = Vec::new();
    for node in &edges {
        wait_served(node, "shop.test", "/").await?;
        before.push(purges_applied(node).await?);
    }

    let mut victim = replicas.remove(0);
    let survivors = Arc::new(replicas);
    let posted = Arc::new(AtomicUsize::new(0));
    let victim_addr = victim.addr();
    let poster = {
        let (survivors, posted) = (survivors.clone(), posted.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while posted.load(Ordering::SeqCst) < PURGES {
                // Round robin over all three; the victim's turn is taken while it lives.
                let tag = format!("t{n}");
                let done = match n % 3 {
                    0 => purge_at(victim_addr, &tag).await.is_ok(),
                    i => purge(&survivors[i - 1], &tag).await.is_ok(),
                };
                if done {
                    posted.fetch_add(1, Ordering::SeqCst);
                }
                n += 1;
            }
        })
    };
    let start = Instant::now();
    while posted.load(Ordering::SeqCst) < KILL_AFTER {
        anyhow::ensure!(start.elapsed() < PROPAGATION_LIMIT, "purges stalled before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    victim.kill()?;
    tokio::time::timeout(PROPAGATION_LIMIT * 2, poster).await??;

    let events = log(&survivors[0]).await?;
    anyhow::ensure!(events == log(&survivors[1]).await?, "the replicas read one log");
    let seqs: Vec<u64> = events.iter().map(|(seq, _)| *seq).collect();
    anyhow::ensure!(seqs == (1..=seqs.len() as u64).collect::<Vec<_>>(), "gaps in the log: {seqs:?}");
    let purges_logged = events.iter().filter(|(_, kind)| kind == "purge").count() as u64;
    // Every acknowledged POST is in the log (one more if the victim died after committing one).
    anyhow::ensure!(purges_logged >= PURGES as u64, "{purges_logged} purges logged, {PURGES} acknowledged");
    let head = *seqs.last().unwrap_or(&0);
    for (node, before) in edges.iter().zip(before).skip(1) {
        wait_metric(node, "outpost_control_applied_seq", |v| v >= head as f64).await?;
        wait_metric(node, "outpost_control_acked_seq", |v| v >= head as f64).await?;
        let applied = purges_applied(node).await? - before;
        let stderr = node.stderr_text();
        anyhow::ensure!(
            applied == purges_logged,
            "{}: {applied} purges applied, {purges_logged} logged\n{stderr}",
            node.name()
        );
        anyhow::ensure!(!stderr.contains("skipped events"), "{}: a gap reached the node\n{stderr}", node.name());
    }
    drop(victim);
    Ok(())
}

/// [`purge`] by address (the victim's handle is moved out to be killed).
async fn purge_at(addr: std::net::SocketAddr, tag: &str) -> anyhow::Result<u64> {
    let body = json!({"tags": [tag]}).to_string();
    let req = outpost_tests::Req::new(Method::POST, "control-plane", "/v1/services/shop/purge")
        .header("authorization", format!("Bearer {TENANT_TOKEN}"))
        .header("content-type", "application/json")
        .body(body);
    let resp = tokio::time::timeout(Duration::from_secs(5), outpost_tests::client::send(addr, &req)).await??;
    anyhow::ensure!(resp.status == 202, "purge {tag}: {}", resp.status);
    Ok(0)
}

/// Purge latency from `POST` (no wait) to its event on a node stream: through one replica to a
/// stream held by the other, beside the same replica and a one-process redb control plane.
/// Prints p50/p99 over 200 purges; asserts nothing about time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p outpost-tests --test control_plane_replicas -- --ignored --nocapture"]
async fn bench_purge_to_stream_latency() -> anyhow::Result<()> {
    let (_cluster, url) = database()?;
    let a = replica(&url, "5s", &[]).await?;
    let b = replica(&url, "5s", &[]).await?;
    let redb = ControlPlane::start(ControlConfig::default()).await?;
    let origin = Origin::start().await?;
    put_shop(&a, &origin).await?;
    put_shop(&redb, &origin).await?;
    for (name, post, stream) in
        [("redb, one process", &redb, &redb), ("pg, same replica", &a, &a), ("pg, A -> B", &a, &b)]
    {
        let mut ms = purge_latencies(post, stream, 200).await?;
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
        println!("{name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})", at(0.5), at(0.99), at(1.0), ms.len());
    }
    Ok(())
}

async fn purge_latencies(post: &ControlPlane, stream: &ControlPlane, n: usize) -> anyhow::Result<Vec<f64>> {
    use outpost_tests::control::{NODE_TOKEN, NodeStream};
    let id = format!("bench-{}", stream.addr().port());
    let body = json!({"pop": "fra", "region": "eu", "role": "edge", "addresses": {"admin": "127.0.0.1:9"}});
    let resp = stream.call(Method::PUT, &format!("/v1/nodes/{id}"), Some(NODE_TOKEN), &body.to_string()).await?;
    anyhow::ensure!(resp.status == 200, "register: {} {}", resp.status, resp.text());
    let mut lines = NodeStream::open(stream.addr(), &id, 0, NODE_TOKEN).await?;
    let snapshot = lines.next_change().await?;
    let mut cursor = snapshot["snapshot"]["seq"].as_u64().unwrap_or(0);
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        // The operator's token: a tenant's purges are rate limited (10/s).
        let seq = purge_as(post, &format!("b{i}"), OPERATOR).await?;
        while cursor < seq {
            let line = lines.next_change().await?;
            cursor = line["event"]["seq"].as_u64().unwrap_or(cursor);
        }
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(ms)
}
