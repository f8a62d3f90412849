//! Issue 17, domain control before traffic, against real processes: a `control-plane`, an
//! edge node that follows it, an origin, and `pebble-challtestsrv` as the DNS resolver the
//! control plane looks proofs up through.
//!
//! - A tenant adds a host: the edge does not serve it (404, as an unknown host) until the TXT
//!   record `_outpost-challenge.<host>` holds the domain's token and a check finds it.
//! - The HTTP proof: the token answered at `/.well-known/outpost-challenge/<token>` by the
//!   host's server; a host resolving into a private network is never fetched.
//! - Another tenant's host under a verified domain, or a wildcard covering one, is 409
//!   `domain_claimed` naming the domain; a wildcard needs the DNS proof.
//! - Statuses survive a control-plane restart; with the resolver away a check is 503
//!   `resolver_unavailable` and what is served does not change.
//! - A proof removed lapses after `lapse_after` re-checks in a row, and only then stops traffic.

use std::time::{Duration, Instant};

use http::Method;
use outpost_tests::challtestsrv::ChallTestSrv;
use outpost_tests::control::{ControlConfig, ControlPlane, OPERATOR, expect_error, json};
use outpost_tests::fleet::{Fleet, FleetSpec, TENANT_TOKEN, wait_served};
use outpost_tests::{EdgeNode, Reply};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(20);
const GLOBEX: &str = "globex-token";

/// A control plane with no owned domains (every host needs its proof) that looks proofs up
/// through `dns`; `lines` are more `[domains]` lines.
fn config(dns: &ChallTestSrv, lines: &[&str]) -> ControlConfig {
    let mut config = ControlConfig::default()
        .nodes("heartbeat_interval = \"200ms\"")
        .owned(&[])
        .domains(&format!("resolver = \"{}\"", dns.dns()))
        .domains("check_timeout = \"1s\"");
    for line in lines {
        config = config.domains(line);
    }
    config
}

