//! The file form of a node's configuration: one struct per TOML section, with defaults.
//!
//! Every field documents what it bounds, what a client sees when the bound is hit, and its
//! default. The bounds themselves are checked in [`validate`](crate::validate).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::HostPattern;
use crate::service::ServiceConfig;
use crate::units::{ByteSize, duration};

/// A whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `[node]`: this node's identity. Required.
    pub node: NodeSection,
    /// `[listen]`: the addresses the node accepts connections on.
    #[serde(default)]
    pub listen: ListenConfig,
    /// `[tls]`: certificates for the HTTPS listener.
    #[serde(default)]
    pub tls: TlsConfig,
    /// `[cache]`: memory and disk tiers and freshness limits.
    #[serde(default)]
    pub cache: CacheConfig,
    /// `[limits]`: per-connection and per-request bounds.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[upstream]`: timeouts and pooling for origin connections, defaults for every service.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// `[log]`: access log and log level.
    #[serde(default)]
    pub log: LogConfig,
    /// `[functions]`: the engine edge functions run on (compiled-code cache, instance pool).
    #[serde(default)]
    pub functions: crate::function::FunctionsConfig,
    /// `[[services]]`: the sites this node serves.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// `[control]`: follow a control plane (its services are served beside these, its purges
    /// applied). Default: none (this file's services only).
    #[serde(default)]
    pub control: Option<crate::control_client::ControlConfig>,
}

/// `[node]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// This node's name in `Cache-Status`, logs and metrics. Required; 1 to 64 of
    /// `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// The tier this node serves: `"edge"` (clients in front, shields or origins behind) or
    /// `"shield"` (edges in front, origins behind). The `origin-shield` binary sets `"shield"`.
    /// Default: `"edge"`.
    #[serde(default)]
    pub role: NodeRole,
    /// The point of presence this node is in (e.g. `"fra"`): reported to the control plane,
    /// which steers DNS by PoP, and told to edge functions (`Outpost-PoP`). Default: none
    /// (functions see the node name).
    #[serde(default)]
    pub pop: Option<String>,
    /// The region the PoP serves (e.g. `"eu-central"`), for the control plane's nearest-PoP
    /// map. Default: none.
    #[serde(default)]
    pub region: Option<String>,
}

/// `[node] role`: the tier a node serves; both roles run the same pipeline. A shield's services
/// usually list `origins` and no `shields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// `"edge"`: the tier clients connect to.
    #[default]
    Edge,
    /// `"shield"`: the tier between edges and origins.
    Shield,
}

