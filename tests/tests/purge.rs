//! Purging through the admin listener (`POST /purge`, contracts.md): by URL (every Vary
//! variant), by prefix, by tag (Surrogate-Key, Cache-Tag), everything of a service, and soft
//! purges that mark entries stale instead of removing them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Method;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Recorded, Reply, Req, ServiceSpec, shop};
use serde_json::json;

fn cacheable(body: &str) -> Reply {
    Reply::ok(body.to_string()).cache_control("max-age=600")
}

/// Warms the cache for `host` + each path and checks they are hits.
async fn warm(node: &EdgeNode, host: &str, paths: &[&str]) -> anyhow::Result<()> {
    for path in paths {
        node.get(host, path).await?;
        let hit = node.get(host, path).await?;
        anyhow::ensure!(hit.cache_status().hit(), "{host}{path} was not cached: {}", hit.summary());
    }
    Ok(())
}

async fn is_hit(node: &EdgeNode, host: &str, path: &str) -> anyhow::Result<bool> {
    Ok(node.get(host, path).await?.cache_status().hit())
}

#[tokio::test]
async fn purge_by_url_removes_every_variant() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route_fn("/v", |req: &Recorded| {
        let lang = req.header("accept-language").unwrap_or("none").to_string();
        Reply::ok(lang).cache_control("max-age=600").header("vary", "accept-language")
    });
    origin.route("/other", cacheable("other"));
    for lang in ["en", "fr"] {
        node.send(Req::get("shop.test", "/v").header("accept-language", lang)).await?;
    }
    warm(&node, "shop.test", &["/other"]).await?;

    let answer = node.purge(json!({"kind": "url", "url": "http://shop.test/v"})).await?;
    assert!(answer.get("id").is_some_and(|id| id.is_u64()), "{answer}");
    assert_eq!(answer["purged"]["kind"], "url", "{answer}");

    for lang in ["en", "fr"] {
        let resp = node.send(Req::get("shop.test", "/v").header("accept-language", lang)).await?;
        assert!(!resp.cache_status().hit(), "{lang} variant survived the purge: {}", resp.summary());
        assert_eq!(resp.text(), lang);
    }
    assert_eq!(origin.count("/v"), 4);
    assert!(is_hit(&node, "shop.test", "/other").await?, "an unrelated URL was purged");
    Ok(())
}

#[tokio::test]
async fn purge_by_url_matches_the_query_exactly() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/q", cacheable("q"));
    warm(&node, "shop.test", &["/q?x=1", "/q?x=2"]).await?;
    node.purge(json!({"service": "shop", "kind": "url", "url": "shop.test/q?x=1"})).await?;
    assert!(!is_hit(&node, "shop.test", "/q?x=1").await?);
    assert!(is_hit(&node, "shop.test", "/q?x=2").await?);
    assert_eq!(origin.count("/q?x=1"), 2);
    Ok(())
}

#[tokio::test]
async fn purge_by_prefix_removes_only_that_host_and_path() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    for path in ["/images/1.png", "/images/2.png", "/css/site.css"] {
        origin.route(path, cacheable(path));
    }
    warm(&node, "shop.test", &["/images/1.png", "/images/2.png", "/css/site.css"]).await?;
    warm(&node, "img.shop.test", &["/images/1.png"]).await?;

    node.purge(json!({"kind": "prefix", "prefix": "shop.test/images/"})).await?;
    assert!(!is_hit(&node, "shop.test", "/images/1.png").await?);
    assert!(!is_hit(&node, "shop.test", "/images/2.png").await?);
    assert!(is_hit(&node, "shop.test", "/css/site.css").await?);
    assert!(is_hit(&node, "img.shop.test", "/images/1.png").await?, "another host's entry was purged");
    Ok(())
}

