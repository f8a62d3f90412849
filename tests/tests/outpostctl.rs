//! `outpostctl` against a real control plane: every command a tenant or operator uses, human
//! output and `--json`, and the errors a user meets (wrong token, unknown service, bad file,
//! unreachable URL) as one line on stderr with a non-zero exit. `purge --wait` runs against a
//! fleet with a real edge node following the control plane.

use http::Method;
use outpost_tests::Reply;
use outpost_tests::control::{ControlConfig, ControlPlane, NODE_TOKEN, OPERATOR};
use outpost_tests::fleet::{Fleet, FleetSpec};
use serde_json::{Value, json};

const ACME: Option<&str> = Some("acme-token");
const OPS: Option<&str> = Some(OPERATOR);

fn ok(run: &outpost_tests::control::CtlRun) -> &str {
    assert_eq!(run.code, Some(0), "outpostctl failed: {run:?}");
    &run.stdout
}

#[tokio::test]
async fn a_tenant_manages_services_and_purges_from_the_shell() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    let dir = tempfile::tempdir()?;
    let toml = dir.path().join("shop.toml");
    std::fs::write(
        &toml,
        "hosts = [\"shop.example\"]\norigin = \"https://origin.shop.example\"\ndefault_ttl = \"1m\"\n",
    )?;

    let put = cp.ctl(ACME, &["services", "put", "shop", toml.to_str().unwrap_or_default()]).await?;
    assert_eq!(ok(&put), "shop: created, version 1\n");
    let again = cp.ctl(ACME, &["services", "put", "shop", toml.to_str().unwrap_or_default()]).await?;
    assert_eq!(ok(&again), "shop: updated, version 2\n");

    let list = cp.ctl(ACME, &["services", "list"]).await?;
    let lines: Vec<&str> = ok(&list).lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("HOSTS"), "{lines:?}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!((row[0], row[1], row[2]), ("shop", "acme", "2"));
    assert_eq!(row.last(), Some(&"shop.example"));

    let json = cp.ctl(ACME, &["--json", "services", "get", "shop"]).await?;
    let record: Value = serde_json::from_str(ok(&json))?;
    assert_eq!(record["config"]["default_ttl"], "1m");

    let purge =
        cp.ctl(ACME, &["purge", "shop", "--url", "https://shop.example/a.css", "--tag", "t1", "--soft"]).await?;
    let first = ok(&purge).lines().next().unwrap_or_default().to_owned();
    assert!(first.starts_with("purge ") && first.contains(" on shop (event 3)"), "{first}");
    let id = first.split_whitespace().nth(1).unwrap_or_default();
    let status = cp.ctl(ACME, &["--json", "purge-status", id]).await?;
    let status: Value = serde_json::from_str(ok(&status))?;
    assert_eq!((status["soft"].as_bool(), status["targets"].as_array().map(Vec::len)), (Some(true), Some(2)));

    let deleted = cp.ctl(ACME, &["services", "delete", "shop"]).await?;
    assert_eq!(ok(&deleted), "shop: deleted (event 4)\n");
    Ok(())
}

#[tokio::test]
async fn the_operator_lists_nodes() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    let nodes = cp.ctl(OPS, &["nodes", "list"]).await?;
    let text = ok(&nodes);
    assert!(text.starts_with("NODE") && text.ends_with("head: 0\n"), "{text}");
    let refused = cp.ctl(ACME, &["nodes", "list"]).await?;
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.starts_with("outpostctl: forbidden: "), "{}", refused.stderr);
    Ok(())
}