/// `[listen]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Cleartext HTTP/1.1 and h2c (prior knowledge). Port 0 picks a free port.
    /// Default: none. At least one of `http` and `https` must be set.
    #[serde(deserialize_with = "address::deserialize_option")]
    pub http: Option<SocketAddr>,
    /// HTTPS (HTTP/1.1 and HTTP/2 by ALPN); requires at least one `[[tls.certificates]]`.
    /// Default: none.
    #[serde(deserialize_with = "address::deserialize_option")]
    pub https: Option<SocketAddr>,
    /// Admin API (`/healthz`, `/readyz`, `/metrics`, `/upstreams`, `/purge`). Must be a
    /// loopback address unless `admin_allow_public = true`. Default: `127.0.0.1:9090`.
    #[serde(deserialize_with = "address::deserialize")]
    pub admin: SocketAddr,
    /// Allow `admin` on a non-loopback address. Default: false.
    pub admin_allow_public: bool,
    /// The admin token: every admin request (`GET /healthz` too, unless `admin_open_healthz`)
    /// must carry `Authorization: Bearer TOKEN`, else **401**. Visible ASCII, 16 to 4096
    /// characters. At most one of `admin_token` and `admin_token_file`; with neither, the admin
    /// listener answers only `/healthz`, to anyone (401 to the rest). Default: none.
    pub admin_token: Option<String>,
    /// A file holding the admin token (whitespace around it ignored), read at start. Relative
    /// paths are resolved against the config file's directory. Default: none.
    pub admin_token_file: Option<PathBuf>,
    /// Serve `GET /healthz` without the admin token, for liveness probes that cannot send
    /// `Authorization: Bearer` (it says only that the process runs). With a token configured
    /// and this false, `/healthz` needs the token like every admin route: the control plane's
    /// probes send it (`health.node_admin_token_file`). Default: false.
    pub admin_open_healthz: bool,
    /// Open admin connections; the oldest idle one is closed to make room, else the new one is
    /// closed at once. Admin connections also get `limits.header_read_timeout` and
    /// `limits.keepalive_timeout`. Default: 64; 1 to 10000.
    pub admin_max_connections: usize,
    /// HTTP/3 over QUIC on the UDP port of `https` (same address and port number), with the same
    /// certificates, and `Alt-Svc` advertising it on HTTPS responses. Requires `https`.
    /// Default: false.
    pub http3: bool,
    /// `ma=` (max age) of the `Alt-Svc: h3=":PORT"` header sent on HTTP/1.1 and HTTP/2 over TLS
    /// when `http3` is on: how long clients remember that HTTP/3 is available.
    /// Default: 24h (86400s); more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub alt_svc_max_age: Duration,
    /// Accept TLS 1.3 early data (0-RTT) on HTTP/3 resumptions. Early data can be replayed by
    /// an attacker, so only safe methods (GET, HEAD, OPTIONS, TRACE) are served from it, with
    /// `Early-Data: 1` forwarded upstream (RFC 8470); any other method sent early gets
    /// `425 Too Early` and the client retries it after the handshake. Default: false.
    pub http3_early_data: bool,
    /// QUIC address validation with a Retry packet (RFC 9000 §8.1.2): `"never"`, `"always"`
    /// (every new client pays one extra round trip), or `"under_load"` (only when more than
    /// `quic_retry_threshold` handshakes are in progress, as under a spoofed-source flood).
    /// Default: `"under_load"`.
    pub quic_retry: QuicRetry,
    /// QUIC handshakes in progress above which `quic_retry = "under_load"` asks new, unvalidated
    /// clients to retry. Default: 256; 1 to 1000000.
    pub quic_retry_threshold: usize,
    /// Peers whose forwarding headers (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`,
    /// `True-Client-IP`, ...) are kept, for every service: a load balancer in front of the node,
    /// or the edges in front of a shield. From anyone else they are removed and the node's own
    /// set. Default: none; at most 256.
    pub trusted_networks: Vec<crate::net::Cidr>,
}

/// Whether `token` may be an admin token: 16 to 4096 visible ASCII characters (RFC 6750 §2.1
/// `b64token` characters are a subset), so that it fits an `Authorization` header and is not
/// guessable by being short.
pub fn admin_token_problem(token: &str) -> Result<(), String> {
    if !(16..=4096).contains(&token.len()) {
        return Err(format!("{} characters; use 16 to 4096 (e.g. `openssl rand -hex 32`)", token.len()));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("only visible ASCII characters, no spaces (e.g. `openssl rand -hex 32`)".to_owned());
    }
    Ok(())
}

/// `listen.quic_retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuicRetry {
    /// `"never"`: no address validation before the handshake.
    Never,
    /// `"under_load"`: validate when more than `quic_retry_threshold` handshakes are in progress.
    #[default]
    UnderLoad,
    /// `"always"`: validate every new client address.
    Always,
}

/// Default `listen.alt_svc_max_age`: 24 hours.
pub const DEFAULT_ALT_SVC_MAX_AGE: Duration = Duration::from_secs(86_400);

