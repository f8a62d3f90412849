//! Edge functions through the real node: the probe guest (`tests/guests/probe`, built for
//! `wasm32-wasip2`) runs as a service's function. Each scenario exceeds one limit, or checks one
//! thing the host promises (headers, environment, logs, backend fetches through the cache,
//! reload, the compiled-code cache), and shows the node still serving afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::Method;
use outpost_tests::wasm::probe_guest;
use outpost_tests::{
    EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec, check_error, check_raw_error, raw_exchange,
};

const HOST: &str = "shop.test";

/// `function = { wasm = "...", <extra> }` as one TOML line of the service.
fn function_line(wasm: &Path, extra: &str) -> String {
    let wasm = serde_json::Value::String(wasm.display().to_string());
    if extra.is_empty() {
        format!("function = {{ wasm = {wasm} }}")
    } else {
        format!("function = {{ wasm = {wasm}, {extra} }}")
    }
}

/// A node whose service `shop` runs `wasm`. Its compiled code is cached in one directory for
/// every scenario of every run (compiling the probe costs seconds in a debug build); the restart
/// scenario, which needs an empty cache, uses the node's own default.
fn config(origin: &Origin, wasm: &Path, extra: &str) -> NodeConfig {
    let service = ServiceSpec::new("shop", &[HOST], origin.url()).line(function_line(wasm, extra));
    let mut config = NodeConfig::with_service(service);
    if let Ok(dir) = outpost_tests::wasm::guest_target_dir() {
        let dir = serde_json::Value::String(dir.join("compiled-functions").display().to_string());
        config.extra = format!("\n[functions]\ncache_dir = {dir}\n");
    }
    config
}

async fn start(extra: &str) -> anyhow::Result<(Origin, EdgeNode)> {
    let probe = probe_guest()?;
    let origin = Origin::start().await?;
    let node = EdgeNode::start(config(&origin, &probe, extra)).await?;
    Ok((origin, node))
}

/// The node's log lines (ANSI colours removed) that contain every one of `parts`.
fn log_lines(node: &EdgeNode, parts: &[&str]) -> Vec<String> {
    strip_ansi(&node.stderr_text()).lines().filter(|l| parts.iter().all(|p| l.contains(p))).map(String::from).collect()
}