#[tokio::test]
async fn errors_are_one_line_and_exit_non_zero() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    let cases: [(Option<&str>, Vec<&str>, i32, &str); 4] = [
        (Some("wrong-token"), vec!["services", "list"], 1, "outpostctl: unauthorized: "),
        (ACME, vec!["services", "get", "nope"], 1, "outpostctl: not_found: "),
        (ACME, vec!["purge", "nope", "--all"], 1, "outpostctl: not_found: "),
        (ACME, vec!["services", "put", "shop", "/nonexistent/shop.toml"], 2, "outpostctl: /nonexistent/shop.toml: "),
    ];
    for (token, args, code, prefix) in cases {
        let run = cp.ctl(token, &args).await?;
        assert_eq!(run.code, Some(code), "{args:?}: {run:?}");
        assert!(run.stderr.starts_with(prefix) && run.stderr.lines().count() == 1, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    // An invalid config is refused with the field named.
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "hosts = [\"shop.example\"]\norigin = \"https://origin.shop.example\"\ndefault_ttl = \"soon\"\n",
    )?;
    let run = cp.ctl(ACME, &["services", "put", "shop", bad.to_str().unwrap_or_default()]).await?;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("default_ttl"), "{}", run.stderr);

    let gone = outpost_tests::refused_addr().await?;
    let run = std::process::Command::new(outpost_tests::control::outpostctl_binary()?)
        .args(["--api-url", &format!("http://{gone}"), "services", "list"])
        .env("OUTPOST_TOKEN", "acme-token")
        .output()?;
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("Connection refused") || stderr.contains("connection refused"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn a_tenant_deploys_activates_and_rolls_back_functions_from_the_shell() -> anyhow::Result<()> {
    use outpost_tests::wasm::{GuestKind, build_guest, probe_guest, repo_root};
    let probe = probe_guest()?;
    let hello = build_guest(&repo_root()?.join("wasm-sdk"), GuestKind::Example, "hello")?;
    let (probe, hello) = (probe.to_str().unwrap_or_default(), hello.to_str().unwrap_or_default());
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    let dir = tempfile::tempdir()?;
    let toml = dir.path().join("shop.toml");
    std::fs::write(&toml, "hosts = [\"shop.example\"]\norigin = \"https://origin.shop.example\"\n")?;
    ok(&cp.ctl(ACME, &["services", "put", "shop", toml.to_str().unwrap_or_default()]).await?);

    let deployed = cp.ctl(ACME, &["functions", "deploy", "shop", probe, "--activate"]).await?;
    let lines: Vec<&str> = ok(&deployed).lines().collect();
    assert!(lines[0].starts_with("shop: uploaded as version 1 (sha256 "), "{lines:?}");
    assert!(lines[1].starts_with("shop: version 1 active (sha256 "), "{lines:?}");
    let again = cp.ctl(ACME, &["functions", "deploy", "shop", probe]).await?;
    assert!(ok(&again).starts_with("shop: already uploaded as version 1"), "{again:?}");

    let json = cp.ctl(ACME, &["--json", "functions", "deploy", "shop", hello]).await?;
    let uploaded: Value = serde_json::from_str(ok(&json))?;
    assert_eq!((uploaded["version"].as_u64(), uploaded["sha256"].as_str().map(str::len)), (Some(2), Some(64)));
    let activated = cp.ctl(ACME, &["functions", "activate", "shop", "2"]).await?;
    assert!(ok(&activated).starts_with("shop: version 2 active"), "{activated:?}");

    let list = cp.ctl(ACME, &["functions", "list", "shop"]).await?;
    let lines: Vec<&str> = ok(&list).lines().collect();
    assert!(lines[0].starts_with("VERSION") && lines[0].contains("SHA256"), "{lines:?}");
    let active: Vec<&str> = lines.iter().filter(|l| l.split_whitespace().nth(1) == Some("*")).copied().collect();
    assert_eq!(active.len(), 1, "{lines:?}");
    assert!(active[0].starts_with('2'), "{lines:?}");
    assert_eq!(lines.last(), Some(&"history: 1,2"), "{lines:?}");

    let back = cp.ctl(ACME, &["--json", "functions", "rollback", "shop"]).await?;
    let record: Value = serde_json::from_str(ok(&back))?;
    assert_eq!(record["function"]["version"], 1);
    let none = cp.ctl(ACME, &["functions", "rollback", "shop"]).await?;
    assert_ne!(none.code, Some(0));
    assert!(none.stderr.contains("no_previous_version"), "{none:?}");
    let module = dir.path().join("core.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0")?;
    let refused = cp.ctl(ACME, &["functions", "deploy", "shop", module.to_str().unwrap_or_default()]).await?;
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("not_a_component") && refused.stderr.contains("wasm32-wasip2"), "{refused:?}");
    Ok(())
}

