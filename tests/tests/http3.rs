//! HTTP/3 over QUIC on the HTTPS listener's UDP port: the same pipeline and cache as HTTP/1.1
//! and HTTP/2, and `Alt-Svc` advertising it on TLS responses.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use outpost_tests::h3client::{DelayRelay, H3Client};
use outpost_tests::node::SETTLE;
use outpost_tests::tls::Leaf;
use outpost_tests::{Chunk, EdgeNode, Gate, NodeConfig, Origin, Reply, Req, ServiceSpec, TestCa, eventually, h3client};

struct H3Topology {
    ca: TestCa,
    cert: Leaf,
    origin: Origin,
    node: EdgeNode,
}

async fn topology(http3: bool) -> anyhow::Result<H3Topology> {
    topology_with(|c| c.http3(http3)).await
}

/// An HTTP/3 node with the config adjusted by `f`.
async fn topology_with(f: impl FnOnce(NodeConfig) -> NodeConfig) -> anyhow::Result<H3Topology> {
    let ca = TestCa::new("h3 test CA")?;
    let cert = ca.issue(&["shop.test", "*.shop.test"])?;
    let origin = Origin::start().await?;
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test", "*.shop.test"], origin.url()))
        .certificate(cert.clone())
        .http3(true);
    let node = EdgeNode::start(f(config)).await?;
    Ok(H3Topology { ca, cert, origin, node })
}

impl H3Topology {
    async fn h3(&self, req: Req) -> anyhow::Result<outpost_tests::Resp> {
        h3client::send(self.node.https_addr()?, &self.ca, "shop.test", &req).await
    }

    fn client(&self) -> anyhow::Result<H3Client> {
        H3Client::new(&self.ca, "shop.test")
    }
}

#[tokio::test]
async fn h3_miss_then_hit_from_the_same_cache() -> anyhow::Result<()> {
    let t = topology(true).await?;
    t.origin.route("/a", Reply::ok("over quic").cache_control("max-age=60"));

    let miss = t.h3(Req::get("shop.test", "/a")).await?;
    assert_eq!(miss.status, 200, "{}", miss.summary());
    assert_eq!(miss.version, http::Version::HTTP_3);
    assert_eq!(miss.text(), "over quic");
    assert!(!miss.cache_status().hit(), "{}", miss.summary());
    assert_eq!(miss.cache_status().fwd(), Some("uri-miss"), "{}", miss.summary());
    assert_eq!(miss.peer_cert.as_ref(), Some(&t.cert.cert_der), "SNI picked the shop certificate");
    tokio::time::sleep(SETTLE).await;

    let hit = t.h3(Req::get("shop.test", "/a")).await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    assert_eq!(hit.text(), "over quic");

    // Filled over HTTP/2, served over HTTP/3: one cache.
    t.origin.route("/b", Reply::ok("shared").cache_control("max-age=60"));
    let h2 = t.node.send(Req::get("shop.test", "/b").h2().tls(&t.ca, "shop.test")?).await?;
    assert!(!h2.cache_status().hit(), "{}", h2.summary());
    tokio::time::sleep(SETTLE).await;
    let h3 = t.h3(Req::get("shop.test", "/b")).await?;
    assert!(h3.cache_status().hit(), "{}", h3.summary());
    assert_eq!(h3.text(), "shared");
    assert_eq!(t.origin.count("/a"), 1);
    assert_eq!(t.origin.count("/b"), 1);
    Ok(())
}

/// Issue 18: a small body that breaks off is the same clean 502 over HTTP/1.1, HTTP/2 and
/// HTTP/3 (with `Cache-Status` saying what happened), never a truncated 200.
#[tokio::test]
async fn a_small_body_that_breaks_off_is_a_clean_502_on_every_protocol() -> anyhow::Result<()> {
    let t = topology(true).await?;
    t.origin.route_prefix("/short/", |_| {
        // Content-Length 20, then the origin ends the body (and the connection) after 10.
        Reply::ok("")
            .cache_control("max-age=60")
            .header("content-length", "20")
            .chunks(vec![Chunk::Data(Bytes::from_static(b"0123456789"))])
    });
    let h1 = t.node.send(Req::get("shop.test", "/short/h1").tls(&t.ca, "shop.test")?).await?;
    let h2 = t.node.send(Req::get("shop.test", "/short/h2").h2().tls(&t.ca, "shop.test")?).await?;
    let h3 = t.h3(Req::get("shop.test", "/short/h3")).await?;
    for (proto, resp) in [("h1", &h1), ("h2", &h2), ("h3", &h3)] {
        assert_eq!(resp.status, 502, "{proto}: {}", resp.summary());
        let cs = resp.cache_status();
        let seen = (cs.fwd_status(), cs.detail(), cs.stored());
        assert_eq!(seen, (Some(200), Some("upstream-body-incomplete"), false), "{proto}: {}", cs.raw);
        assert!(!resp.text().contains("0123456789"), "{proto}: no part of the broken body: {}", resp.text());
    }
    Ok(())
}

