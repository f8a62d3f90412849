//! Checks of one service that need nothing but the service (and, for a node's config, the
//! node's cache bounds): its name, hosts, upstreams, compression, images and durations.

use super::{Report, Scope, compression, function, rules, upstreams};
use crate::service::{ServiceConfig, is_service_name};
use crate::units::ByteSize;

/// Every check of one service whose paths start with `at` (`services[2].`, or empty for a
/// service checked on its own).
pub(super) fn check(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    check_name(report, at, &service.name);
    check_hosts(report, at, service);
    upstreams::check(report, at, service);
    compression::check(report, &format!("{at}compression."), &service.compression);
    for (field, message) in service.images.problems() {
        report.error(format!("{at}images.{field}"), message);
    }
    check_durations(report, at, service);
    check_max_object_size(report, at, service);
    check_interim(report, at, service);
    let trusted = service.trusted_networks.len();
    report.count(&format!("{at}trusted_networks"), trusted, 0, crate::MAX_TRUSTED_NETWORKS);
    if let Some(f) = &service.function {
        function::check(report, &format!("{at}function."), f);
    }
    rules::check(report, at, service);
}

fn check_name(report: &mut Report<'_>, at: &str, name: &str) {
    if !is_service_name(name) {
        report
            .error(format!("{at}name"), format!("\"{name}\" is not a valid service name; use 1 to 64 of a-z 0-9 _ -"));
    }
}

fn check_hosts(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    if service.hosts.is_empty() {
        report.error(format!("{at}hosts"), "empty; list the hosts this service answers for, e.g. [\"shop.example\"]");
    }
    for (j, host) in service.hosts.iter().enumerate() {
        if service.hosts[..j].contains(host) {
            report.error(format!("{at}hosts[{j}]"), format!("\"{host}\" is listed twice in this service; remove one"));
        }
    }
}

fn check_durations(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    if service.default_ttl.is_some_and(|ttl| ttl.is_zero()) {
        report.error(
            format!("{at}default_ttl"),
            "must be more than 0; write a duration such as \"60s\", or remove it to store only responses with a lifetime",
        );
    }
    if service.max_stale_on_error.is_some_and(|d| d.is_zero()) {
        report.error(
            format!("{at}max_stale_on_error"),
            "must be more than 0; write a duration such as \"1h\", or remove it",
        );
    }
    let timeouts = [
        ("connect_timeout", service.connect_timeout),
        ("first_byte_timeout", service.first_byte_timeout),
        ("between_bytes_timeout", service.between_bytes_timeout),
        ("total_timeout", service.total_timeout),
    ];
    for (field, value) in timeouts {
        if let Some(value) = value {
            report.positive(&format!("{at}{field}"), value);
        }
    }
}

fn check_max_object_size(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    let Some(size) = service.max_object_size else { return };
    let path = format!("{at}max_object_size");
    report.size(&path, size, ByteSize::kib(1), None);
    // The upper bound is the node's cache.max_object_size: checked where a node is known.
    if let Scope::Node { cache, .. } = report.scope
        && size > cache.max_object_size
    {
        report.error(
            path,
            format!(
                "{size} is above cache.max_object_size ({}); use at most that, or raise cache.max_object_size",
                cache.max_object_size
            ),
        );
    }
}

/// Bounds on interim responses: the early hints made from cache, and the 1xx forwarded.
fn check_interim(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    report.count(&format!("{at}early_hints_max_links"), service.early_hints_max_links, 1, 64);
    let path = format!("{at}early_hints_max_bytes");
    report.size(&path, service.early_hints_max_bytes, ByteSize::b(128), Some(ByteSize::kib(16)));
    let path = format!("{at}max_interim_bytes");
    report.size(&path, service.max_interim_bytes, ByteSize::kib(1), Some(ByteSize::kib(64)));
}

#[cfg(test)]
mod tests {
    use crate::ServiceConfig;

    /// `validate_service` on a service written as JSON, the control plane's form.
    fn problems(json: serde_json::Value) -> Vec<(String, String)> {
        let service: ServiceConfig = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        match crate::validate_service(&service) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    fn shop(extra: serde_json::Value) -> serde_json::Value {
        let mut service = serde_json::json!({"name": "shop", "hosts": ["shop.example"], "origin": "https://o.example"});
        if let (Some(service), Some(extra)) = (service.as_object_mut(), extra.as_object()) {
            service.extend(extra.clone());
        }
        service
    }

    #[test]
    fn a_standalone_service_gets_every_check_with_paths_relative_to_it() {
        use serde_json::json;
        let cases = [
            (shop(json!({"name": "Shop"})), "name", "use 1 to 64 of a-z 0-9 _ -"),
            (shop(json!({"hosts": []})), "hosts", "list the hosts this service answers for"),
            (shop(json!({"hosts": ["a.example", "A.example"]})), "hosts[1]", "listed twice in this service"),
            (shop(json!({"origin": null})), "origin", "missing; set origin"),
            (shop(json!({"retry": {"max_retries": 11}})), "retry.max_retries", "use 0 to 10"),
            (shop(json!({"trusted_networks": vec!["10.0.0.0/8"; 257]})), "trusted_networks", "use 0 to 256"),
            (
                shop(json!({"health": {"interval": "1s", "timeout": "2s"}})),
                "health.timeout",
                "is longer than health.interval",
            ),
            (
                shop(json!({"compression": {"prefer": ["br", "br"]}})),
                "compression.prefer[1]",
                "\"br\" is already compression.prefer[0]",
            ),
            (shop(json!({"compression": {"cached_level": {"br": 12}}})), "compression.cached_level.br", "use 0 to 11"),
            (shop(json!({"images": {"max_width": 0}})), "images.max_width", ""),
            (shop(json!({"default_ttl": "0s"})), "default_ttl", "must be more than 0"),
            (shop(json!({"total_timeout": "0s"})), "total_timeout", "must be more than 0"),
            (shop(json!({"max_object_size": "1B"})), "max_object_size", "use at least 1KiB"),
            (shop(json!({"early_hints_max_links": 0})), "early_hints_max_links", "use 1 to 64"),
            (shop(json!({"early_hints_max_links": 65})), "early_hints_max_links", "use 1 to 64"),
            (shop(json!({"early_hints_max_bytes": "64B"})), "early_hints_max_bytes", "use at least 128B"),
            (shop(json!({"early_hints_max_bytes": "17KiB"})), "early_hints_max_bytes", "use at most 16KiB"),
            (shop(json!({"max_interim_bytes": "512B"})), "max_interim_bytes", "use at least 1KiB"),
            (shop(json!({"max_interim_bytes": "65KiB"})), "max_interim_bytes", "use at most 64KiB"),
        ];
        for (json, path, fragment) in cases {
            let found = problems(json.clone());
            assert_eq!(found.len(), 1, "{json}\n{found:#?}");
            assert_eq!(found[0].0, path, "{json}");
            assert!(found[0].1.contains(fragment), "{json}\n{}", found[0].1);
        }
    }

    #[test]
    fn what_depends_on_the_node_is_left_to_it() {
        use serde_json::json;
        // A CA file that does not exist here, and an object size above any default cache bound.
        let json = shop(json!({"origin_ca": "/nonexistent/ca.pem", "max_object_size": "100GiB"}));
        assert_eq!(problems(json), Vec::new());
    }
}
