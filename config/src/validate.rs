//! Checks that need more than one field, or bounds that types cannot express. Every problem is
//! collected, each with its field path and what would be valid. One service's checks are in
//! `service` (its upstreams in `upstreams`, its `[services.compression]` table in
//! `compression`); [`validate_service`] runs them on a service alone, as the control plane
//! receives it.

mod compression;
mod control;
mod function;
mod rules;
mod service;
mod upstreams;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::error::{ConfigError, ConfigErrors};
use crate::host::HostPattern;
use crate::node::{CacheConfig, LimitsConfig, ListenConfig, LogConfig, NodeConfig, TlsConfig, UpstreamConfig};
use crate::service::ServiceConfig;
use crate::units::ByteSize;

/// Checks a parsed config whose relative paths are already resolved; certificate and CA files
/// must exist and be readable. Returns every problem found.
pub fn validate(config: &NodeConfig, file: &Path) -> Result<(), ConfigErrors> {
    let scope = Scope::Node { cache: &config.cache, functions: &config.functions };
    let mut report = Report { file, scope, errors: Vec::new() };
    check_node_name(&mut report, &config.node.name);
    check_placement(&mut report, &config.node);
    check_listen(&mut report, &config.listen, &config.tls, config.control.is_some());
    check_tls(&mut report, &config.tls);
    check_cache(&mut report, &config.cache);
    check_limits(&mut report, &config.limits);
    check_upstream(&mut report, &config.upstream);
    check_log(&mut report, &config.log);
    function::check_engine(&mut report, &config.functions);
    check_services(&mut report, &config.services);
    if let Some(control) = &config.control {
        control::check(&mut report, control);
    }
    report.finish()
}

/// Checks one `[[services]]` table on its own, as the control plane receives it from a tenant:
/// every check of [`validate`] that needs nothing but the service. Paths are relative to the
/// service (`origin`, `compression.prefer[1]`) and the errors name no file.
///
/// Left to the node that loads the service, because they depend on it: that `origin_ca` is a
/// readable file there, that `max_object_size` is within its `cache.max_object_size`, and that
/// no other service of its config has the same name or a host of this one.
///
/// ```
/// let service: outpost_config::ServiceConfig = toml::from_str(
///     "name = \"shop\"\nhosts = [\"shop.example\"]\norigin = \"https://origin.shop.example\"\n\
///      default_ttl = \"0s\"\n[retry]\nmax_retries = 11\n",
/// )?;
/// let errors = outpost_config::validate_service(&service).expect_err("two problems");
/// let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
/// assert_eq!(paths, ["retry.max_retries", "default_ttl"]);
/// assert_eq!(errors.to_string().lines().next(), Some("retry.max_retries: 11 is out of range; use 0 to 10"));
/// # Ok::<(), toml::de::Error>(())
/// ```
pub fn validate_service(service: &ServiceConfig) -> Result<(), ConfigErrors> {
    let mut report = Report { file: Path::new(""), scope: Scope::Standalone, errors: Vec::new() };
    service::check(&mut report, "", service);
    report.finish()
}

/// Checks a set of services that will run together on one node, each on its own and across
/// the set (unique names, each host pattern owned by one service), as a node does when it merges
/// its file's services with the control plane's. Paths are `services[i].…` within `services`.
pub fn validate_service_set(services: &[ServiceConfig]) -> Result<(), ConfigErrors> {
    let mut report = Report { file: Path::new(""), scope: Scope::Standalone, errors: Vec::new() };
    check_services(&mut report, services);
    report.finish()
}

struct Report<'a> {
    file: &'a Path,
    scope: Scope<'a>,
    errors: Vec<ConfigError>,
}

/// What a check can see besides the field it checks.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// A node's whole config: its cache bounds, its function engine, and its files on this
    /// machine.
    Node { cache: &'a CacheConfig, functions: &'a crate::function::FunctionsConfig },
    /// One service on its own, away from the node that will run it (the control plane).
    Standalone,
}

impl Report<'_> {
    fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() { Ok(()) } else { Err(ConfigErrors(self.errors)) }
    }

    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, path, message));
    }

    fn size(&mut self, path: &str, value: ByteSize, min: ByteSize, max: Option<ByteSize>) {
        if value < min {
            self.error(path, format!("{value} is below the minimum; use at least {min}"));
        }
        if let Some(max) = max.filter(|max| value > *max) {
            self.error(path, format!("{value} is above the maximum; use at most {max}"));
        }
    }

    fn count(&mut self, path: &str, value: usize, min: usize, max: usize) {
        if !(min..=max).contains(&value) {
            self.error(path, format!("{value} is out of range; use {min} to {max}"));
        }
    }

    fn positive(&mut self, path: &str, value: Duration) {
        if value.is_zero() {
            self.error(path, "must be more than 0; write a duration such as \"10s\"");
        }
    }

    /// A file on the node. A standalone service is checked away from the node, where the file
    /// does not matter: the node checks it when it loads the service.
    fn readable_file(&mut self, path: &str, file: &Path) {
        if matches!(self.scope, Scope::Standalone) {
            return;
        }
        const VALID: &str = "expected a readable file (relative paths are resolved against the \
                             config file's directory)";
        if file.as_os_str().is_empty() {
            self.error(path, format!("empty path; {VALID}"));
            return;
        }
        // metadata first: opening a FIFO would block.
        let problem = match std::fs::metadata(file) {
            Ok(meta) if !meta.is_file() => Some("not a regular file".to_owned()),
            Ok(_) => std::fs::File::open(file).err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(problem) = problem {
            self.error(path, format!("cannot read \"{}\": {problem}; {VALID}", file.display()));
        }
    }
}