#[tokio::test]
async fn h3_post_body_reaches_the_origin_intact() -> anyhow::Result<()> {
    let t = topology(true).await?;
    t.origin.route("/upload", Reply::ok("got it"));
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    let resp = t.h3(Req::post("shop.test", "/upload").body(body.clone())).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "got it");
    let seen = t.origin.last("/upload")?;
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.body.len(), body.len());
    assert!(seen.body[..] == body[..], "request body changed on the way");
    Ok(())
}

#[tokio::test]
async fn alt_svc_advertises_h3_on_tls_responses_when_enabled() -> anyhow::Result<()> {
    let t = topology(true).await?;
    t.origin.route("/s", Reply::ok("s").cache_control("max-age=60"));
    let port = t.node.https_addr()?.port();
    let expected = format!("h3=\":{port}\"; ma=86400");

    let h2 = t.node.send(Req::get("shop.test", "/s").h2().tls(&t.ca, "shop.test")?).await?;
    assert_eq!(h2.header("alt-svc"), Some(expected.as_str()), "{}", h2.summary());
    let h1 = t.node.send(Req::get("shop.test", "/s").tls(&t.ca, "shop.test")?).await?;
    assert_eq!(h1.header("alt-svc"), Some(expected.as_str()), "{}", h1.summary());
    // Not on cleartext: Alt-Svc there would invite clients to a different origin's security.
    let clear = t.node.get("shop.test", "/s").await?;
    assert!(!clear.has("alt-svc"), "{}", clear.summary());
    Ok(())
}

#[tokio::test]
async fn no_alt_svc_when_http3_is_disabled() -> anyhow::Result<()> {
    let t = topology(false).await?;
    t.origin.route("/s", Reply::ok("s"));
    let h2 = t.node.send(Req::get("shop.test", "/s").h2().tls(&t.ca, "shop.test")?).await?;
    assert_eq!(h2.status, 200);
    assert!(!h2.has("alt-svc"), "{}", h2.summary());
    let h1 = t.node.send(Req::get("shop.test", "/s").tls(&t.ca, "shop.test")?).await?;
    assert!(!h1.has("alt-svc"), "{}", h1.summary());
    Ok(())
}

#[tokio::test]
async fn h3_requests_meet_the_same_limits_and_error_pages() -> anyhow::Result<()> {
    // The harness's node: max_header_bytes 16KiB, max_request_body 1MiB.
    let t = topology(true).await?;
    t.origin.route("/upload", Reply::ok("stored"));

    let big_body = vec![b'x'; 2 << 20];
    let too_large = t
        .h3(Req::post("shop.test", "/upload").header("content-length", big_body.len().to_string()).body(big_body))
        .await
        .context("the 2 MiB POST")?;
    outpost_tests::check_error(&too_large, 413)?;

    let big_header = "a".repeat(20 * 1024);
    let too_many_bytes =
        t.h3(Req::get("shop.test", "/upload").header("x-big", big_header)).await.context("the 20 KiB header")?;
    outpost_tests::check_error(&too_many_bytes, 431)?;

    let unknown = h3client::send(t.node.https_addr()?, &t.ca, "shop.test", &Req::get("nope.shop.test.invalid", "/"))
        .await
        .context("the unknown host")?;
    assert!(unknown.status == 421 || unknown.status == 404, "{}", unknown.summary());
    assert_eq!(t.origin.count("/upload"), 0, "refused requests never reach the origin");
    Ok(())
}

