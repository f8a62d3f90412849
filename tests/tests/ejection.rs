//! The breaker never takes a service down by itself (issue 15): a single origin that fails for
//! a while is still sent every request (the ejection cap keeps the last usable upstream in, as
//! nginx never marks its last server down and Envoy's panic mode sends to ejected hosts), its
//! 5xx answers reach the client as they are, and with a second origin the failing one is
//! ejected while the good one serves everything.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use outpost_tests::{EdgeNode, NodeConfig, Origin, RawOrigin, Reply, Resp, ServiceSpec};

const HOST: &str = "shop.test";
/// The node's own answer when no upstream may be tried.
const NODE_503: &str = "no healthy upstream";

fn from_the_node(resp: &Resp) -> bool {
    resp.status == 503 && resp.text().contains(NODE_503)
}

/// The `breaker` field of `url`'s entry in `GET /upstreams`.
async fn breaker(node: &EdgeNode, url: &str) -> anyhow::Result<String> {
    let upstreams = node.upstreams().await?;
    let entry = upstreams["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["upstreams"].as_array())
        .flatten()
        .find(|u| u["url"].as_str().map(|s| s.trim_end_matches('/')) == Some(url))
        .ok_or_else(|| anyhow::anyhow!("no upstream {url}: {upstreams}"))?;
    Ok(entry["breaker"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_single_origin_that_drops_20_connections_is_reached_again_at_once() -> anyhow::Result<()> {
    // The breaker opens after 5 failures for 30 s. The origin drops its first 20 connections
    // before answering, then works: every request reaches it (20 x 502, never the node's own
    // 503), and the 21st is served by it.
    let origin = RawOrigin::dropping(20).await?;
    let service = ServiceSpec::new("shop", &[HOST], origin.url()).without_health_checks().passive(5, "30s");
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    for i in 0..20 {
        let resp = node.get(HOST, &format!("/drop/{i}")).await?;
        assert!(!from_the_node(&resp), "request {i} got the node's own 503: {}", resp.summary());
        assert_eq!(resp.status, 502, "request {i}: {}", resp.summary());
    }
    assert_eq!(origin.connections(), 20, "every failing request reached the origin");
    assert_eq!(breaker(&node, &origin.url()).await?, "open", "the breaker did open");
    let resp = node.get(HOST, "/back").await?;
    assert_eq!(resp.status, 200, "the request after the outage: {}", resp.summary());
    assert_eq!(resp.text(), "origin:/back");
    assert_eq!(breaker(&node, &origin.url()).await?, "closed", "a readmitted success closes the breaker");
    Ok(())
}

#[tokio::test]
async fn with_two_origins_the_dropping_one_is_ejected_and_the_good_one_serves_everything() -> anyhow::Result<()> {
    // Round robin over two origins; one drops every connection. Its failures are retried on
    // the good one, and after 3 of them its breaker opens: it hears nothing more.
    let bad = RawOrigin::dropping(usize::MAX).await?;
    let good = Origin::start().await?;
    good.route_prefix("/p/", |req| Reply::ok(format!("good {}", req.path)).cache_control("no-store"));
    let service = ServiceSpec::new("shop", &[HOST], "unused")
        .origins(vec![(bad.url(), 0), (good.url(), 0)])
        .without_health_checks()
        .passive(3, "30s")
        .retry(2);
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    for i in 0..20 {
        let resp = node.get(HOST, &format!("/p/{i}")).await?;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.summary());
        assert_eq!(resp.text(), format!("good /p/{i}"));
    }
    assert_eq!(bad.connections(), 3, "the bad origin got requests after its breaker opened");
    let served: usize = good.counts().iter().filter(|(p, _)| p.starts_with("/p/")).map(|(_, n)| n).sum();
    assert_eq!(served, 20, "the good origin served every request once");
    assert_eq!(breaker(&node, &bad.url()).await?, "open");
    Ok(())
}

#[tokio::test]
async fn a_single_origin_s_5xx_reaches_the_client_and_does_not_eject_it() -> anyhow::Result<()> {
    // The origin answers 503 ten times (more than the threshold of 3), then 200. Each 503 is
    // the origin's, with its body; the breaker stays closed (eject_on_5xx is off by default
    // with one origin), and the 11th request is served.
    let origin = Origin::start().await?;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    origin.route_fn("/flaky", move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 10 {
            Reply::status(503).cache_control("no-store").body("origin is failing\n")
        } else {
            Reply::ok("recovered").cache_control("no-store")
        }
    });
    let service = ServiceSpec::new("shop", &[HOST], origin.url()).without_health_checks().passive(3, "30s");
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    for i in 0..10 {
        let resp = node.get(HOST, "/flaky").await?;
        assert_eq!(resp.status, 503, "request {i}: {}", resp.summary());
        assert_eq!(resp.text(), "origin is failing\n", "request {i}: the origin's own answer");
    }
    assert_eq!(breaker(&node, &origin.url()).await?, "closed", "a 5xx from the only origin counted");
    let resp = node.get(HOST, "/flaky").await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(calls.load(Ordering::SeqCst), 11, "every request reached the origin");
    Ok(())
}

/// The `health` field of `url`'s entry in `GET /upstreams`.
async fn health(node: &EdgeNode, url: &str) -> anyhow::Result<String> {
    let upstreams = node.upstreams().await?;
    let entry = upstreams["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["upstreams"].as_array())
        .flatten()
        .find(|u| u["url"].as_str().map(|s| s.trim_end_matches('/')) == Some(url))
        .ok_or_else(|| anyhow::anyhow!("no upstream {url}: {upstreams}"))?;
    Ok(entry["health"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_single_origin_failing_its_health_checks_still_gets_the_requests() -> anyhow::Result<()> {
    // Envoy's panic threshold for active checks: the only origin's health path answers 500
    // while its real paths answer 200. Once the checks mark it down, requests still reach it
    // (never the node's own 503), and the panic is counted once.
    let origin = Origin::start().await?;
    origin.route("/health", Reply::status(500).body("sick\n"));
    origin.route_prefix("/p/", |req| Reply::ok(format!("served {}", req.path)).cache_control("no-store"));
    let service =
        ServiceSpec::new("shop", &[HOST], origin.url()).health("/health", "100ms", "100ms", 1, 1).with_health_checks();
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    let mut down = false;
    for _ in 0..500 {
        down = health(&node, &origin.url()).await? == "unhealthy";
        if down {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(down, "the health checks never marked the origin down");
    for i in 0..5 {
        let resp = node.get(HOST, &format!("/p/{i}")).await?;
        assert!(!from_the_node(&resp), "request {i} got the node's own 503: {}", resp.summary());
        assert_eq!(resp.status, 200, "request {i}: {}", resp.summary());
        assert_eq!(resp.text(), format!("served /p/{i}"));
    }
    let metrics = node.admin(http::Method::GET, "/metrics", "").await?.text();
    let panics: Vec<&str> = metrics.lines().filter(|l| l.starts_with("outpost_upstream_panics_total")).collect();
    assert_eq!(panics.len(), 1, "one panic series: {panics:?}");
    assert!(panics[0].ends_with(" 1"), "one panic episode, counted once: {panics:?}");
    Ok(())
}
