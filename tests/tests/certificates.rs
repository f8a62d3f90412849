//! Certificates by API and SNI done right (issue 17): a real control plane, edges that follow it
//! with an HTTPS listener and no certificate of their own, real TLS clients.
//!
//! - An uploaded certificate reaches both edges and serves without a restart; replacing it
//!   swaps it under an open HTTP/2 connection, which keeps working.
//! - A bad upload gets a precise 400; another tenant can neither read, replace nor borrow it
//!   (a certificate is served only for its own service's hosts); a name no certificate covers
//!   gets a TLS `unrecognized_name` alert.
//! - An edge restarted while the control plane is down still serves it (its key on disk, 0600).
//! - The private key is nowhere in clear: API answers, the event log, logs, the store's file
//!   (and PostgreSQL's table).
//! - SIGHUP picks up a renewed file certificate at the same path, and keeps the one in force
//!   when the file is broken.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Empty};
use outpost_tests::control::{ControlConfig, ControlPlane, OPERATOR, expect_error, json};
use outpost_tests::fleet::{TENANT_TOKEN, follower, metric, wait_served};
use outpost_tests::pg::PgCluster;
use outpost_tests::tls::Leaf;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec, TestCa};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Bound on waiting for a change to reach an edge (not a measurement).
const LIMIT: Duration = Duration::from_secs(20);

/// A TLS connection to `addr` for `sni`, trusting `ca`, offering `alpn`.
async fn connect(
    addr: std::net::SocketAddr,
    ca: &TestCa,
    sni: &str,
    alpn: &[&[u8]],
) -> anyhow::Result<TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(ca.client_config(alpn)?));
    let tcp = TcpStream::connect(addr).await?;
    Ok(connector.connect(ServerName::try_from(sni.to_owned())?, tcp).await?)
}

/// The leaf the server presented on `stream`.
fn presented(stream: &TlsStream<TcpStream>) -> Option<CertificateDer<'static>> {
    stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned())
}

