//! Certificates by ACME (RFC 8555), end to end against Pebble, the ACME test server: a tenant's
//! `tls = "auto"` service gets a certificate the control plane orders once for the fleet, with
//! the CA's validation answered by the edges (HTTP-01 and TLS-ALPN-01 answers travel to every
//! edge as events), and every edge serves it; it is renewed under continuous HTTPS load with no
//! failed request; a control-plane restart mid-order resumes the order; with Pebble away the
//! order backs off, the API says why, and what is served does not change. From the start as a
//! new tenant lives it: a host pending its DNS-TXT proof gets no order; once verified, its
//! certificate follows within seconds and curl and headless Chromium (clients nobody here
//! wrote), trusting Pebble's CA, load the page through both edges.
//!
//! Names resolve through `pebble-challtestsrv` (every A query answers 127.0.0.1), so Pebble's
//! validator reaches the edge whose port it was given, and clients connect to the edges'
//! loopback ports with the SNI `www.example.test`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::Method;
use outpost_tests::challtestsrv::ChallTestSrv;
use outpost_tests::client::TlsOpts;
use outpost_tests::control::{self, ControlConfig, ControlPlane};
use outpost_tests::fleet::{self, TENANT_TOKEN, follower};
use outpost_tests::pebble::{Pebble, PebbleOptions};
use outpost_tests::{EdgeNode, Origin, Reply, Req, TestCa};

const HOST: &str = "www.example.test";

/// Bound on a certificate reaching the edges after the service asks for one.
const ISSUE_LIMIT: Duration = Duration::from_secs(45);

/// The topology: a DNS server for Pebble, Pebble (reserved first: the control plane's config
/// names its directory), a control plane ordering from it, two edges following it (each with
/// an HTTPS listener holding only an operator's certificate for another name), an origin.
struct World {
    /// Pebble resolves names through it; tenants publish their TXT proofs in it.
    dns: ChallTestSrv,
    pebble: Pebble,
    cp: ControlPlane,
    edges: Vec<EdgeNode>,
    origin: Origin,
}

async fn world(challenge: &str, validity: Duration, validation_delay: u32) -> anyhow::Result<World> {
    world_with(challenge, validity, validation_delay, |config, _| config).await
}

/// [`world`] with the control plane's config amended by `configure`, given the DNS server's
/// address (for `domains.resolver`).
async fn world_with(
    challenge: &str,
    validity: Duration,
    validation_delay: u32,
    configure: impl FnOnce(ControlConfig, SocketAddr) -> ControlConfig,
) -> anyhow::Result<World> {
    let dns = ChallTestSrv::start_loopback_v4().await?;
    let mut pebble = Pebble::reserve(dns.dns())?;
    let acme = format!(
        "[acme]\ndirectory = \"{}\"\nca_file = \"{}\"\nchallenge = \"{challenge}\"\ninterval = \"200ms\"\n\
         retry_min = \"500ms\"\nretry_max = \"2s\"\norder_timeout = \"15s\"\n",
        pebble.directory_url(),
        pebble.listener_ca_file().display()
    );
    let cp = ControlPlane::start(configure(fleet::control_config().tables(&acme), dns.dns())).await?;
    let operator_ca = TestCa::new("operator CA")?;
    let mut edges = Vec::new();
    for name in ["edge-1", "edge-2"] {
        let config = follower(name, "fra", "eu-central", cp.addr()).certificate(operator_ca.issue(&["operator.test"])?);
        edges.push(EdgeNode::start(config).await?);
    }
    // The validator goes to edge-2: any edge must answer, not the first one only.
    let options = PebbleOptions {
        http_port: edges[1].http_addr().port(),
        tls_port: edges[1].https_addr()?.port(),
        dns: dns.dns(),
        validity: Some(validity),
        validation_delay,
    };
    pebble.start(options).await?;
    let origin = Origin::start().await?;
    origin.route(
        "/",
        Reply::ok("hello from the origin").header("content-type", "text/plain").cache_control("max-age=60"),
    );
    Ok(World { dns, pebble, cp, edges, origin })
}