async fn call(
    cp: &ControlPlane,
    method: Method,
    path: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<outpost_tests::Resp> {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    cp.call(method, path, Some(token), &body).await
}

/// `PUT /v1/services/{id}` as `token`; the answer.
async fn put_service(fleet: &Fleet, token: &str, id: &str, hosts: &[&str]) -> anyhow::Result<outpost_tests::Resp> {
    let body = json!({"hosts": hosts, "origin": fleet.origin.url()});
    call(&fleet.cp, Method::PUT, &format!("/v1/services/{id}"), token, &body).await
}

/// The service's domain for `host`.
async fn domain(cp: &ControlPlane, service: &str, host: &str) -> anyhow::Result<Value> {
    let resp = call(cp, Method::GET, &format!("/v1/services/{service}/domains"), OPERATOR, &Value::Null).await?;
    let list = json(&resp)?;
    anyhow::ensure!(resp.status == 200, "GET domains: {list}");
    let found = list["domains"].as_array().and_then(|d| d.iter().find(|d| d["host"] == host)).cloned();
    found.ok_or_else(|| anyhow::anyhow!("no domain {host} in {list}"))
}

/// Waits until every node acknowledged `seq` (so what it serves reflects the change).
async fn wait_acked(cp: &ControlPlane, seq: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let nodes = json(&call(cp, Method::GET, "/v1/nodes", OPERATOR, &Value::Null).await?)?;
        let acked = nodes["nodes"].as_array().into_iter().flatten().all(|n| n["acked"].as_u64() >= Some(seq));
        if acked && nodes["nodes"].as_array().is_some_and(|n| !n.is_empty()) {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < LIMIT, "nodes did not ack {seq}: {nodes}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn head(cp: &ControlPlane) -> anyhow::Result<u64> {
    let events = json(&call(cp, Method::GET, "/v1/events?from=1&limit=1000", OPERATOR, &Value::Null).await?)?;
    Ok(events["events"].as_array().and_then(|e| e.last()).and_then(|e| e["seq"].as_u64()).unwrap_or(0))
}

async fn status_on(edge: &EdgeNode, host: &str) -> anyhow::Result<u16> {
    Ok(edge.get(host, "/").await?.status.as_u16())
}

/// The scenario, by DNS: pending and not served; TXT set; checked; served. Then
/// another tenant's claims under it, a restart, and the resolver away.
#[tokio::test]
async fn a_host_is_served_only_once_its_txt_record_is_found() -> anyhow::Result<()> {
    let mut dns = ChallTestSrv::start().await?;
    let mut fleet = Fleet::start_with(FleetSpec::one_edge(), config(&dns, &["pending_interval = \"1d\""])).await?;
    fleet.origin.route("/", Reply::ok("shop home"));
    let edge = &fleet.edges[0];

    let resp = put_service(&fleet, TENANT_TOKEN, "shop", &["www.shop.test"]).await?;
    let record = json(&resp)?;
    assert_eq!(resp.status, 201, "{record}");
    assert_eq!(record["verified_hosts"], json!([]), "a new host waits for its proof: {record}");
    let pending = domain(&fleet.cp, "shop", "www.shop.test").await?;
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["challenge"]["dns_name"], "_outpost-challenge.www.shop.test", "{pending}");
    let token = pending["token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(pending["challenge"]["dns_value"], token.as_str());
    wait_acked(&fleet.cp, record["version"].as_u64().unwrap_or(0)).await?;
    assert_eq!(status_on(edge, "www.shop.test").await?, 404, "an unverified host is an unknown host");
    assert_eq!(fleet.origin.total(), 0);

    // Asked before the record exists: 422 saying what was looked up.
    let check = "/v1/services/shop/domains/www.shop.test/check";
    let resp = call(&fleet.cp, Method::POST, check, TENANT_TOKEN, &Value::Null).await?;
    let error = expect_error(&resp, 422, "not_verified")?;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("no TXT record at _outpost-challenge.www.shop.test"), "{message}");
    // A wrong value is no better.
    dns.set_txt("_outpost-challenge.www.shop.test", "not-the-token").await?;
    let resp = call(&fleet.cp, Method::POST, check, TENANT_TOKEN, &Value::Null).await?;
    expect_error(&resp, 422, "not_verified")?;

    dns.set_txt("_outpost-challenge.www.shop.test", &token).await?;
    let resp = call(&fleet.cp, Method::POST, check, TENANT_TOKEN, &Value::Null).await?;
    let answer = json(&resp)?;
    assert_eq!(resp.status, 200, "{answer}");
    assert_eq!(
        (answer["domain"]["status"].as_str(), answer["domain"]["method"].as_str()),
        (Some("verified"), Some("dns"))
    );
    let started = Instant::now();
    assert_eq!(wait_served(edge, "www.shop.test", "/").await?, 200);
    println!("verified host served by the edge {:?} after the check answered", started.elapsed());
    assert_eq!(edge.get("www.shop.test", "/").await?.text(), "shop home");

    // Another tenant: a host under the verified one, and a wildcard covering it.
    for (hosts, named) in [(["evil.www.shop.test"], "www.shop.test"), (["*.shop.test"], "www.shop.test")] {
        let resp = put_service(&fleet, GLOBEX, "evil", &hosts).await?;
        let error = expect_error(&resp, 409, "domain_claimed")?;
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(named) && message.starts_with("hosts[0]"), "{hosts:?}: {message}");
        assert!(!message.contains("acme"), "the other tenant is not named: {message}");
    }
    // Beside it is free (and pending).
    let resp = put_service(&fleet, GLOBEX, "other", &["api.shop.test"]).await?;
    assert_eq!(resp.status, 201, "{}", resp.text());

    // A wildcard needs the DNS proof: HTTP would not do.
    let resp = put_service(&fleet, TENANT_TOKEN, "wild", &["*.wild.test"]).await?;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = call(&fleet.cp, Method::POST, "/v1/services/wild/domains/*.wild.test/check", TENANT_TOKEN, &Value::Null)
        .await?;
    let error = expect_error(&resp, 422, "not_verified")?;
    assert!(error["message"].as_str().unwrap_or_default().contains("a wildcard needs the DNS proof"), "{error}");
    // Its TXT record is at the wildcard's zone.
    let wild = domain(&fleet.cp, "wild", "*.wild.test").await?;
    assert_eq!(wild["challenge"]["dns_name"], "_outpost-challenge.wild.test");
    assert_eq!(wild["challenge"]["http_url"], Value::Null);
    dns.set_txt("_outpost-challenge.wild.test", wild["token"].as_str().unwrap_or_default()).await?;
    let resp = call(&fleet.cp, Method::POST, "/v1/services/wild/domains/*.wild.test/check", TENANT_TOKEN, &Value::Null)
        .await?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(wait_served(edge, "a.b.wild.test", "/").await?, 200);

    // A tenant never sees another's domains.
    let resp = call(&fleet.cp, Method::GET, "/v1/services/shop/domains", GLOBEX, &Value::Null).await?;
    expect_error(&resp, 404, "not_found")?;
    let theirs = json(&call(&fleet.cp, Method::GET, "/v1/domains", GLOBEX, &Value::Null).await?)?;
    let hosts: Vec<&str> =
        theirs["domains"].as_array().into_iter().flatten().filter_map(|d| d["host"].as_str()).collect();
    assert_eq!(hosts, ["api.shop.test"], "{theirs}");

    // A restart keeps every status.
    fleet.restart_control_plane().await?;
    assert_eq!(domain(&fleet.cp, "shop", "www.shop.test").await?["status"], "verified");
    assert_eq!(domain(&fleet.cp, "other", "api.shop.test").await?["status"], "pending");

    // The resolver away: a clear 503, the domain stays verified, the edge keeps serving.
    let before = head(&fleet.cp).await?;
    dns.stop();
    let resp = call(&fleet.cp, Method::POST, check, TENANT_TOKEN, &Value::Null).await?;
    let error = expect_error(&resp, 503, "resolver_unavailable")?;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("stays verified") && message.contains("resolver"), "{message}");
    assert_eq!(domain(&fleet.cp, "shop", "www.shop.test").await?["status"], "verified");
    assert_eq!(head(&fleet.cp).await?, before, "no new version for nodes");
    assert_eq!(status_on(&fleet.edges[0], "www.shop.test").await?, 200);

    // Metrics count domains by status and checks by outcome.
    let metrics = call(&fleet.cp, Method::GET, "/metrics", OPERATOR, &Value::Null).await?.text();
    for line in [
        "outpost_cp_domains{status=\"verified\"} 2",
        "outpost_cp_domains{status=\"pending\"} 1",
        "outpost_cp_domain_checks_total{outcome=\"inconclusive\"} ",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    Ok(())
}

