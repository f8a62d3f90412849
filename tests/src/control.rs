//! The control plane under test: a real `control-plane` process with its config and data file
//! in its own tempdir.
//!
//! [`ControlConfig`] names the tenants and their tokens (the file gets only their SHA-256) and
//! any `[limits]`; tenants may point services at loopback origins (the test origins), through
//! `limits.tenant_upstream_allow`; [`ControlPlane`] spawns the binary on port 0, waits (bounded) for the ready
//! file, and stops it with SIGTERM. `restart` starts it again on the same data file. The binary
//! is `OUTPOST_CONTROL_PLANE_BIN`, or built once per test process with cargo. Every config has
//! a node token ([`NODE_TOKEN`]); [`NodeStream`] reads a node's NDJSON stream line by line,
//! for tests that play a node by hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Context as _;
use http::Method;

use crate::client::{self, Req, Resp};
use crate::node::{ADMIN_TOKEN, Lines, READY_LIMIT, STOP_LIMIT, collect, lines, located};

/// The operator's token in every [`ControlConfig`].
pub const OPERATOR: &str = "operator-token";

/// The nodes' token (`node = true`) in every [`ControlConfig`].
pub const NODE_TOKEN: &str = "node-token";

/// The control plane's config.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// `(tenant, token)`.
    pub tenants: Vec<(String, String)>,
    /// Raw lines of the `[limits]` table.
    pub limits: Vec<String>,
    /// `limits.tenant_upstream_allow`: loopback by default, since the test origins, shields and
    /// backends all listen there.
    pub tenant_upstream_allow: Vec<String>,
    /// Raw lines of the `[nodes]` table.
    pub nodes: Vec<String>,
    /// `(node id, token)`: node tokens bound to one node (`node_id`), beside [`NODE_TOKEN`].
    pub bound_node_tokens: Vec<(String, String)>,
    /// Raw lines of the `[health]` table (PoP probes).
    pub health: Vec<String>,
    /// `health.node_admin_token_file`'s content, written beside the config (mode 600): the
    /// nodes' admin token ([`ADMIN_TOKEN`] by default, as every [`crate::NodeConfig`] has);
    /// `None` sets no file, so the probes carry no credential.
    pub node_admin_token: Option<String>,
    /// Raw TOML appended to the file (whole tables: `[dns]`).
    pub extra: String,
    /// `store = { postgres = URL, ... }` instead of the data file: the connection string, then
    /// raw `key = value` items of the inline table (`catch_up_interval = "1m"`).
    pub postgres: Option<(String, Vec<String>)>,
    /// `domains.owned` for every tenant of `tenants`: by default `example` and `test`, so the
    /// scenarios that create services as tenants (`shop.example`, `shop.test`) are served
    /// without a DNS proof, by the operator's word as a real deployment may declare it.
    /// Scenarios about proofs set it empty ([`ControlConfig::owned`]).
    pub owned: Vec<String>,
    /// Raw lines of the `[domains]` table (besides `owned`).
    pub domains: Vec<String>,
}

impl Default for ControlConfig {
    /// Tenants `acme` (token `acme-token`) and `globex` (token `globex-token`), allowed
    /// loopback upstreams.
    fn default() -> Self {
        Self {
            tenants: vec![("acme".into(), "acme-token".into()), ("globex".into(), "globex-token".into())],
            limits: Vec::new(),
            tenant_upstream_allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            nodes: Vec::new(),
            bound_node_tokens: Vec::new(),
            health: Vec::new(),
            node_admin_token: Some(ADMIN_TOKEN.to_owned()),
            extra: String::new(),
            postgres: None,
            owned: vec!["example".into(), "test".into()],
            domains: Vec::new(),
        }
    }
}

impl ControlConfig {
    /// Adds a `[limits]` line, e.g. `purge_burst = 2`.
    pub fn limit(mut self, line: &str) -> Self {
        self.limits.push(line.to_owned());
        self
    }

