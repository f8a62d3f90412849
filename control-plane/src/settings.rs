//! The control plane's config file (TOML): where it listens, where it keeps its state, who may
//! call it, and the bounds it enforces. Errors are [`ConfigErrors`], each naming the file and
//! field path, like the nodes' config.
//!
//! ```toml
//! listen = "127.0.0.1:7400"
//! data = "control-plane.redb"       # relative to this file's directory
//! # or, for replicas on one database (see `store::postgres::settings`):
//! # store = { postgres = "postgres://outpost@db/outpost", password_file = "pg-password" }
//!
//! [[tokens]]                        # an operator: every tenant's services, the event log
//! name = "ops"
//! operator = true
//! sha256 = "<64 hex digits>"        # printf '%s' "$TOKEN" | sha256sum
//!
//! [[tokens]]                        # a tenant: its own services only
//! tenant = "acme"
//! sha256 = "<64 hex digits>"
//!
//! [[tokens]]                        # edge nodes and shields: register, stream, ack
//! node = true
//! sha256 = "<64 hex digits>"
//!
//! [nodes]
//! heartbeat_interval = "5s"
//!
//! [health]                          # PoP health checks (see `pops::settings`)
//! interval = "1s"
//! node_admin_token_file = "node-admin-token"   # the edges' listen.admin_token_file, chmod 600
//!
//! [dns]                             # authoritative DNS (see `dns::settings`)
//! listen = "0.0.0.0:53"
//! zone = "cdn.example."
//!
//! [domains]                       # proofs of domain control (see `domains::settings`)
//! resolver = "10.0.0.2:53"          # default: the first nameserver of /etc/resolv.conf
//! recheck_interval = "1h"
//! owned = { acme = ["acme.example"] }   # verified by the operator's word
//! [secrets]                       # seals certificates' private keys (see `secrets`)
//! key_file = "secrets.key"          # 64 hex digits; default: generated beside `data`
//! old_key_files = []                # earlier keys: still open, re-sealed at start
//!
//! [limits]
//! max_body_size = "1MiB"
//! max_events = 100000
//! max_function_size = "32MiB"
//! max_function_versions = 20
//! max_certificates_per_service = 20
//! tenant_upstream_allow = []      # CIDRs tenants' upstreams may be in despite being private
//! max_connections = 4096          # open API connections; the longest idle closed first when full
//! header_read_timeout = "10s"     # accept to a request's complete headers
//! keepalive_timeout = "60s"       # idle between requests (a node's stream is never idle)
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_config::{ByteSize, ConfigError, ConfigErrors, NodeId, TenantId};
use serde::Deserialize;

use crate::dns::cidr::Cidr;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address of the API (HTTP/1.1 and h2c). Default: `"127.0.0.1:7400"`; port 0 picks one
    /// (see `--ready-file`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The embedded store's file, created if missing; relative paths are resolved against the
    /// config file's directory. Required unless `store.postgres` is set.
    #[serde(default)]
    pub data: PathBuf,
    /// `store`: PostgreSQL instead of the embedded file (`store = { postgres = "postgres://..." }`),
    /// for several replicas on one database. Default: none (the embedded store in `data`).
    #[serde(default)]
    pub store: crate::store::postgres::settings::StoreSettings,
    /// `store.postgres` checked, with its password read: set by [`parse`].
    #[serde(skip)]
    pub postgres: Option<crate::store::postgres::PostgresSettings>,
    /// `[[tokens]]`: who may call the API. At least one.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// `[nodes]`: the node stream and liveness.
    #[serde(default)]
    pub nodes: NodeSettings,
    /// `[health]`: how the PoPs' edge nodes are probed.
    #[serde(default)]
    pub health: crate::pops::HealthSettings,
    /// `[dns]`: the authoritative DNS server for the CDN's zone. Default: none (no DNS is
    /// served; PoP health and drains still work).
    #[serde(default)]
    pub dns: Option<crate::dns::DnsSettings>,
    /// `[domains]`: proofs of domain control (see `domains::settings`).
    #[serde(default)]
    pub domains: crate::domains::DomainSettings,
    /// `[secrets]`: the key that seals private keys at rest (see `secrets`).
    #[serde(default)]
    pub secrets: crate::secrets::SecretsSettings,
    /// `[limits]`.
    #[serde(default)]
    pub limits: Limits,
    /// `[acme]`: the ACME directory `tls = "auto"` services' certificates come from. Default:
    /// Let's Encrypt, with the defaults of [`crate::acme::AcmeSettings`].
    #[serde(default)]
    pub acme: crate::acme::AcmeSettings,
}

