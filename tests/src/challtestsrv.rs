//! A DNS server the test controls: Debian's `pebble-challtestsrv` on loopback ports chosen at
//! run time, serving DNS (UDP and TCP) and a management HTTP API for its records. Its HTTP-01,
//! HTTPS-01 and TLS-ALPN-01 responders are turned off: the edges answer those challenges.
//!
//! Every A query gets `127.0.0.1` unless a record says otherwise ([`ChallTestSrv::add_a`]), so
//! Pebble's validator, pointed at it with `-dnsserver`, connects to loopback for any name.
//! TXT records (`_outpost-challenge.<host>` for domain verification, `_acme-challenge.<host>`
//! for DNS-01) are set and cleared through the management API. Stopped (killed) and its
//! directory removed on drop.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::client::{self, Req};
use crate::node::{Lines, collect, lines};

/// Start-up bound: the management API answers within it.
const READY_LIMIT: Duration = Duration::from_secs(15);

/// A running `pebble-challtestsrv`.
pub struct ChallTestSrv {
    child: Option<Child>,
    dns: SocketAddr,
    management: SocketAddr,
    stderr: Lines,
}

impl ChallTestSrv {
    /// Starts it with DNS on a free loopback port (UDP and TCP share the number) and waits
    /// until its management API answers. Tries a few ports: a port found free may be taken by
    /// another process before the server binds it.
    pub async fn start() -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..5 {
            match Self::try_start().await {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("pebble-challtestsrv did not start")))
    }

    async fn try_start() -> anyhow::Result<Self> {
        let dns = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_and_tcp_port()?));
        let management = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()?));
        let mut child = Command::new(program())
            .args(["-dns01", &dns.to_string(), "-management", &management.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}; install Debian's pebble package", program()))?;
        let stderr = Lines::default();
        if let Some(err) = child.stderr.take() {
            collect(err, stderr.clone());
        }
        let mut server = Self { child: Some(child), dns, management, stderr };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("pebble-challtestsrv exited with {status}:\n{}", self.stderr_text());
            }
            // Any answer from the management API means it is up (a GET is 405 or 404 there).
            if client::send(self.management, &Req::get("127.0.0.1", "/")).await.is_ok() {
                return Ok(());
            }
            anyhow::ensure!(
                start.elapsed() < READY_LIMIT,
                "pebble-challtestsrv not ready after {READY_LIMIT:?}:\n{}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The DNS server's address (`-dnsserver` for Pebble, the control plane's resolver).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns
    }

    /// Answers A queries for `host` with `addresses` instead of the default `127.0.0.1`.
    pub async fn add_a(&self, host: &str, addresses: &[&str]) -> anyhow::Result<()> {
        self.post("/add-a", serde_json::json!({"host": fqdn(host), "addresses": addresses})).await
    }

    /// Sets the TXT record of `host` (one value; a second call replaces it).
    pub async fn set_txt(&self, host: &str, value: &str) -> anyhow::Result<()> {
        self.post("/set-txt", serde_json::json!({"host": fqdn(host), "value": value})).await
    }

    /// Removes the TXT record of `host`.
    pub async fn clear_txt(&self, host: &str) -> anyhow::Result<()> {
        self.post("/clear-txt", serde_json::json!({"host": fqdn(host)})).await
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let req = Req::post("127.0.0.1", path).header("content-type", "application/json").body(body.to_string());
        let resp = client::send(self.management, &req).await?;
        anyhow::ensure!(resp.status.is_success(), "challtestsrv {path}: {} {}", resp.status, resp.text());
        Ok(())
    }

    /// What the server logged so far (printed when a test fails).
    pub fn stderr_text(&self) -> String {
        lines(&self.stderr).join("\n")
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- pebble-challtestsrv stderr ----\n{}", self.stderr_text());
        }
    }
}

/// `OUTPOST_PEBBLE_CHALLTESTSRV` when set, else `pebble-challtestsrv` on PATH.
fn program() -> String {
    std::env::var("OUTPOST_PEBBLE_CHALLTESTSRV").unwrap_or_else(|_| "pebble-challtestsrv".to_owned())
}

/// DNS names as the server keys them: fully qualified, with the final dot.
fn fqdn(host: &str) -> String {
    if host.ends_with('.') { host.to_owned() } else { format!("{host}.") }
}

pub(crate) fn free_tcp_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A port free for both UDP and TCP on loopback (DNS serves both on one number).
fn free_udp_and_tcp_port() -> anyhow::Result<u16> {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free UDP port")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no port free for both UDP and TCP on 127.0.0.1")
}
