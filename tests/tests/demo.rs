//! `edge-node demo` shows what it claims: over cleartext HTTP/1.1 and over HTTP/2 with TLS, a
//! miss then a hit, each on an object of its own (the cache key has no scheme, so one object
//! fetched over both would be a hit the second time whatever the protocol), and the curl lines
//! it prints do the same on objects it has not fetched. Ctrl-C or SIGTERM stops it and removes
//! its scratch directory.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_tests::client::{self, TlsOpts};
use outpost_tests::{Binary, Proto, Req};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// Bound on the demo's start (a debug binary, a loaded machine) and on its stop.
const LIMIT: Duration = Duration::from_secs(60);
const LAST_LINE: &str = "Ctrl-C stops the demo.";

async fn start_demo() -> anyhow::Result<(Child, Vec<String>)> {
    let mut child = Command::new(Binary::EdgeNode.path()?)
        .args(["demo", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let lines = read_until_last(stdout).await?;
    Ok((child, lines))
}

/// The demo's output up to its last line (bounded: the demo may have failed to start).
async fn read_until_last(stdout: ChildStdout) -> anyhow::Result<Vec<String>> {
    let mut reader = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let start = Instant::now();
    loop {
        let left = LIMIT.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, reader.next_line()).await {
            Ok(Ok(Some(line))) => {
                let last = line.contains(LAST_LINE);
                seen.push(line);
                if last {
                    return Ok(seen);
                }
            }
            Ok(Ok(None)) => anyhow::bail!("the demo ended its output early:\n{}", seen.join("\n")),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!("no {LAST_LINE:?} within {LIMIT:?}:\n{}", seen.join("\n")),
        }
    }
}

/// The one line holding all of `parts`.
fn line_with<'a>(lines: &'a [String], parts: &[&str]) -> anyhow::Result<&'a str> {
    let found: Vec<&String> = lines.iter().filter(|l| parts.iter().all(|p| l.contains(p))).collect();
    anyhow::ensure!(found.len() == 1, "{} lines with {parts:?} in:\n{}", found.len(), lines.join("\n"));
    Ok(found[0].as_str())
}

/// `…localhost:PORT/path…` → PORT, for the URL that starts with `scheme://localhost:`.
fn port_in(line: &str, scheme: &str) -> anyhow::Result<u16> {
    let prefix = format!("{scheme}://localhost:");
    let rest = line.split(&prefix).nth(1).ok_or_else(|| anyhow::anyhow!("no {prefix} in {line:?}"))?;
    Ok(rest.split('/').next().unwrap_or_default().parse()?)
}

#[tokio::test]
async fn demo_shows_a_miss_then_a_hit_over_http_and_https() -> anyhow::Result<()> {
    let (mut child, lines) = start_demo().await?;
    let text = lines.join("\n");

    // The demo's own rounds: a separate object per protocol, each a miss then a hit.
    let http_first = line_with(&lines, &["first ", "GET http://", "(HTTP/1.1)"])?;
    let http_second = line_with(&lines, &["second", "GET http://", "(HTTP/1.1)"])?;
    let https_first = line_with(&lines, &["first ", "GET https://", "(HTTP/2, TLS)"])?;
    let https_second = line_with(&lines, &["second", "GET https://", "(HTTP/2, TLS)"])?;
    assert!(http_first.contains("fwd=uri-miss"), "{text}");
    assert!(http_second.contains("; hit"), "{text}");
    assert!(https_first.contains("fwd=uri-miss"), "the HTTPS object is its own: {text}");
    assert!(https_second.contains("; hit"), "{text}");
    assert!(text.contains("origin requests so far: 2"), "{text}");

    // The curl lines, followed as printed: objects the demo has not fetched, so a miss first.
    let curl_http = line_with(&lines, &["curl", "/hello.txt"])?;
    let curl_https = line_with(&lines, &["curl", "/hello-tls.txt"])?;
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], port_in(curl_http, "http")?));
    let https = std::net::SocketAddr::from(([127, 0, 0, 1], port_in(curl_https, "https")?));
    let cert_path = text
        .split("Certificate: ")
        .nth(1)
        .and_then(|rest| rest.split(". Ctrl-C").next())
        .ok_or_else(|| anyhow::anyhow!("no certificate path: {text}"))?
        .to_string();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&cert_path)?)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(outpost_tests::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tls = TlsOpts { sni: "localhost".into(), config: Arc::new(tls) };

    for (round, want_hit) in [("first", false), ("second", true)] {
        let plain = client::send(http, &Req::get("localhost", "/hello.txt")).await?;
        let mut secure = Req::get("localhost", "/hello-tls.txt");
        secure.proto = Proto::H2;
        secure.tls = Some(tls.clone());
        let secure = client::send(https, &secure).await?;
        for resp in [&plain, &secure] {
            assert_eq!(resp.status, 200, "{round}: {}", resp.summary());
            assert_eq!(resp.cache_status().hit(), want_hit, "{round}: {}", resp.summary());
        }
        assert_eq!(secure.alpn.as_deref(), Some(&b"h2"[..]));
    }

    // SIGTERM stops it (as Ctrl-C does) and its scratch directory goes.
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("the demo exited early"))?;
    let killed = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status()?;
    anyhow::ensure!(killed.success(), "kill -TERM failed");
    let status = tokio::time::timeout(LIMIT, child.wait()).await??;
    assert!(status.success(), "{status}");
    assert!(!std::path::Path::new(&cert_path).exists(), "{cert_path} removed on stop");
    Ok(())
}
