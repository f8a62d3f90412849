//! Issue 16, the control plane's truthfulness and its nodes' identities, against real
//! processes: a `control-plane`, edge nodes that follow it, and `dig`.
//!
//! - Purges tell the truth: after a control-plane restart, a purge is not `complete` before the
//!   nodes seen within `nodes.offline_after` acknowledge it; nodes gone longer are `offline`.
//! - No flapping: a restarted control plane keeps answering DNS with a PoP whose edges pass
//!   their probes while their streams come back (`nodes.startup_grace`).
//! - One node, one identity: a second node on a live node's id gets 409 `node_id_in_use` and
//!   DNS keeps the real node's address; a real restart (SIGKILL + start) takes the id back.
//! - Nodes take a list of control-plane URLs and move past one that refuses.
//! - Operations: deregistration, per-node drain, backup and restore.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;
use outpost_tests::control::{ControlConfig, ControlPlane, NODE_TOKEN, OPERATOR, expect_error, json};
use outpost_tests::fleet::{Fleet, FleetSpec, TENANT_TOKEN, follower, wait_served};
use outpost_tests::proxy::TcpGate;
use outpost_tests::{EdgeNode, NodeConfig, Reply, refused_addr};
use serde_json::{Value, json};

/// Bound on every wait for a state to be reached: generous for a loaded 2-core machine; the
/// time actually taken is printed where it is a figure worth reading.
const LIMIT: Duration = Duration::from_secs(20);

async fn get(cp: &ControlPlane, path: &str) -> anyhow::Result<Value> {
    let resp = cp.call(Method::GET, path, Some(OPERATOR), "").await?;
    anyhow::ensure!(resp.status == 200, "GET {path}: {} {}", resp.status, resp.text());
    json(&resp)
}