/// Default admin address: `127.0.0.1:9090`.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            http: None,
            https: None,
            admin: DEFAULT_ADMIN,
            admin_allow_public: false,
            admin_token: None,
            admin_token_file: None,
            admin_open_healthz: false,
            admin_max_connections: 64,
            http3: false,
            alt_svc_max_age: DEFAULT_ALT_SVC_MAX_AGE,
            http3_early_data: false,
            quic_retry: QuicRetry::UnderLoad,
            quic_retry_threshold: 256,
            trusted_networks: Vec::new(),
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `[[tls.certificates]]`: chosen by SNI (exact name, then the longest wildcard); a name no
    /// certificate covers gets a TLS `unrecognized_name` alert. Re-read on SIGHUP. Default: none.
    pub certificates: Vec<CertificateConfig>,
    /// The host whose certificate a client that sends no SNI gets (one connecting by IP
    /// address, say): the certificate this name would be served, from the file or the control
    /// plane. A host name, no wildcard. Default: none (such a client gets the
    /// `unrecognized_name` alert, like a name no certificate covers).
    pub default_host: Option<String>,
}

/// `[[tls.certificates]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// SNI names this certificate is served for. Required, non-empty.
    pub hosts: Vec<HostPattern>,
    /// PEM certificate chain, leaf first. Relative paths are resolved against the config
    /// file's directory. Required; must be a readable file.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Relative paths as for `cert`. Required; must
    /// be a readable file.
    pub key: PathBuf,
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Memory tier capacity. Default: 256MiB; at least 1MiB.
    pub memory: ByteSize,
    /// Directory of the disk tier; created if missing. Relative paths are resolved against the
    /// config file's directory. Default: `/var/cache/outpost`.
    pub disk_path: PathBuf,
    /// Disk tier capacity. Default: 1GiB; at least 16MiB.
    pub disk: ByteSize,
    /// Largest response body stored; larger responses are served but not stored
    /// (`Cache-Status` without `stored`). Default: 64MiB; at least 1KiB and at most `disk / 4`.
    pub max_object_size: ByteSize,
    /// Heuristic freshness for responses with `Last-Modified` but no explicit lifetime: this
    /// fraction of the time since `Last-Modified` (RFC 9111 §4.2.2). Default: 0.1; 0.0 to 1.0.
    pub heuristic_fraction: f64,
    /// Upper bound on heuristic freshness. Default: 1d.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_heuristic_ttl: Duration,
    /// Objects stored longer ago than this are treated as absent; purge records older than this
    /// are dropped. Default: 30d; at least 1s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_retention: Duration,
    /// Purge records kept (each purge is one record, checked on lookup); the oldest are dropped
    /// beyond this. Default: 100000; 1 to 10000000.
    pub max_purge_records: usize,
    /// A response to be stored whose body is known to end within this size (`Content-Length`,
    /// or a chunked body that ends within it) is read whole from the upstream before its head
    /// goes to the client, so `Cache-Status: stored` is true when said and a body that breaks
    /// off becomes a clean 502/504 (or a stale copy) instead of a truncated 200. Larger bodies
    /// stream (`detail=storing`). Costs up to this much memory per fill in flight and delays
    /// the first byte of small responses until their last. Default: 64KiB; 0 (off) to 16MiB.
    pub buffer_before_answer: ByteSize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            memory: ByteSize::mib(256),
            disk_path: PathBuf::from("/var/cache/outpost"),
            disk: ByteSize::gib(1),
            max_object_size: ByteSize::mib(64),
            heuristic_fraction: 0.1,
            max_heuristic_ttl: Duration::from_secs(86_400),
            max_retention: Duration::from_secs(30 * 86_400),
            max_purge_records: 100_000,
            buffer_before_answer: ByteSize::kib(64),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Total size of a request's header section. Client sees 431. Default: 32KiB; 8KiB to 1MiB.
    pub max_header_bytes: ByteSize,
    /// Number of request header fields. Client sees 431. Default: 100; 8 to 1000.
    pub max_headers: usize,
    /// Request body size. Client sees 413. Default: 64MiB.
    pub max_request_body: ByteSize,
    /// Open connections per listener. A new connection beyond it first closes the connection
    /// idle the longest (no request in progress); with none idle, the new one is accepted and
    /// closed at once. Default: 10000; 1 to 1000000.
    pub max_connections: usize,
    /// Time from accept to a connection's first request header section, complete (TLS
    /// handshake, protocol detection and the HTTP/2 preface included), and to each later
    /// request's header section; the connection is closed without a response. Default: 10s;
    /// more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub header_read_timeout: Duration,
    /// Idle time allowed between requests on a connection (HTTP/1.1 keep-alive, an HTTP/2
    /// connection with no stream open) before it is closed (for HTTP/3, the QUIC idle
    /// timeout). Default: 60s; more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub keepalive_timeout: Duration,
    /// HTTP/2 and HTTP/3 request streams open at once per connection; more are refused (HTTP/2:
    /// RST_STREAM REFUSED_STREAM; HTTP/3: the QUIC stream limit holds them back).
    /// Default: 100; 1 to 10000.
    pub max_concurrent_streams: u32,
    /// On shutdown, time in-flight requests get to finish before connections are closed.
    /// Default: 10s; 0 closes at once.
    #[serde(deserialize_with = "duration::deserialize")]
    pub drain_timeout: Duration,
    /// A binary upgrade (SIGUSR2): how long the running process waits for the new one to take
    /// the listening sockets and report ready (its config loaded, its cache opened). Past it,
    /// or when the new process exits first, the upgrade is abandoned, the new process is sent
    /// SIGKILL and the running one keeps serving. Opening a large disk cache counts against it.
    /// Default: 2m; more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub upgrade_timeout: Duration,
    /// Image transcodes (`[services.images]`) running at once on the node, across services.
    /// Each holds its decoded source in memory (up to 4 bytes per pixel, so up to 200MB with
    /// the default `max_source_pixels`) and keeps a core busy; AVIF encoding also spreads over
    /// every core. Work runs on the blocking thread pool, never on the threads serving cache
    /// hits. Default: 2; 1 to 1024.
    pub max_concurrent_transcodes: usize,
    /// Image transcodes waiting for a slot; one more is refused at once, and the client gets
    /// the untransformed image, not stored as the variant. At about 0.1s per 400-pixel WebP
    /// (0.2s to 0.5s for AVIF) and the default 2 slots, the last in the queue waits about 2s
    /// (4s to 8s). Default: 32; 0 to 100000.
    pub max_queued_transcodes: usize,
    /// Response bodies being compressed or decompressed at once (`[services.compression]`),
    /// across services. Each holds its codec's window (about 14MB for brotli at level 6, 6MB
    /// for zstd at 8); a response beyond the bound is sent as the base is (not compressed, and
    /// nothing stored as a variant), so a burst of misses cannot grow memory without bound.
    /// Default: 32; 1 to 10000.
    pub max_concurrent_encodes: usize,
    /// Memory the codecs of those bodies may hold together, counted by an upper estimate per
    /// codec (its window, tables and buffers: about 24MiB for brotli at level 6, 9MiB to decode
    /// zstd, 17MiB to decode brotli). A response that would pass it is sent as the base is, like
    /// one beyond `max_concurrent_encodes`, so many clients asking at once for a body that must
    /// be decoded (a decompression bomb) cannot grow memory past it. Default: 512MiB; 16MiB to
    /// 64GiB.
    pub max_codec_memory: ByteSize,
    /// Networks (`"10.20.0.0/16"`, `"::1/128"`, or one address) the upstreams of the control
    /// plane's (tenants') services may connect to although they are loopback, private,
    /// link-local, CGNAT, unspecified, multicast, broadcast or reserved addresses, or IPv6
    /// forms of them (`::ffff:127.0.0.1`, `64:ff9b::7f00:1`, `2002:7f00:1::`). The node checks
    /// every address a tenant's upstream name resolves to, health probes included, just before
    /// connecting; a refused one gets **502** `upstream_forbidden`. Services written in this
    /// file (the operator's) are not checked. Default: empty.
    pub tenant_upstream_allow: Vec<String>,
}