/// The HTTP proof: the host's server answers the token; a host resolving into a private
/// network is never fetched (no SSRF through the check).
#[tokio::test]
async fn the_http_proof_is_fetched_from_the_host_and_never_from_a_private_network() -> anyhow::Result<()> {
    let dns = ChallTestSrv::start().await?;
    // The host's own server: a test origin on 127.0.0.1 (challtestsrv answers every A query
    // with 127.0.0.1), on the port domains.http_port names.
    let origin = outpost_tests::Origin::start().await?;
    let port = origin.addr().port();
    // The harness's tenant_upstream_allow: loopback, where the test servers are.
    let cfg = config(&dns, &["pending_interval = \"1d\"", &format!("http_port = {port}")]);
    let fleet = Fleet::start_with(FleetSpec::one_edge(), cfg).await?;
    let resp = call(
        &fleet.cp,
        Method::PUT,
        "/v1/services/shop",
        TENANT_TOKEN,
        &json!({"hosts": ["www.shop.test", "meta.shop.test", "inside.shop.test", "moved.shop.test"], "origin": origin.url()}),
    )
    .await?;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let www = domain(&fleet.cp, "shop", "www.shop.test").await?;
    let token = www["token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(www["challenge"]["http_url"], format!("http://www.shop.test/.well-known/outpost-challenge/{token}"));
    origin.route(&format!("/.well-known/outpost-challenge/{token}"), Reply::ok(format!("{token}\n")));
    origin.route("/", Reply::ok("home"));

    let resp =
        call(&fleet.cp, Method::POST, "/v1/services/shop/domains/www.shop.test/check", TENANT_TOKEN, &Value::Null)
            .await?;
    let answer = json(&resp)?;
    assert_eq!(resp.status, 200, "{answer}");
    assert_eq!(answer["domain"]["method"], "http");
    let fetched = origin.last(&format!("/.well-known/outpost-challenge/{token}"))?;
    assert_eq!(fetched.host(), Some("www.shop.test"), "asked with the host's name");
    assert_eq!(wait_served(&fleet.edges[0], "www.shop.test", "/").await?, 200);

    // A name that resolves to the cloud's metadata address or a private network: refused
    // before any connection.
    for (host, addr, network) in
        [("meta.shop.test", "169.254.169.254", "169.254.0.0/16"), ("inside.shop.test", "10.1.2.3", "10.0.0.0/8")]
    {
        dns.add_a(host, &[addr]).await?;
        let before = origin.total();
        let path = format!("/v1/services/shop/domains/{host}/check");
        let resp = call(&fleet.cp, Method::POST, &path, TENANT_TOKEN, &Value::Null).await?;
        let error = expect_error(&resp, 422, "not_verified")?;
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("not fetched: {addr} is in {network}")), "{message}");
        assert_eq!(origin.total(), before, "nothing was fetched");
    }
    // A redirect is not followed.
    let moved = domain(&fleet.cp, "shop", "moved.shop.test").await?;
    let token = moved["token"].as_str().unwrap_or_default().to_owned();
    origin.route(
        &format!("/.well-known/outpost-challenge/{token}"),
        Reply::status(302).header("location", format!("http://www.shop.test/.well-known/outpost-challenge/{token}")),
    );
    let path = "/v1/services/shop/domains/moved.shop.test/check";
    let resp = call(&fleet.cp, Method::POST, path, TENANT_TOKEN, &Value::Null).await?;
    let error = expect_error(&resp, 422, "not_verified")?;
    assert!(
        error["message"].as_str().unwrap_or_default().contains("status 302 Found (redirects are not followed)"),
        "{error}"
    );
    assert_eq!(domain(&fleet.cp, "shop", "moved.shop.test").await?["status"], "pending");
    Ok(())
}