impl World {
    /// The tenant's service for `www.example.test` with `tls = "auto"`.
    async fn create_service(&self) -> anyhow::Result<()> {
        let config = serde_json::json!({"hosts": [HOST], "origin": self.origin.url(), "tls": "auto"});
        let resp = self.cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), &config.to_string()).await?;
        anyhow::ensure!(resp.status.is_success(), "PUT /v1/services/shop: {} {}", resp.status, resp.text());
        for edge in &self.edges {
            fleet::wait_served(edge, HOST, "/").await?;
        }
        Ok(())
    }

    async fn acme_view(&self) -> anyhow::Result<serde_json::Value> {
        let resp = self.cp.call(Method::GET, "/v1/services/shop/acme", Some(TENANT_TOKEN), "").await?;
        anyhow::ensure!(resp.status == 200, "GET /v1/services/shop/acme: {} {}", resp.status, resp.text());
        control::json(&resp)
    }

    /// Waits until the API shows `check` holding, bounded.
    async fn wait_acme(
        &self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let start = Instant::now();
        loop {
            let view = self.acme_view().await?;
            if check(&view) {
                return Ok(view);
            }
            anyhow::ensure!(
                start.elapsed() < ISSUE_LIMIT,
                "{what}: not within {ISSUE_LIMIT:?}; last {view}\ncontrol plane:\n{}\npebble:\n{}",
                self.cp.stderr_text(),
                self.pebble.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A TLS client for `www.example.test` trusting only Pebble's current root.
    async fn client(&self) -> anyhow::Result<TlsOpts> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.pebble.root_der().await?)?;
        let config = rustls::ClientConfig::builder_with_provider(outpost_tests::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsOpts { sni: HOST.to_owned(), config: Arc::new(config) })
    }
}

/// `GET https://www.example.test/` on `edge`'s HTTPS listener, verified with `tls`.
async fn fetch(edge: &EdgeNode, tls: &TlsOpts) -> anyhow::Result<outpost_tests::Resp> {
    let mut req = Req::get(HOST, "/");
    req.tls = Some(tls.clone());
    edge.send(req).await
}

#[tokio::test]
async fn pebble_issues_a_certificate_for_a_tls_auto_service_validated_through_an_edge() -> anyhow::Result<()> {
    let world = world("http-01", Duration::from_secs(3600), 0).await?;
    world.create_service().await?;
    let started = Instant::now();
    let view = world.wait_acme("a certificate", |v| v["status"] == "valid").await?;
    println!("certificate obtained {:?} after the service was created: {view}", started.elapsed());
    assert_eq!(view["hosts"], serde_json::json!([HOST]));
    assert_eq!(view["failures"], 0);
    assert!(view["next_attempt"].is_string(), "a renewal is planned: {view}");
    // It went in through the certificate store: the service's certificate `acme`, from ACME,
    // issued by Pebble's intermediate, for the host.
    let resp = world.cp.call(Method::GET, "/v1/services/shop/certificates", Some(TENANT_TOKEN), "").await?;
    let list = control::json(&resp)?;
    let acme = list["certificates"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "acme")).cloned();
    let acme = acme.with_context(|| format!("no certificate named acme: {list}"))?;
    assert_eq!(acme["source"], "acme", "{acme}");
    assert!(acme["issuer"].as_str().is_some_and(|i| i.contains("Pebble")), "{acme}");
    assert_eq!(acme["names"], serde_json::json!([HOST]), "{acme}");
    // Pebble's validator reached edge-2 (the edge it was given), on the challenge path, and
    // the edge answered it before any tenant logic: the origin never saw it.
    // Access-log lines are written within log.access_flush (1 s): wait for the line.
    let answered = |edge: &EdgeNode| {
        edge.access_log().iter().any(|l| {
            l["path"].as_str().is_some_and(|p| p.starts_with("/.well-known/acme-challenge/")) && l["status"] == 200
        })
    };
    let validated = outpost_tests::eventually(Duration::from_secs(5), || answered(&world.edges[1])).await;
    assert!(validated, "edge-2 logged no answered challenge: {:?}", world.edges[1].access_log());
    assert!(
        world.origin.requests().iter().all(|r| !r.path.starts_with("/.well-known/acme-challenge/")),
        "a challenge reached the origin"
    );
    // The answers were withdrawn when the order ended: as many deletes as puts.
    let events = world.cp.call(Method::GET, "/v1/events?from=1&limit=1000", Some(control::OPERATOR), "").await?;
    let events = control::json(&events)?;
    let types: Vec<&str> =
        events["events"].as_array().into_iter().flatten().filter_map(|e| e["type"].as_str()).collect();
    let puts = types.iter().filter(|t| **t == "acme_challenge_put").count();
    let deletes = types.iter().filter(|t| **t == "acme_challenge_deleted").count();
    assert!(puts >= 1 && puts == deletes, "{types:?}");
    // Another tenant sees none of it.
    let other = world.cp.call(Method::GET, "/v1/services/shop/acme", Some("globex-token"), "").await?;
    assert_eq!(other.status, 404);
    Ok(())
}