    /// Sets `limits.tenant_upstream_allow` (empty: the control plane's default, no private
    /// upstream for tenants).
    pub fn tenant_upstream_allow(mut self, networks: &[&str]) -> Self {
        self.tenant_upstream_allow = networks.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Adds a `[nodes]` line, e.g. `heartbeat_interval = "200ms"`.
    pub fn nodes(mut self, line: &str) -> Self {
        self.nodes.push(line.to_owned());
        self
    }

    /// Sets the domains every tenant owns by the operator's word (`domains.owned`); empty: each
    /// host needs its proof.
    pub fn owned(mut self, domains: &[&str]) -> Self {
        self.owned = domains.iter().map(|d| (*d).to_owned()).collect();
        self
    }

    /// Adds a `[domains]` line, e.g. `resolver = "127.0.0.1:8053"`.
    pub fn domains(mut self, line: &str) -> Self {
        self.domains.push(line.to_owned());
        self
    }

    /// Adds a `[health]` line, e.g. `interval = "200ms"`.
    pub fn health(mut self, line: &str) -> Self {
        self.health.push(line.to_owned());
        self
    }

    /// Adds a node token that may act as node `id` only.
    pub fn bound_node_token(mut self, id: &str, token: &str) -> Self {
        self.bound_node_tokens.push((id.to_owned(), token.to_owned()));
        self
    }

    /// Keeps the state in PostgreSQL at `url` (several control planes may share it), with
    /// `items` added to the `store` table, e.g. `catch_up_interval = "1m"`.
    pub fn postgres(mut self, url: &str, items: &[&str]) -> Self {
        self.postgres = Some((url.to_owned(), items.iter().map(|i| (*i).to_owned()).collect()));
        self
    }

    /// Appends whole tables of raw TOML, e.g. `"[dns]\nzone = \"cdn.example.\"\n"`.
    pub fn tables(mut self, toml: &str) -> Self {
        self.extra.push('\n');
        self.extra.push_str(toml);
        self
    }

    fn render(&self, data: &Path) -> String {
        let mut text = "listen = \"127.0.0.1:0\"\n".to_owned();
        match &self.postgres {
            Some((url, items)) => {
                let items: String = items.iter().map(|i| format!(", {i}")).collect();
                text += &format!("store = {{ postgres = {}{items} }}\n", quote(url));
                text += &format!("secrets = {{ key_file = {} }}\n", quote(SECRETS_KEY_FILE));
            }
            None => text += &format!("data = {}\n", quote(&data.display().to_string())),
        }
        text += &format!("\n[[tokens]]\nname = \"ops\"\noperator = true\nsha256 = \"{}\"\n", sha256_hex(OPERATOR));
        for (tenant, token) in &self.tenants {
            text += &format!("\n[[tokens]]\ntenant = {}\nsha256 = \"{}\"\n", quote(tenant), sha256_hex(token));
        }
        text += &format!("\n[[tokens]]\nname = \"nodes\"\nnode = true\nsha256 = \"{}\"\n", sha256_hex(NODE_TOKEN));
        for (id, token) in &self.bound_node_tokens {
            text +=
                &format!("\n[[tokens]]\nnode = true\nnode_id = {}\nsha256 = \"{}\"\n", quote(id), sha256_hex(token));
        }
        let mut limits = self.limits.clone();
        if !self.tenant_upstream_allow.is_empty() {
            let networks: Vec<String> = self.tenant_upstream_allow.iter().map(|n| quote(n)).collect();
            limits.push(format!("tenant_upstream_allow = [{}]", networks.join(", ")));
        }
        if !limits.is_empty() {
            text += &format!("\n[limits]\n{}\n", limits.join("\n"));
        }
        if !self.nodes.is_empty() {
            text += &format!("\n[nodes]\n{}\n", self.nodes.join("\n"));
        }
        let mut health = self.health.clone();
        if self.node_admin_token.is_some() {
            health.push(format!("node_admin_token_file = {}", quote(NODE_ADMIN_TOKEN_FILE)));
        }
        if !health.is_empty() {
            text += &format!("\n[health]\n{}\n", health.join("\n"));
        }
        let mut domains = self.domains.clone();
        if !self.owned.is_empty() {
            let list: Vec<String> = self.owned.iter().map(|d| quote(d)).collect();
            let owners: Vec<String> =
                self.tenants.iter().map(|(tenant, _)| format!("{} = [{}]", quote(tenant), list.join(", "))).collect();
            domains.push(format!("owned = {{ {} }}", owners.join(", ")));
        }
        if !domains.is_empty() {
            text += &format!("\n[domains]\n{}\n", domains.join("\n"));
        }
        text += &self.extra;
        text
    }

    /// Writes the files the config names beside it in `dir`.
    fn write_files(&self, dir: &Path) -> anyhow::Result<()> {
        if self.postgres.is_some() {
            // Replicas on one database seal with one key: the same in every test process.
            let path = dir.join(SECRETS_KEY_FILE);
            std::fs::write(&path, format!("{SHARED_SECRETS_KEY}\n"))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        let Some(token) = &self.node_admin_token else { return Ok(()) };
        let path = dir.join(NODE_ADMIN_TOKEN_FILE);
        std::fs::write(&path, format!("{token}\n"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }
}

/// `secrets.key_file` with PostgreSQL, relative to the config's directory (the embedded store
/// generates its own beside the data file).
pub const SECRETS_KEY_FILE: &str = "secrets.key";

/// The key every PostgreSQL-backed test control plane seals with (replicas must share one).
const SHARED_SECRETS_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

/// `health.node_admin_token_file`, relative to the config's directory.
const NODE_ADMIN_TOKEN_FILE: &str = "node-admin-token";

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// SHA-256 of `token` as lower-case hex: what the config file holds.
pub fn sha256_hex(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A running `control-plane`. Dropping it kills the process.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    ready_path: PathBuf,
    child: Option<Child>,
    addr: SocketAddr,
    stderr: Lines,
    /// Variables set for the process beyond the test's own environment.
    env: Vec<(String, String)>,
}

impl ControlPlane {
    /// Writes `config` into a fresh tempdir (data file beside it) and starts the binary.
    pub async fn start(config: ControlConfig) -> anyhow::Result<Self> {
        Self::start_with_env(config, &[]).await
    }

    /// Like [`ControlPlane::start`], with `env` set for the process (`NOTIFY_SOCKET`, ...).
    pub async fn start_with_env(config: ControlConfig, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("outpost-cp-").tempdir()?;
        let config_path = dir.path().join("control-plane.toml");
        config.write_files(dir.path())?;
        std::fs::write(&config_path, config.render(&dir.path().join("control-plane.redb")))?;
        let ready_path = dir.path().join("ready.json");
        let mut plane = Self {
            dir,
            config_path,
            ready_path,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr: Lines::default(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        plane.spawn().await?;
        Ok(plane)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.ready_path);
        let mut child = Command::new(binary()?)
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--ready-file")
            .arg(&self.ready_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning control-plane")?;
        if let Some(err) = child.stderr.take() {
            collect(err, self.stderr.clone());
        }
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.ready_path)
                && let Ok(ready) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(Ok(addr)) = ready["api"].as_str().map(str::parse)
            {
                self.addr = addr;
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                anyhow::bail!(
                    "control-plane exited with {status} before it was ready\nstderr:\n{}",
                    self.stderr_text()
                );
            }
            if start.elapsed() > READY_LIMIT {
                anyhow::bail!(
                    "control-plane wrote no ready file within {READY_LIMIT:?}\nstderr:\n{}",
                    self.stderr_text()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The DNS server's address (UDP and TCP), as the running process reported it in its ready
    /// file (`"dns"`, present with a `[dns]` table).
    pub fn dns_addr(&self) -> anyhow::Result<SocketAddr> {
        let text = std::fs::read_to_string(&self.ready_path)?;
        let ready: serde_json::Value = serde_json::from_str(&text)?;
        let addr = ready["dns"].as_str().with_context(|| format!("no \"dns\" in the ready file: {text}"))?;
        Ok(addr.parse()?)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stderr_text(&self) -> String {
        lines(&self.stderr).join("\n")
    }

    /// Sends `method path` with `token` as a bearer token (none when `None`) and `body`.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: &str) -> anyhow::Result<Resp> {
        let mut req = Req::new(method, "control-plane", path).body(body.to_owned());
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        client::send(self.addr, &req).await
    }

    /// Sends a request built by the caller (other headers, HTTP/2).
    pub async fn send(&self, req: Req) -> anyhow::Result<Resp> {
        client::send(self.addr, &req).await
    }

    /// SIGTERM, then wait (bounded) for the process to exit.
    pub async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("the control plane is not running")?;
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed: {status}", child.id());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > STOP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("control-plane did not exit within {STOP_LIMIT:?} of SIGTERM");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: the process dies at once, mid-transaction or mid-stream, with no shutdown.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("the control plane is not running")?;
        child.kill().context("SIGKILL")?;
        child.wait().context("reaping the killed control plane")?;
        Ok(())
    }

    /// Stops the process and starts it again on the same config and data file. The port
    /// changes: [`ControlPlane::addr`] has the new one.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            let status = self.stop().await?;
            anyhow::ensure!(status.success(), "control-plane exited with {status} on SIGTERM");
        }
        self.spawn().await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- control-plane stderr ----\n{}", self.stderr_text());
        }
    }
}

/// The control-plane binary: `OUTPOST_CONTROL_PLANE_BIN`, or built once per test process.
pub fn binary() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    located(&BIN, "OUTPOST_CONTROL_PLANE_BIN", "control-plane")
}

/// The `outpostctl` binary: `OUTPOST_CTL_BIN`, or built once per test process.
pub fn outpostctl_binary() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    crate::node::located_bin(&BIN, "OUTPOST_CTL_BIN", "control-plane", "outpostctl")
}

/// What one `outpostctl` run printed, and its exit code.
#[derive(Debug)]
pub struct CtlRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ControlPlane {
    /// Runs `outpostctl ARGS` against this control plane, the URL and `token` passed through
    /// the environment as a user would. Bounded: killed after [`READY_LIMIT`].
    pub async fn ctl(&self, token: Option<&str>, args: &[&str]) -> anyhow::Result<CtlRun> {
        let mut cmd = tokio::process::Command::new(outpostctl_binary()?);
        cmd.args(args)
            .env("OUTPOST_URL", format!("http://{}", self.addr()))
            .env_remove("OUTPOST_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = token {
            cmd.env("OUTPOST_TOKEN", token);
        }
        let output = tokio::time::timeout(READY_LIMIT, cmd.output()).await.context("outpostctl did not finish")??;
        Ok(CtlRun {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// The JSON body of `resp`, or an error that shows it.
pub fn json(resp: &Resp) -> anyhow::Result<serde_json::Value> {
    serde_json::from_slice(&resp.body)
        .with_context(|| format!("{} with a body that is not JSON: {:?}", resp.status, resp.text()))
}

/// Checks an error answer: `status`, and `{"error": {"code": code, "message": ...}}`; returns
/// the `error` object.
pub fn expect_error(resp: &Resp, status: u16, code: &str) -> anyhow::Result<serde_json::Value> {
    let body = json(resp)?;
    anyhow::ensure!(resp.status.as_u16() == status, "expected {status} {code}, got {}: {body}", resp.status);
    anyhow::ensure!(body["error"]["code"] == code, "expected code {code}, got {body}");
    anyhow::ensure!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {body}");
    anyhow::ensure!(
        resp.header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "error content-type is {:?}",
        resp.header("content-type")
    );
    Ok(body["error"].clone())
}

/// How long [`NodeStream::next`] waits for a line before failing: bounds a broken test, not
/// a measurement.
pub const LINE_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A node's stream (`GET /v1/nodes/{id}/stream?after=N`) read over HTTP/1.1, one JSON value
/// per line. Dropping it closes the connection.
pub struct NodeStream {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
    _connection: tokio::task::JoinHandle<()>,
}

impl NodeStream {
    /// Opens the stream of `node` after `after` with `token`.
    pub async fn open(addr: SocketAddr, node: &str, after: u64, token: &str) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = http::Request::get(format!("/v1/nodes/{node}/stream?after={after}"))
            .header("host", "control-plane")
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        Ok(Self { status: parts.status, headers: parts.headers, body, buffer: Vec::new(), _connection: connection })
    }

    /// The next line as JSON; an error when the stream ends or nothing comes within
    /// [`LINE_LIMIT`].
    pub async fn next(&mut self) -> anyhow::Result<serde_json::Value> {
        use http_body_util::BodyExt as _;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return serde_json::from_slice(&line)
                    .with_context(|| format!("a stream line that is not JSON: {:?}", String::from_utf8_lossy(&line)));
            }
            let frame = tokio::time::timeout(LINE_LIMIT, self.body.frame())
                .await
                .with_context(|| format!("no stream line within {LINE_LIMIT:?}"))?;
            match frame {
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                None => anyhow::bail!("the stream ended"),
            }
        }
    }

    /// The next line that is not a heartbeat.
    pub async fn next_change(&mut self) -> anyhow::Result<serde_json::Value> {
        loop {
            let line = self.next().await?;
            if line.get("heartbeat").is_none() {
                return Ok(line);
            }
        }
    }

    /// Whether the server ended the stream (within [`LINE_LIMIT`]), skipping what it sent
    /// before.
    pub async fn ended(&mut self) -> anyhow::Result<bool> {
        use http_body_util::BodyExt as _;
        loop {
            match tokio::time::timeout(LINE_LIMIT, self.body.frame()).await {
                Err(_) => return Ok(false),
                Ok(None) | Ok(Some(Err(_))) => return Ok(true),
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}