/// Polls `GET path` (operator) until `check` holds; returns the last answer.
async fn wait_for(cp: &ControlPlane, path: &str, why: &str, check: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let start = Instant::now();
    loop {
        let value = get(cp, path).await?;
        if check(&value) {
            return Ok(value);
        }
        anyhow::ensure!(start.elapsed() < LIMIT, "{why}: GET {path} is still {value}\n{}", cp.stderr_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn node<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["nodes"].as_array().and_then(|nodes| nodes.iter().find(|n| n["id"] == id)).unwrap_or(&Value::Null)
}

/// Rewrites the control plane's API `listen` to the address it has now, so a restart keeps it
/// (the nodes' `[control] url` names it). The DNS server's `listen` stays on port 0.
fn pin_address(cp: &ControlPlane) -> anyhow::Result<()> {
    let path = cp.dir().join("control-plane.toml");
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, text.replacen("listen = \"127.0.0.1:0\"", &format!("listen = \"{}\"", cp.addr()), 1))?;
    Ok(())
}

// ---- Purges tell the truth ----

/// The issue's report: right after a restart, `purge --wait` answered `complete` while every
/// node was still disconnected. A node seen within `offline_after` (default 10 min; its last
/// registration, ack or stream is in the store) is pending until it acks.
#[tokio::test]
async fn after_a_restart_a_purge_is_not_complete_before_the_nodes_ack() -> anyhow::Result<()> {
    let config = ControlConfig::default().nodes("heartbeat_interval = \"200ms\"");
    let mut fleet = Fleet::start_with(FleetSpec::one_edge(), config).await?;
    fleet.origin.route("/", Reply::ok("home"));
    fleet.create_shop(json!({})).await?;
    fleet.edges[0].kill()?;
    fleet.restart_control_plane().await?;

    let path = "/v1/services/shop/purge?wait=true&timeout=1s";
    let resp = fleet.cp.call(Method::POST, path, Some(TENANT_TOKEN), r#"{"all": true}"#).await?;
    let progress = json(&resp)?;
    assert_eq!(resp.status, 202, "not complete while the node has not acked: {progress}");
    assert_eq!((progress["status"].as_str(), progress["complete"].as_bool()), (Some("pending"), Some(false)));
    assert_eq!(progress["pending"], json!(["edge-fra-1"]), "{progress}");
    assert_eq!(progress["offline"], json!([]), "{progress}");
    assert_eq!(progress["nodes"]["edge-fra-1"]["live"], false, "{progress}");
    let list = get(&fleet.cp, "/v1/nodes").await?;
    assert_eq!(
        (node(&list, "edge-fra-1")["expected"].as_bool(), node(&list, "edge-fra-1")["connected"].as_bool()),
        (Some(true), Some(false))
    );

    // The node comes back, resumes, applies and acks: complete.
    let id = progress["id"].as_str().unwrap_or_default().to_owned();
    fleet.edges[0].restart().await?;
    let done = wait_for(&fleet.cp, &format!("/v1/purges/{id}"), "the node is back", |p| p["complete"] == true).await?;
    assert_eq!(
        (done["status"].as_str(), done["nodes"]["edge-fra-1"]["acked"].as_bool()),
        (Some("complete"), Some(true))
    );
    Ok(())
}

/// A node unseen for longer than `offline_after` is listed apart and not waited for.
#[tokio::test]
async fn a_node_gone_longer_than_the_window_is_offline_not_pending() -> anyhow::Result<()> {
    let config = ControlConfig::default().nodes("heartbeat_interval = \"100ms\"").nodes("offline_after = \"1s\"");
    let cp = ControlPlane::start(config).await?;
    let body = r#"{"hosts": ["shop.test"], "origin": "http://127.0.0.1:9"}"#;
    assert!(cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), body).await?.status.is_success());
    let registration = json!({"pop": "fra", "role": "edge", "addresses": {"admin": "127.0.0.1:9"}}).to_string();
    let resp = cp.call(Method::PUT, "/v1/nodes/edge-gone", Some(NODE_TOKEN), &registration).await?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Registered a moment ago: expected at first; the wait ends once its window is over.
    let path = "/v1/services/shop/purge?wait=true&timeout=15s";
    let resp = cp.call(Method::POST, path, Some(TENANT_TOKEN), r#"{"all": true}"#).await?;
    let progress = json(&resp)?;
    assert_eq!(resp.status, 200, "{progress}");
    assert_eq!((progress["pending"].clone(), progress["offline"].clone()), (json!([]), json!(["edge-gone"])));
    assert!(progress["nodes"].get("edge-gone").is_none(), "{progress}");
    let list = get(&cp, "/v1/nodes").await?;
    assert_eq!(node(&list, "edge-gone")["expected"], false, "{list}");
    Ok(())
}

// ---- DNS during a restart of the control plane ----

const TABLES: &str = r#"
[dns]
listen = "127.0.0.1:0"
zone = "cdn.example."
ttl = "5s"
ns = ["ns1.cdn.example."]
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

fn dns_config() -> ControlConfig {
    ["interval = \"200ms\"", "timeout = \"500ms\"", "unhealthy_threshold = 2", "healthy_threshold = 2"]
        .iter()
        .fold(ControlConfig::default(), |config, line| config.health(line))
        .nodes("heartbeat_interval = \"200ms\"")
        .tables(TABLES)
}

/// An edge of `pop` listening (client and admin) on `ip`, following the control plane at `cp`.
fn edge_config(name: &str, pop: &str, ip: &str, cp: SocketAddr) -> NodeConfig {
    let mut config = follower(name, pop, &format!("r{pop}"), cp);
    config.http_listen = format!("{ip}:0");
    config.admin_listen = format!("{ip}:0");
    config
}

/// The A records `dig` gets for `shop.cdn.example` from a client in `subnet`, sorted.
async fn answer(cp: &ControlPlane, subnet: &str) -> anyhow::Result<Vec<String>> {
    let server = cp.dns_addr()?;
    let mut command = std::process::Command::new("dig");
    command
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "shop.cdn.example", "A", "+short", "+norecurse", "+tries=1"])
        .args(["+time=3", &format!("+subnet={subnet}")]);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(output.status.success(), "dig: {}", String::from_utf8_lossy(&output.stdout));
    let mut ips: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    ips.sort();
    Ok(ips)
}

