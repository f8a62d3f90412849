//! The harness checked against itself, without a node: the scripted origin answers and records
//! as scenarios expect, over cleartext and TLS, HTTP/1.1 and HTTP/2.

use std::time::Duration;

use outpost_tests::client::{self, send_streaming};
use outpost_tests::{CacheStatus, Chunk, Gate, Origin, Reply, Req, TestCa, raw_exchange, refused_addr};

#[tokio::test]
async fn origin_records_requests_and_answers_conditionals() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/a", Reply::ok("hello").cache_control("max-age=60").etag("\"v1\"").conditional());

    let full = client::send(origin.addr(), &Req::get("shop.test", "/a").header("x-probe", "1")).await?;
    assert_eq!(full.status, 200);
    assert_eq!(full.text(), "hello");
    assert_eq!(full.header("etag"), Some("\"v1\""));

    let not_modified =
        client::send(origin.addr(), &Req::get("shop.test", "/a").header("if-none-match", "\"v1\"").h2()).await?;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());

    let head = client::send(origin.addr(), &Req::head("shop.test", "/a")).await?;
    assert_eq!(head.header("content-length"), Some("5"));
    assert!(head.body.is_empty());

    assert_eq!(origin.count("/a"), 3);
    let first = &origin.requests_for("/a")[0];
    assert_eq!(first.header("x-probe"), Some("1"));
    assert_eq!(first.header("host"), Some("shop.test"));
    assert_eq!(origin.last("/a")?.version, http::Version::HTTP_11);
    assert_eq!(origin.requests_for("/a")[1].version, http::Version::HTTP_2);

    let missing = client::send(origin.addr(), &Req::get("shop.test", "/nothing")).await?;
    assert_eq!(missing.status, 404);
    Ok(())
}

#[tokio::test]
async fn origin_streams_chunks_behind_a_gate() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    let gate = Gate::new();
    origin.route(
        "/s",
        Reply::ok("").chunks(vec![
            Chunk::Data("first ".into()),
            Chunk::Wait(gate.clone()),
            Chunk::Data("second".into()),
        ]),
    );
    let mut streaming = send_streaming(origin.addr(), &Req::get("shop.test", "/s")).await?;
    let first = tokio::time::timeout(Duration::from_secs(5), streaming.next_data()).await??;
    assert_eq!(first.as_deref(), Some(&b"first "[..]));
    assert_eq!(origin.finished("/s"), 0);
    gate.open();
    let rest = streaming.rest().await?;
    assert_eq!(&rest[..], b"second");
    Ok(())
}

#[tokio::test]
async fn tls_origin_serves_h1_and_h2_by_alpn() -> anyhow::Result<()> {
    let ca = TestCa::new("harness CA")?;
    let leaf = ca.issue(&["localhost"])?;
    let origin = Origin::start_tls(&leaf).await?;
    origin.route("/t", Reply::ok("secure"));
    assert!(origin.url().starts_with("https://localhost:"));

    let h2 = client::send(origin.addr(), &Req::get("localhost", "/t").h2().tls(&ca, "localhost")?).await?;
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h2.peer_cert.as_ref(), Some(&leaf.cert_der));
    let h1 = client::send(origin.addr(), &Req::get("localhost", "/t").tls(&ca, "localhost")?).await?;
    assert_eq!(h1.version, http::Version::HTTP_11);
    assert_eq!(h1.text(), "secure");

    let other_ca = TestCa::new("someone else")?;
    let refused = client::send(origin.addr(), &Req::get("localhost", "/t").tls(&other_ca, "localhost")?).await;
    assert!(refused.is_err(), "a client trusting another CA must fail the handshake");
    Ok(())
}

#[tokio::test]
async fn stopped_origin_refuses_and_raw_exchange_reads_a_response() -> anyhow::Result<()> {
    let mut origin = Origin::start().await?;
    origin.route("/r", Reply::ok("raw body"));
    let raw = raw_exchange(origin.addr(), b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.text(), "raw body");
    assert_eq!(raw.header("Content-Length"), Some("8"));

    let addr = origin.addr();
    origin.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(tokio::net::TcpStream::connect(refused_addr().await?).await.is_err());
    Ok(())
}

#[test]
fn cache_status_parses_the_nearest_entry() {
    let cs = CacheStatus::parse("shield; hit, edge-1; fwd=uri-miss; fwd-status=200; stored; ttl=60; collapsed");
    assert_eq!(cs.node, "edge-1");
    assert!(!cs.hit());
    assert_eq!(cs.fwd(), Some("uri-miss"));
    assert_eq!(cs.fwd_status(), Some(200));
    assert!(cs.stored() && cs.collapsed());
    assert_eq!(cs.ttl(), Some(60));
    let stale = CacheStatus::parse("edge-1; hit; ttl=-3; detail=stale-while-revalidate");
    assert!(stale.hit());
    assert_eq!(stale.ttl(), Some(-3));
    assert_eq!(stale.detail(), Some("stale-while-revalidate"));
}
