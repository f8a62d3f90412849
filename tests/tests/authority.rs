//! Host confusion (issue 18, finding 3): a request is routed, cached and forwarded under one
//! canonical authority, whichever way the protocol lets a client name the host. Each scenario
//! is the attack as run against a release build: an origin that builds its redirect from the
//! `Host` it receives (as most frameworks do) answers a request whose host fields disagree;
//! before the fix the redirect naming the attacker's host was stored and served to everyone.

use outpost_tests::h3client;
use outpost_tests::{NodeConfig, Origin, Recorded, Reply, Req, ServiceSpec, TestCa, check_error, check_raw_error};

/// An origin whose `/dir` redirects to `http://<the Host it received>/dir/`, cacheable for a
/// minute: the shape of a poisoned redirect.
fn redirect_by_host(origin: &Origin) {
    origin.route_fn("/dir", |r: &Recorded| {
        Reply::status(301)
            .header("location", format!("http://{}/dir/", r.host().unwrap_or("none")))
            .cache_control("max-age=60")
    });
}

/// What an ordinary client then gets for `shop.test/dir`.
async fn victim_location(node: &outpost_tests::EdgeNode) -> anyhow::Result<String> {
    let resp = node.get("shop.test", "/dir").await?;
    anyhow::ensure!(resp.status == 301, "victim: {}", resp.summary());
    Ok(resp.header("location").unwrap_or("").to_string())
}

#[tokio::test]
async fn absolute_form_target_wins_over_host_and_is_what_the_origin_gets() -> anyhow::Result<()> {
    // RFC 9112 §3.2.2: the absolute-form's authority wins; a proxy generates Host from it.
    let (origin, node) = outpost_tests::shop().await?;
    redirect_by_host(&origin);
    let attack = b"GET http://shop.test/dir HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    let resp = outpost_tests::raw_exchange(node.http_addr(), attack).await?;
    assert_eq!(resp.status, 301, "{}", resp.head);
    assert_eq!(origin.last("/dir")?.host(), Some("shop.test"), "the origin got the client's Host");
    assert_eq!(victim_location(&node).await?, "http://shop.test/dir/");
    Ok(())
}

#[tokio::test]
async fn a_host_with_userinfo_tricks_is_refused() -> anyhow::Result<()> {
    // RFC 9112 §3.2: a Host that is not `uri-host [":" port]` is 400. `shop.test:@evil.example`
    // reads as shop.test to a parser that cuts at ':' and as evil.example to one that takes
    // what follows '@'.
    let (origin, node) = outpost_tests::shop().await?;
    redirect_by_host(&origin);
    for attack in [
        &b"GET /dir HTTP/1.1\r\nHost: shop.test:@evil.example\r\nConnection: close\r\n\r\n"[..],
        b"GET http://shop.test:@evil.example/dir HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
        b"GET /dir HTTP/1.1\r\nHost: shop.test:80:evil\r\nConnection: close\r\n\r\n",
    ] {
        let resp = outpost_tests::raw_exchange(node.http_addr(), attack).await?;
        check_raw_error(&resp, 400).map_err(|e| e.context(String::from_utf8_lossy(attack).into_owned()))?;
    }
    assert_eq!(origin.count("/dir"), 0, "a refused request reached the origin");
    assert_eq!(victim_location(&node).await?, "http://shop.test/dir/");
    Ok(())
}

#[tokio::test]
async fn two_host_fields_are_refused() -> anyhow::Result<()> {
    // RFC 9112 §3.2: more than one Host field line is 400.
    let (origin, node) = outpost_tests::shop().await?;
    redirect_by_host(&origin);
    let attack = b"GET /dir HTTP/1.1\r\nHost: shop.test\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    check_raw_error(&outpost_tests::raw_exchange(node.http_addr(), attack).await?, 400)?;
    assert_eq!(origin.count("/dir"), 0);
    assert_eq!(victim_location(&node).await?, "http://shop.test/dir/");
    let metrics = node.admin(http::Method::GET, "/metrics", "").await?.text();
    assert!(metrics.contains("outpost_host_refused_total{reason=\"duplicate\"} 1"), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn the_clients_port_is_not_forwarded() -> anyhow::Result<()> {
    // The cache key holds the host without the port, so the port must not reach the origin
    // either: `Host: shop.test:1` would otherwise put `:1` in a redirect stored for everyone.
    let (origin, node) = outpost_tests::shop().await?;
    redirect_by_host(&origin);
    let resp = node.get("shop.test:1", "/dir").await?;
    assert_eq!(resp.status, 301, "{}", resp.summary());
    assert_eq!(origin.last("/dir")?.host(), Some("shop.test"));
    assert_eq!(victim_location(&node).await?, "http://shop.test/dir/");
    Ok(())
}

#[tokio::test]
async fn h2_authority_and_another_host_are_refused() -> anyhow::Result<()> {
    // RFC 9113 §8.3.1: a Host that identifies another entity than :authority is malformed.
    let (origin, node) = outpost_tests::shop().await?;
    redirect_by_host(&origin);
    let attack = node.send(Req::get("shop.test", "/dir").h2().header("host", "evil.example")).await?;
    check_error(&attack, 400)?;
    assert_eq!(origin.count("/dir"), 0);
    // The same host, written differently, is the same entity (RFC 3986 §6.2.3).
    let same = node.send(Req::get("shop.test", "/dir").h2().header("host", "Shop.Test:80")).await?;
    assert_eq!(same.status, 301, "{}", same.summary());
    assert_eq!(origin.last("/dir")?.host(), Some("shop.test"));
    assert_eq!(victim_location(&node).await?, "http://shop.test/dir/");
    Ok(())
}

#[tokio::test]
async fn h3_with_a_second_host_field_is_refused() -> anyhow::Result<()> {
    // RFC 9114 §4.3.1: :authority and Host must name the same host. The h3 library compares
    // :authority with the first Host only; a second one is the way past it.
    let ca = TestCa::new("authority test CA")?;
    let cert = ca.issue(&["shop.test"])?;
    let origin = Origin::start().await?;
    redirect_by_host(&origin);
    let config =
        NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], origin.url())).certificate(cert).http3(true);
    let node = outpost_tests::EdgeNode::start(config).await?;
    let attack = Req::get("shop.test", "/dir").header("host", "shop.test").header("host", "evil.example");
    let resp = h3client::send(node.https_addr()?, &ca, "shop.test", &attack).await?;
    check_error(&resp, 400)?;
    assert_eq!(origin.count("/dir"), 0);
    let fine = h3client::send(node.https_addr()?, &ca, "shop.test", &Req::get("shop.test", "/dir")).await?;
    assert_eq!(fine.status, 301, "{}", fine.summary());
    assert_eq!(fine.header("location"), Some("http://shop.test/dir/"));
    Ok(())
}