#[tokio::test]
async fn h3_streams_multi_megabyte_objects_and_answers_head_and_range() -> anyhow::Result<()> {
    let t = topology(true).await?;
    let object: Vec<u8> = (0..(6u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let chunks = object.chunks(256 * 1024).map(|c| Chunk::Data(Bytes::copy_from_slice(c))).collect();
    t.origin.route("/big.bin", Reply::ok("").chunks(chunks).cache_control("max-age=60"));

    let miss = t.h3(Req::get("shop.test", "/big.bin")).await?;
    assert_eq!(miss.status, 200, "{}", miss.summary());
    assert!(miss.body[..] == object[..], "streamed miss differs: {} bytes of {}", miss.body.len(), object.len());
    tokio::time::sleep(SETTLE).await;

    let hit = t.h3(Req::get("shop.test", "/big.bin")).await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    assert!(hit.body[..] == object[..], "hit differs");

    let head = t.h3(Req::head("shop.test", "/big.bin")).await?;
    assert_eq!(head.status, 200, "{}", head.summary());
    assert_eq!(head.header("content-length"), Some(object.len().to_string().as_str()));
    assert!(head.body.is_empty(), "HEAD carried {} body bytes", head.body.len());

    let range = t.h3(Req::get("shop.test", "/big.bin").header("range", "bytes=1000000-1000099")).await?;
    assert_eq!(range.status, 206, "{}", range.summary());
    assert_eq!(range.header("content-range"), Some(format!("bytes 1000000-1000099/{}", object.len()).as_str()));
    assert!(range.body[..] == object[1_000_000..1_000_100]);
    assert_eq!(t.origin.count("/big.bin"), 1);
    Ok(())
}

#[tokio::test]
async fn h3_request_trailers_are_ignored_and_the_body_arrives() -> anyhow::Result<()> {
    let t = topology(true).await?;
    t.origin.route("/upload", Reply::ok("ok"));
    let conn = t.client()?.connect(t.node.https_addr()?).await?;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
    let resp =
        conn.send_with_trailers(&Req::post("shop.test", "/upload").body("with trailers"), Some(trailers)).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let seen = t.origin.last("/upload")?;
    assert_eq!(&seen.body[..], b"with trailers");
    assert!(seen.header("x-checksum").is_none(), "a trailer became a header");
    // The connection is still good for the next request.
    assert_eq!(conn.send(&Req::post("shop.test", "/upload").body("again")).await?.status, 200);
    conn.close().await;
    Ok(())
}

#[tokio::test]
async fn h3_zero_rtt_is_off_by_default() -> anyhow::Result<()> {
    let t = topology(true).await?;
    t.origin.route("/a", Reply::ok("a"));
    let client = t.client()?;
    let first = client.connect(t.node.https_addr()?).await?;
    assert_eq!(first.send(&Req::get("shop.test", "/a")).await?.status, 200);
    first.close().await;
    // The session resumes, but its ticket allows no early data.
    assert!(client.connect_0rtt(t.node.https_addr()?).await?.is_none(), "0-RTT offered while disabled");
    Ok(())
}

#[tokio::test]
async fn h3_early_data_serves_safe_methods_and_answers_unsafe_ones_425() -> anyhow::Result<()> {
    let t = topology_with(|c| c.listen_line("http3_early_data = true")).await?;
    t.origin.route("/page", Reply::ok("page"));
    t.origin.route("/form", Reply::ok("posted"));
    let client = t.client()?;
    let node = t.node.https_addr()?;

    // A full handshake first: the session ticket for the resumptions below.
    let first = client.connect(node).await?;
    let confirmed_post = first.send(&Req::post("shop.test", "/form").body("a=1")).await?;
    assert_eq!(confirmed_post.status, 200, "after the handshake a POST is fine: {}", confirmed_post.summary());
    assert!(t.origin.last("/form")?.header("early-data").is_none());
    first.close().await;

    // The node's packets come back 300 ms late, so these requests arrive while the handshake is
    // unfinished: as early data, every time.
    let relay = DelayRelay::start(node, Duration::from_millis(300)).await?;
    let mut early = client.connect_0rtt(relay.addr()).await?.ok_or_else(|| anyhow::anyhow!("no 0-RTT offered"))?;
    let refused = early.send(&Req::post("shop.test", "/form").body("a=2")).await?;
    outpost_tests::check_error(&refused, 425)?;
    assert!(early.zero_rtt_accepted().await, "the node accepted the early data");
    assert_eq!(t.origin.count("/form"), 1, "the early POST never reached the origin");
    early.close().await;

    let mut early = client.connect_0rtt(relay.addr()).await?.ok_or_else(|| anyhow::anyhow!("no 0-RTT offered"))?;
    let served = early.send(&Req::get("shop.test", "/page")).await?;
    assert_eq!(served.status, 200, "{}", served.summary());
    assert_eq!(served.text(), "page");
    assert!(early.zero_rtt_accepted().await);
    assert_eq!(t.origin.last("/page")?.header("early-data"), Some("1"), "RFC 8470 §5.1: Early-Data: 1 upstream");
    early.close().await;

    let log = t.node.access_log_for(refused.header("x-request-id").unwrap_or_default()).await?;
    assert_eq!(log["status"], 425, "{log}");
    Ok(())
}

#[tokio::test]
async fn quic_retry_validates_addresses_when_configured() -> anyhow::Result<()> {
    let t = topology_with(|c| c.listen_line("quic_retry = \"always\"")).await?;
    t.origin.route("/a", Reply::ok("after a retry"));
    let resp = t.h3(Req::get("shop.test", "/a")).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "after a retry");
    let metrics = t.node.admin(http::Method::GET, "/metrics", "").await?.text();
    let retries = metrics
        .lines()
        .find_map(|l| l.strip_prefix("outpost_quic_retries_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(retries >= 1.0, "no Retry counted:\n{metrics}");
    Ok(())
}

#[tokio::test]
async fn h3_streams_per_connection_are_limited() -> anyhow::Result<()> {
    let t = topology_with(|c| c.limits_line("max_concurrent_streams = 2")).await?;
    let gate = Gate::new();
    let g = gate.clone();
    t.origin.route_prefix("/slow/", move |_| {
        Reply::ok("").chunks(vec![
            Chunk::Data(Bytes::from_static(b"part ")),
            Chunk::Wait(g.clone()),
            Chunk::Data(Bytes::from_static(b"done")),
        ])
    });
    let conn = std::sync::Arc::new(t.client()?.connect(t.node.https_addr()?).await?);
    let mut tasks = Vec::new();
    for i in 0..3 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move { conn.send(&Req::get("shop.test", &format!("/slow/{i}"))).await }));
    }
    assert!(eventually(Duration::from_secs(5), || t.origin.total() >= 2).await, "two requests reach the origin");
    tokio::time::sleep(SETTLE * 4).await;
    assert_eq!(t.origin.total(), 2, "a third stream was opened beyond limits.max_concurrent_streams = 2");
    gate.open();
    for task in tasks {
        let resp = task.await??;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.text(), "part done");
    }
    assert_eq!(t.origin.total(), 3, "the third request went through once a stream was free");
    Ok(())
}

