//! A client nobody here wrote: headless Chromium (Debian's `chromium` package, which `.ci/run`
//! installs) loads a page through the edge node with QUIC forced on, and the page reports, from
//! the browser's own Navigation and Resource Timing entries, the protocol each load used.
//!
//! Chromium trusts the node's test certificate by its SPKI pin
//! (`--ignore-certificate-errors-spki-list`), resolves `shop.test` to loopback
//! (`--host-resolver-rules`) and speaks QUIC to the HTTPS listener's UDP port from the first
//! request (`--origin-to-force-quic-on`), so there is no TCP round first and no `Alt-Svc` hop.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, ServiceSpec, TestCa};

/// Bound on one Chromium run, start to exit; past it the process is killed and the test fails.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

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

/// What one Chromium run left behind.
struct BrowserRun {
    command_line: String,
    status: ExitStatus,
    elapsed: Duration,
    dom: String,
    stderr: String,
}

impl BrowserRun {
    fn diagnosis(&self) -> String {
        format!(
            "chromium: {}\nexit: {} after {:?}\n---- dumped DOM ----\n{}\n---- chromium stderr ----\n{}",
            self.command_line, self.status, self.elapsed, self.dom, self.stderr
        )
    }

    /// The text of `<pre id="{id}">`, as the page's script left it.
    fn field(&self, id: &str) -> Option<&str> {
        let open = format!("<pre id=\"{id}\">");
        let start = self.dom.find(&open)? + open.len();
        let len = self.dom[start..].find("</pre>")?;
        Some(&self.dom[start..start + len])
    }
}

/// `OUTPOST_CHROMIUM` when set; else `/usr/bin/chromium`, else `chromium` on PATH. Missing
/// is an error that names the package: a skipped check would read as a passed one.
fn chromium() -> anyhow::Result<PathBuf> {
    const INSTALL: &str = "this test needs Debian's `chromium` package: `apt-get install \
                           --no-install-recommends chromium` (.ci/run installs it)";
    if let Some(path) = std::env::var_os("OUTPOST_CHROMIUM").map(PathBuf::from) {
        anyhow::ensure!(path.is_file(), "OUTPOST_CHROMIUM={} is not a file; {INSTALL}", path.display());
        return Ok(path);
    }
    let debian = Path::new("/usr/bin/chromium");
    if debian.is_file() {
        return Ok(debian.to_path_buf());
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("chromium")).find(|p| p.is_file()));
    on_path.with_context(|| format!("no chromium: neither /usr/bin/chromium nor `chromium` on PATH; {INSTALL}"))
}

/// Runs headless Chromium on `url` with `args` after the common offline flags, bounded by
/// [`CHROMIUM_LIMIT`]; the DOM after the page settles comes from `--dump-dom` on stdout.
async fn run_chromium(bin: &Path, url: &str, args: &[String]) -> anyhow::Result<BrowserRun> {
    let dir = tempfile::Builder::new().prefix("outpost-chromium-").tempdir()?;
    let profile = dir.path().join("profile");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut argv: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        // Containers often have a small /dev/shm; shared memory then comes from /tmp instead.
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    argv.push(format!("--user-data-dir={}", profile.display()));
    argv.extend(args.iter().cloned());
    argv.push("--dump-dom".into());
    argv.push(url.into());
    let shell_words: Vec<String> =
        argv.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() }).collect();
    let command_line = format!("{} {}", bin.display(), shell_words.join(" "));

    // Files, not pipes: Chromium's helper processes inherit the descriptors and may outlive
    // the browser process, so a pipe's end-of-file would not mark the end of the output.
    let mut child = Command::new(bin)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning {command_line}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > CHROMIUM_LIMIT {
            // Only the process this test started, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            anyhow::bail!("chromium did not exit within {CHROMIUM_LIMIT:?}\n{command_line}\nstderr:\n{stderr}");
        }
        // Async sleep: the origin serving Chromium's requests runs on this test's runtime.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Ok(BrowserRun {
        command_line,
        status,
        elapsed: start.elapsed(),
        dom: std::fs::read_to_string(&out_path)?,
        stderr: std::fs::read_to_string(&err_path)?,
    })
}

#[tokio::test]
async fn chromium_loads_a_page_over_h3() -> anyhow::Result<()> {
    let chromium = chromium()?;
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

    let run = run_chromium(
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