/// The whitespace-separated cells of each line of `text` after the header, which must start
/// with `header`.
fn rows<'a>(text: &'a str, header: &str) -> Vec<Vec<&'a str>> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    assert!(first.split_whitespace().eq(header.split_whitespace()), "header {first:?}, expected {header:?}");
    lines.map(|l| l.split_whitespace().collect()).collect()
}

#[tokio::test]
async fn a_purge_with_wait_returns_once_the_node_applied_it() -> anyhow::Result<()> {
    let fleet = Fleet::start(FleetSpec::one_edge()).await?;
    fleet.origin.route("/", Reply::ok("home".to_owned()).cache_control("max-age=600"));
    fleet.origin.route("/a", Reply::ok("a".to_owned()).cache_control("max-age=600"));
    fleet.create_shop(json!({})).await?;
    let edge = &fleet.edges[0];
    edge.get("shop.test", "/a").await?;
    let warm = edge.get("shop.test", "/a").await?;
    assert!(warm.cache_status().hit(), "{}", warm.summary());

    let run =
        fleet.cp.ctl(ACME, &["purge", "shop", "--url", "http://shop.test/a", "--wait", "--timeout", "10s"]).await?;
    let text = ok(&run);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("purge ") && first.ends_with(" on shop (event 2): complete"), "{text}");
    // The node table, then the PoP table.
    let tables: Vec<&str> = text.lines().skip(1).collect();
    let split = tables.iter().position(|l| l.starts_with("POP ")).unwrap_or_else(|| panic!("no PoP table: {text}"));
    let (nodes, pops) = (tables[..split].join("\n"), tables[split..].join("\n"));
    let nodes = rows(&nodes, "NODE POP LIVE APPLIED MS");
    assert_eq!(nodes.len(), 1, "{text}");
    assert_eq!(nodes[0][..4], ["edge-fra-1", "fra", "true", "true"], "{text}");
    assert!(nodes[0][4].parse::<u64>().is_ok(), "the node's time in ms: {text}");
    let pops = rows(&pops, "POP NODES APPLIED MAX MS");
    assert_eq!(pops.len(), 1, "{text}");
    assert_eq!(pops[0][..3], ["fra", "1", "1"], "{text}");
    assert!(!text.contains("pending:"), "{text}");
    // Applied means purged: the next request goes to the origin.
    let after = edge.get("shop.test", "/a").await?;
    assert!(!after.cache_status().hit(), "still cached after the wait: {}", after.summary());

    let run = fleet.cp.ctl(ACME, &["--json", "purge", "shop", "--all", "--soft", "--wait"]).await?;
    let progress: Value = serde_json::from_str(ok(&run))?;
    assert_eq!((progress["status"].as_str(), progress["complete"].as_bool()), (Some("complete"), Some(true)));
    assert_eq!(
        (progress["service"].as_str(), progress["seq"].as_u64(), progress["soft"].as_bool()),
        (Some("shop"), Some(3), Some(true))
    );
    assert_eq!(progress["pending"], json!([]));
    let node = &progress["nodes"]["edge-fra-1"];
    assert_eq!(
        (node["pop"].as_str(), node["live"].as_bool(), node["acked"].as_bool()),
        (Some("fra"), Some(true), Some(true))
    );
    assert!(node["ms"].as_u64().is_some(), "{progress}");
    assert_eq!(
        (progress["pops"]["fra"]["nodes"].as_u64(), progress["pops"]["fra"]["acked"].as_u64()),
        (Some(1), Some(1))
    );
    Ok(())
}

