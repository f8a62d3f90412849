//! What a client may tell an origin through the CDN (issue 18): forwarding fields (the client's
//! address, the public host and scheme, the URL really meant) come from the node unless the
//! peer is in a trusted network; and a client's `no-cache` does not reach past a shared cache.

use std::net::{IpAddr, Ipv4Addr};

use outpost_tests::{EdgeNode, NodeConfig, Origin, Recorded, Reply, Req, ServiceSpec, raw_exchange_from};

/// Fields a client forges to steer an origin: its address, host, scheme, and URL overrides.
const FORGED: &[(&str, &str)] = &[
    ("x-forwarded-for", "203.0.113.9"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-scheme", "nothttps"),
    ("x-forwarded-port", "8443"),
    ("x-original-url", "/admin"),
    ("x-rewrite-url", "/admin"),
    ("x-real-ip", "203.0.113.9"),
    ("true-client-ip", "203.0.113.9"),
    ("forwarded", "for=203.0.113.9;host=evil.example;proto=https"),
];

fn forged(mut req: Req) -> Req {
    for (name, value) in FORGED {
        req = req.header(name, *value);
    }
    req
}

/// The request the origin got, as `name: value` lines of the fields in [`FORGED`] (all values
/// of each), for one comparison that shows everything on failure.
fn claims(r: &Recorded) -> Vec<String> {
    FORGED.iter().map(|(name, _)| format!("{name}: {}", r.header_joined(name).unwrap_or_default())).collect()
}

fn lines(expected: &[(&str, &str)]) -> Vec<String> {
    expected.iter().map(|(n, v)| format!("{n}: {v}")).collect()
}

#[tokio::test]
async fn an_untrusted_clients_forwarding_fields_never_reach_the_origin() -> anyhow::Result<()> {
    let (origin, node) = outpost_tests::shop().await?;
    origin.route("/p", Reply::ok("p"));
    let resp = node.send(forged(Req::get("shop.test", "/p"))).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let seen = origin.last("/p")?;
    let want = [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-host", "shop.test"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-scheme", ""),
        ("x-forwarded-port", ""),
        ("x-original-url", ""),
        ("x-rewrite-url", ""),
        ("x-real-ip", "127.0.0.1"),
        ("true-client-ip", ""),
        ("forwarded", "for=127.0.0.1;host=shop.test;proto=http"),
    ];
    assert_eq!(claims(&seen), lines(&want));
    Ok(())
}

#[tokio::test]
async fn a_trusted_network_keeps_its_forwarding_fields() -> anyhow::Result<()> {
    // A load balancer in front of the node: `listen.trusted_networks`.
    let (origin, node) =
        outpost_tests::shop_with(|c| c.listen_line("trusted_networks = [\"127.0.0.0/8\", \"::1\"]")).await?;
    origin.route("/p", Reply::ok("p"));
    node.send(forged(Req::get("shop.test", "/p"))).await?;
    let seen = origin.last("/p")?;
    let want = [
        ("x-forwarded-for", "203.0.113.9, 127.0.0.1"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-scheme", "nothttps"),
        ("x-forwarded-port", "8443"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-real-ip", "203.0.113.9"),
        ("true-client-ip", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9;host=evil.example;proto=https, for=127.0.0.1;host=shop.test;proto=http"),
    ];
    assert_eq!(claims(&seen), lines(&want));
    Ok(())
}

#[tokio::test]
async fn through_edge_and_shield_the_origin_learns_the_real_client_only() -> anyhow::Result<()> {
    // The client connects from 127.0.0.2; the edge reaches the shield from 127.0.0.1, which the
    // shield's service trusts. The origin must see the client's address, not the edge's, and
    // none of what the client forged.
    let origin = Origin::start().await?;
    origin.route("/chain", Reply::ok("chain").cache_control("max-age=60"));
    let shield_service =
        ServiceSpec::new("shop", &["shop.test"], origin.url()).line("trusted_networks = [\"127.0.0.1/32\"]");
    let shield = EdgeNode::start_shield(NodeConfig::with_service(shield_service).name("shield-1")).await?;
    let edge_service = ServiceSpec::new("shop", &["shop.test"], origin.url())
        .shields(vec![(shield.url(), "fra".into())])
        .without_health_checks();
    let edge = EdgeNode::start(NodeConfig::with_service(edge_service).name("edge-1")).await?;

    let mut request = String::from("GET /chain HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n");
    for (name, value) in FORGED {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let resp = raw_exchange_from(Some(client), edge.http_addr(), request.as_bytes()).await?;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let seen = origin.last("/chain")?;
    assert!(seen.header_joined("via").unwrap_or_default().contains("shield-1"), "not through the shield");
    let want = [
        ("x-forwarded-for", "127.0.0.2, 127.0.0.1"),
        ("x-forwarded-host", "shop.test"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-scheme", ""),
        ("x-forwarded-port", ""),
        ("x-original-url", ""),
        ("x-rewrite-url", ""),
        ("x-real-ip", "127.0.0.2"),
        ("true-client-ip", ""),
        ("forwarded", "for=127.0.0.2;host=shop.test;proto=http, for=127.0.0.1;host=shop.test;proto=http"),
    ];
    assert_eq!(claims(&seen), lines(&want));
    Ok(())
}

#[tokio::test]
async fn a_clients_no_cache_is_answered_from_the_cache_by_default() -> anyhow::Result<()> {
    // A shared cache need not obey request directives (RFC 9111 §5.2.1); obeying them lets any
    // client send every request to the origin.
    let (origin, node) = outpost_tests::shop().await?;
    origin.route("/f", Reply::ok("fresh").cache_control("max-age=60").etag("\"f\""));
    node.prime("shop.test", "/f").await?;
    let flood = [
        ("cache-control", "no-cache"),
        ("pragma", "no-cache"),
        ("cache-control", "max-age=0"),
        ("cache-control", "no-store"),
        ("cache-control", "min-fresh=3600"),
    ];
    for (name, value) in flood {
        let resp = node.send(Req::get("shop.test", "/f").header(name, value)).await?;
        assert!(resp.cache_status().hit(), "{name}: {value}: {}", resp.summary());
    }
    assert_eq!(origin.count("/f"), 1, "a client's directive reached the origin");
    Ok(())
}

#[tokio::test]
async fn a_method_override_does_not_turn_a_cached_get_into_another_method() -> anyhow::Result<()> {
    // An origin framework that honours X-HTTP-Method-Override (Symfony, Laravel, Express's
    // method-override) would run the fill as a DELETE, and its answer would be stored as the page.
    let (origin, node) = outpost_tests::shop().await?;
    origin.route_fn("/item", |r: &Recorded| {
        let method = r.header("x-http-method-override").or(r.header("x-http-method")).unwrap_or("GET");
        Reply::ok(format!("ran as {method}")).cache_control("max-age=60")
    });
    let attack = node
        .send(
            Req::get("shop.test", "/item").header("x-http-method-override", "DELETE").header("x-http-method", "DELETE"),
        )
        .await?;
    assert_eq!(attack.text(), "ran as GET", "{}", attack.summary());
    let victim = node.get("shop.test", "/item").await?;
    assert_eq!(victim.text(), "ran as GET", "{}", victim.summary());
    Ok(())
}
