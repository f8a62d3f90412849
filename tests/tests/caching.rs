//! Storing and reusing responses as a shared cache (RFC 9111 §3, §4.2), with the extensions
//! a CDN honours (CDN-Cache-Control, RFC 9213; Surrogate-Control), HEAD, Range, Authorization
//! and invalidation by unsafe methods (§4.4).
//!
//! Where a response must be stale, the origin sends `Age` (RFC 9111 §5.1) instead of the test
//! sleeping: `max-age=10` with `Age: 15` is five seconds stale on arrival. Such objects are filled
//! with `EdgeNode::prime`, which lets the fill finish before the next request.

use std::time::Duration;

use outpost_tests::{Reply, Req, ServiceSpec, http_date, shop, shop_with};

#[tokio::test]
async fn fresh_max_age_response_is_a_hit() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/a", Reply::ok("hello").cache_control("max-age=60"));

    let miss = node.get("shop.test", "/a").await?;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.text(), "hello");
    let cs = miss.cache_status();
    assert_eq!(cs.node, "edge-1", "{}", cs.raw);
    assert!(!cs.hit(), "{}", cs.raw);
    assert_eq!(cs.fwd(), Some("uri-miss"), "{}", cs.raw);
    assert_eq!(cs.fwd_status(), Some(200), "{}", cs.raw);
    assert!(cs.stored(), "{}", cs.raw);
    assert!(miss.has("x-request-id"));
    assert_eq!(miss.header("via"), Some("1.1 edge-1"), "RFC 9110 §7.6.3: a proxy adds Via");
    let timing = miss.header("server-timing").unwrap_or("");
    assert!(timing.contains("total;dur="), "Server-Timing: {timing:?}");

    let hit = node.get("shop.test", "/a").await?;
    assert_eq!(hit.status, 200);
    assert_eq!(hit.text(), "hello");
    let cs = hit.cache_status();
    assert!(cs.hit(), "{}", cs.raw);
    assert_eq!(cs.fwd(), None, "{}", cs.raw);
    let ttl = cs.ttl().unwrap_or(-1000);
    assert!((55..=60).contains(&ttl), "ttl {ttl} in {}", cs.raw);
    let age = hit.age().unwrap_or(u64::MAX);
    assert!(age <= 5, "a hit carries Age; got {:?}", hit.header("age"));
    assert_ne!(miss.request_id(), hit.request_id(), "every request has its own id");
    assert_eq!(origin.count("/a"), 1);
    Ok(())
}

#[tokio::test]
async fn s_maxage_beats_max_age_in_a_shared_cache() -> anyhow::Result<()> {
    // RFC 9111 §5.2.2.10: s-maxage overrides max-age (and Expires) in a shared cache.
    let (origin, node) = shop().await?;
    origin.route("/longer", Reply::ok("l").cache_control("max-age=0, s-maxage=60"));
    origin.route("/shorter", Reply::ok("s").cache_control("max-age=60, s-maxage=0"));
    for _ in 0..2 {
        node.get("shop.test", "/longer").await?;
        node.prime("shop.test", "/shorter").await?;
    }
    let hit = node.get("shop.test", "/longer").await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    assert_eq!(origin.count("/longer"), 1);
    assert_eq!(origin.count("/shorter"), 2, "s-maxage=0 makes it stale at once");
    Ok(())
}

#[tokio::test]
async fn expires_decides_freshness_without_max_age() -> anyhow::Result<()> {
    // RFC 9111 §5.3: Expires in the future is fresh; in the past, or invalid ("0"), is stale.
    let (origin, node) = shop().await?;
    origin.route("/future", Reply::ok("f").header("expires", http_date(60)));
    origin.route("/past", Reply::ok("p").header("expires", http_date(-60)));
    origin.route("/invalid", Reply::ok("i").header("expires", "0"));
    // §5.3: with max-age present, Expires is ignored.
    origin.route("/max-age-wins", Reply::ok("m").cache_control("max-age=60").header("expires", http_date(-60)));
    for path in ["/future", "/past", "/invalid", "/max-age-wins"] {
        node.prime("shop.test", path).await?;
        let second = node.get("shop.test", path).await?;
        assert_eq!(second.status, 200);
        if path == "/future" || path == "/max-age-wins" {
            assert!(second.cache_status().hit(), "{path}: {}", second.summary());
        } else {
            assert!(!second.cache_status().hit(), "{path}: {}", second.summary());
        }
    }
    assert_eq!(origin.count("/future"), 1);
    assert_eq!(origin.count("/past"), 2);
    assert_eq!(origin.count("/invalid"), 2);
    assert_eq!(origin.count("/max-age-wins"), 1);
    Ok(())
}

