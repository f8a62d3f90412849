//! A tenant's upstream may not lead into the node's own networks, whatever its name resolves to
//! (issue 18, finding 5a). The control plane does not resolve names, so a tenant's
//! `origin = "http://some.name:9090"` that resolves to 127.0.0.1 passes its check; the node
//! judges every address it resolves, just before connecting, against the same list (with its
//! own `limits.tenant_upstream_allow`). The control plane below lets loopback through, as it
//! lets through any name: the node alone must stop it.

use std::time::{Duration, Instant};

use http::Method;
use outpost_tests::control::{ControlConfig, ControlPlane};
use outpost_tests::fleet::{TENANT_TOKEN, follower, wait_served};
use outpost_tests::{EdgeNode, Origin, Reply, ServiceSpec};

/// A tenant's service through the control plane's API.
async fn put_service(cp: &ControlPlane, name: &str, config: serde_json::Value) -> anyhow::Result<()> {
    let path = format!("/v1/services/{name}");
    let resp = cp.call(Method::PUT, &path, Some(TENANT_TOKEN), &config.to_string()).await?;
    anyhow::ensure!(resp.status.is_success(), "PUT {path}: {} {}", resp.status, resp.text());
    Ok(())
}

/// Waits (bounded) until `node`'s log holds `needle`.
async fn wait_logged(node: &EdgeNode, needle: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    while !node.stderr_text().contains(needle) {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(10),
            "no `{needle}` in:\n{}\nstdout:\n{}",
            node.stderr_text(),
            node.stdout_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_tenant_upstream_that_resolves_into_the_nodes_network_is_refused_at_connect() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    let origin = Origin::start().await?;
    origin.route("/secret", Reply::ok("internal only"));
    origin.route("/own", Reply::ok("operator's"));
    let port = origin.addr().port();
    // The default node: no network allowed to tenants. Its own (file) service is the
    // operator's, on loopback like every test origin.
    let mut strict = follower("edge-strict", "fra", "eu-central", cp.addr()).service(ServiceSpec::new(
        "own",
        &["own.test"],
        origin.url(),
    ));
    strict.tenant_upstream_allow = Vec::new();
    let strict = EdgeNode::start(strict).await?;
    // A node whose operator allows loopback to tenants (the harness default).
    let lenient = EdgeNode::start(follower("edge-lenient", "fra", "eu-central", cp.addr())).await?;

    // A name (`localhost` resolves to 127.0.0.1 here) and an IPv4-mapped IPv6 literal.
    put_service(&cp, "shop", serde_json::json!({"hosts": ["shop.test"], "origin": format!("http://localhost:{port}")}))
        .await?;
    let mapped = format!("http://[::ffff:127.0.0.1]:{port}");
    put_service(&cp, "mapped", serde_json::json!({"hosts": ["mapped.test"], "origin": mapped})).await?;

    for host in ["shop.test", "mapped.test"] {
        assert_eq!(wait_served(&strict, host, "/secret").await?, 502, "{host}");
        let resp = strict.get(host, "/secret").await?;
        assert_eq!(resp.status, 502, "{host}");
        assert!(!resp.text().contains("internal only"), "{host}: {}", resp.text());
    }
    assert_eq!(origin.count("/secret"), 0, "the strict node never connected");
    wait_logged(&strict, "127.0.0.1 is in 127.0.0.0/8, loopback").await?;
    wait_logged(&strict, "::ffff:127.0.0.1 carries 127.0.0.1, which is in 127.0.0.0/8").await?;
    wait_logged(&strict, "upstream_forbidden").await?;
    // Access-log lines reach stdout from the writer thread within `log.access_flush`.
    let forbidden = |l: &serde_json::Value| l["status"] == 502 && l.to_string().contains("upstream_forbidden");
    outpost_tests::eventually(std::time::Duration::from_secs(5), || strict.access_log().iter().any(forbidden)).await;
    let logged = strict.access_log();
    assert!(logged.iter().any(forbidden), "no access-log line with upstream_forbidden: {logged:?}");

    // The operator's own loopback origin still works on the strict node.
    let own = strict.get("own.test", "/own").await?;
    assert_eq!((own.status.as_u16(), own.text()), (200, "operator's".to_owned()));
    // Where the operator allows loopback, the same tenant services work.
    for host in ["shop.test", "mapped.test"] {
        assert_eq!(wait_served(&lenient, host, "/secret").await?, 200, "{host}");
    }
    Ok(())
}