/// A removed proof: the served domain is `failing` but served until `lapse_after` re-checks
/// in a row found it gone, then lapsed and not served; the proof back makes it verified.
#[tokio::test]
async fn a_removed_proof_lapses_after_the_rechecks_and_comes_back_with_the_proof() -> anyhow::Result<()> {
    let dns = ChallTestSrv::start().await?;
    let lines = ["pending_interval = \"1s\"", "recheck_interval = \"1s\"", "lapse_after = 3"];
    let fleet = Fleet::start_with(FleetSpec::one_edge(), config(&dns, &lines)).await?;
    fleet.origin.route("/", Reply::ok("home"));
    let resp = put_service(&fleet, TENANT_TOKEN, "shop", &["www.shop.test"]).await?;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let token = domain(&fleet.cp, "shop", "www.shop.test").await?["token"].as_str().unwrap_or_default().to_owned();
    // The periodic check finds it without being asked.
    dns.set_txt("_outpost-challenge.www.shop.test", &token).await?;
    let started = Instant::now();
    assert_eq!(wait_served(&fleet.edges[0], "www.shop.test", "/").await?, 200);
    println!("served {:?} after the TXT record was set (pending_interval 1s)", started.elapsed());

    dns.clear_txt("_outpost-challenge.www.shop.test").await?;
    let removed = Instant::now();
    let mut seen = Vec::new();
    loop {
        let d = domain(&fleet.cp, "shop", "www.shop.test").await?;
        let status = d["status"].as_str().unwrap_or_default().to_owned();
        let served = status_on(&fleet.edges[0], "www.shop.test").await?;
        if seen.last().map(|(s, _): &(String, u16)| s) != Some(&status) {
            seen.push((status.clone(), served));
        }
        if status == "lapsed" {
            break;
        }
        anyhow::ensure!(removed.elapsed() < LIMIT, "never lapsed: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let statuses: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(statuses, ["verified", "failing", "lapsed"], "{seen:?}");
    assert_eq!(seen[1].1, 200, "a failing domain is still served: {seen:?}");
    println!("lapsed {:?} after the TXT record was removed (3 re-checks, 1s apart)", removed.elapsed());
    let start = Instant::now();
    while status_on(&fleet.edges[0], "www.shop.test").await? != 404 {
        anyhow::ensure!(start.elapsed() < LIMIT, "a lapsed host is still served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dns.set_txt("_outpost-challenge.www.shop.test", &token).await?;
    assert_eq!(wait_served(&fleet.edges[0], "www.shop.test", "/").await?, 200);
    assert_eq!(domain(&fleet.cp, "shop", "www.shop.test").await?["status"], "verified");
    Ok(())
}

/// The operator's word: by config (`domains.owned`, served at once, others refused under it)
/// and by API (decree, revoke).
#[tokio::test]
async fn the_operator_decrees_by_config_and_by_api() -> anyhow::Result<()> {
    let dns = ChallTestSrv::start().await?;
    let cfg = config(&dns, &["pending_interval = \"1d\"", "owned = { acme = [\"acme.test\"] }"]);
    let fleet = Fleet::start_with(FleetSpec::one_edge(), cfg).await?;
    fleet.origin.route("/", Reply::ok("home"));
    let resp = put_service(&fleet, TENANT_TOKEN, "shop", &["shop.acme.test", "shop.other.test"]).await?;
    let record = json(&resp)?;
    assert_eq!(record["verified_hosts"], json!(["shop.acme.test"]), "{record}");
    assert_eq!(domain(&fleet.cp, "shop", "shop.acme.test").await?["method"], "operator");
    assert_eq!(wait_served(&fleet.edges[0], "shop.acme.test", "/").await?, 200);
    let resp = put_service(&fleet, GLOBEX, "evil", &["evil.acme.test"]).await?;
    let error = expect_error(&resp, 409, "domain_claimed")?;
    assert!(error["message"].as_str().unwrap_or_default().contains("acme.test"), "{error}");

    // outpostctl: the table shows what to publish; a check without the record exits 1 saying why.
    let list = fleet.cp.ctl(Some(TENANT_TOKEN), &["domains", "list", "shop"]).await?;
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let line = list.stdout.lines().find(|l| l.starts_with("shop.other.test")).unwrap_or_default();
    assert!(line.contains("pending") && line.contains("_outpost-challenge.shop.other.test"), "{}", list.stdout);
    let verify = fleet.cp.ctl(Some(TENANT_TOKEN), &["domains", "verify", "shop", "shop.other.test"]).await?;
    assert_eq!(verify.code, Some(1), "{}", verify.stdout);
    assert!(verify.stderr.contains("not_verified") && verify.stderr.contains("no TXT record"), "{}", verify.stderr);
    let decreed = fleet.cp.ctl(Some(TENANT_TOKEN), &["domains", "decree", "shop", "shop.other.test"]).await?;
    assert_eq!(decreed.code, Some(1), "a tenant may not decree: {}", decreed.stdout);

    // Decree by API: operator only.
    let decree = "/v1/services/shop/domains/shop.other.test/decree";
    expect_error(&call(&fleet.cp, Method::POST, decree, TENANT_TOKEN, &Value::Null).await?, 403, "forbidden")?;
    let resp = call(&fleet.cp, Method::POST, decree, OPERATOR, &Value::Null).await?;
    assert_eq!(json(&resp)?["status"], "verified", "{}", resp.text());
    assert_eq!(wait_served(&fleet.edges[0], "shop.other.test", "/").await?, 200);
    let resp =
        call(&fleet.cp, Method::POST, "/v1/services/shop/domains/shop.other.test/revoke", OPERATOR, &Value::Null)
            .await?;
    assert_eq!(json(&resp)?["status"], "pending");
    let start = Instant::now();
    while status_on(&fleet.edges[0], "shop.other.test").await? != 404 {
        anyhow::ensure!(start.elapsed() < LIMIT, "a revoked host is still served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The host's own record stays: the owned one is still served.
    assert_eq!(status_on(&fleet.edges[0], "shop.acme.test").await?, 200);
    Ok(())
}
