//! `[[services]]`: one site served by the node, its hosts, its origins and shields.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::compression::CompressionConfig;
use crate::function::FunctionConfig;
use crate::host::HostPattern;
use crate::images::ImagesConfig;
use crate::net::Cidr;
use crate::origin::{OriginUrl, parse_authority};
use crate::rules::{CacheKeyConfig, ErrorPageConfig, HstsConfig, RuleConfig};
use crate::units::{ByteSize, option_duration};
use crate::upstreams::{Balance, HealthConfig, OriginConfig, PassiveConfig, RetryConfig, ShieldConfig};

/// `[[services]]`: the file form. The edge node compiles it once per config version.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Identity in logs, metrics and purge requests. Required, unique; 1 to 64 of
    /// `a-z 0-9 _ -`.
    pub name: String,
    /// Hosts routed to this service. Required, non-empty; a pattern may belong to one service
    /// only. A request whose host matches no service gets 404.
    pub hosts: Vec<HostPattern>,
    /// Where cache misses go: the simple form, one origin server. Exactly one of `origin` and
    /// `origins` is required. Read both forms through [`ServiceConfig::origin_list`].
    #[serde(default)]
    pub origin: Option<OriginUrl>,
    /// `[[services.origins]]`: several origin servers, with failover groups and weights.
    /// Exactly one of `origin` and `origins` is required; 1 to 64 entries.
    #[serde(default)]
    pub origins: Vec<OriginConfig>,
    /// How a request picks among the healthy origins of one failover group.
    /// Default: `"round_robin"`.
    #[serde(default)]
    pub balance: Balance,
    /// `[[services.shields]]`: the shield tier. A miss goes to the shield chosen by rendezvous
    /// hashing of the cache key over the healthy shields. Default: none (misses go to the
    /// origins); at most 64. A shield node's own services usually have none.
    #[serde(default)]
    pub shields: Vec<ShieldConfig>,
    /// When every shield is down, go to the origins directly; when false, such a miss fails
    /// with 502 (or a stale copy where allowed). Only matters with `shields`. Default: true.
    #[serde(default = "yes")]
    pub origin_when_shields_down: bool,
    /// `[services.health]`: active health checks of the shields and origins.
    #[serde(default)]
    pub health: HealthConfig,
    /// `[services.passive]`: failure counting and the circuit breaker per upstream.
    #[serde(default)]
    pub passive: PassiveConfig,
    /// `[services.retry]`: retries of idempotent requests, backoff and the retry budget.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Host header sent to the origin: `"keep"` (the request's canonical host, the one it was
    /// routed and cached by), `"origin"` (the origin URL's host), or a literal `host[:port]`.
    /// Default: `"keep"`.
    #[serde(default)]
    pub host_header: HostHeader,
    /// PEM CA bundle that verifies the origin's certificate; only with an `https` origin.
    /// Relative paths are resolved against the config file's directory.
    /// Default: the system's roots.
    #[serde(default)]
    pub origin_ca: Option<PathBuf>,
    /// Protocol to the origin. Default: `"auto"`.
    #[serde(default)]
    pub origin_protocol: OriginProtocol,
    /// Freshness lifetime for responses that carry none (no `max-age`, `s-maxage`, `Expires`,
    /// heuristic). Default: none (such responses are not stored); more than 0 when set.
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub default_ttl: Option<Duration>,
    /// When the upstream fails (no answer, or a 5xx), serve a stored response up to this long
    /// past its freshness, as if it carried `stale-if-error` (RFC 5861) — never one marked
    /// `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache`. Default: none (only the
    /// response's own `stale-if-error` counts).
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub max_stale_on_error: Option<Duration>,
    /// Honour request `Cache-Control` (`no-cache`, `max-age=0`, `no-store`, ...) and `Pragma:
    /// no-cache`: any client could then send every request to the origin, so a shared cache
    /// ignores them by default, as Fastly, Cloudflare and nginx's `proxy_cache` do.
    /// Default: false.
    #[serde(default)]
    pub honor_client_cache_control: bool,
    /// Peers (besides `listen.trusted_networks`) whose forwarding headers (`Forwarded`,
    /// `X-Forwarded-*`, `X-Real-IP`, `True-Client-IP`, ...) reach this service's upstream; from
    /// anyone else they are removed and the node's own set. Default: none; at most 256.
    #[serde(default)]
    pub trusted_networks: Vec<Cidr>,
    /// Store responses that carry `Set-Cookie`. Default: false (they are forwarded, not stored).
    #[serde(default)]
    pub store_set_cookie: bool,
    /// Early hints from cache: a stored `text/html` 200 whose `Link` fields name
    /// `rel=preload` or `rel=preconnect` targets has them sent as `103 Early Hints` (RFC 8297)
    /// at once when a later request for that URL must go upstream (the stored copy is stale or
    /// its body was evicted), before the origin answers. Default: false.
    #[serde(default)]
    pub early_hints: bool,
    /// The most `Link` values one early-hints `103` made from cache carries; later ones are
    /// left out. 1 to 64. Default: 16.
    #[serde(default = "default_early_hints_max_links")]
    pub early_hints_max_links: usize,
    /// The most bytes of `Link` values one early-hints `103` made from cache carries; a value
    /// that would cross it is left out. 128B to 16KiB. Default: 4KiB.
    #[serde(default = "default_early_hints_max_bytes")]
    pub early_hints_max_bytes: ByteSize,
    /// Bound on the fields of one interim (1xx) response forwarded from the upstream (names
    /// and values, as HTTP/1.1 writes them); a larger one is dropped, the final response is
    /// unaffected. 1KiB to 64KiB. Default: 8KiB.
    #[serde(default = "default_max_interim_bytes")]
    pub max_interim_bytes: ByteSize,
    /// Overrides `cache.max_object_size` for this service; at least 1KiB and at most
    /// `cache.max_object_size`. Default: `cache.max_object_size`.
    #[serde(default)]
    pub max_object_size: Option<ByteSize>,
    /// Overrides `upstream.connect_timeout`. Default: `upstream.connect_timeout`.
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub connect_timeout: Option<Duration>,
    /// Overrides `upstream.first_byte_timeout`. Default: `upstream.first_byte_timeout`.
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub first_byte_timeout: Option<Duration>,
    /// Overrides `upstream.between_bytes_timeout`. Default: `upstream.between_bytes_timeout`.
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub between_bytes_timeout: Option<Duration>,
    /// Overrides `upstream.total_timeout`. Default: `upstream.total_timeout`.
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub total_timeout: Option<Duration>,
    /// `[services.compression]`: compression by `Accept-Encoding` (br, zstd, gzip), levels,
    /// compressible types. Default: on, with [`CompressionConfig::default`].
    #[serde(default)]
    pub compression: CompressionConfig,
    /// `[services.images]`: the image URL API (resize, fit, format, quality). Default: off.
    #[serde(default)]
    pub images: ImagesConfig,
    /// `[services.function]`: a WebAssembly component that answers this service's requests
    /// before the cache; its backend fetches come back through the cache. Default: none.
    #[serde(default)]
    pub function: Option<FunctionConfig>,
    /// `[services.cache_key]`: the query string kept, ignored, sorted or filtered, and the
    /// headers and cookies added to the key. Default: the query kept as sent, nothing added.
    #[serde(default)]
    pub cache_key: CacheKeyConfig,
    /// `[[services.rules]]`: conditions and actions, first match wins (see [`crate::rules`]).
    /// Default: none; at most 256.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Answer requests that arrive over plain HTTP with a redirect to the same URL over
    /// HTTPS (path and query kept), before any rule. Default: false.
    #[serde(default)]
    pub https_redirect: bool,
    /// The status of that redirect: 301, 302, 307 or 308. Default: 301.
    #[serde(default = "default_https_redirect_status")]
    pub https_redirect_status: u16,
    /// `[services.hsts]`: `Strict-Transport-Security` on responses over TLS. Default: none.
    #[serde(default)]
    pub hsts: Option<HstsConfig>,
    /// Add `Outpost-Cache-Key` (the normalised key: host, path, query, added fields) and
    /// `Outpost-Rule` (the rule that matched) to responses, for the operator. Default: false.
    #[serde(default)]
    pub debug_headers: bool,
    /// `[[services.error_pages]]`: pages served for the node's own errors (and, when asked,
    /// the upstream's 5xx), by status or class. Default: none; at most 16.
    #[serde(default)]
    pub error_pages: Vec<ErrorPageConfig>,
    /// Where the certificates of the service's hosts come from: `"manual"` (the operator's
    /// files, or certificates uploaded through the API) or `"auto"` (the control plane
    /// obtains and renews them by ACME, RFC 8555, for the service's verified hosts). Nodes
    /// read it as documentation only. Default: `"manual"`.
    #[serde(default)]
    pub tls: TlsMode,
}

