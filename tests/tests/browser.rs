//! A client nobody here wrote: headless Chromium (Debian's `chromium` package, which `.ci/run`
//! installs) loads a page through the edge node with QUIC forced on, and the page reports, from
//! the browser's own Navigation and Resource Timing entries, the protocol each load used.
//!
//! Chromium trusts the node's test certificate by its SPKI pin
//! (`--ignore-certificate-errors-spki-list`), resolves `shop.test` to loopback
//! (`--host-resolver-rules`) and speaks QUIC to the HTTPS listener's UDP port from the first
//! request (`--origin-to-force-quic-on`), so there is no TCP round first and no `Alt-Svc` hop.

use std::time::Duration;

use outpost_tests::chromium;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, ServiceSpec, TestCa};

/// The page: the navigation's protocol is known while the document parses; the subresource's
/// once `fetch` resolves. `--virtual-time-budget` keeps `--dump-dom` waiting for that, because
/// virtual time does not advance while a fetch is pending.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>outpost h3</title></head>
<body>
<pre id="page">pending</pre>
<pre id="data">pending</pre>
<script>
  const show = (id, text) => { document.getElementById(id).textContent = text; };
  const nav = performance.getEntriesByType('navigation')[0];
  show('page', 'page=' + (nav ? nav.nextHopProtocol : 'no-entry'));
  const url = new URL('/data.json', location.href).href;
  fetch(url)
    .then(r => r.json())
    .then(body => {
      const report = entry => show('data', 'data=' + entry.nextHopProtocol + ' body=' + body.from);
      const entry = performance.getEntriesByName(url)[0];
      if (entry) return report(entry);
      // Resource Timing may queue the entry a task after the body: wait for it.
      new PerformanceObserver((list, observer) => {
        const late = list.getEntriesByName(url)[0];
        if (late) { observer.disconnect(); report(late); }
      }).observe({ type: 'resource', buffered: true });
    })
    .catch(e => show('data', 'data=error ' + e));
</script>
</body></html>
"#;

#[tokio::test]
async fn chromium_loads_a_page_over_h3() -> anyhow::Result<()> {
    let chromium = chromium::chromium()?;
    let ca = TestCa::new("browser test CA")?;
    let cert = ca.issue(&["shop.test", "*.shop.test"])?;
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok(PAGE).header("content-type", "text/html; charset=utf-8").cache_control("max-age=60"));
    origin.route(
        "/data.json",
        Reply::ok(r#"{"from":"origin"}"#).header("content-type", "application/json").cache_control("max-age=60"),
    );
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test", "*.shop.test"], origin.url()))
        .certificate(cert.clone())
        .http3(true);
    let node = EdgeNode::start(config).await?;
    let port = node.https_addr()?.port();

    let run = chromium::run(
        &chromium,
        &format!("https://shop.test:{port}/"),
        &[
            "--enable-quic".into(),
            format!("--origin-to-force-quic-on=shop.test:{port}"),
            "--host-resolver-rules=MAP shop.test 127.0.0.1".into(),
            format!("--ignore-certificate-errors-spki-list={}", cert.spki_sha256_base64()?),
            "--virtual-time-budget=10000".into(),
        ],
    )
    .await?;
    println!("chromium ran for {:?}: page {:?}, data {:?}", run.elapsed, run.field("page"), run.field("data"));

    assert!(run.status.success(), "{}", run.diagnosis());
    assert_eq!(run.field("page"), Some("page=h3"), "{}", run.diagnosis());
    assert_eq!(run.field("data"), Some("data=h3 body=origin"), "{}", run.diagnosis());

    // The node's side: the page and the data arrived over HTTP/3, and so did every other
    // request Chromium made. Access-log lines are written by a background thread: wait for them.
    let logged = |path: &str| node.access_log().iter().any(|l| l["path"] == path);
    let both = outpost_tests::eventually(Duration::from_secs(5), || logged("/") && logged("/data.json")).await;
    let seen: Vec<(String, String)> = node
        .access_log()
        .iter()
        .map(|l| (l["path"].as_str().unwrap_or("").to_string(), l["protocol"].as_str().unwrap_or("").to_string()))
        .collect();
    println!("access log (path, protocol): {seen:?}");
    assert!(both, "no access-log line for / or /data.json: {seen:?}\n{}", run.diagnosis());
    assert!(seen.iter().all(|(_, protocol)| protocol == "h3"), "a request not over h3: {seen:?}");
    assert_eq!(origin.count("/"), 1, "{seen:?}");
    assert_eq!(origin.count("/data.json"), 1, "{seen:?}");
    Ok(())
}
