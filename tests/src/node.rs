//! The node under test: a real `edge-node` (or `origin-shield`) process with a config written
//! into its own tempdir.
//!
//! [`NodeConfig`] renders the TOML file; [`EdgeNode`] spawns the binary, waits (bounded) for the
//! ready file, collects stdout (the access log) and stderr, and stops the process with SIGTERM
//! (or SIGKILL, for a crash). `restart` starts it again on the same config and cache directory;
//! `restart_same_addrs` also on the same ports, for peers whose config names this node.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::Method;

use crate::client::{self, Req, Resp};
use crate::tls::Leaf;

/// Bound on start-up: the ready file must appear within this.
pub const READY_LIMIT: Duration = Duration::from_secs(30);
/// Time [`EdgeNode::prime`] leaves the node to close a fill's flight.
pub const SETTLE: Duration = Duration::from_millis(50);
/// Bound on a SIGTERM shutdown.
pub const STOP_LIMIT: Duration = Duration::from_secs(15);

/// How a service sets the Host header it sends upstream.
#[derive(Clone, Debug)]
pub enum HostHeader {
    Keep,
    Origin,
    Literal(String),
}

/// One `[[services]]` entry.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub name: String,
    pub hosts: Vec<String>,
    pub origin: String,
    pub host_header: HostHeader,
    pub default_ttl: Option<String>,
    /// PEM of the CA the origin's certificate must chain to.
    pub origin_ca_pem: Option<String>,
    /// `origins = [{ url, group }]`; when non-empty it replaces `origin`.
    pub origins: Vec<(String, u8)>,
    /// `shields = [{ url, pop }]`.
    pub shields: Vec<(String, String)>,
    pub origin_when_shields_down: Option<bool>,
    pub health: Option<HealthSpec>,
    pub passive: Option<PassiveSpec>,
    pub retry: Option<RetrySpec>,
    /// Raw TOML lines appended to the table (before its sub-tables).
    pub extra: Vec<String>,
}

/// `[services.health]`: active probes.
#[derive(Clone, Debug)]
pub struct HealthSpec {
    pub enabled: Option<bool>,
    pub path: String,
    pub interval: String,
    pub timeout: String,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

/// `[services.passive]`: the circuit breaker.
#[derive(Clone, Debug)]
pub struct PassiveSpec {
    pub failure_threshold: u32,
    pub ejection: String,
    pub max_ejection: Option<String>,
    pub max_ejection_percent: Option<u8>,
    pub eject_on_5xx: Option<bool>,
}

/// `[services.retry]`.
#[derive(Clone, Debug)]
pub struct RetrySpec {
    pub max_retries: u32,
    pub base_backoff: Option<String>,
}

impl ServiceSpec {
    pub fn new(name: &str, hosts: &[&str], origin: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            origin: origin.into(),
            host_header: HostHeader::Keep,
            default_ttl: None,
            origin_ca_pem: None,
            origins: Vec::new(),
            shields: Vec::new(),
            origin_when_shields_down: None,
            health: None,
            passive: None,
            retry: None,
            extra: Vec::new(),
        }
    }

    pub fn host_header(mut self, h: HostHeader) -> Self {
        self.host_header = h;
        self
    }

    pub fn default_ttl(mut self, ttl: &str) -> Self {
        self.default_ttl = Some(ttl.to_string());
        self
    }

    pub fn origin_ca(mut self, pem: String) -> Self {
        self.origin_ca_pem = Some(pem);
        self
    }

    /// Several origins, `(url, failover group)`, written as `origins = [...]` instead of `origin`.
    pub fn origins(mut self, origins: Vec<(String, u8)>) -> Self {
        self.origins = origins;
        self
    }

    /// The shield tier, `(url, pop)`.
    pub fn shields(mut self, shields: Vec<(String, String)>) -> Self {
        self.shields = shields;
        self
    }