/// Like [`log_lines`], once at least one line matches (the node's stderr is read by another
/// thread, so a line logged before the response may arrive after it); bounded by 10s.
async fn logged(node: &EdgeNode, parts: &[&str]) -> Vec<String> {
    outpost_tests::eventually(Duration::from_secs(10), || !log_lines(node, parts).is_empty()).await;
    log_lines(node, parts)
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The function version the node logged when it loaded the component (`function=<hash>`).
fn version(node: &EdgeNode) -> anyhow::Result<String> {
    let lines = log_lines(node, &["function=", "wasm="]);
    let line = lines.last().ok_or_else(|| anyhow::anyhow!("no function load logged:\n{}", node.stderr_text()))?;
    let after = line.split("function=").nth(1).unwrap_or("");
    Ok(after.split_whitespace().next().unwrap_or("").to_string())
}

async fn expect_ok(node: &EdgeNode, path: &str) -> anyhow::Result<String> {
    let resp = node.get(HOST, path).await?;
    anyhow::ensure!(resp.status == 200, "GET {path}: {}", resp.summary());
    Ok(resp.text())
}

#[tokio::test]
async fn a_function_answers_with_its_environment_and_the_host_headers() -> anyhow::Result<()> {
    let (origin, node) = start("env = { VERSION = \"v1\", GREETING = \"hi there\" }").await?;

    assert_eq!(expect_ok(&node, "/").await?, "hello from probe v1\n");
    let env = expect_ok(&node, "/env").await?;
    assert_eq!(env, "GREETING=hi there\nVERSION=v1\n", "only the configured environment, nothing of the node's");

    // A client cannot pass itself off as another client, PoP or request.
    let req = Req::get(HOST, "/headers")
        .header("outpost-client-ip", "203.0.113.9")
        .header("outpost-pop", "evil")
        .header("outpost-node", "evil")
        .header("outpost-request-id", "forged")
        .header("x-custom", "kept");
    let resp = node.send(req).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let id = resp.request_id().unwrap_or_default().to_string();
    let headers = resp.text();
    for line in [
        "outpost-client-ip: 127.0.0.1\n".to_string(),
        "outpost-node: edge-1\n".to_string(),
        // No `node.pop` in this config: the node's name stands in.
        "outpost-pop: edge-1\n".to_string(),
        format!("outpost-request-id: {id}\n"),
        "x-custom: kept\n".to_string(),
    ] {
        assert!(headers.contains(&line), "{line:?} missing from:\n{headers}");
    }
    assert!(!headers.contains("evil") && !headers.contains("forged") && !headers.contains("203.0.113.9"), "{headers}");
    assert!(resp.header("server-timing").is_some_and(|t| t.contains("function;dur=")), "{}", resp.summary());
    assert_eq!(origin.total(), 0, "the function answered itself");
    Ok(())
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_its_cpu_time_and_the_node_keeps_serving() -> anyhow::Result<()> {
    let (_origin, node) = start("cpu_time = \"50ms\"").await?;
    let version = version(&node)?;

    let resp = node.get(HOST, "/loop").await?;
    check_error(&resp, 503)?;
    assert!(resp.text().contains("ran out of CPU time"), "{}", resp.text());
    let id = resp.request_id().unwrap_or_default();
    let failed = logged(&node, &["function failed", "service=shop", &format!("function={version}"), id, "cpu"]).await;
    assert_eq!(failed.len(), 1, "one log line naming service, version and reason:\n{}", node.stderr_text());

    // Under the limit: 20 ms of spinning.
    assert_eq!(expect_ok(&node, "/spin?ms=20").await?, "spun\n");
    assert_eq!(expect_ok(&node, "/").await?, "hello from probe v0\n");
    Ok(())
}

#[tokio::test]
async fn time_spent_waiting_for_a_backend_is_not_cpu_time() -> anyhow::Result<()> {
    let (origin, node) = start("cpu_time = \"20ms\"").await?;
    origin.route("/slow", Reply::ok("slow answer\n").delay(Duration::from_millis(600)));

    // 600 ms waiting for the origin, far beyond 20 ms, costs the guest almost no CPU.
    assert_eq!(expect_ok(&node, "/origin/slow").await?, "slow answer\n");
    Ok(())
}

#[tokio::test]
async fn a_function_that_never_answers_is_stopped_at_its_wall_time() -> anyhow::Result<()> {
    // 2 s: the requests after /hang must finish inside it on a loaded machine (debug build).
    let (_origin, node) = start("cpu_time = \"50ms\", wall_time = \"2s\"").await?;

    let resp = node.get(HOST, "/hang").await?;
    check_error(&resp, 504)?;
    assert_eq!(logged(&node, &["function failed", "wall"]).await.len(), 1, "{}", node.stderr_text());
    assert_eq!(expect_ok(&node, "/").await?, "hello from probe v0\n");
    Ok(())
}

#[tokio::test]
async fn a_memory_bomb_fails_its_own_request_only() -> anyhow::Result<()> {
    let (_origin, node) = start("memory = \"16MiB\", cpu_time = \"2s\"").await?;

    let resp = node.get(HOST, "/alloc").await?;
    check_error(&resp, 503)?;
    assert!(resp.text().contains("ran out of memory"), "{}", resp.text());
    assert_eq!(logged(&node, &["function failed", "memory"]).await.len(), 1, "{}", node.stderr_text());
    // Within the limit, and a fresh instance: nothing of the bomb is left.
    assert_eq!(expect_ok(&node, "/alloc?mb=4").await?, "allocated 4 MiB\n");
    Ok(())
}

#[tokio::test]
async fn request_and_response_bodies_are_bounded_both_ways() -> anyhow::Result<()> {
    let (_origin, node) = start("max_request_body = \"64KiB\", max_response_body = \"256KiB\"").await?;

    // In: declared too large, refused before the function runs; streamed too large, refused
    // whatever the function answers; within the limit, read whole.
    let resp = node.send(Req::post(HOST, "/echo").body(vec![b'a'; 100 << 10])).await?;
    check_error(&resp, 413)?;
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nhost: {HOST}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{}0\r\n\r\n",
        format!("4000\r\n{}\r\n", "b".repeat(0x4000)).repeat(5)
    );
    let raw = raw_exchange(node.http_addr(), chunked.as_bytes()).await?;
    check_raw_error(&raw, 413)?;
    let resp = node.send(Req::post(HOST, "/echo").body(vec![b'c'; 10 << 10])).await?;
    assert_eq!(resp.text(), "read 10240 bytes\n", "{}", resp.summary());

    // Out: a declared length above the limit is a 502; a streamed body is cut off, never passed
    // off as complete.
    let resp = node.get(HOST, "/big?bytes=1000000&declare=1").await?;
    check_error(&resp, 502)?;
    let cut = node.get(HOST, "/big?bytes=1000000").await;
    assert!(cut.is_err(), "a body cut at the limit must not look complete: {:?}", cut.map(|r| r.body.len()));
    assert!(!logged(&node, &["function failed", "response_too_large"]).await.is_empty(), "{}", node.stderr_text());
    let whole = node.get(HOST, "/big?bytes=200000").await?;
    assert_eq!(whole.body.len(), 200_000, "{}", whole.summary());
    Ok(())
}

#[tokio::test]
async fn outgoing_requests_are_limited_in_number_size_and_destination() -> anyhow::Result<()> {
    let (origin, node) = start("max_backend_requests = 3, max_backend_response = \"2KiB\"").await?;
    origin.route("/item", Reply::ok("item\n").cache_control("max-age=60"));
    origin.route("/large", Reply::ok(vec![b'l'; 4096]).cache_control("max-age=60"));

    let report = expect_ok(&node, "/fetch?n=5&path=/item").await?;
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 5, "{report}");
    for line in &lines[..3] {
        assert!(line.ends_with(" 200 5 bytes"), "{report}");
    }
    for line in &lines[3..] {
        assert!(line.contains("error ErrorCode::ConnectionLimitReached"), "{report}");
    }
    // Each request has its own count.
    assert!(expect_ok(&node, "/fetch?n=1&path=/item").await?.ends_with(" 200 5 bytes\n"));

    let report = expect_ok(&node, "/fetch?n=1&path=/large").await?;
    assert!(report.contains("HttpResponseBodySize"), "{report}");

    // Only backends by name: not another host, not the origin's own address.
    for host in ["example.com".to_string(), origin.addr().to_string(), "127.0.0.1".to_string()] {
        let report = expect_ok(&node, &format!("/forbidden?host={host}")).await?;
        assert_eq!(report, "denied ErrorCode::HttpRequestDenied\n", "{host}");
    }
    assert_eq!(origin.count("/"), 0);
    Ok(())
}

