//! A failure the client caused is the client's error (issue 18): a request body that breaks off
//! or is malformed is logged as 499 / 400 and never counts against the origin's circuit breaker;
//! `OPTIONS *` is answered by the node itself.

use std::time::Duration;

use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, ServiceSpec, eventually, raw_exchange};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A breaker that opens after 2 consecutive failures, for 30 s; no retries, no probes.
async fn shop_with_a_touchy_breaker() -> anyhow::Result<(Origin, EdgeNode)> {
    let origin = Origin::start().await?;
    origin.route("/upload", Reply::ok("stored"));
    origin.route("/page", Reply::ok("page"));
    let service =
        ServiceSpec::new("shop", &["shop.test"], origin.url()).without_health_checks().passive(2, "30s").retry(0);
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    Ok((origin, node))
}

fn logged_with(node: &EdgeNode, status: u64) -> usize {
    node.access_log().iter().filter(|l| l.get("status").and_then(|s| s.as_u64()) == Some(status)).count()
}

/// Sends a POST head and part of its declared body, then closes the connection.
async fn post_and_hang_up(node: &EdgeNode) -> anyhow::Result<()> {
    let mut tcp = TcpStream::connect(node.http_addr()).await?;
    tcp.write_all(b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 100\r\n\r\nonly ten b").await?;
    tcp.flush().await?;
    drop(tcp);
    Ok(())
}

#[tokio::test]
async fn broken_request_bodies_do_not_open_the_breaker() -> anyhow::Result<()> {
    let (origin, node) = shop_with_a_touchy_breaker().await?;
    // RFC 9112 §8: a message whose connection closes before its Content-Length is incomplete.
    for n in 1..=5 {
        post_and_hang_up(&node).await?;
        let logged = eventually(Duration::from_secs(10), || logged_with(&node, 499) >= n).await;
        assert!(logged, "aborted upload {n} not logged as 499:\n{}", node.stdout_text());
    }
    // RFC 9112 §7.1: a chunk size that is not hex is a framing error: 400.
    let bad_chunk =
        b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";
    for _ in 0..5 {
        let resp = raw_exchange(node.http_addr(), bad_chunk).await?;
        assert_eq!(resp.status, 400, "{}", resp.head);
    }
    // The origin did nothing wrong: its breaker is closed and it serves.
    let page = node.get("shop.test", "/page").await?;
    assert_eq!(page.status, 200, "{}\n{}", page.summary(), node.stderr_text());
    assert_eq!(page.text(), "page");
    let upload = node.send(outpost_tests::Req::post("shop.test", "/upload").body("whole")).await?;
    assert_eq!(upload.status, 200, "{}", upload.summary());
    assert!(origin.count("/page") >= 1);
    Ok(())
}

#[tokio::test]
async fn options_asterisk_is_answered_by_the_node() -> anyhow::Result<()> {
    let (origin, node) = shop_with_a_touchy_breaker().await?;
    // RFC 9110 §9.3.7 / RFC 9112 §3.2.4: `OPTIONS *` is about the server, not a resource.
    for _ in 0..5 {
        let resp =
            raw_exchange(node.http_addr(), b"OPTIONS * HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
                .await?;
        assert_eq!(resp.status, 200, "{}", resp.head);
        let allow = resp.header("allow").unwrap_or_default();
        assert!(allow.contains("GET") && allow.contains("OPTIONS"), "{}", resp.head);
    }
    // The asterisk form is for OPTIONS only.
    let get = raw_exchange(node.http_addr(), b"GET * HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n").await?;
    assert_eq!(get.status, 400, "{}", get.head);
    assert_eq!(origin.total(), 0, "the origin was asked: {:?}", origin.requests());
    let page = node.get("shop.test", "/page").await?;
    assert_eq!(page.status, 200, "{}", page.summary());
    Ok(())
}

#[tokio::test]
async fn a_client_too_slow_with_its_body_gets_408_and_the_breaker_stays_closed() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/upload", Reply::ok("stored"));
    origin.route("/page", Reply::ok("page"));
    let service =
        ServiceSpec::new("shop", &["shop.test"], origin.url()).without_health_checks().passive(2, "30s").retry(0);
    let node = EdgeNode::start(NodeConfig::with_service(service).timeouts("2s", "1s")).await?;
    // Ten bytes of a declared hundred, then nothing: the upstream is waiting on the client.
    let stalled = b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 100\r\n\r\nonly ten b";
    let addr = node.http_addr();
    let uploads: Vec<_> = (0..3).map(|_| tokio::spawn(raw_exchange(addr, stalled))).collect();
    for upload in uploads {
        let resp = upload.await??;
        assert_eq!(resp.status, 408, "{}", resp.head);
    }
    let page = node.get("shop.test", "/page").await?;
    assert_eq!(page.status, 200, "{}", page.summary());
    Ok(())
}
