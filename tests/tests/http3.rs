//! HTTP/3 over QUIC on the HTTPS listener's UDP port: the same pipeline and cache as HTTP/1.1
//! and HTTP/2, and `Alt-Svc` advertising it on TLS responses.

use outpost_tests::node::SETTLE;
use outpost_tests::tls::Leaf;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec, TestCa, h3client};

struct H3Topology {
    ca: TestCa,
    cert: Leaf,
    origin: Origin,
    node: EdgeNode,
}

async fn topology(http3: bool) -> anyhow::Result<H3Topology> {
    let ca = TestCa::new("h3 test CA")?;
    let cert = ca.issue(&["shop.test", "*.shop.test"])?;
    let origin = Origin::start().await?;
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test", "*.shop.test"], origin.url()))
        .certificate(cert.clone())
        .http3(http3);
    let node = EdgeNode::start(config).await?;
    Ok(H3Topology { ca, cert, origin, node })
}

impl H3Topology {
    async fn h3(&self, req: Req) -> anyhow::Result<outpost_tests::Resp> {
        h3client::send(self.node.https_addr()?, &self.ca, "shop.test", &req).await
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
        .await?;
    outpost_tests::check_error(&too_large, 413)?;

    let big_header = "a".repeat(20 * 1024);
    let too_many_bytes = t.h3(Req::get("shop.test", "/upload").header("x-big", big_header)).await?;
    outpost_tests::check_error(&too_many_bytes, 431)?;

    let unknown =
        h3client::send(t.node.https_addr()?, &t.ca, "shop.test", &Req::get("nope.shop.test.invalid", "/")).await?;
    assert!(unknown.status == 421 || unknown.status == 404, "{}", unknown.summary());
    assert_eq!(t.origin.count("/upload"), 0, "refused requests never reach the origin");
    Ok(())
}
