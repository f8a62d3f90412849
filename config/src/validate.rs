//! Checks that need more than one field, or bounds that types cannot express. Every problem is
//! collected, each with its field path and what would be valid.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::error::{ConfigError, ConfigErrors};
use crate::host::HostPattern;
use crate::node::{
    CacheConfig, LimitsConfig, ListenConfig, LogConfig, NodeConfig, TlsConfig, UpstreamConfig,
};
use crate::service::ServiceConfig;
use crate::units::ByteSize;

/// Checks a parsed config whose relative paths are already resolved; certificate and CA files
/// must exist and be readable. Returns every problem found.
pub fn validate(config: &NodeConfig, file: &Path) -> Result<(), ConfigErrors> {
    let mut report = Report {
        file,
        errors: Vec::new(),
    };
    check_node_name(&mut report, &config.node.name);
    check_listen(&mut report, &config.listen, &config.tls);
    check_tls(&mut report, &config.tls);
    check_cache(&mut report, &config.cache);
    check_limits(&mut report, &config.limits);
    check_upstream(&mut report, &config.upstream);
    check_log(&mut report, &config.log);
    check_services(&mut report, &config.services, &config.cache);
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(report.errors))
    }
}

struct Report<'a> {
    file: &'a Path,
    errors: Vec<ConfigError>,
}

impl Report<'_> {
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

    fn readable_file(&mut self, path: &str, file: &Path) {
        const VALID: &str = "expected a readable PEM file (relative paths are resolved against \
                             the config file's directory)";
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
        report.error(
            "node.name",
            format!("\"{name}\" is not a valid node name; use 1 to 64 of A-Z a-z 0-9 . _ -"),
        );
    }
}

fn check_listen(report: &mut Report<'_>, listen: &ListenConfig, tls: &TlsConfig) {
    if listen.http.is_none() && listen.https.is_none() {
        report.error(
            "listen",
            "no client listener; set listen.http (e.g. \"0.0.0.0:80\") and/or listen.https",
        );
    }
    if listen.https.is_some() && tls.certificates.is_empty() {
        report.error(
            "listen.https",
            "the HTTPS listener needs a certificate; add a [[tls.certificates]] entry or remove listen.https",
        );
    }
    if !listen.admin.ip().to_canonical().is_loopback() && !listen.admin_allow_public {
        report.error(
            "listen.admin",
            format!(
                "{} is not a loopback address and the admin API has no authentication; use \
                 127.0.0.1:PORT or [::1]:PORT, or set listen.admin_allow_public = true",
                listen.admin
            ),
        );
    }
    let listeners = [
        ("listen.http", listen.http),
        ("listen.https", listen.https),
        ("listen.admin", Some(listen.admin)),
    ];
    for (i, (name, addr)) in listeners.iter().enumerate() {
        let Some(addr) = addr else { continue };
        let earlier = listeners[..i]
            .iter()
            .find_map(|(other, a)| a.filter(|a| collide(*a, *addr)).map(|a| (other, a)));
        if let Some((other, other_addr)) = earlier {
            report.error(
                *name,
                format!("{addr} overlaps {other} ({other_addr}); give each listener its own port"),
            );
        }
    }
}

/// Whether two listeners would fight over one port. Port 0 never collides.
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn check_tls(report: &mut Report<'_>, tls: &TlsConfig) {
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
}

fn check_limits(report: &mut Report<'_>, limits: &LimitsConfig) {
    let header_bytes = (ByteSize::kib(8), Some(ByteSize::mib(1)));
    report.size("limits.max_header_bytes", limits.max_header_bytes, header_bytes.0, header_bytes.1);
    report.count("limits.max_headers", limits.max_headers, 8, 1000);
    report.count("limits.max_connections", limits.max_connections, 1, 1_000_000);
    report.positive("limits.header_read_timeout", limits.header_read_timeout);
    report.positive("limits.keepalive_timeout", limits.keepalive_timeout);
    let streams = usize::try_from(limits.max_concurrent_streams).unwrap_or(usize::MAX);
    report.count("limits.max_concurrent_streams", streams, 1, 10_000);
}

