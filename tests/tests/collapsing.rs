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
async fn private_responses_are_never_shared_between_waiting_clients() -> anyhow::Result<()> {
    // Ten users ask at once for a page the origin personalises by cookie and marks private.
    // Whatever the node does while the first fetch is in flight, no user may get another's page.
    let (origin, node) = shop().await?;
    origin.route_fn("/account", |req| {
        let user = req.header("cookie").unwrap_or("user=nobody").trim_start_matches("user=").to_string();
        Reply::ok(format!("account of {user}")).cache_control("private").delay(Duration::from_millis(200))
    });
    let addr = node.http_addr();
    let mut clients = JoinSet::new();
    for user in 0..10 {
        clients.spawn(async move {
            let resp =
                client::send(addr, &Req::get("shop.test", "/account").header("cookie", format!("user={user}"))).await;
            (user, resp)
        });
    }
    while let Some(result) = clients.join_next().await {
        let (user, resp) = result?;
        let resp = resp?;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.text(), format!("account of {user}"), "user {user} got someone else's private page");
    }
    assert_eq!(origin.count("/account"), 10);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_a_stale_object_make_one_revalidation() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route_fn("/stale", |req| {
        if req.header("if-none-match").is_some() {
            Reply::status(304).etag("\"x\"").cache_control("max-age=60").delay(Duration::from_millis(300))
        } else {
            Reply::ok("stale body").etag("\"x\"").cache_control("max-age=10").header("age", "15")
        }
    });
    node.prime("shop.test", "/stale").await?;
    let addr = node.http_addr();
    let mut clients = JoinSet::new();
    for _ in 0..20 {
        clients.spawn(async move { client::send(addr, &Req::get("shop.test", "/stale")).await });
    }
    while let Some(result) = clients.join_next().await {
        let resp = result??;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.text(), "stale body");
    }
    assert_eq!(origin.count("/stale"), 2, "one fill and one revalidation");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_requests_are_not_answered_with_each_others_responses() -> anyhow::Result<()> {
    // RFC 9111 §3.5: a response to an Authorization request is not reusable (no public/s-maxage
    // here), so collapsing them would hand one user's answer to another.
    let (origin, node) = shop().await?;
    origin.route_fn("/me", |req| {
        let who = req.header("authorization").unwrap_or("anonymous").to_string();
        Reply::ok(format!("profile for {who}")).cache_control("max-age=60").delay(Duration::from_millis(200))
    });
    let addr = node.http_addr();
    let mut clients = JoinSet::new();
    for user in 0..10 {
        clients.spawn(async move {
            let token = format!("Bearer user-{user}");
            let resp = client::send(addr, &Req::get("shop.test", "/me").header("authorization", token.clone())).await;
            (token, resp)
        });
    }
    while let Some(result) = clients.join_next().await {
        let (token, resp) = result?;
        let resp = resp?;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.text(), format!("profile for {token}"), "another user's profile was served");
    }
    assert_eq!(origin.count("/me"), 10);
    Ok(())
}
