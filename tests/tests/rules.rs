//! Per-service rules without code (issue 25), through the real node and a scripted origin: the
//! cache key (query ignored, filtered, kept; header values added; the debug header; purge by
//! URL on the normalised key), cache rules by path (edge and browser TTL, bypass), request and
//! response fields, redirects (a rule's, HTTP→HTTPS), denials, error pages, and invalid rules
//! refused with their field paths, by `check-config` and by the control plane's API, whose
//! valid rules reach the nodes.

use std::process::Command;

use http::Method;
use outpost_tests::control::{ControlConfig, ControlPlane, expect_error};
use outpost_tests::fleet::{Fleet, FleetSpec, TENANT_TOKEN};
use outpost_tests::node::binary;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec, refused_addr};
use serde_json::json;

/// An origin and a node whose service `shop` (`shop.test`) has `lines` in its table.
async fn shop_with_lines(lines: &[&str]) -> anyhow::Result<(Origin, EdgeNode)> {
    let origin = Origin::start().await?;
    let mut service = ServiceSpec::new("shop", &["shop.test"], origin.url());
    for line in lines {
        service = service.line(*line);
    }
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    Ok((origin, node))
}

#[tokio::test]
async fn utm_parameters_make_one_object_when_ignored_and_two_when_kept() -> anyhow::Result<()> {
    let (origin, mut node) = shop_with_lines(&[
        r#"cache_key = { query_exclude = ["utm_*", "fbclid"] }"#,
        "debug_headers = true",
        r#"rules = [{ name = "kept", match = { paths = ["/kept/*"] }, cache = { key = { query = "keep" } } }]"#,
    ])
    .await?;
    origin.route("/p", Reply::ok("p").cache_control("max-age=600"));
    origin.route("/kept/p", Reply::ok("k").cache_control("max-age=600"));

    let a = node.get("shop.test", "/p?id=7&utm_source=a").await?;
    assert_eq!(a.status, 200, "{}", a.summary());
    assert_eq!(a.header("outpost-cache-key"), Some("shop.test/p?id=7"), "{}", a.summary());
    let b = node.get("shop.test", "/p?utm_source=b&id=7&fbclid=z").await?;
    assert!(b.cache_status().hit(), "utm_* and fbclid are not in the key: {}", b.summary());
    assert_eq!(origin.count("/p"), 1);
    assert_eq!(origin.last("/p")?.path_and_query, "/p?id=7", "what is not in the key is not sent upstream");

    let ka = node.get("shop.test", "/kept/p?utm_source=a").await?;
    let kb = node.get("shop.test", "/kept/p?utm_source=b").await?;
    assert!(!kb.cache_status().hit(), "the rule keeps the query: {}", kb.summary());
    assert_eq!(ka.header("outpost-rule"), Some("kept"));
    assert_eq!(kb.header("outpost-cache-key"), Some("shop.test/kept/p?utm_source=b"));
    assert_eq!(origin.count("/kept/p"), 2);

    // Across a restart the object is found under the same normalised key.
    node.restart().await?;
    let again = node.get("shop.test", "/p?utm_medium=c&id=7").await?;
    assert!(again.cache_status().hit(), "after restart: {}", again.summary());

    // A purge of the URL as a client sent it reaches the object stored under the normalised key.
    node.purge(json!({"kind": "url", "url": "http://shop.test/p?utm_source=x&id=7"})).await?;
    let purged = node.get("shop.test", "/p?id=7").await?;
    assert!(!purged.cache_status().hit(), "purged: {}", purged.summary());
    assert_eq!(origin.count("/p"), 2);
    Ok(())
}