fn check_node_name(report: &mut Report<'_>, name: &str) {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
        report.error("node.name", format!("\"{name}\" is not a valid node name; use 1 to 64 of A-Z a-z 0-9 . _ -"));
    }
}

/// `node.pop` and `node.region` go into DNS answers' bookkeeping, metrics labels and a request
/// header for functions: keep them to the node-name alphabet.
fn check_placement(report: &mut Report<'_>, node: &crate::node::NodeSection) {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    for (field, value) in [("node.pop", &node.pop), ("node.region", &node.region)] {
        if let Some(v) = value
            && (v.is_empty() || v.len() > 64 || !v.chars().all(valid))
        {
            report.error(field, format!("\"{v}\" is not valid; use 1 to 64 of A-Z a-z 0-9 . _ -"));
        }
    }
}

fn check_listen(report: &mut Report<'_>, listen: &ListenConfig, tls: &TlsConfig, control: bool) {
    if listen.http.is_none() && listen.https.is_none() {
        report.error("listen", "no client listener; set listen.http (e.g. \"0.0.0.0:80\") and/or listen.https");
    }
    // With [control], the control plane's certificates may be the only ones.
    if listen.https.is_some() && tls.certificates.is_empty() && !control {
        report.error(
            "listen.https",
            "the HTTPS listener needs a certificate; add a [[tls.certificates]] entry (or follow a control \
             plane with [control], whose certificates it serves) or remove listen.https",
        );
    }
    if listen.http3 && listen.https.is_none() {
        report.error(
            "listen.http3",
            "HTTP/3 runs on the UDP port of the HTTPS listener; set listen.https (e.g. \"0.0.0.0:443\") \
             with a [[tls.certificates]] entry, or set listen.http3 = false",
        );
    }
    // http3 with https but no certificate: the listen.https error above already says so.
    if listen.http3 && listen.alt_svc_max_age.is_zero() {
        report.error("listen.alt_svc_max_age", "must be more than 0s (e.g. \"24h\")");
    }
    if !(1..=1_000_000).contains(&listen.quic_retry_threshold) {
        report.error(
            "listen.quic_retry_threshold",
            format!("must be 1 to 1000000 handshakes in progress, got {}", listen.quic_retry_threshold),
        );
    }
    report.count("listen.trusted_networks", listen.trusted_networks.len(), 0, crate::MAX_TRUSTED_NETWORKS);
    check_admin(report, listen);
    let listeners =
        [("listen.http", listen.http), ("listen.https", listen.https), ("listen.admin", Some(listen.admin))];
    for (i, (name, addr)) in listeners.iter().enumerate() {
        let Some(addr) = addr else { continue };
        let earlier = listeners[..i].iter().find_map(|(other, a)| a.filter(|a| collide(*a, *addr)).map(|a| (other, a)));
        if let Some((other, other_addr)) = earlier {
            report.error(*name, format!("{addr} overlaps {other} ({other_addr}); give each listener its own port"));
        }
    }
}

/// The admin listener: loopback unless allowed, its token, its connection cap.
fn check_admin(report: &mut Report<'_>, listen: &ListenConfig) {
    let token = listen.admin_token.is_some() || listen.admin_token_file.is_some();
    if !listen.admin.ip().to_canonical().is_loopback() && !listen.admin_allow_public {
        report.error(
            "listen.admin",
            format!(
                "{} is not a loopback address; use 127.0.0.1:PORT or [::1]:PORT, or set \
                 listen.admin_allow_public = true (with an admin token)",
                listen.admin
            ),
        );
    }
    if listen.admin_allow_public && !token {
        report.error(
            "listen.admin_allow_public",
            "a public admin listener needs a token; set listen.admin_token_file (or listen.admin_token)",
        );
    }
    if listen.admin_token.is_some() && listen.admin_token_file.is_some() {
        report.error("listen.admin_token", "set one of listen.admin_token and listen.admin_token_file, not both");
    }
    if let Some(problem) = listen.admin_token.as_deref().and_then(|t| crate::node::admin_token_problem(t).err()) {
        report.error("listen.admin_token", problem);
    }
    if let Some(file) = &listen.admin_token_file {
        report.readable_file("listen.admin_token_file", file);
    }
    report.count("listen.admin_max_connections", listen.admin_max_connections, 1, 10_000);
}

