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