fn check_upstream(report: &mut Report<'_>, upstream: &UpstreamConfig) {
    report.positive("upstream.connect_timeout", upstream.connect_timeout);
    report.positive("upstream.first_byte_timeout", upstream.first_byte_timeout);
    report.positive("upstream.between_bytes_timeout", upstream.between_bytes_timeout);
    report.positive("upstream.pool_idle_timeout", upstream.pool_idle_timeout);
    report.count("upstream.pool_max_idle_per_host", upstream.pool_max_idle_per_host, 0, 10_000);
}

fn check_log(report: &mut Report<'_>, log: &LogConfig) {
    if let Err(why) = check_filter(&log.level) {
        report.error("log.level", why);
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
            let known = ["trace", "debug", "info", "warn", "error", "off"]
                .iter()
                .any(|l| l.eq_ignore_ascii_case(level))
                || matches!(level, "0" | "1" | "2" | "3" | "4" | "5");
            if !known {
                return Err(format!("\"{level}\" in \"{directive}\" is not a level; {VALID}"));
            }
        }
    }
    Ok(())
}

fn check_services(report: &mut Report<'_>, services: &[ServiceConfig], cache: &CacheConfig) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut owners: HashMap<&HostPattern, usize> = HashMap::new();
    for (i, service) in services.iter().enumerate() {
        let at = format!("services[{i}]");
        check_service_name(report, &at, &service.name);
        if let Some(first) = names.get(service.name.as_str()).copied() {
            report.error(
                format!("{at}.name"),
                format!(
                    "\"{}\" is already the name of services[{first}]; service names must be unique",
                    service.name
                ),
            );
        } else {
            names.insert(&service.name, i);
        }
        if service.hosts.is_empty() {
            report.error(
                format!("{at}.hosts"),
                "empty; list the hosts this service answers for, e.g. [\"shop.example\"]",
            );
        }
        for (j, host) in service.hosts.iter().enumerate() {
            let Some(owner) = owners.get(host).copied() else {
                owners.insert(host, i);
                continue;
            };
            let message = if owner == i {
                format!("\"{host}\" is listed twice in this service; remove one")
            } else {
                format!(
                    "\"{host}\" is already a host of service \"{}\" (services[{owner}]); a host \
                     pattern may belong to one service only",
                    services[owner].name
                )
            };
            report.error(format!("{at}.hosts[{j}]"), message);
        }
        check_service_fields(report, &at, service, cache);
    }
}

fn check_service_name(report: &mut Report<'_>, at: &str, name: &str) {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
        report.error(
            format!("{at}.name"),
            format!("\"{name}\" is not a valid service name; use 1 to 64 of a-z 0-9 _ -"),
        );
    }
}

fn check_service_fields(
    report: &mut Report<'_>,
    at: &str,
    service: &ServiceConfig,
    cache: &CacheConfig,
) {
    if let Some(ca) = &service.origin_ca {
        if service.origin.is_https() {
            report.readable_file(&format!("{at}.origin_ca"), ca);
        } else {
            report.error(
                format!("{at}.origin_ca"),
                format!(
                    "only applies to an https origin, and {} is http; remove origin_ca or use https",
                    service.origin
                ),
            );
        }
    }
    if service.default_ttl.is_some_and(|ttl| ttl.is_zero()) {
        report.error(
            format!("{at}.default_ttl"),
            "must be more than 0; write a duration such as \"60s\", or remove it to store only responses with a lifetime",
        );
    }
    if let Some(size) = service.max_object_size {
        let path = format!("{at}.max_object_size");
        report.size(&path, size, ByteSize::kib(1), None);
        if size > cache.max_object_size {
            report.error(
                path,
                format!(
                    "{size} is above cache.max_object_size ({}); use at most that, or raise cache.max_object_size",
                    cache.max_object_size
                ),
            );
        }
    }
    let timeouts = [
        ("connect_timeout", service.connect_timeout),
        ("first_byte_timeout", service.first_byte_timeout),
        ("between_bytes_timeout", service.between_bytes_timeout),
    ];
    for (field, value) in timeouts {
        if let Some(value) = value {
            report.positive(&format!("{at}.{field}"), value);
        }
    }
}