#[tokio::test]
async fn the_operator_lists_drains_and_restores_pops() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    // A node registers in `fra` (its admin address refuses probes: the PoP stays unhealthy).
    let admin = outpost_tests::refused_addr().await?;
    let registration = json!({"pop": "fra", "region": "eu-central", "role": "edge",
        "addresses": {"http": "127.0.0.1:8080", "admin": admin.to_string()}});
    let resp = cp.call(Method::PUT, "/v1/nodes/edge-fra-1", Some(NODE_TOKEN), &registration.to_string()).await?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The list is the table DNS answers from, rebuilt each probe round: wait (bounded) for it.
    let start = std::time::Instant::now();
    while serde_json::from_str::<Value>(ok(&cp.ctl(OPS, &["--json", "pops", "list"]).await?))?["pops"] == json!([]) {
        anyhow::ensure!(start.elapsed() < std::time::Duration::from_secs(10), "fra is not listed after 10s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let list = cp.ctl(OPS, &["pops", "list"]).await?;
    let pops = rows(ok(&list), "POP REGION HEALTHY DRAINED NODES SINCE");
    assert_eq!(pops.len(), 1, "{}", list.stdout);
    assert_eq!(pops[0][..5], ["fra", "eu-central", "false", "false", "edge-fra-1"], "{}", list.stdout);

    let drained = cp.ctl(OPS, &["pops", "drain", "fra"]).await?;
    assert_eq!(ok(&drained), "fra: drained\n");
    let list = cp.ctl(OPS, &["--json", "pops", "list"]).await?;
    let list: Value = serde_json::from_str(ok(&list))?;
    let fra = &list["pops"][0];
    assert_eq!((fra["pop"].as_str(), fra["drained"].as_bool()), (Some("fra"), Some(true)), "{list}");
    assert!(fra["drained_at"].is_string(), "{list}");
    assert_eq!(fra["nodes"][0]["id"], "edge-fra-1", "{list}");
    // Draining a drained PoP changes nothing.
    let again = cp.ctl(OPS, &["--json", "pops", "drain", "fra"]).await?;
    let again: Value = serde_json::from_str(ok(&again))?;
    assert_eq!((again["pop"].as_str(), again["drained"].as_bool()), (Some("fra"), Some(true)));

    let restored = cp.ctl(OPS, &["pops", "restore", "fra"]).await?;
    assert_eq!(ok(&restored), "fra: restored\n");
    let list = cp.ctl(OPS, &["pops", "list"]).await?;
    assert_eq!(rows(ok(&list), "POP REGION HEALTHY DRAINED NODES SINCE")[0][3], "false", "{}", list.stdout);
    let restored = cp.ctl(OPS, &["--json", "pops", "restore", "fra"]).await?;
    let restored: Value = serde_json::from_str(ok(&restored))?;
    assert_eq!(restored["drained"], false, "{restored}");

    let cases: [(Option<&str>, Vec<&str>, &str); 4] = [
        (OPS, vec!["pops", "drain", "nowhere"], "outpostctl: not_found: "),
        (OPS, vec!["pops", "restore", "no/such"], "outpostctl: invalid_request: "),
        (ACME, vec!["pops", "list"], "outpostctl: forbidden: "),
        (ACME, vec!["pops", "drain", "fra"], "outpostctl: forbidden: "),
    ];
    for (token, args, prefix) in cases {
        let run = cp.ctl(token, &args).await?;
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert!(run.stderr.starts_with(prefix) && run.stderr.lines().count() == 1, "{args:?}: {}", run.stderr);
    }
    let list: Value = serde_json::from_str(ok(&cp.ctl(OPS, &["--json", "pops", "list"]).await?))?;
    assert_eq!(list["pops"][0]["drained"], false, "a tenant's drain changed nothing: {list}");
    Ok(())
}

#[tokio::test]
async fn the_token_flag_works_without_the_environment_and_wins_over_it() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    // No OUTPOST_TOKEN: the flag alone, before or after the command.
    for args in [vec!["--token", "acme-token", "services", "list"], vec!["services", "list", "--token", "acme-token"]] {
        let run = cp.ctl(None, &args).await?;
        assert!(ok(&run).starts_with("ID"), "{args:?}: {run:?}");
    }
    // Neither: the API refuses.
    let run = cp.ctl(None, &["services", "list"]).await?;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.starts_with("outpostctl: unauthorized: "), "{}", run.stderr);
    // Both: the flag is used. The operator's token in the environment, a tenant's on the
    // command line: the tenant may not list nodes.
    let run = cp.ctl(OPS, &["--token", "acme-token", "nodes", "list"]).await?;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.starts_with("outpostctl: forbidden: "), "{}", run.stderr);
    let run = cp.ctl(Some("wrong-token"), &["--token", OPERATOR, "nodes", "list"]).await?;
    assert!(ok(&run).starts_with("NODE"), "{run:?}");
    Ok(())
}