#[tokio::test]
async fn h3_connections_beyond_the_limit_are_refused() -> anyhow::Result<()> {
    let t = topology_with(|c| c.limits_line("max_connections = 2")).await?;
    t.origin.route("/a", Reply::ok("a"));
    let client = t.client()?;
    let node = t.node.https_addr()?;
    let one = client.connect(node).await?;
    let two = client.connect(node).await?;
    assert_eq!(one.send(&Req::get("shop.test", "/a")).await?.status, 200);
    assert_eq!(two.send(&Req::get("shop.test", "/a")).await?.status, 200);
    let third = client.connect(node).await;
    let err = third.err().ok_or_else(|| anyhow::anyhow!("a third connection was accepted"))?;
    assert!(format!("{err:#}").to_lowercase().contains("refused"), "{err:#}");

    one.close().await;
    // The slot frees once the node has seen the close.
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(c) = client.connect(node).await {
            reopened = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reopened = reopened.ok_or_else(|| anyhow::anyhow!("no connection after one closed"))?;
    assert_eq!(reopened.send(&Req::get("shop.test", "/a")).await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn h3_idle_connections_are_closed_after_the_keepalive_timeout() -> anyhow::Result<()> {
    let t = topology_with(|c| c.limits_line("keepalive_timeout = \"1s\"")).await?;
    t.origin.route("/a", Reply::ok("a"));
    let conn = t.client()?.connect(t.node.https_addr()?).await?;
    assert_eq!(conn.send(&Req::get("shop.test", "/a")).await?.status, 200);
    let reason = conn.closed_within(Duration::from_secs(15)).await;
    assert!(
        matches!(reason, Some(quinn::ConnectionError::TimedOut)),
        "an idle connection stayed open or closed otherwise: {reason:?}"
    );
    Ok(())
}

#[tokio::test]
async fn h3_shutdown_finishes_requests_in_flight_and_closes_idle_connections() -> anyhow::Result<()> {
    let mut t = topology_with(|c| c.limits_line("drain_timeout = \"30s\"")).await?;
    let gate = Gate::new();
    let g = gate.clone();
    t.origin.route_fn("/slow", move |_| {
        Reply::ok("").chunks(vec![
            Chunk::Data(Bytes::from_static(b"begun ")),
            Chunk::Wait(g.clone()),
            Chunk::Data(Bytes::from_static(b"finished")),
        ])
    });
    t.origin.route("/a", Reply::ok("a"));
    let client = t.client()?;
    let idle = client.connect(t.node.https_addr()?).await?;
    assert_eq!(idle.send(&Req::get("shop.test", "/a")).await?.status, 200);
    let busy = std::sync::Arc::new(client.connect(t.node.https_addr()?).await?);
    let b = busy.clone();
    let in_flight = tokio::spawn(async move { b.send(&Req::get("shop.test", "/slow")).await });
    t.origin.wait_for_count("/slow", 1, Duration::from_secs(5)).await?;

    let started = Instant::now();
    t.node.terminate()?;
    // GOAWAY, then the idle connection is closed at once rather than at the drain timeout.
    let idle_closed = idle.closed_within(Duration::from_secs(10)).await;
    assert!(idle_closed.is_some(), "the idle connection was left open during the drain");
    gate.open();
    let resp = in_flight.await??;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "begun finished", "the in-flight response was cut short");
    let status = t.node.wait_exit().await?;
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the node waited for the drain timeout: {:?}",
        started.elapsed()
    );
    Ok(())
}
