//! Checks of a service's upstreams: `origin` / `origins`, `origin_ca`, `shields`, `health`,
//! `passive` and `retry`.

use std::collections::HashMap;
use std::time::Duration;

use super::Report;
use crate::origin::OriginUrl;
use crate::service::ServiceConfig;
use crate::units::format_duration;
use crate::upstreams::{HealthConfig, MAX_ORIGINS, MAX_SHIELDS, PassiveConfig, RetryConfig};

/// Every upstream check of the service whose paths start with `at` (`services[2].`, or empty for
/// a service checked on its own).
pub(super) fn check(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    check_origins(report, at, service);
    check_origin_ca(report, at, service);
    check_shields(report, at, service);
    check_health(report, &format!("{at}health."), &service.health);
    check_passive(report, &format!("{at}passive."), &service.passive);
    check_retry(report, &format!("{at}retry."), &service.retry);
}

fn check_origins(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    match (&service.origin, service.origins.is_empty()) {
        (None, true) => report.error(
            format!("{at}origin"),
            "missing; set origin = \"https://origin.example\", or list several servers as \
             [[services.origins]] tables with a url each",
        ),
        (Some(_), false) => report.error(
            format!("{at}origins"),
            "set either origin or origins, not both; move the origin into origins as { url = \"...\" }",
        ),
        _ => {}
    }
    if service.origins.len() > MAX_ORIGINS {
        report.error(
            format!("{at}origins"),
            format!("{} origins; a service may list at most {MAX_ORIGINS}", service.origins.len()),
        );
    }
    let urls = service.origins.iter().map(|o| &o.url);
    duplicates(report, &format!("{at}origins"), urls);
    for (j, origin) in service.origins.iter().enumerate() {
        let weight = usize::try_from(origin.weight).unwrap_or(usize::MAX);
        report.count(&format!("{at}origins[{j}].weight"), weight, 1, 1000);
    }
}

fn check_origin_ca(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    let Some(ca) = &service.origin_ca else { return };
    let path = format!("{at}origin_ca");
    let origins = service.origin_list();
    if origins.iter().any(|o| o.url.is_https()) {
        report.readable_file(&path, ca);
    } else if let [only] = origins.as_slice() {
        report.error(
            path,
            format!("only applies to an https origin, and {} is http; remove origin_ca or use https", only.url),
        );
    } else if !origins.is_empty() {
        report
            .error(path, "only applies to https origins, and every origin here is http; remove origin_ca or use https");
    }
}

fn check_shields(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    if service.shields.len() > MAX_SHIELDS {
        report.error(
            format!("{at}shields"),
            format!("{} shields; a service may list at most {MAX_SHIELDS}", service.shields.len()),
        );
    }
    duplicates(report, &format!("{at}shields"), service.shields.iter().map(|s| &s.url));
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
    for (j, shield) in service.shields.iter().enumerate() {
        let pop = &shield.pop;
        if pop.is_empty() || pop.len() > 32 || !pop.chars().all(valid) {
            report.error(
                format!("{at}shields[{j}].pop"),
                format!("\"{pop}\" is not a valid PoP name; use 1 to 32 of a-z 0-9 _ -, e.g. \"fra\""),
            );
        }
    }
}

/// Reports `{list}[j].url` for each URL that an earlier entry already has.
fn duplicates<'a>(report: &mut Report<'_>, list: &str, urls: impl Iterator<Item = &'a OriginUrl>) {
    let mut seen: HashMap<&OriginUrl, usize> = HashMap::new();
    for (j, url) in urls.enumerate() {
        if let Some(first) = seen.get(url).copied() {
            report.error(
                format!("{list}[{j}].url"),
                format!("{url} is already {list}[{first}]; list each server once (use weight to send it more)"),
            );
        } else {
            seen.insert(url, j);
        }
    }
}

fn check_health(report: &mut Report<'_>, at: &str, health: &HealthConfig) {
    let path = &health.path;
    let visible = path.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if !path.starts_with('/') || !visible || path.len() > 1024 {
        report.error(
            format!("{at}path"),
            format!(
                "\"{path}\" is not a probe path; write a path such as \"/healthz\": starting with /, \
                 visible ASCII without #, at most 1024 bytes"
            ),
        );
    }
    within(report, &format!("{at}interval"), health.interval, Duration::from_millis(100), Duration::from_secs(3600));
    report.positive(&format!("{at}timeout"), health.timeout);
    if health.timeout > health.interval {
        report.error(
            format!("{at}timeout"),
            format!(
                "{} is longer than {at}interval ({}); a probe must end before the next one starts",
                format_duration(health.timeout),
                format_duration(health.interval)
            ),
        );
    }
    report.count(&format!("{at}unhealthy_threshold"), as_usize(health.unhealthy_threshold), 1, 100);
    report.count(&format!("{at}healthy_threshold"), as_usize(health.healthy_threshold), 1, 100);
}

