//! `edge-node check-config FILE` and `origin-shield check-config FILE` (contracts.md "CLI",
//! "origin-shield binary").

use std::process::Command;

use outpost_tests::node::{binary, shield_binary};
use outpost_tests::{NodeConfig, ServiceSpec};

#[test]
fn check_config_accepts_a_valid_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], "http://127.0.0.1:8080"));
    let path = config.write(dir.path())?;
    let out = Command::new(binary()?).arg("check-config").arg(&path).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {}: {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), format!("{}: ok", path.display()));
    Ok(())
}

#[test]
fn check_config_names_the_field_that_is_wrong() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], "http://127.0.0.1:8080"))
        .service(ServiceSpec::new("bad", &["bad.test"], "ftp://127.0.0.1:21"));
    let path = config.write(dir.path())?;
    let out = Command::new(binary()?).arg("check-config").arg(&path).output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    let prefix = format!("{}: services[1].origin: ", path.display());
    assert!(text.lines().any(|l| l.starts_with(&prefix)), "no line starting {prefix:?} in:\n{text}");
    Ok(())
}

#[test]
fn origin_shield_check_config_accepts_a_valid_file_and_names_a_wrong_field() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let good = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], "http://127.0.0.1:8080"))
        .name("shield-1")
        .write(dir.path())?;
    let out = Command::new(shield_binary()?).arg("check-config").arg(&good).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {}: {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), format!("{}: ok", good.display()));

    let bad_dir = tempfile::tempdir()?;
    let bad = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], "http://127.0.0.1:8080"))
        .service(
            ServiceSpec::new("bad", &["bad.test"], "http://127.0.0.1:8081")
                .shields(vec![("http://127.0.0.1:9000".into(), "Not A Pop!".into())]),
        )
        .write(bad_dir.path())?;
    let out = Command::new(shield_binary()?).arg("check-config").arg(&bad).output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    let prefix = format!("{}: services[1].shields[0].pop: ", bad.display());
    assert!(text.lines().any(|l| l.starts_with(&prefix)), "no line starting {prefix:?} in:\n{text}");
    Ok(())
}
