//! Outpost's typed configuration: the file form of an edge node's config, parsed from TOML and
//! validated with errors that name the file, the field path and what would be valid.
//!
//! # Map
//! - [`load`] / [`parse`]: text → [`NodeConfig`]. Flow: TOML syntax (`document`) → serde into the
//!   structs, every type and unknown-field error collected with its path (`document`) →
//!   relative paths resolved against the config file's directory → [`validate`].
//! - `node`: [`NodeConfig`] and its sections (`[node]`, `[listen]`, `[tls]`, `[cache]`,
//!   `[limits]`, `[upstream]`, `[log]`), each field with its default and bounds.
//! - `service`: [`ServiceConfig`] (`[[services]]`), [`HostHeader`], [`OriginProtocol`].
//! - `compression`: [`CompressionConfig`] (`[services.compression]`): codings, levels, types.
//! - `images`: [`ImagesConfig`] (`[services.images]`), the image URL API of a service.
//! - `function`: [`FunctionConfig`] (`[services.function]`), a service's edge function and its
//!   limits; [`FunctionsConfig`] (`[functions]`), the node's engine for them.
//! - `upstreams`: a service's origins ([`OriginConfig`], [`Balance`]), shields
//!   ([`ShieldConfig`]), and failure handling ([`HealthConfig`], [`PassiveConfig`],
//!   [`RetryConfig`]).
//! - `units`: [`ByteSize`] and durations ([`parse_duration`], [`format_duration`], serde
//!   helpers in [`units::duration`] and [`units::option_duration`]).
//! - `host`: [`HostPattern`]; `origin`: [`OriginUrl`].
//! - `validate`: cross-field checks and bounds; `error`: [`ConfigError`], [`ConfigErrors`].
//! - `net`: [`net::Cidr`] (also `trusted_networks` entries) and [`net::tenant`], the networks a
//!   tenant's upstream may not be in
//!   (judged by the control plane on what a tenant writes, and by nodes on what names resolve to).
//! - `rules`: per-service rules without code: [`CacheKeyConfig`], [`RuleConfig`] (first match
//!   wins), [`HstsConfig`], [`ErrorPageConfig`]; [`Glob`] and [`Template`], parsed when read.
//! - `purge`: [`PurgeRequest`], the JSON body of `POST /purge`, shared with the control plane.
//! - [`validate_service`]: one service checked on its own, as the control plane receives it.
//! - `control`: what the control plane stores and nodes follow: [`ServiceRecord`],
//!   [`PurgeRecord`], and the numbered [`Event`] log ([`Seq`], [`Change`]); the node protocol
//!   ([`NodeRegistration`], [`StreamMessage`], [`Snapshot`], [`Ack`]); `timestamp`:
//!   [`Timestamp`], RFC 3339 in its JSON.
//! - `acme`: [`AcmeChallenge`], the ACME challenge answers (HTTP-01, TLS-ALPN-01) every edge
//!   serves for the control plane's orders.
//! - `control_client`: [`ControlConfig`] (`[control]`), how a node follows the control plane.
//!
//! This crate does not own the runtime form: the edge node compiles a [`NodeConfig`] once per
//! config version (e.g. `ServiceConfig` → `CompiledService`). Nothing here does network I/O;
//! validation reads only certificate and CA files, to check they exist.
//!
//! # Example
//! ```
//! use std::path::Path;
//!
//! let text = r#"
//!     [node]
//!     name = "edge-1"
//!
//!     [listen]
//!     http = "127.0.0.1:0"
//!
//!     [[services]]
//!     name = "shop"
//!     hosts = ["shop.example", "*.shop.example"]
//!     origin = "https://origin.shop.example"
//!     default_ttl = "1m"
//! "#;
//! let config = outpost_config::parse(text, Path::new("/etc/outpost/edge.toml"))?;
//! assert_eq!(config.services[0].origin_list()[0].url.authority(), "origin.shop.example:443");
//! assert_eq!(config.cache.memory.to_string(), "256MiB");
//!
//! let errors = outpost_config::parse(
//!     "[node]\nname = \"edge-1\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[cache]\nmemory = \"1 MB\"\ndisk = \"2GB\"\nmax_object_size = \"1GB\"\n",
//!     Path::new("edge.toml"),
//! )
//! .expect_err("two problems in [cache]");
//! assert_eq!(
//!     errors.to_string(),
//!     "edge.toml: cache.memory: 1MB is below the minimum; use at least 1MiB\n\
//!      edge.toml: cache.max_object_size: 1GB is more than a quarter of cache.disk (2GB); \
//!      use at most 500MB or raise cache.disk"
//! );
//! # Ok::<(), outpost_config::ConfigErrors>(())
//! ```

