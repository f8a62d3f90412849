//! The control plane's API, end to end: a real `control-plane` process with an operator and two
//! tenants, `acme` and `globex`, each scenario on its own data file. The node protocol's
//! scenarios play the nodes by hand: register, read the NDJSON stream line by line, ack.

use http::Method;
use outpost_tests::Req;
use outpost_tests::control::{ControlConfig, ControlPlane, NODE_TOKEN, NodeStream, OPERATOR, expect_error, json};
use serde_json::{Value, json};

const ACME: Option<&str> = Some("acme-token");
const GLOBEX: Option<&str> = Some("globex-token");
const OPS: Option<&str> = Some(OPERATOR);

fn shop_config() -> Value {
    json!({"hosts": ["shop.example", "*.shop.example"], "origin": "https://origin.shop.example", "default_ttl": "1m"})
}

async fn put_service(cp: &ControlPlane, token: Option<&str>, id: &str, config: &Value) -> anyhow::Result<Value> {
    let resp = cp.call(Method::PUT, &format!("/v1/services/{id}"), token, &config.to_string()).await?;
    anyhow::ensure!(resp.status.is_success(), "PUT {id}: {} {}", resp.status, resp.text());
    json(&resp)
}

async fn get_json(cp: &ControlPlane, token: Option<&str>, path: &str) -> anyhow::Result<Value> {
    let resp = cp.call(Method::GET, path, token, "").await?;
    anyhow::ensure!(resp.status == 200, "GET {path}: {} {}", resp.status, resp.text());
    json(&resp)
}

async fn events(cp: &ControlPlane) -> anyhow::Result<Vec<Value>> {
    let page = get_json(cp, OPS, "/v1/events?from=1&limit=1000").await?;
    Ok(page["events"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn a_tenant_creates_reads_replaces_lists_and_deletes_a_service() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;

    let created = cp.call(Method::PUT, "/v1/services/shop", ACME, &shop_config().to_string()).await?;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("location"), Some("/v1/services/shop"));
    let created = json(&created)?;
    assert_eq!(
        (created["id"].as_str(), created["tenant"].as_str(), created["version"].as_u64()),
        (Some("shop"), Some("acme"), Some(1))
    );
    assert_eq!(created["config"]["name"], "shop", "the name comes from the path");
    assert_eq!(created["config"]["hosts"][1], "*.shop.example");

    let read = get_json(&cp, ACME, "/v1/services/shop").await?;
    assert_eq!(read, created);

    let mut changed = shop_config();
    changed["default_ttl"] = json!("5m");
    let replaced = cp.call(Method::PUT, "/v1/services/shop", ACME, &changed.to_string()).await?;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let replaced = json(&replaced)?;
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["config"]["default_ttl"], "5m");

    put_service(&cp, ACME, "blog", &json!({"hosts": ["blog.example"], "origin": "http://blog-origin.example"})).await?;
    let list = get_json(&cp, ACME, "/v1/services").await?;
    let ids: Vec<&str> = list["services"].as_array().into_iter().flatten().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["blog", "shop"]);
    assert!(list.get("next").is_none(), "{list}");
    let page = get_json(&cp, ACME, "/v1/services?limit=1").await?;
    assert_eq!((page["services"][0]["id"].as_str(), page["next"].as_str()), (Some("blog"), Some("blog")));
    let page = get_json(&cp, ACME, "/v1/services?limit=1&after=blog").await?;
    assert_eq!(page["services"][0]["id"], "shop");

    let deleted = cp.call(Method::DELETE, "/v1/services/shop", ACME, "").await?;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(json(&deleted)?, json!({"id": "shop", "deleted": true, "seq": 4}));
    expect_error(&cp.call(Method::GET, "/v1/services/shop", ACME, "").await?, 404, "not_found")?;
    expect_error(&cp.call(Method::DELETE, "/v1/services/shop", ACME, "").await?, 404, "not_found")?;

    // Every change is an event, numbered without gaps; a service's version is its event's seq.
    let log = events(&cp).await?;
    let summary: Vec<(u64, &str, &str)> = log
        .iter()
        .map(|e| {
            let service = e["service"]["id"].as_str().or(e["id"].as_str()).unwrap_or("");
            (e["seq"].as_u64().unwrap_or(0), e["type"].as_str().unwrap_or(""), service)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "service_put", "shop"),
            (2, "service_put", "shop"),
            (3, "service_put", "blog"),
            (4, "service_deleted", "shop")
        ]
    );
    assert_eq!(log[1]["service"]["config"]["default_ttl"], "5m", "a put event carries the whole config");
    Ok(())
}