impl LimitsConfig {
    /// `tenant_upstream_allow` parsed; an entry that does not parse (validation refused it) is
    /// left out.
    pub fn tenant_upstream_networks(&self) -> Vec<crate::net::Cidr> {
        self.tenant_upstream_allow.iter().filter_map(|text| text.parse().ok()).collect()
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: ByteSize::kib(32),
            max_headers: 100,
            max_request_body: ByteSize::mib(64),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            max_concurrent_streams: 100,
            drain_timeout: Duration::from_secs(10),
            upgrade_timeout: Duration::from_secs(120),
            max_concurrent_transcodes: 2,
            max_queued_transcodes: 32,
            max_concurrent_encodes: 32,
            max_codec_memory: ByteSize::mib(512),
            tenant_upstream_allow: Vec::new(),
        }
    }
}

/// `[upstream]`: defaults for every service; a service may override the timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// TCP connect plus TLS handshake to the origin. Client sees 504 (or stale, when allowed).
    /// Default: 5s; more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub connect_timeout: Duration,
    /// From request sent to the origin's response headers. Client sees 504 (or stale, when
    /// allowed). Default: 15s; more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub first_byte_timeout: Duration,
    /// Gap between two body chunks from the origin; the response is cut off and not stored.
    /// Default: 10s; more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub between_bytes_timeout: Duration,
    /// Whole response, from the request sent to the last body byte: a slow-drip upstream is cut
    /// off (and nothing stored) however steadily it sends. Default: 5m; more than 0.
    #[serde(default = "default_total_timeout", deserialize_with = "duration::deserialize")]
    pub total_timeout: Duration,
    /// Idle pooled upstream connections are closed after this, before the origin's own
    /// keep-alive timeout closes them: a request sent on a connection the origin is closing
    /// fails ("connection closed before message completed"). Default: 4s, below the 5 s of
    /// Apache httpd (`KeepAliveTimeout`) and Node.js (`server.keepAliveTimeout`), the shortest
    /// common ones (nginx: 75 s); more than 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per origin; 0 disables pooling. Default: 64; 0 to 10000.
    pub pool_max_idle_per_host: usize,
    /// HTTP/2 connections per upstream (per shield and TLS name): a stream goes on an open
    /// connection while it has a free slot under the upstream's SETTINGS_MAX_CONCURRENT_STREAMS,
    /// and another connection is opened when none has; past this bound streams wait for a slot.
    /// Default: 8; 1 to 1024.
    #[serde(default = "default_h2_max_connections")]
    pub h2_max_connections: usize,
    /// Request bodies up to this size are kept while they stream upstream, so that a request
    /// whose reused connection died before any response byte can be sent again on a new one.
    /// Larger bodies are never kept: such a request is not replayed. 0 keeps none (only
    /// requests without a body are replayed). Costs up to this much memory per request in
    /// flight with a body. Default: 64KiB (Pingora's retry buffer); 0 to 1MiB.
    pub replay_body_max: ByteSize,
}

