//! Deploying edge functions through the control plane (issue 7, "Functions"): a real control
//! plane and the two-PoP fleet (three edges, a shield) with no services of their own. A
//! function is uploaded, activated, replaced and rolled back through the API only; each edge's
//! answers show which version it runs, and `GET /v1/nodes` shows what each node reports.
//!
//! v1 is the probe guest (`/hello` answers `hello from probe ...`), v2 the SDK's hello example
//! (`hello from <pop>`): two different components, so the answer names the version. v3 is the
//! hello example with one import renamed (`wasi:cli/environmenx`): a valid component the control
//! plane accepts, which no node can link, so every node keeps the version it ran.

use std::time::{Duration, Instant};

use http::Method;
use outpost_tests::EdgeNode;
use outpost_tests::control::{ControlPlane, OPERATOR, json};
use outpost_tests::fleet::{Fleet, FleetSpec, TENANT_TOKEN, follower};
use outpost_tests::wasm::{GuestKind, build_guest, probe_guest, repo_root};
use outpost_tests::{Reply, Req};
use serde_json::{Value, json};

/// How long a change may take to reach every node before the test gives up (a bound on
/// waiting, not a measurement).
const LIMIT: Duration = Duration::from_secs(30);

async fn upload(cp: &ControlPlane, bytes: Vec<u8>) -> anyhow::Result<Value> {
    let req = Req::new(Method::POST, "control-plane", "/v1/services/shop/functions")
        .body(bytes)
        .header("content-type", "application/wasm")
        .header("authorization", format!("Bearer {TENANT_TOKEN}"));
    let resp = cp.send(req).await?;
    anyhow::ensure!(resp.status == 201, "upload: {} {}", resp.status, resp.text());
    json(&resp)
}

async fn post(cp: &ControlPlane, path: &str) -> anyhow::Result<Value> {
    let resp = cp.call(Method::POST, path, Some(TENANT_TOKEN), "").await?;
    anyhow::ensure!(resp.status == 200, "POST {path}: {} {}", resp.status, resp.text());
    json(&resp)
}

