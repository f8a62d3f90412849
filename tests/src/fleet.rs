//! A fleet that follows a control plane: a real `control-plane`, edge nodes in PoPs and an
//! optional shield, each started with `[control]` and no services of their own, in front of one
//! scripted origin.
//!
//! [`Fleet::start`] builds the topology from a [`FleetSpec`]; [`Fleet::create_shop`] puts the
//! service `shop` (`shop.test`) through the API, its edges going through the shield when there
//! is one; [`Fleet::purge`] purges with `wait=true`; [`wait_served`] waits (bounded) until a
//! node serves a host. The control plane heartbeats every 200 ms, and nodes back off at most
//! 300 ms, so reconnects in the scenarios take a moment, not seconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::Method;

use crate::control::{self, ControlConfig, ControlPlane, NODE_TOKEN};
use crate::node::{EdgeNode, NodeConfig};
use crate::origin::Origin;

/// The tenant that owns `shop` in every fleet (its token in [`ControlConfig::default`]).
pub const TENANT_TOKEN: &str = "acme-token";
/// Bound on waiting for a change to reach a node.
pub const PROPAGATION_LIMIT: Duration = Duration::from_secs(15);

/// Which nodes to start.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    /// `(name, pop, region)` of each edge.
    pub edges: Vec<(String, String, String)>,
    /// Start a shield (`shield-1`, PoP `fra`) that the edges go through.
    pub shield: bool,
}

impl FleetSpec {
    /// Two edges in `fra` (eu-central), one in `iad` (us-east), and a shield.
    pub fn two_pops() -> Self {
        let edge = |n: &str, p: &str, r: &str| (n.to_owned(), p.to_owned(), r.to_owned());
        Self {
            edges: vec![
                edge("edge-fra-1", "fra", "eu-central"),
                edge("edge-fra-2", "fra", "eu-central"),
                edge("edge-iad-1", "iad", "us-east"),
            ],
            shield: true,
        }
    }

    /// One edge in `fra`, no shield.
    pub fn one_edge() -> Self {
        Self { edges: vec![("edge-fra-1".into(), "fra".into(), "eu-central".into())], shield: false }
    }
}

pub struct Fleet {
    pub cp: ControlPlane,
    pub origin: Origin,
    pub shield: Option<EdgeNode>,
    pub edges: Vec<EdgeNode>,
}

impl Fleet {
    /// The fleet with [`control_config`]'s control plane.
    pub async fn start(spec: FleetSpec) -> anyhow::Result<Self> {
        Self::start_with(spec, control_config()).await
    }

    /// The fleet with the control plane `config` describes.
    pub async fn start_with(spec: FleetSpec, config: ControlConfig) -> anyhow::Result<Self> {
        let cp = ControlPlane::start(config).await?;
        let origin = Origin::start().await?;
        let shield = match spec.shield {
            true => Some(EdgeNode::start_shield(follower("shield-1", "fra", "eu-central", cp.addr())).await?),
            false => None,
        };
        let mut edges = Vec::new();
        for (name, pop, region) in &spec.edges {
            edges.push(EdgeNode::start(follower(name, pop, region, cp.addr())).await?);
        }
        Ok(Self { cp, origin, shield, edges })
    }

    /// Every node: the edges, then the shield.
    pub fn nodes(&self) -> impl Iterator<Item = &EdgeNode> {
        self.edges.iter().chain(self.shield.as_ref())
    }