#[tokio::test]
async fn no_freshness_and_no_default_ttl_is_not_stored() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/plain", Reply::ok("plain"));
    let first = node.get("shop.test", "/plain").await?;
    let cs = first.cache_status();
    assert_eq!(cs.fwd(), Some("uri-miss"), "{}", cs.raw);
    assert!(!cs.stored(), "{}", cs.raw);
    let second = node.get("shop.test", "/plain").await?;
    assert!(!second.cache_status().hit(), "{}", second.summary());
    assert_eq!(second.text(), "plain");
    assert_eq!(origin.count("/plain"), 2);
    Ok(())
}

#[tokio::test]
async fn default_ttl_applies_only_without_explicit_freshness() -> anyhow::Result<()> {
    let origin = outpost_tests::Origin::start().await?;
    let service = ServiceSpec::new("shop", &["shop.test"], origin.url()).default_ttl("60s");
    let node = outpost_tests::EdgeNode::start(outpost_tests::NodeConfig::with_service(service)).await?;
    origin.route("/plain", Reply::ok("plain"));
    origin.route("/nostore", Reply::ok("n").cache_control("no-store"));
    origin.route("/zero", Reply::ok("z").cache_control("max-age=0"));

    let first = node.get("shop.test", "/plain").await?;
    assert!(first.cache_status().stored(), "{}", first.summary());
    let hit = node.get("shop.test", "/plain").await?;
    let cs = hit.cache_status();
    assert!(cs.hit(), "{}", cs.raw);
    assert!(cs.ttl().is_some_and(|t| (55..=60).contains(&t)), "{}", cs.raw);
    for path in ["/nostore", "/zero"] {
        node.prime("shop.test", path).await?;
        node.get("shop.test", path).await?;
    }
    assert_eq!(origin.count("/plain"), 1);
    assert_eq!(origin.count("/nostore"), 2, "default_ttl must not override no-store");
    assert_eq!(origin.count("/zero"), 2, "default_ttl must not override max-age=0");
    Ok(())
}

#[tokio::test]
async fn last_modified_gives_heuristic_freshness() -> anyhow::Result<()> {
    // RFC 9111 §4.2.2: no explicit expiry, Last-Modified ten days ago -> a heuristic lifetime
    // (typically 10% of the time since, here a day) makes it fresh.
    let (origin, node) = shop().await?;
    origin.route("/old", Reply::ok("old").header("last-modified", http_date(-10 * 86_400)));
    node.get("shop.test", "/old").await?;
    let second = node.get("shop.test", "/old").await?;
    assert!(second.cache_status().hit(), "{}", second.summary());
    assert_eq!(origin.count("/old"), 1);
    Ok(())
}

#[tokio::test]
async fn no_store_and_private_are_never_stored() -> anyhow::Result<()> {
    // RFC 9111 §5.2.2.5 (no-store) and §5.2.2.7 (private: a shared cache must not store).
    let (origin, node) = shop().await?;
    origin.route("/nostore", Reply::ok("n").cache_control("no-store, max-age=60"));
    origin.route("/private", Reply::ok("p").cache_control("private, max-age=60"));
    for path in ["/nostore", "/private"] {
        let first = node.get("shop.test", path).await?;
        assert!(!first.cache_status().stored(), "{path}: {}", first.summary());
        let second = node.get("shop.test", path).await?;
        assert!(!second.cache_status().hit(), "{path}: {}", second.summary());
        assert_eq!(origin.count(path), 2, "{path}");
        assert_eq!(second.header("cache-control"), first.header("cache-control"));
    }
    Ok(())
}