#[tokio::test]
async fn a_trapping_function_fails_its_request_and_the_next_requests_are_served() -> anyhow::Result<()> {
    let (_origin, node) = start("").await?;
    let version = version(&node)?;

    let resp = node.get(HOST, "/trap").await?;
    check_error(&resp, 500)?;
    let id = resp.request_id().unwrap_or_default().to_string();
    let failed =
        logged(&node, &["function failed", "service=shop", &format!("function={version}"), &id, "unreachable"]).await;
    assert_eq!(failed.len(), 1, "{}", node.stderr_text());
    // The guest's panic message reached the log, with the request id.
    assert!(!logged(&node, &["probe: /trap asked for a trap", &id]).await.is_empty(), "{}", node.stderr_text());

    for _ in 0..5 {
        assert_eq!(expect_ok(&node, "/").await?, "hello from probe v0\n");
    }
    // A guest that answered and then trapped (the SDK's panic handler does this) is served
    // what it answered.
    let resp = node.get(HOST, "/set-then-trap").await?;
    assert_eq!(resp.status, 500, "{}", resp.summary());
    assert_eq!(resp.text(), "probe set this response, then trapped\n");

    // Each run is counted by how it ended: 5 answered, 2 trapped; 7 instances made.
    let metrics = node.admin(Method::GET, "/metrics", "").await?.text();
    for series in [
        "outpost_function_requests_total{service=\"shop\",outcome=\"ok\"} 5",
        "outpost_function_requests_total{service=\"shop\",outcome=\"trap\"} 2",
        "outpost_function_instantiations_total{service=\"shop\"} 7",
        "outpost_function_duration_seconds_count{outcome=\"trap\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == series), "no `{series}` in:\n{metrics}");
    }
    Ok(())
}