#[tokio::test]
async fn a_tls_auto_service_is_served_with_its_pebble_certificate_by_every_edge() -> anyhow::Result<()> {
    let world = world("http-01", Duration::from_secs(3600), 0).await?;
    world.create_service().await?;
    world.wait_acme("a certificate", |v| v["status"] == "valid").await?;
    let tls = world.client().await?;
    for edge in &world.edges {
        let start = Instant::now();
        let resp = loop {
            match fetch(edge, &tls).await {
                Ok(resp) => break resp,
                Err(_) if start.elapsed() < ISSUE_LIMIT => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => return Err(e.context(format!("{} never served the certificate", edge.name()))),
            }
        };
        assert_eq!(resp.status, 200, "{}", edge.name());
        assert_eq!(resp.text(), "hello from the origin");
    }
    Ok(())
}

#[tokio::test]
async fn tls_alpn_01_is_answered_by_the_edges_tls_listener() -> anyhow::Result<()> {
    let world = world("tls-alpn-01", Duration::from_secs(3600), 0).await?;
    world.create_service().await?;
    world.wait_acme("a certificate by TLS-ALPN-01", |v| v["status"] == "valid").await?;
    // The answers published were TLS-ALPN-01 ones, and no HTTP-01 request reached an edge:
    // Pebble validated on edge-2's TLS listener.
    let events = world.cp.call(Method::GET, "/v1/events?from=1&limit=1000", Some(control::OPERATOR), "").await?;
    let events = control::json(&events)?;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "acme_challenge_put")
        .filter_map(|e| e["challenge"]["kind"].as_str())
        .collect();
    assert!(!kinds.is_empty() && kinds.iter().all(|k| *k == "tls-alpn-01"), "{kinds:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for edge in &world.edges {
        let http01 = edge.access_log().iter().any(|l| l["path"].as_str().is_some_and(|p| p.contains("acme-challenge")));
        assert!(!http01, "{} got an HTTP-01 request", edge.name());
    }
    Ok(())
}