    pub fn origin_when_shields_down(mut self, on: bool) -> Self {
        self.origin_when_shields_down = Some(on);
        self
    }

    /// `[services.health]`: probe `path` every `interval`, `timeout` per probe, down after
    /// `unhealthy` failures in a row, up after `healthy` successes in a row.
    pub fn health(mut self, path: &str, interval: &str, timeout: &str, unhealthy: u32, healthy: u32) -> Self {
        self.health = Some(HealthSpec {
            enabled: None,
            path: path.to_string(),
            interval: interval.to_string(),
            timeout: timeout.to_string(),
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
        });
        self
    }

    /// `[services.health] enabled = true`, on top of [`ServiceSpec::health`] (call that first):
    /// a single origin is not probed unless asked.
    pub fn with_health_checks(mut self) -> Self {
        if let Some(h) = &mut self.health {
            h.enabled = Some(true);
        }
        self
    }

    /// `[services.health] enabled = false` (other health fields at their defaults unless set).
    pub fn without_health_checks(mut self) -> Self {
        let mut health = self.health.take().unwrap_or(HealthSpec {
            enabled: None,
            path: "/".into(),
            interval: "5s".into(),
            timeout: "2s".into(),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        });
        health.enabled = Some(false);
        self.health = Some(health);
        self
    }

    /// `[services.passive]`: `failure_threshold` failures in a row open the breaker for `ejection`.
    pub fn passive(mut self, failure_threshold: u32, ejection: &str) -> Self {
        self.passive = Some(PassiveSpec {
            failure_threshold,
            ejection: ejection.to_string(),
            max_ejection: None,
            max_ejection_percent: None,
            eject_on_5xx: None,
        });
        self
    }

    /// `[services.passive]`: `max_ejection_percent` and `eject_on_5xx`, on top of
    /// [`ServiceSpec::passive`] (call that first).
    pub fn ejection(mut self, max_ejection_percent: Option<u8>, eject_on_5xx: Option<bool>) -> Self {
        if let Some(p) = &mut self.passive {
            p.max_ejection_percent = max_ejection_percent;
            p.eject_on_5xx = eject_on_5xx;
        }
        self
    }

    /// `[services.retry] max_retries`.
    pub fn retry(mut self, max_retries: u32) -> Self {
        self.retry = Some(RetrySpec { max_retries, base_backoff: None });
        self
    }

    /// Appends a raw `key = value` line to the service's table.
    pub fn line(mut self, raw: impl Into<String>) -> Self {
        self.extra.push(raw.into());
        self
    }
}

/// The node's whole config file.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    /// `listen.http`; port 0 unless a restart must keep the port.
    pub http_listen: String,
    /// `listen.admin`; port 0 unless a restart must keep the port.
    pub admin_listen: String,
    /// Open the HTTPS listener (needs `certificates`).
    pub https: bool,
    /// `listen.http3`: HTTP/3 on the UDP port of the HTTPS listener.
    pub http3: bool,
    pub certificates: Vec<Leaf>,
    /// `tls.default_host`, the certificate clients without SNI get. `None`: the first exact
    /// host of the first certificate (what such clients got before the setting existed);
    /// `Some("")`: none written (they get the `unrecognized_name` alert).
    pub tls_default_host: Option<String>,
    pub memory: String,
    pub disk: String,
    pub max_object_size: String,
    pub max_header_bytes: String,
    pub max_request_body: String,
    pub connect_timeout: String,
    pub first_byte_timeout: String,
    pub between_bytes_timeout: Option<String>,
    pub services: Vec<ServiceSpec>,
    /// Raw TOML lines added to `[node]` (e.g. `pop = "fra"`).
    pub node_lines: Vec<String>,
    /// Raw TOML lines added to `[listen]` and to `[limits]`.
    pub listen_lines: Vec<String>,
    pub limits_lines: Vec<String>,
    /// Raw TOML appended to the file.
    /// `[log] level` (the node's tracing filter); `None`: the node's default.
    pub log_level: Option<String>,
    pub extra: String,
    /// `listen.admin_token`: [`ADMIN_TOKEN`] unless a test sets another; `None` writes none.
    pub admin_token: Option<String>,
    /// `limits.tenant_upstream_allow`: loopback by default, since the test origins and shields
    /// that the control plane's services name all listen there.
    pub tenant_upstream_allow: Vec<String>,
    /// `log.access`: `"stdout"` unless a test sets a file (or `"off"`).
    pub access: String,
    /// Raw TOML lines added to `[log]` (e.g. `access_flush = "50ms"`).
    pub log_lines: Vec<String>,
}

