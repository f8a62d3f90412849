//! A reused idle upstream connection that dies before any response byte (issue 15): the
//! origin closed it just as the node sent the next request on it. The request is sent once
//! more on a new connection when that is safe (an idempotent method, or a request the origin
//! provably never read: its connection was reset with the request unread, RFC 9293 §3.6.1),
//! and such a death never counts against the origin's circuit breaker.
//!
//! The origin answers the first request on each connection keep-alive and kills the second;
//! the node's pool may open a new connection instead of reusing one (it returns a connection
//! to the pool in the background), so each scenario sends until the origin killed a request,
//! within a bound.

use http::Method;
use outpost_tests::interim_origin::final_response;
use outpost_tests::{EdgeNode, InterimOrigin, Kill, NodeConfig, RawOrigin, Req, Resp, ServiceSpec, Step};

const HOST: &str = "shop.test";
/// Requests sent, at most, waiting for the node to reuse a connection the origin kills.
const ROUNDS: usize = 10;

/// A node in front of `origin`, whose breaker would open at the first counted failure.
async fn node_for(origin: &RawOrigin) -> anyhow::Result<EdgeNode> {
    let service = ServiceSpec::new("shop", &[HOST], origin.url()).without_health_checks().passive(1, "30s");
    EdgeNode::start(NodeConfig::with_service(service)).await
}

/// The `breaker` of the one upstream in `GET /upstreams`.
async fn breaker(node: &EdgeNode) -> anyhow::Result<String> {
    let upstreams = node.upstreams().await?;
    let state = upstreams["services"][0]["upstreams"][0]["breaker"].as_str().unwrap_or_default().to_string();
    Ok(state)
}

fn post(path: &str) -> Req {
    Req::post(HOST, path).header("content-type", "text/plain").body("order=42")
}

/// Sends `warm` then `req(i)` per round until the origin killed a request of `method`;
/// every response, in order, with the request it answered.
async fn until_killed(
    node: &EdgeNode,
    origin: &RawOrigin,
    method: &Method,
    req: impl Fn(usize) -> Req,
) -> anyhow::Result<Vec<(Req, Resp)>> {
    let mut seen = Vec::new();
    for i in 0..ROUNDS {
        let warm = Req::get(HOST, &format!("/warm/{i}"));
        seen.push((warm.clone(), node.send(warm).await?));
        let r = req(i);
        seen.push((r.clone(), node.send(r).await?));
        if origin.killed().iter().any(|k| k.method == method.as_str()) {
            return Ok(seen);
        }
    }
    anyhow::bail!("the node never reused a connection in {ROUNDS} rounds")
}

#[tokio::test]
async fn a_get_on_a_connection_closed_under_it_is_served_from_a_new_one() -> anyhow::Result<()> {
    for kill in [Kill::ReadAndClose, Kill::CloseUnread] {
        let origin = RawOrigin::closing_reused(usize::MAX, kill).await?;
        let node = node_for(&origin).await?;
        let seen = until_killed(&node, &origin, &Method::GET, |i| Req::get(HOST, &format!("/p/{i}"))).await?;
        for (req, resp) in &seen {
            assert_eq!(resp.status, 200, "{kill:?} {}: {}", req.path, resp.summary());
            assert_eq!(resp.text(), format!("origin:{}", req.path), "{kill:?}: the origin's own answer");
        }
        let killed = origin.killed();
        let served = origin.requests();
        for k in &killed {
            let again = served.iter().find(|r| r.target == k.target).map(|r| r.conn);
            assert!(again.is_some_and(|c| c != k.conn), "{kill:?} {}: served again on a new connection", k.target);
        }
        assert_eq!(breaker(&node).await?, "closed", "{kill:?}: a stale connection is no origin failure");
    }
    Ok(())
}