#[tokio::test]
async fn no_cache_revalidates_every_time() -> anyhow::Result<()> {
    // RFC 9111 §5.2.2.4: a no-cache response may be stored but must be validated before reuse.
    let (origin, node) = shop().await?;
    origin.route("/nc", Reply::ok("body").cache_control("no-cache").etag("\"v1\"").conditional());
    for _ in 0..3 {
        let resp = node.prime("shop.test", "/nc").await?;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "body");
    }
    let seen = origin.requests_for("/nc");
    assert_eq!(seen.len(), 3, "every request goes to the origin");
    assert_eq!(seen[0].header("if-none-match"), None);
    assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""), "revalidation sends the stored ETag");
    assert_eq!(seen[2].header("if-none-match"), Some("\"v1\""));
    Ok(())
}

#[tokio::test]
async fn must_revalidate_forbids_stale_on_error() -> anyhow::Result<()> {
    // RFC 9111 §5.2.2.2: once stale, a must-revalidate response is not reused without a
    // successful revalidation, stale-if-error or not. The control path without it is served stale.
    let (origin, node) = shop().await?;
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (path, cc) in
        [("/strict", "max-age=10, must-revalidate, stale-if-error=60"), ("/lenient", "max-age=10, stale-if-error=60")]
    {
        let failing = failing.clone();
        origin.route_fn(path, move |_| {
            if failing.load(std::sync::atomic::Ordering::SeqCst) {
                Reply::status(500).body("origin broke")
            } else {
                Reply::ok("good copy").cache_control(cc).header("age", "15")
            }
        });
    }
    node.prime("shop.test", "/strict").await?;
    node.prime("shop.test", "/lenient").await?;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);

    let lenient = node.get("shop.test", "/lenient").await?;
    assert_eq!(lenient.status, 200, "{}", lenient.summary());
    assert_eq!(lenient.text(), "good copy");
    assert_eq!(lenient.cache_status().detail(), Some("stale-if-error"), "{}", lenient.summary());

    let strict = node.get("shop.test", "/strict").await?;
    assert_ne!(strict.text(), "good copy", "must-revalidate served stale: {}", strict.summary());
    assert!(strict.status.is_server_error(), "{}", strict.summary());
    assert_eq!(origin.count("/strict"), 2);
    Ok(())
}

#[tokio::test]
async fn cdn_cache_control_beats_cache_control_and_stays_private() -> anyhow::Result<()> {
    // RFC 9213: a CDN uses CDN-Cache-Control instead of Cache-Control, and the header is for it
    // alone (contracts.md: never forwarded to clients). Cache-Control still reaches the client.
    let (origin, node) = shop().await?;
    origin.route("/cdn-longer", Reply::ok("a").cache_control("max-age=0").header("cdn-cache-control", "max-age=60"));
    origin.route("/cdn-nostore", Reply::ok("b").cache_control("max-age=60").header("cdn-cache-control", "no-store"));
    let first = node.get("shop.test", "/cdn-longer").await?;
    assert!(!first.has("cdn-cache-control"), "CDN-Cache-Control leaked to the client");
    assert_eq!(first.header("cache-control"), Some("max-age=0"));
    let second = node.get("shop.test", "/cdn-longer").await?;
    assert!(second.cache_status().hit(), "{}", second.summary());
    assert!(!second.has("cdn-cache-control"), "CDN-Cache-Control leaked on a hit");

    node.get("shop.test", "/cdn-nostore").await?;
    node.get("shop.test", "/cdn-nostore").await?;
    assert_eq!(origin.count("/cdn-longer"), 1);
    assert_eq!(origin.count("/cdn-nostore"), 2);
    Ok(())
}

