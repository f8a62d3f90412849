//! Nodes following the control plane (issue 7): a real control plane, edges in two PoPs (`fra`,
//! `iad`) and a shield, all started with `[control]` and no services of their own, in front of
//! one origin. Services and purges go through the control plane's API only; the nodes' answers
//! and the origin's request counts show what each node applied.

use std::time::Duration;

use http::Method;
use outpost_tests::control::{ControlConfig, ControlPlane, OPERATOR, json};
use outpost_tests::fleet::{Fleet, FleetSpec, TENANT_TOKEN, follower, metric, wait_metric, wait_served};
use outpost_tests::{EdgeNode, Origin, Reply, Req, ServiceSpec};
use serde_json::{Value, json};

fn cacheable(body: &str) -> Reply {
    Reply::ok(body.to_owned()).cache_control("max-age=600")
}

/// `GET` on `edge` twice; fails unless the second is a hit there.
async fn warm(edge: &EdgeNode, path: &str) -> anyhow::Result<()> {
    edge.get("shop.test", path).await?;
    let again = edge.get("shop.test", path).await?;
    anyhow::ensure!(again.cache_status().hit(), "{}: {path} not cached: {}", edge.name(), again.summary());
    Ok(())
}

/// The two-PoP fleet serving `shop`, with `/a` cached on every edge.
async fn two_pops_with_a_warm() -> anyhow::Result<Fleet> {
    let fleet = Fleet::start(FleetSpec::two_pops()).await?;
    fleet.origin.route("/", cacheable("home"));
    fleet.origin.route("/a", cacheable("a"));
    fleet.create_shop(json!({})).await?;
    for edge in &fleet.edges {
        warm(edge, "/a").await?;
    }
    Ok(fleet)
}

/// Checks that a purge's progress lists every node of the fleet as acked, by PoP.
fn check_every_node_acked(fleet: &Fleet, progress: &Value) -> anyhow::Result<()> {
    anyhow::ensure!(progress["complete"] == true, "not complete: {progress}");
    anyhow::ensure!(progress["pending"] == json!([]), "pending: {progress}");
    for node in fleet.nodes() {
        let entry = &progress["nodes"][node.name()];
        anyhow::ensure!(entry["acked"] == true, "{} did not ack: {progress}", node.name());
        anyhow::ensure!(entry["ms"].as_u64().is_some(), "{} has no time: {progress}", node.name());
    }
    anyhow::ensure!(progress["pops"]["fra"]["nodes"] == 3 && progress["pops"]["fra"]["acked"] == 3, "{progress}");
    anyhow::ensure!(progress["pops"]["iad"]["nodes"] == 1 && progress["pops"]["iad"]["acked"] == 1, "{progress}");
    Ok(())
}