#[tokio::test]
async fn backend_fetches_go_through_the_cache() -> anyhow::Result<()> {
    let probe = probe_guest()?;
    let origin = Origin::start().await?;
    let api = Origin::start().await?;
    origin.route("/cached", Reply::ok("from origin\n").cache_control("max-age=60"));
    api.route("/v1/thing", Reply::ok("from api\n").cache_control("max-age=60"));
    let extra = format!("backends = {{ api = \"{}\" }}", api.url());
    let node = EdgeNode::start(config(&origin, &probe, &extra)).await?;

    let first = node.get(HOST, "/origin/cached").await?;
    let second = node.get(HOST, "/origin/cached").await?;
    assert_eq!((first.status.as_u16(), first.text()), (200, "from origin\n".into()), "{}", first.summary());
    assert_eq!(second.text(), "from origin\n");
    assert_eq!(origin.count("/cached"), 1, "the second fetch is served from the cache");
    let status = second.header("x-backend-cache-status").unwrap_or_default();
    assert!(status.contains("hit"), "the guest sees the cache's Cache-Status: {status:?}");

    // A named backend (case-insensitive), cached likewise.
    assert_eq!(expect_ok(&node, "/backend/api/v1/thing").await?, "from api\n");
    assert_eq!(expect_ok(&node, "/backend/API/v1/thing").await?, "from api\n");
    assert_eq!(api.count("/v1/thing"), 1);
    assert_eq!(origin.count("/v1/thing"), 0);
    Ok(())
}

#[tokio::test]
async fn function_output_reaches_the_node_log_with_the_request_id_and_bounded() -> anyhow::Result<()> {
    let (_origin, node) = start("max_log_bytes = \"512\"").await?;

    let resp = node.get(HOST, "/log?lines=40&len=40").await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let id = resp.request_id().unwrap_or_default().to_string();
    let stdout = logged(&node, &["stdout probe line 0 ", &id, "service=shop", "outpost::function"]).await;
    let stderr = logged(&node, &["stderr probe line 0 ", &id]).await;
    assert_eq!((stdout.len(), stderr.len()), (1, 1), "{}", node.stderr_text());
    // 80 lines of 48 bytes written, 512 logged: the first few, then one line saying the rest
    // was dropped.
    assert_eq!(logged(&node, &["more bytes of output dropped", &id]).await.len(), 1, "{}", node.stderr_text());
    // That note comes last: every line of the request has been read by now.
    assert!(log_lines(&node, &["probe line 39", &id]).is_empty(), "{}", node.stderr_text());
    Ok(())
}

