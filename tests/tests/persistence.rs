//! The cache and the purge log outlive the process: SIGTERM drains and flushes, a restart on the
//! same cache directory serves what was stored and still honours earlier purges.

use std::time::Duration;

use outpost_tests::{Reply, Req, client, shop};
use serde_json::json;

#[tokio::test]
async fn cached_object_survives_a_restart() -> anyhow::Result<()> {
    let (origin, mut node) = shop().await?;
    origin.route("/keep", Reply::ok("persisted body").cache_control("max-age=600").etag("\"k\""));
    let miss = node.get("shop.test", "/keep").await?;
    assert!(miss.cache_status().stored(), "{}", miss.summary());

    let status = node.stop().await?;
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    node.restart().await?;

    let hit = node.get("shop.test", "/keep").await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    assert_eq!(hit.text(), "persisted body");
    assert_eq!(hit.header("etag"), Some("\"k\""), "stored headers come back too");
    assert_eq!(origin.count("/keep"), 1, "the restarted node asked the origin again");
    Ok(())
}

#[tokio::test]
async fn purge_survives_a_restart() -> anyhow::Result<()> {
    let (origin, mut node) = shop().await?;
    origin.route("/p1", Reply::ok("one").cache_control("max-age=600"));
    origin.route("/p2", Reply::ok("two").cache_control("max-age=600"));
    node.get("shop.test", "/p1").await?;
    node.get("shop.test", "/p2").await?;
    node.purge(json!({"kind": "url", "url": "shop.test/p1"})).await?;

    node.restart().await?;
    let purged = node.get("shop.test", "/p1").await?;
    assert!(!purged.cache_status().hit(), "a purged object came back: {}", purged.summary());
    assert_eq!(origin.count("/p1"), 2);
    let kept = node.get("shop.test", "/p2").await?;
    assert!(kept.cache_status().hit(), "{}", kept.summary());
    assert_eq!(origin.count("/p2"), 1);
    Ok(())
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() -> anyhow::Result<()> {
    let (origin, mut node) = shop().await?;
    origin.route("/slow", Reply::ok("finished").delay(Duration::from_millis(700)));
    let addr = node.http_addr();
    let in_flight = tokio::spawn(async move { client::send(addr, &Req::get("shop.test", "/slow")).await });
    origin.wait_for_count("/slow", 1, Duration::from_secs(5)).await?;

    let status = node.stop().await?;
    let resp = in_flight.await??;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "finished");
    assert!(status.success(), "exit status {status}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed after shutdown");
    Ok(())
}

#[tokio::test]
async fn large_objects_and_variants_survive_a_restart() -> anyhow::Result<()> {
    let (origin, mut node) = shop().await?;
    let big: bytes::Bytes = (0..(2 * 1024 * 1024 + 5)).map(|i| (i % 253) as u8).collect::<Vec<u8>>().into();
    origin.route("/big", Reply::ok(big.clone()).cache_control("max-age=600"));
    origin.route_fn("/lang", |req| {
        let body = req.header("accept-language").unwrap_or("none").to_string();
        Reply::ok(body).cache_control("max-age=600").header("vary", "accept-language")
    });
    node.get("shop.test", "/big").await?;
    for lang in ["en", "fr"] {
        node.send(Req::get("shop.test", "/lang").header("accept-language", lang)).await?;
    }
    node.restart().await?;

    let hit = node.get("shop.test", "/big").await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    assert!(hit.body == big, "the large object came back corrupted ({} bytes)", hit.body.len());
    for lang in ["en", "fr"] {
        let resp = node.send(Req::get("shop.test", "/lang").header("accept-language", lang)).await?;
        assert!(resp.cache_status().hit(), "{lang}: {}", resp.summary());
        assert_eq!(resp.text(), lang);
    }
    assert_eq!(origin.count("/big"), 1);
    assert_eq!(origin.count("/lang"), 2);
    Ok(())
}

#[tokio::test]
async fn readyz_reports_draining_after_sigterm() -> anyhow::Result<()> {
    let (origin, mut node) = shop().await?;
    origin.route("/slow", Reply::ok("finished").delay(Duration::from_millis(1500)));
    let addr = node.http_addr();
    let in_flight = tokio::spawn(async move { client::send(addr, &Req::get("shop.test", "/slow")).await });
    origin.wait_for_count("/slow", 1, Duration::from_secs(5)).await?;
    node.terminate()?;
    let mut draining = None;
    for _ in 0..50 {
        match node.admin(http::Method::GET, "/readyz", "").await {
            Ok(resp) if resp.status == 503 => {
                draining = Some(resp);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => anyhow::bail!("the admin listener closed while requests drain: {e:#}"),
        }
    }
    assert!(draining.is_some(), "/readyz never answered 503 while draining");
    let resp = in_flight.await??;
    assert_eq!(resp.status, 200);
    assert!(node.wait_exit().await?.success());
    Ok(())
}

/// Found by the `purge_log` fuzz target: a purge log whose record carries the largest id (a
/// log edited by hand, or restored from another node's) made the node panic while replaying
/// it at start (`id + 1` overflowed; a release build wrapped the id to 0 instead and handed
/// out ids it had already used). The node must start, honour the record, and go on recording.
#[tokio::test]
async fn a_purge_log_holding_the_largest_id_still_opens() -> anyhow::Result<()> {
    let (origin, mut node) = shop().await?;
    origin.route("/p", Reply::ok("one").cache_control("max-age=600"));
    origin.route("/q", Reply::ok("two").cache_control("max-age=600"));
    node.get("shop.test", "/p").await?;
    node.get("shop.test", "/q").await?;
    let status = node.stop().await?;
    assert!(status.success(), "SIGTERM should exit 0, got {status}");

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let record = json!({
        "id": u64::MAX, "at_ms": now_ms, "service": "shop", "kind": "url", "value": "shop.test/p", "soft": false,
    });
    std::fs::write(node.dir().join("cache").join("purges.jsonl"), format!("{record}\n"))?;
    node.restart().await?;

    let purged = node.get("shop.test", "/p").await?;
    assert!(!purged.cache_status().hit(), "the record in the log applies: {}", purged.summary());
    // A purge after it gets an id too, and applies.
    node.purge(json!({"kind": "url", "url": "shop.test/q"})).await?;
    let q = node.get("shop.test", "/q").await?;
    assert!(!q.cache_status().hit(), "{}", q.summary());
    assert_eq!(origin.count("/q"), 2);
    Ok(())
}