fn default_h2_max_connections() -> usize {
    8
}

fn default_total_timeout() -> Duration {
    Duration::from_secs(300)
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(15),
            between_bytes_timeout: Duration::from_secs(10),
            total_timeout: default_total_timeout(),
            pool_idle_timeout: Duration::from_secs(4),
            pool_max_idle_per_host: 64,
            h2_max_connections: default_h2_max_connections(),
            replay_body_max: ByteSize::kib(64),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Where the access log (one line per request) goes: `"stdout"`, `"off"`, or a file path
    /// (relative to the config file's directory). Default: `"stdout"`.
    pub access: AccessLog,
    /// How each access-log line is written: `"json"` (one object per line) or `"combined"`
    /// (nginx's combined format plus a few fields). Default: `"json"`.
    pub access_format: AccessFormat,
    /// Per-worker buffer: lines collect here and go to the writer thread when it is full (or
    /// `access_flush` has passed), like nginx's `access_log ... buffer=`. Default: 64KiB;
    /// 1KiB to 16MiB.
    pub access_buffer: ByteSize,
    /// The longest a line waits in a buffer before it is written, like nginx's `flush=`.
    /// Default: 1s; 1ms to 1m.
    #[serde(deserialize_with = "duration::deserialize")]
    pub access_flush: Duration,
    /// Filled buffers waiting for the writer thread (a slow disk or pipe). When full, further
    /// lines are dropped and counted (`outpost_access_log_dropped_total`); requests never wait.
    /// Default: 16MiB; at least `access_buffer`, at most 1GiB.
    pub access_queue: ByteSize,
    /// `tracing` filter directive, e.g. `"info"` or `"info,edge_node::cache=debug"`;
    /// overridden by `RUST_LOG`. Default: `"info"`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            access: AccessLog::Stdout,
            access_format: AccessFormat::Json,
            access_buffer: ByteSize::kib(64),
            access_flush: Duration::from_secs(1),
            access_queue: ByteSize::mib(16),
            level: "info".to_owned(),
        }
    }
}

