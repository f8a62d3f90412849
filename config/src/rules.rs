//! Per-service rules without code: the cache key (`[services.cache_key]`), the ordered rules
//! (`[[services.rules]]`: conditions, then cache, header, redirect and deny actions), HTTP→HTTPS
//! and HSTS, and custom error pages (`[[services.error_pages]]`). The file form only; the edge
//! node compiles it once per config version (`route::rules`), and `validate::rules` checks it.
//!
//! Evaluation, as the node does it in the route phase: the service's `https_redirect` first,
//! then the rules in order, **first match wins**: the first rule whose every condition holds
//! applies all its actions, and no later rule is looked at (CloudFront's cache behaviors work
//! the same way). A request no rule matches gets the service's defaults.

pub mod glob;
pub mod template;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub use glob::Glob;
pub use template::{Piece, Template};

use crate::net::Cidr;
use crate::units::option_duration;

/// Most rules in one service.
pub const MAX_RULES: usize = 256;
/// Most entries in one list of a rule (globs, methods, fields, networks, header operations).
pub const MAX_LIST: usize = 32;
/// Most headers or cookies added to a cache key.
pub const MAX_KEY_FIELDS: usize = 8;
/// Most error pages in one service.
pub const MAX_ERROR_PAGES: usize = 16;
/// Largest body of an error page or a deny rule, in bytes.
pub const MAX_PAGE_BYTES: usize = 64 * 1024;

/// `[services.cache_key]`, or a rule's `cache.key`: what of a request names its object. The
/// host (lower-case, without port) and the path are always in it. A request is forwarded to
/// the upstream with the query as the key has it (CloudFront's rule: what is not in the key is
/// not sent), so a stored object is always the answer to its key.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheKeyConfig {
    /// `"keep"` (as sent), `"ignore"` (no query at all), or `"sort"` (parameters sorted by name,
    /// then value, so `?b=1&a=2` and `?a=2&b=1` are one object). Default: `"keep"`.
    #[serde(default)]
    pub query: QueryMode,
    /// Only parameters whose name matches one of these globs stay. Default: all; at most 32.
    #[serde(default)]
    pub query_include: Vec<Glob>,
    /// Parameters whose name matches one of these globs are removed (`"utm_*"`, `"fbclid"`).
    /// Default: none; at most 32.
    #[serde(default)]
    pub query_exclude: Vec<Glob>,
    /// Request header values added to the key, by name (`"accept-language"`). Default: none;
    /// at most 8. Each value counts up to 256 bytes.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Cookie values added to the key, by name (`"currency"`). Default: none; at most 8.
    #[serde(default)]
    pub cookies: Vec<String>,
}

/// `cache_key.query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryMode {
    #[default]
    Keep,
    Ignore,
    Sort,
}

/// `[[services.rules]]`: conditions (`match`, all must hold; none: every request) and actions.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A label for logs, the `Outpost-Rule` debug header and errors. Default: `rules[N]`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub when: MatchConfig,
    #[serde(default)]
    pub cache: Option<CacheRuleConfig>,
    /// Fields changed on the request before it goes on (function, cache, upstream).
    #[serde(default)]
    pub request_headers: HeaderOps,
    /// Fields changed on the response before it goes to the client.
    #[serde(default)]
    pub response_headers: HeaderOps,
    /// Answer with a redirect instead of serving.
    #[serde(default)]
    pub redirect: Option<RedirectConfig>,
    /// Answer with an error instead of serving.
    #[serde(default)]
    pub deny: Option<DenyConfig>,
}

/// A rule's `match`: every condition given must hold; within a list, any entry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Host globs (`"*.shop.example"`), compared lower-case.
    #[serde(default)]
    pub hosts: Vec<Glob>,
    /// Path globs (`"/static/*"` is a prefix, `"*.css"` a suffix); the path without the query,
    /// as sent (not percent-decoded).
    #[serde(default)]
    pub paths: Vec<Glob>,
    /// Methods (`"GET"`, `"POST"`), upper-case.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Query parameters; all must hold.
    #[serde(default)]
    pub query: Vec<FieldMatch>,
    /// Request header fields; all must hold.
    #[serde(default)]
    pub headers: Vec<FieldMatch>,
    /// Cookies; all must hold.
    #[serde(default)]
    pub cookies: Vec<FieldMatch>,
    /// The client's address is in one of these networks.
    #[serde(default)]
    pub client_ips: Vec<Cidr>,
    /// `"http"` or `"https"`: how the request reached the node. Default: either.
    #[serde(default)]
    pub scheme: Option<SchemeMatch>,
}

/// `match.scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemeMatch {
    Http,
    Https,
}