/// Waits until a new connection to `edge` for `sni` is served `leaf` and answers 200.
async fn wait_serving(edge: &EdgeNode, ca: &TestCa, sni: &str, leaf: &Leaf) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let req = Req::new(Method::GET, sni, "/").tls(ca, sni)?;
        let outcome = edge.send(req).await;
        if let Ok(resp) = &outcome
            && resp.status == 200
            && resp.peer_cert.as_ref() == Some(&leaf.cert_der)
        {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < LIMIT,
            "{} does not serve the certificate for {sni}: {:?}\nstderr:\n{}",
            edge.name(),
            outcome.map(|r| r.status),
            edge.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a handshake with `edge` for `sni` is refused; returns the client's error.
async fn wait_refused(edge: &EdgeNode, ca: &TestCa, sni: &str) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        match connect(edge.https_addr()?, ca, sni, &[b"http/1.1"]).await {
            Err(error) => return Ok(format!("{error:#}")),
            Ok(_) => anyhow::ensure!(start.elapsed() < LIMIT, "{} still serves {sni}", edge.name()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An edge following `cp` with an HTTPS listener and no certificate of its own, no default.
async fn edge(name: &str, cp: &ControlPlane) -> anyhow::Result<EdgeNode> {
    let mut config = follower(name, "fra", "eu-central", cp.addr());
    config.https = true;
    config.tls_default_host = Some(String::new());
    EdgeNode::start(config).await
}

async fn put_service(cp: &ControlPlane, token: &str, id: &str, hosts: &[&str], origin: &Origin) -> anyhow::Result<()> {
    let body = json!({"hosts": hosts, "origin": origin.url()});
    let resp = cp.call(Method::PUT, &format!("/v1/services/{id}"), Some(token), &body.to_string()).await?;
    anyhow::ensure!(resp.status.is_success(), "PUT {id}: {} {}", resp.status, resp.text());
    Ok(())
}

fn upload_body(leaf: &Leaf, chain_extra: &str) -> String {
    json!({"chain_pem": format!("{}{chain_extra}", leaf.cert_pem), "key_pem": leaf.key_pem}).to_string()
}

/// The base64 lines of a PEM key: what would show if the key leaked in clear anywhere.
fn key_lines(leaf: &Leaf) -> Vec<String> {
    leaf.key_pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 20).map(str::to_owned).collect()
}

/// rustls names the alert `UnrecognisedName` (its Debug spelling).
fn is_unrecognized_name(error: &str) -> bool {
    error.contains("UnrecognisedName") || error.contains("UnrecognizedName")
}

fn assert_absent(what: &str, text: &str, leaf: &Leaf) -> anyhow::Result<()> {
    for line in key_lines(leaf) {
        anyhow::ensure!(!text.contains(&line), "the private key is in clear in {what}");
    }
    anyhow::ensure!(!text.contains("PRIVATE KEY-----"), "a PEM private key is in {what}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uploaded_certificate_serves_on_every_edge_and_swaps_under_an_open_connection() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home".to_owned()));
    let mut cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    let edges = [edge("edge-1", &cp).await?, edge("edge-2", &cp).await?];
    put_service(&cp, TENANT_TOKEN, "shop", &["shop.test", "*.shop.test"], &origin).await?;
    for e in &edges {
        wait_served(e, "shop.test", "/").await?;
    }
    let ca = TestCa::new("Outpost Test CA")?;

    // Before any certificate: the alert, never a certificate.
    let refused = wait_refused(&edges[0], &ca, "shop.test").await?;
    anyhow::ensure!(is_unrecognized_name(&refused), "{refused}");

    // Upload: 201, the record without the key; both edges serve it, no restart.
    let first = ca.issue(&["shop.test", "*.shop.test"])?;
    let path = "/v1/services/shop/certificates/www";
    let resp = cp.call(Method::PUT, path, Some(TENANT_TOKEN), &upload_body(&first, "")).await?;
    anyhow::ensure!(resp.status == 201, "{} {}", resp.status, resp.text());
    let record = json(&resp)?;
    assert_absent("the PUT answer", &resp.text(), &first)?;
    anyhow::ensure!(record["names"] == json!(["shop.test", "*.shop.test"]), "{record}");
    anyhow::ensure!(record["issuer"] == "Outpost Test CA" && record["source"] == "upload", "{record}");
    for e in &edges {
        wait_serving(e, &ca, "shop.test", &first).await?;
        wait_serving(e, &ca, "a.shop.test", &first).await?;
    }
    let pids: Vec<Option<u32>> = edges.iter().map(EdgeNode::pid).collect();

    // An open HTTP/2 connection across a replacement: it keeps working on its session.
    let open = connect(edges[0].https_addr()?, &ca, "shop.test", &[b"h2"]).await?;
    anyhow::ensure!(presented(&open).as_ref() == Some(&first.cert_der));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(open))
            .await?;
    tokio::spawn(conn);
    let get = || http::Request::get("https://shop.test/").body(Empty::<Bytes>::new());
    anyhow::ensure!(sender.send_request(get()?).await?.status() == 200);
    let second = ca.issue(&["shop.test", "*.shop.test"])?;
    let resp = cp.call(Method::PUT, path, Some(TENANT_TOKEN), &upload_body(&second, "")).await?;
    anyhow::ensure!(resp.status == 200, "a replacement answers 200: {} {}", resp.status, resp.text());
    for e in &edges {
        wait_serving(e, &ca, "shop.test", &second).await?;
    }
    let after = sender.send_request(get()?).await?;
    anyhow::ensure!(after.status() == 200, "the open connection still works: {}", after.status());
    let body = after.into_body().collect().await?.to_bytes();
    anyhow::ensure!(body.as_ref() == b"home", "{body:?}");
    anyhow::ensure!(edges.iter().map(EdgeNode::pid).collect::<Vec<_>>() == pids, "no restart");

    // An uncovered name: the alert. A handshake count by outcome on the edge.
    let refused = wait_refused(&edges[1], &ca, "other.test").await?;
    anyhow::ensure!(is_unrecognized_name(&refused), "{refused}");
    let text = edges[1].admin(Method::GET, "/metrics", "").await?.text();
    anyhow::ensure!(
        text.contains("outpost_tls_handshakes_total{outcome=\"unrecognized_name\",protocol=\"tcp\"}")
            || text.contains("outpost_tls_handshakes_total{protocol=\"tcp\",outcome=\"unrecognized_name\"}"),
        "{text}"
    );

    // The control plane's expiry gauge, the list, and the key nowhere in clear.
    let metrics = cp.call(Method::GET, "/metrics", Some(OPERATOR), "").await?.text();
    anyhow::ensure!(
        metrics.contains("outpost_tls_certificate_expiry_seconds{service=\"shop\",name=\"www\"}"),
        "{metrics}"
    );
    let list = cp.call(Method::GET, "/v1/certificates", Some(OPERATOR), "").await?;
    anyhow::ensure!(json(&list)?["certificates"][0]["sha256"] == json(&resp)?["sha256"], "{}", list.text());
    let one = cp.call(Method::GET, path, Some(TENANT_TOKEN), "").await?;
    let events = cp.call(Method::GET, "/v1/events?limit=1000", Some(OPERATOR), "").await?;
    for leaf in [&first, &second] {
        assert_absent("GET one", &one.text(), leaf)?;
        assert_absent("GET list", &list.text(), leaf)?;
        assert_absent("the event log", &events.text(), leaf)?;
        assert_absent("the control plane's log", &cp.stderr_text(), leaf)?;
        let store = std::fs::read(cp.dir().join("control-plane.redb"))?;
        assert_absent("the store's file", &String::from_utf8_lossy(&store), leaf)?;
        for e in &edges {
            assert_absent("the edge's log", &e.stderr_text(), leaf)?;
            assert_absent("the edge's access log", &e.stdout_text(), leaf)?;
        }
    }
    anyhow::ensure!(events.text().contains("certificate_put"), "{}", events.text());
    let secrets = cp.dir().join("control-plane.redb.secrets.key");
    use std::os::unix::fs::PermissionsExt;
    anyhow::ensure!(std::fs::metadata(&secrets)?.permissions().mode() & 0o777 == 0o600, "the generated key is 0600");

    // The key on the edge: 0600, under its state directory.
    let key_file = edges[0].dir().join("cache").join("certificates").join("shop").join("www.json");
    anyhow::ensure!(std::fs::metadata(&key_file)?.permissions().mode() & 0o777 == 0o600);

    // The control plane goes away; an edge restarted meanwhile still serves the certificate.
    cp.stop().await?;
    let [mut restarted, other] = edges;
    restarted.restart().await?;
    wait_serving(&restarted, &ca, "shop.test", &second).await?;
    anyhow::ensure!(metric(&restarted, "outpost_control_connected").await? == Some(0.0), "the control plane is down");
    drop(other);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_uploads_and_other_tenants_are_refused_precisely() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home".to_owned()));
    let cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    let edge = edge("edge-1", &cp).await?;
    put_service(&cp, TENANT_TOKEN, "shop", &["shop.test"], &origin).await?;
    put_service(&cp, "globex-token", "evil", &["evil.test"], &origin).await?;
    let ca = TestCa::new("Outpost Test CA")?;
    let good = ca.issue(&["shop.test"])?;
    let other = ca.issue(&["shop.test"])?;
    let expired = ca.issue_valid(&["shop.test"], Some(((2020, 1, 1), (2021, 1, 1))))?;
    let elsewhere = ca.issue(&["blog.test"])?;
    let path = "/v1/services/shop/certificates/www";

    // (what, body, field at fault, words)
    let mismatched = json!({"chain_pem": good.cert_pem, "key_pem": other.key_pem}).to_string();
    let reversed =
        json!({"chain_pem": format!("{}{}", ca.cert_pem(), good.cert_pem), "key_pem": good.key_pem}).to_string();
    let cases = [
        ("a key that is not the leaf's", mismatched, "key_pem", "does not match the leaf"),
        ("an expired certificate", upload_body(&expired, ""), "chain_pem", "expired on 2021-01-01"),
        ("names that miss every host", upload_body(&elsewhere, ""), "chain_pem", "cover none of the service's hosts"),
        ("a chain in the wrong order", reversed, "chain_pem", "does not build"),
        ("not PEM", json!({"chain_pem": "x", "key_pem": "y"}).to_string(), "chain_pem", "no certificate"),
        ("an unknown field", json!({"chain_pem": "x", "key_pem": "y", "pfx": 1}).to_string(), "pfx", "unknown field"),
    ];
    for (what, body, field, words) in cases {
        let resp = cp.call(Method::PUT, path, Some(TENANT_TOKEN), &body).await?;
        let code = if field == "pfx" { "invalid_request" } else { "invalid_certificate" };
        let error = expect_error(&resp, 400, code).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let fields = error["fields"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(
            fields.iter().any(|f| f["path"] == field && f["message"].as_str().is_some_and(|m| m.contains(words))),
            "{what}: {error}"
        );
        assert_absent(what, &resp.text(), &other)?;
        assert_absent(what, &resp.text(), &good)?;
    }
    let log = cp.stderr_text();
    anyhow::ensure!(log.contains("certificate refused"), "a log line per refusal:\n{log}");

    // Acme's certificate, then globex tries to read, replace, delete and borrow it.
    let resp = cp.call(Method::PUT, path, Some(TENANT_TOKEN), &upload_body(&good, "")).await?;
    anyhow::ensure!(resp.status == 201, "{} {}", resp.status, resp.text());
    wait_serving(&edge, &ca, "shop.test", &good).await?;
    for (method, body) in
        [(Method::GET, String::new()), (Method::PUT, upload_body(&other, "")), (Method::DELETE, String::new())]
    {
        let resp = cp.call(method.clone(), path, Some("globex-token"), &body).await?;
        expect_error(&resp, 404, "not_found").map_err(|e| anyhow::anyhow!("globex {method}: {e}"))?;
    }
    let theirs = cp.call(Method::GET, "/v1/certificates", Some("globex-token"), "").await?;
    anyhow::ensure!(json(&theirs)?["certificates"] == json!([]), "globex sees none of acme's: {}", theirs.text());
    // Globex's certificate for shop.test on its own service: refused (not one of its hosts).
    let borrowed = cp
        .call(Method::PUT, "/v1/services/evil/certificates/x", Some("globex-token"), &upload_body(&other, ""))
        .await?;
    expect_error(&borrowed, 400, "invalid_certificate")?;
    // A wildcard that also covers shop.test, on globex's service: served for evil.test only.
    let wide = ca.issue(&["evil.test", "*.test", "shop.test"])?;
    let resp =
        cp.call(Method::PUT, "/v1/services/evil/certificates/x", Some("globex-token"), &upload_body(&wide, "")).await?;
    anyhow::ensure!(resp.status == 201, "{} {}", resp.status, resp.text());
    wait_serving(&edge, &ca, "evil.test", &wide).await?;
    wait_serving(&edge, &ca, "shop.test", &good).await?;
    let refused = wait_refused(&edge, &ca, "blog.test").await?;
    anyhow::ensure!(is_unrecognized_name(&refused), "{refused}");

    // Deleted: the edge stops serving it.
    let resp = cp.call(Method::DELETE, path, Some(TENANT_TOKEN), "").await?;
    anyhow::ensure!(resp.status == 204, "{} {}", resp.status, resp.text());
    let refused = wait_refused(&edge, &ca, "shop.test").await?;
    anyhow::ensure!(is_unrecognized_name(&refused), "{refused}");

    // outpostctl: the same upload and list from a shell.
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &good.cert_pem)?;
    std::fs::write(&key, &good.key_pem)?;
    let args =
        ["certs", "put", "shop", "www", "--cert", cert.to_str().unwrap_or(""), "--key", key.to_str().unwrap_or("")];
    let run = cp.ctl(Some(TENANT_TOKEN), &args).await?;
    anyhow::ensure!(run.code == Some(0) && run.stdout.contains("shop/www: created"), "{run:?}");
    let run = cp.ctl(Some(TENANT_TOKEN), &["certs", "list", "shop"]).await?;
    anyhow::ensure!(run.stdout.contains("Outpost Test CA") && run.stdout.contains("upload"), "{run:?}");
    assert_absent("outpostctl's output", &run.stdout, &good)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_picks_up_a_renewed_file_certificate_and_keeps_it_on_a_bad_file() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home".to_owned()));
    let ca = TestCa::new("Outpost Test CA")?;
    // An IP address among its names too, so a client connecting by address (no SNI) can check it.
    let mut first = ca.issue(&["file.test", "127.0.0.1"])?;
    first.hosts = vec!["file.test".to_owned()];
    let service = ServiceSpec::new("file", &["file.test"], origin.url());
    let config = NodeConfig::with_service(service).certificate(first.clone());
    let mut node = EdgeNode::start(config.clone()).await?;
    wait_serving(&node, &ca, "file.test", &first).await?;
    // No SNI (an IP address): the configured default (the harness sets the first host).
    let by_ip = Req::new(Method::GET, "file.test", "/").tls(&ca, "127.0.0.1")?;
    let resp = node.send(by_ip).await;
    anyhow::ensure!(
        resp.as_ref().is_ok_and(|r| r.peer_cert.as_ref() == Some(&first.cert_der)),
        "{:?}",
        resp.map(|r| r.status)
    );

    // Renewed at the same path: a new connection gets it, without a restart.
    let mut renewed = ca.issue(&["file.test", "127.0.0.1"])?;
    renewed.hosts = vec!["file.test".to_owned()];
    let pid = node.pid();
    let mut next = config.clone();
    next.certificates = vec![renewed.clone()];
    node.reload(next.clone()).await?;
    wait_serving(&node, &ca, "file.test", &renewed).await?;
    anyhow::ensure!(node.pid() == pid, "no restart");

    // A broken file: the one in force stays, and the log names the entry.
    std::fs::write(node.dir().join("cert-0.pem"), "not a certificate")?;
    node.hangup()?;
    let start = Instant::now();
    while !node.stderr_text().contains("TLS certificates not reloaded") {
        anyhow::ensure!(start.elapsed() < LIMIT, "no log line\n{}", node.stderr_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(node.stderr_text().contains("tls.certificates[0]"), "{}", node.stderr_text());
    wait_serving(&node, &ca, "file.test", &renewed).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keeps_only_the_sealed_key() -> anyhow::Result<()> {
    let cluster = PgCluster::start().map_err(anyhow::Error::msg)?;
    cluster.create_database("cdn").map_err(anyhow::Error::msg)?;
    let origin = Origin::start().await?;
    let cp = ControlPlane::start(ControlConfig::default().postgres(&cluster.url("cdn"), &[])).await?;
    put_service(&cp, TENANT_TOKEN, "shop", &["shop.test"], &origin).await?;
    let ca = TestCa::new("Outpost Test CA")?;
    let leaf = ca.issue(&["shop.test"])?;
    let resp =
        cp.call(Method::PUT, "/v1/services/shop/certificates/www", Some(TENANT_TOKEN), &upload_body(&leaf, "")).await?;
    anyhow::ensure!(resp.status == 201, "{} {}", resp.status, resp.text());
    let table = cluster.psql("cdn", "SELECT record::text FROM certificates").map_err(anyhow::Error::msg)?;
    let stored: Value = serde_json::from_str(table.trim())?;
    anyhow::ensure!(stored["key"]["key_id"].is_string() && stored["key"]["ciphertext"].is_string(), "{stored}");
    assert_absent("the certificates table", &table, &leaf)?;
    let events = cluster.psql("cdn", "SELECT record::text FROM events").map_err(anyhow::Error::msg)?;
    assert_absent("the events table", &events, &leaf)?;
    Ok(())
}
