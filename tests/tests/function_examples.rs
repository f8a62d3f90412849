//! The SDK's examples (`wasm-sdk/examples/`), each built for wasm32-wasip2 and bound to a service
//! of a real node: what the client gets, and what the origin and backends saw.

use std::path::Path;

use outpost_tests::wasm::{GuestKind, build_guest, repo_root};
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec, check_error};

/// Builds example `name` of the SDK (once per test process).
fn example(name: &str) -> anyhow::Result<std::path::PathBuf> {
    build_guest(&repo_root()?.join("wasm-sdk"), GuestKind::Example, name)
}

/// A TOML basic string.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The `[services.function]` table of the last service: the component, its variables and its
/// named backends.
fn function_table(wasm: &Path, env: &[(&str, &str)], backends: &[(&str, String)]) -> String {
    let inline = |pairs: Vec<(String, String)>| {
        let items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {}", q(v))).collect();
        format!("{{ {} }}", items.join(", "))
    };
    let mut t = format!("\n[services.function]\nwasm = {}\n", q(&wasm.display().to_string()));
    if !env.is_empty() {
        t += &format!("env = {}\n", inline(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()));
    }
    if !backends.is_empty() {
        t += &format!("backends = {}\n", inline(backends.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()));
    }
    // One compiled-code cache for every node of the test run: each example compiles once, not
    // once per node (a loaded machine can take most of the start-up bound to compile one).
    if let Ok(root) = repo_root() {
        let compiled = root.join("target").join("wasm-guests").join("compiled");
        t += &format!("\n[functions]\ncache_dir = {}\n", q(&compiled.display().to_string()));
    }
    t
}

/// An origin, and a node named `node_name` whose service "shop" (`shop.test`) runs the example.
async fn shop_running(
    example_name: &str,
    node_name: &str,
    env: &[(&str, &str)],
    backends: &[(&str, String)],
) -> anyhow::Result<(Origin, EdgeNode)> {
    let wasm = example(example_name)?;
    let origin = Origin::start().await?;
    let mut config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], origin.url())).name(node_name);
    config.extra = function_table(&wasm, env, backends);
    let node = EdgeNode::start(config).await?;
    Ok((origin, node))
}

/// The PoP a function sees on a node without `node.pop`: the node's name.
const POP: &str = "fra-1";

#[tokio::test]
async fn hello_answers_at_the_edge() -> anyhow::Result<()> {
    let (origin, node) = shop_running("hello", POP, &[], &[]).await?;
    let resp = node.send(Req::get("shop.test", "/anything?x=1")).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), format!("hello from {POP}\n"));
    assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(resp.has("x-request-id"), "{}", resp.summary());
    assert_eq!(origin.total(), 0, "the function answered without the origin");
    Ok(())
}

#[tokio::test]
async fn header_rewrite_changes_both_directions() -> anyhow::Result<()> {
    let (origin, node) = shop_running("header_rewrite", POP, &[], &[]).await?;
    origin.route(
        "/new/page",
        Reply::ok("the page").header("server", "origin-httpd/1.0").header("x-powered-by", "php").header("x-kept", "1"),
    );
    let resp = node.send(Req::get("shop.test", "/old/page").header("cookie", "session=secret")).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "the page");
    assert_eq!(resp.header("x-powered-by"), None, "{}", resp.summary());
    assert_ne!(resp.header("server"), Some("origin-httpd/1.0"), "{}", resp.summary());
    assert_eq!(resp.header("x-kept"), Some("1"));
    assert_eq!(resp.header("x-rewritten-by"), Some(POP));

    let seen = origin.last("/new/page")?;
    assert_eq!(seen.header("cookie"), None, "cookies stay at the edge");
    assert_eq!(seen.header("x-edge-pop"), Some(POP));
    assert_eq!(origin.count("/old/page"), 0);
    Ok(())
}

/// `<expiry>.<hex HMAC-SHA256(secret, "<path>\n<expiry>")>`, as `examples/auth_gate.rs` checks.
fn token(secret: &str, path: &str, expiry: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{path}\n{expiry}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{expiry}.{hex}")
}

