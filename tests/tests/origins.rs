//! Several origins per service: failover groups (primary, then backup, as CloudFront origin
//! groups), balancing within a group, retries of a failed try on another origin, and the
//! service's max_stale_on_error.

use bytes::Bytes;
use outpost_tests::{Chunk, EdgeNode, NodeConfig, Origin, Reply, ServiceSpec, refused_addr};

/// Requests under /p/ (health probes go to "/").
fn served(o: &Origin) -> usize {
    o.counts().iter().filter(|(path, _)| path.starts_with("/p/")).map(|(_, n)| n).sum()
}

fn two_origins(primary: &str, backup: &str) -> ServiceSpec {
    ServiceSpec::new("shop", &["shop.test"], "unused").origins(vec![(primary.to_string(), 0), (backup.to_string(), 1)])
}

#[tokio::test]
async fn the_backup_group_takes_over_when_the_primary_refuses() -> anyhow::Result<()> {
    // The primary is down from the start: each miss tries it, fails to connect, and is retried
    // on the backup; once its breaker opens, misses go straight to the backup.
    let dead = refused_addr().await?;
    let backup = Origin::start().await?;
    backup.route_prefix("/p/", |req| Reply::ok(format!("backup {}", req.path)).cache_control("no-store"));
    let service = two_origins(&format!("http://{dead}"), &backup.url()).passive(2, "30s").retry(2);
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    for i in 0..6 {
        let resp = node.get("shop.test", &format!("/p/{i}")).await?;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.summary());
        assert_eq!(resp.text(), format!("backup /p/{i}"));
    }
    assert_eq!(served(&backup), 6, "every request reached the backup exactly once");
    let upstreams = node.admin(http::Method::GET, "/upstreams", "").await?;
    let text = upstreams.text();
    assert!(text.contains("\"breaker\":\"open\""), "the dead primary's breaker is open: {text}");
    Ok(())
}

#[tokio::test]
async fn the_primary_group_is_preferred_while_it_works() -> anyhow::Result<()> {
    let primary = Origin::start().await?;
    let backup = Origin::start().await?;
    for o in [&primary, &backup] {
        o.route_prefix("/p/", |_| Reply::ok("x").cache_control("no-store"));
    }
    let node = EdgeNode::start(NodeConfig::with_service(two_origins(&primary.url(), &backup.url()))).await?;
    for i in 0..5 {
        assert_eq!(node.get("shop.test", &format!("/p/{i}")).await?.status, 200);
    }
    assert_eq!(served(&primary), 5);
    assert_eq!(served(&backup), 0, "the backup group is only for when the primary fails");
    Ok(())
}

#[tokio::test]
async fn round_robin_spreads_misses_over_one_group() -> anyhow::Result<()> {
    let a = Origin::start().await?;
    let b = Origin::start().await?;
    for o in [&a, &b] {
        o.route_prefix("/p/", |_| Reply::ok("x").cache_control("no-store"));
    }
    let service = ServiceSpec::new("shop", &["shop.test"], "unused").origins(vec![(a.url(), 0), (b.url(), 0)]);
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    for i in 0..10 {
        assert_eq!(node.get("shop.test", &format!("/p/{i}")).await?.status, 200);
    }
    assert_eq!(served(&a) + served(&b), 10);
    assert_eq!(served(&a), 5, "round robin: a={} b={}", served(&a), served(&b));
    Ok(())
}

#[tokio::test]
async fn max_stale_on_error_serves_stale_without_stale_if_error() -> anyhow::Result<()> {
    let mut origin = Origin::start().await?;
    origin.route("/page", Reply::ok("kept").cache_control("max-age=10").header("age", "15"));
    origin.route("/strict", Reply::ok("strict").cache_control("max-age=10, must-revalidate").header("age", "15"));
    let mut service = ServiceSpec::new("shop", &["shop.test"], origin.url());
    service.extra.push("max_stale_on_error = \"1h\"".to_string());
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    node.prime("shop.test", "/page").await?;
    node.prime("shop.test", "/strict").await?;
    origin.stop().await;
    let stale = node.get("shop.test", "/page").await?;
    assert_eq!(stale.status, 200, "{}", stale.summary());
    assert_eq!(stale.text(), "kept");
    assert_eq!(stale.cache_status().detail(), Some("stale-if-error"), "{}", stale.cache_status().raw);
    // must-revalidate wins over the service's setting (RFC 9111 §5.2.2.2).
    let strict = node.get("shop.test", "/strict").await?;
    assert!(strict.status.is_server_error(), "must-revalidate must not be served stale: {}", strict.summary());
    Ok(())
}

#[tokio::test]
async fn a_slow_drip_origin_is_cut_off_at_the_total_timeout() -> anyhow::Result<()> {
    // Every chunk arrives well within between_bytes_timeout, but the whole response does not
    // finish within total_timeout: the client sees it cut off and nothing is stored.
    let origin = Origin::start().await?;
    let mut chunks = Vec::new();
    for _ in 0..8 {
        chunks.push(Chunk::Data(Bytes::from_static(b"drip ")));
        chunks.push(Chunk::Sleep(std::time::Duration::from_millis(200)));
    }
    origin.route("/drip", Reply::ok("").cache_control("max-age=60").header("content-length", "40").chunks(chunks));
    let mut service = ServiceSpec::new("shop", &["shop.test"], origin.url());
    service.extra.push("between_bytes_timeout = \"1s\"".to_string());
    service.extra.push("total_timeout = \"700ms\"".to_string());
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    // 40 bytes is within cache.buffer_before_answer: read whole before the answer, so the client
    // gets a clean 504 saying what happened (issue 18), not a 200 cut off.
    let first = node.get("shop.test", "/drip").await?;
    assert_eq!(first.status, 504, "a dripping body was delivered: {}", first.summary());
    assert_eq!(first.cache_status().detail(), Some("upstream-body-timeout"), "{}", first.summary());
    let second = node.get("shop.test", "/drip").await;
    if let Ok(resp) = second {
        assert!(!resp.cache_status().hit(), "a cut-off body was stored: {}", resp.summary());
    }
    assert_eq!(origin.count("/drip"), 2, "the second request went to the origin again");
    Ok(())
}
