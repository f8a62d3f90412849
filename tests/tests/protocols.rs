//! The wire on both sides of the node: HTTP/1.1 and HTTP/2 on the cleartext and TLS listeners
//! (ALPN, SNI certificate choice, 421 on a Host/SNI mismatch), and what the node sends upstream
//! (TLS origins verified against origin_ca, hop-by-hop headers dropped, forwarding headers added,
//! the Host header each host_header mode produces).

use http::Version;
use outpost_tests::{EdgeNode, HostHeader, NodeConfig, Origin, Reply, Req, ServiceSpec, TestCa, check_error};

#[tokio::test]
async fn http1_and_h2c_share_the_cleartext_listener_and_the_cache() -> anyhow::Result<()> {
    let (origin, node) = outpost_tests::shop().await?;
    origin.route("/p", Reply::ok("both").cache_control("max-age=60"));

    let h1 = node.send(Req::get("shop.test", "/p")).await?;
    assert_eq!(h1.version, Version::HTTP_11);
    assert_eq!(h1.text(), "both");
    let h2 = node.send(Req::get("shop.test", "/p").h2()).await?;
    assert_eq!(h2.version, Version::HTTP_2);
    assert_eq!(h2.status, 200);
    assert_eq!(h2.text(), "both");
    assert!(h2.cache_status().hit(), "HTTP/2 finds what HTTP/1.1 stored: {}", h2.summary());
    assert!(h2.has("x-request-id"));
    assert_eq!(origin.count("/p"), 1);
    Ok(())
}

/// A node with an HTTPS listener holding two certificates, for shop.test and blog.test.
struct TlsTopology {
    ca: TestCa,
    shop_cert: outpost_tests::tls::Leaf,
    blog_cert: outpost_tests::tls::Leaf,
    origin: Origin,
    node: EdgeNode,
}

async fn tls_topology() -> anyhow::Result<TlsTopology> {
    let ca = TestCa::new("edge test CA")?;
    let shop_cert = ca.issue(&["shop.test", "*.shop.test"])?;
    let blog_cert = ca.issue(&["blog.test"])?;
    let origin = Origin::start().await?;
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test", "*.shop.test"], origin.url()))
        .service(ServiceSpec::new("blog", &["blog.test"], origin.url()))
        .certificate(shop_cert.clone())
        .certificate(blog_cert.clone());
    let node = EdgeNode::start(config).await?;
    Ok(TlsTopology { ca, shop_cert, blog_cert, origin, node })
}

