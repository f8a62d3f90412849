//! `outpostctl` against a real control plane: every command a tenant or operator uses, human
//! output and `--json`, and the errors a user meets (wrong token, unknown service, bad file,
//! unreachable URL) as one line on stderr with a non-zero exit.

use outpost_tests::control::{ControlConfig, ControlPlane, OPERATOR};
use serde_json::Value;

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