    /// `PUT /v1/services/shop` for `shop.test` (tenant acme), pointing at the origin through
    /// the shield when there is one, with `extra` fields merged into the config; then waits
    /// until every edge serves `shop.test/`.
    pub async fn create_shop(&self, extra: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let mut config = serde_json::json!({"hosts": ["shop.test"], "origin": self.origin.url()});
        if let Some(shield) = &self.shield {
            config["shields"] = serde_json::json!([{"url": shield.url(), "pop": "fra"}]);
        }
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        let resp = self.cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), &config.to_string()).await?;
        anyhow::ensure!(resp.status.is_success(), "PUT /v1/services/shop: {} {}", resp.status, resp.text());
        for edge in &self.edges {
            wait_served(edge, "shop.test", "/").await?;
        }
        control::json(&resp)
    }

    /// `POST /v1/services/shop/purge?wait=true` with `body`; the progress object. Fails unless
    /// the answer is 200 (every live node acked).
    pub async fn purge(&self, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let path = "/v1/services/shop/purge?wait=true";
        let resp = self.cp.call(Method::POST, path, Some(TENANT_TOKEN), &body.to_string()).await?;
        let progress = control::json(&resp)?;
        anyhow::ensure!(resp.status == 200, "purge {body} answered {}: {progress}", resp.status);
        Ok(progress)
    }

    /// Restarts the control plane (or starts it again, after `cp.stop()`) on the address it
    /// had, so the nodes' `[control] url` finds it again.
    pub async fn restart_control_plane(&mut self) -> anyhow::Result<()> {
        let path = self.cp.dir().join("control-plane.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let pinned = text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{}\"", self.cp.addr()));
        std::fs::write(&path, pinned)?;
        self.cp.restart().await
    }
}

/// The fleet's control plane: heartbeats every 200 ms, and a node unseen for 2 s is offline
/// (purges stop waiting for it), so scenarios with a node down take a moment, not 10 minutes.
pub fn control_config() -> ControlConfig {
    ControlConfig::default().nodes("heartbeat_interval = \"200ms\"").nodes("offline_after = \"2s\"")
}

/// A node config with no services that follows the control plane at `cp`: PoP and region in
/// `[node]`, the node token, quick reconnects.
pub fn follower(name: &str, pop: &str, region: &str, cp: SocketAddr) -> NodeConfig {
    let mut config = NodeConfig::default()
        .name(name)
        .node_line(&format!("pop = \"{pop}\""))
        .node_line(&format!("region = \"{region}\""));
    config.extra = format!(
        "\n[control]\nurl = \"http://{cp}\"\ntoken = \"{NODE_TOKEN}\"\nbackoff_min = \"20ms\"\n\
         backoff_max = \"300ms\"\nheartbeat_timeout = \"2s\"\nrequest_timeout = \"2s\"\n"
    );
    config
}

/// Waits (bounded by [`PROPAGATION_LIMIT`]) until `node` answers `GET http://host/path` with a
/// status other than 404 (no service for the host yet); returns that answer's status.
pub async fn wait_served(node: &EdgeNode, host: &str, path: &str) -> anyhow::Result<u16> {
    let start = Instant::now();
    loop {
        let status = node.get(host, path).await?.status.as_u16();
        if status != 404 {
            return Ok(status);
        }
        anyhow::ensure!(
            start.elapsed() < PROPAGATION_LIMIT,
            "{} still has no service for {host} after {PROPAGATION_LIMIT:?}\nstderr:\n{}",
            node.name(),
            node.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A metric's value on `node`'s `/metrics` (the first series with that name), if present.
pub async fn metric(node: &EdgeNode, name: &str) -> anyhow::Result<Option<f64>> {
    let resp = node.admin(Method::GET, "/metrics", "").await?;
    let text = resp.text();
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok()))
}

/// Waits (bounded by [`PROPAGATION_LIMIT`]) until `check` holds for `node`'s metric `name`.
pub async fn wait_metric(node: &EdgeNode, name: &str, check: impl Fn(f64) -> bool) -> anyhow::Result<f64> {
    let start = Instant::now();
    loop {
        let value = metric(node, name).await?;
        if let Some(v) = value.filter(|v| check(*v)) {
            return Ok(v);
        }
        anyhow::ensure!(
            start.elapsed() < PROPAGATION_LIMIT,
            "{}: {name} is {value:?} after {PROPAGATION_LIMIT:?}\nstderr:\n{}",
            node.name(),
            node.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