#[tokio::test]
async fn sorted_queries_and_header_values_shape_the_key() -> anyhow::Result<()> {
    let (origin, node) =
        shop_with_lines(&[r#"cache_key = { query = "sort", headers = ["accept-language"], cookies = ["currency"] }"#])
            .await?;
    origin.route("/s", Reply::ok("s").cache_control("max-age=600"));
    let get = |q: &str, lang: &str, cookie: &str| {
        Req::get("shop.test", &format!("/s?{q}")).header("accept-language", lang).header("cookie", cookie.to_owned())
    };
    node.send(get("b=2&a=1", "de", "currency=eur")).await?;
    let sorted = node.send(get("a=1&b=2", "de", "x=1; currency=eur")).await?;
    assert!(sorted.cache_status().hit(), "the same parameters in another order: {}", sorted.summary());
    let other_lang = node.send(get("a=1&b=2", "fr", "currency=eur")).await?;
    assert!(!other_lang.cache_status().hit(), "another Accept-Language: {}", other_lang.summary());
    let other_cookie = node.send(get("a=1&b=2", "de", "currency=usd")).await?;
    assert!(!other_cookie.cache_status().hit(), "another currency: {}", other_cookie.summary());
    assert_eq!(origin.count("/s"), 3);
    assert_eq!(origin.last("/s")?.path_and_query, "/s?a=1&b=2");
    Ok(())
}

#[tokio::test]
async fn static_paths_get_a_day_while_html_keeps_the_origins_ttl() -> anyhow::Result<()> {
    let (origin, node) = shop_with_lines(&[
        r#"rules = [{ match = { paths = ["/static/*"] }, cache = { edge_ttl = "1d", browser_ttl = "1h", origin_cache_control = "override" } }, { match = { paths = ["/fallback/*"] }, cache = { edge_ttl = "5m" } }]"#,
    ])
    .await?;
    origin.route("/static/app.js", Reply::ok("js").cache_control("max-age=60"));
    origin.route("/index.html", Reply::ok("html").cache_control("max-age=60"));
    origin.route("/fallback/none", Reply::ok("none"));
    origin.route("/fallback/own", Reply::ok("own").cache_control("max-age=30"));

    node.get("shop.test", "/static/app.js").await?;
    let js = node.get("shop.test", "/static/app.js").await?;
    let ttl = js.cache_status().ttl().unwrap_or_default();
    assert!((86_000..=86_400).contains(&ttl), "edge TTL of a day: {}", js.summary());
    assert_eq!(js.header("cache-control"), Some("max-age=3600"), "browser TTL: {}", js.summary());
    assert!(js.header("cdn-cache-control").is_none(), "the edge's own field stays at the edge");

    node.get("shop.test", "/index.html").await?;
    let html = node.get("shop.test", "/index.html").await?;
    let ttl = html.cache_status().ttl().unwrap_or_default();
    assert!((50..=60).contains(&ttl), "HTML keeps the origin's: {}", html.summary());
    assert_eq!(html.header("cache-control"), Some("max-age=60"));

    // "respect": the rule's TTL only where the origin names none.
    node.get("shop.test", "/fallback/none").await?;
    let none = node.get("shop.test", "/fallback/none").await?;
    assert!(none.cache_status().hit(), "stored by the rule's TTL: {}", none.summary());
    assert!((290..=300).contains(&none.cache_status().ttl().unwrap_or_default()), "{}", none.summary());
    node.get("shop.test", "/fallback/own").await?;
    let own = node.get("shop.test", "/fallback/own").await?;
    assert!((20..=30).contains(&own.cache_status().ttl().unwrap_or_default()), "{}", own.summary());
    Ok(())
}

#[tokio::test]
async fn a_bypass_rule_sends_every_request_upstream() -> anyhow::Result<()> {
    let (origin, node) =
        shop_with_lines(&[r#"rules = [{ match = { cookies = [{ name = "session" }] }, cache = { bypass = true } }]"#])
            .await?;
    origin.route("/a", Reply::ok("a").cache_control("max-age=600"));
    for _ in 0..2 {
        let r = node.send(Req::get("shop.test", "/a").header("cookie", "session=1")).await?;
        assert_eq!(r.cache_status().fwd(), Some("bypass"), "{}", r.summary());
    }
    assert_eq!(origin.count("/a"), 2);
    // Without the cookie the object is cached as usual, and the bypassed fetches stored nothing.
    let first = node.get("shop.test", "/a").await?;
    assert_eq!(first.cache_status().fwd(), Some("uri-miss"), "{}", first.summary());
    assert!(node.get("shop.test", "/a").await?.cache_status().hit());
    Ok(())
}

#[tokio::test]
async fn request_and_response_fields_are_set_and_removed() -> anyhow::Result<()> {
    let (origin, node) = shop_with_lines(&[
        r#"rules = [{ match = { paths = ["/h"] }, request_headers = { set = { "x-edge-path" = "{path}?{query.v}" }, remove = ["x-secret"] }, response_headers = { set = { "x-frame-options" = "DENY" }, append = { "x-served" = "{host}" }, remove = ["x-powered-by"] } }]"#,
    ])
    .await?;
    origin.route("/h", Reply::ok("h").header("x-powered-by", "php").header("x-served", "origin"));
    let resp = node.send(Req::get("shop.test", "/h?v=9").header("x-secret", "s")).await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    assert!(resp.header("x-powered-by").is_none(), "{}", resp.summary());
    let served: Vec<_> = resp.headers.get_all("x-served").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(served, ["origin", "shop.test"]);
    let seen = origin.last("/h")?;
    assert_eq!(seen.header("x-edge-path"), Some("/h?9"));
    assert!(seen.header("x-secret").is_none());
    Ok(())
}

#[tokio::test]
async fn plain_http_is_redirected_to_https_with_path_and_query() -> anyhow::Result<()> {
    let (origin, node) = shop_with_lines(&[
        "https_redirect = true",
        r#"rules = [{ match = { paths = ["/private/*"] }, deny = { status = 451 } }]"#,
    ])
    .await?;
    // HTTP→HTTPS comes first, with the path and query kept.
    let plain = node.get("shop.test", "/a/b?c=d").await?;
    assert_eq!(plain.status, 301);
    assert_eq!(plain.header("location"), Some("https://shop.test/a/b?c=d"));
    assert_eq!(origin.total(), 0, "nothing reached the origin");
    Ok(())
}

#[tokio::test]
async fn rule_redirects_and_denials() -> anyhow::Result<()> {
    let (origin, node) = shop_with_lines(&[
        r#"rules = [{ match = { paths = ["/old/*"] }, redirect = { to = "https://new.test{path}", status = 308, query = "drop" } }, { match = { paths = ["/keep/*"] }, redirect = { to = "/new{path}" } }, { match = { paths = ["/private/*"] }, deny = { status = 451, body = "unavailable here" } }]"#,
    ])
    .await?;
    let moved = node.get("shop.test", "/old/x?y=1").await?;
    assert_eq!((moved.status.as_u16(), moved.header("location")), (308, Some("https://new.test/old/x")));
    let kept = node.get("shop.test", "/keep/x?y=1").await?;
    assert_eq!((kept.status.as_u16(), kept.header("location")), (301, Some("/new/keep/x?y=1")));
    let denied = node.get("shop.test", "/private/doc").await?;
    assert_eq!((denied.status.as_u16(), denied.text().as_str()), (451, "unavailable here"));
    assert_eq!(origin.total(), 0);
    let log = node.access_log_for(denied.request_id().unwrap_or_default()).await?;
    assert_eq!(log["status"], 451, "{log}");
    Ok(())
}

#[tokio::test]
async fn error_pages_stand_in_for_the_nodes_own_errors_and_the_origins_5xx() -> anyhow::Result<()> {
    let down = refused_addr().await?;
    let origin = Origin::start().await?;
    let page = r#"error_pages = [{ status = "502", body = "<h1>we are down</h1>" }, { status = "5xx", body = "<h1>origin trouble</h1>", upstream = true }]"#;
    let config =
        NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], format!("http://{down}")).line(page))
            .service(ServiceSpec::new("up", &["up.test"], origin.url()).line(page));
    let node = EdgeNode::start(config).await?;
    let bad = node.get("shop.test", "/x").await?;
    assert_eq!(bad.status, 502, "{}", bad.summary());
    assert_eq!(bad.text(), "<h1>we are down</h1>");
    assert_eq!(bad.header("content-type"), Some("text/html; charset=utf-8"));

    origin.route("/503", Reply::status(503).body("origin stack trace").header("retry-after", "5"));
    let replaced = node.get("up.test", "/503").await?;
    assert_eq!(replaced.status, 503);
    assert_eq!(replaced.text(), "<h1>origin trouble</h1>");
    assert_eq!(replaced.header("retry-after"), Some("5"));
    origin.route("/ok", Reply::ok("fine"));
    assert_eq!(node.get("up.test", "/ok").await?.text(), "fine");
    Ok(())
}

#[test]
fn check_config_names_the_rule_field_that_is_wrong() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let service = ServiceSpec::new("shop", &["shop.test"], "http://127.0.0.1:8080")
        .line(r#"rules = [{ match = { paths = ["/a/*"] } }, { response_headers = { set = { "x-a" = "a\r\nSet-Cookie: x=1" } } }, { redirect = { to = "{scheme}://{host}{path}" } }]"#);
    let path = NodeConfig::with_service(service).write(dir.path())?;
    let out = Command::new(binary()?).arg("check-config").arg(&path).output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("services[0].rules[1].response_headers.set"), "{text}");
    assert!(text.contains("control character"), "{text}");
    Ok(())
}