#[tokio::test]
async fn purge_by_tag_uses_surrogate_key_and_cache_tag() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/t1", cacheable("t1").header("surrogate-key", "red blue"));
    origin.route("/t2", cacheable("t2").header("cache-tag", "blue,green"));
    origin.route("/t3", cacheable("t3").header("surrogate-key", "green"));
    for path in ["/t1", "/t2", "/t3"] {
        let resp = node.get("shop.test", path).await?;
        assert!(!resp.has("surrogate-key"), "Surrogate-Key leaked to the client");
        assert!(!resp.has("cache-tag"), "Cache-Tag leaked to the client");
    }
    warm(&node, "shop.test", &["/t1", "/t2", "/t3"]).await?;
    let hit = node.get("shop.test", "/t1").await?;
    assert!(!hit.has("surrogate-key"), "Surrogate-Key leaked on a hit");

    node.purge(json!({"service": "shop", "kind": "tag", "tag": "blue"})).await?;
    assert!(!is_hit(&node, "shop.test", "/t1").await?);
    assert!(!is_hit(&node, "shop.test", "/t2").await?);
    assert!(is_hit(&node, "shop.test", "/t3").await?);
    Ok(())
}

#[tokio::test]
async fn purge_all_empties_one_service_only() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], origin.url()))
        .service(ServiceSpec::new("blog", &["blog.test"], origin.url()));
    let node = EdgeNode::start(config).await?;
    origin.route("/a", cacheable("a"));
    origin.route("/b", cacheable("b"));
    warm(&node, "shop.test", &["/a", "/b"]).await?;
    warm(&node, "blog.test", &["/a"]).await?;

    node.purge(json!({"service": "shop", "kind": "all"})).await?;
    assert!(!is_hit(&node, "shop.test", "/a").await?);
    assert!(!is_hit(&node, "shop.test", "/b").await?);
    assert!(is_hit(&node, "blog.test", "/a").await?, "purging shop emptied blog");
    Ok(())
}

#[tokio::test]
async fn soft_purge_revalidates_and_keeps_stale_if_error() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    origin.route_fn("/soft", move |_| {
        if f.load(Ordering::SeqCst) {
            Reply::status(500).body("broken")
        } else {
            Reply::ok("soft body").cache_control("max-age=600, stale-if-error=600").etag("\"soft\"").conditional()
        }
    });
    warm(&node, "shop.test", &["/soft"]).await?;

    node.purge(json!({"kind": "url", "url": "shop.test/soft", "soft": true})).await?;
    let revalidated = node.get("shop.test", "/soft").await?;
    assert_eq!(revalidated.text(), "soft body");
    assert_eq!(origin.count("/soft"), 2);
    assert_eq!(
        origin.last("/soft")?.header("if-none-match"),
        Some("\"soft\""),
        "a soft-purged entry is revalidated, not refetched"
    );
    assert_eq!(revalidated.cache_status().fwd_status(), Some(304), "{}", revalidated.summary());
    assert!(is_hit(&node, "shop.test", "/soft").await?, "the 304 made it fresh again");

    node.purge(json!({"kind": "url", "url": "shop.test/soft", "soft": true})).await?;
    failing.store(true, Ordering::SeqCst);
    let stale = node.get("shop.test", "/soft").await?;
    assert_eq!(stale.status, 200, "{}", stale.summary());
    assert_eq!(stale.text(), "soft body");
    assert_eq!(stale.cache_status().detail(), Some("stale-if-error"), "{}", stale.summary());
    Ok(())
}

