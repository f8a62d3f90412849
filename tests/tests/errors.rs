//! Every error a client can meet (contracts.md "Error responses"): the status, the text body
//! naming the request id, the x-request-id header, and one access-log line per request.

use std::time::Duration;

use outpost_tests::{
    EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec, check_error, check_raw_error, eventually, raw_exchange,
    refused_addr, shop, shop_with,
};

#[tokio::test]
async fn unknown_host_is_404() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let resp = node.get("nobody.test", "/").await?;
    check_error(&resp, 404)?;
    let h2 = node.send(Req::get("nobody.test", "/").h2()).await?;
    check_error(&h2, 404)?;
    assert_eq!(origin.total(), 0);
    Ok(())
}

#[tokio::test]
async fn request_body_over_the_limit_is_413() -> anyhow::Result<()> {
    let (origin, node) = shop_with(|mut c| {
        c.max_request_body = "64KiB".into();
        c
    })
    .await?;
    origin.route("/upload", Reply::ok("stored"));

    let small = node.send(Req::post("shop.test", "/upload").body(vec![b'a'; 1000])).await?;
    assert_eq!(small.status, 200, "{}", small.summary());
    assert_eq!(origin.last("/upload")?.body.len(), 1000);

    // Declared too large: refused before the body is read, the origin never sees it.
    let mut declared = b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    declared.extend(vec![b'a'; 1 << 20]);
    let resp = raw_exchange(node.http_addr(), &declared).await?;
    check_raw_error(&resp, 413)?;
    assert_eq!(origin.count("/upload"), 1);

    // Chunked: the limit trips while reading.
    let mut chunked = b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..32 {
        chunked.extend(b"1000\r\n");
        chunked.extend(vec![b'b'; 0x1000]);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let resp = raw_exchange(node.http_addr(), &chunked).await?;
    check_raw_error(&resp, 413)?;
    assert!(
        origin.requests_for("/upload").iter().all(|r| r.body.len() <= 64 * 1024),
        "the origin received a body over the limit"
    );
    Ok(())
}

#[tokio::test]
async fn header_section_over_the_limit_is_431() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/", Reply::ok("root"));
    let big = "a".repeat(20 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: shop.test\r\nX-Big: {big}\r\n\r\n");
    let resp = raw_exchange(node.http_addr(), request.as_bytes()).await?;
    assert_eq!(resp.status, 431, "{}", resp.head);
    assert_eq!(origin.total(), 0);

    let fits =
        format!("GET / HTTP/1.1\r\nHost: shop.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(8 * 1024));
    let ok = raw_exchange(node.http_addr(), fits.as_bytes()).await?;
    assert_eq!(ok.status, 200, "an 8 KiB header is within 16 KiB: {}", ok.head);
    Ok(())
}

#[tokio::test]
async fn malformed_request_line_is_400() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    for garbage in [
        &b"this is not http\r\n\r\n"[..],
        b"GET /a HTTP/1.1 extra\r\nHost: shop.test\r\n\r\n",
        b"GET\r\n\r\n",
        // RFC 9112 §6.3: differing Content-Length values are an unrecoverable framing error.
        b"POST /a HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ] {
        let resp = raw_exchange(node.http_addr(), garbage).await?;
        assert_eq!(resp.status, 400, "{:?} -> {}", String::from_utf8_lossy(garbage), resp.head);
    }
    assert_eq!(origin.total(), 0);
    Ok(())
}

#[tokio::test]
async fn http11_request_without_host_is_400() -> anyhow::Result<()> {
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    let (origin, node) = shop().await?;
    let resp = raw_exchange(node.http_addr(), b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n").await?;
    assert_eq!(resp.status, 400, "{}", resp.head);
    assert_eq!(origin.total(), 0);
    Ok(())
}

#[tokio::test]
async fn parse_errors_name_the_request_id() -> anyhow::Result<()> {
    let (_origin, node) = shop().await?;
    // hyper answers a request line it cannot parse itself (an empty 400, connection closed):
    // the node still logs it, with a request id.
    let malformed = raw_exchange(node.http_addr(), b"this is not http\r\n\r\n").await?;
    assert_eq!(malformed.status, 400);
    let is_400 = |l: &serde_json::Value| l.get("status").and_then(|s| s.as_u64()) == Some(400);
    assert!(
        eventually(Duration::from_secs(5), || node.access_log().iter().any(is_400)).await,
        "no access-log line for the parse error"
    );
    let logged = node.access_log().into_iter().find(is_400).unwrap_or_default();
    let id = logged.get("request_id").and_then(|v| v.as_str()).unwrap_or("");
    assert!(!id.is_empty(), "parse error logged without a request id: {logged}");
    // A header section over the limit (but within hyper's buffer) is the node's own 431.
    let big = format!("GET / HTTP/1.1\r\nHost: shop.test\r\nX-Big: {}\r\n\r\n", "a".repeat(20 * 1024));
    let too_big = raw_exchange(node.http_addr(), big.as_bytes()).await?;
    check_raw_error(&too_big, 431)?;
    Ok(())
}

#[tokio::test]
async fn refused_origin_connection_is_502() -> anyhow::Result<()> {
    let dead = refused_addr().await?;
    let service = ServiceSpec::new("dead", &["dead.test"], format!("http://{dead}"));
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    let resp = node.get("dead.test", "/").await?;
    check_error(&resp, 502)?;
    Ok(())
}

#[tokio::test]
async fn origin_slower_than_first_byte_timeout_is_504() -> anyhow::Result<()> {
    // 2 s, not 500 ms: /quick must get its head within it on a loaded machine; /slow (5 s)
    // still answers well after the timeout.
    let (origin, node) = shop_with(|mut c| {
        c.first_byte_timeout = "2s".into();
        c
    })
    .await?;
    origin.route("/slow", Reply::ok("too late").delay(Duration::from_secs(5)));
    origin.route("/quick", Reply::ok("in time").delay(Duration::from_millis(50)));
    let resp = node.get("shop.test", "/slow").await?;
    check_error(&resp, 504)?;
    assert_eq!(origin.responded("/slow"), 0, "the node waited for the origin's answer");
    let quick = node.get("shop.test", "/quick").await?;
    assert_eq!(quick.status, 200);
    Ok(())
}

#[tokio::test]
async fn access_log_has_one_line_per_request_including_errors() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/logged", Reply::ok("logged").cache_control("max-age=60"));
    let miss = node.get("shop.test", "/logged").await?;
    let hit = node.get("shop.test", "/logged?q=1").await?;
    let hit2 = node.get("shop.test", "/logged").await?;
    let not_found = node.get("nobody.test", "/missing").await?;
    let post = node.send(Req::post("shop.test", "/logged").body("x")).await?;

    for (resp, status, method, host, path) in [
        (&miss, 200, "GET", "shop.test", "/logged"),
        (&hit, 200, "GET", "shop.test", "/logged"),
        (&hit2, 200, "GET", "shop.test", "/logged"),
        (&not_found, 404, "GET", "nobody.test", "/missing"),
        (&post, 200, "POST", "shop.test", "/logged"),
    ] {
        let id = resp.request_id().ok_or_else(|| anyhow::anyhow!("no x-request-id on {}", resp.summary()))?;
        let line = node.access_log_for(id).await?;
        assert_eq!(line.get("status").and_then(|s| s.as_u64()), Some(status), "{line}");
        assert_eq!(line.get("method").and_then(|s| s.as_str()), Some(method), "{line}");
        assert_eq!(line.get("host").and_then(|s| s.as_str()), Some(host), "{line}");
        let logged_path = line.get("path").and_then(|s| s.as_str()).unwrap_or("");
        assert!(logged_path.starts_with(path), "path {logged_path:?} in {line}");
        assert!(line.get("cache").is_some(), "no cache field in {line}");
    }
    let hit_line = node.access_log_for(hit2.request_id().unwrap_or("")).await?;
    let cache = hit_line.get("cache").map(|c| c.to_string().to_ascii_lowercase()).unwrap_or_default();
    assert!(cache.contains("hit"), "a hit is logged as one: {hit_line}");

    // Exactly one line per request.
    let ids: Vec<String> = node
        .access_log()
        .iter()
        .filter_map(|l| l.get("request_id").and_then(|i| i.as_str()).map(str::to_string))
        .collect();
    for resp in [&miss, &hit, &hit2, &not_found, &post] {
        let id = resp.request_id().unwrap_or("");
        assert_eq!(ids.iter().filter(|i| i.as_str() == id).count(), 1, "request {id} logged {ids:?}");
    }
    Ok(())
}

#[tokio::test]
async fn errors_are_logged_with_their_status() -> anyhow::Result<()> {
    let dead = refused_addr().await?;
    let origin = Origin::start().await?;
    let config = NodeConfig::with_service(ServiceSpec::new("dead", &["dead.test"], format!("http://{dead}")))
        .service(ServiceSpec::new("shop", &["shop.test"], origin.url()));
    let node = EdgeNode::start(config).await?;
    let bad_gateway = node.get("dead.test", "/x").await?;
    let line = node.access_log_for(bad_gateway.request_id().unwrap_or("")).await?;
    assert_eq!(line.get("status").and_then(|s| s.as_u64()), Some(502), "{line}");
    let malformed = raw_exchange(node.http_addr(), b"this is not http\r\n\r\n").await?;
    assert_eq!(malformed.status, 400);
    let logged_400 = outpost_tests::eventually(Duration::from_secs(5), || {
        node.access_log().iter().any(|l| l.get("status").and_then(|s| s.as_u64()) == Some(400))
    })
    .await;
    assert!(logged_400, "the 400 has no access-log line:\n{}", node.stdout_text());
    Ok(())
}
