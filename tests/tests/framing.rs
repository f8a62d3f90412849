//! Request framing toward the origin (issue 18): the Content-Length / Transfer-Encoding an
//! origin sees always describe the body the node sends, whatever the client claimed, on every
//! protocol; and malformed HTTP/3 messages are reset, never forwarded.

use outpost_tests::tls::Leaf;
use outpost_tests::{EdgeNode, NodeConfig, Origin, RawOrigin, Reply, Req, ServiceSpec, TestCa, h3client, raw_exchange};

const HOSTS: &[&str] = &["shop.test", "*.shop.test"];
/// What an attacker puts in a GET's body: a request for the origin to take as the next one.
const SMUGGLED: &str = "GET /smuggled.html HTTP/1.1\r\nHost: shop.test\r\n\r\n";

struct Topology {
    ca: TestCa,
    node: EdgeNode,
}

/// A node with HTTP/1.1, h2c and HTTP/3 listeners in front of `origin_url`.
async fn topology(origin_url: String) -> anyhow::Result<Topology> {
    let ca = TestCa::new("framing test CA")?;
    let cert: Leaf = ca.issue(HOSTS)?;
    // No health probes: every request on the origin's connections is one a client caused.
    let service = ServiceSpec::new("shop", HOSTS, origin_url).without_health_checks();
    let node = EdgeNode::start(NodeConfig::with_service(service).certificate(cert).http3(true)).await?;
    Ok(Topology { ca, node })
}

impl Topology {
    /// A GET for `path` carrying [`SMUGGLED`] as its body with a matching Content-Length.
    async fn fat_get(&self, proto: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let len = SMUGGLED.len().to_string();
        let req = Req::get("shop.test", path).header("content-length", len.clone()).body(SMUGGLED);
        match proto {
            "h1" => {
                let raw = format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\nContent-Length: {len}\r\n\r\n{SMUGGLED}");
                let resp = raw_exchange(self.node.http_addr(), raw.as_bytes()).await?;
                Ok((resp.status, resp.text()))
            }
            "h2" => {
                let resp = self.node.send(req.h2()).await?;
                Ok((resp.status.as_u16(), resp.text()))
            }
            _ => {
                let resp = h3client::send(self.node.https_addr()?, &self.ca, "shop.test", &req).await?;
                Ok((resp.status.as_u16(), resp.text()))
            }
        }
    }
}

#[tokio::test]
async fn a_get_body_is_dropped_with_its_framing_on_every_protocol() -> anyhow::Result<()> {
    // An origin that answers a GET before reading its body and then discards Content-Length
    // bytes from the connection (nginx): a forwarded Content-Length without its body makes it
    // eat the start of the next request on that pooled connection.
    let origin = RawOrigin::start().await?;
    let t = topology(origin.url()).await?;
    for proto in ["h1", "h2", "h3"] {
        let victim = format!("/victim-{proto}.html?v=1");
        let (status, body) = t.fat_get(proto, &victim).await?;
        assert_eq!((status, body.as_str()), (200, format!("origin:{victim}").as_str()), "{proto} fat GET");
        // The next request on the same origin connection is read as itself.
        let next = format!("/next-{proto}.html");
        let resp = t.node.get("shop.test", &next).await?;
        assert_eq!(resp.status, 200, "{proto}: {}\ngarbage at the origin: {:?}", resp.summary(), origin.garbage());
        assert_eq!(resp.text(), format!("origin:{next}"), "{proto}");
    }
    let seen = origin.requests();
    assert!(origin.garbage().is_empty(), "the origin parsed garbage: {:?}", origin.garbage());
    for r in &seen {
        // RFC 9110 §8.6 / §9.3.1: no framing field without the content it frames.
        assert_eq!(r.header("content-length"), None, "{} {} carried Content-Length", r.method, r.target);
        assert_eq!(r.header("transfer-encoding"), None, "{} {} carried Transfer-Encoding", r.method, r.target);
    }
    assert!(seen.iter().all(|r| r.target != "/smuggled.html"), "the smuggled request reached the origin: {seen:?}");
    // The second request went on the connection the fat GET used: the pool was exercised.
    let conn_of = |target: &str| seen.iter().find(|r| r.target == target).map(|r| r.conn);
    assert!(conn_of("/victim-h1.html?v=1").is_some() && conn_of("/victim-h1.html?v=1") == conn_of("/next-h1.html"));

    // Nothing poisoned: the victim URL still gives its own object, now from the cache.
    let again = t.node.get("shop.test", "/victim-h1.html?v=1").await?;
    assert_eq!(again.text(), "origin:/victim-h1.html?v=1", "{}", again.summary());
    assert!(again.cache_status().hit(), "{}", again.summary());
    Ok(())
}

#[tokio::test]
async fn a_post_body_goes_upstream_with_its_exact_length() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/upload", Reply::ok("stored"));
    let t = topology(origin.url()).await?;
    // HTTP/3 carries no framing of its own for the upstream: the node sets it from the body.
    let req = Req::post("shop.test", "/upload").header("content-length", "5").body("hello");
    let resp = h3client::send(t.node.https_addr()?, &t.ca, "shop.test", &req).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let got = origin.last("/upload")?;
    assert_eq!(got.body.as_ref(), b"hello");
    assert_eq!(got.header("content-length"), Some("5"));
    // A chunked HTTP/1.1 body is forwarded chunked (its Transfer-Encoding is hop-by-hop).
    let chunked = b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let resp = raw_exchange(t.node.http_addr(), chunked).await?;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(origin.last("/upload")?.body.as_ref(), b"hello");
    Ok(())
}

