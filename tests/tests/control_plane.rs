//! The control plane's API, end to end: a real `control-plane` process with an operator and two
//! tenants, `acme` and `globex`, each scenario on its own data file.

use http::Method;
use outpost_tests::Req;
use outpost_tests::control::{ControlConfig, ControlPlane, OPERATOR, expect_error, json};
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
        assert_eq!((purge["status"].as_str(), purge["complete"].as_bool()), (Some("pending"), Some(false)), "{what}");
        assert_eq!(purge["nodes"], json!({}), "{what}");
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
        "data = \"cp.redb\"\n[[tokens]]\ntenant = \"ACME\"\nsha256 = \"abc\"\n[limits]\nmax_page = 0\n",
    )?;
    let output =
        std::process::Command::new(outpost_tests::control::binary()?).arg("check-config").arg(&file).output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let paths: Vec<&str> = stderr.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(paths, ["tokens[0].tenant", "tokens[0].sha256", "limits.max_page"], "{stderr}");
    Ok(())
}
