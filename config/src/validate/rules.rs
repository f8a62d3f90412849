//! Checks of a service's rules, cache key, HTTPS redirect, HSTS and error pages: bounds,
//! field names, statuses, and the redirect loops visible without a request.

use super::Report;
use crate::rules::{
    CacheKeyConfig, ErrorPageConfig, FieldMatch, HeaderOps, MAX_ERROR_PAGES, MAX_KEY_FIELDS, MAX_LIST, MAX_PAGE_BYTES,
    MAX_RULES, MatchConfig, Piece, QueryMode, RedirectConfig, RuleConfig,
};
use crate::service::ServiceConfig;

/// Fields a rule may not change: framing, hop-by-hop and routing fields, which the node itself
/// owns (changing them could desynchronise the connection or reroute the request).
const FORBIDDEN: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

pub(super) fn check(report: &mut Report<'_>, at: &str, service: &ServiceConfig) {
    check_key(report, &format!("{at}cache_key."), &service.cache_key);
    report.count(&format!("{at}rules"), service.rules.len(), 0, MAX_RULES);
    for (i, rule) in service.rules.iter().enumerate() {
        check_rule(report, &format!("{at}rules[{i}]."), rule);
    }
    if !matches!(service.https_redirect_status, 301 | 302 | 307 | 308) {
        report.error(
            format!("{at}https_redirect_status"),
            format!("{} is not a redirect status for this; use 301, 302, 307 or 308", service.https_redirect_status),
        );
    }
    if let Some(hsts) = &service.hsts {
        report.positive(&format!("{at}hsts.max_age"), hsts.max_age);
    }
    report.count(&format!("{at}error_pages"), service.error_pages.len(), 0, MAX_ERROR_PAGES);
    for (i, page) in service.error_pages.iter().enumerate() {
        check_page(report, &format!("{at}error_pages[{i}]."), page, &service.error_pages[..i]);
    }
}

fn check_key(report: &mut Report<'_>, at: &str, key: &CacheKeyConfig) {
    report.count(&format!("{at}query_include"), key.query_include.len(), 0, MAX_LIST);
    report.count(&format!("{at}query_exclude"), key.query_exclude.len(), 0, MAX_LIST);
    let filtered = !key.query_include.is_empty() || !key.query_exclude.is_empty();
    if key.query == QueryMode::Ignore && filtered {
        report.error(
            format!("{at}query"),
            "\"ignore\" drops every parameter, so query_include and query_exclude would do nothing; use \"keep\" or \"sort\" with them, or remove them",
        );
    }
    report.count(&format!("{at}headers"), key.headers.len(), 0, MAX_KEY_FIELDS);
    report.count(&format!("{at}cookies"), key.cookies.len(), 0, MAX_KEY_FIELDS);
    for (i, name) in key.headers.iter().enumerate() {
        field_name(report, &format!("{at}headers[{i}]"), name);
        if key.headers[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            report.error(format!("{at}headers[{i}]"), format!("\"{name}\" is listed twice; remove one"));
        }
    }
    for (i, name) in key.cookies.iter().enumerate() {
        field_name(report, &format!("{at}cookies[{i}]"), name);
    }
}