/// `log.access_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// nginx's `combined` line, then `host`, `cache`, `rt` and `id` as `key=value`.
    Combined,
}

/// Destination of the access log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum AccessLog {
    /// `"stdout"`.
    #[default]
    Stdout,
    /// `"off"`.
    Off,
    /// Any other string: append to this file.
    File(PathBuf),
}

impl TryFrom<String> for AccessLog {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "stdout" => Ok(AccessLog::Stdout),
            "off" => Ok(AccessLog::Off),
            "" => Err("empty access log; use \"stdout\", \"off\" or a file path".to_owned()),
            _ => Ok(AccessLog::File(PathBuf::from(s))),
        }
    }
}

impl NodeConfig {
    /// Resolves relative paths (certificates, CA bundles, cache directory, access log file)
    /// against `base`, the config file's directory.
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for certificate in &mut self.tls.certificates {
            resolve(&mut certificate.cert, base);
            resolve(&mut certificate.key, base);
        }
        resolve(&mut self.cache.disk_path, base);
        if let Some(token) = &mut self.listen.admin_token_file {
            resolve(token, base);
        }
        if let AccessLog::File(path) = &mut self.log.access {
            resolve(path, base);
        }
        // Default: beside the cache directory, `<disk_path>-functions`.
        let functions = self.functions.cache_dir.get_or_insert_with(|| {
            let mut dir = self.cache.disk_path.clone().into_os_string();
            dir.push("-functions");
            PathBuf::from(dir)
        });
        resolve(functions, base);
        for service in &mut self.services {
            if let Some(ca) = &mut service.origin_ca {
                resolve(ca, base);
            }
            if let Some(function) = &mut service.function {
                resolve(&mut function.wasm, base);
            }
        }
        if let Some(control) = &mut self.control {
            control.resolve_paths(base);
        }
    }
}

pub(crate) fn resolve(path: &mut PathBuf, base: &Path) {
    // An empty path stays empty so that validation can name it.
    if path.is_relative() && !path.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}

