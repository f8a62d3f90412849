//! Pebble, the ACME (RFC 8555) test server: Debian's `pebble` on loopback ports chosen at run
//! time, with its test CA, in a temporary directory; stopped (killed) and removed on drop.
//!
//! - Its own HTTPS listeners (the ACME directory and the management API) present a certificate
//!   from a [`TestCa`] made here ([`Pebble::listener_ca_pem`]): the control plane trusts Pebble
//!   through that file, as it would trust a private ACME server's CA.
//! - Its validator resolves challenge names through `-dnsserver` (a [`ChallTestSrv`], which
//!   answers `127.0.0.1` for any name) and connects to [`PebbleOptions::http_port`] for HTTP-01
//!   and [`PebbleOptions::tls_port`] for TLS-ALPN-01 (RFC 8737): point them at an edge's HTTP
//!   and HTTPS listeners.
//! - It makes a new root and intermediate at every start; [`Pebble::roots`] reads them from its
//!   management API, for the clients that must trust what it issues.
//! - [`Pebble::reserve`] picks its ports (so [`Pebble::directory_url`] is known to the control
//!   plane's config) before [`Pebble::start`] runs it aimed at edges started in between.
//! - `PEBBLE_VA_NOSLEEP=1` (no random validation delays), `PEBBLE_WFE_NONCEREJECT=0` (no
//!   spurious `badNonce`), `PEBBLE_AUTHZREUSE=0` (every order validates again, so a renewal
//!   exercises the challenges too): fast and deterministic.
//!
//! [`ChallTestSrv`]: crate::challtestsrv::ChallTestSrv

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::challtestsrv::free_tcp_port;
use crate::client::{self, Req, TlsOpts};
use crate::node::{Lines, collect, lines};
use crate::tls::TestCa;

/// Start-up bound: the directory answers within it.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// Where Pebble's validator goes, and what it issues.
#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// `httpPort`: the port HTTP-01 validation connects to (an edge's HTTP listener).
    pub http_port: u16,
    /// `tlsPort`: the port TLS-ALPN-01 validation connects to (an edge's HTTPS listener).
    pub tls_port: u16,
    /// `-dnsserver`: the DNS server challenge names are resolved through.
    pub dns: SocketAddr,
    /// `certificateValidityPeriod`: the lifetime of the certificates it issues; `None` for
    /// Pebble's default (5 years less a day).
    pub validity: Option<Duration>,
    /// `PEBBLE_VA_SLEEPTIME`: seconds the validator sleeps before each validation (none when
    /// 0): keeps an order pending long enough to restart the control plane in it.
    pub validation_delay: u32,
}

/// A running Pebble.
pub struct Pebble {
    options: PebbleOptions,
    dir: tempfile::TempDir,
    listener_ca: TestCa,
    acme: SocketAddr,
    management: SocketAddr,
    child: Option<Child>,
    stderr: Lines,
}