/// A named field (query parameter, header, cookie) that must be present, and when `value` is
/// given, have a value matching it (the first one, as sent).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMatch {
    pub name: String,
    #[serde(default)]
    pub value: Option<Glob>,
    /// Match when the field is absent (or its value does not match) instead. Default: false.
    #[serde(default)]
    pub not: bool,
}

/// A rule's `cache`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRuleConfig {
    /// How long the edge keeps the response (Cloudflare's Edge TTL). With
    /// `origin_cache_control = "respect"`, only for responses that carry no lifetime of their
    /// own; with `"override"`, whatever the origin said. Default: none.
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub edge_ttl: Option<Duration>,
    /// `Cache-Control: max-age` sent to the client instead of the origin's (Browser TTL).
    /// Default: none (the origin's field goes as it is).
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub browser_ttl: Option<Duration>,
    /// Neither look up nor store: every request goes to the upstream. Default: false.
    #[serde(default)]
    pub bypass: bool,
    /// `"respect"` or `"override"`; see `edge_ttl`. Default: `"respect"`.
    #[serde(default)]
    pub origin_cache_control: OriginCacheControl,
    /// `stale-while-revalidate` given to responses stored by `edge_ttl`. Default: none.
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error` given to responses stored by `edge_ttl`. Default: none.
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    pub stale_if_error: Option<Duration>,
    /// The cache key for requests this rule matches, instead of `[services.cache_key]`.
    #[serde(default)]
    pub key: Option<CacheKeyConfig>,
}

/// `cache.origin_cache_control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginCacheControl {
    #[default]
    Respect,
    Override,
}

/// Header operations, applied in this order: `remove`, `set` (replaces), `append`. At most 32
/// of each. Names are checked as field names; framing and hop-by-hop fields (`host`,
/// `content-length`, `transfer-encoding`, `connection`, ...) cannot be changed.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    #[serde(default)]
    pub set: BTreeMap<String, Template>,
    #[serde(default)]
    pub append: BTreeMap<String, Template>,
    #[serde(default)]
    pub remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.append.is_empty() && self.remove.is_empty()
    }
}

/// A rule's `redirect`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// 301, 302, 303, 307 or 308. Default: 301.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
    /// The `Location`, a template: `"https://www.shop.example{path}"`, `"/new{path}"`.
    pub to: Template,
    /// `"keep"`: the request's query is appended to the target (after the target's own, with
    /// `&`); `"drop"`: it is not. Default: `"keep"`.
    #[serde(default)]
    pub query: QueryKeep,
}

/// `redirect.query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryKeep {
    #[default]
    Keep,
    Drop,
}

fn default_redirect_status() -> u16 {
    301
}

/// A rule's `deny`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyConfig {
    /// 403, 404, 410 or 451. Default: 403.
    #[serde(default = "default_deny_status")]
    pub status: u16,
    /// The body. Default: the node's short error text; at most 64KiB.
    #[serde(default)]
    pub body: Option<String>,
    /// Default: `"text/plain; charset=utf-8"`.
    #[serde(default = "default_text_type")]
    pub content_type: String,
}

fn default_deny_status() -> u16 {
    403
}

fn default_text_type() -> String {
    "text/plain; charset=utf-8".to_owned()
}

fn default_html_type() -> String {
    "text/html; charset=utf-8".to_owned()
}

/// `[services.hsts]`: `Strict-Transport-Security` (RFC 6797) on every response sent over TLS
/// (never over plain HTTP, §7.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HstsConfig {
    /// `max-age`. Required; at least 1s.
    #[serde(deserialize_with = "crate::units::duration::deserialize")]
    pub max_age: Duration,
    /// Default: false.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Default: false.
    #[serde(default)]
    pub preload: bool,
}

/// `[[services.error_pages]]`: a page served instead of the node's short error text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorPageConfig {
    /// `"5xx"`, `"4xx"`, or one status (`"502"`); a status beats its class.
    pub status: String,
    /// The page. At most 64KiB.
    pub body: String,
    /// Default: `"text/html; charset=utf-8"`.
    #[serde(default = "default_html_type")]
    pub content_type: String,
    /// Also replace the body of the upstream's own responses with this status (5xx only).
    /// Default: false (only the node's own errors: unreachable upstream, timeouts, limits).
    #[serde(default)]
    pub upstream: bool,
}

impl ErrorPageConfig {
    /// Which statuses `status` covers: `(low, high)` inclusive, or `None` when it is not valid.
    pub fn range(&self) -> Option<(u16, u16)> {
        match self.status.as_str() {
            "4xx" => Some((400, 499)),
            "5xx" => Some((500, 599)),
            s => s.parse::<u16>().ok().filter(|n| (400..=599).contains(n)).map(|n| (n, n)),
        }
    }
}