fn default_https_redirect_status() -> u16 {
    301
}

fn yes() -> bool {
    true
}

/// Default of `early_hints_max_links`.
pub const DEFAULT_EARLY_HINTS_MAX_LINKS: usize = 16;
/// Default of `early_hints_max_bytes`.
pub const DEFAULT_EARLY_HINTS_MAX_BYTES: ByteSize = ByteSize::kib(4);
/// Default of `max_interim_bytes`.
pub const DEFAULT_MAX_INTERIM_BYTES: ByteSize = ByteSize::kib(8);

fn default_early_hints_max_links() -> usize {
    DEFAULT_EARLY_HINTS_MAX_LINKS
}

fn default_early_hints_max_bytes() -> ByteSize {
    DEFAULT_EARLY_HINTS_MAX_BYTES
}

fn default_max_interim_bytes() -> ByteSize {
    DEFAULT_MAX_INTERIM_BYTES
}

/// A service name: 1 to 64 of `a-z 0-9 _ -`. Also the rule for the control plane's service
/// ids and tenant names.
pub(crate) fn is_service_name(name: &str) -> bool {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
    !name.is_empty() && name.len() <= 64 && name.chars().all(valid)
}

impl ServiceConfig {
    /// The origins in one form: `origins` as written, or the single `origin` as group 0 with
    /// weight 1. Empty only for a config that failed validation.
    pub fn origin_list(&self) -> Vec<OriginConfig> {
        match &self.origin {
            Some(url) if self.origins.is_empty() => vec![OriginConfig { url: url.clone(), group: 0, weight: 1 }],
            _ => self.origins.clone(),
        }
    }