fn check_rule(report: &mut Report<'_>, at: &str, rule: &RuleConfig) {
    if let Some(name) = &rule.name
        && (name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_graphic()))
    {
        report.error(format!("{at}name"), format!("{name:?}: use 1 to 64 visible ASCII characters, no spaces"));
    }
    check_match(report, &format!("{at}match."), &rule.when);
    if let Some(cache) = &rule.cache {
        let c = format!("{at}cache.");
        let durations = [
            ("edge_ttl", cache.edge_ttl),
            ("browser_ttl", cache.browser_ttl),
            ("stale_while_revalidate", cache.stale_while_revalidate),
            ("stale_if_error", cache.stale_if_error),
        ];
        for (field, value) in durations {
            if let Some(value) = value {
                report.positive(&format!("{c}{field}"), value);
            }
        }
        let stale = cache.stale_while_revalidate.is_some() || cache.stale_if_error.is_some();
        if stale && cache.edge_ttl.is_none() {
            report.error(
                format!("{c}edge_ttl"),
                "missing: stale_while_revalidate and stale_if_error are given to responses stored by edge_ttl; set it",
            );
        }
        if cache.bypass && (cache.edge_ttl.is_some() || cache.key.is_some()) {
            report.error(
                format!("{c}bypass"),
                "a bypassed request is neither looked up nor stored; remove edge_ttl and key, or bypass",
            );
        }
        if let Some(key) = &cache.key {
            check_key(report, &format!("{c}key."), key);
        }
    }
    check_ops(report, &format!("{at}request_headers."), &rule.request_headers);
    check_ops(report, &format!("{at}response_headers."), &rule.response_headers);
    if rule.redirect.is_some() && rule.deny.is_some() {
        report.error(format!("{at}deny"), "a rule answers with a redirect or a deny, not both; keep one");
    }
    if let Some(redirect) = &rule.redirect {
        check_redirect(report, &format!("{at}redirect."), redirect, &rule.when);
    }
    if let Some(deny) = &rule.deny {
        if !matches!(deny.status, 403 | 404 | 410 | 451) {
            report.error(format!("{at}deny.status"), format!("{}: use 403, 404, 410 or 451", deny.status));
        }
        if let Some(body) = &deny.body {
            body_size(report, &format!("{at}deny.body"), body);
        }
        header_value(report, &format!("{at}deny.content_type"), &deny.content_type);
    }
}

fn check_match(report: &mut Report<'_>, at: &str, m: &MatchConfig) {
    let lists = [
        ("hosts", m.hosts.len()),
        ("paths", m.paths.len()),
        ("methods", m.methods.len()),
        ("query", m.query.len()),
        ("headers", m.headers.len()),
        ("cookies", m.cookies.len()),
        ("client_ips", m.client_ips.len()),
    ];
    for (field, len) in lists {
        report.count(&format!("{at}{field}"), len, 0, MAX_LIST);
    }
    for (i, method) in m.methods.iter().enumerate() {
        let token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
        if !token {
            report.error(
                format!("{at}methods[{i}]"),
                format!("{method:?} is not a method; write it upper-case, e.g. \"GET\""),
            );
        }
    }
    for (i, path) in m.paths.iter().enumerate() {
        if !path.as_str().starts_with(['/', '*']) {
            report.error(format!("{at}paths[{i}]"), format!("\"{path}\" never matches a path; start it with / or *"));
        }
    }
    fields(report, &format!("{at}query"), &m.query, |report, path, name| {
        if name.is_empty() || name.contains(['&', '=', '#', ' ']) {
            report.error(path, format!("{name:?} is not a query parameter name"));
        }
    });
    fields(report, &format!("{at}headers"), &m.headers, field_name);
    fields(report, &format!("{at}cookies"), &m.cookies, field_name);
}

fn fields(report: &mut Report<'_>, at: &str, list: &[FieldMatch], check: fn(&mut Report<'_>, &str, &str)) {
    for (i, f) in list.iter().enumerate() {
        check(report, &format!("{at}[{i}].name"), &f.name);
    }
}

fn check_ops(report: &mut Report<'_>, at: &str, ops: &HeaderOps) {
    report.count(&format!("{at}set"), ops.set.len(), 0, MAX_LIST);
    report.count(&format!("{at}append"), ops.append.len(), 0, MAX_LIST);
    report.count(&format!("{at}remove"), ops.remove.len(), 0, MAX_LIST);
    let names = ops.set.keys().map(|n| ("set", n)).chain(ops.append.keys().map(|n| ("append", n)));
    let names = names.chain(ops.remove.iter().map(|n| ("remove", n)));
    for (field, name) in names {
        let path = format!("{at}{field}.{name}");
        field_name(report, &path, name);
        if FORBIDDEN.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            report.error(path, format!("\"{name}\" belongs to the connection or the routing; a rule cannot change it"));
        }
    }
}