#[tokio::test]
async fn surrogate_control_beats_cache_control_and_stays_private() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/sc", Reply::ok("a").cache_control("max-age=0").header("surrogate-control", "max-age=60"));
    let first = node.get("shop.test", "/sc").await?;
    assert!(!first.has("surrogate-control"), "Surrogate-Control leaked to the client");
    let second = node.get("shop.test", "/sc").await?;
    assert!(second.cache_status().hit(), "{}", second.summary());
    assert!(!second.has("surrogate-control"));
    assert_eq!(origin.count("/sc"), 1);
    Ok(())
}

#[tokio::test]
async fn age_from_upstream_counts_toward_current_age() -> anyhow::Result<()> {
    // RFC 9111 §4.2.3: corrected_initial_age includes the Age the origin sent.
    let (origin, node) = shop().await?;
    origin.route("/aged", Reply::ok("aged").cache_control("max-age=600").header("age", "100"));
    origin.route("/expired", Reply::ok("gone").cache_control("max-age=50").header("age", "100"));

    node.get("shop.test", "/aged").await?;
    let hit = node.get("shop.test", "/aged").await?;
    let cs = hit.cache_status();
    assert!(cs.hit(), "{}", cs.raw);
    let age = hit.age().unwrap_or(0);
    assert!((100..110).contains(&age), "Age {:?}", hit.header("age"));
    let ttl = cs.ttl().unwrap_or(-1000);
    assert!((490..=500).contains(&ttl), "ttl {ttl} ({})", cs.raw);

    node.prime("shop.test", "/expired").await?;
    let second = node.get("shop.test", "/expired").await?;
    assert!(!second.cache_status().hit(), "{}", second.summary());
    assert_eq!(origin.count("/expired"), 2, "older than max-age on arrival: stale");
    Ok(())
}

#[tokio::test]
async fn fresh_copy_expires_in_real_time() -> anyhow::Result<()> {
    // max-age=3, not 1: Date has whole seconds, so an object can arrive up to a second old
    // (RFC 9111 apparent_age), and with max-age=1 it may already be stale on the next request.
    let (origin, node) = shop().await?;
    origin.route("/short", Reply::ok("short").cache_control("max-age=3"));
    node.get("shop.test", "/short").await?;
    let hit = node.get("shop.test", "/short").await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let after = node.get("shop.test", "/short").await?;
    assert!(!after.cache_status().hit(), "{}", after.summary());
    assert_eq!(origin.count("/short"), 2);
    Ok(())
}

#[tokio::test]
async fn head_is_served_from_a_cached_get() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/h", Reply::ok("0123456789").cache_control("max-age=60"));
    let get = node.get("shop.test", "/h").await?;
    assert_eq!(get.header("content-length"), Some("10"));
    let head = node.send(Req::head("shop.test", "/h")).await?;
    assert_eq!(head.status, 200);
    assert!(head.cache_status().hit(), "{}", head.summary());
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("10"));
    assert_eq!(origin.count("/h"), 1);
    Ok(())
}

#[tokio::test]
async fn head_miss_is_answered_without_a_body() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/hm", Reply::ok("0123456789").cache_control("max-age=60"));
    let head = node.send(Req::head("shop.test", "/hm")).await?;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(origin.count("/hm") >= 1);
    let get = node.get("shop.test", "/hm").await?;
    assert_eq!(get.text(), "0123456789", "a HEAD must never store an empty body for GET");
    Ok(())
}

