//! Interim (1xx) responses between the node and its clients (issue 15): `103 Early Hints` from
//! the origin reaches HTTP/1.1 and HTTP/2 clients ahead of the final response and never inside
//! it; HTTP/1.0 clients get none (RFC 9110 §15.2); `Expect: 100-continue` is answered by the
//! node itself, once, and only when the request is not refused on its head (RFC 9110 §10.1.1).
//!
//! The listener side (writing a queued 1xx on h1 and h2) is also tested in-process under real
//! clients in `edge-node/src/listen/interim_tests.rs`; the origin's 1xx reach the request's
//! `InterimSender` through the upstream relay (`edge-node/src/hints/`).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use outpost_tests::interim_origin::{final_response, interim};
use outpost_tests::{EdgeNode, InterimOrigin, NodeConfig, Reply, ServiceSpec, shop, shop_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every wait is bounded; none is a timing assertion.
const LIMIT: Duration = Duration::from_secs(15);

/// The origin's 103: two Link fields and one field that must stay out of the final response.
const HINT: &[(&str, &str)] =
    &[("Link", "</a.css>; rel=preload; as=style"), ("Link", "</b.js>; rel=preload; as=script"), ("X-Hint-Only", "1")];

/// A node in front of an origin that sends [`HINT`] then `200 origin:PATH` for each of `paths`.
async fn hinting_node(paths: &[&str]) -> anyhow::Result<(InterimOrigin, EdgeNode)> {
    let origin = InterimOrigin::start().await?;
    for path in paths {
        let body = format!("origin:{path}");
        let answer = vec![
            interim(103, "Early Hints", HINT),
            final_response(200, "OK", &[("cache-control", "max-age=60")], &body),
        ];
        origin.route(path, vec![answer]);
    }
    let service = ServiceSpec::new("shop", &["shop.test"], origin.url());
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    Ok((origin, node))
}

/// An h2 connection with prior knowledge (RFC 9113 §3.3) to the cleartext listener.
async fn h2_client(node: &EdgeNode) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let tcp = TcpStream::connect(node.http_addr()).await?;
    let (client, conn) = h2::client::handshake(tcp).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Reads from `tcp` until `needle` has arrived; everything read so far.
async fn read_until(tcp: &mut TcpStream, wire: &mut Vec<u8>, needle: &[u8]) -> anyhow::Result<()> {
    let mut buf = [0u8; 4096];
    while !wire.windows(needle.len()).any(|w| w == needle) {
        let n = tokio::time::timeout(LIMIT, tcp.read(&mut buf)).await??;
        anyhow::ensure!(
            n > 0,
            "closed before {:?}: {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(wire)
        );
        wire.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

#[tokio::test]
async fn an_origins_103_reaches_an_h2_client_before_the_200_and_not_in_it() -> anyhow::Result<()> {
    let (_origin, node) = hinting_node(&["/page.html"]).await?;
    let mut client = h2_client(&node).await?;
    let req = Request::get("http://shop.test/page.html").body(())?;
    let (mut resp, _) = client.send_request(req, true)?;
    let hint = tokio::time::timeout(LIMIT, std::future::poll_fn(|cx| resp.poll_informational(cx)))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the final response came with no 103 before it"))??;
    // RFC 8297 §2 / RFC 9113 §8.1: a HEADERS frame with 103 ahead of the final one.
    assert_eq!(hint.status(), StatusCode::EARLY_HINTS);
    assert_eq!(hint.headers().get_all("link").iter().count(), 2, "every Link field: {hint:?}");
    let resp = tokio::time::timeout(LIMIT, resp).await??;
    assert_eq!(resp.status(), StatusCode::OK);
    // RFC 8297 §2: "the fields of an interim response are not those of the final response".
    assert!(resp.headers().get("link").is_none(), "the 103's Link leaked into the 200: {resp:?}");
    assert!(resp.headers().get("x-hint-only").is_none(), "the 103's fields leaked into the 200: {resp:?}");
    Ok(())
}

#[tokio::test]
async fn an_origins_103_reaches_an_http11_client_before_the_200_and_not_in_it() -> anyhow::Result<()> {
    let (_origin, node) = hinting_node(&["/page.html"]).await?;
    let mut tcp = TcpStream::connect(node.http_addr()).await?;
    tcp.write_all(b"GET /page.html HTTP/1.1\r\nHost: shop.test\r\n\r\n").await?;
    let mut wire = Vec::new();
    read_until(&mut tcp, &mut wire, b"origin:/page.html").await?;
    let text = String::from_utf8_lossy(&wire).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 103 early hints\r\n"), "{text}");
    let (hint, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert_eq!(hint.matches("\r\nlink: ").count(), 2, "every Link field: {hint}");
    assert!(rest.starts_with("http/1.1 200 ok\r\n"), "the 200 after the hint: {rest}");
    assert!(!rest.contains("\r\nlink:") && !rest.contains("x-hint-only"), "the 103's fields leaked: {rest}");
    Ok(())
}

#[tokio::test]
async fn an_http10_client_never_gets_a_1xx() -> anyhow::Result<()> {
    let (_origin, node) = hinting_node(&["/old.html"]).await?;
    let mut tcp = TcpStream::connect(node.http_addr()).await?;
    tcp.write_all(b"GET /old.html HTTP/1.0\r\nHost: shop.test\r\n\r\n").await?;
    let mut wire = Vec::new();
    read_until(&mut tcp, &mut wire, b"origin:/old.html").await?;
    let text = String::from_utf8_lossy(&wire);
    // RFC 9110 §15.2: "A server MUST NOT send a 1xx response to an HTTP/1.0 client."
    assert!(text.starts_with("HTTP/1.") && text[8..].starts_with(" 200 "), "{text}");
    assert!(!text.contains(" 103 "), "{text}");
    Ok(())
}

#[tokio::test]
async fn expect_100_continue_on_http11_is_answered_once_by_the_node_and_not_forwarded() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/upload", Reply::ok("stored"));
    let mut tcp = TcpStream::connect(node.http_addr()).await?;
    let head = "POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    tcp.write_all(head.as_bytes()).await?;
    // The client holds its body until the 100 (RFC 9110 §10.1.1).
    let mut wire = Vec::new();
    read_until(&mut tcp, &mut wire, b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    tcp.write_all(b"hello").await?;
    read_until(&mut tcp, &mut wire, b"stored").await?;
    let text = String::from_utf8_lossy(&wire);
    assert_eq!(text.matches(" 100 ").count(), 1, "one 100 Continue: {text}");
    let seen = origin.last("/upload")?;
    assert_eq!(&seen.body[..], b"hello");
    // The node answered the expectation; an origin that saw it would send a 100 of its own.
    assert_eq!(seen.header("expect"), None, "Expect reached the origin");
    Ok(())
}

#[tokio::test]
async fn a_request_refused_on_its_head_gets_its_status_and_no_100() -> anyhow::Result<()> {
    let (origin, node) = shop_with(|mut c| {
        c.max_request_body = "1KiB".into();
        c
    })
    .await?;
    origin.route("/upload", Reply::ok("stored"));
    let mut tcp = TcpStream::connect(node.http_addr()).await?;
    let head = "POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n";
    tcp.write_all(head.as_bytes()).await?;
    let mut wire = Vec::new();
    read_until(&mut tcp, &mut wire, b"\r\n\r\n").await?;
    let text = String::from_utf8_lossy(&wire);
    // RFC 9110 §10.1.1: a server that can tell from the head alone sends the final status.
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert_eq!(origin.count("/upload"), 0);
    let mut h2 = h2_client(&node).await?;
    let req = Request::post("http://shop.test/upload")
        .header("content-length", "1000000")
        .header("expect", "100-continue")
        .body(())?;
    let (mut resp, _body) = h2.send_request(req, false)?;
    let first = tokio::time::timeout(LIMIT, std::future::poll_fn(|cx| resp.poll_informational(cx))).await?;
    assert!(first.is_none(), "a 1xx before the 413: {first:?}");
    let resp = tokio::time::timeout(LIMIT, resp).await??;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(origin.count("/upload"), 0);
    Ok(())
}

#[tokio::test]
async fn expect_100_continue_on_h2_gets_a_100_before_the_body_is_sent() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/upload", Reply::ok("stored"));
    let mut h2 = h2_client(&node).await?;
    let req = Request::post("http://shop.test/upload")
        .header("content-length", "5")
        .header("expect", "100-continue")
        .body(())?;
    let (mut resp, mut body) = h2.send_request(req, false)?;
    // The body is held until the 100 arrives: without one, this wait runs out.
    let first = tokio::time::timeout(LIMIT, std::future::poll_fn(|cx| resp.poll_informational(cx))).await?;
    let first = first.ok_or_else(|| anyhow::anyhow!("no 100 Continue"))??;
    assert_eq!(first.status(), StatusCode::CONTINUE, "RFC 9110 §10.1.1");
    body.send_data(Bytes::from_static(b"hello"), true)?;
    let resp = tokio::time::timeout(LIMIT, resp).await??;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = origin.last("/upload")?;
    assert_eq!(&seen.body[..], b"hello");
    assert_eq!(seen.header("expect"), None, "Expect reached the origin");
    Ok(())
}