/// The admin token every [`NodeConfig`] has unless a test sets another; [`EdgeNode::admin`]
/// sends it.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "edge-1".into(),
            http_listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            https: false,
            http3: false,
            certificates: Vec::new(),
            tls_default_host: None,
            memory: "16MiB".into(),
            disk: "64MiB".into(),
            max_object_size: "8MiB".into(),
            max_header_bytes: "16KiB".into(),
            max_request_body: "1MiB".into(),
            connect_timeout: "1s".into(),
            first_byte_timeout: "2s".into(),
            between_bytes_timeout: None,
            services: Vec::new(),
            node_lines: Vec::new(),
            listen_lines: Vec::new(),
            limits_lines: Vec::new(),
            log_level: None,
            extra: String::new(),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            tenant_upstream_allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            access: "stdout".into(),
            log_lines: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// A node named "edge-1" with one service.
    pub fn with_service(service: ServiceSpec) -> Self {
        Self::default().service(service)
    }

    pub fn service(mut self, service: ServiceSpec) -> Self {
        self.services.push(service);
        self
    }

    /// `node.name`: this node's entry in `Cache-Status` and its `Via`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// `log.access`: a file path (or `"stdout"`, `"off"`).
    pub fn access_log(mut self, target: impl Into<String>) -> Self {
        self.access = target.into();
        self
    }

    /// A raw TOML line added to `[log]`.
    pub fn log_line(mut self, line: &str) -> Self {
        self.log_lines.push(line.to_string());
        self
    }

    /// `[upstream]` connect and first-byte timeouts.
    pub fn timeouts(mut self, connect: &str, first_byte: &str) -> Self {
        self.connect_timeout = connect.to_string();
        self.first_byte_timeout = first_byte.to_string();
        self
    }

    /// Open the HTTPS listener with this certificate (call once per certificate).
    pub fn certificate(mut self, leaf: Leaf) -> Self {
        self.https = true;
        self.certificates.push(leaf);
        self
    }

    /// `listen.http3`: serve HTTP/3 on the HTTPS listener's UDP port (needs a certificate).
    pub fn http3(mut self, on: bool) -> Self {
        self.http3 = on;
        self
    }

    /// One raw `key = value` line in `[node]`, e.g. `pop = "fra"`.
    pub fn node_line(mut self, line: &str) -> Self {
        self.node_lines.push(line.to_string());
        self
    }

    /// One raw `key = value` line in `[listen]`, e.g. `http3_early_data = true`.
    pub fn listen_line(mut self, line: &str) -> Self {
        self.listen_lines.push(line.to_string());
        self
    }

    /// One raw `key = value` line in `[limits]`, e.g. `max_connections = 2`.
    pub fn limits_line(mut self, line: &str) -> Self {
        self.limits_lines.push(line.to_string());
        self
    }

    /// Writes the config and the files it names into `dir`; returns the config file's path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let mut toml = String::new();
        let mut line = |s: String| {
            toml.push_str(&s);
            toml.push('\n');
        };
        line("[node]".into());
        line(format!("name = {}", q(&self.name)));
        for l in &self.node_lines {
            line(l.clone());
        }
        line(String::new());
        line("[listen]".into());
        line(format!("http = {}", q(&self.http_listen)));
        if self.https {
            line(format!("https = {}", q("127.0.0.1:0")));
        }
        if self.http3 {
            line("http3 = true".into());
        }
        line(format!("admin = {}", q(&self.admin_listen)));
        if let Some(token) = &self.admin_token {
            line(format!("admin_token = {}", q(token)));
        }
        for l in &self.listen_lines {
            line(l.clone());
        }
        let first_exact = || self.certificates.first()?.hosts.iter().find(|h| !h.starts_with('*')).cloned();
        let default_host = match &self.tls_default_host {
            Some(host) if host.is_empty() => None,
            Some(host) => Some(host.clone()),
            None => first_exact(),
        };
        if let Some(host) = default_host {
            line(String::new());
            line("[tls]".into());
            line(format!("default_host = {}", q(&host)));
        }
        for (i, leaf) in self.certificates.iter().enumerate() {
            let cert = dir.join(format!("cert-{i}.pem"));
            let key = dir.join(format!("key-{i}.pem"));
            std::fs::write(&cert, &leaf.cert_pem)?;
            std::fs::write(&key, &leaf.key_pem)?;
            line(String::new());
            line("[[tls.certificates]]".into());
            line(format!("hosts = {}", list(&leaf.hosts)));
            line(format!("cert = {}", q(&cert.display().to_string())));
            line(format!("key = {}", q(&key.display().to_string())));
        }
        line(String::new());
        line("[cache]".into());
        line(format!("memory = {}", q(&self.memory)));
        line(format!("disk_path = {}", q(&dir.join("cache").display().to_string())));
        line(format!("disk = {}", q(&self.disk)));
        line(format!("max_object_size = {}", q(&self.max_object_size)));
        line(String::new());
        line("[limits]".into());
        line(format!("max_header_bytes = {}", q(&self.max_header_bytes)));
        line(format!("max_request_body = {}", q(&self.max_request_body)));
        if !self.tenant_upstream_allow.is_empty() {
            line(format!("tenant_upstream_allow = {}", list(&self.tenant_upstream_allow)));
        }
        for l in &self.limits_lines {
            line(l.clone());
        }
        line(String::new());
        line("[upstream]".into());
        line(format!("connect_timeout = {}", q(&self.connect_timeout)));
        line(format!("first_byte_timeout = {}", q(&self.first_byte_timeout)));
        if let Some(t) = &self.between_bytes_timeout {
            line(format!("between_bytes_timeout = {}", q(t)));
        }
        line(String::new());
        line("[log]".into());
        line(format!("access = {}", q(&self.access)));
        if let Some(level) = &self.log_level {
            line(format!("level = {}", q(level)));
        }
        for l in &self.log_lines {
            line(l.clone());
        }
        for (i, s) in self.services.iter().enumerate() {
            line(String::new());
            line("[[services]]".into());
            line(format!("name = {}", q(&s.name)));
            line(format!("hosts = {}", list(&s.hosts)));
            if s.origins.is_empty() {
                line(format!("origin = {}", q(&s.origin)));
            } else {
                let origins: Vec<String> =
                    s.origins.iter().map(|(url, group)| format!("{{ url = {}, group = {group} }}", q(url))).collect();
                line(format!("origins = [{}]", origins.join(", ")));
            }
            if !s.shields.is_empty() {
                let shields: Vec<String> =
                    s.shields.iter().map(|(url, pop)| format!("{{ url = {}, pop = {} }}", q(url), q(pop))).collect();
                line(format!("shields = [{}]", shields.join(", ")));
            }
            if let Some(on) = s.origin_when_shields_down {
                line(format!("origin_when_shields_down = {on}"));
            }
            line(host_header_line(&s.host_header));
            if let Some(ttl) = &s.default_ttl {
                line(format!("default_ttl = {}", q(ttl)));
            }
            if let Some(pem) = &s.origin_ca_pem {
                let path = dir.join(format!("origin-ca-{i}.pem"));
                std::fs::write(&path, pem)?;
                line(format!("origin_ca = {}", q(&path.display().to_string())));
            }
            for extra in &s.extra {
                line(extra.clone());
            }
            if let Some(h) = &s.health {
                line("[services.health]".into());
                if let Some(on) = h.enabled {
                    line(format!("enabled = {on}"));
                }
                line(format!("path = {}", q(&h.path)));
                line(format!("interval = {}", q(&h.interval)));
                line(format!("timeout = {}", q(&h.timeout)));
                line(format!("unhealthy_threshold = {}", h.unhealthy_threshold));
                line(format!("healthy_threshold = {}", h.healthy_threshold));
            }
            if let Some(p) = &s.passive {
                line("[services.passive]".into());
                line(format!("failure_threshold = {}", p.failure_threshold));
                line(format!("ejection = {}", q(&p.ejection)));
                if let Some(max) = &p.max_ejection {
                    line(format!("max_ejection = {}", q(max)));
                }
                if let Some(percent) = p.max_ejection_percent {
                    line(format!("max_ejection_percent = {percent}"));
                }
                if let Some(on) = p.eject_on_5xx {
                    line(format!("eject_on_5xx = {on}"));
                }
            }
            if let Some(r) = &s.retry {
                line("[services.retry]".into());
                line(format!("max_retries = {}", r.max_retries));
                if let Some(b) = &r.base_backoff {
                    line(format!("base_backoff = {}", q(b)));
                }
            }
        }
        toml.push_str(&self.extra);
        let path = dir.join("edge.toml");
        std::fs::write(&path, toml)?;
        Ok(path)
    }
}