#[tokio::test]
async fn malformed_http3_requests_are_reset_not_forwarded() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/upload", Reply::ok("stored"));
    origin.route("/page", Reply::ok("page"));
    let t = topology(origin.url()).await?;
    let addr = t.node.https_addr()?;
    let send = |req: Req| {
        let ca = &t.ca;
        async move { h3client::send(addr, ca, "shop.test", &req).await }
    };
    // RFC 9114 §4.1.2: DATA that adds up to more, or less, than Content-Length is malformed.
    let longer = send(Req::post("shop.test", "/upload").header("content-length", "5").body(vec![b'a'; 100])).await;
    assert!(longer.is_err(), "a body longer than its Content-Length was answered: {:?}", longer.map(|r| r.summary()));
    let shorter = send(Req::post("shop.test", "/upload").header("content-length", "50").body("hello")).await;
    assert!(
        shorter.is_err(),
        "a body shorter than its Content-Length was answered: {:?}",
        shorter.map(|r| r.summary())
    );
    // RFC 9114 §4.2: connection-specific fields make a message malformed.
    for (name, value) in [("transfer-encoding", "chunked"), ("connection", "keep-alive"), ("te", "gzip")] {
        let resp = send(Req::get("shop.test", "/page").header(name, value)).await;
        assert!(resp.is_err(), "{name}: {value} was answered: {:?}", resp.map(|r| r.summary()));
    }
    assert_eq!(origin.count("/page"), 0, "a malformed request reached the origin");
    assert!(
        origin.requests_for("/upload").iter().all(|r| r.body.len() != 5 && r.body.len() != 100),
        "a malformed body was forwarded as if whole"
    );
    // Each reset request has its access-log line, as a client error.
    let h3_400 = |l: &serde_json::Value| {
        l.get("status").and_then(|s| s.as_u64()) == Some(400)
            && l.get("protocol").and_then(|p| p.as_str()) == Some("h3")
    };
    let logged = outpost_tests::eventually(std::time::Duration::from_secs(5), || {
        t.node.access_log().iter().filter(|l| h3_400(l)).count() >= 5
    })
    .await;
    assert!(logged, "malformed HTTP/3 requests not logged as 400:\n{}", t.node.stdout_text());
    // The node still serves well-formed requests on HTTP/3.
    let ok = send(Req::get("shop.test", "/page")).await?;
    assert_eq!(ok.status, 200, "{}", ok.summary());
    Ok(())
}

#[tokio::test]
async fn ambiguous_http1_framing_stays_harmless() -> anyhow::Result<()> {
    // What held in the attack run and must stay held. RFC 9112 §6.3: a final coding other than
    // chunked, or a Content-Length that is not one number, cannot frame a request (400/501).
    let origin = Origin::start().await?;
    origin.route("/a", Reply::ok("a"));
    let t = topology(origin.url()).await?;
    let rejected: [&[u8]; 4] = [
        b"POST /a HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5, 6\r\n\r\nhello!",
        b"POST /a HTTP/1.1\r\nHost: shop.test\r\nContent-Length: +5\r\n\r\nhello",
    ];
    for raw in rejected {
        let resp = raw_exchange(t.node.http_addr(), raw).await?;
        assert!(matches!(resp.status, 400 | 501), "{:?} -> {}", String::from_utf8_lossy(raw), resp.head);
    }
    assert_eq!(origin.total(), 0, "an ambiguous request reached the origin: {:?}", origin.requests());
    // RFC 9112 §6.3 item 3: with both, Transfer-Encoding wins, the Content-Length is removed
    // before forwarding, and the connection is closed after the response, so the bytes after
    // the chunked body are never read as a request.
    let cl_te = b"POST /a HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: shop.test\r\n\r\n";
    let resp = raw_exchange(t.node.http_addr(), cl_te).await?;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let forwarded = origin.last("/a")?;
    assert!(forwarded.body.is_empty(), "{forwarded:?}");
    // Framed by chunks (the body's end is not known before it is read), never by the 48.
    assert!(matches!(forwarded.header("content-length"), None | Some("0")), "{forwarded:?}");
    assert_eq!(origin.count("/smuggled"), 0, "the bytes after the chunked body were read as a request");
    Ok(())
}

#[tokio::test]
async fn a_connection_whose_request_body_broke_off_is_not_reused() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    // The origin answers before reading the body, so the node has its response while the body
    // is still on its way; then the client hangs up mid-body. That origin connection is left
    // mid-message and must be closed, not pooled.
    let origin = RawOrigin::start().await?;
    let t = topology(origin.url()).await?;
    let mut tcp = tokio::net::TcpStream::connect(t.node.http_addr()).await?;
    tcp.write_all(b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 100\r\n\r\nonly ten b").await?;
    let posted = outpost_tests::eventually(std::time::Duration::from_secs(10), || {
        origin.requests().iter().any(|r| r.target == "/upload")
    })
    .await;
    assert!(posted, "the POST never reached the origin");
    drop(tcp);
    let aborted = outpost_tests::eventually(std::time::Duration::from_secs(10), || {
        t.node.access_log().iter().any(|l| l.get("path").and_then(|p| p.as_str()) == Some("/upload"))
    })
    .await;
    assert!(aborted, "the broken-off POST was not logged:\n{}", t.node.stdout_text());
    let after = t.node.get("shop.test", "/after").await?;
    assert_eq!((after.status.as_u16(), after.text()), (200, "origin:/after".to_string()), "{}", after.summary());
    let seen = origin.requests();
    let conn_of = |target: &str| seen.iter().find(|r| r.target == target).map(|r| r.conn);
    assert_ne!(conn_of("/upload"), conn_of("/after"), "the broken connection was reused: {seen:?}");
    assert!(origin.garbage().is_empty(), "{:?}", origin.garbage());
    Ok(())
}