/// `[nodes]`: how the control plane talks to the nodes that follow it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSettings {
    /// How often a node stream carries `{"heartbeat": {"head": H}}` when nothing else is sent.
    /// A node that hears nothing for 3 intervals reconnects; a stream that cannot take a
    /// message for 3 intervals (the node stopped reading) is closed. Each tick also re-reads
    /// the log, so no event waits longer than this to reach a stream. Three intervals are also
    /// the API connections' `TCP_USER_TIMEOUT`: a node whose host vanished frees its id then.
    /// Default: `"5s"`; 100ms to 5m.
    #[serde(with = "outpost_config::units::duration")]
    pub heartbeat_interval: Duration,
    /// How long a node counts as live after its stream drops (it is reconnecting): purges wait
    /// for it that long. Default: twice `heartbeat_interval`; at most 1h.
    #[serde(with = "outpost_config::units::option_duration")]
    pub grace: Option<Duration>,
    /// Messages queued for one stream before the send waits on the node (TCP back-pressure).
    /// Bounds the memory one slow node holds. Default: 256; 1 to 65536.
    pub stream_buffer: usize,
    /// Acknowledgements remembered per node, to report how long each purge took there
    /// (`ms` in purge progress); an older purge reports `acked` without `ms`. Default: 1024;
    /// 1 to 1000000.
    pub ack_history: usize,
    /// How long after it was last seen (stream open, registration or ack; kept in the store,
    /// so it holds across a restart of the control plane) a node still counts as one a purge
    /// must reach: until then it is `pending` in purge progress, and a purge is not
    /// `complete` without its ack. A node gone longer is listed under `offline` (it resyncs
    /// before it serves again). Default: `"10m"`; at least `grace`, at most 30 days.
    #[serde(with = "outpost_config::units::duration")]
    pub offline_after: Duration,
    /// After the control plane starts, how long a registered node whose stream has not come
    /// back yet keeps its place in PoP health (its probe decides alone), so a restart does not
    /// steer DNS away from PoPs whose edges are reconnecting. Default: three
    /// `heartbeat_interval`s; at most 10m.
    #[serde(with = "outpost_config::units::option_duration")]
    pub startup_grace: Option<Duration>,
    /// How long this replica's claims on node streams stand in the store without renewal; it
    /// renews them every third of it. A replica that dies (or loses the database) frees its
    /// nodes for the other replicas at most this long after its last renewal; until then a
    /// node moving to another replica gets 409 `node_id_in_use` and retries. Replicas' clocks
    /// must agree to well within it. Default: `"3s"`; 1s to 5m.
    #[serde(with = "outpost_config::units::duration")]
    pub replica_lease: Duration,
    /// How often this replica reads every node's presence (holds, acks, seen and drain times)
    /// and the PoP drains from the store, besides when another replica announces a change
    /// (PostgreSQL `NOTIFY`): the longest a lost announcement delays `GET /v1/nodes`, purge
    /// progress and DNS drains on this replica. One read of the nodes table per interval.
    /// Default: `"1s"`; 100ms to 1m.
    #[serde(with = "outpost_config::units::duration")]
    pub sync_interval: Duration,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            grace: None,
            stream_buffer: 256,
            ack_history: 1024,
            offline_after: Duration::from_secs(600),
            startup_grace: None,
            replica_lease: Duration::from_secs(3),
            sync_interval: Duration::from_secs(1),
        }
    }
}

impl NodeSettings {
    /// `grace`, or its default: two heartbeats.
    pub fn grace(&self) -> Duration {
        self.grace.unwrap_or(self.heartbeat_interval.saturating_mul(2))
    }

    /// `startup_grace`, or its default: three heartbeats.
    pub fn startup_grace(&self) -> Duration {
        self.startup_grace.unwrap_or(self.heartbeat_interval.saturating_mul(3))
    }
}

/// One `[[tokens]]` entry. Exactly one of `operator = true`, `node = true` and `tenant` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// A label for logs (never the token). Default: none.
    #[serde(default)]
    pub name: Option<String>,
    /// The token acts for the operator: every tenant's services, the event log.
    #[serde(default)]
    pub operator: bool,
    /// The token is the nodes': it registers a node, opens its stream and acks; nothing else.
    #[serde(default)]
    pub node: bool,
    /// With `node = true`: the one node id the token may act as (a token per node, so a node
    /// that leaks its token cannot register, follow or acknowledge as another). Default: none,
    /// any node id (one token for the fleet).
    #[serde(default)]
    pub node_id: Option<String>,
    /// The token acts for this tenant (1 to 64 of `a-z 0-9 _ -`): its own services only.
    #[serde(default)]
    pub tenant: Option<String>,
    /// SHA-256 of the token, 64 hex digits. The file holds only hashes, so reading it does not
    /// give anyone a token.
    pub sha256: String,
}