/// A soft purge makes an object stale from the purge on: its stale-if-error window is counted
/// from then and ends, and without a window the origin's error is what the client gets.
#[tokio::test]
async fn soft_purged_objects_are_stale_from_the_purge() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let failing = Arc::new(AtomicBool::new(false));
    for (path, cc) in [("/window", "max-age=600, stale-if-error=3"), ("/no-window", "max-age=600")] {
        let f = failing.clone();
        origin.route_fn(path, move |_| {
            if f.load(Ordering::SeqCst) {
                Reply::status(500).body("broken")
            } else {
                Reply::ok("soft body").cache_control(cc).etag("\"soft\"").conditional()
            }
        });
    }
    warm(&node, "shop.test", &["/window", "/no-window"]).await?;
    node.purge(json!({"kind": "prefix", "prefix": "shop.test/", "soft": true})).await?;
    failing.store(true, Ordering::SeqCst);

    let stale = node.get("shop.test", "/window").await?;
    assert_eq!(stale.text(), "soft body", "{}", stale.summary());
    assert_eq!(stale.cache_status().detail(), Some("stale-if-error"), "{}", stale.summary());
    let error = node.get("shop.test", "/no-window").await?;
    assert_eq!(error.status, 500, "ten minutes of freshness left do not outlive a soft purge: {}", error.summary());

    tokio::time::sleep(std::time::Duration::from_millis(4000)).await;
    let expired = node.get("shop.test", "/window").await?;
    assert_eq!(expired.status, 500, "stale-if-error=3 ended 3 s after the purge: {}", expired.summary());

    failing.store(false, Ordering::SeqCst);
    let revalidated = node.get("shop.test", "/window").await?;
    assert_eq!(revalidated.text(), "soft body");
    assert_eq!(revalidated.cache_status().fwd_status(), Some(304), "{}", revalidated.summary());
    assert!(is_hit(&node, "shop.test", "/window").await?, "the 304 made it fresh again");
    Ok(())
}

#[tokio::test]
async fn bad_purge_requests_get_json_errors() -> anyhow::Result<()> {
    let (_origin, node) = shop().await?;
    let cases = [
        ("not json at all", &[400][..]),
        (r#"{"kind": "tag", "tag": "t"}"#, &[400][..]),
        (r#"{"service": "shop", "kind": "everything"}"#, &[400][..]),
        (r#"{"service": "shop", "kind": "url"}"#, &[400][..]),
        (r#"{"service": "nope", "kind": "all"}"#, &[400, 404][..]),
    ];
    for (body, statuses) in cases {
        let resp = node.admin(Method::POST, "/purge", body).await?;
        assert!(statuses.contains(&resp.status.as_u16()), "{body:?} answered {}: {}", resp.status, resp.text());
        let error: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| anyhow::anyhow!("{body:?}: error body is not JSON ({e}): {}", resp.text()))?;
        assert!(error["error"]["code"].is_string(), "{body:?}: {error}");
        assert!(error["error"]["message"].is_string(), "{body:?}: {error}");
    }
    Ok(())
}

/// RFC 9211 §2.2: after a purge the URL is unknown again, whatever the purge named it by: the
/// refetch of a variant stored before is `fwd=uri-miss`, and so is a variant never stored;
/// once refetched, another variant is `vary-miss` again.
#[tokio::test]
async fn the_refetch_after_a_purge_is_a_uri_miss() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route_fn("/v", |req: &Recorded| {
        let lang = req.header("accept-language").unwrap_or("none").to_string();
        Reply::ok(lang).cache_control("max-age=600").header("vary", "accept-language").header("surrogate-key", "t")
    });
    let lang = |l: &str| Req::get("shop.test", "/v").header("accept-language", l);
    let purges = [
        json!({"kind": "url", "url": "http://shop.test/v"}),
        json!({"kind": "prefix", "prefix": "shop.test/v"}),
        json!({"service": "shop", "kind": "tag", "tag": "t"}),
        json!({"service": "shop", "kind": "all"}),
    ];
    for purge in purges {
        for l in ["en", "fr"] {
            node.send(lang(l)).await?;
        }
        let hit = node.send(lang("fr")).await?;
        anyhow::ensure!(hit.cache_status().hit(), "not warmed before {purge}: {}", hit.summary());
        node.purge(purge.clone()).await?;
        let stored_before = node.send(lang("en")).await?;
        assert_eq!(stored_before.text(), "en");
        assert_eq!(stored_before.cache_status().fwd(), Some("uri-miss"), "after {purge}: {}", stored_before.summary());
        let other = node.send(lang("de")).await?;
        assert_eq!(other.cache_status().fwd(), Some("vary-miss"), "the URL is known again: {}", other.summary());
    }
    let never_stored = {
        node.purge(json!({"kind": "url", "url": "http://shop.test/v"})).await?;
        node.send(lang("it")).await?
    };
    assert_eq!(never_stored.cache_status().fwd(), Some("uri-miss"), "{}", never_stored.summary());
    Ok(())
}
