use std::net::IpAddr;

use http::{Request, Response, StatusCode};
use serde_json::json;

use super::*;

fn rules(extra: serde_json::Value) -> Rules {
    let mut svc = json!({"name": "shop", "hosts": ["shop.test"], "origin": "http://127.0.0.1:1"});
    if let (Some(s), Some(extra)) = (svc.as_object_mut(), extra.as_object()) {
        s.extend(extra.clone());
    }
    let svc: ServiceConfig = serde_json::from_value(svc).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = outpost_config::validate_service(&svc) {
        panic!("{e}");
    }
    Rules::compile(&svc).unwrap_or_else(|e| panic!("{e}"))
}

fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request<EdgeBody> {
    let mut b = Request::builder().method(method).uri(target);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(crate::body::empty()).unwrap_or_else(|e| panic!("{e}"))
}

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

fn answer(r: &Rules, req: &mut Request<EdgeBody>, tls: bool) -> Option<(u16, Option<String>)> {
    match r.apply("shop.test", req, CLIENT, tls) {
        Flow::Respond(resp) => Some((
            resp.status().as_u16(),
            resp.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from),
        )),
        Flow::Continue(_) => None,
    }
}

#[test]
fn answers_redirects_and_denials() {
    let set = rules(json!({
        "rules": [
            {"match": {"paths": ["/old/*"]}, "redirect": {"to": "https://new.test{path}", "status": 308}},
            {"match": {"paths": ["/drop/*"]}, "redirect": {"to": "/kept?x=1", "query": "drop"}},
            {"match": {"paths": ["/keep/*"]}, "redirect": {"to": "/kept?x=1"}},
            {"match": {"paths": ["/admin/*"], "client_ips": ["192.0.2.0/24"]}, "deny": {"status": 451}},
            {"match": {"paths": ["/admin/*"]}, "response_headers": {"set": {"x-admin": "1"}}}
        ]
    }));
    let https = rules(json!({"https_redirect": true}));
    let https_308 = rules(json!({"https_redirect": true, "https_redirect_status": 308}));
    /// (what, rules, target, over TLS, the answer's status and Location)
    type Case<'a> = (&'a str, &'a Rules, &'a str, bool, Option<(u16, Option<&'a str>)>);
    let cases: &[Case] = &[
        (
            "rule redirect keeps path and query",
            &set,
            "/old/a?q=1",
            false,
            Some((308, Some("https://new.test/old/a?q=1"))),
        ),
        ("query dropped", &set, "/drop/a?q=1", false, Some((301, Some("/kept?x=1")))),
        ("query kept after the target's own", &set, "/keep/a?q=1", false, Some((301, Some("/kept?x=1&q=1")))),
        ("deny for the network", &set, "/admin/x", false, Some((451, None))),
        ("no rule answers", &set, "/other", false, None),
        (
            "HTTP to HTTPS keeps path and query",
            &https,
            "/a/b?c=d",
            false,
            Some((301, Some("https://shop.test/a/b?c=d"))),
        ),
        ("not over TLS", &https, "/a/b?c=d", true, None),
        ("its status", &https_308, "/", false, Some((308, Some("https://shop.test/")))),
    ];
    for (what, r, target, tls, want) in cases {
        let got = answer(r, &mut request("GET", target, &[]), *tls);
        let want = want.map(|(s, l)| (s, l.map(String::from)));
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn first_match_wins_and_shapes_the_request() {
    let r = rules(json!({
        "cache_key": {"query_exclude": ["utm_*"]},
        "debug_headers": true,
        "rules": [
            {"name": "static", "match": {"paths": ["/static/*"]},
             "cache": {"edge_ttl": "1d", "origin_cache_control": "override", "key": {"query": "ignore"}},
             "request_headers": {"set": {"x-from": "{client_ip} {query.v}"}, "remove": ["cookie"]}},
            {"name": "never", "match": {"paths": ["/static/*"]}, "cache": {"bypass": true}},
            {"name": "lang", "match": {"paths": ["/i18n/*"]}, "cache": {"key": {"headers": ["accept-language"]}}},
            {"name": "preview", "match": {"query": [{"name": "preview"}]}, "cache": {"bypass": true}}
        ]
    }));
    // The first matching rule's key and fields; the later one with bypass never applies.
    let mut req = request("GET", "/static/a.js?v=3&utm_source=x", &[("cookie", "a=1")]);
    let Flow::Continue(applied) = r.apply("shop.test", &mut req, CLIENT, false) else { panic!("answered") };
    assert_eq!(req.uri().to_string(), "/static/a.js", "the rule's key ignores the query");
    assert_eq!(req.headers().get("x-from").and_then(|v| v.to_str().ok()), Some("192.0.2.7 3"));
    assert!(!req.headers().contains_key("cookie"));
    let o = req.extensions().get::<Overrides>().cloned().unwrap_or_default();
    assert!(!o.bypass);
    assert!(o.edge_ttl.as_ref().is_some_and(|t| t.override_origin && t.value == "max-age=86400"));
    assert_eq!(applied.key_debug.as_ref().and_then(|v| v.to_str().ok()), Some("shop.test/static/a.js"));

    // No rule: the service's key drops utm_*.
    let mut req = request("GET", "/p?utm_medium=m&id=1", &[]);
    let Flow::Continue(applied) = r.apply("shop.test", &mut req, CLIENT, false) else { panic!("answered") };
    assert_eq!(req.uri().to_string(), "/p?id=1");
    assert!(req.extensions().get::<Overrides>().is_none(), "nothing for the cache: no extension");
    assert_eq!(applied.rule, None);

    // Header values in the key.
    let mut req = request("GET", "/i18n/x", &[("accept-language", "de")]);
    let Flow::Continue(applied) = r.apply("shop.test", &mut req, CLIENT, false) else { panic!("answered") };
    let o = req.extensions().get::<Overrides>().cloned().unwrap_or_default();
    assert_eq!(o.key_extra.as_deref(), Some("\u{1c}h.accept-language=de"));
    assert_eq!(
        applied.key_debug.as_ref().and_then(|v| v.to_str().ok()),
        Some("shop.test/i18n/x; h.accept-language=de")
    );

    // Bypass by query parameter.
    let mut req = request("GET", "/x?preview=1", &[]);
    let Flow::Continue(_) = r.apply("shop.test", &mut req, CLIENT, false) else { panic!("answered") };
    assert!(req.extensions().get::<Overrides>().is_some_and(|o| o.bypass));
}

#[test]
fn finishes_responses() {
    let r = rules(json!({
        "hsts": {"max_age": "365d", "include_subdomains": true},
        "debug_headers": true,
        "rules": [{"name": "static", "match": {"paths": ["/static/*"]},
                   "cache": {"browser_ttl": "1h"},
                   "response_headers": {"set": {"x-path": "{path}"}, "append": {"vary": "x-a"}, "remove": ["server"]}}],
        "error_pages": [
            {"status": "5xx", "body": "<h1>down</h1>", "upstream": true},
            {"status": "502", "body": "<h1>bad gateway</h1>"},
            {"status": "4xx", "body": "<h1>client</h1>"}
        ]
    }));
    let vars = |path, tls| Vars { host: "shop.test", path, query: None, client_ip: CLIENT, tls };
    let applied = Applied { rule: Some(0), key_debug: None };
    let mut upstream = Response::new(crate::body::empty());
    upstream.headers_mut().insert("server", http::HeaderValue::from_static("origin"));
    upstream.headers_mut().insert("vary", http::HeaderValue::from_static("accept"));
    upstream.headers_mut().insert("cache-control", http::HeaderValue::from_static("max-age=60"));
    let resp = r.finish(&applied, &vars("/static/a", true), upstream);
    let h = resp.headers();
    assert_eq!(h.get("x-path").and_then(|v| v.to_str().ok()), Some("/static/a"));
    assert_eq!(h.get_all("vary").iter().count(), 2, "append keeps the origin's line");
    assert!(!h.contains_key("server"));
    assert_eq!(h.get("cache-control").and_then(|v| v.to_str().ok()), Some("max-age=3600"));
    assert_eq!(
        h.get("strict-transport-security").and_then(|v| v.to_str().ok()),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(h.get("outpost-rule").and_then(|v| v.to_str().ok()), Some("static"));
    let plain = r.finish(&Applied::default(), &vars("/", false), Response::new(crate::body::empty()));
    assert!(!plain.headers().contains_key("strict-transport-security"), "RFC 6797 §7.2: never over plain HTTP");

    let page = |status: u16, own: bool| {
        let mut resp = Response::new(crate::body::full("origin text"));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let resp = match own {
            true => r.error(&Applied::default(), &vars("/", false), resp),
            false => r.finish(&Applied::default(), &vars("/", false), resp),
        };
        (resp.status().as_u16(), resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(String::from))
    };
    let html = Some("text/html; charset=utf-8".to_owned());
    assert_eq!(page(502, true), (502, html.clone()), "own 502: the exact page");
    assert_eq!(page(504, true), (504, html.clone()), "own 504: the class page");
    assert_eq!(page(404, true), (404, html.clone()));
    assert_eq!(page(503, false), (503, html.clone()), "upstream 5xx replaced when asked");
    assert_eq!(page(502, false), (502, None), "the 502 page is not for upstream responses");
    assert_eq!(page(404, false), (404, None), "an upstream 4xx is the origin's own");
}

#[test]
fn purge_urls_are_keyed_as_requests_are() {
    let r = rules(json!({
        "cache_key": {"query": "sort", "query_exclude": ["utm_*"]},
        "rules": [{"match": {"paths": ["/static/*"]}, "cache": {"key": {"query": "ignore"}}}]
    }));
    assert_eq!(r.purge_url("shop.test/a?utm_source=x&b=2&a=1"), "shop.test/a?a=1&b=2");
    assert_eq!(r.purge_url("shop.test/static/x.js?v=1"), "shop.test/static/x.js");
    assert_eq!(r.purge_url("shop.test/a"), "shop.test/a");
    assert_eq!(r.purge_url("shop.test/a?utm_source=x"), "shop.test/a");
}