fn check_passive(report: &mut Report<'_>, at: &str, passive: &PassiveConfig) {
    report.count(&format!("{at}failure_threshold"), as_usize(passive.failure_threshold), 1, 1000);
    report.positive(&format!("{at}ejection"), passive.ejection);
    if passive.max_ejection < passive.ejection {
        report.error(
            format!("{at}max_ejection"),
            format!(
                "{} is shorter than {at}ejection ({}); use at least that",
                format_duration(passive.max_ejection),
                format_duration(passive.ejection)
            ),
        );
    }
    if let Some(percent) = passive.max_ejection_percent {
        report.count(&format!("{at}max_ejection_percent"), usize::from(percent), 0, 100);
    }
}

fn check_retry(report: &mut Report<'_>, at: &str, retry: &RetryConfig) {
    report.count(&format!("{at}max_retries"), as_usize(retry.max_retries), 0, 10);
    report.positive(&format!("{at}base_backoff"), retry.base_backoff);
    if retry.max_backoff < retry.base_backoff {
        report.error(
            format!("{at}max_backoff"),
            format!(
                "{} is shorter than {at}base_backoff ({}); use at least that",
                format_duration(retry.max_backoff),
                format_duration(retry.base_backoff)
            ),
        );
    }
    if !(0.0..=1.0).contains(&retry.budget_ratio) {
        report.error(
            format!("{at}budget_ratio"),
            format!(
                "{} is out of range; use 0.0 to 1.0 (e.g. 0.2 for one retry per five requests)",
                retry.budget_ratio
            ),
        );
    }
    within(
        report,
        &format!("{at}budget_window"),
        retry.budget_window,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    report.count(&format!("{at}budget_min_per_sec"), as_usize(retry.budget_min_per_sec), 0, 10_000);
}

fn within(report: &mut Report<'_>, path: &str, value: Duration, min: Duration, max: Duration) {
    if !(min..=max).contains(&value) {
        report.error(
            path,
            format!(
                "{} is out of range; use {} to {}",
                format_duration(value),
                format_duration(min),
                format_duration(max)
            ),
        );
    }
}

fn as_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::upstreams::Balance;

    const HEAD: &str = "[node]\nname = \"edge-1\"\n[listen]\nhttp = \"127.0.0.1:0\"\n\
                        [[services]]\nname = \"s\"\nhosts = [\"s.example\"]\n";
    const ONE: &str = "origin = \"https://o.example\"\n";

    /// `(path, message)` of every problem in a service written after `HEAD`.
    fn problems(service: &str) -> Vec<(String, String)> {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("edge.toml");
        match crate::parse(&format!("{HEAD}{service}"), &file) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    fn origins(n: usize) -> String {
        let list: Vec<String> = (0..n).map(|i| format!("{{ url = \"http://o{i}\" }}")).collect();
        format!("origins = [{}]\n", list.join(", "))
    }

    fn shields(n: usize) -> String {
        let list: Vec<String> = (0..n).map(|i| format!("{{ url = \"http://s{i}\", pop = \"p\" }}")).collect();
        format!("{ONE}shields = [{}]\n", list.join(", "))
    }

    #[test]
    fn each_check_names_its_field_and_what_is_valid() {
        let long_path = format!("/{}", "a".repeat(1024));
        let cases: Vec<(String, &str, &str)> = vec![
            (String::new(), "services[0].origin", "missing; set origin = "),
            (format!("{ONE}origins = [{{ url = \"http://a\" }}]\n"), "services[0].origins", "either origin or origins"),
            (origins(65), "services[0].origins", "65 origins; a service may list at most 64"),
            (
                "origins = [{ url = \"http://a\" }, { url = \"http://A:80/\" }]\n".into(),
                "services[0].origins[1].url",
                "http://a:80 is already services[0].origins[0]",
            ),
            (
                "origins = [{ url = \"http://a\", weight = 0 }]\n".into(),
                "services[0].origins[0].weight",
                "use 1 to 1000",
            ),
            (
                "origins = [{ url = \"http://a\", weight = 1001 }]\n".into(),
                "services[0].origins[0].weight",
                "use 1 to 1000",
            ),
            (
                "origins = [{ url = \"http://a\" }, { url = \"http://b\" }]\norigin_ca = \"Cargo.toml\"\n".into(),
                "services[0].origin_ca",
                "every origin here is http",
            ),
            (shields(65), "services[0].shields", "65 shields; a service may list at most 64"),
            (
                format!(
                    "{ONE}shields = [{{ url = \"http://s\", pop = \"a\" }}, {{ url = \"http://s\", pop = \"b\" }}]\n"
                ),
                "services[0].shields[1].url",
                "is already services[0].shields[0]",
            ),
            (
                format!("{ONE}shields = [{{ url = \"http://s\", pop = \"FRA\" }}]\n"),
                "services[0].shields[0].pop",
                "\"FRA\" is not a valid PoP name; use 1 to 32 of a-z 0-9 _ -",
            ),
            (format!("{ONE}shields = [{{ url = \"http://s\", pop = \"\" }}]\n"), "services[0].shields[0].pop", "PoP"),
            (format!("{ONE}[services.health]\npath = \"healthz\"\n"), "services[0].health.path", "starting with /"),
            (format!("{ONE}[services.health]\npath = \"/a b\"\n"), "services[0].health.path", "visible ASCII"),
            (format!("{ONE}[services.health]\npath = \"/a#b\"\n"), "services[0].health.path", "without #"),
            (format!("{ONE}[services.health]\npath = \"{long_path}\"\n"), "services[0].health.path", "at most 1024"),
            (
                format!("{ONE}[services.health]\ninterval = \"50ms\"\ntimeout = \"10ms\"\n"),
                "services[0].health.interval",
                "50ms is out of range; use 100ms to 1h",
            ),
            (format!("{ONE}[services.health]\ninterval = \"2h\"\n"), "services[0].health.interval", "use 100ms to 1h"),
            (
                format!("{ONE}[services.health]\ntimeout = \"0s\"\n"),
                "services[0].health.timeout",
                "must be more than 0",
            ),
            (
                format!("{ONE}[services.health]\ninterval = \"1s\"\n"),
                "services[0].health.timeout",
                "2s is longer than services[0].health.interval (1s)",
            ),
            (
                format!("{ONE}[services.health]\nunhealthy_threshold = 0\n"),
                "services[0].health.unhealthy_threshold",
                "use 1 to 100",
            ),
            (
                format!("{ONE}[services.health]\nhealthy_threshold = 101\n"),
                "services[0].health.healthy_threshold",
                "use 1 to 100",
            ),
            (
                format!("{ONE}[services.passive]\nfailure_threshold = 0\n"),
                "services[0].passive.failure_threshold",
                "use 1 to 1000",
            ),
            (
                format!("{ONE}[services.passive]\nejection = \"0s\"\nmax_ejection = \"0s\"\n"),
                "services[0].passive.ejection",
                "must be more than 0",
            ),
            (
                format!("{ONE}[services.passive]\nejection = \"1m\"\nmax_ejection = \"30s\"\n"),
                "services[0].passive.max_ejection",
                "30s is shorter than services[0].passive.ejection (1m)",
            ),
            (
                format!("{ONE}[services.passive]\nmax_ejection_percent = 101\n"),
                "services[0].passive.max_ejection_percent",
                "use 0 to 100",
            ),
            (format!("{ONE}[services.retry]\nmax_retries = 11\n"), "services[0].retry.max_retries", "use 0 to 10"),
            (
                format!("{ONE}[services.retry]\nbase_backoff = \"0s\"\nmax_backoff = \"0s\"\n"),
                "services[0].retry.base_backoff",
                "must be more than 0",
            ),
            (
                format!("{ONE}[services.retry]\nbase_backoff = \"2s\"\n"),
                "services[0].retry.max_backoff",
                "1s is shorter than services[0].retry.base_backoff (2s)",
            ),
            (
                format!("{ONE}[services.retry]\nbudget_ratio = 1.5\n"),
                "services[0].retry.budget_ratio",
                "use 0.0 to 1.0",
            ),
            (
                format!("{ONE}[services.retry]\nbudget_ratio = nan\n"),
                "services[0].retry.budget_ratio",
                "use 0.0 to 1.0",
            ),
            (
                format!("{ONE}[services.retry]\nbudget_window = \"500ms\"\n"),
                "services[0].retry.budget_window",
                "use 1s to 1h",
            ),
            (
                format!("{ONE}[services.retry]\nbudget_min_per_sec = 10001\n"),
                "services[0].retry.budget_min_per_sec",
                "use 0 to 10000",
            ),
        ];
        for (service, path, fragment) in cases {
            let found = problems(&service);
            assert_eq!(found.len(), 1, "{service}\n{found:#?}");
            assert_eq!(found[0].0, path, "{service}");
            assert!(found[0].1.contains(fragment), "{service}\n{}", found[0].1);
        }
    }

    #[test]
    fn type_errors_name_the_nested_field() {
        let cases = [
            ("origins = [{ url = \"http://a\", group = 256 }]\n", "services[0].origins[0].group", "0 to 255"),
            ("origins = [{ url = \"ftp://a\" }]\n", "services[0].origins[0].url", "unsupported scheme"),
            ("origins = [{ url = \"http://a\", wieght = 2 }]\n", "services[0].origins[0].wieght", "unknown field"),
            ("origin = \"http://a\"\nbalance = \"random\"\n", "services[0].balance", "unknown variant `random`"),
            ("origin = \"http://a\"\nshields = [{ url = \"http://s\" }]\n", "services[0].shields[0].pop", "missing"),
            ("origin = \"http://a\"\n[services.retry]\nattempts = 3\n", "services[0].retry.attempts", "unknown field"),
        ];
        for (service, path, fragment) in cases {
            let found = problems(service);
            assert_eq!(found.len(), 1, "{service}\n{found:#?}");
            assert_eq!(found[0].0, path, "{service}");
            assert!(found[0].1.contains(fragment), "{service}\n{}", found[0].1);
        }
    }

    #[test]
    fn accepts_valid_edges() {
        let cases = [
            ONE.to_owned(),
            "origins = [{ url = \"http://a\" }]\n".to_owned(),
            origins(64),
            shields(64),
            "origins = [{ url = \"http://a\", weight = 1000, group = 255 }, { url = \"https://b\" }]\n\
             origin_ca = \"Cargo.toml\"\n"
                .to_owned(),
            format!(
                "{ONE}shields = [{{ url = \"https://s\", pop = \"eu-west_1\" }}]\norigin_when_shields_down = false\n"
            ),
            format!(
                "{ONE}[services.health]\nenabled = false\npath = \"/healthz?deep=1\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\n"
            ),
            format!("{ONE}[services.passive]\nfailure_threshold = 1\nejection = \"1s\"\nmax_ejection = \"1s\"\n"),
            format!("{ONE}[services.passive]\nmax_ejection_percent = 100\neject_on_5xx = true\n"),
            format!("{ONE}[services.passive]\nmax_ejection_percent = 0\neject_on_5xx = false\n"),
            format!(
                "{ONE}[services.retry]\nmax_retries = 0\nbase_backoff = \"1ms\"\nmax_backoff = \"1ms\"\n\
                 budget_ratio = 0.0\nbudget_window = \"1h\"\nbudget_min_per_sec = 0\n"
            ),
        ];
        for service in cases {
            assert_eq!(problems(&service), Vec::new(), "{service}");
        }
    }

    #[test]
    fn one_origin_and_several_read_the_same_way() {
        let parse = |service: &str| {
            let file = Path::new("edge.toml");
            crate::parse(&format!("{HEAD}{service}"), file).unwrap_or_else(|e| panic!("{e}")).services.remove(0)
        };
        let single = parse(ONE);
        let listed = parse("origins = [{ url = \"https://o.example\" }]\n");
        assert_eq!(single.origin_list(), listed.origin_list());
        assert_eq!(single.origin_list()[0].group, 0);
        assert_eq!(single.origin_list()[0].weight, 1);
        assert_eq!(single.balance, Balance::RoundRobin);
        assert_eq!(single.retry.base_backoff, Duration::from_millis(25));
    }

    #[test]
    fn active_health_checks_run_when_there_is_a_choice() {
        let cases = [
            (ONE.to_owned(), false),
            ("origins = [{ url = \"http://a\" }]\n".to_owned(), false),
            ("origins = [{ url = \"http://a\" }, { url = \"http://b\", group = 1 }]\n".to_owned(), true),
            (shields(1), true),
            (format!("{ONE}[services.health]\nenabled = true\n"), true),
            (format!("{}[services.health]\nenabled = false\n", shields(2)), false),
        ];
        for (service, expected) in cases {
            let config = crate::parse(&format!("{HEAD}{service}"), Path::new("edge.toml"))
                .unwrap_or_else(|e| panic!("{service}: {e}"));
            assert_eq!(config.services[0].active_health_checks(), expected, "{service}");
        }
    }
}