/// The one place that knows how `host_header` is spelled in the file.
fn host_header_line(h: &HostHeader) -> String {
    match h {
        HostHeader::Keep => format!("host_header = {}", q("keep")),
        HostHeader::Origin => format!("host_header = {}", q("origin")),
        HostHeader::Literal(host) => format!("host_header = {}", q(host)),
    }
}

/// A TOML basic string (JSON string escapes are a subset of TOML's).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The addresses a running node reported in its ready file.
#[derive(Clone, Copy, Debug)]
pub struct Addrs {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
}

pub(crate) type Lines = Arc<Mutex<Vec<String>>>;

/// Which binary a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `edge-node`, located by [`binary`].
    EdgeNode,
    /// `origin-shield`, located by [`shield_binary`].
    OriginShield,
}

impl Binary {
    pub fn name(self) -> &'static str {
        match self {
            Binary::EdgeNode => "edge-node",
            Binary::OriginShield => "origin-shield",
        }
    }

    pub fn path(self) -> anyhow::Result<PathBuf> {
        match self {
            Binary::EdgeNode => binary(),
            Binary::OriginShield => shield_binary(),
        }
    }
}

/// A running `edge-node` or `origin-shield` process. Dropping it kills the process.
pub struct EdgeNode {
    binary: Binary,
    config: NodeConfig,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    ready_path: PathBuf,
    child: Option<Child>,
    addrs: Addrs,
    stdout: Lines,
    stderr: Lines,
    /// Variables set for the process beyond the test's own environment.
    env: Vec<(String, String)>,
}