/// `[limits]`: every bound the API enforces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body read; a larger one gets **413** `body_too_large` before it is
    /// parsed. Bounds the memory one request can take. Default: `"1MiB"`; 1KiB to 64MiB.
    pub max_body_size: ByteSize,
    /// Services one tenant may own; one more gets **403** `service_limit`. Default: 100;
    /// 1 to 100000.
    pub max_services_per_tenant: usize,
    /// Purges per second one tenant may send, on average (a token bucket refilled at this
    /// rate). Over it: **429** `rate_limited` with `Retry-After`. Each purge is an event every
    /// node applies, so this bounds the work one tenant makes for the fleet. Operator tokens
    /// are not limited. Default: 10; more than 0, at most 100000.
    pub purge_rate: f64,
    /// Purges one tenant may send at once before `purge_rate` applies (the bucket's size).
    /// Default: 100; 1 to 1000000.
    pub purge_burst: u32,
    /// URLs, prefixes, tags and hosts in one purge request; more gets **400**. Default: 256;
    /// 1 to 10000.
    pub max_purge_targets: usize,
    /// Largest page a list may ask for (`limit`); more gets **400**. Default: 1000;
    /// 1 to 100000.
    pub max_page: usize,
    /// Events the log keeps; older ones are dropped as new ones are appended. A node that
    /// resumes from before the oldest kept event gets a snapshot and resyncs (soft-purges
    /// what it serves) instead. Bounds the store's size. Default: 100000; 1 to 100000000.
    pub max_events: usize,
    /// Largest `.wasm` accepted by `POST /v1/services/{id}/functions` (this route's own body
    /// limit, instead of `max_body_size`); a larger one gets **413** `body_too_large`. Bounds
    /// the memory one upload takes and what every node fetches and compiles. Default:
    /// `"32MiB"`; 1KiB to 1GiB.
    pub max_function_size: ByteSize,
    /// Function versions kept per service; an upload beyond it deletes the oldest version that
    /// is not active. Bounds the store's size. Default: 20; 1 to 10000.
    pub max_function_versions: usize,
    /// Certificates one service may hold (`PUT /v1/services/{id}/certificates/{name}` with a
    /// new name beyond it gets **409** `certificate_limit`; replacing one is always allowed).
    /// Bounds the store, every snapshot and what every node keeps in memory. Default: 20;
    /// 1 to 1000.
    pub max_certificates_per_service: usize,
    /// Networks (`"10.20.0.0/16"`, `"::1/128"`, or one address) a tenant's upstreams (`origin`,
    /// `origins`, `shields`, `function.backends`) may be in although they are loopback,
    /// private, link-local, CGNAT, unspecified, multicast or broadcast addresses. Outside it,
    /// such an address (or `localhost`) from a tenant gets **400** `invalid_config` naming the
    /// field: it would aim the nodes at their own network, where the admin listener takes
    /// purges without a token. `localhost` needs both 127.0.0.1 and ::1 in the list. The
    /// operator's configs are not checked. Default: empty (no such address for tenants).
    pub tenant_upstream_allow: Vec<String>,
    /// Open API connections (tenants, operators, nodes' streams). A new one beyond it closes
    /// the connection idle the longest (no request in progress); with none idle, the new one
    /// is closed at once. Bounds the file descriptors and memory connections take.
    /// Default: 4096; 1 to 1000000.
    pub max_connections: usize,
    /// Time from accept to a connection's first complete request header section (and to
    /// each later one's); the connection is closed without a response. Default: `"10s"`;
    /// more than 0.
    #[serde(with = "outpost_config::units::duration")]
    pub header_read_timeout: Duration,
    /// Idle time allowed between requests on a connection before it is closed. A node's
    /// event stream is a request in progress, never idle. Default: `"60s"`; more than 0.
    #[serde(with = "outpost_config::units::duration")]
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_size: ByteSize::mib(1),
            max_services_per_tenant: 100,
            purge_rate: 10.0,
            purge_burst: 100,
            max_purge_targets: 256,
            max_page: 1000,
            max_events: 100_000,
            max_function_size: ByteSize::mib(32),
            max_function_versions: 20,
            max_certificates_per_service: 20,
            tenant_upstream_allow: Vec::new(),
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// The time one purge token takes to come back.
    pub fn purge_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.purge_rate)
    }

    /// `tenant_upstream_allow` parsed; an entry that does not parse (validation refused it)
    /// is left out.
    pub fn tenant_upstream_networks(&self) -> Vec<Cidr> {
        self.tenant_upstream_allow.iter().filter_map(|text| text.parse().ok()).collect()
    }
}