async fn wait_answer(cp: &ControlPlane, subnet: &str, ips: &[&str], why: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let got = answer(cp, subnet).await?;
        if got == ips {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < LIMIT, "{why}: {subnet} gets {got:?}, not {ips:?}\n{}", cp.stderr_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_shop(cp: &ControlPlane) -> anyhow::Result<()> {
    let body = r#"{"hosts": ["shop.test"], "origin": "http://127.0.0.1:9"}"#;
    let resp = cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), body).await?;
    anyhow::ensure!(resp.status.is_success(), "PUT /v1/services/shop: {} {}", resp.status, resp.text());
    Ok(())
}

/// The issue's report: after a restart, DNS sent clients to the wrong PoP while the nodes
/// reconnected. Here PoP a's edge reaches the control plane through a gate that stays shut
/// after the restart, so its stream is the last to come back: its probe passes, and region ra's
/// clients must keep getting PoP a, before, during and after.
#[tokio::test]
async fn a_restarted_control_plane_does_not_steer_away_from_a_reconnecting_pop() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(dns_config().nodes("startup_grace = \"10s\"")).await?;
    let gate = TcpGate::start(cp.addr()).await?;
    let _a = EdgeNode::start(edge_config("edge-a1", "a", "127.0.1.1", gate.addr())).await?;
    let _b = EdgeNode::start(edge_config("edge-b1", "b", "127.0.2.1", cp.addr())).await?;
    create_shop(&cp).await?;
    wait_answer(&cp, IN_RA, &["127.0.1.1"], "both PoPs up").await?;
    wait_answer(&cp, IN_RB, &["127.0.2.1"], "both PoPs up").await?;

    // Stop the control plane, shut a's path to it, start it again on its address.
    pin_address(&cp)?;
    cp.stop().await?;
    gate.shut();
    cp.restart().await?;
    // b is back; a's probe passes but its stream cannot come back: the state that flapped.
    let pops = wait_for(&cp, "/v1/pops", "b streams and a's probe passes", |list| {
        let pops = list["pops"].as_array().cloned().unwrap_or_default();
        let a = pops.iter().find(|p| p["pop"] == "a").map(|p| p["nodes"][0].clone()).unwrap_or_default();
        let b = pops.iter().find(|p| p["pop"] == "b").map(|p| p["nodes"][0].clone()).unwrap_or_default();
        a["probe"] == "up" && b["live"] == true
    })
    .await?;
    for _ in 0..5 {
        assert_eq!(answer(&cp, IN_RA).await?, ["127.0.1.1"], "ra keeps PoP a while its edge reconnects\n{pops}");
        assert_eq!(answer(&cp, IN_RB).await?, ["127.0.2.1"]);
    }
    // (`live` may still be true: a stream that ended less than `nodes.grace` ago counts as live,
    // on every replica, since its end is in the store.)
    let a = &pops["pops"][0]["nodes"][0];
    let state = (a["reconnecting"].as_bool(), a["healthy"].as_bool());
    assert_eq!(state, (Some(true), Some(true)), "{pops}");
    // a's path comes back: its stream too, and the answers stay, past the startup grace.
    gate.open();
    let start = Instant::now();
    wait_for(&cp, "/v1/nodes", "a reconnects", |list| node(list, "edge-a1")["connected"] == true).await?;
    eprintln!("edge-a1 streamed again {:?} after its path opened", start.elapsed());
    wait_for(&cp, "/v1/nodes", "the startup grace ends", |list| {
        list["nodes"].as_array().is_some_and(|nodes| nodes.iter().all(|n| n["reconnecting"] == false))
    })
    .await?;
    for _ in 0..3 {
        assert_eq!(answer(&cp, IN_RA).await?, ["127.0.1.1"], "after the grace");
    }
    Ok(())
}

