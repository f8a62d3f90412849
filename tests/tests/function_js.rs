//! A guest from another toolchain: a JavaScript function (`tests/guests-js/hello.js`) built with
//! componentize-js into a standard wasi:http/proxy component, served by the real node.
//!
//! The tools are installed on first use with npm from `tests/guests-js/package-lock.json`
//! (componentize-js pinned) into `target/guests-js/`; the component is rebuilt only when its
//! sources or the lock change (its file name carries their hash), and compiled once into
//! `target/guests-js/compiled` (the node's `functions.cache_dir`) before the scenario starts the
//! node. Needs `node` and `npm` on the PATH (`.ci/run` installs them); without them this test
//! fails rather than skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use outpost_tests::wasm::repo_root;
use outpost_tests::{Binary, EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec};

/// Bound on the npm install and on one componentize run (the engine snapshot takes a minute or two).
const TOOL_LIMIT: Duration = Duration::from_secs(900);

/// Runs `cmd`, its output going to the test's stderr, and fails if it fails or overruns.
fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("{what}: cannot start it (are node and npm installed?)"))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "{what} failed: {status}");
            return Ok(());
        }
        if start.elapsed() > TOOL_LIMIT {
            let _ = child.kill();
            anyhow::bail!("{what} took longer than {TOOL_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// FNV-1a over the files that decide the component.
fn sources_hash(files: &[PathBuf]) -> anyhow::Result<u64> {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for f in files {
        for b in std::fs::read(f).with_context(|| format!("reading {}", f.display()))? {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    Ok(hash)
}

/// Installs componentize-js if needed and builds the JS guest; returns the component's path.
fn build_js_guest() -> anyhow::Result<PathBuf> {
    let src = repo_root()?.join("tests").join("guests-js");
    let tools = repo_root()?.join("target").join("guests-js");
    std::fs::create_dir_all(&tools)?;
    let lock = std::fs::File::create(tools.join("build.lock"))?;
    lock.lock()?;

    let inputs: Vec<PathBuf> =
        ["package-lock.json", "hello.js", "build.mjs", "wit/world.wit"].iter().map(|f| src.join(f)).collect();
    let out = tools.join(format!("hello-{:016x}.wasm", sources_hash(&inputs)?));
    if out.is_file() {
        return Ok(out);
    }
    let installed = std::fs::read(tools.join("package-lock.json")).ok();
    if installed.as_deref() != Some(std::fs::read(src.join("package-lock.json"))?.as_slice())
        || !tools.join("node_modules/@bytecodealliance/componentize-js/package.json").is_file()
    {
        std::fs::copy(src.join("package.json"), tools.join("package.json"))?;
        std::fs::copy(src.join("package-lock.json"), tools.join("package-lock.json"))?;
        // `npm install` from the lock rather than `npm ci`: npm 11's ci refuses this lock (it
        // wants entries for other platforms' optional binaries that jco lists without versions).
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--no-save"]).current_dir(&tools);
        run(npm, "npm install (componentize-js)")?;
    }
    // Beside node_modules, so node resolves componentize-js from there.
    std::fs::copy(src.join("build.mjs"), tools.join("build.mjs"))?;
    let mut node = Command::new("node");
    node.arg(tools.join("build.mjs")).arg(&src).arg(&out).current_dir(&tools);
    run(node, "componentize-js build of tests/guests-js/hello.js")?;
    anyhow::ensure!(out.is_file(), "the build wrote no {}", out.display());
    Ok(out)
}

/// The function bound to the last service, and the node's compiled-code cache in `compiled`.
fn function_tables(wasm: &Path, compiled: &Path) -> String {
    let q = |p: &Path| serde_json::Value::String(p.display().to_string());
    format!("\n[services.function]\nwasm = {}\n\n[functions]\ncache_dir = {}\n", q(wasm), q(compiled))
}

/// The node's config for the scenario: service "shop" in front of `origin`, running the guest.
fn config(origin: &str, wasm: &Path, compiled: &Path) -> NodeConfig {
    let mut config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], origin)).name("fra-1");
    config.extra = function_tables(wasm, compiled);
    config
}

/// Starts the node once, with no bound but [`TOOL_LIMIT`], so it compiles the component into
/// `compiled`: the JS engine is 13 MB of wasm, which takes a debug-built node longer than the
/// harness's start-up bound. Later starts load the machine code from there in a few seconds.
fn precompile(wasm: &Path, compiled: &Path) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("outpost-js-precompile-").tempdir()?;
    let path = config("http://127.0.0.1:9", wasm, compiled).write(dir.path())?;
    let ready = dir.path().join("ready.json");
    let mut child = Command::new(Binary::EdgeNode.path()?)
        .arg("--config")
        .arg(&path)
        .arg("--ready-file")
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting edge-node to compile the JS guest")?;
    let start = Instant::now();
    let outcome = loop {
        if ready.is_file() {
            break Ok(());
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("edge-node exited with {status} while compiling the JS guest"));
        }
        if start.elapsed() > TOOL_LIMIT {
            break Err(anyhow::anyhow!("edge-node did not compile the JS guest within {TOOL_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

#[tokio::test]
async fn a_componentize_js_guest_serves_through_the_node() -> anyhow::Result<()> {
    let wasm = tokio::task::spawn_blocking(build_js_guest).await??;
    let compiled = repo_root()?.join("target").join("guests-js").join("compiled");
    let (w, c) = (wasm.clone(), compiled.clone());
    tokio::task::spawn_blocking(move || precompile(&w, &c)).await??;
    let origin = Origin::start().await?;
    origin.route("/data", Reply::ok("from the origin").cache_control("max-age=60"));
    let node = EdgeNode::start(config(&origin.url(), &wasm, &compiled)).await?;

    let resp = node.send(Req::get("shop.test", "/hi")).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "hello from js at fra-1: GET /hi\n");
    assert_eq!(resp.header("x-guest"), Some("componentize-js"));

    // fetch() from JS reaches the service's origin through the node (and its cache).
    for _ in 0..2 {
        let resp = node.send(Req::get("shop.test", "/from-origin")).await?;
        assert_eq!(
            (resp.status.as_u16(), resp.text().as_str()),
            (200, "origin said: from the origin\n"),
            "{}",
            resp.summary()
        );
    }
    assert_eq!(origin.count("/data"), 1, "the second fetch is a cache hit");
    Ok(())
}