    /// Whether active health checks run: `health.enabled` when set; otherwise when the
    /// service has a choice of upstream (any shield, or more than one origin).
    pub fn active_health_checks(&self) -> bool {
        let choice = !self.shields.is_empty() || self.origin_list().len() > 1;
        self.health.enabled.unwrap_or(choice)
    }
}

/// The `Host` header the origin receives.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum HostHeader {
    /// `"keep"`: the request's canonical host (without the client's port).
    #[default]
    Keep,
    /// `"origin"`: the origin URL's host (and port, when not the scheme's default).
    Origin,
    /// Any other string: this `host[:port]`, lower-cased.
    Literal(String),
}

impl TryFrom<String> for HostHeader {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "keep" => Ok(HostHeader::Keep),
            "origin" => Ok(HostHeader::Origin),
            _ => match parse_authority(&s) {
                Ok(_) => Ok(HostHeader::Literal(s.to_ascii_lowercase())),
                Err(why) => Err(format!(
                    "\"{s}\": {why}; use \"keep\", \"origin\" or a host such as \"shop.example\" or \"shop.example:8080\""
                )),
            },
        }
    }
}

/// `tls`: who provides a service's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Certificates from files or the API.
    #[default]
    Manual,
    /// Certificates obtained and renewed by the control plane's ACME client.
    Auto,
}

/// The HTTP version spoken to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginProtocol {
    /// `"auto"`: `https` origins by ALPN (h2, then http/1.1); `http` origins HTTP/1.1.
    #[default]
    Auto,
    /// `"http1"`: HTTP/1.1 only.
    Http1,
    /// `"http2"`: `https` origins h2 only (ALPN); `http` origins h2c with prior knowledge.
    Http2,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_values() {
        let cases: &[(&str, Result<HostHeader, &str>)] = &[
            ("keep", Ok(HostHeader::Keep)),
            ("origin", Ok(HostHeader::Origin)),
            ("Shop.Example", Ok(HostHeader::Literal("shop.example".to_owned()))),
            ("shop.example:8080", Ok(HostHeader::Literal("shop.example:8080".to_owned()))),
            ("[::1]:8080", Ok(HostHeader::Literal("[::1]:8080".to_owned()))),
            ("", Err("missing host")),
            ("shop.example/x", Err("invalid character '/'")),
            ("shop.example:0", Err("invalid port")),
            ("Keep it", Err("use \"keep\", \"origin\" or a host")),
        ];
        for (input, expected) in cases {
            match (HostHeader::try_from(input.to_string()), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input}"),
                (Err(message), Err(fragment)) => {
                    assert!(message.contains(fragment), "{input}: {message}")
                }
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
