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