/// Waits until `edge` answers `GET shop.test/hello` with a body starting with `prefix`.
async fn wait_answer(edge: &EdgeNode, prefix: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let resp = edge.get("shop.test", "/hello").await?;
        if resp.status == 200 && resp.text().starts_with(prefix) {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < LIMIT,
            "{} still answers {} {:?}, not {prefix:?}\nstderr:\n{}",
            edge.name(),
            resp.status,
            resp.text(),
            edge.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every edge of the fleet reports running `label` for `shop` in `GET /v1/nodes`,
/// and the shield (which runs no functions) reports none.
async fn wait_reported(fleet: &Fleet, label: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let resp = fleet.cp.call(Method::GET, "/v1/nodes", Some(OPERATOR), "").await?;
        let list = json(&resp)?;
        let nodes = list["nodes"].as_array().cloned().unwrap_or_default();
        let reports = |node: &EdgeNode, want: Option<&str>| {
            nodes.iter().any(|n| n["id"] == node.name() && n["functions"]["shop"].as_str() == want)
        };
        let edges = fleet.edges.iter().all(|edge| reports(edge, Some(label)));
        if edges && fleet.shield.iter().all(|shield| reports(shield, None)) {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < LIMIT, "not every node reports {label}: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `node` has logged that it rejected a service version `times` times in all.
async fn wait_rejected(node: &EdgeNode, times: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    while node.stderr_text().matches("service version not applied on this node").count() < times {
        anyhow::ensure!(start.elapsed() < LIMIT, "{} never rejected v3\nstderr:\n{}", node.name(), node.stderr_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The function files in `node`'s state directory (the cache directory in the harness).
fn function_files(node: &EdgeNode) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(node.dir().join("cache").join("functions"))? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// `hello` with its `wasi:cli/environment` import renamed: still a valid component exporting
/// the handler, but one importing an interface no node offers.
fn unlinkable(hello: &[u8]) -> Vec<u8> {
    let (from, to) = (b"wasi:cli/environment@".as_slice(), b"wasi:cli/environmenx@".as_slice());
    let mut bytes = hello.to_vec();
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(from.len()).position(|w| w == from) {
        bytes[i + at..i + at + to.len()].copy_from_slice(to);
        i += at + to.len();
    }
    bytes
}

/// Activates version 2 (the build that names the PoP) and waits until every edge answers with
/// its PoP and every node reports it.
async fn activate_v2(fleet: &Fleet, v2: &Value) -> anyhow::Result<()> {
    post(&fleet.cp, "/v1/services/shop/functions/2/activate").await?;
    for edge in &fleet.edges {
        let pop = if edge.name().contains("iad") { "iad" } else { "fra" };
        wait_answer(edge, &format!("hello from {pop}")).await?;
    }
    wait_reported(fleet, &label(v2)).await
}

fn label(version: &Value) -> String {
    let sha = version["sha256"].as_str().unwrap_or_default();
    format!("{}:{}", version["version"], sha.get(..12).unwrap_or(sha))
}

#[tokio::test]
async fn every_node_switches_on_activate_and_back_on_rollback() -> anyhow::Result<()> {
    let probe = std::fs::read(probe_guest()?)?;
    let hello = std::fs::read(build_guest(&repo_root()?.join("wasm-sdk"), GuestKind::Example, "hello")?)?;
    let broken = unlinkable(&hello);
    assert_ne!(broken, hello, "the hello example imports wasi:cli/environment");
    let mut fleet = Fleet::start(FleetSpec::two_pops()).await?;
    // `create_shop` waits for `/` to be served (anything but the node's 404).
    fleet.origin.route("/", Reply::ok("home".to_owned()));
    fleet.origin.route("/hello", Reply::ok("from the origin".to_owned()));
    fleet.create_shop(json!({})).await?;
    for edge in &fleet.edges {
        wait_answer(edge, "from the origin").await?;
    }

    // Uploading runs nothing; activating v1 reaches every edge.
    let v1 = upload(&fleet.cp, probe).await?;
    let v2 = upload(&fleet.cp, hello).await?;
    for edge in &fleet.edges {
        wait_answer(edge, "from the origin").await?;
    }
    post(&fleet.cp, "/v1/services/shop/functions/1/activate").await?;
    for edge in &fleet.edges {
        wait_answer(edge, "hello from probe").await?;
    }
    wait_reported(&fleet, &label(&v1)).await?;
    // The function's fetch of the origin goes through the shield, which does not run the
    // function again (it would answer `hello from probe` for `/page`).
    fleet.origin.route("/page", Reply::ok("page".to_owned()));
    for edge in &fleet.edges {
        let resp = edge.get("shop.test", "/origin/page").await?;
        assert_eq!(resp.text(), "page", "{}: {}", edge.name(), resp.summary());
    }

    // v2: each edge switches, and its answer names its PoP.
    activate_v2(&fleet, &v2).await?;

    // Rollback: v1 again everywhere.
    let back = post(&fleet.cp, "/v1/services/shop/functions/rollback").await?;
    assert_eq!(back["function"]["version"], 1, "{back}");
    for edge in &fleet.edges {
        wait_answer(edge, "hello from probe").await?;
    }
    wait_reported(&fleet, &label(&v1)).await?;

    // v3 does not link on any node: each keeps running v1, says why in its log, and reports v1.
    let v3 = upload(&fleet.cp, broken).await?;
    post(&fleet.cp, "/v1/services/shop/functions/3/activate").await?;
    for edge in &fleet.edges {
        wait_rejected(edge, 1).await?;
    }
    for edge in &fleet.edges {
        let resp = edge.get("shop.test", "/hello").await?;
        assert!(resp.text().starts_with("hello from probe"), "{}: {} {}", edge.name(), resp.status, resp.text());
    }
    wait_reported(&fleet, &label(&v1)).await?;
    let stderr = fleet.edges[0].stderr_text();
    assert!(stderr.contains("environmenx"), "the log names what failed:\n{stderr}");

    // ... also after a restart (the kept version is saved with the control state), and before
    // the node hears from the control plane again.
    fleet.edges[0].restart().await?;
    let resp = fleet.edges[0].get("shop.test", "/hello").await?;
    assert!(resp.text().starts_with("hello from probe"), "after restart: {} {}", resp.status, resp.text());
    wait_reported(&fleet, &label(&v1)).await?;

    // The next good version applies as usual; files no version in force names are removed.
    activate_v2(&fleet, &v2).await?;
    let v2_file = format!("{}.wasm", v2["sha256"].as_str().unwrap_or_default());
    for edge in &fleet.edges {
        assert_eq!(function_files(edge)?, std::slice::from_ref(&v2_file), "{}", edge.name());
    }
    assert!(v3["sha256"] != v2["sha256"]);
    Ok(())
}

/// A version whose function a node cannot have (here: larger than the node's
/// `control.max_message_size`) is rejected like one that does not link: the node keeps the
/// version it ran, says why, reports it, and goes on applying what follows (a purge reaches it
/// and is acknowledged), rather than retrying the same event forever.
#[tokio::test]
async fn a_function_a_node_cannot_fetch_leaves_it_on_the_version_it_ran() -> anyhow::Result<()> {
    let probe = std::fs::read(probe_guest()?)?;
    let hello = std::fs::read(build_guest(&repo_root()?.join("wasm-sdk"), GuestKind::Example, "hello")?)?;
    let limit = 1024 * 1024;
    assert!(probe.len() < limit && hello.len() > limit, "probe {} B, hello {} B", probe.len(), hello.len());
    let mut fleet = Fleet::start(FleetSpec { edges: Vec::new(), shield: false }).await?;
    let mut config = follower("edge-fra-1", "fra", "eu-central", fleet.cp.addr());
    config.extra.push_str("max_message_size = \"1MiB\"\n");
    fleet.edges.push(EdgeNode::start(config).await?);
    fleet.origin.route("/", Reply::ok("home".to_owned()));
    fleet.origin.route("/page", Reply::ok("page".to_owned()).cache_control("max-age=600"));
    fleet.create_shop(json!({})).await?;

    let v1 = upload(&fleet.cp, probe).await?;
    upload(&fleet.cp, hello).await?;
    post(&fleet.cp, "/v1/services/shop/functions/1/activate").await?;
    let edge = &fleet.edges[0];
    wait_answer(edge, "hello from probe").await?;
    wait_reported(&fleet, &label(&v1)).await?;

    post(&fleet.cp, "/v1/services/shop/functions/2/activate").await?;
    wait_rejected(edge, 1).await?;
    let stderr = edge.stderr_text();
    assert!(stderr.contains("more than this node fetches"), "the log says why:\n{stderr}");
    let resp = edge.get("shop.test", "/hello").await?;
    assert!(resp.text().starts_with("hello from probe"), "{} {}", resp.status, resp.text());
    wait_reported(&fleet, &label(&v1)).await?;

    // The node went on: a purge after it is applied and acknowledged. (The probe's
    // `/origin/page` fetches the origin's `/page` through the node's cache.)
    for _ in 0..2 {
        assert_eq!(edge.get("shop.test", "/origin/page").await?.text(), "page");
    }
    assert_eq!(fleet.origin.count("/page"), 1, "cached");
    let progress = fleet.purge(json!({"urls": ["shop.test/page"]})).await?;
    assert_eq!(progress["complete"], true, "{progress}");
    assert_eq!(edge.get("shop.test", "/origin/page").await?.text(), "page");
    assert_eq!(fleet.origin.count("/page"), 2, "purged, so fetched again");
    Ok(())
}

/// A node started while the control plane is away, missing the file of the function it ran
/// (deleted here), leaves that service out rather than run it without its function, and
/// fetches the file as soon as the control plane answers, with no change to wait for.
#[tokio::test]
async fn a_function_file_missing_at_start_is_fetched_once_the_control_plane_answers() -> anyhow::Result<()> {
    let probe = std::fs::read(probe_guest()?)?;
    let mut fleet = Fleet::start(FleetSpec::one_edge()).await?;
    fleet.origin.route("/", Reply::ok("home".to_owned()));
    fleet.create_shop(json!({})).await?;
    let v1 = upload(&fleet.cp, probe).await?;
    post(&fleet.cp, "/v1/services/shop/functions/1/activate").await?;
    wait_answer(&fleet.edges[0], "hello from probe").await?;
    wait_reported(&fleet, &label(&v1)).await?;

    fleet.edges[0].stop().await?;
    fleet.cp.stop().await?;
    for name in function_files(&fleet.edges[0])? {
        std::fs::remove_file(fleet.edges[0].dir().join("cache").join("functions").join(name))?;
    }
    fleet.edges[0].restart().await?;
    let resp = fleet.edges[0].get("shop.test", "/hello").await?;
    assert_eq!(resp.status, 404, "left out, not served without its function: {}", resp.summary());

    fleet.restart_control_plane().await?;
    wait_answer(&fleet.edges[0], "hello from probe").await?;
    wait_reported(&fleet, &label(&v1)).await?;
    Ok(())
}