/// `wasm` with a custom section appended: the same behaviour, other bytes, so another version.
fn another_version(wasm: &Path, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut bytes = std::fs::read(wasm)?;
    let payload = name.as_bytes();
    // Custom section: id 0, size, then the name as a length-prefixed string (lengths < 128
    // fit one LEB128 byte).
    anyhow::ensure!(payload.len() < 100, "short names only");
    bytes.extend_from_slice(&[0, payload.len() as u8 + 1, payload.len() as u8]);
    bytes.extend_from_slice(payload);
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[tokio::test]
async fn a_function_is_swapped_under_load_by_a_config_reload() -> anyhow::Result<()> {
    let probe = probe_guest()?;
    let origin = Origin::start().await?;
    let node = EdgeNode::start(config(&origin, &probe, "env = { VERSION = \"v1\" }")).await?;
    let v2 = another_version(&probe, node.dir(), "v2")?;
    let v1_version = version(&node)?;

    let node = Arc::new(tokio::sync::Mutex::new(node));
    let addr = node.lock().await.http_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let (v1_seen, v2_seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, v1_seen, v2_seen) = (stop.clone(), v1_seen.clone(), v2_seen.clone());
        load.push(tokio::spawn(async move {
            let mut after_v2 = false;
            while !stop.load(Ordering::Relaxed) {
                let resp = outpost_tests::client::send(addr, &Req::new(Method::GET, HOST, "/")).await?;
                anyhow::ensure!(resp.status == 200, "a request failed during the reload: {}", resp.summary());
                match resp.text().as_str() {
                    "hello from probe v1\n" => {
                        anyhow::ensure!(!after_v2, "v1 answered after this client had seen v2");
                        v1_seen.fetch_add(1, Ordering::Relaxed);
                    }
                    "hello from probe v2\n" => {
                        after_v2 = true;
                        v2_seen.fetch_add(1, Ordering::Relaxed);
                    }
                    other => anyhow::bail!("unexpected answer {other:?}"),
                }
            }
            anyhow::Ok(())
        }));
    }
    let seen_v1 = outpost_tests::eventually(Duration::from_secs(15), || v1_seen.load(Ordering::Relaxed) >= 20).await;
    anyhow::ensure!(seen_v1, "no load before the reload");
    let new_config = config(&origin, &v2, "env = { VERSION = \"v2\" }");
    node.lock().await.reload(new_config).await?;
    let before = v2_seen.load(Ordering::Relaxed);
    let seen_v2 =
        outpost_tests::eventually(Duration::from_secs(15), || v2_seen.load(Ordering::Relaxed) >= before + 20).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await??;
    }
    anyhow::ensure!(
        seen_v2,
        "v2 answered {} times after the reload ({} v1 answers in all)\n{}",
        v2_seen.load(Ordering::Relaxed) - before,
        v1_seen.load(Ordering::Relaxed),
        node.lock().await.stderr_text()
    );
    let node = node.lock().await;
    assert_eq!(node.get(HOST, "/").await?.text(), "hello from probe v2\n");
    let v2_version = version(&node)?;
    assert_ne!(v1_version, v2_version, "the reload loaded the new component");
    Ok(())
}

#[tokio::test]
async fn compiled_code_is_reused_across_a_restart() -> anyhow::Result<()> {
    let probe = probe_guest()?;
    let origin = Origin::start().await?;
    // The compiled-code cache is `functions.cache_dir`, by default beside the node's cache
    // directory, so in the node's own tempdir: empty at first start.
    let mut config = config(&origin, &probe, "");
    config.extra.clear();
    let mut node = EdgeNode::start(config).await?;
    assert_eq!(logged(&node, &["function compiled"]).await.len(), 1, "{}", node.stderr_text());
    assert_eq!(expect_ok(&node, "/").await?, "hello from probe v0\n");

    node.restart().await?;
    assert_eq!(
        logged(&node, &["function loaded from cache"]).await.len(),
        1,
        "the restarted node loads the machine code its first run compiled:\n{}",
        node.stderr_text()
    );
    assert_eq!(expect_ok(&node, "/").await?, "hello from probe v0\n");
    let metrics = node.admin(Method::GET, "/metrics", "").await?.text();
    assert!(metrics.contains("outpost_function_loads_total{source=\"cache\"} 1"), "{metrics}");
    Ok(())
}