#[tokio::test]
async fn a_tenant_never_sees_purges_or_deletes_another_tenants_service() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    let purge = cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"tags": ["t"]}"#).await?;
    let purge_id = json(&purge)?["id"].as_str().unwrap_or_default().to_owned();

    // Another tenant's service answers as a missing one does, whatever the verb.
    for (method, path, body) in [
        (Method::GET, "/v1/services/shop", ""),
        (Method::DELETE, "/v1/services/shop", ""),
        (Method::POST, "/v1/services/shop/purge", r#"{"all": true}"#),
        (Method::POST, "/service/shop/purge/t", ""),
        (Method::POST, "/service/shop/purge_all", ""),
        (Method::POST, "/service/shop/purge", r#"{"surrogate_keys": ["t"]}"#),
        (Method::POST, "/zones/shop/purge_cache", r#"{"purge_everything": true}"#),
    ] {
        let resp = cp.call(method.clone(), path, GLOBEX, body).await?;
        let error = expect_error(&resp, 404, "not_found")?;
        assert_eq!(error["message"], "service \"shop\" not found", "{method} {path}");
    }
    let missing = expect_error(&cp.call(Method::GET, "/v1/services/nothing", GLOBEX, "").await?, 404, "not_found")?;
    assert_eq!(missing["message"], "service \"nothing\" not found", "the same answer as for acme's");
    expect_error(&cp.call(Method::GET, &format!("/v1/purges/{purge_id}"), GLOBEX, "").await?, 404, "not_found")?;

    // Ids are global: taking one that exists is refused, without touching it.
    let taken = cp
        .call(
            Method::PUT,
            "/v1/services/shop",
            GLOBEX,
            &json!({"hosts": ["g.example"], "origin": "http://o"}).to_string(),
        )
        .await?;
    expect_error(&taken, 409, "id_taken")?;
    // So are hosts: a host of acme's service cannot be claimed by globex.
    let host = cp
        .call(
            Method::PUT,
            "/v1/services/gshop",
            GLOBEX,
            &json!({"hosts": ["g.example", "*.shop.example"], "origin": "http://o"}).to_string(),
        )
        .await?;
    let error = expect_error(&host, 409, "host_taken")?;
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("*.shop.example") && !m.contains("\"shop\"")),
        "{error}"
    );

    let globex_list = get_json(&cp, GLOBEX, "/v1/services").await?;
    assert_eq!(globex_list["services"], json!([]));
    expect_error(&cp.call(Method::GET, "/v1/services?tenant=acme", GLOBEX, "").await?, 403, "forbidden")?;
    expect_error(&cp.call(Method::GET, "/v1/events", GLOBEX, "").await?, 403, "forbidden")?;
    expect_error(&cp.call(Method::GET, "/v1/events", ACME, "").await?, 403, "forbidden")?;

    // acme's service is as it was; the operator sees everything.
    assert_eq!(get_json(&cp, ACME, "/v1/services/shop").await?["version"], 1);
    assert_eq!(get_json(&cp, ACME, &format!("/v1/purges/{purge_id}")).await?["service"], "shop");
    put_service(&cp, GLOBEX, "gshop", &json!({"hosts": ["g.example"], "origin": "http://o"})).await?;
    let all = get_json(&cp, OPS, "/v1/services").await?;
    let owners: Vec<(&str, &str)> = all["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["id"].as_str()?, s["tenant"].as_str()?)))
        .collect();
    assert_eq!(owners, [("gshop", "globex"), ("shop", "acme")]);
    let acme_only = get_json(&cp, OPS, "/v1/services?tenant=acme").await?;
    assert_eq!(acme_only["services"].as_array().map(Vec::len), Some(1));
    assert_eq!(get_json(&cp, OPS, "/v1/services/shop").await?["tenant"], "acme");
    // The operator creates for a tenant it names, and may act on any service.
    let made = cp
        .call(
            Method::PUT,
            "/v1/services/news?tenant=globex",
            OPS,
            &json!({"hosts": ["news.example"], "origin": "http://o"}).to_string(),
        )
        .await?;
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(json(&made)?["tenant"], "globex");
    assert_eq!(get_json(&cp, GLOBEX, "/v1/services/news").await?["tenant"], "globex");
    let purged = cp.call(Method::POST, "/v1/services/shop/purge", OPS, r#"{"all": true}"#).await?;
    assert_eq!(purged.status, 202, "{}", purged.text());
    Ok(())
}

#[tokio::test]
async fn every_bad_input_gets_its_error() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().limit("max_body_size = \"1KiB\"")).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;

    // Tokens.
    let missing = cp.call(Method::GET, "/v1/services", None, "").await?;
    expect_error(&missing, 401, "unauthorized")?;
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    expect_error(&cp.call(Method::GET, "/v1/services", Some("wrong-token"), "").await?, 401, "unauthorized")?;
    let basic = Req::get("cp", "/v1/services").header("authorization", "Basic YWNtZTp4");
    expect_error(&cp.send(basic).await?, 401, "unauthorized")?;
    // A missing token is answered before the body is looked at.
    expect_error(&cp.call(Method::PUT, "/v1/services/shop", None, "{").await?, 401, "unauthorized")?;

    // Bodies.
    let bad_json = cp.call(Method::PUT, "/v1/services/shop", ACME, "{\"hosts\": [").await?;
    let error = expect_error(&bad_json, 400, "bad_json")?;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("line 1")), "{error}");
    expect_error(&cp.call(Method::POST, "/v1/services/shop/purge", ACME, "tags=t").await?, 400, "bad_json")?;

    let cases: &[(Value, &str, &str)] = &[
        (
            json!({"hosts": ["shop.example"], "origin": "https://o", "retry": {"max_retries": 11}}),
            "retry.max_retries",
            "use 0 to 10",
        ),
        (json!({"hosts": ["shop.example"], "origin": "ftp://o"}), "origin", "unsupported scheme"),
        (json!({"hosts": ["shop.example"], "orign": "https://o"}), "orign", "unknown field"),
        (
            json!({"hosts": ["shop.example"], "origin": "https://o", "compression": {"prefer": ["br", "br"]}}),
            "compression.prefer[1]",
            "list each coding once",
        ),
        (json!({"hosts": ["shop.example"]}), "origin", "missing"),
        (json!({"name": "other", "hosts": ["shop.example"], "origin": "https://o"}), "name", "not the service id"),
        (
            json!({"hosts": ["shop.example"], "origin": "https://o", "origin_ca": "/etc/ssl/ca.pem"}),
            "origin_ca",
            "only the operator",
        ),
        (json!(["shop.example"]), "", "expected a JSON object"),
    ];
    for (body, path, fragment) in cases {
        let resp = cp.call(Method::PUT, "/v1/services/shop", ACME, &body.to_string()).await?;
        let error = expect_error(&resp, 400, "invalid_config")?;
        assert_eq!(error["fields"][0]["path"], *path, "{body}: {error}");
        assert!(error["fields"][0]["message"].as_str().is_some_and(|m| m.contains(fragment)), "{body}: {error}");
    }
    // Every problem at once, each with its path.
    let two = json!({"hosts": [], "origin": "https://o", "default_ttl": "0s"});
    let error =
        expect_error(&cp.call(Method::PUT, "/v1/services/shop", ACME, &two.to_string()).await?, 400, "invalid_config")?;
    let paths: Vec<&str> =
        error["fields"].as_array().into_iter().flatten().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(paths, ["hosts", "default_ttl"], "{error}");
    // Nothing invalid was stored.
    assert_eq!(get_json(&cp, ACME, "/v1/services/shop").await?["version"], 1);

    let invalid_id = cp.call(Method::PUT, "/v1/services/Shop.Example", ACME, &shop_config().to_string()).await?;
    expect_error(&invalid_id, 400, "invalid_request")?;
    let no_owner = cp
        .call(
            Method::PUT,
            "/v1/services/orphan",
            OPS,
            &json!({"hosts": ["o.example"], "origin": "http://o"}).to_string(),
        )
        .await?;
    assert_eq!(expect_error(&no_owner, 400, "invalid_request")?["fields"][0]["path"], "tenant");

    // Unknown things.
    expect_error(&cp.call(Method::GET, "/v1/services/nothing", ACME, "").await?, 404, "not_found")?;
    expect_error(
        &cp.call(Method::POST, "/v1/services/nothing/purge", ACME, r#"{"all": true}"#).await?,
        404,
        "not_found",
    )?;
    expect_error(&cp.call(Method::GET, "/v1/purges/nothing", ACME, "").await?, 404, "not_found")?;
    expect_error(&cp.call(Method::GET, "/v2/services", ACME, "").await?, 404, "not_found")?;
    expect_error(&cp.call(Method::PATCH, "/v1/services/shop", ACME, "{}").await?, 405, "method_not_allowed")?;

    // Purge bodies.
    let purge_cases: &[(&str, &str, &str)] = &[
        (r#"{"urls": ["https://other.example/a"]}"#, "urls[0]", "not one of this service's hosts"),
        (r#"{"prefixes": ["shop.example"]}"#, "prefixes[0]", "not a host and path"),
        (r#"{"tags": ["two words"]}"#, "tags[0]", "whitespace"),
        (r#"{}"#, "", "nothing to purge"),
        (r#"{"all": true, "tags": ["t"]}"#, "all", "without urls"),
        (r#"{"tag": ["t"]}"#, "tag", "unknown field `tag`"),
        (r#"{"urls": "shop.example/a"}"#, "urls", "expected an array"),
    ];
    for (body, path, fragment) in purge_cases {
        let resp = cp.call(Method::POST, "/v1/services/shop/purge", ACME, body).await?;
        let error = expect_error(&resp, 400, "invalid_request")?;
        assert_eq!(error["fields"][0]["path"], *path, "{body}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| m.contains(fragment)), "{body}: {error}");
    }

    // Bounds.
    let big = json!({"hosts": ["shop.example"], "origin": "https://o", "pad": "x".repeat(2048)});
    let error =
        expect_error(&cp.call(Method::PUT, "/v1/services/shop", ACME, &big.to_string()).await?, 413, "body_too_large")?;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("1KiB")), "{error}");
    expect_error(&cp.call(Method::GET, "/v1/services?limit=0", ACME, "").await?, 400, "invalid_request")?;
    expect_error(&cp.call(Method::GET, "/v1/services?limit=1001", ACME, "").await?, 400, "invalid_request")?;
    expect_error(&cp.call(Method::GET, "/v1/services?limit=x", ACME, "").await?, 400, "invalid_request")?;
    expect_error(&cp.call(Method::GET, "/v1/services?page=2", ACME, "").await?, 400, "invalid_request")?;
    expect_error(&cp.call(Method::GET, "/v1/events?from=-1", OPS, "").await?, 400, "invalid_request")?;

    // Nothing of this reached the event log.
    assert_eq!(events(&cp).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_tenant_has_a_bounded_number_of_services() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().limit("max_services_per_tenant = 1")).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    let second = cp
        .call(
            Method::PUT,
            "/v1/services/blog",
            ACME,
            &json!({"hosts": ["b.example"], "origin": "http://o"}).to_string(),
        )
        .await?;
    expect_error(&second, 403, "service_limit")?;
    // Replacing the one it has is not a new service.
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    put_service(&cp, GLOBEX, "blog", &json!({"hosts": ["b.example"], "origin": "http://o"})).await?;
    Ok(())
}

#[tokio::test]
async fn a_tenant_may_not_aim_the_nodes_at_their_own_network() -> anyhow::Result<()> {
    // No allow list, as the control plane starts by default.
    let cp = ControlPlane::start(ControlConfig::default().tenant_upstream_allow(&[])).await?;
    let admin = json!({"hosts": ["shop.example"], "origin": "http://127.0.0.1:9901"});
    let cases: &[(Value, &str, &str)] = &[
        (admin.clone(), "origin", "http://127.0.0.1:9901 is in 127.0.0.0/8, loopback"),
        (json!({"hosts": ["shop.example"], "origin": "http://localhost:9901"}), "origin", "the node itself"),
        (
            json!({"hosts": ["shop.example"], "origin": "http://0x7f000001:9901"}),
            "origin",
            "(127.0.0.1) is in 127.0.0.0/8",
        ),
        (
            json!({"hosts": ["shop.example"], "origins": [{"url": "https://o.example"}, {"url": "http://10.0.0.7", "group": 1}]}),
            "origins[1].url",
            "private (RFC 1918)",
        ),
        (
            json!({"hosts": ["shop.example"], "origin": "https://o.example", "function": {"backends": {"api": "http://[::1]:9901"}}}),
            "function.backends.api",
            "is in ::1/128, loopback",
        ),
        (
            json!({"hosts": ["shop.example"], "origin": "https://o.example", "shields": [{"url": "http://169.254.169.254", "pop": "fra"}]}),
            "shields[0].url",
            "link-local",
        ),
    ];
    for (body, path, fragment) in cases {
        let resp = cp.call(Method::PUT, "/v1/services/shop", ACME, &body.to_string()).await?;
        let error = expect_error(&resp, 400, "invalid_config")?;
        assert_eq!(error["fields"][0]["path"], *path, "{body}: {error}");
        let message = error["fields"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment) && message.contains("limits.tenant_upstream_allow"), "{body}: {error}");
    }
    assert!(events(&cp).await?.is_empty(), "nothing refused was stored");
    // The operator's configs are not judged: it runs the network.
    let resp = cp.call(Method::PUT, "/v1/services/internal?tenant=acme", OPS, &admin.to_string()).await?;
    assert_eq!(resp.status, 201, "{}", resp.text());

    // Loopback allowed (what the harness writes by default): the same origin is accepted, and
    // the networks not listed are still refused.
    let allowing = ControlPlane::start(ControlConfig::default()).await?;
    put_service(&allowing, ACME, "shop", &admin).await?;
    put_service(&allowing, ACME, "blog", &json!({"hosts": ["blog.example"], "origin": "http://localhost:8080"}))
        .await?;
    let private = json!({"hosts": ["wiki.example"], "origin": "http://192.168.0.10"});
    let resp = allowing.call(Method::PUT, "/v1/services/wiki", ACME, &private.to_string()).await?;
    assert_eq!(expect_error(&resp, 400, "invalid_config")?["fields"][0]["path"], "origin");
    Ok(())
}

/// Runs a purge request and returns the purge id from whichever shape the answer has.
async fn purge_id(cp: &ControlPlane, req: Req, expected_status: u16) -> anyhow::Result<String> {
    let resp = cp.send(req).await?;
    let body = json(&resp)?;
    anyhow::ensure!(resp.status.as_u16() == expected_status, "{}: {body}", resp.status);
    let id = body["id"].as_str().or(body["result"]["id"].as_str()).or(body["k1"].as_str());
    id.map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no purge id in {body}"))
}

#[tokio::test]
async fn purges_in_each_shape_get_an_id_and_an_event() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    let bearer = |req: Req| req.header("authorization", "Bearer acme-token");
    let fastly = |req: Req| req.header("fastly-key", "acme-token");
    let post =
        |path: &str, body: &str| Req::post("cp", path).body(body.to_owned()).header("content-type", "application/json");

    // (request, status, expected soft, expected targets)
    let cases: Vec<(Req, u16, bool, Value)> = vec![
        (
            bearer(post(
                "/v1/services/shop/purge",
                r#"{"urls": ["https://shop.example/a?x=1"], "prefixes": ["img.shop.example/p/"], "tags": ["t1"], "soft": true}"#,
            )),
            202,
            true,
            json!([{"kind": "url", "url": "https://shop.example/a?x=1"}, {"kind": "prefix", "prefix": "img.shop.example/p/"}, {"kind": "tag", "tag": "t1"}]),
        ),
        (bearer(post("/v1/services/shop/purge", r#"{"all": true}"#)), 202, false, json!([{"kind": "all"}])),
        (fastly(post("/service/shop/purge/product-42", "")), 200, false, json!([{"kind": "tag", "tag": "product-42"}])),
        (
            fastly(post("/service/shop/purge/product-43", "")).header("fastly-soft-purge", "1"),
            200,
            true,
            json!([{"kind": "tag", "tag": "product-43"}]),
        ),
        (
            fastly(post("/service/shop/purge", "")).header("surrogate-key", "k1 k2"),
            200,
            false,
            json!([{"kind": "tag", "tag": "k1"}, {"kind": "tag", "tag": "k2"}]),
        ),
        (fastly(post("/service/shop/purge_all", "")), 200, false, json!([{"kind": "all"}])),
        (
            bearer(post(
                "/zones/shop/purge_cache",
                r#"{"files": ["https://shop.example/a", {"url": "https://shop.example/b", "headers": {"CF-IPCountry": "US"}}]}"#,
            )),
            200,
            false,
            json!([{"kind": "url", "url": "https://shop.example/a"}, {"kind": "url", "url": "https://shop.example/b"}]),
        ),
        (
            bearer(post("/zones/shop/purge_cache", r#"{"hosts": ["shop.example"]}"#)),
            200,
            false,
            json!([{"kind": "prefix", "prefix": "shop.example/"}]),
        ),
        (
            bearer(post("/zones/shop/purge_cache", r#"{"tags": ["a", "b"]}"#)),
            200,
            false,
            json!([{"kind": "tag", "tag": "a"}, {"kind": "tag", "tag": "b"}]),
        ),
        (
            bearer(post("/zones/shop/purge_cache", r#"{"purge_everything": true}"#)),
            200,
            false,
            json!([{"kind": "all"}]),
        ),
    ];
    let mut ids = Vec::new();
    for (i, (req, status, soft, targets)) in cases.into_iter().enumerate() {
        let what = format!("case {i}: {} {}", req.method, req.path);
        let id = purge_id(&cp, req, status).await.map_err(|e| e.context(what.clone()))?;
        let purge = get_json(&cp, ACME, &format!("/v1/purges/{id}")).await?;
        assert_eq!(purge["service"], "shop", "{what}: {purge}");
        assert_eq!(purge["soft"], soft, "{what}: {purge}");
        assert_eq!(purge["targets"], targets, "{what}: {purge}");
        // No node is live, so none is pending: complete at once.
        assert_eq!((purge["status"].as_str(), purge["complete"].as_bool()), (Some("complete"), Some(true)), "{what}");
        assert_eq!((&purge["nodes"], &purge["pending"]), (&json!({}), &json!([])), "{what}");
        assert!(purge["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{what}: {purge}");
        assert_eq!(purge["seq"], i as u64 + 2, "{what}: the service was event 1");
        ids.push(id);
    }
    // The native answer: 202, the id, the seq, pending.
    let resp = cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"tags": ["x"]}"#).await?;
    assert_eq!(resp.status, 202);
    let accepted = json(&resp)?;
    assert_eq!((accepted["status"].as_str(), accepted["seq"].as_u64()), (Some("pending"), Some(12)));

    // Each purge is one event, in order, carrying the record.
    let log = events(&cp).await?;
    let purges: Vec<&Value> = log.iter().filter(|e| e["type"] == "purge").collect();
    assert_eq!(purges.len(), 11);
    for (event, id) in purges.iter().zip(&ids) {
        assert_eq!(event["purge"]["id"].as_str(), Some(id.as_str()));
        assert_eq!(event["seq"], event["purge"]["seq"]);
    }
    assert!(ids.iter().all(|id| id.len() == 32), "{ids:?}");
    Ok(())
}

#[tokio::test]
async fn purges_are_rate_limited_per_tenant() -> anyhow::Result<()> {
    let limits = ControlConfig::default().limit("purge_burst = 2").limit("purge_rate = 0.1");
    let cp = ControlPlane::start(limits).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    put_service(&cp, GLOBEX, "blog", &json!({"hosts": ["blog.example"], "origin": "http://o"})).await?;
    for _ in 0..2 {
        let resp = cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"all": true}"#).await?;
        assert_eq!(resp.status, 202, "{}", resp.text());
    }
    let limited = cp.call(Method::POST, "/zones/shop/purge_cache", ACME, r#"{"purge_everything": true}"#).await?;
    expect_error(&limited, 429, "rate_limited")?;
    let retry_after: u64 = limited.header("retry-after").unwrap_or_default().parse()?;
    assert!((1..=10).contains(&retry_after), "Retry-After: {retry_after} (one purge per 10s)");
    // Another tenant has its own bucket; the operator has none.
    let other = cp.call(Method::POST, "/v1/services/blog/purge", GLOBEX, r#"{"all": true}"#).await?;
    assert_eq!(other.status, 202);
    let operator = cp.call(Method::POST, "/v1/services/shop/purge", OPS, r#"{"all": true}"#).await?;
    assert_eq!(operator.status, 202);
    // A refused purge left no event: 2 services, 2 + 1 + 1 purges.
    assert_eq!(events(&cp).await?.len(), 6);
    Ok(())
}

#[tokio::test]
async fn a_restart_keeps_services_purges_events_and_numbers() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(ControlConfig::default()).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    put_service(&cp, ACME, "blog", &json!({"hosts": ["blog.example"], "origin": "http://o"})).await?;
    put_service(&cp, GLOBEX, "news", &json!({"hosts": ["news.example"], "origin": "http://o"})).await?;
    let purge = cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"tags": ["t"], "soft": true}"#).await?;
    let purge_id = json(&purge)?["id"].as_str().unwrap_or_default().to_owned();
    let deleted = cp.call(Method::DELETE, "/v1/services/blog", ACME, "").await?;
    assert_eq!(deleted.status, 200);
    let before = (
        get_json(&cp, OPS, "/v1/services").await?,
        get_json(&cp, ACME, &format!("/v1/purges/{purge_id}")).await?,
        events(&cp).await?,
    );

    cp.restart().await?;

    let after = (
        get_json(&cp, OPS, "/v1/services").await?,
        get_json(&cp, ACME, &format!("/v1/purges/{purge_id}")).await?,
        events(&cp).await?,
    );
    assert_eq!(after, before);
    assert_eq!(after.2.len(), 5);
    // Numbers go on from where they were; hosts stay claimed; tokens still work.
    let next = put_service(&cp, GLOBEX, "blog", &json!({"hosts": ["blog.example"], "origin": "http://o"})).await?;
    assert_eq!(next["version"], 6);
    let purge = cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"all": true}"#).await?;
    assert_eq!(json(&purge)?["seq"], 7);
    let taken = cp
        .call(
            Method::PUT,
            "/v1/services/copy",
            GLOBEX,
            &json!({"hosts": ["shop.example"], "origin": "http://o"}).to_string(),
        )
        .await?;
    expect_error(&taken, 409, "host_taken")?;
    let page = get_json(&cp, OPS, "/v1/events?from=6").await?;
    assert_eq!((page["next"].as_u64(), page["last_seq"].as_u64()), (Some(8), Some(7)));
    Ok(())
}

#[tokio::test]
async fn health_and_the_openapi_document_need_no_token_and_speak_h2() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    let health = cp.call(Method::GET, "/healthz", None, "").await?;
    assert_eq!((health.status.as_u16(), json(&health)?), (200, json!({"status": "ok"})));

    let doc = cp.send(Req::get("cp", "/v1/openapi.json").h2()).await?;
    assert_eq!(doc.version, http::Version::HTTP_2);
    let doc = json(&doc)?;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in
        ["/v1/services/{id}", "/v1/services/{id}/purge", "/v1/purges/{id}", "/v1/events", "/zones/{id}/purge_cache"]
    {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    // The API over h2c too.
    let list = cp.send(Req::get("cp", "/v1/services").h2().header("authorization", "Bearer acme-token")).await?;
    assert_eq!((list.version, list.status.as_u16()), (http::Version::HTTP_2, 200));
    Ok(())
}

#[tokio::test]
async fn check_config_names_every_problem() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cp.toml");
    std::fs::write(
        &file,
        "data = \"cp.redb\"\n[[tokens]]\ntenant = \"ACME\"\nsha256 = \"abc\"\n[limits]\nmax_page = 0\n\
         tenant_upstream_allow = [\"127.0.0.0/8\", \"10.0.0.1/8\"]\n",
    )?;
    let output =
        std::process::Command::new(outpost_tests::control::binary()?).arg("check-config").arg(&file).output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let paths: Vec<&str> = stderr.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(
        paths,
        ["tokens[0].tenant", "tokens[0].sha256", "limits.max_page", "limits.tenant_upstream_allow[1]"],
        "{stderr}"
    );
    Ok(())
}

// ---- The node protocol (docs/contracts.md, "Node protocol"), with hand-driven fake nodes ----

const NODE: Option<&str> = Some(NODE_TOKEN);

async fn register(cp: &ControlPlane, id: &str, pop: &str) -> anyhow::Result<Value> {
    let body = json!({"pop": pop, "region": "eu", "role": "edge", "addresses": {"http": "127.0.0.1:8080", "admin": "127.0.0.1:9901"}});
    let resp = cp.call(Method::PUT, &format!("/v1/nodes/{id}"), NODE, &body.to_string()).await?;
    anyhow::ensure!(resp.status == 200, "register {id}: {} {}", resp.status, resp.text());
    json(&resp)
}

async fn ack(cp: &ControlPlane, id: &str, seq: u64) -> anyhow::Result<u16> {
    let resp = cp.call(Method::POST, &format!("/v1/nodes/{id}/ack"), NODE, &json!({"seq": seq}).to_string()).await?;
    Ok(resp.status.as_u16())
}

async fn stream(cp: &ControlPlane, id: &str, after: u64) -> anyhow::Result<NodeStream> {
    let stream = NodeStream::open(cp.addr(), id, after, NODE_TOKEN).await?;
    anyhow::ensure!(stream.status == 200, "stream {id}: {}", stream.status);
    Ok(stream)
}

/// Opens the node's stream once the control plane has found its previous one (just dropped)
/// closed: 409 `node_id_in_use` until then (bounded wait).
async fn stream_when_free(cp: &ControlPlane, id: &str, after: u64) -> anyhow::Result<NodeStream> {
    let start = std::time::Instant::now();
    loop {
        let stream = NodeStream::open(cp.addr(), id, after, NODE_TOKEN).await?;
        if stream.status == 200 {
            return Ok(stream);
        }
        anyhow::ensure!(stream.status == 409, "stream {id}: {}", stream.status);
        anyhow::ensure!(start.elapsed() < std::time::Duration::from_secs(15), "{id} is still held");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Reads `stream` up to the next purge event, acks it as `node`, returns its seq.
async fn apply_next_purge(cp: &ControlPlane, stream: &mut NodeStream, node: &str) -> anyhow::Result<u64> {
    loop {
        let line = stream.next_change().await?;
        if line["event"]["type"] == "purge" {
            let seq = line["event"]["seq"].as_u64().unwrap_or_default();
            anyhow::ensure!(ack(cp, node, seq).await? == 204, "ack {seq}");
            return Ok(seq);
        }
    }
}

/// Every fake node applies and acks the next purge; their seqs.
async fn apply_everywhere(cp: &ControlPlane, nodes: &mut [(&str, NodeStream)]) -> anyhow::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for (id, node) in nodes.iter_mut() {
        seqs.push(apply_next_purge(cp, node, id).await?);
    }
    Ok(seqs)
}

fn node_entry<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["nodes"].as_array().and_then(|nodes| nodes.iter().find(|n| n["id"] == id)).unwrap_or(&Value::Null)
}

/// A node token with `node_id` acts as that node only: it registers, streams and acks as
/// it, and gets 403 for any other id.
#[tokio::test]
async fn a_node_token_bound_to_a_node_acts_as_that_node_only() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().bound_node_token("edge-1", "edge-1-token")).await?;
    let own = Some("edge-1-token");
    let body = json!({"role": "edge", "addresses": {"admin": "127.0.0.1:9901"}}).to_string();
    let resp = cp.call(Method::PUT, "/v1/nodes/edge-1", own, &body).await?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut stream = NodeStream::open(cp.addr(), "edge-1", 0, "edge-1-token").await?;
    assert_eq!(stream.status, 200);
    let first = stream.next_change().await?;
    assert!(first.get("snapshot").is_some(), "{first}");
    let resp = cp.call(Method::POST, "/v1/nodes/edge-1/ack", own, r#"{"seq": 0}"#).await?;
    assert_eq!(resp.status, 204, "{}", resp.text());
    // The shared node token still registers anyone; edge-2 exists for the checks below.
    register(&cp, "edge-2", "fra").await?;
    let refused = [
        (Method::PUT, "/v1/nodes/edge-2", body.as_str()),
        (Method::GET, "/v1/nodes/edge-2/stream", ""),
        (Method::POST, "/v1/nodes/edge-2/ack", r#"{"seq": 0}"#),
    ];
    for (method, path, body) in refused {
        let resp = cp.call(method.clone(), path, own, body).await?;
        let error = expect_error(&resp, 403, "forbidden")?;
        assert!(error["message"].as_str().is_some_and(|m| m.contains("edge-1")), "{method} {path}: {error}");
    }
    Ok(())
}

#[tokio::test]
async fn nodes_register_with_the_node_token_and_nothing_else_accepts_it() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default()).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    let registered = register(&cp, "edge-1.fra", "fra").await?;
    assert_eq!(registered["head"], 1);
    assert_eq!(registered["node"]["id"], "edge-1.fra");
    assert_eq!(registered["node"]["addresses"], json!({"http": "127.0.0.1:8080", "admin": "127.0.0.1:9901"}));
    assert!(registered["node"]["registered_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Idempotent; a re-registration replaces the record.
    register(&cp, "edge-1.fra", "ams").await?;
    let list = get_json(&cp, OPS, "/v1/nodes").await?;
    assert_eq!(list["nodes"].as_array().map(Vec::len), Some(1));
    let edge = node_entry(&list, "edge-1.fra");
    assert_eq!((edge["pop"].as_str(), edge["role"].as_str()), (Some("ams"), Some("edge")));
    assert_eq!((edge["live"].as_bool(), edge["acked"].as_u64()), (Some(false), Some(0)));
    assert_eq!(edge["functions"], json!({}), "no function reported yet");

    let admin = r#""addresses": {"admin": "127.0.0.1:9901"}"#;
    let bodies = [
        ("edge-1", "{", 400, "bad_json", ""),
        ("edge-1", &format!(r#"{{"role": "edge", {admin}, "colour": 1}}"#), 400, "invalid_request", "colour"),
        ("edge-1", &format!(r#"{{"role": "origin", {admin}}}"#), 400, "invalid_request", "role"),
        (
            "edge-1",
            r#"{"role": "edge", "addresses": {"admin": "localhost"}}"#,
            400,
            "invalid_request",
            "addresses.admin",
        ),
        ("edge-1", &format!(r#"{{"pop": "f r a", "role": "edge", {admin}}}"#), 400, "invalid_request", "pop"),
        ("edge%201", &format!(r#"{{"role": "edge", {admin}}}"#), 400, "invalid_request", "id"),
    ];
    for (id, body, status, code, field) in bodies {
        let resp = cp.call(Method::PUT, &format!("/v1/nodes/{id}"), NODE, body).await?;
        let error = expect_error(&resp, status, code)?;
        if !field.is_empty() {
            assert_eq!(error["fields"][0]["path"], field, "{body}: {error}");
        }
    }
    let good = json!({"role": "shield", "addresses": {"admin": "127.0.0.1:1"}}).to_string();
    let refused = [
        (Method::PUT, "/v1/nodes/edge-2", None, 401, "unauthorized"),
        (Method::PUT, "/v1/nodes/edge-2", ACME, 403, "forbidden"),
        (Method::PUT, "/v1/nodes/edge-2", OPS, 403, "forbidden"),
        (Method::POST, "/v1/nodes/edge-1.fra/ack", OPS, 403, "forbidden"),
        (Method::GET, "/v1/nodes/edge-1.fra/stream", ACME, 403, "forbidden"),
        (Method::GET, "/v1/nodes", ACME, 403, "forbidden"),
        (Method::GET, "/v1/nodes", NODE, 403, "forbidden"),
        (Method::GET, "/v1/services", NODE, 403, "forbidden"),
        (Method::GET, "/v1/services/shop", NODE, 403, "forbidden"),
        (Method::POST, "/v1/services/shop/purge", NODE, 403, "forbidden"),
        (Method::GET, "/v1/events", NODE, 403, "forbidden"),
        (Method::GET, "/v1/nodes/edge-9/stream", NODE, 404, "not_found"),
        (Method::POST, "/v1/nodes/edge-9/ack", NODE, 404, "not_found"),
    ];
    for (method, path, token, status, code) in refused {
        let body = if method == Method::GET {
            ""
        } else if path.ends_with("ack") {
            r#"{"seq": 1}"#
        } else {
            &good
        };
        let resp = cp.call(method.clone(), path, token, body).await?;
        expect_error(&resp, status, code).map_err(|e| e.context(format!("{method} {path} as {token:?}")))?;
    }
    let bad_acks = [
        ("{", "bad_json"),
        (r#"{"seq": -1}"#, "invalid_request"),
        (r#"{"seq": 2}"#, "invalid_request"),
        ("[]", "invalid_request"),
    ];
    for (body, code) in bad_acks {
        let resp = cp.call(Method::POST, "/v1/nodes/edge-1.fra/ack", NODE, body).await?;
        expect_error(&resp, 400, code).map_err(|e| e.context(body))?;
    }
    Ok(())
}

#[tokio::test]
async fn a_stream_sends_a_snapshot_then_each_event_in_order_then_heartbeats() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    register(&cp, "edge-1", "fra").await?;
    let mut node = stream(&cp, "edge-1", 0).await?;
    assert_eq!(node.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/x-ndjson"));
    let first = node.next().await?;
    let snapshot = &first["snapshot"];
    assert_eq!((snapshot["seq"].as_u64(), snapshot["resync"].as_bool()), (Some(1), Some(false)), "{first}");
    assert_eq!(snapshot["services"][0]["id"], "shop");
    assert_eq!(snapshot["services"][0]["config"]["hosts"][0], "shop.example");

    // Changes of every kind arrive in order, numbered without gaps.
    cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"tags": ["t"]}"#).await?;
    put_service(&cp, GLOBEX, "news", &json!({"hosts": ["news.example"], "origin": "http://o"})).await?;
    let deleted = cp.call(Method::DELETE, "/v1/services/news", GLOBEX, "").await?;
    assert_eq!(deleted.status, 200);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = node.next_change().await?["event"].clone();
        seen.push((event["seq"].as_u64().unwrap_or_default(), event["type"].as_str().unwrap_or_default().to_owned()));
    }
    assert_eq!(seen, [(2, "purge".into()), (3, "service_put".into()), (4, "service_deleted".into())]);
    // Quiet now: heartbeats carry the head.
    assert_eq!(node.next().await?, json!({"heartbeat": {"head": 4}}));

    // Acks move up, never back, and never past the head.
    assert_eq!(ack(&cp, "edge-1", 3).await?, 204);
    assert_eq!(ack(&cp, "edge-1", 2).await?, 204);
    let beyond = cp.call(Method::POST, "/v1/nodes/edge-1/ack", NODE, r#"{"seq": 5}"#).await?;
    expect_error(&beyond, 400, "invalid_request")?;
    let list = get_json(&cp, OPS, "/v1/nodes").await?;
    let edge = node_entry(&list, "edge-1");
    assert_eq!((edge["live"].as_bool(), edge["acked"].as_u64()), (Some(true), Some(3)), "{list}");
    assert!(edge["acked_at"].as_str().is_some(), "{list}");
    assert_eq!(list["head"], 4);
    Ok(())
}

#[tokio::test]
async fn a_node_resumes_after_its_last_seq_and_one_stream_per_node_is_kept() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    for tag in ["a", "b"] {
        cp.call(Method::POST, "/v1/services/shop/purge", ACME, &json!({"tags": [tag]}).to_string()).await?;
    }
    register(&cp, "edge-1", "fra").await?;

    // From 1: events 2 and 3, no snapshot.
    let mut node = stream(&cp, "edge-1", 1).await?;
    let first = node.next().await?;
    assert_eq!(
        (first["event"]["seq"].as_u64(), first["event"]["purge"]["targets"][0]["tag"].as_str()),
        (Some(2), Some("a")),
        "{first}"
    );
    assert_eq!(node.next().await?["event"]["seq"], 3);

    // One stream per node: a second one while the first is open is refused (issue 16: it must
    // not take over a live node's id), and the first goes on.
    let second = NodeStream::open(cp.addr(), "edge-1", 3, NODE_TOKEN).await?;
    assert_eq!(second.status, 409);
    drop(second);
    cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"tags": ["c"]}"#).await?;
    assert_eq!(node.next_change().await?["event"]["seq"], 4, "the holder still streams");
    // Once it is gone, the node streams again. Up to date: heartbeats only.
    drop(node);
    let mut again = stream_when_free(&cp, "edge-1", 4).await?;
    assert_eq!(again.next().await?, json!({"heartbeat": {"head": 4}}));
    cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"all": true}"#).await?;
    assert_eq!(again.next_change().await?["event"]["seq"], 5);

    // Beyond the head (the control plane lost its data, say): a snapshot, and a resync.
    drop(again);
    let mut ahead = stream_when_free(&cp, "edge-1", 99).await?;
    let snapshot = ahead.next().await?;
    assert_eq!((snapshot["snapshot"]["seq"].as_u64(), snapshot["snapshot"]["resync"].as_bool()), (Some(5), Some(true)));
    Ok(())
}

#[tokio::test]
async fn compaction_turns_a_resume_from_before_the_horizon_into_a_snapshot_with_resync() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().limit("max_events = 3")).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    for tag in ["a", "b", "c", "d", "e"] {
        cp.call(Method::POST, "/v1/services/shop/purge", ACME, &json!({"tags": [tag]}).to_string()).await?;
    }
    let kept: Vec<Value> = events(&cp).await?.iter().map(|e| e["seq"].clone()).collect();
    assert_eq!(kept, [json!(4), json!(5), json!(6)]);
    register(&cp, "edge-1", "fra").await?;

    // Event 3 is gone: a node that applied 2 cannot know which purges it missed.
    let mut behind = stream(&cp, "edge-1", 2).await?;
    let first = behind.next().await?;
    let snapshot = &first["snapshot"];
    assert_eq!((snapshot["seq"].as_u64(), snapshot["resync"].as_bool()), (Some(6), Some(true)), "{first}");
    // Built from the current state: nothing is lost.
    assert_eq!(snapshot["services"][0]["id"], "shop");
    assert_eq!(snapshot["services"][0]["version"], 1);

    // From 3, event 4 is the next one: it is still held.
    drop(behind);
    let mut close = stream_when_free(&cp, "edge-1", 3).await?;
    assert_eq!(close.next().await?["event"]["seq"], 4);
    Ok(())
}

#[tokio::test]
async fn a_purge_waits_for_every_live_node_and_reports_each_and_each_pop() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().nodes("heartbeat_interval = \"200ms\"")).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    for (id, pop) in [("edge-1", "fra"), ("edge-2", "fra"), ("edge-3", "ams")] {
        register(&cp, id, pop).await?;
    }
    let mut nodes = Vec::new();
    for id in ["edge-1", "edge-2", "edge-3"] {
        let mut node = stream(&cp, id, 0).await?;
        node.next().await?; // the snapshot
        nodes.push((id, node));
    }

    // Every node applies and acks while the purge request waits.
    let purge = Req::post("cp", "/v1/services/shop/purge?wait=true&timeout=30s")
        .header("authorization", "Bearer acme-token")
        .body(r#"{"tags": ["t"]}"#);
    let (resp, seqs) = tokio::join!(cp.send(purge), apply_everywhere(&cp, &mut nodes));
    let (resp, seqs) = (resp?, seqs?);
    assert_eq!(seqs, [2, 2, 2]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let done = json(&resp)?;
    assert_eq!(
        (done["complete"].as_bool(), done["status"].as_str(), done["seq"].as_u64()),
        (Some(true), Some("complete"), Some(2))
    );
    assert_eq!(done["pending"], json!([]));
    for id in ["edge-1", "edge-2", "edge-3"] {
        let node = &done["nodes"][id];
        assert_eq!((node["acked"].as_bool(), node["live"].as_bool()), (Some(true), Some(true)), "{done}");
        assert!(node["ms"].as_u64().is_some(), "{done}");
    }
    assert_eq!(done["nodes"]["edge-3"]["pop"], "ams");
    assert_eq!((done["pops"]["fra"]["nodes"].as_u64(), done["pops"]["fra"]["acked"].as_u64()), (Some(2), Some(2)));
    let fra_max =
        [&done["nodes"]["edge-1"]["ms"], &done["nodes"]["edge-2"]["ms"]].iter().filter_map(|m| m.as_u64()).max();
    assert_eq!(done["pops"]["fra"]["max_ms"].as_u64(), fra_max);
    assert_eq!(done["pops"]["ams"], json!({"nodes": 1, "acked": 1, "max_ms": done["nodes"]["edge-3"]["ms"]}));

    // Only edge-1 acks: at the timeout, 202 with the progress so far. (3 s: edge-1's ack must
    // land inside it on a loaded machine; the others do not ack before it whatever its length.)
    let purge = Req::post("cp", "/v1/services/shop/purge?wait=true&timeout=3s")
        .header("authorization", "Bearer acme-token")
        .body(r#"{"tags": ["u"]}"#);
    let (resp, seq) = tokio::join!(cp.send(purge), apply_next_purge(&cp, &mut nodes[0].1, "edge-1"));
    let (resp, seq) = (resp?, seq?);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let partial = json(&resp)?;
    assert_eq!((partial["complete"].as_bool(), partial["status"].as_str()), (Some(false), Some("pending")));
    assert_eq!(partial["pending"], json!(["edge-2", "edge-3"]));
    assert_eq!(partial["nodes"]["edge-1"]["acked"], true);
    assert_eq!(partial["nodes"]["edge-2"], json!({"pop": "fra", "live": true, "acked": false, "ms": null}));
    assert_eq!(partial["pops"]["fra"]["acked"], 1);
    // The others catch up; GET shows it.
    let id = partial["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(apply_next_purge(&cp, &mut nodes[1].1, "edge-2").await?, seq);
    assert_eq!(apply_next_purge(&cp, &mut nodes[2].1, "edge-3").await?, seq);
    let status = get_json(&cp, ACME, &format!("/v1/purges/{id}")).await?;
    assert_eq!(
        (status["complete"].as_bool(), status["pops"]["fra"]["acked"].as_u64()),
        (Some(true), Some(2)),
        "{status}"
    );
    // Another tenant still cannot see it.
    let hidden = cp.call(Method::GET, &format!("/v1/purges/{id}"), GLOBEX, "").await?;
    expect_error(&hidden, 404, "not_found")?;

    // The Fastly and Cloudflare shapes wait too, and answer with the same progress.
    let fastly = Req::post("cp", "/service/shop/purge/k?wait=true").header("fastly-key", "acme-token");
    let (resp, seqs) = tokio::join!(cp.send(fastly), apply_everywhere(&cp, &mut nodes));
    let (resp, seqs) = (resp?, seqs?);
    assert_eq!((resp.status.as_u16(), json(&resp)?["complete"].as_bool()), (200, Some(true)), "{}", resp.text());
    assert_eq!(json(&resp)?["seq"].as_u64(), seqs.first().copied());
    let cloudflare = Req::post("cp", "/zones/shop/purge_cache?wait=true&timeout=5s")
        .header("authorization", "Bearer acme-token")
        .body(r#"{"purge_everything": true}"#);
    let (resp, _) = tokio::join!(cp.send(cloudflare), apply_everywhere(&cp, &mut nodes));
    assert_eq!(json(&resp?)?["pops"]["fra"]["acked"], 2);

    // Bad waits.
    for query in ["wait=true&timeout=2m", "wait=true&timeout=soon", "wait=maybe", "colour=red"] {
        let resp = cp.call(Method::POST, &format!("/v1/services/shop/purge?{query}"), ACME, r#"{"all": true}"#).await?;
        expect_error(&resp, 400, "invalid_request").map_err(|e| e.context(query))?;
    }
    Ok(())
}

#[tokio::test]
async fn a_dropped_node_is_waited_for_only_during_its_grace() -> anyhow::Result<()> {
    // Purges wait for a node until it has been unseen for offline_after (here equal to the
    // grace; issue 16 has the tests of a longer window).
    let config = ControlConfig::default()
        .nodes("heartbeat_interval = \"100ms\"")
        .nodes("grace = \"300ms\"")
        .nodes("offline_after = \"300ms\"");
    let cp = ControlPlane::start(config).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    register(&cp, "edge-1", "fra").await?;
    register(&cp, "edge-2", "fra").await?;
    let mut one = stream(&cp, "edge-1", 1).await?;
    let two = stream(&cp, "edge-2", 1).await?;
    // Both live once their streams are open.
    let list = get_json(&cp, OPS, "/v1/nodes").await?;
    assert_eq!(node_entry(&list, "edge-2")["live"], true);
    drop(two);
    // Bounded poll (not a timing assertion): edge-2 stops being live once its grace is over.
    let mut gone = false;
    for _ in 0..200 {
        let list = get_json(&cp, OPS, "/v1/nodes").await?;
        if node_entry(&list, "edge-2")["live"] == false {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "edge-2 still live 10s after its stream dropped");
    let purge = Req::post("cp", "/v1/services/shop/purge?wait=true")
        .header("authorization", "Bearer acme-token")
        .body(r#"{"all": true}"#);
    let (resp, _) = tokio::join!(cp.send(purge), apply_next_purge(&cp, &mut one, "edge-1"));
    let resp = resp?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let done = json(&resp)?;
    assert_eq!(
        done["nodes"].as_object().map(|n| n.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["edge-1".to_owned()])
    );
    Ok(())
}

#[tokio::test]
async fn a_restarted_control_plane_still_knows_each_nodes_acks() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(ControlConfig::default()).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    cp.call(Method::POST, "/v1/services/shop/purge", ACME, r#"{"all": true}"#).await?;
    register(&cp, "edge-1", "fra").await?;
    register(&cp, "edge-2", "ams").await?;
    let mut open = stream(&cp, "edge-1", 0).await?;
    assert_eq!(ack(&cp, "edge-1", 2).await?, 204);
    assert_eq!(ack(&cp, "edge-2", 1).await?, 204);
    // SIGTERM ends the open stream (it would hold the graceful shutdown forever otherwise).
    cp.restart().await?;
    assert!(open.ended().await?);
    let list = get_json(&cp, OPS, "/v1/nodes").await?;
    let acked: Vec<(Value, Value, Value)> = list["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| (n["id"].clone(), n["acked"].clone(), n["live"].clone()))
        .collect();
    // edge-1's stream ended at the restart, less than `nodes.grace` ago: that end is in the store
    // (every replica, this restarted one included, counts it live while it reconnects).
    // edge-2 never streamed.
    assert_eq!(acked, [(json!("edge-1"), json!(2), json!(true)), (json!("edge-2"), json!(1), json!(false))]);
    // Acks still never go back.
    assert_eq!(ack(&cp, "edge-1", 1).await?, 204);
    assert_eq!(node_entry(&get_json(&cp, OPS, "/v1/nodes").await?, "edge-1")["acked"], 2);
    Ok(())
}

// ---- Functions: upload, list, activate, roll back, fetch by hash ----

/// `POST /v1/services/{id}/functions` with `bytes` as `application/wasm`.
async fn upload(cp: &ControlPlane, token: Option<&str>, id: &str, bytes: &[u8]) -> anyhow::Result<outpost_tests::Resp> {
    let mut req = Req::new(Method::POST, "control-plane", &format!("/v1/services/{id}/functions"))
        .body(bytes.to_vec())
        .header("content-type", "application/wasm");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    cp.send(req).await
}

#[tokio::test]
async fn functions_are_checked_stored_by_hash_activated_and_rolled_back() -> anyhow::Result<()> {
    let probe = std::fs::read(outpost_tests::wasm::probe_guest()?)?;
    let sdk = outpost_tests::wasm::repo_root()?.join("wasm-sdk");
    let hello =
        std::fs::read(outpost_tests::wasm::build_guest(&sdk, outpost_tests::wasm::GuestKind::Example, "hello")?)?;
    let cp = ControlPlane::start(ControlConfig::default().limit("max_function_size = \"16MiB\"")).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;

    // What is not a wasi:http component is refused, saying why.
    let core = expect_error(&upload(&cp, ACME, "shop", b"\0asm\x01\0\0\0").await?, 400, "not_a_component")?;
    assert!(core["message"].as_str().unwrap_or_default().contains("wasm32-wasip2"), "{core}");
    let empty = expect_error(&upload(&cp, ACME, "shop", b"\0asm\x0d\0\x01\0").await?, 400, "missing_export")?;
    assert!(empty["message"].as_str().unwrap_or_default().contains("wasi:http/incoming-handler"), "{empty}");
    expect_error(&upload(&cp, ACME, "shop", b"<html>not wasm</html>").await?, 400, "invalid_wasm")?;
    let mut cut = probe.clone();
    cut.truncate(probe.len() / 2);
    expect_error(&upload(&cp, ACME, "shop", &cut).await?, 400, "invalid_wasm")?;
    let text = Req::new(Method::POST, "control-plane", "/v1/services/shop/functions")
        .body(probe.clone())
        .header("content-type", "text/plain")
        .header("authorization", "Bearer acme-token");
    expect_error(&cp.send(text).await?, 400, "invalid_request")?;

    // Upload: 201 with the version; the same bytes again are the same version (200).
    let first = upload(&cp, ACME, "shop", &probe).await?;
    assert_eq!(first.status, 201, "{}", first.text());
    let first = json(&first)?;
    let sha1 = first["sha256"].as_str().unwrap_or_default().to_owned();
    assert_eq!((first["service"].as_str(), first["version"].as_u64()), (Some("shop"), Some(1)), "{first}");
    assert_eq!(first["size"].as_u64(), Some(probe.len() as u64));
    let digest = ring::digest::digest(&ring::digest::SHA256, &probe);
    assert_eq!(sha1, digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>());
    let again = upload(&cp, ACME, "shop", &probe).await?;
    assert_eq!((again.status.as_u16(), json(&again)?["version"].as_u64()), (200, Some(1)));
    let second = json(&upload(&cp, ACME, "shop", &hello).await?)?;
    assert_eq!(second["version"], 2);

    // Another tenant sees none of it. Bytes by hash are for nodes and the operator.
    for (method, path) in [
        (Method::GET, "/v1/services/shop/functions"),
        (Method::POST, "/v1/services/shop/functions/1/activate"),
        (Method::POST, "/v1/services/shop/functions/rollback"),
    ] {
        expect_error(&cp.call(method, path, GLOBEX, "").await?, 404, "not_found")?;
    }
    expect_error(&upload(&cp, GLOBEX, "shop", &probe).await?, 404, "not_found")?;
    let bytes_path = format!("/v1/functions/{sha1}");
    expect_error(&cp.call(Method::GET, &bytes_path, ACME, "").await?, 403, "forbidden")?;
    expect_error(&cp.call(Method::GET, &bytes_path, None, "").await?, 401, "unauthorized")?;
    let fetched = cp.call(Method::GET, &bytes_path, Some(NODE_TOKEN), "").await?;
    assert_eq!((fetched.status.as_u16(), fetched.header("content-type")), (200, Some("application/wasm")));
    assert!(fetched.body == probe, "the bytes come back as uploaded");
    expect_error(
        &cp.call(Method::GET, &format!("/v1/functions/{}", "0".repeat(64)), OPS, "").await?,
        404,
        "not_found",
    )?;

    // Nothing active yet: nothing to roll back to.
    expect_error(
        &cp.call(Method::POST, "/v1/services/shop/functions/rollback", ACME, "").await?,
        409,
        "no_previous_version",
    )?;
    expect_error(&cp.call(Method::POST, "/v1/services/shop/functions/9/activate", ACME, "").await?, 404, "not_found")?;

    // Activate 1, then 2: each writes a service_put carrying the function.
    let one = json(&cp.call(Method::POST, "/v1/services/shop/functions/1/activate", ACME, "").await?)?;
    assert_eq!(one["function"], json!({"version": 1, "sha256": sha1, "size": probe.len()}), "{one}");
    expect_error(
        &cp.call(Method::POST, "/v1/services/shop/functions/rollback", ACME, "").await?,
        409,
        "no_previous_version",
    )?;
    let two = json(&cp.call(Method::POST, "/v1/services/shop/functions/2/activate", ACME, "").await?)?;
    assert_eq!(two["function"]["version"], 2);
    assert!(two["version"].as_u64() > one["version"].as_u64());
    let last = events(&cp).await?.last().cloned().unwrap_or_default();
    assert_eq!((last["type"].as_str(), &last["service"]["function"]["version"]), (Some("service_put"), &json!(2)));

    // A config change keeps the active function; a tenant may not name a path on the nodes.
    let mut changed = shop_config();
    changed["default_ttl"] = json!("5m");
    changed["function"] = json!({"env": {"MODE": "b"}});
    let kept = put_service(&cp, ACME, "shop", &changed).await?;
    assert_eq!(kept["function"]["version"], 2, "{kept}");
    changed["function"] = json!({"wasm": "/etc/passwd"});
    let path = cp.call(Method::PUT, "/v1/services/shop", ACME, &changed.to_string()).await?;
    let path = expect_error(&path, 400, "invalid_config")?;
    assert_eq!(path["fields"][0]["path"], "function.wasm", "{path}");

    // Roll back: version 1 again; the list shows it.
    let back = json(&cp.call(Method::POST, "/v1/services/shop/functions/rollback", ACME, "").await?)?;
    assert_eq!(back["function"]["version"], 1, "{back}");
    let list = get_json(&cp, ACME, "/v1/services/shop/functions").await?;
    assert_eq!(list["active"]["version"], 1, "{list}");
    assert_eq!(list["versions"].as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(list["history"], json!([1]), "{list}");

    // Deleting the service deletes its functions; the bytes go with the last reference.
    let deleted = cp.call(Method::DELETE, "/v1/services/shop", ACME, "").await?;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    expect_error(&cp.call(Method::GET, &bytes_path, OPS, "").await?, 404, "not_found")?;
    Ok(())
}

#[tokio::test]
async fn a_function_larger_than_its_limit_is_refused_before_it_is_read() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlConfig::default().limit("max_function_size = \"4KiB\"")).await?;
    put_service(&cp, ACME, "shop", &shop_config()).await?;
    let big = vec![0u8; 8 * 1024];
    let refused = expect_error(&upload(&cp, ACME, "shop", &big).await?, 413, "body_too_large")?;
    assert!(refused["message"].as_str().unwrap_or_default().contains("limits.max_function_size"), "{refused}");
    Ok(())
}
