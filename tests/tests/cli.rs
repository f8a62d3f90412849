//! `edge-node check-config FILE` and `origin-shield check-config FILE` (contracts.md "CLI",
//! "origin-shield binary").

use std::process::Command;

use outpost_tests::node::{binary, shield_binary};
use outpost_tests::tls::Leaf;
use outpost_tests::{NodeConfig, ServiceSpec, TestCa};

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

/// `leaf` with `change` made to it.
fn altered(leaf: &Leaf, change: impl FnOnce(&mut Leaf)) -> Leaf {
    let mut leaf = leaf.clone();
    change(&mut leaf);
    leaf
}

/// `check-config FILE` on a node config serving `leaves`: (exit code, stdout, stderr).
fn check_with_certificates(
    dir: &std::path::Path,
    leaves: &[Leaf],
) -> anyhow::Result<(Option<i32>, String, String, std::path::PathBuf)> {
    let mut config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], "http://127.0.0.1:8080"));
    for leaf in leaves {
        config = config.certificate(leaf.clone());
    }
    let path = config.write(dir)?;
    let out = Command::new(binary()?).arg("check-config").arg(&path).output()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((out.status.code(), text(&out.stdout), text(&out.stderr), path))
}

/// check-config refuses what start-up refuses (a key that is not a private key, a key that is
/// not the certificate's) and an expired certificate (RFC 5280 §4.1.2.5), each at its field
/// path with exit 1; names that miss a host (RFC 6125 §6.4) and a certificate not valid yet
/// are warnings, printed, with exit 0.
#[test]
fn check_config_finds_what_is_wrong_with_a_certificate() -> anyhow::Result<()> {
    let ca = TestCa::new("check-config CA")?;
    let good = ca.issue(&["shop.test"])?;
    let cert_as_key = altered(&good, |l| l.key_pem = l.cert_pem.clone());
    let other = ca.issue(&["shop.test"])?;
    let other_key = altered(&good, |l| l.key_pem = other.key_pem.clone());
    let expired = ca.issue_valid(&["shop.test"], Some(((2020, 1, 1), (2021, 1, 1))))?;
    let early = ca.issue_valid(&["shop.test"], Some(((2099, 1, 1), (2100, 1, 1))))?;
    let uncovered = altered(&good, |l| l.hosts = vec!["shop.test".into(), "blog.test".into()]);
    // (leaf, exit code, field path, words of the message; "" for none expected)
    let cases = [
        (good, 0, "", ""),
        (cert_as_key, 1, "tls.certificates[0].key", "not a private key"),
        (other_key, 1, "tls.certificates[0].key", "does not match the certificate"),
        (expired, 1, "tls.certificates[0].cert", "expired on Fri, 01 Jan 2021"),
        (early, 0, "tls.certificates[0].cert", "not valid before Thu, 01 Jan 2099"),
        (uncovered, 0, "tls.certificates[0].hosts[1]", "\"blog.test\" is not among"),
    ];
    for (leaf, code, field, words) in cases {
        let dir = tempfile::tempdir()?;
        let (exit, stdout, stderr, path) = check_with_certificates(dir.path(), std::slice::from_ref(&leaf))?;
        let all = format!("{stdout}{stderr}");
        assert_eq!(exit, Some(code), "{field} {words}: {all}");
        if field.is_empty() {
            assert!(stderr.is_empty(), "{all}");
        } else {
            let prefix = format!("{}: {field}: ", path.display());
            let line = stderr.lines().find(|l| l.starts_with(&prefix));
            assert!(line.is_some_and(|l| l.contains(words)), "no line {prefix:?} with {words:?} in:\n{all}");
            // A warning says so, and does not fail the check.
            let warning = line.is_some_and(|l| l[prefix.len()..].starts_with("warning: "));
            assert_eq!(warning, code == 0, "{all}");
        }
        let ok = format!("{}: ok", path.display());
        assert_eq!(stdout.trim() == ok, code == 0, "FILE: ok only without errors: {all}");
    }
    Ok(())
}

#[test]
fn check_config_lists_every_certificate_problem() -> anyhow::Result<()> {
    let ca = TestCa::new("check-config CA")?;
    let good = ca.issue(&["shop.test"])?;
    let leaves = [
        altered(&good, |l| l.key_pem = l.cert_pem.clone()),
        ca.issue_valid(&["a.test"], Some(((2020, 1, 1), (2021, 1, 1))))?,
        altered(&good, |l| l.hosts = vec!["b.test".into()]),
    ];
    let dir = tempfile::tempdir()?;
    let (exit, _, stderr, path) = check_with_certificates(dir.path(), &leaves)?;
    assert_eq!(exit, Some(1), "{stderr}");
    let file = path.display().to_string();
    let fields: Vec<&str> =
        stderr.lines().filter_map(|l| l.strip_prefix(file.as_str())?.strip_prefix(": ")?.split(": ").next()).collect();
    assert_eq!(
        fields,
        ["tls.certificates[0].key", "tls.certificates[1].cert", "tls.certificates[2].hosts[0]"],
        "{stderr}"
    );
    Ok(())
}

/// `control-plane check-config` lists every problem with its field path, type errors included
/// (serde stops at the first: the file is deserialized again without each one found), and
/// exits 1.
#[test]
fn control_plane_check_config_lists_every_problem() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cp.toml");
    let cases: [(&str, [&str; 3]); 2] = [
        (
            "data = \"cp.redb\"\nlisten = 7400\n[nodes]\nstream_buffer = \"many\"\n[limits]\nmax_page = -1\n",
            ["listen", "nodes.stream_buffer", "limits.max_page"],
        ),
        (
            "data = \"cp.redb\"\n[limits]\nmax_page = 0\npurge_rate = 0.0\n",
            ["tokens", "limits.max_page", "limits.purge_rate"],
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&path, text)?;
        let out = Command::new(outpost_tests::control::binary()?).arg("check-config").arg(&path).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let file = path.display().to_string();
        for field in want {
            let prefix = format!("{file}: {field}: ");
            assert!(stderr.lines().any(|l| l.starts_with(&prefix)), "no line {prefix:?} in:\n{stderr}");
        }
    }
    Ok(())
}