fn check_redirect(report: &mut Report<'_>, at: &str, redirect: &RedirectConfig, when: &MatchConfig) {
    if !matches!(redirect.status, 301 | 302 | 303 | 307 | 308) {
        report.error(format!("{at}status"), format!("{}: use 301, 302, 303, 307 or 308", redirect.status));
    }
    let to = redirect.to.as_str();
    let absolute = to.starts_with("https://") || to.starts_with("http://") || to.starts_with("{scheme}://");
    if !absolute && !to.starts_with('/') {
        report.error(
            format!("{at}to"),
            format!(
                "{to:?}: write an absolute URL (\"https://www.shop.example{{path}}\") or a path (\"/new{{path}}\")"
            ),
        );
        return;
    }
    if let Some(why) = redirect_loop(redirect, when) {
        report.error(
            format!("{at}to"),
            format!("{to:?} redirects to a URL this rule matches again ({why}); the client would loop"),
        );
    }
}

/// A loop seen without a request: the target is this very URL (`{path}` on the same host and
/// scheme), or a fixed path on the same host that the rule's own paths match. Only for rules
/// that do not also depend on what a client sends besides the URL (methods, fields), which a
/// redirect may change.
fn redirect_loop(redirect: &RedirectConfig, when: &MatchConfig) -> Option<&'static str> {
    let conditional = when.scheme == Some(crate::rules::SchemeMatch::Http)
        || !when.methods.is_empty()
        || !when.query.is_empty()
        || !when.headers.is_empty()
        || !when.cookies.is_empty()
        || !when.hosts.is_empty();
    if conditional {
        return None;
    }
    let pieces = redirect.to.pieces();
    // The URL's path part: after `{scheme}://{host}`, or the whole of a relative target.
    let path = match pieces {
        [Piece::Scheme, Piece::Literal(sep), Piece::Host, rest @ ..] if sep == "://" => rest,
        [Piece::Literal(scheme), Piece::Host, rest @ ..] if scheme == "https://" || scheme == "http://" => rest,
        [Piece::Literal(first), ..] if first.starts_with('/') => pieces,
        _ => return None,
    };
    match path {
        [Piece::Path] if https_to_https(pieces, when) => Some("the target is the request's own URL"),
        [Piece::Literal(fixed)] if when.paths.is_empty() || when.paths.iter().any(|g| g.matches(fixed)) => {
            Some("the target path matches this rule's paths")
        }
        _ => None,
    }
}

/// Whether a target that keeps the path also keeps the scheme the rule matches: a redirect to
/// `https://` only loops for requests that arrive over HTTPS too.
fn https_to_https(pieces: &[Piece], when: &MatchConfig) -> bool {
    match pieces.first() {
        Some(Piece::Literal(s)) if s == "https://" => when.scheme != Some(crate::rules::SchemeMatch::Http),
        Some(Piece::Literal(s)) if s == "http://" => when.scheme != Some(crate::rules::SchemeMatch::Https),
        _ => true,
    }
}

fn check_page(report: &mut Report<'_>, at: &str, page: &ErrorPageConfig, before: &[ErrorPageConfig]) {
    match page.range() {
        None => report.error(
            format!("{at}status"),
            format!("{:?}: write \"4xx\", \"5xx\" or one status from 400 to 599, e.g. \"502\"", page.status),
        ),
        Some((low, _)) => {
            if before.iter().any(|p| p.status == page.status) {
                report.error(format!("{at}status"), format!("\"{}\" has a page already; keep one", page.status));
            }
            if page.upstream && low < 500 {
                report.error(
                    format!("{at}upstream"),
                    "only upstream 5xx responses can be replaced; use it with \"5xx\" or a 5xx status",
                );
            }
        }
    }
    body_size(report, &format!("{at}body"), &page.body);
    header_value(report, &format!("{at}content_type"), &page.content_type);
}

fn body_size(report: &mut Report<'_>, path: &str, body: &str) {
    if body.len() > MAX_PAGE_BYTES {
        report.error(path, format!("{} bytes; at most 64KiB", body.len()));
    }
}