/// Nodes reconnect after a control-plane restart within a couple of seconds with the default
/// backoff (2 s cap), not the 30 s the issue saw: measured, printed, bounded loosely.
#[tokio::test]
async fn nodes_reconnect_promptly_after_a_restart_with_the_default_backoff() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    let mut config = NodeConfig::default().name("edge-1").node_line("pop = \"fra\"");
    // The defaults, but for the heartbeat timeout (the control plane beats every 200 ms here).
    config.extra =
        format!("\n[control]\nurl = \"http://{}\"\ntoken = \"{NODE_TOKEN}\"\nheartbeat_timeout = \"2s\"\n", cp.addr());
    let _edge = EdgeNode::start(config).await?;
    wait_for(&cp, "/v1/nodes", "connected", |list| node(list, "edge-1")["connected"] == true).await?;
    pin_address(&cp)?;
    cp.stop().await?;
    // Down long enough for several attempts to fail (the backoff grows meanwhile).
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cp.restart().await?;
    let start = Instant::now();
    wait_for(&cp, "/v1/nodes", "reconnected", |list| node(list, "edge-1")["connected"] == true).await?;
    eprintln!("edge-1 streamed again {:?} after the control plane came back (3 s down)", start.elapsed());
    Ok(())
}

// ---- One node, one identity ----

