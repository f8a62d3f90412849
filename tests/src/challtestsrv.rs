//! A DNS server with records set at run time: Debian's `pebble-challtestsrv` (Let's Encrypt's
//! challenge test server) on loopback, answering every A query with 127.0.0.1 and AAAA with ::1
//! unless told otherwise, and TXT records set through its management API. Its HTTP-01,
//! HTTPS and TLS-ALPN listeners are off. Stopped (killed) on drop; [`ChallTestSrv::stop`]
//! takes it away mid-scenario (the resolver is gone: queries get ICMP port unreachable).
//!
//! The binary is `OUTPOST_CHALLTESTSRV` or `pebble-challtestsrv` on `PATH` (`.ci/run`
//! installs Debian's `pebble` package, which ships it).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::Method;

use crate::client::{self, Req};

/// A running `pebble-challtestsrv`.
pub struct ChallTestSrv {
    child: Option<Child>,
    dns: SocketAddr,
    management: SocketAddr,
}

impl ChallTestSrv {
    /// Starts it on free loopback ports (tried a few times: a port is found free, then
    /// released before the server binds it) and waits (bounded) until its management API answers.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// As [`ChallTestSrv::start`], with names it holds no record for answering A with
    /// 127.0.0.1 and AAAA with nothing: what Pebble's validator needs to reach edges listening
    /// on 127.0.0.1 for any host.
    pub async fn start_loopback_v4() -> anyhow::Result<Self> {
        Self::start_with(&["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]).await
    }

    async fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        let bin = std::env::var("OUTPOST_CHALLTESTSRV").unwrap_or_else(|_| "pebble-challtestsrv".to_owned());
        let mut last = String::new();
        for _ in 0..5 {
            let (dns, management) = (free_udp_and_tcp_port()?, free_tcp_port()?);
            let child = Command::new(&bin)
                .args(["-dns01", &dns.to_string(), "-management", &management.to_string()])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match child {
                Ok(child) => child,
                Err(e) => anyhow::bail!("{bin}: {e} (install Debian's pebble package, or set OUTPOST_CHALLTESTSRV)"),
            };
            let mut server = Self { child: Some(child), dns, management };
            match server.ready().await {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last = e.to_string();
                    server.stop();
                }
            }
        }
        anyhow::bail!("pebble-challtestsrv did not start: {last}")
    }

    async fn ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("exited at start with {status}");
            }
            if std::net::TcpStream::connect(self.management).is_ok() {
                return Ok(());
            }
            anyhow::ensure!(start.elapsed() < Duration::from_secs(10), "no management API after 10s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Where it answers DNS (UDP and TCP): what `domains.resolver` names.
    pub fn dns(&self) -> SocketAddr {
        self.dns
    }

    /// Sets the TXT record at `name` (without the trailing dot) to `value`.
    pub async fn set_txt(&self, name: &str, value: &str) -> anyhow::Result<()> {
        self.manage("/set-txt", serde_json::json!({"host": format!("{name}."), "value": value})).await
    }

    /// Removes every TXT record at `name`.
    pub async fn clear_txt(&self, name: &str) -> anyhow::Result<()> {
        self.manage("/clear-txt", serde_json::json!({"host": format!("{name}.")})).await
    }

    /// Answers A queries for `name` with `addresses` (instead of 127.0.0.1).
    pub async fn add_a(&self, name: &str, addresses: &[&str]) -> anyhow::Result<()> {
        self.manage("/add-a", serde_json::json!({"host": format!("{name}."), "addresses": addresses})).await
    }

    async fn manage(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let req = Req::new(Method::POST, "challtestsrv", path).body(body.to_string());
        let resp = client::send(self.management, &req).await?;
        anyhow::ensure!(resp.status.is_success(), "challtestsrv {path}: {} {}", resp.status, resp.text());
        Ok(())
    }

    /// Kills the server: the resolver is away from now on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_tcp_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A loopback port free for both UDP and TCP (DNS listens on both).
fn free_udp_and_tcp_port() -> anyhow::Result<SocketAddr> {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let addr = udp.local_addr()?;
        if TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    anyhow::bail!("no loopback port free for both UDP and TCP")
}