mod acme;
mod certificate;
mod compression;
mod control;
mod control_client;
mod document;
mod error;
mod function;
mod host;
mod images;
pub mod net;
mod node;
mod origin;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties;
mod purge;
pub mod roles;
pub mod rules;
mod service;
mod timestamp;
pub mod units;
mod upstreams;
mod validate;

use std::io::Read;
use std::path::Path;

pub use acme::{AcmeChallenge, ChallengeKind, MAX_KEY_AUTHORIZATION_LEN, MAX_TOKEN_LEN, is_token as acme_token};
pub use compression::{CompressionConfig, ContentCoding, Levels, TypePattern};
pub use control::{
    Ack, CertificateKey, CertificateName, CertificateRecord, CertificateSource, Change, Event, FunctionRef,
    NodeAddresses, NodeId, NodeRecord, NodeRegistration, PurgeId, PurgeRecord, Registered, Seq, ServiceId,
    ServiceRecord, Snapshot, StreamMessage, TenantId, is_node_label,
};
pub use control_client::{Advertise, ControlConfig, STATE_FILE, defaults as control_defaults};
pub use document::from_toml;
pub use error::{ConfigError, ConfigErrors};
pub use function::{FunctionConfig, FunctionsConfig, ORIGIN_BACKEND};
pub use host::HostPattern;
pub use images::{ImagesConfig, MAX_OUTPUT_SIDE, MAX_SOURCE_PIXELS_LIMIT};
pub use net::{Cidr, MAX_TRUSTED_NETWORKS};
pub use node::{
    AccessFormat, AccessLog, CacheConfig, CertificateConfig, DEFAULT_ADMIN, LimitsConfig, ListenConfig, LogConfig,
    NodeConfig, NodeRole, NodeSection, QuicRetry, TlsConfig, UpstreamConfig, admin_token_problem,
};
pub use origin::{OriginUrl, Scheme};
pub use purge::{PurgeRequest, PurgeTarget};
pub use rules::{
    CacheKeyConfig, CacheRuleConfig, DenyConfig, ErrorPageConfig, FieldMatch, Glob, HeaderOps, HstsConfig, MatchConfig,
    OriginCacheControl, QueryKeep, QueryMode, RedirectConfig, RuleConfig, SchemeMatch, Template,
};
pub use service::{HostHeader, OriginProtocol, ServiceConfig, TlsMode};
pub use timestamp::{Timestamp, civil_from_days};
pub use units::{ByteSize, MAX_DURATION, format_duration, parse_duration};
pub use upstreams::{
    Balance, HealthConfig, MAX_ORIGINS, MAX_SHIELDS, OriginConfig, PassiveConfig, RetryConfig, ShieldConfig,
};
pub use validate::{validate, validate_service, validate_service_set};

/// Largest config file [`load`] reads.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads, parses and validates a config file. Relative paths in it are resolved against the
/// file's directory.
pub fn load(path: &Path) -> Result<NodeConfig, ConfigErrors> {
    load_as(path, None)
}

/// [`load`] for a binary that fixes the node's role (`origin-shield` runs shields), whatever
/// the file says: the role's defaults apply (see [`roles`]).
pub fn load_as(path: &Path, role: Option<NodeRole>) -> Result<NodeConfig, ConfigErrors> {
    let text = read(path).map_err(|message| ConfigErrors(vec![ConfigError::new(path, "", message)]))?;
    parse_as(&text, path, role)
}

fn read(path: &Path) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("cannot read the config file: {e}");
    let meta = std::fs::metadata(path).map_err(fail)?;
    if !meta.is_file() {
        return Err("cannot read the config file: not a regular file".to_owned());
    }
    let mut text = String::new();
    std::fs::File::open(path).map_err(fail)?.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(fail)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err("the config file is larger than 16MiB".to_owned());
    }
    Ok(text)
}

/// Parses and validates config text as [`load`] does, without reading `file`: `file` names
/// the source in errors, and relative paths are resolved against its directory.
pub fn parse(text: &str, file: &Path) -> Result<NodeConfig, ConfigErrors> {
    parse_as(text, file, None)
}

/// [`parse`] with the role fixed by the caller, as [`load_as`].
pub fn parse_as(text: &str, file: &Path, role: Option<NodeRole>) -> Result<NodeConfig, ConfigErrors> {
    let mut config: NodeConfig = document::from_toml(text, file).map_err(ConfigErrors)?;
    if let Some(role) = role {
        config.node.role = role;
    }
    roles::apply_defaults(&mut config, text);
    config.resolve_paths(file.parent().unwrap_or(Path::new("")));
    validate(&config, file)?;
    Ok(config)
}