#[tokio::test]
async fn auth_gate_lets_only_signed_requests_through() -> anyhow::Result<()> {
    const SECRET: &str = "s3cret-key";
    let (origin, node) = shop_running("auth_gate", POP, &[("AUTH_SECRET", SECRET)], &[]).await?;
    origin.route("/private/doc", Reply::ok("members only"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let get = |path: &str| Req::get("shop.test", path);

    let refused = [
        ("no token", get("/private/doc")),
        (
            "forged",
            get("/private/doc").header("authorization", format!("Bearer {}", token("wrong", "/private/doc", now + 60))),
        ),
        (
            "expired",
            get("/private/doc").header("authorization", format!("Bearer {}", token(SECRET, "/private/doc", now - 1))),
        ),
        (
            "other path",
            get("/private/doc").header("authorization", format!("Bearer {}", token(SECRET, "/private/x", now + 60))),
        ),
        ("malformed", get("/private/doc?token=12345")),
    ];
    for (what, req) in refused {
        let resp = node.send(req).await?;
        check_error(&resp, 403).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    }
    assert_eq!(origin.count("/private/doc"), 0, "refused requests never reach the origin");

    let valid = token(SECRET, "/private/doc", now + 60);
    let resp = node.send(get("/private/doc").header("authorization", format!("Bearer {valid}"))).await?;
    assert_eq!((resp.status.as_u16(), resp.text().as_str()), (200, "members only"), "{}", resp.summary());
    assert_eq!(origin.last("/private/doc")?.header("authorization"), None, "the token stays at the edge");

    let resp = node.send(get(&format!("/private/doc?token={valid}&v=2"))).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(origin.last("/private/doc")?.path_and_query, "/private/doc?v=2", "the token leaves the query");
    Ok(())
}

#[tokio::test]
async fn ab_split_keeps_visitors_on_their_variant() -> anyhow::Result<()> {
    // Every new visitor goes to b, so the assignment is known.
    let (origin, node) = shop_running("ab_split", POP, &[("AB_PERCENT_B", "100")], &[]).await?;
    origin.route("/page", Reply::ok("version a"));
    origin.route("/b/page", Reply::ok("version b"));

    let new = node.send(Req::get("shop.test", "/page")).await?;
    assert_eq!(new.text(), "version b", "{}", new.summary());
    assert_eq!(new.header("x-ab-variant"), Some("b"));
    let cookie = new.header("set-cookie").unwrap_or("");
    assert!(cookie.starts_with("ab=b;"), "a new visitor gets its variant's cookie: {cookie:?}");

    for (cookie, body) in [("ab=a", "version a"), ("theme=dark; ab=b", "version b")] {
        let resp = node.send(Req::get("shop.test", "/page").header("cookie", cookie)).await?;
        assert_eq!(resp.text(), body, "cookie {cookie:?}: {}", resp.summary());
        assert_eq!(resp.header("set-cookie"), None, "a returning visitor keeps the cookie it has");
    }
    assert_eq!(origin.count("/page"), 1);
    assert_eq!(origin.count("/b/page"), 2);
    Ok(())
}

#[tokio::test]
async fn compose_json_joins_two_backends_through_the_cache() -> anyhow::Result<()> {
    let inventory = Origin::start().await?;
    let (origin, node) = shop_running("compose_json", POP, &[], &[("inventory", inventory.url())]).await?;
    origin.route("/api/products/42", Reply::ok(r#"{"name":"lamp"}"#).cache_control("max-age=60"));
    inventory.route("/stock/42", Reply::ok(r#"{"count":3}"#).cache_control("max-age=60"));

    for round in 0..2 {
        let resp = node.send(Req::get("shop.test", "/product/42")).await?;
        assert_eq!(resp.status, 200, "round {round}: {}", resp.summary());
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let doc: serde_json::Value = serde_json::from_slice(&resp.body)?;
        assert_eq!(doc, serde_json::json!({"product": {"name": "lamp"}, "stock": {"count": 3}, "pop": POP}));
    }
    // The second call of each fetch is a cache hit in the node.
    assert_eq!(origin.count("/api/products/42"), 1);
    assert_eq!(inventory.count("/stock/42"), 1);

    let resp = node.send(Req::get("shop.test", "/product/a%20b")).await?;
    check_error(&resp, 404)?;
    Ok(())
}

#[tokio::test]
async fn pop_redirect_sends_each_pop_to_its_region() -> anyhow::Result<()> {
    let env = [
        ("REDIRECTS", "fra-1=https://eu.shop.test, iad-1=https://us.shop.test/"),
        ("DEFAULT_REDIRECT", "https://www.shop.test"),
    ];
    for (node_name, location) in [
        ("fra-1", "https://eu.shop.test/a/b?c=1"),
        ("iad-1", "https://us.shop.test/a/b?c=1"),
        ("sin-1", "https://www.shop.test/a/b?c=1"),
    ] {
        let (origin, node) = shop_running("pop_redirect", node_name, &env, &[]).await?;
        let resp = node.send(Req::get("shop.test", "/a/b?c=1")).await?;
        assert_eq!(resp.status, 302, "{node_name}: {}", resp.summary());
        assert_eq!(resp.header("location"), Some(location), "{node_name}");
        assert_eq!(origin.total(), 0);
    }
    Ok(())
}

#[tokio::test]
async fn failures_answer_with_the_right_status() -> anyhow::Result<()> {
    let (origin, node) = shop_running("errors", POP, &[], &[]).await?;

    // A panic answers 500 in the node's error format, and the node keeps serving.
    let resp = node.send(Req::get("shop.test", "/panic")).await?;
    check_error(&resp, 500)?;
    assert!(resp.text().contains("the function panicked"), "{}", resp.text());

    let resp = node.send(Req::get("shop.test", "/denied")).await?;
    check_error(&resp, 502)?;
    assert!(resp.text().contains("destination not allowed"), "{}", resp.text());

    let resp = node.send(Req::post("shop.test", "/upload").body("0123456789abcdefX")).await?;
    check_error(&resp, 413)?;
    let resp = node.send(Req::post("shop.test", "/upload").body("0123456789abcdef")).await?;
    assert_eq!((resp.status.as_u16(), resp.text().as_str()), (200, "got 16 bytes\n"), "{}", resp.summary());

    check_error(&node.send(Req::get("shop.test", "/elsewhere")).await?, 404)?;
    assert_eq!(origin.total(), 0);

    // The host closes a fetch's body stream it does not forward; the upload stops without an
    // error (it used to fail the fetch whenever the close came first) and the answer comes back.
    origin.route("/ignored", Reply::ok("the origin's answer"));
    for _ in 0..3 {
        let resp = node.send(Req::get("shop.test", "/ignored-upload")).await?;
        assert_eq!((resp.status.as_u16(), resp.text().as_str()), (200, "the origin's answer"), "{}", resp.summary());
    }
    let seen = origin.last("/ignored")?;
    assert_eq!(seen.method.as_str(), "GET");
    assert!(seen.body.is_empty(), "a GET's body reached the origin: {} bytes", seen.body.len());
    Ok(())
}