/// Who a token acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Operator,
    /// A node token: for the one node id given, or any.
    Node(Option<NodeId>),
    Tenant(TenantId),
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7400))
}

/// Largest config file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads, parses and validates `path`; `data` comes back resolved against its directory.
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    let error =
        |message: String| ConfigErrors(vec![ConfigError { file: path.to_path_buf(), path: String::new(), message }]);
    let size = std::fs::metadata(path).map_err(|e| error(format!("cannot read the config file: {e}")))?.len();
    if size > MAX_FILE_BYTES {
        return Err(error("the config file is larger than 1MiB".to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read the config file: {e}")))?;
    parse(&text, path)
}

/// Parses and validates config text; `file` names it in errors and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Result<Settings, ConfigErrors> {
    let error = |path: &str, message: String| ConfigError { file: file.to_path_buf(), path: path.to_owned(), message };
    // Every syntax and type error, each with its field path, as the edge's check-config gives.
    let mut settings: Settings = outpost_config::from_toml(text, file).map_err(ConfigErrors)?;
    let base = file.parent().unwrap_or(Path::new(""));
    if settings.data.is_relative() && !settings.data.as_os_str().is_empty() {
        settings.data = base.join(&settings.data);
    }
    settings.acme.resolve(base);
    settings.secrets.resolve(base);
    let mut errors = Vec::new();
    check(&settings, &mut |path, message| errors.push(error(path, message)));
    match settings.store.compile(base) {
        Ok(postgres) => settings.postgres = postgres,
        Err(problems) => errors.extend(problems.into_iter().map(|(path, message)| error(&path, message))),
    }
    if let Some(path) = &settings.health.node_admin_token_file {
        let path = base.join(path);
        match crate::pops::settings::read_token(&path) {
            Ok(token) => settings.health.node_admin_token = Some(token),
            Err(problem) => errors.push(error("health.node_admin_token_file", problem)),
        }
        settings.health.node_admin_token_file = Some(path);
    }
    if errors.is_empty() { Ok(settings) } else { Err(ConfigErrors(errors)) }
}

fn check(settings: &Settings, report: &mut dyn FnMut(&str, String)) {
    match (settings.data.as_os_str().is_empty(), &settings.store.postgres) {
        (true, None) => report(
            "data",
            "missing; give the store's file, e.g. \"/var/lib/outpost/control-plane.redb\", or set store.postgres"
                .to_owned(),
        ),
        (false, Some(_)) => {
            report("data", "set with store.postgres; keep one store: remove data, or store.postgres".to_owned())
        }
        _ => {}
    }
    if settings.store.postgres.is_some() && settings.secrets.key_file.is_none() {
        report(
            "secrets.key_file",
            "required with store.postgres: every replica must seal and open private keys with the same key \
             (a file of 64 hex digits, e.g. `openssl rand -hex 32 > secrets.key`, mode 0600)"
                .to_owned(),
        );
    }
    if settings.tokens.is_empty() {
        report(
            "tokens",
            "no token, so nobody could call the API; add a [[tokens]] entry with operator = true".to_owned(),
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, token) in settings.tokens.iter().enumerate() {
        let at = format!("tokens[{i}]");
        match (token.operator, token.node, &token.tenant) {
            (false, false, None) => {
                report(&at, "set one of operator = true, node = true or tenant = \"NAME\"".to_owned())
            }
            (false, false, Some(tenant)) => {
                if let Err(why) = TenantId::parse(tenant) {
                    report(&format!("{at}.tenant"), why);
                }
            }
            (true, false, None) | (false, true, None) => {}
            _ => report(&at, "set one of operator = true, node = true or tenant, not several".to_owned()),
        }
        match (&token.node_id, token.node) {
            (Some(_), false) => report(&format!("{at}.node_id"), "only for a node token (node = true)".to_owned()),
            (Some(id), true) => {
                if let Err(why) = NodeId::parse(id) {
                    report(&format!("{at}.node_id"), why);
                }
            }
            (None, _) => {}
        }
        if parse_hex_digest(&token.sha256).is_none() {
            report(
                &format!("{at}.sha256"),
                "not 64 hex digits; write the SHA-256 of the token, e.g. from `printf '%s' \"$TOKEN\" | sha256sum`"
                    .to_owned(),
            );
        } else if let Some(first) = seen.insert(token.sha256.as_str(), i) {
            report(&format!("{at}.sha256"), format!("the same token as tokens[{first}]; give each token one role"));
        }
    }
    check_limits(&settings.limits, report);
    check_nodes(&settings.nodes, report);
    settings.health.check(report);
    settings.domains.check(report);
    settings.acme.check(report);
    if let Some(Err(problems)) = settings.dns.as_ref().map(crate::dns::DnsSettings::compile) {
        for (path, message) in problems {
            report(&path, message);
        }
    }
}

fn check_nodes(nodes: &NodeSettings, report: &mut dyn FnMut(&str, String)) {
    let heartbeat = nodes.heartbeat_interval;
    if heartbeat < Duration::from_millis(100) || heartbeat > Duration::from_secs(300) {
        report("nodes.heartbeat_interval", format!("{heartbeat:?} is out of range; use 100ms to 5m"));
    }
    if nodes.grace.is_some_and(|grace| grace > Duration::from_secs(3600)) {
        report("nodes.grace", format!("{:?} is out of range; use at most 1h", nodes.grace()));
    }
    // Against the grace only when the grace itself is valid: one error per mistake.
    let below_grace = nodes.grace() <= Duration::from_secs(3600) && nodes.offline_after < nodes.grace();
    if below_grace || nodes.offline_after > Duration::from_secs(30 * 86_400) {
        let message = format!(
            "{:?} is out of range; use at least nodes.grace ({:?}) and at most 30 days",
            nodes.offline_after,
            nodes.grace()
        );
        report("nodes.offline_after", message);
    }
    if nodes.startup_grace.is_some_and(|grace| grace > Duration::from_secs(600)) {
        report("nodes.startup_grace", format!("{:?} is out of range; use at most 10m", nodes.startup_grace()));
    }
    let lease = nodes.replica_lease;
    if lease < Duration::from_secs(1) || lease > Duration::from_secs(300) {
        report("nodes.replica_lease", format!("{lease:?} is out of range; use 1s to 5m"));
    }
    let sync = nodes.sync_interval;
    if sync < Duration::from_millis(100) || sync > Duration::from_secs(60) {
        report("nodes.sync_interval", format!("{sync:?} is out of range; use 100ms to 1m"));
    }
    for (path, value, max) in
        [("nodes.stream_buffer", nodes.stream_buffer, 65_536), ("nodes.ack_history", nodes.ack_history, 1_000_000)]
    {
        if !(1..=max).contains(&value) {
            report(path, format!("{value} is out of range; use 1 to {max}"));
        }
    }
}

fn check_limits(limits: &Limits, report: &mut dyn FnMut(&str, String)) {
    let size = limits.max_body_size;
    if size < ByteSize::kib(1) || size > ByteSize::mib(64) {
        report("limits.max_body_size", format!("{size} is out of range; use 1KiB to 64MiB"));
    }
    let size = limits.max_function_size;
    if size < ByteSize::kib(1) || size > ByteSize::gib(1) {
        report("limits.max_function_size", format!("{size} is out of range; use 1KiB to 1GiB"));
    }
    let counts = [
        ("limits.max_services_per_tenant", limits.max_services_per_tenant, 100_000),
        ("limits.purge_burst", usize::try_from(limits.purge_burst).unwrap_or(usize::MAX), 1_000_000),
        ("limits.max_purge_targets", limits.max_purge_targets, 10_000),
        ("limits.max_page", limits.max_page, 100_000),
        ("limits.max_events", limits.max_events, 100_000_000),
        ("limits.max_function_versions", limits.max_function_versions, 10_000),
        ("limits.max_certificates_per_service", limits.max_certificates_per_service, 1_000),
        ("limits.max_connections", limits.max_connections, 1_000_000),
    ];
    for (path, value, max) in counts {
        if !(1..=max).contains(&value) {
            report(path, format!("{value} is out of range; use 1 to {max}"));
        }
    }
    if !(limits.purge_rate > 0.0 && limits.purge_rate <= 100_000.0) {
        report(
            "limits.purge_rate",
            format!("{} is out of range; use more than 0 and at most 100000 (per second)", limits.purge_rate),
        );
    }
    for (i, text) in limits.tenant_upstream_allow.iter().enumerate() {
        if let Err(why) = text.parse::<Cidr>() {
            report(&format!("limits.tenant_upstream_allow[{i}]"), why);
        }
    }
    for (path, value) in [
        ("limits.header_read_timeout", limits.header_read_timeout),
        ("limits.keepalive_timeout", limits.keepalive_timeout),
    ] {
        if value.is_zero() {
            report(path, "must be more than 0; write a duration such as \"10s\"".to_owned());
        }
    }
}

/// The 32 bytes of a SHA-256 written as 64 hex digits (either case).
pub fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        digest[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(digest)
}

impl TokenEntry {
    /// The role this entry grants; `None` for an entry that failed validation.
    pub fn role(&self) -> Option<Role> {
        match (self.operator, self.node, &self.tenant) {
            (true, false, None) => Some(Role::Operator),
            (false, true, None) => match &self.node_id {
                Some(id) => NodeId::parse(id).ok().map(|id| Role::Node(Some(id))),
                None => Some(Role::Node(None)),
            },
            (false, false, Some(tenant)) => TenantId::parse(tenant).ok().map(Role::Tenant),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const OPERATOR: &str =
        "[[tokens]]\noperator = true\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n";

    fn problems(text: &str) -> Vec<(String, String)> {
        match parse(text, Path::new("/etc/outpost/cp.toml")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn the_probe_token_file_resolves_beside_the_config_and_names_its_field() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("cp.toml");
        let token = dir.path().join("probe-token");
        std::fs::write(&token, "0123456789abcdef0123\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap_or_else(|e| panic!("{e}"));
        let text = format!("data = \"cp.redb\"\n{OPERATOR}[health]\nnode_admin_token_file = \"probe-token\"\n");
        let settings = parse(&text, &file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.health.node_admin_token_file.as_deref(), Some(token.as_path()));
        assert!(settings.health.node_admin_token.is_some());
        assert!(
            parse(&format!("data = \"cp.redb\"\n{OPERATOR}"), &file).is_ok_and(|s| s.health.node_admin_token.is_none())
        );
        let missing = format!("data = \"cp.redb\"\n{OPERATOR}[health]\nnode_admin_token_file = \"nope\"\n");
        let errors = parse(&missing, &file).err().map(|e| e.0).unwrap_or_default();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].file.as_path(), errors[0].path.as_str()),
            (file.as_path(), "health.node_admin_token_file")
        );
        assert!(errors[0].message.contains("cannot read"), "{errors:?}");
    }

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let settings = parse(&format!("data = \"cp.redb\"\n{OPERATOR}"), Path::new("/etc/outpost/cp.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.listen.to_string(), "127.0.0.1:7400");
        assert_eq!(settings.data, Path::new("/etc/outpost/cp.redb"));
        assert_eq!(settings.tokens[0].role(), Some(Role::Operator));
        assert_eq!(settings.limits.max_body_size, ByteSize::mib(1));
        assert_eq!(settings.limits.purge_interval(), Duration::from_millis(100));
        assert_eq!(settings.limits.max_events, 100_000);
        assert_eq!(settings.nodes.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(settings.nodes.grace(), Duration::from_secs(10));
        assert_eq!(settings.nodes.offline_after, Duration::from_secs(600));
        assert_eq!(settings.nodes.startup_grace(), Duration::from_secs(15));
        assert_eq!(settings.nodes.replica_lease, Duration::from_secs(3));
        assert_eq!(settings.nodes.sync_interval, Duration::from_secs(1));
        assert!(settings.limits.tenant_upstream_networks().is_empty(), "tenants get no private upstream");
        let allowing = parse(
            &format!("data = \"cp.redb\"\n{OPERATOR}[limits]\ntenant_upstream_allow = [\"127.0.0.0/8\", \"::1\"]\n"),
            Path::new("cp.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let networks: Vec<String> =
            allowing.limits.tenant_upstream_networks().iter().map(ToString::to_string).collect();
        assert_eq!(networks, ["127.0.0.0/8", "::1/128"]);
        let node = parse(
            &format!("data = \"cp.redb\"\n{OPERATOR}[[tokens]]\nnode = true\nsha256 = \"{}\"\n", "0".repeat(64)),
            Path::new("cp.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(node.tokens[1].role(), Some(Role::Node(None)));
        let one = parse(
            &format!(
                "data = \"cp.redb\"\n{OPERATOR}[[tokens]]\nnode = true\nnode_id = \"edge-1\"\nsha256 = \"{}\"\n",
                "0".repeat(64)
            ),
            Path::new("cp.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.tokens[1].role(), Some(Role::Node(NodeId::parse("edge-1").ok())));
    }

    #[test]
    fn postgres_replaces_the_data_file() {
        let text = format!(
            "store = {{ postgres = \"postgres://cp@db.internal:5433/cdn\" }}\nsecrets = {{ key_file = \"k\" }}\n{OPERATOR}"
        );
        let settings = parse(&text, Path::new("/etc/outpost/cp.toml")).unwrap_or_else(|e| panic!("{e}"));
        let postgres = settings.postgres.unwrap_or_else(|| panic!("store.postgres"));
        assert_eq!(postgres.redacted(), "cp@db.internal:5433/cdn");
        assert_eq!((postgres.pool_size, postgres.catch_up_interval), (16, Duration::from_secs(1)));
        assert_eq!(settings.data, PathBuf::new(), "no file for the embedded store");
        assert_eq!(settings.secrets.key_file.as_deref(), Some(Path::new("/etc/outpost/k")));
        let without_key = format!("store = {{ postgres = \"postgres://cp@db/cdn\" }}\n{OPERATOR}");
        let errors = parse(&without_key, Path::new("cp.toml")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(errors.contains("secrets.key_file: required with store.postgres"), "{errors}");
    }

    #[test]
    fn each_problem_names_its_field() {
        let tenant = |name: &str, hash: &str| format!("[[tokens]]\ntenant = \"{name}\"\nsha256 = \"{hash}\"\n");
        let cases = [
            (OPERATOR.to_owned(), "data", "missing; give the store's file"),
            (
                format!("store = {{ postgres = \"postgres://db/cdn\" }}\nsecrets = {{ key_file = \"k\" }}\n{OPERATOR}"),
                "store.postgres",
                "no user",
            ),
            (
                format!(
                    "data = \"x\"\nstore = {{ postgres = \"postgres://cp@db/cdn\" }}\nsecrets = {{ key_file = \"k\" }}\n{OPERATOR}"
                ),
                "data",
                "keep one store",
            ),
            (
                format!(
                    "store = {{ postgres = \"postgres://cp@db/cdn\", pool_size = 0 }}\nsecrets = {{ key_file = \"k\" }}\n{OPERATOR}"
                ),
                "store.pool_size",
                "1 to 1024",
            ),
            (
                format!(
                    "store = {{ postgres = \"postgres://cp@db/cdn\", start_timeout = \"2h\" }}\nsecrets = {{ key_file = \"k\" }}\n{OPERATOR}"
                ),
                "store.start_timeout",
                "1s to 1h",
            ),
            (format!("data = \"x\"\n{OPERATOR}listen = 1\n"), "tokens[0].listen", "line"),
            ("data = \"x\"\n".to_owned(), "tokens", "no token"),
            (format!("data = \"x\"\n{}", tenant("ACME", HASH)), "tokens[0].tenant", "not a valid tenant name"),
            (format!("data = \"x\"\n{}", tenant("acme", "abc")), "tokens[0].sha256", "not 64 hex digits"),
            (
                format!("data = \"x\"\n{OPERATOR}{}", tenant("acme", HASH)),
                "tokens[1].sha256",
                "the same token as tokens[0]",
            ),
            (format!("data = \"x\"\n[[tokens]]\nsha256 = \"{HASH}\"\n"), "tokens[0]", "set one of operator = true"),
            (
                format!("data = \"x\"\n[[tokens]]\noperator = true\nnode = true\nsha256 = \"{HASH}\"\n"),
                "tokens[0]",
                "not several",
            ),
            (
                format!("data = \"x\"\n[[tokens]]\noperator = true\nnode_id = \"e1\"\nsha256 = \"{HASH}\"\n"),
                "tokens[0].node_id",
                "only for a node token",
            ),
            (
                format!(
                    "data = \"x\"\n{OPERATOR}[[tokens]]\nnode = true\nnode_id = \"a b\"\nsha256 = \"{}\"\n",
                    "1".repeat(64)
                ),
                "tokens[1].node_id",
                "",
            ),
            (
                format!("data = \"x\"\n{OPERATOR}[nodes]\nheartbeat_interval = \"10ms\"\n"),
                "nodes.heartbeat_interval",
                "use 100ms to 5m",
            ),
            (format!("data = \"x\"\n{OPERATOR}[nodes]\ngrace = \"2h\"\n"), "nodes.grace", "at most 1h"),
            (
                format!("data = \"x\"\n{OPERATOR}[nodes]\noffline_after = \"5s\"\n"),
                "nodes.offline_after",
                "at least nodes.grace (10s)",
            ),
            (
                format!("data = \"x\"\n{OPERATOR}[nodes]\nstartup_grace = \"1h\"\n"),
                "nodes.startup_grace",
                "at most 10m",
            ),
            (
                format!("data = \"x\"\n{OPERATOR}[nodes]\nreplica_lease = \"500ms\"\n"),
                "nodes.replica_lease",
                "use 1s to 5m",
            ),
            (
                format!("data = \"x\"\n{OPERATOR}[nodes]\nsync_interval = \"2m\"\n"),
                "nodes.sync_interval",
                "use 100ms to 1m",
            ),
            (format!("data = \"x\"\n{OPERATOR}[nodes]\nstream_buffer = 0\n"), "nodes.stream_buffer", "use 1 to 65536"),
            (format!("data = \"x\"\n{OPERATOR}[nodes]\nack_history = 0\n"), "nodes.ack_history", "use 1 to 1000000"),
            (format!("data = \"x\"\n{OPERATOR}[limits]\nmax_events = 0\n"), "limits.max_events", "use 1 to 100000000"),
            (
                format!("data = \"x\"\n[[tokens]]\noperator = true\ntenant = \"a\"\nsha256 = \"{HASH}\"\n"),
                "tokens[0]",
                "not several",
            ),
            (
                format!("data = \"x\"\n{OPERATOR}[limits]\nmax_body_size = \"128MiB\"\n"),
                "limits.max_body_size",
                "use 1KiB to 64MiB",
            ),
            (format!("data = \"x\"\n{OPERATOR}[limits]\npurge_rate = 0\n"), "limits.purge_rate", "more than 0"),
            (format!("data = \"x\"\n{OPERATOR}[limits]\npurge_burst = 0\n"), "limits.purge_burst", "use 1 to"),
            (format!("data = \"x\"\n{OPERATOR}[limits]\nmax_page = 0\n"), "limits.max_page", "use 1 to 100000"),
            (
                format!("data = \"x\"\n{OPERATOR}[limits]\nmax_purge_targets = 10001\n"),
                "limits.max_purge_targets",
                "use 1 to 10000",
            ),
            (
                format!("data = \"x\"\n{OPERATOR}[limits]\nmax_services_per_tenant = 0\n"),
                "limits.max_services_per_tenant",
                "use 1 to 100000",
            ),
            (
                format!("data = \"x\"\n{OPERATOR}[limits]\nmax_pages = 1\n"),
                "limits.max_pages",
                "unknown field `max_pages`",
            ),
            (
                format!(
                    "data = \"x\"\n{OPERATOR}[limits]\ntenant_upstream_allow = [\"127.0.0.0/8\", \"10.0.0.1/8\"]\n"
                ),
                "limits.tenant_upstream_allow[1]",
                "host bits set; the network is 10.0.0.0/8",
            ),
            (
                format!("data = \"x\"\n{OPERATOR}[limits]\ntenant_upstream_allow = [\"localhost\"]\n"),
                "limits.tenant_upstream_allow[0]",
                "is not a subnet",
            ),
        ];
        for (text, path, fragment) in cases {
            let found = problems(&text);
            assert_eq!(found.len(), 1, "{text}\n{found:#?}");
            assert_eq!(found[0].0, path, "{text}");
            assert!(found[0].1.contains(fragment), "{text}\n{}", found[0].1);
        }
    }

    #[test]
    fn every_type_error_is_listed_with_its_field() {
        // Before, serde stopped at the first and named no field: now each is found, in file order.
        let text = format!(
            "data = \"cp.redb\"\nlisten = 7400\n{OPERATOR}[nodes]\nstream_buffer = \"many\"\n[limits]\nmax_page = -1\n"
        );
        let paths: Vec<String> = problems(&text).into_iter().map(|(path, _)| path).collect();
        assert_eq!(paths, ["listen", "nodes.stream_buffer", "limits.max_page"]);
    }

    #[test]
    fn hex_digests() {
        assert_eq!(parse_hex_digest(HASH).map(|d| d[0]), Some(0x9f));
        assert_eq!(parse_hex_digest(&HASH.to_uppercase()).map(|d| d[31]), Some(0x08));
        assert_eq!(parse_hex_digest(&HASH[1..]), None);
        assert_eq!(parse_hex_digest(&format!("{}g", &HASH[1..])), None);
        assert_eq!(parse_hex_digest(&"é".repeat(32)), None);
    }
}