impl Pebble {
    /// Picks its loopback ports and writes its listener certificate; nothing runs yet. The
    /// ports are free now and bound by [`Pebble::start`] (another process could take one in
    /// between: the start then fails and says so).
    pub fn reserve(dns: SocketAddr) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("outpost-pebble-").tempdir()?;
        let listener_ca = TestCa::new("Outpost test CA for Pebble's listener")?;
        let leaf = listener_ca.issue(&["127.0.0.1", "localhost"])?;
        std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem)?;
        std::fs::write(dir.path().join("key.pem"), &leaf.key_pem)?;
        std::fs::write(dir.path().join("listener-ca.pem"), listener_ca.cert_pem())?;
        Ok(Self {
            options: PebbleOptions { http_port: 0, tls_port: 0, dns, validity: None, validation_delay: 0 },
            dir,
            listener_ca,
            acme: free_tcp_port()?,
            management: free_tcp_port()?,
            child: None,
            stderr: Lines::default(),
        })
    }

    /// Starts it with `options` on the reserved ports, and waits until its directory answers.
    pub async fn start(&mut self, options: PebbleOptions) -> anyhow::Result<()> {
        self.options = options;
        self.kill();
        self.spawn().await
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("pebble.json")
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let mut pebble = serde_json::json!({
            "listenAddress": self.acme.to_string(),
            "managementListenAddress": self.management.to_string(),
            "certificate": self.dir.path().join("cert.pem"),
            "privateKey": self.dir.path().join("key.pem"),
            "httpPort": self.options.http_port,
            "tlsPort": self.options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(validity) = self.options.validity {
            pebble["certificateValidityPeriod"] = serde_json::json!(validity.as_secs().max(1));
        }
        let config = serde_json::json!({ "pebble": pebble });
        std::fs::write(self.config_path(), serde_json::to_vec_pretty(&config)?)?;
        Ok(())
    }

    /// Starts Pebble, tried a few times: a port found free may be taken by another process
    /// before Pebble binds it. The management port is picked anew (tests read it from here);
    /// the ACME port is in the control plane's config already, so it is tried again as it is.
    async fn spawn(&mut self) -> anyhow::Result<()> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.spawn_once().await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 5 && self.log_text().contains("address already in use") => {
                    log_retry(&e);
                    self.kill();
                    if self.log_text().contains(&format!("{}: bind", self.management)) {
                        self.management = free_tcp_port()?;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn spawn_once(&mut self) -> anyhow::Result<()> {
        self.write_config()?;
        self.stderr = Lines::default();
        let mut child = Command::new(program())
            .arg("-config")
            .arg(self.config_path())
            .args(["-dnsserver", &self.options.dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", if self.options.validation_delay == 0 { "1" } else { "0" })
            .env("PEBBLE_VA_SLEEPTIME", self.options.validation_delay.to_string())
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}; install Debian's pebble package", program()))?;
        // Pebble logs to stdout; both go to one list, in arrival order per stream.
        if let Some(out) = child.stdout.take() {
            collect(out, self.stderr.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, self.stderr.clone());
        }
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("pebble exited with {status}:\n{}", self.log_text());
            }
            if let Ok(resp) = client::send(self.acme, &self.get("/dir")?).await
                && resp.status.is_success()
            {
                return Ok(());
            }
            anyhow::ensure!(
                start.elapsed() < READY_LIMIT,
                "pebble not ready after {READY_LIMIT:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A GET to one of Pebble's listeners, trusting its listener CA.
    fn get(&self, path: &str) -> anyhow::Result<Req> {
        let config = Arc::new(self.listener_ca.client_config(&[b"http/1.1"])?);
        let mut req = Req::get("127.0.0.1", path);
        req.tls = Some(TlsOpts { sni: "127.0.0.1".to_owned(), config });
        Ok(req)
    }

    /// The ACME directory URL (`https://127.0.0.1:PORT/dir`).
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.acme)
    }

    /// The CA (PEM) Pebble's own listeners' certificate chains to: what an ACME client must
    /// trust to talk to it.
    pub fn listener_ca_pem(&self) -> String {
        self.listener_ca.cert_pem()
    }

    /// [`Pebble::listener_ca_pem`] in a file (the control plane's `acme.ca_file`).
    pub fn listener_ca_file(&self) -> PathBuf {
        self.dir.path().join("listener-ca.pem")
    }

    /// The root that signs what Pebble issues, then its intermediate, as PEM (from the
    /// management API's `/roots/0` and `/intermediates/0`). New at every start.
    pub async fn roots(&self) -> anyhow::Result<(String, String)> {
        let mut pems = Vec::new();
        for path in ["/roots/0", "/intermediates/0"] {
            let resp = client::send(self.management, &self.get(path)?).await?;
            anyhow::ensure!(resp.status.is_success(), "pebble {path}: {}", resp.status);
            pems.push(resp.text());
        }
        let intermediate = pems.pop().unwrap_or_default();
        let root = pems.pop().unwrap_or_default();
        Ok((root, intermediate))
    }

    /// [`Pebble::roots`]' root as DER, for a rustls root store.
    pub async fn root_der(&self) -> anyhow::Result<CertificateDer<'static>> {
        let (root, _) = self.roots().await?;
        CertificateDer::from_pem_slice(root.as_bytes()).context("pebble's root is not a PEM certificate")
    }

    /// [`Pebble::roots`]' intermediate as DER: what signs the leaves, sent in every chain an
    /// edge serves for them (a browser's SPKI pin matches it).
    pub async fn intermediate_der(&self) -> anyhow::Result<CertificateDer<'static>> {
        let (_, intermediate) = self.roots().await?;
        CertificateDer::from_pem_slice(intermediate.as_bytes())
            .context("pebble's intermediate is not a PEM certificate")
    }

    /// Stops Pebble (SIGKILL): an ACME server that went away.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts it again on the same ports with the same options (and a new root: Pebble keeps
    /// nothing).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn().await
    }

    /// What Pebble logged (printed when a test fails).
    pub fn log_text(&self) -> String {
        lines(&self.stderr).join("\n")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- pebble log ----\n{}", self.log_text());
        }
    }
}

/// `OUTPOST_PEBBLE` when set, else `pebble` on PATH.
fn program() -> String {
    std::env::var("OUTPOST_PEBBLE").unwrap_or_else(|_| "pebble".to_owned())
}

/// A retried start is worth a line in the test's output.
fn log_retry(error: &anyhow::Error) {
    eprintln!("pebble: a port was taken before it bound it; trying again ({error:#})");
}