/// Whether two listeners would fight over one port. Port 0 never collides.
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn check_tls(report: &mut Report<'_>, tls: &TlsConfig) {
    if let Some(host) = &tls.default_host
        && !matches!(host.parse::<crate::HostPattern>(), Ok(crate::HostPattern::Exact(_)))
    {
        report.error(
            "tls.default_host",
            format!("\"{host}\" is not a host name; name the host whose certificate clients without SNI get, e.g. \"shop.example\""),
        );
    }
    for (i, certificate) in tls.certificates.iter().enumerate() {
        let at = format!("tls.certificates[{i}]");
        if certificate.hosts.is_empty() {
            report.error(
                format!("{at}.hosts"),
                "empty; list the names this certificate serves, e.g. [\"shop.example\", \"*.shop.example\"]",
            );
        }
        report.readable_file(&format!("{at}.cert"), &certificate.cert);
        report.readable_file(&format!("{at}.key"), &certificate.key);
    }
}

fn check_cache(report: &mut Report<'_>, cache: &CacheConfig) {
    report.size("cache.memory", cache.memory, ByteSize::mib(1), None);
    report.size("cache.disk", cache.disk, ByteSize::mib(16), None);
    if cache.disk_path.as_os_str().is_empty() {
        report.error("cache.disk_path", "empty; give a directory, e.g. \"/var/cache/outpost\"");
    }
    let quarter = ByteSize(cache.disk.as_u64() / 4);
    if cache.max_object_size < ByteSize::kib(1) {
        report.error(
            "cache.max_object_size",
            format!("{} is below the minimum; use at least 1KiB", cache.max_object_size),
        );
    } else if cache.max_object_size > quarter {
        report.error(
            "cache.max_object_size",
            format!(
                "{} is more than a quarter of cache.disk ({}); use at most {quarter} or raise cache.disk",
                cache.max_object_size, cache.disk
            ),
        );
    }
    if !(0.0..=1.0).contains(&cache.heuristic_fraction) {
        report.error(
            "cache.heuristic_fraction",
            format!("{} is out of range; use 0.0 to 1.0 (e.g. 0.1)", cache.heuristic_fraction),
        );
    }
    if cache.max_retention < Duration::from_secs(1) {
        report.error("cache.max_retention", "must be at least 1s, e.g. \"30d\"");
    }
    report.count("cache.max_purge_records", cache.max_purge_records, 1, 10_000_000);
    report.size("cache.buffer_before_answer", cache.buffer_before_answer, ByteSize(0), Some(ByteSize::mib(16)));
}

fn check_limits(report: &mut Report<'_>, limits: &LimitsConfig) {
    let header_bytes = (ByteSize::kib(8), Some(ByteSize::mib(1)));
    report.size("limits.max_header_bytes", limits.max_header_bytes, header_bytes.0, header_bytes.1);
    report.count("limits.max_headers", limits.max_headers, 8, 1000);
    report.count("limits.max_connections", limits.max_connections, 1, 1_000_000);
    report.positive("limits.header_read_timeout", limits.header_read_timeout);
    report.positive("limits.keepalive_timeout", limits.keepalive_timeout);
    report.positive("limits.upgrade_timeout", limits.upgrade_timeout);
    let streams = usize::try_from(limits.max_concurrent_streams).unwrap_or(usize::MAX);
    report.count("limits.max_concurrent_streams", streams, 1, 10_000);
    report.count("limits.max_concurrent_transcodes", limits.max_concurrent_transcodes, 1, 1024);
    report.count("limits.max_queued_transcodes", limits.max_queued_transcodes, 0, 100_000);
    report.count("limits.max_concurrent_encodes", limits.max_concurrent_encodes, 1, 10_000);
    report.size("limits.max_codec_memory", limits.max_codec_memory, ByteSize::mib(16), Some(ByteSize::gib(64)));
    for (i, text) in limits.tenant_upstream_allow.iter().enumerate() {
        if let Err(why) = text.parse::<crate::net::Cidr>() {
            report.error(format!("limits.tenant_upstream_allow[{i}]"), why);
        }
    }
}

fn check_upstream(report: &mut Report<'_>, upstream: &UpstreamConfig) {
    report.positive("upstream.connect_timeout", upstream.connect_timeout);
    report.positive("upstream.first_byte_timeout", upstream.first_byte_timeout);
    report.positive("upstream.between_bytes_timeout", upstream.between_bytes_timeout);
    report.positive("upstream.total_timeout", upstream.total_timeout);
    report.positive("upstream.pool_idle_timeout", upstream.pool_idle_timeout);
    report.count("upstream.pool_max_idle_per_host", upstream.pool_max_idle_per_host, 0, 10_000);
    report.count("upstream.h2_max_connections", upstream.h2_max_connections, 1, 1024);
    report.size("upstream.replay_body_max", upstream.replay_body_max, ByteSize(0), Some(ByteSize::mib(1)));
}

