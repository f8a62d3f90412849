//! The admin listener: health, readiness and Prometheus metrics.

use http::Method;
use outpost_tests::shop;
use outpost_tests::{Reply, Req};

#[tokio::test]
async fn healthz_and_readyz_answer_200() -> anyhow::Result<()> {
    let (_origin, node) = shop().await?;
    let health = node.admin(Method::GET, "/healthz", "").await?;
    assert_eq!(health.status, 200);
    assert_eq!(health.text().trim(), "ok");
    let ready = node.admin(Method::GET, "/readyz", "").await?;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.text().trim(), "ready");
    Ok(())
}

/// Sum of the samples of every counter whose name contains `part` and ends in `_total`.
fn counter_sum(metrics: &str, part: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let name = l.split(['{', ' ']).next()?;
            let value = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            (name.contains(part) && name.ends_with("_total")).then_some(value)
        })
        .sum()
}

#[tokio::test]
async fn metrics_count_requests() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/m", Reply::ok("m").cache_control("max-age=60"));
    for _ in 0..3 {
        node.get("shop.test", "/m").await?;
    }
    node.send(Req::get("nobody.test", "/")).await?;
    let metrics = node.admin(Method::GET, "/metrics", "").await?;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let requests = counter_sum(&text, "request");
    assert!(requests >= 4.0, "request counters sum to {requests}:\n{text}");
    // Each series by its labels: one miss, two hits of 1 byte each, one unknown host (421).
    for series in [
        "outpost_requests_total{cache=\"miss\",status=\"2xx\",protocol=\"http/1.1\"} 1",
        "outpost_requests_total{cache=\"hit\",status=\"2xx\",protocol=\"http/1.1\"} 2",
        "outpost_requests_total{cache=\"error\",status=\"4xx\",protocol=\"http/1.1\"} 1",
        "outpost_response_body_bytes_total{cache=\"hit\"} 2",
        "outpost_request_duration_seconds_count{cache=\"hit\"} 2",
    ] {
        assert!(text.lines().any(|l| l == series), "no `{series}` in:\n{text}");
    }
    Ok(())
}

/// The admin listener without the token (issue 18, finding 5b): every route but `/healthz`
/// answers 401 with a Bearer challenge (RFC 6750 §3), a wrong token too; the token opens them.
#[tokio::test]
async fn admin_routes_need_the_token() -> anyhow::Result<()> {
    let (_origin, node) = shop().await?;
    let admin = node.admin_addr();
    let purge = r#"{"service":"shop","kind":"all"}"#;
    let routes = [
        (Method::GET, "/healthz", ""),
        (Method::GET, "/metrics", ""),
        (Method::GET, "/upstreams", ""),
        (Method::GET, "/readyz", ""),
        (Method::POST, "/purge", purge),
    ];
    for (method, path, body) in routes {
        for auth in [None, Some("Bearer wrong-token-0123456789"), Some("Basic dGVzdDp0ZXN0")] {
            let mut req = Req::new(method.clone(), "localhost", path).body(body.to_owned());
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let resp = outpost_tests::client::send(admin, &req).await?;
            assert_eq!(resp.status, 401, "{method} {path} with {auth:?}: {}", resp.text());
            assert!(resp.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer")), "{method} {path}");
        }
        let resp = node.admin(method.clone(), path, body).await?;
        assert_eq!(resp.status, 200, "{method} {path} with the token: {}", resp.text());
    }
    Ok(())
}

/// Issue 18: with a token configured, `/healthz` needs it too (the control plane's probes send
/// it); `listen.admin_open_healthz = true` opens `/healthz` alone, for probes that cannot send a
/// header.
#[tokio::test]
async fn healthz_needs_the_token_unless_opened() -> anyhow::Result<()> {
    let (_origin, node) = shop().await?;
    let bare = outpost_tests::client::send(node.admin_addr(), &Req::get("localhost", "/healthz")).await?;
    assert_eq!(bare.status, 401, "{}", bare.text());
    assert!(bare.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer")));
    assert_eq!(node.admin(Method::GET, "/healthz", "").await?.status, 200, "with the token");

    let (_origin, open) = outpost_tests::shop_with(|mut c| {
        c.listen_lines.push("admin_open_healthz = true".to_owned());
        c
    })
    .await?;
    let health = outpost_tests::client::send(open.admin_addr(), &Req::get("localhost", "/healthz")).await?;
    assert_eq!((health.status.as_u16(), health.text().trim()), (200, "ok"), "the opt-in opens /healthz");
    let metrics = outpost_tests::client::send(open.admin_addr(), &Req::get("localhost", "/metrics")).await?;
    assert_eq!(metrics.status, 401, "and nothing else: {}", metrics.text());
    Ok(())
}

/// A node with no admin token configured serves `/healthz` only, whatever a request carries.
#[tokio::test]
async fn without_a_token_configured_only_healthz_is_served() -> anyhow::Result<()> {
    let (_origin, node) = outpost_tests::shop_with(|mut c| {
        c.admin_token = None;
        c
    })
    .await?;
    let health = node.admin(Method::GET, "/healthz", "").await?;
    assert_eq!(health.status, 200);
    let req = Req::get("localhost", "/metrics")
        .header("authorization", format!("Bearer {}", outpost_tests::node::ADMIN_TOKEN));
    let metrics = outpost_tests::client::send(node.admin_addr(), &req).await?;
    assert_eq!(metrics.status, 401, "{}", metrics.text());
    assert!(metrics.text().contains("listen.admin_token_file"), "{}", metrics.text());
    Ok(())
}