#[tokio::test]
async fn an_impostor_gets_409_and_a_real_restart_takes_the_id_back() -> anyhow::Result<()> {
    let cp = ControlPlane::start(dns_config()).await?;
    let mut real = EdgeNode::start(edge_config("edge-b1", "b", "127.0.2.1", cp.addr())).await?;
    create_shop(&cp).await?;
    wait_answer(&cp, IN_RB, &["127.0.2.1"], "the real node").await?;

    // Another node, another address, the same name (and the fleet's token).
    let impostor = EdgeNode::start(edge_config("edge-b1", "b", "127.0.2.2", cp.addr())).await?;
    let start = Instant::now();
    while !impostor.stderr_text().contains("is held by a live stream from 127.0.0.1:") {
        anyhow::ensure!(start.elapsed() < LIMIT, "the impostor was not refused:\n{}", impostor.stderr_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(impostor.stderr_text().contains("409"), "{}", impostor.stderr_text());
    let metrics = cp.call(Method::GET, "/metrics", Some(OPERATOR), "").await?.text();
    let conflicts = metrics
        .lines()
        .find_map(|l| l.strip_prefix("outpost_cp_node_id_conflicts_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(conflicts >= Some(1), "counted: {metrics}");
    assert!(cp.stderr_text().contains("node id claimed while another connection holds its stream"), "logged");
    // The registration and DNS keep the real node's address, however often the impostor tries.
    for _ in 0..5 {
        assert_eq!(answer(&cp, IN_RB).await?, ["127.0.2.1"], "DNS keeps the real node");
    }
    let list = get(&cp, "/v1/nodes").await?;
    let http = node(&list, "edge-b1")["addresses"]["http"].as_str().unwrap_or_default().to_owned();
    assert!(http.starts_with("127.0.2.1:"), "{list}");
    assert!(node(&list, "edge-b1")["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{list}");
    drop(impostor);

    // The real node restarts hard: it gets its id back once its old stream is found gone.
    real.kill()?;
    let start = Instant::now();
    real.restart_same_addrs().await?;
    wait_for(&cp, "/v1/nodes", "the restarted node streams again", |list| node(list, "edge-b1")["connected"] == true)
        .await?;
    eprintln!("the restarted node had its id back {:?} after it started", start.elapsed());
    wait_answer(&cp, IN_RB, &["127.0.2.1"], "the restarted node").await?;
    Ok(())
}

// ---- A list of control-plane URLs ----

#[tokio::test]
async fn a_node_moves_past_a_control_plane_url_that_refuses() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    let dead = refused_addr().await?;
    let mut config = NodeConfig::default().name("edge-1").node_line("pop = \"fra\"");
    config.extra = format!(
        "\n[control]\nurls = [\"http://{dead}\", \"http://{}\"]\ntoken = \"{NODE_TOKEN}\"\n\
         heartbeat_timeout = \"2s\"\nrequest_timeout = \"2s\"\n",
        cp.addr()
    );
    let start = Instant::now();
    let edge = EdgeNode::start(config).await?;
    wait_for(&cp, "/v1/nodes", "streaming from the second URL", |list| node(list, "edge-1")["connected"] == true)
        .await?;
    eprintln!("streaming from the second URL {:?} after the node started", start.elapsed());
    let log = edge.stderr_text();
    assert!(log.contains(&format!("http://{dead}")) && log.contains("disconnected from the control plane"), "{log}");
    // It follows from there: a service put through the API is served.
    create_shop(&cp).await?;
    wait_served(&edge, "shop.test", "/").await?;
    Ok(())
}

// ---- Operations ----

#[tokio::test]
async fn nodes_are_deregistered_and_drained_by_the_operator() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(dns_config()).await?;
    let _a1 = EdgeNode::start(edge_config("edge-a1", "a", "127.0.1.1", cp.addr())).await?;
    let _a2 = EdgeNode::start(edge_config("edge-a2", "a", "127.0.1.2", cp.addr())).await?;
    create_shop(&cp).await?;
    wait_answer(&cp, IN_RA, &["127.0.1.1", "127.0.1.2"], "both edges up").await?;

    // Drain one node: DNS leaves its address out at once; its PoP keeps answering.
    let resp = cp.call(Method::POST, "/v1/nodes/edge-a1/drain", Some(OPERATOR), "").await?;
    let drained = json(&resp)?;
    assert_eq!(resp.status, 200, "{drained}");
    assert!(drained["drained_at"].is_string(), "{drained}");
    assert_eq!(answer(&cp, IN_RA).await?, ["127.0.1.2"], "a node drain takes effect at once");
    // It survives a restart of the control plane.
    pin_address(&cp)?;
    cp.restart().await?;
    wait_for(&cp, "/v1/nodes", "both back", |list| {
        node(list, "edge-a1")["connected"] == true && node(list, "edge-a2")["connected"] == true
    })
    .await?;
    wait_answer(&cp, IN_RA, &["127.0.1.2"], "still drained after a restart").await?;
    let pops = get(&cp, "/v1/pops").await?;
    assert_eq!(pops["pops"][0]["nodes"][0]["drained"], true, "{pops}");
    // Restored with the CLI.
    let run = cp.ctl(Some(OPERATOR), &["nodes", "restore", "edge-a1"]).await?;
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "edge-a1: restored\n"), "{}", run.stderr);
    assert_eq!(answer(&cp, IN_RA).await?, ["127.0.1.1", "127.0.1.2"]);

    // Deregistration: a live node is refused without force; tenants may not; unknown is 404.
    expect_error(&cp.call(Method::DELETE, "/v1/nodes/edge-a2", Some(OPERATOR), "").await?, 409, "node_live")?;
    expect_error(&cp.call(Method::DELETE, "/v1/nodes/edge-a2", Some(TENANT_TOKEN), "").await?, 403, "forbidden")?;
    expect_error(&cp.call(Method::DELETE, "/v1/nodes/ghost", Some(OPERATOR), "").await?, 404, "not_found")?;
    expect_error(&cp.call(Method::POST, "/v1/nodes/ghost/drain", Some(OPERATOR), "").await?, 404, "not_found")?;
    let run = cp.ctl(Some(OPERATOR), &["nodes", "remove", "edge-a2"]).await?;
    assert_ne!(run.code, Some(0), "refused while live: {}", run.stdout);
    assert!(run.stderr.contains("node_live"), "{}", run.stderr);
    let run = cp.ctl(Some(OPERATOR), &["nodes", "remove", "edge-a2", "--force"]).await?;
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "edge-a2: removed\n"), "{}", run.stderr);
    let list = get(&cp, "/v1/nodes").await?;
    assert!(node(&list, "edge-a2").is_null() || node(&list, "edge-a2")["connected"] == false, "{list}");
    Ok(())
}