fn check_log(report: &mut Report<'_>, log: &LogConfig) {
    if let Err(why) = check_filter(&log.level) {
        report.error("log.level", why);
    }
    report.size("log.access_buffer", log.access_buffer, ByteSize::kib(1), Some(ByteSize::mib(16)));
    // The queue holds whole buffers: one smaller than a buffer could never take one.
    report.size("log.access_queue", log.access_queue, log.access_buffer.max(ByteSize::kib(1)), Some(ByteSize::gib(1)));
    if log.access_flush < Duration::from_millis(1) || log.access_flush > Duration::from_secs(60) {
        report.error(
            "log.access_flush",
            format!("{:?} is out of range; write a duration from \"1ms\" to \"1m\"", log.access_flush),
        );
    }
}

/// A light check of a `tracing` `EnvFilter` directive list: not empty, and every `=level`
/// names a level. Targets are not checked; the node's filter parser has the last word.
fn check_filter(filter: &str) -> Result<(), String> {
    const VALID: &str = "use a level (trace, debug, info, warn, error, off) or directives such \
                         as \"info,edge_node::cache=debug\"";
    if filter.trim().is_empty() {
        return Err(format!("empty; {VALID}"));
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let mut depth = 0i32;
        let mut last_eq = None;
        for (i, c) in directive.char_indices() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                '=' if depth == 0 => last_eq = Some(i),
                _ => {}
            }
        }
        if let Some(level) = last_eq.map(|i| &directive[i + 1..]) {
            let known =
                ["trace", "debug", "info", "warn", "error", "off"].iter().any(|l| l.eq_ignore_ascii_case(level))
                    || matches!(level, "0" | "1" | "2" | "3" | "4" | "5");
            if !known {
                return Err(format!("\"{level}\" in \"{directive}\" is not a level; {VALID}"));
            }
        }
    }
    Ok(())
}