impl EdgeNode {
    /// Writes `config` into a fresh tempdir, starts the `edge-node` binary and waits until it is
    /// ready.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Self> {
        Self::start_binary(Binary::EdgeNode, config).await
    }

    /// Like [`EdgeNode::start`], with the `origin-shield` binary.
    pub async fn start_shield(config: NodeConfig) -> anyhow::Result<Self> {
        Self::start_binary(Binary::OriginShield, config).await
    }

    pub async fn start_binary(binary: Binary, config: NodeConfig) -> anyhow::Result<Self> {
        Self::start_with_env(binary, config, &[]).await
    }

    /// Like [`EdgeNode::start_binary`], with `env` set for the process (`NOTIFY_SOCKET`, ...).
    pub async fn start_with_env(binary: Binary, config: NodeConfig, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("outpost-e2e-").tempdir()?;
        let config_path = config.write(dir.path())?;
        let ready_path = dir.path().join("ready.json");
        let mut node = Self {
            binary,
            config,
            dir,
            config_path,
            ready_path,
            child: None,
            addrs: Addrs { http: None, https: None, admin: SocketAddr::from(([127, 0, 0, 1], 0)) },
            stdout: Lines::default(),
            stderr: Lines::default(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        node.spawn().await?;
        Ok(node)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.ready_path);
        let name = self.binary.name();
        let mut child = Command::new(self.binary.path()?)
            .arg("--config")
            .arg(&self.config_path)
            .arg("--ready-file")
            .arg(&self.ready_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        if let Some(out) = child.stdout.take() {
            collect(out, self.stdout.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, self.stderr.clone());
        }
        self.child = Some(child);

        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.ready_path)
                && let Ok(addrs) = parse_ready(&text)
            {
                self.addrs = addrs;
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
                anyhow::bail!(
                    "{name} exited with {status} before it was ready\nconfig:\n{}\nstderr:\n{}",
                    std::fs::read_to_string(&self.config_path).unwrap_or_default(),
                    self.stderr_text()
                );
            }
            if start.elapsed() > READY_LIMIT {
                anyhow::bail!("{name} wrote no ready file within {READY_LIMIT:?}\nstderr:\n{}", self.stderr_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    /// The cleartext listener as a peer's config names it: `http://127.0.0.1:P` (a shield's
    /// `url` in an edge's `shields`).
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr())
    }

    /// `node.name`.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// `GET /upstreams` on the admin listener, parsed.
    pub async fn upstreams(&self) -> anyhow::Result<serde_json::Value> {
        let resp = self.admin(Method::GET, "/upstreams", "").await?;
        anyhow::ensure!(resp.status == 200, "GET /upstreams answered {}: {}", resp.status, resp.text());
        Ok(serde_json::from_slice(&resp.body)?)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.addrs.http.unwrap_or(self.addrs.admin)
    }

    pub fn https_addr(&self) -> anyhow::Result<SocketAddr> {
        self.addrs.https.context("the node has no https listener")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.addrs.admin
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends `req` over the cleartext listener (or the HTTPS one when it carries TLS options).
    pub async fn send(&self, req: Req) -> anyhow::Result<Resp> {
        let addr = if req.tls.is_some() { self.https_addr()? } else { self.http_addr() };
        client::send(addr, &req).await
    }

    /// `GET http://host/path` over HTTP/1.1 on the cleartext listener.
    pub async fn get(&self, host: &str, path: &str) -> anyhow::Result<Resp> {
        self.send(Req::get(host, path)).await
    }

    /// `GET` once to fill the cache, then give the node [`SETTLE`] to finish the fill.
    ///
    /// A fill's flight stays open until its body is stored, a moment after the client has the
    /// last byte; a request arriving in that moment joins the flight (`collapsed`) and gets the
    /// same response instead of looking the object up. Scenarios whose primed object is stale
    /// on arrival (origin `Age` past `max-age`, `no-cache`) prime with this, so the next request
    /// deterministically meets the stored object.
    pub async fn prime(&self, host: &str, path: &str) -> anyhow::Result<Resp> {
        let resp = self.get(host, path).await?;
        tokio::time::sleep(SETTLE).await;
        Ok(resp)
    }

    /// A request to the admin listener, with the config's admin token.
    pub async fn admin(&self, method: Method, path: &str, body: &str) -> anyhow::Result<Resp> {
        let mut req = Req::new(method, "localhost", path).body(body.to_string());
        if let Some(token) = &self.config.admin_token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        client::send(self.admin_addr(), &req).await
    }

    /// `POST /purge` on the admin listener; fails unless the answer is 200.
    pub async fn purge(&self, request: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let resp = self.admin(Method::POST, "/purge", &request.to_string()).await?;
        anyhow::ensure!(resp.status == 200, "purge {request} answered {}: {}", resp.status, resp.text());
        Ok(serde_json::from_slice(&resp.body)?)
    }

    /// Every stdout line that is a JSON object (the access log), in order.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        lines(&self.stdout)
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .filter(|v| v.is_object())
            .collect()
    }

    /// Waits (bounded) for the access-log line of the request with this id.
    pub async fn access_log_for(&self, request_id: &str) -> anyhow::Result<serde_json::Value> {
        let start = Instant::now();
        loop {
            let found = self
                .access_log()
                .into_iter()
                .find(|v| v.get("request_id").and_then(|i| i.as_str()) == Some(request_id));
            if let Some(line) = found {
                return Ok(line);
            }
            if start.elapsed() > Duration::from_secs(5) {
                anyhow::bail!(
                    "no access-log line with request_id {request_id}; stdout:\n{}",
                    lines(&self.stdout).join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stdout_text(&self) -> String {
        lines(&self.stdout).join("\n")
    }

    pub fn stderr_text(&self) -> String {
        lines(&self.stderr).join("\n")
    }

    /// SIGTERM, then wait (bounded) for the process to exit; returns its exit status.
    pub async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.terminate()?;
        self.wait_exit().await
    }

    /// Sends SIGTERM and returns at once: the node starts draining.
    pub fn terminate(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// Sends SIGHUP and returns at once (the node reopens its access log and reloads its
    /// config file as it stands).
    pub fn hangup(&self) -> anyhow::Result<()> {
        self.signal("HUP")
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the node is not running")?;
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .with_context(|| format!("running kill -{name}"))?;
        anyhow::ensure!(status.success(), "kill -{name} {} failed: {status}", child.id());
        Ok(())
    }

    /// Rewrites the config file as `config` (on the listener addresses the node has now, so only
    /// its services change) and sends SIGHUP. Returns once the node has logged the outcome: `Ok`
    /// when the new services are in force, an error carrying the node's log line when it kept
    /// the old ones.
    pub async fn reload(&mut self, config: NodeConfig) -> anyhow::Result<()> {
        const DONE: &str = "services reloaded";
        const FAILED: &str = "reload failed";
        let stderr = self.stderr.clone();
        // Only the node's own outcome lines: a warning logged on the way may quote other words.
        let count = |what: &str| {
            lines(&stderr).iter().filter(|l| l.contains(what) && (l.contains("INFO") || l.contains("ERROR"))).count()
        };
        let (done, failed) = (count(DONE), count(FAILED));
        let (http, admin) = (self.http_addr().to_string(), self.admin_addr().to_string());
        self.config = config;
        self.config.http_listen = http;
        self.config.admin_listen = admin;
        self.config_path = self.config.write(self.dir.path())?;
        self.signal("HUP")?;
        let start = Instant::now();
        loop {
            if count(DONE) > done {
                return Ok(());
            }
            if count(FAILED) > failed {
                let line = lines(&stderr).into_iter().rfind(|l| l.contains(FAILED)).unwrap_or_default();
                anyhow::bail!("reload refused: {line}");
            }
            anyhow::ensure!(start.elapsed() < READY_LIMIT, "no reload outcome logged within {READY_LIMIT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded by [`STOP_LIMIT`]) for the process to exit; returns its exit status.
    pub async fn wait_exit(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            anyhow::bail!("the node is not running");
        };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > STOP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("{} did not exit within {STOP_LIMIT:?} of SIGTERM", self.binary.name());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: the process dies at once, in-flight requests and open connections with it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("the node is not running")?;
        child.kill().context("SIGKILL")?;
        child.wait().context("reaping the killed node")?;
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the node again on the same config and cache directory (stopping it first if it
    /// is running). Listener addresses change: read them again.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            let status = self.stop().await?;
            anyhow::ensure!(status.success(), "{} exited with {status} on SIGTERM", self.binary.name());
        }
        self.spawn().await
    }

    /// Like [`EdgeNode::restart`], on the same cleartext and admin ports it had: peers whose
    /// config names this node find it again. Works after [`EdgeNode::kill`] too.
    pub async fn restart_same_addrs(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            let status = self.stop().await?;
            anyhow::ensure!(status.success(), "{} exited with {status} on SIGTERM", self.binary.name());
        }
        self.config.http_listen = self.http_addr().to_string();
        self.config.admin_listen = self.admin_addr().to_string();
        self.config_path = self.config.write(self.dir.path())?;
        self.spawn().await
    }
}

impl Drop for EdgeNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // Shown by the test harness next to the failed assertion.
            let (binary, name) = (self.binary.name(), &self.config.name);
            eprintln!("---- {binary} {name} stderr ----\n{}", self.stderr_text());
            eprintln!("---- {binary} {name} stdout ----\n{}", self.stdout_text());
        }
    }
}

pub(crate) fn collect(stream: impl std::io::Read + Send + 'static, into: Lines) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            into.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
}

pub(crate) fn lines(l: &Lines) -> Vec<String> {
    l.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn parse_ready(text: &str) -> anyhow::Result<Addrs> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let addr = |key: &str| -> anyhow::Result<Option<SocketAddr>> {
        match v.get(key).and_then(|a| a.as_str()) {
            Some(a) => Ok(Some(a.parse()?)),
            None => Ok(None),
        }
    };
    Ok(Addrs {
        http: addr("http")?,
        https: addr("https")?,
        admin: addr("admin")?.context("the ready file names no admin address")?,
    })
}

/// The edge-node binary: `OUTPOST_EDGE_NODE_BIN`, or built once per test process with cargo.
pub fn binary() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    located(&BIN, "OUTPOST_EDGE_NODE_BIN", "edge-node")
}

/// The origin-shield binary: `OUTPOST_ORIGIN_SHIELD_BIN`, or built once per test process with
/// cargo.
pub fn shield_binary() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    located(&BIN, "OUTPOST_ORIGIN_SHIELD_BIN", "origin-shield")
}

pub(crate) fn located(cell: &OnceLock<Result<PathBuf, String>>, env: &str, package: &str) -> anyhow::Result<PathBuf> {
    located_bin(cell, env, package, package)
}

/// Like [`located`], for a binary whose name is not its package's.
pub(crate) fn located_bin(
    cell: &OnceLock<Result<PathBuf, String>>,
    env: &str,
    package: &str,
    bin: &str,
) -> anyhow::Result<PathBuf> {
    cell.get_or_init(|| {
        if let Some(path) = std::env::var_os(env) {
            return Ok(PathBuf::from(path));
        }
        build(package, bin).map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(|e| anyhow::anyhow!(e))
}

/// `cargo build -p P --bin B`, taking the executable's path from cargo's JSON messages (so
/// CARGO_TARGET_DIR and any build.target-dir are respected).
fn build(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("tests/ has no parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // `cargo test` gives this process the test crate's own variables (CARGO_MANIFEST_DIR,
    // CARGO_PKG_*...). Passed on, they differ from what a top-level `cargo build` sees, and build
    // scripts that watch them (ring's) run again: the next top-level build then recompiles ring
    // and everything above it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let own =
            ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_", "CARGO_TARGET_TMPDIR"];
        if own.iter().any(|prefix| name.starts_with(prefix)) {
            command.env_remove(name.as_ref());
        }
    }
    let output = command
        .current_dir(root)
        .args(["build", "-p", package, "--bin", bin, "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build -p {package} --bin {bin}"))?;
    anyhow::ensure!(output.status.success(), "cargo build -p {package} --bin {bin} failed: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo reported no {bin} executable"))
}