#[tokio::test]
async fn the_api_refuses_invalid_rules_with_field_paths() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    let cases = [
        (json!({"rules": [{"redirect": {"to": "{scheme}://{host}{path}"}}]}), "rules[0].redirect.to", "loop"),
        (
            json!({"rules": [{"request_headers": {"set": {"Host": "evil.test"}}}]}),
            "rules[0].request_headers.set.Host",
            "cannot change",
        ),
        (
            json!({"rules": [{"match": {"paths": ["/a"]}, "cache": {"edge_ttl": "0s"}}]}),
            "rules[0].cache.edge_ttl",
            "more than 0",
        ),
        (json!({"cache_key": {"query": "ignore", "query_include": ["id"]}}), "cache_key.query", "would do nothing"),
        (json!({"error_pages": [{"status": "600", "body": "x"}]}), "error_pages[0].status", "write \"4xx\""),
        (json!({"rules": [{"match": {"country": ["DE"]}}]}), "rules[0].match.country", "unknown field"),
    ];
    for (extra, path, fragment) in cases {
        let mut body = json!({"hosts": ["shop.example"], "origin": "https://o.example"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let resp = cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), &body.to_string()).await?;
        let error = expect_error(&resp, 400, "invalid_config")?;
        assert_eq!(error["fields"][0]["path"], path, "{body}: {error}");
        assert!(error["fields"][0]["message"].as_str().is_some_and(|m| m.contains(fragment)), "{body}: {error}");
    }
    Ok(())
}