#[tokio::test]
async fn range_requests_are_served_from_a_cached_object() -> anyhow::Result<()> {
    // RFC 9110 §14: byte ranges, suffix ranges, 416 with `bytes */len`, If-Range.
    let (origin, node) = shop().await?;
    origin.route("/r", Reply::ok("0123456789abcdefghij").cache_control("max-age=60").etag("\"r1\""));
    let full = node.get("shop.test", "/r").await?;
    assert_eq!(full.text().len(), 20);

    let first = node.send(Req::get("shop.test", "/r").header("range", "bytes=0-9")).await?;
    assert_eq!(first.status, 206, "{}", first.summary());
    assert_eq!(first.header("content-range"), Some("bytes 0-9/20"));
    assert_eq!(first.text(), "0123456789");
    assert_eq!(first.header("content-length"), Some("10"));
    assert!(first.cache_status().hit(), "{}", first.summary());

    let suffix = node.send(Req::get("shop.test", "/r").header("range", "bytes=-5")).await?;
    assert_eq!(suffix.status, 206, "{}", suffix.summary());
    assert_eq!(suffix.header("content-range"), Some("bytes 15-19/20"));
    assert_eq!(suffix.text(), "fghij");

    let open = node.send(Req::get("shop.test", "/r").header("range", "bytes=18-")).await?;
    assert_eq!(open.status, 206);
    assert_eq!(open.text(), "ij");

    let beyond = node.send(Req::get("shop.test", "/r").header("range", "bytes=30-40")).await?;
    assert_eq!(beyond.status, 416, "{}", beyond.summary());
    assert_eq!(beyond.header("content-range"), Some("bytes */20"));

    let stale_validator =
        node.send(Req::get("shop.test", "/r").header("range", "bytes=0-9").header("if-range", "\"other\"")).await?;
    assert_eq!(stale_validator.status, 200, "If-Range mismatch gets the whole representation");
    assert_eq!(stale_validator.text(), "0123456789abcdefghij");

    let same_validator =
        node.send(Req::get("shop.test", "/r").header("range", "bytes=0-9").header("if-range", "\"r1\"")).await?;
    assert_eq!(same_validator.status, 206);
    assert_eq!(same_validator.text(), "0123456789");
    assert_eq!(origin.count("/r"), 1, "every range came from the cache");
    Ok(())
}

#[tokio::test]
async fn authorization_bypasses_the_cache_unless_the_response_allows_it() -> anyhow::Result<()> {
    // RFC 9111 §3.5: a shared cache reuses a response to an Authorization request only with
    // public, s-maxage or must-revalidate.
    let (origin, node) = shop().await?;
    origin.route("/mine", Reply::ok("mine").cache_control("max-age=60"));
    origin.route("/public", Reply::ok("pub").cache_control("public, max-age=60"));
    origin.route("/smax", Reply::ok("smax").cache_control("s-maxage=60"));
    for path in ["/mine", "/public", "/smax"] {
        for _ in 0..2 {
            let resp = node.send(Req::get("shop.test", path).header("authorization", "Bearer secret")).await?;
            assert_eq!(resp.status, 200);
        }
    }
    assert_eq!(origin.count("/mine"), 2, "an authorized response without public/s-maxage was reused");
    assert_eq!(origin.requests_for("/mine")[1].header("authorization"), Some("Bearer secret"));
    assert_eq!(origin.count("/public"), 1);
    assert_eq!(origin.count("/smax"), 1);
    Ok(())
}

#[tokio::test]
async fn post_is_forwarded_and_invalidates_the_url() -> anyhow::Result<()> {
    // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI.
    let (origin, node) = shop().await?;
    origin.route_fn("/item", |req| {
        if req.method == http::Method::POST {
            Reply::ok("updated")
        } else {
            Reply::ok("item").cache_control("max-age=60")
        }
    });
    node.get("shop.test", "/item").await?;
    assert!(node.get("shop.test", "/item").await?.cache_status().hit());

    let post = node.send(Req::post("shop.test", "/item").body("x=1")).await?;
    assert_eq!(post.status, 200);
    assert_eq!(post.text(), "updated");
    assert_eq!(post.cache_status().fwd(), Some("method"), "{}", post.summary());
    let posted = origin.last("/item")?;
    assert_eq!(posted.method, http::Method::POST);
    assert_eq!(&posted.body[..], b"x=1");

    let after = node.get("shop.test", "/item").await?;
    assert!(!after.cache_status().hit(), "{}", after.summary());
    assert_eq!(origin.count("/item"), 3);
    Ok(())
}