fn check_services(report: &mut Report<'_>, services: &[ServiceConfig]) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut owners: HashMap<&HostPattern, usize> = HashMap::new();
    for (i, service) in services.iter().enumerate() {
        let at = format!("services[{i}].");
        service::check(report, &at, service);
        // What one service cannot know alone: names and hosts are unique across services.
        if let Some(first) = names.get(service.name.as_str()).copied() {
            report.error(
                format!("{at}name"),
                format!("\"{}\" is already the name of services[{first}]; service names must be unique", service.name),
            );
        } else {
            names.insert(&service.name, i);
        }
        for (j, host) in service.hosts.iter().enumerate() {
            match owners.get(host).copied() {
                None => {
                    owners.insert(host, i);
                }
                // Listed twice in this service: `service::check` said so.
                Some(owner) if owner == i => {}
                Some(owner) => report.error(
                    format!("{at}hosts[{j}]"),
                    format!(
                        "\"{host}\" is already a host of service \"{}\" (services[{owner}]); a host \
                         pattern may belong to one service only",
                        services[owner].name
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A file in this crate's directory, so that `cert = "Cargo.toml"` names a readable file.
    fn file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("edge.toml")
    }

    const NODE: &str = "[node]\nname = \"edge-1\"\n";
    const LISTEN: &str = "[listen]\nhttp = \"127.0.0.1:0\"\n";
    const CERT: &str =
        "[[tls.certificates]]\nhosts = [\"shop.example\"]\ncert = \"Cargo.toml\"\nkey = \"Cargo.toml\"\n";
    const SHOP: &str =
        "[[services]]\nname = \"shop\"\nhosts = [\"shop.example\"]\norigin = \"https://origin.shop.example\"\n";

    fn problems(text: &str) -> Vec<(String, String)> {
        match crate::parse(text, &file()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn each_check_names_its_field_and_what_is_valid() {
        let long = "a".repeat(65);
        let cases: Vec<(String, &str, &str)> = vec![
            (format!("[node]\nname = \"edge 1\"\n{LISTEN}"), "node.name", "use 1 to 64 of A-Z a-z 0-9 . _ -"),
            (format!("[node]\nname = \"\"\n{LISTEN}"), "node.name", "not a valid node name"),
            (format!("[node]\nname = \"{long}\"\n{LISTEN}"), "node.name", "not a valid node name"),
            (format!("[node]\nname = \"e1\"\npop = \"f r a\"\n{LISTEN}"), "node.pop", "use 1 to 64 of"),
            (format!("[node]\nname = \"e1\"\nregion = \"\"\n{LISTEN}"), "node.region", "is not valid"),
            (format!("{NODE}[listen]\n"), "listen", "no client listener; set listen.http"),
            (format!("{NODE}[listen]\nhttps = \"127.0.0.1:0\"\n"), "listen.https", "add a [[tls.certificates]] entry"),
            (
                format!("{NODE}{LISTEN}http3 = true\n"),
                "listen.http3",
                "UDP port of the HTTPS listener; set listen.https",
            ),
            (
                format!("{NODE}[listen]\nhttps = \"127.0.0.1:0\"\nhttp3 = true\nalt_svc_max_age = \"0s\"\n{CERT}"),
                "listen.alt_svc_max_age",
                "must be more than 0s",
            ),
            (
                format!("{NODE}{LISTEN}quic_retry_threshold = 0\n"),
                "listen.quic_retry_threshold",
                "must be 1 to 1000000 handshakes in progress, got 0",
            ),
            (format!("{NODE}{LISTEN}quic_retry = \"sometimes\"\n"), "listen.quic_retry", "unknown variant"),
            (
                format!("{NODE}{LISTEN}trusted_networks = [\"10.0.0.1/8\"]\n"),
                "listen.trusted_networks",
                "has host bits set; the network is 10.0.0.0/8",
            ),
            (
                format!("{NODE}{LISTEN}admin = \"0.0.0.0:9090\"\n"),
                "listen.admin",
                "0.0.0.0:9090 is not a loopback address",
            ),
            (format!("{NODE}{LISTEN}admin = \"[::]:9090\"\n"), "listen.admin", "admin_allow_public = true"),
            (
                format!("{NODE}[listen]\nhttp = \"127.0.0.1:9090\"\n"),
                "listen.admin",
                "127.0.0.1:9090 overlaps listen.http (127.0.0.1:9090)",
            ),
            (
                format!("{NODE}[listen]\nhttp = \"0.0.0.0:8080\"\nhttps = \"127.0.0.1:8080\"\n{CERT}"),
                "listen.https",
                "overlaps listen.http",
            ),
            (
                format!(
                    "{NODE}{LISTEN}[[tls.certificates]]\nhosts = []\ncert = \"Cargo.toml\"\nkey = \"Cargo.toml\"\n"
                ),
                "tls.certificates[0].hosts",
                "list the names this certificate serves",
            ),
            (
                format!(
                    "{NODE}{LISTEN}[[tls.certificates]]\nhosts = [\"a\"]\ncert = \"missing.pem\"\nkey = \"Cargo.toml\"\n"
                ),
                "tls.certificates[0].cert",
                "missing.pem\": No such file",
            ),
            (
                format!("{NODE}{LISTEN}[[tls.certificates]]\nhosts = [\"a\"]\ncert = \"Cargo.toml\"\nkey = \"src\"\n"),
                "tls.certificates[0].key",
                "not a regular file; expected a readable file",
            ),
            (
                format!("{NODE}{LISTEN}[[tls.certificates]]\nhosts = [\"a\"]\ncert = \"\"\nkey = \"Cargo.toml\"\n"),
                "tls.certificates[0].cert",
                "empty path",
            ),
            (
                format!("{NODE}{LISTEN}[cache]\nmemory = \"512KiB\"\n"),
                "cache.memory",
                "512KiB is below the minimum; use at least 1MiB",
            ),
            (
                format!("{NODE}{LISTEN}[cache]\ndisk = \"8MiB\"\nmax_object_size = \"1MiB\"\n"),
                "cache.disk",
                "use at least 16MiB",
            ),
            (format!("{NODE}{LISTEN}[cache]\ndisk_path = \"\"\n"), "cache.disk_path", "give a directory"),
            (format!("{NODE}{LISTEN}[cache]\nmax_object_size = 512\n"), "cache.max_object_size", "use at least 1KiB"),
            (
                format!("{NODE}{LISTEN}[cache]\nmax_object_size = \"300MiB\"\n"),
                "cache.max_object_size",
                "300MiB is more than a quarter of cache.disk (1GiB); use at most 256MiB or raise cache.disk",
            ),
            (
                format!("{NODE}{LISTEN}[cache]\nheuristic_fraction = 1.5\n"),
                "cache.heuristic_fraction",
                "use 0.0 to 1.0",
            ),
            (
                format!("{NODE}{LISTEN}[cache]\nheuristic_fraction = -0.1\n"),
                "cache.heuristic_fraction",
                "use 0.0 to 1.0",
            ),
            (
                format!("{NODE}{LISTEN}[cache]\nheuristic_fraction = nan\n"),
                "cache.heuristic_fraction",
                "use 0.0 to 1.0",
            ),
            (format!("{NODE}{LISTEN}[cache]\nmax_retention = \"500ms\"\n"), "cache.max_retention", "at least 1s"),
            (
                format!("{NODE}{LISTEN}[cache]\nmax_purge_records = 0\n"),
                "cache.max_purge_records",
                "0 is out of range; use 1 to 10000000",
            ),
            (
                format!("{NODE}{LISTEN}[cache]\nbuffer_before_answer = \"17MiB\"\n"),
                "cache.buffer_before_answer",
                "use at most 16MiB",
            ),
            (
                format!("{NODE}{LISTEN}[limits]\nmax_header_bytes = \"4KiB\"\n"),
                "limits.max_header_bytes",
                "use at least 8KiB",
            ),
            (
                format!("{NODE}{LISTEN}[limits]\nmax_header_bytes = \"2MiB\"\n"),
                "limits.max_header_bytes",
                "2MiB is above the maximum; use at most 1MiB",
            ),
            (format!("{NODE}{LISTEN}[limits]\nmax_headers = 7\n"), "limits.max_headers", "use 8 to 1000"),
            (format!("{NODE}{LISTEN}[limits]\nmax_headers = 1001\n"), "limits.max_headers", "use 8 to 1000"),
            (format!("{NODE}{LISTEN}[limits]\nmax_connections = 0\n"), "limits.max_connections", "use 1 to 1000000"),
            (
                format!("{NODE}{LISTEN}[limits]\ntenant_upstream_allow = [\"127.0.0.0/8\", \"10.0.0.1/8\"]\n"),
                "limits.tenant_upstream_allow[1]",
                "has host bits set; the network is 10.0.0.0/8",
            ),
            (
                format!("{NODE}[listen]\nhttp = \"127.0.0.1:0\"\nadmin_token = \"short\"\n"),
                "listen.admin_token",
                "5 characters; use 16 to 4096",
            ),
            (
                format!("{NODE}[listen]\nhttp = \"127.0.0.1:0\"\nadmin_token = \"with a space in it\"\n"),
                "listen.admin_token",
                "only visible ASCII characters",
            ),
            (
                format!(
                    "{NODE}[listen]\nhttp = \"127.0.0.1:0\"\nadmin_token = \"0123456789abcdef\"\n\
                     admin_token_file = \"Cargo.toml\"\n"
                ),
                "listen.admin_token",
                "set one of listen.admin_token and listen.admin_token_file, not both",
            ),
            (
                format!("{NODE}[listen]\nhttp = \"127.0.0.1:0\"\nadmin_token_file = \"missing-token\"\n"),
                "listen.admin_token_file",
                "cannot read",
            ),
            (
                format!(
                    "{NODE}[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"0.0.0.0:9090\"\nadmin_allow_public = true\n"
                ),
                "listen.admin_allow_public",
                "a public admin listener needs a token",
            ),
            (
                format!("{NODE}[listen]\nhttp = \"127.0.0.1:0\"\nadmin_max_connections = 0\n"),
                "listen.admin_max_connections",
                "use 1 to 10000",
            ),
            (
                format!("{NODE}{LISTEN}[limits]\nheader_read_timeout = \"0s\"\n"),
                "limits.header_read_timeout",
                "must be more than 0",
            ),
            (
                format!("{NODE}{LISTEN}[limits]\nkeepalive_timeout = \"0s\"\n"),
                "limits.keepalive_timeout",
                "must be more than 0",
            ),
            (
                format!("{NODE}{LISTEN}[limits]\nmax_concurrent_streams = 0\n"),
                "limits.max_concurrent_streams",
                "use 1 to 10000",
            ),
            (
                format!("{NODE}{LISTEN}[limits]\nmax_concurrent_streams = 10001\n"),
                "limits.max_concurrent_streams",
                "use 1 to 10000",
            ),
            (
                format!("{NODE}{LISTEN}[limits]\nmax_concurrent_transcodes = 0\n"),
                "limits.max_concurrent_transcodes",
                "0 is out of range; use 1 to 1024",
            ),
            (
                format!("{NODE}{LISTEN}[limits]\nmax_concurrent_encodes = 0\n"),
                "limits.max_concurrent_encodes",
                "use 1 to 10000",
            ),
            (format!("{NODE}{LISTEN}[limits]\nmax_codec_memory = \"1MiB\"\n"), "limits.max_codec_memory", "16MiB"),
            (
                format!("{NODE}{LISTEN}[limits]\nmax_queued_transcodes = 100001\n"),
                "limits.max_queued_transcodes",
                "use 0 to 100000",
            ),
            (
                format!("{NODE}{LISTEN}[upstream]\nconnect_timeout = \"0ms\"\n"),
                "upstream.connect_timeout",
                "must be more than 0",
            ),
            (
                format!("{NODE}{LISTEN}[upstream]\nfirst_byte_timeout = \"0s\"\n"),
                "upstream.first_byte_timeout",
                "must be more than 0",
            ),
            (
                format!("{NODE}{LISTEN}[upstream]\nbetween_bytes_timeout = \"0s\"\n"),
                "upstream.between_bytes_timeout",
                "must be more than 0",
            ),
            (
                format!("{NODE}{LISTEN}[upstream]\npool_idle_timeout = \"0s\"\n"),
                "upstream.pool_idle_timeout",
                "must be more than 0",
            ),
            (
                format!("{NODE}{LISTEN}[upstream]\npool_max_idle_per_host = 10001\n"),
                "upstream.pool_max_idle_per_host",
                "use 0 to 10000",
            ),
            (
                format!("{NODE}{LISTEN}[upstream]\nh2_max_connections = 0\n"),
                "upstream.h2_max_connections",
                "use 1 to 1024",
            ),
            (
                format!("{NODE}{LISTEN}[upstream]\nreplay_body_max = \"2MiB\"\n"),
                "upstream.replay_body_max",
                "above the maximum; use at most 1MiB",
            ),
            (format!("{NODE}{LISTEN}[log]\nlevel = \"\"\n"), "log.level", "empty; use a level"),
            (
                format!("{NODE}{LISTEN}[log]\naccess_buffer = \"512B\"\n"),
                "log.access_buffer",
                "below the minimum; use at least 1KiB",
            ),
            (
                format!("{NODE}{LISTEN}[log]\naccess_buffer = \"32MiB\"\naccess_queue = \"64MiB\"\n"),
                "log.access_buffer",
                "above the maximum; use at most 16MiB",
            ),
            (
                format!("{NODE}{LISTEN}[log]\naccess_buffer = \"1MiB\"\naccess_queue = \"512KiB\"\n"),
                "log.access_queue",
                "below the minimum; use at least 1MiB",
            ),
            (
                format!("{NODE}{LISTEN}[log]\naccess_queue = \"2GiB\"\n"),
                "log.access_queue",
                "above the maximum; use at most 1GiB",
            ),
            (format!("{NODE}{LISTEN}[log]\naccess_flush = \"0s\"\n"), "log.access_flush", "from \"1ms\" to \"1m\""),
            (format!("{NODE}{LISTEN}[log]\naccess_flush = \"2m\"\n"), "log.access_flush", "from \"1ms\" to \"1m\""),
            (
                format!("{NODE}{LISTEN}[log]\nlevel = \"info,edge_node=loud\"\n"),
                "log.level",
                "\"loud\" in \"edge_node=loud\" is not a level",
            ),
            (
                format!(
                    "{NODE}{LISTEN}[[services]]\nname = \"Shop\"\nhosts = [\"s.example\"]\norigin = \"http://o\"\n"
                ),
                "services[0].name",
                "use 1 to 64 of a-z 0-9 _ -",
            ),
            (
                format!(
                    "{NODE}{LISTEN}{SHOP}[[services]]\nname = \"shop\"\nhosts = [\"b.example\"]\norigin = \"http://o\"\n"
                ),
                "services[1].name",
                "\"shop\" is already the name of services[0]; service names must be unique",
            ),
            (
                format!("{NODE}{LISTEN}[[services]]\nname = \"s\"\nhosts = []\norigin = \"http://o\"\n"),
                "services[0].hosts",
                "list the hosts this service answers for",
            ),
            (
                format!(
                    "{NODE}{LISTEN}{SHOP}[[services]]\nname = \"shop2\"\nhosts = [\"b.example\", \"Shop.Example\"]\norigin = \"http://o\"\n"
                ),
                "services[1].hosts[1]",
                "\"shop.example\" is already a host of service \"shop\" (services[0])",
            ),
            (
                format!(
                    "{NODE}{LISTEN}[[services]]\nname = \"s\"\nhosts = [\"*.s.example\", \"*.s.example\"]\norigin = \"http://o\"\n"
                ),
                "services[0].hosts[1]",
                "listed twice in this service",
            ),
            (
                format!(
                    "{NODE}{LISTEN}[[services]]\nname = \"s\"\nhosts = [\"s.example\"]\norigin = \"http://o\"\norigin_ca = \"Cargo.toml\"\n"
                ),
                "services[0].origin_ca",
                "only applies to an https origin, and http://o:80 is http",
            ),
            (format!("{NODE}{LISTEN}{SHOP}origin_ca = \"ca.pem\"\n"), "services[0].origin_ca", "cannot read"),
            (format!("{NODE}{LISTEN}{SHOP}default_ttl = \"0s\"\n"), "services[0].default_ttl", "must be more than 0"),
            (
                format!("{NODE}{LISTEN}{SHOP}max_object_size = \"128MiB\"\n"),
                "services[0].max_object_size",
                "128MiB is above cache.max_object_size (64MiB)",
            ),
            (
                format!("{NODE}{LISTEN}{SHOP}max_object_size = \"1B\"\n"),
                "services[0].max_object_size",
                "use at least 1KiB",
            ),
            (
                format!("{NODE}{LISTEN}{SHOP}connect_timeout = \"0s\"\n"),
                "services[0].connect_timeout",
                "must be more than 0",
            ),
            (
                format!("{NODE}{LISTEN}{SHOP}first_byte_timeout = \"0s\"\n"),
                "services[0].first_byte_timeout",
                "must be more than 0",
            ),
            (
                format!("{NODE}{LISTEN}{SHOP}between_bytes_timeout = \"0s\"\n"),
                "services[0].between_bytes_timeout",
                "must be more than 0",
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
    fn accepts_valid_edges() {
        let cases = [
            format!(
                "{NODE}{LISTEN}admin = \"0.0.0.0:9090\"\nadmin_allow_public = true\nadmin_token_file = \"Cargo.toml\"\n"
            ),
            format!(
                "{NODE}{LISTEN}admin = \"[::1]:0\"\nadmin_token = \"0123456789abcdef\"\nadmin_max_connections = 10000\n"
            ),
            format!("{NODE}{LISTEN}[limits]\ntenant_upstream_allow = [\"127.0.0.0/8\", \"::1\", \"10.20.0.0/16\"]\n"),
            format!("{NODE}[listen]\nhttp = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{CERT}"),
            format!("{NODE}[listen]\nhttp = \"[::]:8080\"\nadmin = \"127.0.0.1:8080\"\n"),
            format!(
                "{NODE}{LISTEN}[cache]\ndisk = \"16MiB\"\nmax_object_size = \"4MiB\"\nmemory = \"1MiB\"\nheuristic_fraction = 0.0\n"
            ),
            format!("{NODE}{LISTEN}[cache]\nheuristic_fraction = 1\nmax_purge_records = 10000000\n"),
            format!("{NODE}{LISTEN}[cache]\nbuffer_before_answer = 0\n"),
            format!("{NODE}{LISTEN}[cache]\nbuffer_before_answer = \"16MiB\"\n"),
            format!("{NODE}{LISTEN}[limits]\nmax_header_bytes = \"8KiB\"\nmax_headers = 8\ndrain_timeout = \"0s\"\n"),
            format!("{NODE}{LISTEN}[upstream]\npool_max_idle_per_host = 0\n"),
            format!("{NODE}{LISTEN}[limits]\nmax_concurrent_transcodes = 1024\nmax_queued_transcodes = 0\n"),
            format!(
                "{NODE}{LISTEN}[log]\nlevel = \"warn,edge_node::cache=DEBUG,edge_node[req{{id=1}}]=trace,hyper\"\n"
            ),
            // Hosts not covered by any certificate are allowed (a warning at most).
            format!(
                "{NODE}[listen]\nhttps = \"127.0.0.1:0\"\n{CERT}[[services]]\nname = \"blog\"\nhosts = [\"blog.example\"]\norigin = \"http://o\"\n"
            ),
            // An exact host and a wildcard over it may belong to different services.
            format!(
                "{NODE}{LISTEN}{SHOP}[[services]]\nname = \"any\"\nhosts = [\"*.shop.example\"]\norigin = \"http://o\"\n"
            ),
            format!("{NODE}{LISTEN}{SHOP}origin_ca = \"Cargo.toml\"\nmax_object_size = \"64MiB\"\n"),
        ];
        for text in cases {
            assert_eq!(problems(&text), Vec::new(), "{text}");
        }
    }

    #[test]
    fn reports_all_problems_at_once() {
        let text = format!(
            "[node]\nname = \"edge 1\"\n[listen]\nhttps = \"0.0.0.0:443\"\nadmin = \"0.0.0.0:9090\"\n\
             [cache]\nmemory = \"1KiB\"\n{SHOP}[[services]]\nname = \"shop\"\nhosts = [\"shop.example\"]\n\
             origin = \"http://o\"\n"
        );
        let paths: Vec<String> = problems(&text).into_iter().map(|(path, _)| path).collect();
        assert_eq!(
            paths,
            ["node.name", "listen.https", "listen.admin", "cache.memory", "services[1].name", "services[1].hosts[0]",]
        );
    }

    #[test]
    fn listeners_collide_only_on_the_same_port_and_family() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
        let cases = [
            ("127.0.0.1:80", "127.0.0.1:80", true),
            ("0.0.0.0:80", "127.0.0.1:80", true),
            ("127.0.0.1:80", "0.0.0.0:80", true),
            ("127.0.0.1:80", "127.0.0.2:80", false),
            ("127.0.0.1:80", "127.0.0.1:81", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
            ("[::]:80", "127.0.0.1:80", false),
            ("[::]:80", "[::1]:80", true),
        ];
        for (a, b, expected) in cases {
            assert_eq!(collide(addr(a), addr(b)), expected, "{a} {b}");
        }
    }
}