#[tokio::test]
async fn a_post_the_origin_never_read_is_sent_again() -> anyhow::Result<()> {
    // The connection is reset with the POST unread in the origin's socket: RFC 9293 §3.6.1's
    // "data was lost", so the POST was never applied and goes out again.
    let origin = RawOrigin::closing_reused(usize::MAX, Kill::CloseUnread).await?;
    let node = node_for(&origin).await?;
    let seen = until_killed(&node, &origin, &Method::POST, |i| post(&format!("/order/{i}"))).await?;
    for (req, resp) in &seen {
        assert_eq!(resp.status, 200, "{}: {}", req.path, resp.summary());
    }
    let killed: Vec<_> = origin.killed().into_iter().filter(|k| k.method == "POST").collect();
    for k in &killed {
        assert_eq!(k.header("content-length"), Some("8"), "the body was framed as sent");
        let served: Vec<_> = origin.requests().into_iter().filter(|r| r.target == k.target).collect();
        assert_eq!(served.len(), 1, "{}: served once, after the reset", k.target);
        assert_eq!(served[0].header("content-length"), Some("8"), "the replay carries the body");
    }
    assert_eq!(breaker(&node).await?, "closed");
    Ok(())
}

#[tokio::test]
async fn a_post_the_origin_read_and_dropped_is_not_sent_again() -> anyhow::Result<()> {
    // The origin read the whole POST and closed: it may have applied it (RFC 9110 §9.2.2), so
    // the client gets 502 and the origin never sees it twice. Still no breaker failure.
    let origin = RawOrigin::closing_reused(usize::MAX, Kill::ReadAndClose).await?;
    let node = node_for(&origin).await?;
    let seen = until_killed(&node, &origin, &Method::POST, |i| post(&format!("/order/{i}"))).await?;
    let killed: Vec<String> = origin.killed().into_iter().filter(|k| k.method == "POST").map(|k| k.target).collect();
    for (req, resp) in seen.iter().filter(|(r, _)| r.method == Method::POST) {
        let expected = if killed.contains(&req.path) { 502 } else { 200 };
        assert_eq!(resp.status, expected, "{}: {}", req.path, resp.summary());
    }
    let replayed = origin.requests().into_iter().filter(|r| killed.contains(&r.target)).count();
    assert_eq!(replayed, 0, "a POST the origin read is never sent again");
    assert_eq!(breaker(&node).await?, "closed", "nor does it count against the origin");
    Ok(())
}

#[tokio::test]
async fn twenty_stale_connections_in_a_row_cost_no_request() -> anyhow::Result<()> {
    // The origin closes 20 connections in a row under the node's next request (each answered
    // one request first); then it keeps connections alive. Every request is served by the origin and the
    // breaker (threshold 1) never opens.
    let origin = RawOrigin::closing_reused(20, Kill::ReadAndClose).await?;
    let node = node_for(&origin).await?;
    let mut i = 0;
    while origin.killed().len() < 20 {
        anyhow::ensure!(i < 200, "only {} connections killed after {i} requests", origin.killed().len());
        let resp = node.get(HOST, &format!("/p/{i}")).await?;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.summary());
        assert_eq!(resp.text(), format!("origin:/p/{i}"));
        i += 1;
    }
    let resp = node.get(HOST, "/after").await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(breaker(&node).await?, "closed");
    Ok(())
}

/// RFC 9113 §8.7: an HTTP/2 origin that resets a stream with REFUSED_STREAM did not process it,
/// so even a POST is sent again, once, on a new connection, and the refusal does not count
/// against the origin's breaker. (Before the node's own h2 client, the POST got a 502.)
#[tokio::test]
async fn a_post_an_http2_origin_refused_is_sent_again_on_a_new_connection() -> anyhow::Result<()> {
    let origin = InterimOrigin::start_h2().await?;
    origin.route("/order", vec![vec![Step::Refuse], vec![final_response(201, "Created", &[], "ok")]]);
    let service = ServiceSpec::new("shop", &[HOST], origin.url())
        .line("origin_protocol = \"http2\"")
        .without_health_checks()
        .passive(1, "30s");
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    let resp = node.send(post("/order")).await?;
    assert_eq!(resp.status, 201, "{}", resp.summary());
    assert_eq!(resp.text(), "ok");
    let tries = origin.requests();
    assert_eq!(tries.len(), 2, "refused once, then answered");
    assert_ne!(tries[0].conn, tries[1].conn, "the second try went on a new connection");
    assert_eq!(breaker(&node).await?, "closed", "a refusal is not the origin failing");
    let again = node.send(post("/order")).await?;
    assert_eq!(again.status, 201, "{}", again.summary());
    Ok(())
}
