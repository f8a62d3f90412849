//! Request collapsing: concurrent misses for one key become one origin fetch.

use std::time::Duration;

use outpost_tests::{Reply, Req, client, shop};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_origin_request() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let body = "collapsed body ".repeat(1000);
    origin.route("/hot", Reply::ok(body.clone()).cache_control("max-age=60").delay(Duration::from_millis(300)));
    let addr = node.http_addr();
    let mut clients = JoinSet::new();
    for _ in 0..50 {
        clients.spawn(async move { client::send(addr, &Req::get("shop.test", "/hot")).await });
    }
    let mut collapsed = 0;
    let mut responses = 0;
    while let Some(result) = clients.join_next().await {
        let resp = result??;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.body.len(), body.len());
        assert!(resp.text() == body, "a collapsed client got a different body");
        if resp.cache_status().collapsed() {
            collapsed += 1;
        }
        responses += 1;
    }
    assert_eq!(responses, 50);
    assert_eq!(origin.count("/hot"), 1, "the origin saw more than one request");
    assert!(collapsed >= 1, "no response says it was collapsed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_clients_are_answered_when_the_response_is_not_storable() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/personal", Reply::ok("for you").cache_control("private").delay(Duration::from_millis(200)));
    let addr = node.http_addr();
    let mut clients = JoinSet::new();
    for _ in 0..10 {
        clients.spawn(async move { client::send(addr, &Req::get("shop.test", "/personal")).await });
    }
    while let Some(result) = clients.join_next().await {
        let resp = result??;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.text(), "for you");
    }
    assert!((1..=10).contains(&origin.count("/personal")));
    Ok(())
}