#[tokio::test]
async fn unsafe_method_invalidates_location_and_content_location() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/b", Reply::ok("b").cache_control("max-age=60"));
    origin.route("/c", Reply::ok("c").cache_control("max-age=60"));
    origin.route("/d", Reply::ok("d").cache_control("max-age=60"));
    origin.route(
        "/form",
        Reply::status(201).header("location", "/b").header("content-location", "http://shop.test/c").body("created"),
    );
    for path in ["/b", "/c", "/d"] {
        node.get("shop.test", path).await?;
    }
    let post = node.send(Req::post("shop.test", "/form").body("new")).await?;
    assert_eq!(post.status, 201);
    for path in ["/b", "/c"] {
        let resp = node.get("shop.test", path).await?;
        assert!(!resp.cache_status().hit(), "{path} should be invalidated: {}", resp.summary());
        assert_eq!(origin.count(path), 2, "{path}");
    }
    let untouched = node.get("shop.test", "/d").await?;
    assert!(untouched.cache_status().hit(), "{}", untouched.summary());
    Ok(())
}

#[tokio::test]
async fn hosts_of_one_service_have_separate_entries() -> anyhow::Result<()> {
    let (origin, node) = shop_with(|c| c).await?;
    origin.route_fn("/who", |req| Reply::ok(req.header("host").unwrap_or("").to_string()).cache_control("max-age=60"));
    assert_eq!(node.get("shop.test", "/who").await?.text(), "shop.test");
    assert_eq!(node.get("img.shop.test", "/who").await?.text(), "img.shop.test");
    assert_eq!(node.get("shop.test", "/who").await?.text(), "shop.test");
    assert_eq!(origin.count("/who"), 2);
    Ok(())
}

#[tokio::test]
async fn responses_with_set_cookie_are_forwarded_not_stored() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/login", Reply::ok("welcome").cache_control("max-age=60").header("set-cookie", "session=abc"));
    let first = node.get("shop.test", "/login").await?;
    assert_eq!(first.header("set-cookie"), Some("session=abc"));
    let second = node.get("shop.test", "/login").await?;
    assert!(!second.cache_status().hit(), "one client's cookie was served to another: {}", second.summary());
    assert_eq!(origin.count("/login"), 2);
    Ok(())
}

#[tokio::test]
async fn status_codes_follow_their_cacheability() -> anyhow::Result<()> {
    // RFC 9110 §15.1: 404 is heuristically cacheable and storable with explicit freshness;
    // RFC 9111 §4.2.2: a 302 without explicit freshness gets no heuristic lifetime.
    let (origin, node) = shop().await?;
    origin.route("/missing", Reply::status(404).body("no such page").cache_control("max-age=60"));
    origin.route(
        "/moved",
        Reply::status(302).header("location", "/elsewhere").header("last-modified", http_date(-10 * 86_400)),
    );
    for _ in 0..2 {
        let missing = node.get("shop.test", "/missing").await?;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.text(), "no such page");
        let moved = node.get("shop.test", "/moved").await?;
        assert_eq!(moved.status, 302);
        assert_eq!(moved.header("location"), Some("/elsewhere"));
    }
    assert_eq!(origin.count("/missing"), 1, "a cacheable 404 is stored");
    assert_eq!(origin.count("/moved"), 2, "a 302 gets no heuristic freshness");
    Ok(())
}

#[tokio::test]
async fn cold_range_request_fills_the_whole_object() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/cold", Reply::ok("0123456789abcdefghij").cache_control("max-age=60"));
    let part = node.send(Req::get("shop.test", "/cold").header("range", "bytes=5-9")).await?;
    assert_eq!(part.status, 206, "{}", part.summary());
    assert_eq!(part.text(), "56789");
    assert_eq!(part.header("content-range"), Some("bytes 5-9/20"));
    assert_eq!(origin.last("/cold")?.header("range"), None, "the fill asks for the whole object");
    let full = node.get("shop.test", "/cold").await?;
    assert!(full.cache_status().hit(), "{}", full.summary());
    assert_eq!(full.text(), "0123456789abcdefghij");
    assert_eq!(origin.count("/cold"), 1);
    Ok(())
}