/// Listener addresses, with an error that shows what to write.
mod address {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "\"{text}\" is not an IP address and port; write e.g. \"0.0.0.0:80\", \
                 \"127.0.0.1:8080\" or \"[::]:443\" (port 0 picks a free port)"
            ))
        })
    }

    pub(super) fn deserialize_option<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{HostHeader, OriginProtocol};
    use crate::upstreams::Balance;

    const MINIMAL: &str = r#"
        [node]
        name = "edge-1"
        [listen]
        http = "127.0.0.1:0"
        [[services]]
        name = "shop"
        hosts = ["shop.example"]
        origin = "https://origin.shop.example"
    "#;

    fn parse(text: &str, file: &str) -> NodeConfig {
        crate::parse(text, Path::new(file)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The documented defaults, written out rather than taken from `Default`, so that a change
    /// to a default is a change to this test too (and to REFERENCE.md).
    #[test]
    fn absent_fields_take_their_documented_defaults() {
        let config = parse(MINIMAL, "/etc/outpost/edge.toml");
        assert_eq!(config.node.role, NodeRole::Edge);
        let listen = &config.listen;
        assert_eq!(listen.https, None);
        assert_eq!(listen.admin.to_string(), "127.0.0.1:9090");
        assert!(!listen.admin_allow_public);
        assert!(config.tls.certificates.is_empty());

        let cache = &config.cache;
        assert_eq!(cache.memory, ByteSize(256 << 20));
        assert_eq!(cache.disk_path, Path::new("/var/cache/outpost"));
        assert_eq!(cache.disk, ByteSize(1 << 30));
        assert_eq!(cache.max_object_size, ByteSize(64 << 20));
        assert_eq!(cache.heuristic_fraction, 0.1);
        assert_eq!(cache.max_heuristic_ttl, Duration::from_secs(86_400));
        assert_eq!(cache.max_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(cache.max_purge_records, 100_000);

        let limits = &config.limits;
        assert_eq!(limits.max_header_bytes, ByteSize(32 << 10));
        assert_eq!(limits.max_headers, 100);
        assert_eq!(limits.max_request_body, ByteSize(64 << 20));
        assert_eq!(limits.max_connections, 10_000);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.keepalive_timeout, Duration::from_secs(60));
        assert_eq!(limits.max_concurrent_streams, 100);
        assert_eq!(limits.drain_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_concurrent_transcodes, 2);
        assert_eq!(limits.max_queued_transcodes, 32);

        let upstream = &config.upstream;
        assert_eq!(upstream.connect_timeout, Duration::from_secs(5));
        assert_eq!(upstream.first_byte_timeout, Duration::from_secs(15));
        assert_eq!(upstream.between_bytes_timeout, Duration::from_secs(10));
        assert_eq!(upstream.pool_idle_timeout, Duration::from_secs(4));
        assert_eq!(upstream.pool_max_idle_per_host, 64);
        assert_eq!(upstream.h2_max_connections, 8);
        assert_eq!(upstream.replay_body_max, ByteSize::kib(64));

        assert_eq!(config.log.access, AccessLog::Stdout);
        assert_eq!(config.log.level, "info");

        let service = &config.services[0];
        assert_eq!(service.host_header, HostHeader::Keep);
        assert_eq!(service.origin_ca, None);
        assert_eq!(service.origin_protocol, OriginProtocol::Auto);
        assert_eq!(service.default_ttl, None);
        assert!(!service.honor_client_cache_control);
        assert!(!service.store_set_cookie);
        assert_eq!(service.max_object_size, None);
        assert_eq!(service.connect_timeout, None);
        assert_eq!(service.first_byte_timeout, None);
        assert_eq!(service.between_bytes_timeout, None);

        assert_eq!(service.origins, []);
        assert_eq!(service.balance, Balance::RoundRobin);
        assert_eq!(service.shields, []);
        assert!(service.origin_when_shields_down);
        let health = &service.health;
        assert_eq!(health.enabled, None);
        assert_eq!(health.path, "/");
        assert_eq!(health.interval, Duration::from_secs(5));
        assert_eq!(health.timeout, Duration::from_secs(2));
        assert_eq!(health.unhealthy_threshold, 3);
        assert_eq!(health.healthy_threshold, 2);
        let passive = &service.passive;
        assert_eq!(passive.failure_threshold, 5);
        assert_eq!(passive.ejection, Duration::from_secs(30));
        assert_eq!(passive.max_ejection, Duration::from_secs(300));
        let retry = &service.retry;
        assert_eq!(retry.max_retries, 2);
        assert_eq!(retry.base_backoff, Duration::from_millis(25));
        assert_eq!(retry.max_backoff, Duration::from_secs(1));
        assert_eq!(retry.budget_ratio, 0.2);
        assert_eq!(retry.budget_window, Duration::from_secs(10));
        assert_eq!(retry.budget_min_per_sec, 3);
    }

    #[test]
    fn node_roles() {
        let cases = [("edge", Some(NodeRole::Edge)), ("shield", Some(NodeRole::Shield)), ("origin", None)];
        for (role, expected) in cases {
            let text = MINIMAL.replace("name = \"edge-1\"", &format!("name = \"edge-1\"\nrole = \"{role}\""));
            let got = crate::parse(&text, Path::new("edge.toml")).ok().map(|c| c.node.role);
            assert_eq!(got, expected, "{role}");
        }
    }

    #[test]
    fn default_impls_match_an_empty_section() {
        let config = parse(MINIMAL, "edge.toml");
        assert_eq!(config.listen.admin, ListenConfig::default().admin);
        assert_eq!(config.cache, CacheConfig::default());
        assert_eq!(config.limits, LimitsConfig::default());
        assert_eq!(config.upstream, UpstreamConfig::default());
        assert_eq!(config.log, LogConfig::default());
        assert_eq!(config.tls, TlsConfig::default());
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let text = format!(
            "{MINIMAL}origin_ca = \"Cargo.toml\"\n\
             [[tls.certificates]]\nhosts = [\"shop.example\"]\ncert = \"Cargo.toml\"\nkey = \"{dir}/Cargo.toml\"\n\
             [cache]\ndisk_path = \"cache\"\n[log]\naccess = \"logs/access.log\"\n"
        );
        let config = parse(&text, &format!("{dir}/edge.toml"));
        let base = Path::new(dir);
        assert_eq!(config.tls.certificates[0].cert, base.join("Cargo.toml"));
        assert_eq!(config.tls.certificates[0].key, base.join("Cargo.toml"));
        assert_eq!(config.cache.disk_path, base.join("cache"));
        assert_eq!(config.log.access, AccessLog::File(base.join("logs/access.log")));
        assert_eq!(config.services[0].origin_ca, Some(base.join("Cargo.toml")));

        // A bare file name has no directory: paths stay relative (to the working directory).
        let config = parse(&format!("{MINIMAL}[cache]\ndisk_path = \"cache\"\n"), "edge.toml");
        assert_eq!(config.cache.disk_path, Path::new("cache"));
    }

    #[test]
    fn access_log_values() {
        let cases = [
            ("stdout", AccessLog::Stdout),
            ("off", AccessLog::Off),
            ("/var/log/outpost/access.log", AccessLog::File("/var/log/outpost/access.log".into())),
            ("Stdout", AccessLog::File("/etc/Stdout".into())),
        ];
        for (value, expected) in cases {
            let text = format!("{MINIMAL}[log]\naccess = \"{value}\"\n");
            assert_eq!(parse(&text, "/etc/edge.toml").log.access, expected, "{value}");
        }
    }

    #[test]
    fn access_log_buffering_fields() {
        let log = parse(MINIMAL, "/etc/edge.toml").log;
        assert_eq!(log.access_format, AccessFormat::Json);
        assert_eq!((log.access_buffer, log.access_queue), (ByteSize::kib(64), ByteSize::mib(16)));
        assert_eq!(log.access_flush, Duration::from_secs(1));
        let text = format!(
            "{MINIMAL}[log]\naccess_format = \"combined\"\naccess_buffer = \"8KiB\"\n\
             access_flush = \"250ms\"\naccess_queue = \"1MiB\"\n"
        );
        let log = parse(&text, "/etc/edge.toml").log;
        assert_eq!(log.access_format, AccessFormat::Combined);
        assert_eq!((log.access_buffer, log.access_queue), (ByteSize::kib(8), ByteSize::mib(1)));
        assert_eq!(log.access_flush, Duration::from_millis(250));
    }
}