#[tokio::test]
async fn the_certificate_is_renewed_and_swapped_under_continuous_load_with_no_failed_request() -> anyhow::Result<()> {
    // 20-second certificates: renewed after about 13 s (two-thirds, less a jitter).
    let world = world("http-01", Duration::from_secs(20), 0).await?;
    world.create_service().await?;
    let first = world.wait_acme("a certificate", |v| v["status"] == "valid").await?;
    let first_not_after = first["certificate"]["not_after"].clone();
    let tls = world.client().await?;
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for edge in &world.edges {
        let addr = edge.https_addr()?;
        let (tls, ok, failed, stop) = (tls.clone(), ok.clone(), failed.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let mut req = Req::get(HOST, "/");
                req.tls = Some(tls.clone());
                // A new connection each time: each one is a handshake with the certificate in force.
                match outpost_tests::client::send(addr, &req).await {
                    Ok(resp) if resp.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(resp) => {
                        errors.push(format!("status {}", resp.status));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        errors.push(format!("{e:#}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        }));
    }
    let renewed = world
        .wait_acme("a renewal", |v| v["status"] == "valid" && v["certificate"]["not_after"] != first_not_after)
        .await;
    // Load a little past the swap too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for task in load {
        errors.extend(task.await.context("load task")?);
    }
    let renewed = renewed?;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("renewal under load: {ok} requests ok, {failed} failed; {renewed}");
    let first: Vec<&String> = errors.iter().take(5).collect();
    assert_eq!(failed, 0, "failed requests during the renewal, the first: {first:?}");
    assert!(ok > 20, "too little load to mean anything: {ok}");
    Ok(())
}

#[tokio::test]
async fn pebble_away_backs_off_reports_the_error_and_nothing_served_changes() -> anyhow::Result<()> {
    let mut world = world("http-01", Duration::from_secs(20), 0).await?;
    world.create_service().await?;
    world.wait_acme("a certificate", |v| v["status"] == "valid").await?;
    let tls = world.client().await?;
    world.pebble.stop();
    // The renewal is due within about 13 s; it fails, and keeps failing with a growing wait.
    let failing = world.wait_acme("a failed renewal", |v| v["failures"].as_u64().is_some_and(|f| f >= 2)).await?;
    assert_eq!(failing["status"], "failed", "{failing}");
    let error = &failing["last_error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{failing}");
    assert!(failing["next_attempt"].is_string(), "{failing}");
    let metrics = world.cp.call(Method::GET, "/metrics", Some(control::OPERATOR), "").await?.text();
    assert!(metrics.contains("outpost_cp_acme_failures{service=\"shop\"}"), "{metrics}");
    assert!(metrics.contains("outpost_cp_acme_orders_total{outcome=\"failed\"}"), "{metrics}");
    // The certificate in force still serves on every edge.
    for edge in &world.edges {
        let resp = fetch(edge, &tls).await?;
        assert_eq!(resp.status, 200, "{}", edge.name());
    }
    // Pebble back (with a new root): the next attempt succeeds.
    world.pebble.restart().await?;
    world.wait_acme("recovery", |v| v["status"] == "valid" && v["failures"] == 0).await?;
    Ok(())
}

#[tokio::test]
async fn a_control_plane_restart_mid_order_resumes_it() -> anyhow::Result<()> {
    // The validator sleeps 4 s per validation: the order is pending long enough to restart in.
    let mut world = world("http-01", Duration::from_secs(3600), 4).await?;
    world.create_service().await?;
    world.wait_acme("an order in flight", |v| v["status"] == "ordering").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let path = world.cp.dir().join("control-plane.toml");
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{}\"", world.cp.addr())))?;
    world.cp.restart().await?;
    world.wait_acme("the resumed order", |v| v["status"] == "valid").await?;
    let log = world.cp.stderr_text();
    assert!(log.contains("resuming the ACME order in flight"), "{log}");
    Ok(())
}

/// What the tenant's page says, and where it came from: the origin.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>www.example.test</title></head>
<body>
<pre id="page">hello from the origin</pre>
<pre id="origin">pending</pre>
<script>
  // The script ran in the page's own origin: the browser accepted the certificate for it.
  document.getElementById('origin').textContent = location.origin;
</script>
</body></html>
"#;

/// Bound on one curl run.
const CURL_LIMIT: Duration = Duration::from_secs(20);

/// The issue's scenario from the start, as a new tenant lives it: no domain owned by config,
/// so `www.example.test` waits for its DNS proof and no certificate is ordered meanwhile; the
/// TXT record published and checked, the ACME certificate follows within seconds; then two
/// clients nobody here wrote, curl (OpenSSL) and headless Chromium, trusting Pebble's CA,
/// load `https://www.example.test/` through each edge and see the origin's page.
#[tokio::test]
async fn curl_and_chromium_load_the_page_through_both_edges_once_the_txt_proof_gets_a_pebble_certificate()
-> anyhow::Result<()> {
    let chromium = outpost_tests::chromium::chromium()?;
    let curl = curl()?;
    // `pending_interval = "1d"`: only the tenant's check verifies the domain, not a periodic
    // one racing it.
    let world = world_with("http-01", Duration::from_secs(3600), 0, |config, dns| {
        config
            .owned(&[])
            .domains(&format!("resolver = \"{dns}\""))
            .domains("check_timeout = \"1s\"")
            .domains("pending_interval = \"1d\"")
    })
    .await?;
    world
        .origin
        .route("/", Reply::ok(PAGE).header("content-type", "text/html; charset=utf-8").cache_control("max-age=60"));

    let config = serde_json::json!({"hosts": [HOST], "origin": world.origin.url(), "tls": "auto"});
    let resp = world.cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), &config.to_string()).await?;
    let record = control::json(&resp)?;
    assert_eq!(resp.status, 201, "{record}");
    assert_eq!(record["verified_hosts"], serde_json::json!([]), "a new host waits for its proof: {record}");
    let pending = domain(&world.cp).await?;
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["challenge"]["dns_name"], "_outpost-challenge.www.example.test", "{pending}");
    let token = pending["token"].as_str().unwrap_or_default().to_owned();

    // Pending: the ACME driver (a round every 200 ms) orders nothing for an unverified host.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let view = world.acme_view().await?;
    assert!(view["status"] != "ordering" && view["status"] != "valid", "{view}");
    assert!(view["certificate"].is_null(), "a certificate for an unverified host: {view}");
    assert!(!world.pebble.log_text().contains("Added order"), "pebble saw an order:\n{}", world.pebble.log_text());
    assert!(certificate_names(&world.cp).await?.is_empty(), "the service has a certificate while pending");

    // The proof, then the tenant's check.
    world.dns.set_txt("_outpost-challenge.www.example.test", &token).await?;
    let check = "/v1/services/shop/domains/www.example.test/check";
    let resp = world.cp.call(Method::POST, check, Some(TENANT_TOKEN), "").await?;
    let answer = control::json(&resp)?;
    assert_eq!(resp.status, 200, "{answer}");
    assert_eq!(answer["domain"]["status"], "verified", "{answer}");
    let verified = Instant::now();
    let view = world.wait_acme("a certificate after the proof", |v| v["status"] == "valid").await?;
    println!("certificate valid {:?} after the domain was verified: {view}", verified.elapsed());
    assert!(world.pebble.log_text().contains("Added order"), "the certificate came from Pebble");
    assert_eq!(certificate_names(&world.cp).await?, vec!["acme".to_owned()]);

    // What the clients trust: Pebble's root (curl), the SPKI pin of Pebble's intermediate,
    // which signed the leaf every edge presents in its chain (Chromium: it has no flag for a
    // root file, and its pin list is checked against the chain the server sent).
    let (root, _) = world.pebble.roots().await?;
    let dir = tempfile::Builder::new().prefix("outpost-acme-clients-").tempdir()?;
    let root_file = dir.path().join("pebble-root.pem");
    std::fs::write(&root_file, &root)?;
    let intermediate = world.pebble.intermediate_der().await?;
    let pin = outpost_tests::tls::spki_pin(outpost_tests::tls::certificate_spki(&intermediate)?)?;

    for edge in &world.edges {
        let port = edge.https_addr()?.port();
        let url = format!("https://{HOST}:{port}/");
        // The edges swap the certificate in as its event arrives: curl until one answers.
        let body = eventually_ok(edge.name(), || run_curl(&curl, &url, port, &root_file)).await?;
        assert!(body.contains("<pre id=\"page\">hello from the origin</pre>"), "{}: curl got {body}", edge.name());

        let run = outpost_tests::chromium::run(
            &chromium,
            &url,
            &[
                format!("--host-resolver-rules=MAP {HOST} 127.0.0.1"),
                format!("--ignore-certificate-errors-spki-list={pin}"),
                "--virtual-time-budget=5000".into(),
            ],
        )
        .await?;
        println!("{}: chromium ran for {:?}: {:?}", edge.name(), run.elapsed, run.field("origin"));
        assert!(run.status.success(), "{}: {}", edge.name(), run.diagnosis());
        assert_eq!(run.field("page"), Some("hello from the origin"), "{}: {}", edge.name(), run.diagnosis());
        assert_eq!(run.field("origin"), Some(format!("https://{HOST}:{port}").as_str()), "{}", run.diagnosis());
    }
    // Each edge logged both loads (curl's, Chromium's); access-log lines are written within
    // log.access_flush (1 s). The origin saw at most one fetch per edge: the rest were cached.
    for edge in &world.edges {
        let loads = || edge.access_log().iter().filter(|l| l["path"] == "/" && l["status"] == 200).count();
        let both = outpost_tests::eventually(Duration::from_secs(5), || loads() >= 2).await;
        assert!(both, "{} logged {} loads of /: {:?}", edge.name(), loads(), edge.access_log());
    }
    assert!((1..=2).contains(&world.origin.count("/")), "origin fetches of /: {}", world.origin.count("/"));
    Ok(())
}