/// RFC 9110 §5.1: a field name is a token.
fn field_name(report: &mut Report<'_>, path: &str, name: &str) {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || name.len() > 128 || !name.bytes().all(tchar) {
        report.error(path, format!("{name:?} is not a field name; use letters, digits and - (RFC 9110 §5.1)"));
    }
}

fn header_value(report: &mut Report<'_>, path: &str, value: &str) {
    if value.is_empty() || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
        report.error(path, format!("{value:?} is not a field value (empty, or a control character)"));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ServiceConfig;

    fn problems(extra: serde_json::Value) -> Vec<(String, String)> {
        let mut service = json!({"name": "shop", "hosts": ["shop.example"], "origin": "https://o.example"});
        if let (Some(s), Some(extra)) = (service.as_object_mut(), extra.as_object()) {
            s.extend(extra.clone());
        }
        let service: ServiceConfig = serde_json::from_value(service).unwrap_or_else(|e| panic!("{e}"));
        match crate::validate_service(&service) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn each_rule_problem_names_its_field() {
        let rule = |r: serde_json::Value| json!({"rules": [r]});
        let cases = [
            (
                json!({"cache_key": {"query": "ignore", "query_exclude": ["utm_*"]}}),
                "cache_key.query",
                "would do nothing",
            ),
            (json!({"cache_key": {"headers": ["a b"]}}), "cache_key.headers[0]", "not a field name"),
            (json!({"cache_key": {"headers": ["x-a", "X-A"]}}), "cache_key.headers[1]", "listed twice"),
            (json!({"cache_key": {"cookies": vec!["c"; 9]}}), "cache_key.cookies", "use 0 to 8"),
            (rule(json!({"name": "has space"})), "rules[0].name", "no spaces"),
            (rule(json!({"match": {"methods": ["get"]}})), "rules[0].match.methods[0]", "upper-case"),
            (rule(json!({"match": {"paths": ["static/*"]}})), "rules[0].match.paths[0]", "start it with /"),
            (
                rule(json!({"match": {"headers": [{"name": "x y"}]}})),
                "rules[0].match.headers[0].name",
                "not a field name",
            ),
            (
                rule(json!({"match": {"query": [{"name": "a=b"}]}})),
                "rules[0].match.query[0].name",
                "not a query parameter",
            ),
            (rule(json!({"cache": {"edge_ttl": "0s"}})), "rules[0].cache.edge_ttl", "more than 0"),
            (rule(json!({"cache": {"stale_if_error": "1m"}})), "rules[0].cache.edge_ttl", "missing"),
            (rule(json!({"cache": {"bypass": true, "edge_ttl": "1m"}})), "rules[0].cache.bypass", "neither looked up"),
            (
                rule(json!({"cache": {"key": {"query": "ignore", "query_include": ["a"]}}})),
                "rules[0].cache.key.query",
                "would do nothing",
            ),
            (
                rule(json!({"request_headers": {"set": {"Host": "x"}}})),
                "rules[0].request_headers.set.Host",
                "cannot change",
            ),
            (
                rule(json!({"response_headers": {"remove": ["bad name"]}})),
                "rules[0].response_headers.remove.bad name",
                "not a field name",
            ),
            (
                rule(json!({"response_headers": {"append": {"transfer-encoding": "chunked"}}})),
                "rules[0].response_headers.append.transfer-encoding",
                "cannot change",
            ),
            (
                rule(json!({"redirect": {"to": "https://x{path}", "status": 200}})),
                "rules[0].redirect.status",
                "use 301",
            ),
            (rule(json!({"redirect": {"to": "x{path}"}})), "rules[0].redirect.to", "absolute URL"),
            (rule(json!({"redirect": {"to": "{scheme}://{host}{path}"}})), "rules[0].redirect.to", "loop"),
            (
                rule(json!({"match": {"paths": ["/old/*"]}, "redirect": {"to": "/old/new"}})),
                "rules[0].redirect.to",
                "loop",
            ),
            (rule(json!({"redirect": {"to": "https://{host}{path}"}})), "rules[0].redirect.to", "loop"),
            (
                rule(json!({"match": {"paths": ["/b"]}, "redirect": {"to": "/a"}, "deny": {}})),
                "rules[0].deny",
                "not both",
            ),
            (rule(json!({"deny": {"status": 500}})), "rules[0].deny.status", "use 403"),
            (rule(json!({"deny": {"body": "x".repeat(65 * 1024)}})), "rules[0].deny.body", "at most 64KiB"),
            (json!({"rules": vec![json!({}); 257]}), "rules", "use 0 to 256"),
            (json!({"https_redirect_status": 303}), "https_redirect_status", "use 301, 302, 307 or 308"),
            (json!({"hsts": {"max_age": "0s"}}), "hsts.max_age", "more than 0"),
            (json!({"error_pages": [{"status": "6xx", "body": "x"}]}), "error_pages[0].status", "write \"4xx\""),
            (
                json!({"error_pages": [{"status": "404", "body": "x", "upstream": true}]}),
                "error_pages[0].upstream",
                "5xx",
            ),
            (
                json!({"error_pages": [{"status": "5xx", "body": "a"}, {"status": "5xx", "body": "b"}]}),
                "error_pages[1].status",
                "has a page already",
            ),
            (
                json!({"error_pages": [{"status": "5xx", "body": "a", "content_type": "text/html\r\nx: y"}]}),
                "error_pages[0].content_type",
                "control character",
            ),
        ];
        for (extra, path, fragment) in cases {
            let found = problems(extra.clone());
            assert_eq!(found.len(), 1, "{extra}\n{found:#?}");
            assert_eq!(found[0].0, path, "{extra}");
            assert!(found[0].1.contains(fragment), "{extra}\n{}", found[0].1);
        }
    }

    #[test]
    fn sensible_rules_pass() {
        let ok = json!({
            "cache_key": {"query": "sort", "query_exclude": ["utm_*", "fbclid"], "headers": ["accept-language"], "cookies": ["currency"]},
            "https_redirect": true,
            "hsts": {"max_age": "365d", "include_subdomains": true},
            "debug_headers": true,
            "rules": [
                {"name": "static", "match": {"paths": ["/static/*"]}, "cache": {"edge_ttl": "1d", "browser_ttl": "1h", "origin_cache_control": "override", "stale_if_error": "1d"}},
                {"match": {"paths": ["/old/*"]}, "redirect": {"to": "/new{path}", "status": 308, "query": "drop"}},
                {"match": {"scheme": "http", "paths": ["/shop/*"]}, "redirect": {"to": "https://{host}{path}"}},
                {"match": {"hosts": ["shop.example"]}, "redirect": {"to": "https://www.shop.example{path}"}},
                {"match": {"paths": ["/admin/*"], "client_ips": ["10.0.0.0/8"], "methods": ["POST"]}, "deny": {"status": 451, "body": "no"}},
                {"match": {"cookies": [{"name": "session"}], "query": [{"name": "preview", "value": "1"}]}, "cache": {"bypass": true}},
                {"response_headers": {"set": {"x-frame-options": "DENY", "x-served-for": "{host}{path}"}, "remove": ["server"]},
                 "request_headers": {"append": {"x-client": "{client_ip}"}}}
            ],
            "error_pages": [{"status": "5xx", "body": "<h1>down</h1>", "upstream": true}, {"status": "404", "body": "gone"}]
        });
        assert_eq!(problems(ok), Vec::new());
    }

    #[test]
    fn template_and_glob_errors_come_from_parsing_with_their_path() {
        let text = r#"
            [node]
            name = "edge-1"
            [listen]
            http = "127.0.0.1:0"
            [[services]]
            name = "shop"
            hosts = ["shop.example"]
            origin = "http://127.0.0.1:1"
            [[services.rules]]
            response_headers = { set = { "x-a" = "{nope}" } }
        "#;
        let errors = crate::parse(text, std::path::Path::new("edge.toml")).expect_err("unknown variable");
        let shown = errors.to_string();
        assert!(shown.contains("services[0].rules[0].response_headers.set"), "{shown}");
        assert!(shown.contains("unknown variable {nope}"), "{shown}");
    }
}