#[tokio::test]
async fn a_service_created_through_the_api_is_served_by_every_node() -> anyhow::Result<()> {
    let fleet = Fleet::start(FleetSpec::two_pops()).await?;
    fleet.origin.route("/", cacheable("home"));
    let created = fleet.create_shop(json!({})).await?;
    let version = created["version"].as_u64().unwrap_or_default();
    assert!(version > 0, "{created}");

    for edge in &fleet.edges {
        let resp = edge.get("shop.test", "/").await?;
        assert_eq!((resp.status.as_u16(), resp.text().as_str()), (200, "home"), "{}", edge.name());
        assert!(resp.cache_status().hit(), "{}: {}", edge.name(), resp.summary());
    }
    // Every edge missed once and asked the shield, which asked the origin once.
    assert_eq!(fleet.origin.count("/"), 1, "the shield applied the service too, and collapsed the edges' misses");

    for node in fleet.nodes() {
        wait_metric(node, "outpost_control_applied_seq", |v| v >= version as f64).await?;
        wait_metric(node, "outpost_control_acked_seq", |v| v >= version as f64).await?;
        wait_metric(node, "outpost_control_connected", |v| v == 1.0).await?;
    }
    let nodes = json(&fleet.cp.call(Method::GET, "/v1/nodes", Some(OPERATOR), "").await?)?;
    for (name, pop, role) in [
        ("edge-fra-1", "fra", "edge"),
        ("edge-fra-2", "fra", "edge"),
        ("edge-iad-1", "iad", "edge"),
        ("shield-1", "fra", "shield"),
    ] {
        let list = nodes["nodes"].as_array().cloned().unwrap_or_default();
        let node = list.iter().find(|n| n["id"] == name);
        let node = node.ok_or_else(|| anyhow::anyhow!("{name} not registered: {nodes}"))?;
        assert_eq!((node["pop"].as_str(), node["role"].as_str()), (Some(pop), Some(role)), "{node}");
        assert_eq!(node["live"], true, "{node}");
        assert!(node["acked"].as_u64() >= Some(version), "{node}");
        assert!(node["addresses"]["admin"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{node}");
    }

    // A change to the service reaches every node: a new host.
    let put = json!({"hosts": ["shop.test", "www.shop.test"], "origin": fleet.origin.url(),
        "shields": [{"url": fleet.shield.as_ref().map(|s| s.url()), "pop": "fra"}]});
    let resp = fleet.cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), &put.to_string()).await?;
    assert!(resp.status.is_success(), "{}", resp.text());
    for edge in &fleet.edges {
        assert_eq!(wait_served(edge, "www.shop.test", "/").await?, 200, "{}", edge.name());
    }
    // And a delete takes it away.
    let resp = fleet.cp.call(Method::DELETE, "/v1/services/shop", Some(TENANT_TOKEN), "").await?;
    assert!(resp.status.is_success(), "{}", resp.text());
    for edge in &fleet.edges {
        let start = std::time::Instant::now();
        while edge.get("shop.test", "/").await?.status != 404 {
            anyhow::ensure!(start.elapsed() < Duration::from_secs(15), "{} still serves shop", edge.name());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

#[tokio::test]
async fn purges_of_every_kind_reach_every_node_and_wait_lists_them() -> anyhow::Result<()> {
    let fleet = Fleet::start(FleetSpec::two_pops()).await?;
    fleet.origin.route("/", cacheable("home"));
    fleet.origin.route("/a", cacheable("a"));
    fleet.origin.route("/img/1", cacheable("img 1"));
    fleet.origin.route("/img/2", cacheable("img 2"));
    fleet.origin.route("/tagged", cacheable("tagged").header("surrogate-key", "t1 t2"));
    fleet.origin.route("/keep", cacheable("keep"));
    fleet.create_shop(json!({})).await?;
    let paths = ["/a", "/img/1", "/img/2", "/tagged", "/keep"];
    for edge in &fleet.edges {
        for path in paths {
            warm(edge, path).await?;
        }
    }
    for path in paths {
        assert_eq!(fleet.origin.count(path), 1, "{path}: one fetch for the whole fleet");
    }

    // (route, soft (Fastly-Soft-Purge: 1), body, paths it purges): ours, then the Fastly and
    // Cloudflare shapes, each with `wait=true`.
    let native = "/v1/services/shop/purge";
    let all: &[&str] = &["/", "/a", "/img/1", "/img/2", "/tagged", "/keep"];
    let cases: [(&str, bool, Value, &[&str]); 7] = [
        (native, false, json!({"urls": ["http://shop.test/a"]}), &["/a"]),
        (native, false, json!({"prefixes": ["shop.test/img/"]}), &["/img/1", "/img/2"]),
        (native, false, json!({"tags": ["t2"]}), &["/tagged"]),
        (native, false, json!({"all": true}), all),
        ("/service/shop/purge/t1", true, json!(null), &["/tagged"]),
        ("/zones/shop/purge_cache", false, json!({"files": ["https://shop.test/keep"]}), &["/keep"]),
        ("/zones/shop/purge_cache", false, json!({"hosts": ["shop.test"]}), all),
    ];
    for (route, soft, body, purged) in cases {
        let before: Vec<usize> = paths.iter().map(|p| fleet.origin.count(p)).collect();
        let mut req = Req::new(Method::POST, "control-plane", &format!("{route}?wait=true"))
            .header("authorization", format!("Bearer {TENANT_TOKEN}"));
        if soft {
            req = req.header("fastly-soft-purge", "1");
        }
        if !body.is_null() {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        let resp = fleet.cp.send(req).await?;
        let progress = json(&resp)?;
        anyhow::ensure!(resp.status == 200, "{route} {body} answered {}: {progress}", resp.status);
        anyhow::ensure!(progress["soft"] == soft, "{route}: {progress}");
        check_every_node_acked(&fleet, &progress)?;
        for edge in &fleet.edges {
            for path in paths {
                let resp = edge.get("shop.test", path).await?;
                assert_eq!(resp.status, 200, "{body}: {} {path}: {}", edge.name(), resp.summary());
                // The shield passed the tags on to the edge; the edge keeps them from the client.
                assert!(!resp.has("surrogate-key"), "{body}: {} {path}: {}", edge.name(), resp.summary());
                let expect_hit = !purged.contains(&path);
                assert_eq!(resp.cache_status().hit(), expect_hit, "{body}: {} {path}: {}", edge.name(), resp.summary());
            }
        }
        for (path, before) in paths.iter().zip(before) {
            // The shield purged too: exactly one refetch from the origin per purged object.
            let refetched = usize::from(purged.contains(path));
            assert_eq!(fleet.origin.count(path), before + refetched, "{body}: {path}");
        }
    }

    // The control plane's metrics (operator only) count the purges and show every node at the
    // head of the log.
    let resp = fleet.cp.call(Method::GET, "/metrics", Some(OPERATOR), "").await?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    let sample = |line: &str| text.lines().find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse::<u64>().ok());
    assert_eq!(sample("outpost_cp_purges_total"), Some(7), "{text}");
    let head = sample("outpost_cp_head_seq").unwrap_or_default();
    assert!(head >= 8, "a service and seven purges: {text}");
    for node in fleet.nodes() {
        let pop = if node.name().contains("iad") { "iad" } else { "fra" };
        let acked = sample(&format!("outpost_cp_node_acked_seq{{node=\"{}\",pop=\"{pop}\"}}", node.name()));
        assert_eq!(acked, Some(head), "{}: {text}", node.name());
    }
    assert_eq!(sample("outpost_cp_nodes{state=\"live\"}"), Some(4), "{text}");
    let tenant = fleet.cp.call(Method::GET, "/metrics", Some(TENANT_TOKEN), "").await?;
    assert_eq!(tenant.status, 403, "{}", tenant.text());
    Ok(())
}

#[tokio::test]
async fn a_soft_purge_serves_stale_while_revalidating() -> anyhow::Result<()> {
    let fleet = Fleet::start(FleetSpec::one_edge()).await?;
    fleet.origin.route("/", cacheable("home"));
    fleet.origin.route(
        "/page",
        Reply::ok("page v1").cache_control("max-age=600, stale-while-revalidate=600").etag("\"v1\"").conditional(),
    );
    fleet.create_shop(json!({})).await?;
    let edge = &fleet.edges[0];
    warm(edge, "/page").await?;

    let progress = fleet.purge(json!({"urls": ["shop.test/page"], "soft": true})).await?;
    assert_eq!(progress["soft"], true, "{progress}");
    assert_eq!(progress["nodes"]["edge-fra-1"]["acked"], true, "{progress}");
    let stale = edge.get("shop.test", "/page").await?;
    assert_eq!((stale.status.as_u16(), stale.text().as_str()), (200, "page v1"), "{}", stale.summary());
    let status = stale.cache_status();
    assert!(status.hit(), "served from cache while revalidating: {}", stale.summary());
    assert_eq!(status.detail(), Some("stale-while-revalidate"), "{}", stale.summary());
    fleet.origin.wait_for_count("/page", 2, Duration::from_secs(10)).await?;
    assert_eq!(
        fleet.origin.last("/page")?.header("if-none-match"),
        Some("\"v1\""),
        "a soft purge revalidates, it does not refetch"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_down_during_a_purge_catches_up_when_it_comes_back() -> anyhow::Result<()> {
    let mut fleet = two_pops_with_a_warm().await?;
    let iad = fleet.edges.len() - 1;
    fleet.edges[iad].stop().await?;

    // The purge completes without the node that is down once it has been gone longer than
    // nodes.offline_after (2 s in the fleet): it is listed as offline, not waited for.
    let progress = fleet.purge(json!({"urls": ["shop.test/a"]})).await?;
    let id = progress["id"].as_str().unwrap_or_default().to_owned();
    assert!(progress["pending"] == json!([]), "{progress}");
    assert_eq!(progress["offline"], json!(["edge-iad-1"]), "{progress}");
    let snapshots = fleet.edges[iad].stderr_text().matches("snapshot from the control plane").count();

    fleet.edges[iad].restart().await?;
    let start = std::time::Instant::now();
    loop {
        let status = json(&fleet.cp.call(Method::GET, &format!("/v1/purges/{id}"), Some(OPERATOR), "").await?)?;
        if status["nodes"]["edge-iad-1"]["acked"] == true {
            break;
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(15), "edge-iad-1 never acked: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let edge = &fleet.edges[iad];
    let resp = edge.get("shop.test", "/a").await?;
    let statuses = resp.cache_statuses();
    let (shield, edge_status) = (statuses.first(), statuses.last());
    let missed = |s: Option<&outpost_tests::CacheStatus>, node: &str| s.is_some_and(|s| s.node == node && !s.hit());
    assert!(missed(edge_status, "edge-iad-1"), "purged on the node that was down: {}", resp.summary());
    assert!(missed(shield, "shield-1"), "and on the shield: {}", resp.summary());
    assert_eq!(fleet.origin.count("/a"), 2);
    // It resumed from the number it had saved: no snapshot, the missed event alone.
    assert_eq!(
        edge.stderr_text().matches("snapshot from the control plane").count(),
        snapshots,
        "{}",
        edge.stderr_text()
    );
    Ok(())
}

/// A node that lost its control state (deleted here; an unreadable one is set aside) but kept
/// its disk cache cannot know which purges it missed: its first snapshot soft-purges every
/// service, so an object purged while it was down is not served as it was.
#[tokio::test]
async fn a_node_that_lost_its_state_does_not_serve_what_was_purged_meanwhile() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(FleetSpec::one_edge()).await?;
    fleet.origin.route("/", cacheable("home"));
    fleet.origin.route("/a", cacheable("a"));
    fleet.create_shop(json!({})).await?;
    let edge = &mut fleet.edges[0];
    edge.get("shop.test", "/a").await?;
    assert!(edge.get("shop.test", "/a").await?.cache_status().hit());
    edge.stop().await?;

    let progress = fleet.purge(json!({"urls": ["shop.test/a"]})).await?;
    assert!(progress["pending"] == json!([]), "{progress}");
    let edge = &mut fleet.edges[0];
    std::fs::remove_file(edge.dir().join("cache").join("control-state.json"))?;
    edge.restart().await?;
    wait_served(edge, "shop.test", "/").await?;
    let resp = edge.get("shop.test", "/a").await?;
    assert_eq!(resp.text(), "a");
    assert!(!resp.cache_status().hit(), "not served as cached before the purge: {}", resp.summary());
    assert_eq!(fleet.origin.count("/a"), 2, "asked the origin again");
    Ok(())
}

#[tokio::test]
async fn a_node_restarted_while_the_control_plane_is_down_serves_its_last_state() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(FleetSpec::one_edge()).await?;
    fleet.origin.route("/", cacheable("home"));
    fleet.origin.route("/fresh", Reply::ok("fresh").cache_control("no-store"));
    fleet.create_shop(json!({})).await?;
    wait_metric(&fleet.edges[0], "outpost_control_acked_seq", |v| v >= 1.0).await?;

    fleet.cp.stop().await?;
    fleet.edges[0].restart().await?;
    let edge = &fleet.edges[0];
    // Served from the state on disk, the origin reached for what is not cached.
    let resp = edge.get("shop.test", "/fresh").await?;
    assert_eq!((resp.status.as_u16(), resp.text().as_str()), (200, "fresh"), "{}", resp.summary());
    assert_eq!(fleet.origin.count("/fresh"), 1);
    assert_eq!(edge.get("shop.test", "/").await?.status, 200);
    assert_eq!(metric_value(edge, "outpost_control_connected").await?, 0.0);

    fleet.restart_control_plane().await?;
    wait_metric(&fleet.edges[0], "outpost_control_connected", |v| v == 1.0).await?;
    Ok(())
}

async fn metric_value(node: &EdgeNode, name: &str) -> anyhow::Result<f64> {
    metric(node, name).await?.ok_or_else(|| anyhow::anyhow!("no {name} on {}", node.name()))
}

/// A control plane whose store was made anew (lost, restored from nothing) numbers its events
/// from 1 again. A node that followed the old log must not take the new numbers for the old:
/// here the new log's purge of `/a` has a number the node had already passed, and the node
/// sees that the log is another one (its identity), starts over from a snapshot, and the
/// snapshot's resync keeps it from serving `/a` as cached.
#[tokio::test]
async fn a_node_does_not_take_a_new_log_for_the_one_it_followed() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(FleetSpec::one_edge()).await?;
    fleet.origin.route("/", cacheable("home"));
    fleet.origin.route("/a", cacheable("a"));
    fleet.create_shop(json!({})).await?;
    for tag in ["x", "y", "z"] {
        fleet.purge(json!({"tags": [tag]})).await?;
    }
    let edge = &mut fleet.edges[0];
    edge.get("shop.test", "/a").await?;
    assert!(edge.get("shop.test", "/a").await?.cache_status().hit());
    edge.stop().await?;

    // The store is lost: a new one, whose head passes the node's number (4).
    fleet.cp.stop().await?;
    std::fs::remove_file(fleet.cp.dir().join("control-plane.redb"))?;
    fleet.restart_control_plane().await?;
    let config = json!({"hosts": ["shop.test"], "origin": fleet.origin.url()}).to_string();
    let resp = fleet.cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), &config).await?;
    anyhow::ensure!(resp.status.is_success(), "PUT: {} {}", resp.status, resp.text());
    let purge = |body: Value| {
        let cp = &fleet.cp;
        async move { cp.call(Method::POST, "/v1/services/shop/purge", Some(TENANT_TOKEN), &body.to_string()).await }
    };
    let purged = json(&purge(json!({"urls": ["shop.test/a"]})).await?)?;
    assert_eq!(purged["seq"], 2, "{purged}");
    for tag in ["p", "q", "r"] {
        purge(json!({"tags": [tag]})).await?;
    }

    let edge = &mut fleet.edges[0];
    edge.restart().await?;
    wait_metric(edge, "outpost_control_applied_seq", |v| v >= 5.0).await?;
    let resp = edge.get("shop.test", "/a").await?;
    assert_eq!(resp.text(), "a");
    assert!(!resp.cache_status().hit(), "/a was purged in the new log: {}", resp.summary());
    assert_eq!(fleet.origin.count("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn a_restarted_control_plane_loses_nothing_and_nodes_reconnect() -> anyhow::Result<()> {
    let mut fleet = two_pops_with_a_warm().await?;
    let first = fleet.purge(json!({"tags": ["none"]})).await?;
    check_every_node_acked(&fleet, &first)?;
    let snapshots = |fleet: &Fleet| -> Vec<usize> {
        fleet.nodes().map(|n| n.stderr_text().matches("snapshot from the control plane").count()).collect()
    };
    let snapshots_before = snapshots(&fleet);

    fleet.restart_control_plane().await?;
    let services = json(&fleet.cp.call(Method::GET, "/v1/services/shop", Some(TENANT_TOKEN), "").await?)?;
    assert_eq!(services["id"], "shop", "{services}");
    let before = json(
        &fleet
            .cp
            .call(Method::GET, &format!("/v1/purges/{}", first["id"].as_str().unwrap_or("")), Some(OPERATOR), "")
            .await?,
    )?;
    assert_eq!(before["seq"], first["seq"], "{before}");
    for node in fleet.nodes() {
        wait_metric(node, "outpost_control_reconnects_total", |v| v >= 1.0).await?;
        wait_metric(node, "outpost_control_connected", |v| v == 1.0).await?;
    }
    // Every node is live again and takes new events: a purge waits for all of them.
    let progress = fleet.purge(json!({"urls": ["shop.test/a"]})).await?;
    check_every_node_acked(&fleet, &progress)?;
    for edge in &fleet.edges {
        assert!(!edge.get("shop.test", "/a").await?.cache_status().hit(), "{}", edge.name());
    }
    assert_eq!(fleet.origin.count("/a"), 2);
    // The log survived the restart: every node resumed from its number, none needed a snapshot.
    assert_eq!(snapshots(&fleet), snapshots_before);
    Ok(())
}

#[tokio::test]
async fn a_control_plane_service_that_clashes_with_the_file_is_left_out_and_the_rest_apply() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    let origin = Origin::start().await?;
    origin.route("/", cacheable("from the origin"));
    // The node's own file serves shop.test under another name.
    let file_service = ServiceSpec::new("legacy", &["shop.test"], origin.url()).default_ttl("1m");
    let edge = EdgeNode::start(follower("edge-fra-1", "fra", "eu-central", cp.addr()).service(file_service)).await?;
    for (id, host) in [("shop", "shop.test"), ("news", "news.test")] {
        let body = json!({"hosts": [host], "origin": origin.url()}).to_string();
        let resp = cp.call(Method::PUT, &format!("/v1/services/{id}"), Some(TENANT_TOKEN), &body).await?;
        assert!(resp.status.is_success(), "{}", resp.text());
    }
    assert_eq!(wait_served(&edge, "news.test", "/").await?, 200, "the other service applies");
    wait_metric(&edge, "outpost_control_rejected_services", |v| v == 1.0).await?;
    // No earlier version ran here, so none stands in for it.
    let rejected = edge.stderr_text();
    assert!(
        rejected.contains("control-plane service version not applied on this node")
            && rejected.contains("none: the service is left out"),
        "{rejected}"
    );
    // The file's service keeps the host.
    let resp = edge.get("shop.test", "/").await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let line = edge.access_log_for(resp.request_id().unwrap_or_default()).await?;
    assert_eq!(line["service"], "legacy", "{line}");
    // The events were applied all the same: the node acknowledged them.
    wait_metric(&edge, "outpost_control_acked_seq", |v| v >= 2.0).await?;
    Ok(())
}