/// A node deregistered while stopped stays gone: it leaves DNS and purge progress.
#[tokio::test]
async fn a_stopped_node_deregistered_leaves_purges_and_dns() -> anyhow::Result<()> {
    let cp = ControlPlane::start(dns_config()).await?;
    let mut a1 = EdgeNode::start(edge_config("edge-a1", "a", "127.0.1.1", cp.addr())).await?;
    create_shop(&cp).await?;
    wait_answer(&cp, IN_RA, &["127.0.1.1"], "up").await?;
    a1.stop().await?;
    wait_for(&cp, "/v1/nodes", "stream gone", |list| node(list, "edge-a1")["connected"] == false).await?;
    // Seen a moment ago: a purge would wait for it (10 min by default). Deregister it instead.
    let resp = cp.call(Method::DELETE, "/v1/nodes/edge-a1", Some(OPERATOR), "").await?;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let path = "/v1/services/shop/purge?wait=true&timeout=5s";
    let resp = cp.call(Method::POST, path, Some(TENANT_TOKEN), r#"{"all": true}"#).await?;
    let progress = json(&resp)?;
    assert_eq!((resp.status.as_u16(), progress["nodes"].clone()), (200, json!({})), "{progress}");
    let list = get(&cp, "/v1/nodes").await?;
    assert_eq!(list["nodes"], json!([]), "{list}");
    Ok(())
}

#[tokio::test]
async fn a_backup_taken_while_running_restores_the_store() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(ControlConfig::default()).await?;
    create_shop(&cp).await?;
    let resp = cp.call(Method::POST, "/v1/services/shop/purge", Some(TENANT_TOKEN), r#"{"all": true}"#).await?;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let config = cp.dir().join("control-plane.toml");
    let copy = cp.dir().join("backup.redb");

    // While it runs: the running process makes the copy (redb lets one process hold the file).
    let output = std::process::Command::new(outpost_tests::control::binary()?)
        .args(["backup", "--config"])
        .arg(&config)
        .arg("--url")
        .arg(format!("http://{}", cp.addr()))
        .arg(&copy)
        .env("OUTPOST_TOKEN", OPERATOR)
        .output()?;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("records (from the control plane at"), "{stdout}");
    // Never over an existing file; tenants may not.
    let again = cp.call(Method::POST, "/v1/backup", Some(OPERATOR), &json!({"path": copy}).to_string()).await?;
    expect_error(&again, 400, "invalid_request")?;
    let tenant =
        cp.call(Method::POST, "/v1/backup", Some(TENANT_TOKEN), &json!({"path": "/tmp/x"}).to_string()).await?;
    expect_error(&tenant, 403, "forbidden")?;

    // A change after the backup, then restore: stop, put the copy in place, start.
    assert!(cp.call(Method::DELETE, "/v1/services/shop", Some(TENANT_TOKEN), "").await?.status.is_success());
    cp.stop().await?;
    std::fs::rename(&copy, cp.dir().join("control-plane.redb"))?;
    cp.restart().await?;
    let service = get(&cp, "/v1/services/shop").await?;
    assert_eq!(service["version"], 1, "{service}");
    let events = get(&cp, "/v1/events").await?;
    assert_eq!(events["last_seq"], 2, "the log as backed up: {events}");

    // While it is stopped: the data file is copied directly.
    cp.stop().await?;
    let offline = cp.dir().join("offline.redb");
    let output = std::process::Command::new(outpost_tests::control::binary()?)
        .args(["backup", "--config"])
        .arg(&config)
        .arg(&offline)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("not running"), "{stdout}");
    Ok(())
}