/// The service's domain for [`HOST`], as the operator sees it.
async fn domain(cp: &ControlPlane) -> anyhow::Result<serde_json::Value> {
    let resp = cp.call(Method::GET, "/v1/services/shop/domains", Some(control::OPERATOR), "").await?;
    let list = control::json(&resp)?;
    anyhow::ensure!(resp.status == 200, "GET domains: {list}");
    let found = list["domains"].as_array().and_then(|d| d.iter().find(|d| d["host"] == HOST)).cloned();
    found.with_context(|| format!("no domain {HOST} in {list}"))
}

/// The names of the service's certificates.
async fn certificate_names(cp: &ControlPlane) -> anyhow::Result<Vec<String>> {
    let resp = cp.call(Method::GET, "/v1/services/shop/certificates", Some(TENANT_TOKEN), "").await?;
    let list = control::json(&resp)?;
    anyhow::ensure!(resp.status == 200, "GET certificates: {list}");
    let names = list["certificates"].as_array().into_iter().flatten();
    Ok(names.filter_map(|c| c["name"].as_str().map(str::to_owned)).collect())
}

/// `curl` on PATH: Debian's, built on OpenSSL, a TLS stack that is not the edges' rustls.
/// Missing is an error that names the package (`.ci/run` installs it).
fn curl() -> anyhow::Result<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("curl")).find(|p| p.is_file()));
    on_path.context("no `curl` on PATH: `apt-get install --no-install-recommends curl` (.ci/run installs it)")
}

/// `curl https://www.example.test:PORT/` resolved to loopback, trusting only `root`; the body
/// of a 2xx answer, else what curl said.
async fn run_curl(curl: &std::path::Path, url: &str, port: u16, root: &std::path::Path) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new(curl);
    command
        .args(["--silent", "--show-error", "--fail", "--max-time", "10", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{HOST}:{port}:127.0.0.1"))
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(CURL_LIMIT, command.output())
        .await
        .with_context(|| format!("curl {url}: not done within {CURL_LIMIT:?}"))??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(output.status.success(), "curl {url}: {}: {stderr}", output.status);
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Retries `attempt` until it succeeds, bounded by [`ISSUE_LIMIT`]; the last error otherwise.
async fn eventually_ok<T, F: std::future::Future<Output = anyhow::Result<T>>>(
    what: &str,
    attempt: impl Fn() -> F,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(_) if start.elapsed() < ISSUE_LIMIT => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(e.context(format!("{what}: not within {ISSUE_LIMIT:?}"))),
        }
    }
}