#[tokio::test]
async fn a_tenants_rules_through_the_api_reach_the_node_and_stay_with_its_service() -> anyhow::Result<()> {
    let fleet = Fleet::start(FleetSpec::one_edge()).await?;
    fleet.origin.route("/", Reply::ok("home").cache_control("max-age=600"));
    fleet.origin.route("/p", Reply::ok("p").cache_control("max-age=600"));
    fleet
        .create_shop(json!({
            "cache_key": {"query_exclude": ["utm_*"]},
            "rules": [{"match": {"paths": ["/p"]}, "response_headers": {"set": {"x-rule": "shop"}}}]
        }))
        .await?;
    let edge = &fleet.edges[0];
    let first = edge.get("shop.test", "/p?utm_source=a").await?;
    assert_eq!(first.header("x-rule"), Some("shop"), "{}", first.summary());
    let second = edge.get("shop.test", "/p?utm_source=b").await?;
    assert!(second.cache_status().hit(), "{}", second.summary());
    assert_eq!(fleet.origin.count("/p"), 1);
    // A purge through the control plane, by the URL as a client sent it.
    fleet.purge(json!({"urls": ["shop.test/p?utm_source=zzz"]})).await?;
    let purged = edge.get("shop.test", "/p").await?;
    assert!(!purged.cache_status().hit(), "{}", purged.summary());
    Ok(())
}

#[tokio::test]
async fn https_requests_are_served_with_hsts_and_plain_ones_redirected_without_it() -> anyhow::Result<()> {
    let ca = outpost_tests::TestCa::new("rules test CA")?;
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home"));
    let service = ServiceSpec::new("shop", &["shop.test"], origin.url())
        .line("https_redirect = true")
        .line(r#"hsts = { max_age = "365d", include_subdomains = true }"#);
    let node = EdgeNode::start(NodeConfig::with_service(service).certificate(ca.issue(&["shop.test"])?)).await?;
    let secure = node.send(Req::get("shop.test", "/").tls(&ca, "shop.test")?).await?;
    assert_eq!(secure.status, 200, "{}", secure.summary());
    assert_eq!(secure.header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    let plain = node.get("shop.test", "/").await?;
    assert_eq!(plain.status, 301);
    assert!(plain.header("strict-transport-security").is_none(), "RFC 6797 §7.2: not over plain HTTP");
    Ok(())
}