#[tokio::test]
async fn tls_alpn_negotiates_the_protocol_and_sni_picks_the_certificate() -> anyhow::Result<()> {
    let t = tls_topology().await?;
    t.origin.route("/s", Reply::ok("secure").cache_control("max-age=60"));

    let shop_h2 = t.node.send(Req::get("shop.test", "/s").h2().tls(&t.ca, "shop.test")?).await?;
    assert_eq!(shop_h2.status, 200);
    assert_eq!(shop_h2.version, Version::HTTP_2);
    assert_eq!(shop_h2.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(shop_h2.peer_cert.as_ref(), Some(&t.shop_cert.cert_der), "shop.test got another certificate");
    assert_eq!(shop_h2.text(), "secure");

    let wildcard = t.node.send(Req::get("img.shop.test", "/s").tls(&t.ca, "img.shop.test")?).await?;
    assert_eq!(wildcard.status, 200);
    assert_eq!(wildcard.peer_cert.as_ref(), Some(&t.shop_cert.cert_der));

    let blog_h1 = t.node.send(Req::get("blog.test", "/s").tls(&t.ca, "blog.test")?).await?;
    assert_eq!(blog_h1.status, 200);
    assert_eq!(blog_h1.version, Version::HTTP_11);
    assert_eq!(blog_h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(blog_h1.peer_cert.as_ref(), Some(&t.blog_cert.cert_der), "blog.test got another certificate");
    assert_eq!(blog_h1.text(), "secure");
    Ok(())
}

#[tokio::test]
async fn host_not_matching_sni_is_421() -> anyhow::Result<()> {
    // RFC 9110 §15.5.20: a request on a connection not meant for its authority.
    let t = tls_topology().await?;
    t.origin.route("/x", Reply::ok("x"));
    let h1 = t.node.send(Req::get("blog.test", "/x").tls(&t.ca, "shop.test")?).await?;
    check_error(&h1, 421)?;
    let h2 = t.node.send(Req::get("blog.test", "/x").h2().tls(&t.ca, "shop.test")?).await?;
    assert_eq!(h2.status, 421, "{}", h2.summary());
    assert_eq!(t.origin.count("/x"), 0, "a misdirected request reached the origin");
    Ok(())
}

#[tokio::test]
async fn https_origin_is_verified_against_origin_ca() -> anyhow::Result<()> {
    let origin_ca = TestCa::new("origin CA")?;
    let origin = Origin::start_tls(&origin_ca.issue(&["localhost"])?).await?;
    origin.route("/o", Reply::ok("over tls").cache_control("max-age=60"));
    let trusted = ServiceSpec::new("shop", &["shop.test"], origin.url()).origin_ca(origin_ca.cert_pem());
    let impostor_ca = TestCa::new("not the origin's CA")?;
    let wrong = ServiceSpec::new("wrong", &["wrong.test"], origin.url()).origin_ca(impostor_ca.cert_pem());
    let node = EdgeNode::start(NodeConfig::with_service(trusted).service(wrong)).await?;

    let ok = node.get("shop.test", "/o").await?;
    assert_eq!(ok.status, 200, "{}", ok.summary());
    assert_eq!(ok.text(), "over tls");
    assert_eq!(origin.count("/o"), 1);

    let refused = node.get("wrong.test", "/o").await?;
    check_error(&refused, 502)?;
    assert_eq!(origin.count("/o"), 1, "no request may pass an unverified handshake");
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_headers_never_cross_the_node() -> anyhow::Result<()> {
    // RFC 9110 §7.6.1: Connection and the fields it names, Keep-Alive, TE, etc. are per hop.
    let (origin, node) = outpost_tests::shop().await?;
    origin.route(
        "/hop",
        Reply::ok("hop")
            .header("connection", "x-bar")
            .header("x-bar", "1")
            .header("keep-alive", "timeout=5")
            .header("x-end-to-end", "yes"),
    );
    let resp = node
        .send(
            Req::get("shop.test", "/hop")
                .header("connection", "x-foo")
                .header("x-foo", "1")
                .header("keep-alive", "timeout=5")
                .header("te", "trailers, deflate")
                .header("x-client", "kept"),
        )
        .await?;
    assert_eq!(resp.status, 200);

    let seen = origin.last("/hop")?;
    assert_eq!(seen.header("x-foo"), None, "a header named by Connection was forwarded");
    assert_eq!(seen.header("keep-alive"), None);
    assert!(
        !seen.header_joined("connection").unwrap_or_default().contains("x-foo"),
        "the client's Connection header was forwarded"
    );
    assert!(
        !seen.header_joined("te").unwrap_or_default().contains("deflate"),
        "the client's TE was forwarded: {:?}",
        seen.header("te")
    );
    assert_eq!(seen.header("x-client"), Some("kept"));

    assert!(!resp.has("x-bar"), "a header named by the origin's Connection reached the client");
    assert!(!resp.has("keep-alive"));
    assert!(!resp.header("connection").unwrap_or("").contains("x-bar"));
    assert_eq!(resp.header("x-end-to-end"), Some("yes"));
    Ok(())
}

#[tokio::test]
async fn forwarding_headers_are_added() -> anyhow::Result<()> {
    let (origin, node) = outpost_tests::shop().await?;
    origin.route("/fwd", Reply::ok("fwd"));
    node.get("shop.test", "/fwd").await?;
    let direct = origin.last("/fwd")?;
    assert_eq!(direct.header("x-forwarded-for"), Some("127.0.0.1"));
    let forwarded = direct.header_joined("forwarded").unwrap_or_default().to_ascii_lowercase();
    assert!(forwarded.contains("for=127.0.0.1") || forwarded.contains("for=\"127.0.0.1\""), "Forwarded: {forwarded:?}");

    // From an untrusted client the node's own address list replaces the client's...
    node.send(Req::get("shop.test", "/fwd").header("x-forwarded-for", "203.0.113.9")).await?;
    let replaced = origin.last("/fwd")?;
    assert_eq!(replaced.header_joined("x-forwarded-for").as_deref(), Some("127.0.0.1"), "a forged address passed");

    // ...from a trusted one (`listen.trusted_networks`) it appends to it.
    let (origin, node) = outpost_tests::shop_with(|c| c.listen_line("trusted_networks = [\"127.0.0.1\"]")).await?;
    origin.route("/fwd", Reply::ok("fwd"));
    node.send(Req::get("shop.test", "/fwd").header("x-forwarded-for", "203.0.113.9")).await?;
    let chained = origin.last("/fwd")?;
    assert_eq!(
        chained.header_joined("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1"),
        "the node appends the client's address"
    );
    Ok(())
}

#[tokio::test]
async fn host_header_is_kept_replaced_or_set_literally() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/h", Reply::ok("h"));
    let config = NodeConfig::with_service(ServiceSpec::new("keep", &["keep.test"], origin.url()))
        .service(ServiceSpec::new("orig", &["orig.test"], origin.url()).host_header(HostHeader::Origin))
        .service(
            ServiceSpec::new("lit", &["lit.test"], origin.url())
                .host_header(HostHeader::Literal("backend.internal".into())),
        );
    let node = EdgeNode::start(config).await?;

    node.get("keep.test", "/h").await?;
    assert_eq!(origin.last("/h")?.host(), Some("keep.test"));
    node.get("orig.test", "/h").await?;
    let origin_host = origin.addr().to_string();
    assert_eq!(origin.last("/h")?.host(), Some(origin_host.as_str()));
    node.get("lit.test", "/h").await?;
    assert_eq!(origin.last("/h")?.host(), Some("backend.internal"));
    Ok(())
}

#[tokio::test]
async fn connections_carry_many_requests() -> anyhow::Result<()> {
    let (origin, node) = outpost_tests::shop().await?;
    origin.route("/k", Reply::ok("kept alive").cache_control("max-age=60"));
    origin.route("/u", Reply::ok("uncached"));

    let mut h1 = outpost_tests::client::Conn::open(node.http_addr(), &Req::get("shop.test", "/")).await?;
    let mut ids = Vec::new();
    for path in ["/k", "/u", "/k", "/u"] {
        let resp = h1.send(&Req::get("shop.test", path)).await?;
        assert_eq!(resp.status, 200, "{path}: {}", resp.summary());
        ids.push(resp.request_id().unwrap_or("").to_string());
    }
    ids.dedup();
    assert_eq!(ids.len(), 4, "each request on a keep-alive connection has its own id");

    let h2 = outpost_tests::client::Conn::open(node.http_addr(), &Req::get("shop.test", "/").h2()).await?;
    let mut streams = tokio::task::JoinSet::new();
    for i in 0..10 {
        let mut sender = h2.h2_sender().ok_or_else(|| anyhow::anyhow!("not an h2 connection"))?;
        let path = if i % 2 == 0 { "/k" } else { "/u" };
        streams
            .spawn(async move { outpost_tests::client::send_on(&mut sender, &Req::get("shop.test", path).h2()).await });
    }
    while let Some(result) = streams.join_next().await {
        let resp = result??;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert!(resp.text() == "kept alive" || resp.text() == "uncached");
    }
    assert_eq!(origin.count("/k"), 1);
    assert!(origin.count("/u") >= 3);
    Ok(())
}

#[tokio::test]
async fn host_is_matched_without_port_and_case() -> anyhow::Result<()> {
    // RFC 9110 §7.2 / RFC 3986 §3.2.2: the host is case-insensitive; the port is not part of it.
    let (origin, node) = outpost_tests::shop().await?;
    origin.route("/h", Reply::ok("found"));
    for host in ["shop.test:8080", "SHOP.Test", "Img.Shop.Test:80"] {
        let resp = node.get(host, "/h").await?;
        assert_eq!(resp.status, 200, "{host}: {}", resp.summary());
        assert_eq!(resp.text(), "found", "{host}");
    }
    Ok(())
}

#[tokio::test]
async fn absolute_form_request_target_is_routed() -> anyhow::Result<()> {
    let (origin, node) = outpost_tests::shop().await?;
    origin.route("/abs", Reply::ok("absolute"));
    let resp = outpost_tests::raw_exchange(
        node.http_addr(),
        b"GET http://shop.test/abs HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.text(), "absolute");
    assert_eq!(origin.last("/abs")?.path_and_query, "/abs", "the origin gets the origin-form target");
    Ok(())
}

#[tokio::test]
async fn head_over_http2_has_no_body() -> anyhow::Result<()> {
    let (origin, node) = outpost_tests::shop().await?;
    origin.route("/h2head", Reply::ok("0123456789").cache_control("max-age=60"));
    node.get("shop.test", "/h2head").await?;
    let head = node.send(Req::head("shop.test", "/h2head").h2()).await?;
    assert_eq!(head.status, 200);
    assert_eq!(head.version, Version::HTTP_2);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.cache_status().hit(), "{}", head.summary());
    Ok(())
}

/// The node's own h2 glue (it serves h2 with the `h2` crate so it can send 1xx): on SIGTERM an
/// idle h2 connection gets GOAWAY and is closed at once, a stream in flight finishes whole
/// (RFC 9113 §6.8: streams up to the last stream id are still processed), and the node exits
/// without waiting out `drain_timeout`.
#[tokio::test]
async fn h2_shutdown_sends_goaway_and_finishes_the_stream_in_flight() -> anyhow::Result<()> {
    use bytes::Bytes;
    use outpost_tests::{Chunk, Gate};
    use std::time::Duration;

    let (origin, mut node) = outpost_tests::shop_with(|c| c.limits_line("drain_timeout = \"30s\"")).await?;
    let gate = Gate::new();
    let g = gate.clone();
    origin.route_fn("/slow", move |_| {
        Reply::ok("").chunks(vec![
            Chunk::Data(Bytes::from_static(b"begun ")),
            Chunk::Wait(g.clone()),
            Chunk::Data(Bytes::from_static(b"finished")),
        ])
    });
    origin.route("/a", Reply::ok("a"));
    let limit = Duration::from_secs(15);
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(node.http_addr()).await?;
        let (client, conn) = h2::client::handshake(tcp).await?;
        anyhow::Ok((client, tokio::spawn(conn)))
    };
    let (mut idle, idle_conn) = connect().await?;
    let (resp, _) = idle.send_request(http::Request::get("http://shop.test/a").body(())?, true)?;
    assert_eq!(tokio::time::timeout(limit, resp).await??.status(), 200);
    let (mut busy, _busy_conn) = connect().await?;
    let (resp, _) = busy.send_request(http::Request::get("http://shop.test/slow").body(())?, true)?;
    origin.wait_for_count("/slow", 1, Duration::from_secs(5)).await?;

    node.terminate()?;
    // GOAWAY, and the idle connection ends (the client's connection task returns).
    let closed = tokio::time::timeout(limit, idle_conn).await;
    assert!(closed.is_ok(), "the idle h2 connection was left open during the drain");
    gate.open();
    let resp = tokio::time::timeout(limit, resp).await??;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = tokio::time::timeout(limit, body.data()).await? {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"begun finished", "the in-flight response was cut short");
    assert!(node.wait_exit().await?.success());
    Ok(())
}

/// `origin_protocol = "http2"` over TLS goes through the node's h2 upstream client: ALPN h2,
/// verified against `origin_ca`, a request body streamed with its length (RFC 9110 §8.6), and
/// an origin whose certificate the service's CA did not sign is refused before any request.
#[tokio::test]
async fn an_https_http2_origin_is_verified_and_gets_the_body() -> anyhow::Result<()> {
    let origin_ca = TestCa::new("origin CA")?;
    let origin = Origin::start_tls(&origin_ca.issue(&["localhost"])?).await?;
    origin.route("/h2", Reply::ok("over h2").cache_control("max-age=60"));
    origin.route("/submit", Reply::ok("taken"));
    let h2 = "origin_protocol = \"http2\"";
    let trusted = ServiceSpec::new("shop", &["shop.test"], origin.url()).origin_ca(origin_ca.cert_pem()).line(h2);
    let impostor_ca = TestCa::new("not the origin's CA")?;
    let wrong = ServiceSpec::new("wrong", &["wrong.test"], origin.url()).origin_ca(impostor_ca.cert_pem()).line(h2);
    let node = EdgeNode::start(NodeConfig::with_service(trusted).service(wrong)).await?;

    let ok = node.get("shop.test", "/h2").await?;
    assert_eq!((ok.status.as_u16(), ok.text()), (200, "over h2".to_string()), "{}", ok.summary());
    assert_eq!(origin.last("/h2")?.version, Version::HTTP_2);
    let posted = node.send(Req::post("shop.test", "/submit").body("a=1&b=2")).await?;
    assert_eq!((posted.status.as_u16(), posted.text()), (200, "taken".to_string()), "{}", posted.summary());
    let got = origin.last("/submit")?;
    assert_eq!((got.version, &got.body[..]), (Version::HTTP_2, &b"a=1&b=2"[..]));
    assert_eq!(got.headers.get("content-length").and_then(|v| v.to_str().ok()), Some("7"));

    let refused = node.get("wrong.test", "/h2").await?;
    check_error(&refused, 502)?;
    assert_eq!(origin.count("/h2"), 1, "no request may pass an unverified handshake");
    Ok(())
}

/// RFC 7301: an `https` origin under `origin_protocol = "auto"` that offers only http/1.1 by
/// ALPN is reached over HTTP/1.1 (the node learns it from one handshake and remembers it).
#[tokio::test]
async fn an_https_origin_that_picks_http1_by_alpn_is_reached_over_http1() -> anyhow::Result<()> {
    let origin_ca = TestCa::new("origin CA")?;
    let origin = Origin::start_tls_http1(&origin_ca.issue(&["localhost"])?).await?;
    origin.route("/one", Reply::ok("one").cache_control("max-age=60"));
    origin.route("/two", Reply::ok("two").cache_control("max-age=60"));
    let service = ServiceSpec::new("shop", &["shop.test"], origin.url()).origin_ca(origin_ca.cert_pem());
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    for path in ["/one", "/two"] {
        let resp = node.get("shop.test", path).await?;
        assert_eq!((resp.status.as_u16(), resp.text()), (200, path[1..].to_string()), "{}", resp.summary());
        assert_eq!(origin.last(path)?.version, Version::HTTP_11, "{path}");
    }
    Ok(())
}
