//! Validation (RFC 9111 §4.3): the node revalidating stale entries with the origin, answering
//! clients' conditional requests from cache, and serving stale content (RFC 5861:
//! stale-while-revalidate, stale-if-error).
//!
//! Stale entries come from the origin's `Age` header (see caching.rs) rather than from sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outpost_tests::{Reply, Req, eventually, http_date, shop};

/// A switch a scripted origin reads on each request.
#[derive(Clone, Default)]
struct Switch(Arc<AtomicBool>);

impl Switch {
    fn on(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn etag_revalidation_refreshes_headers_and_keeps_the_body() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route_fn("/doc", |req| {
        if req.header("if-none-match") == Some("\"v1\"") {
            // RFC 9111 §4.3.4: the 304's headers replace the stored ones.
            Reply::status(304).etag("\"v1\"").cache_control("max-age=60").header("x-version", "2")
        } else {
            Reply::ok("version one body")
                .etag("\"v1\"")
                .cache_control("max-age=10")
                .header("age", "15")
                .header("x-version", "1")
        }
    });
    let first = node.prime("shop.test", "/doc").await?;
    assert_eq!(first.header("x-version"), Some("1"));

    let revalidated = node.get("shop.test", "/doc").await?;
    assert_eq!(revalidated.status, 200, "{}", revalidated.summary());
    assert_eq!(revalidated.text(), "version one body");
    assert_eq!(revalidated.header("x-version"), Some("2"), "headers from the 304 are used");
    let cs = revalidated.cache_status();
    assert_eq!(cs.fwd(), Some("stale"), "{}", cs.raw);
    assert_eq!(cs.fwd_status(), Some(304), "{}", cs.raw);
    assert!(cs.stored(), "{}", cs.raw);
    let sent = origin.last("/doc")?;
    assert_eq!(sent.header("if-none-match"), Some("\"v1\""));

    let hit = node.get("shop.test", "/doc").await?;
    assert!(hit.cache_status().hit(), "the refreshed entry is fresh: {}", hit.summary());
    assert_eq!(hit.header("x-version"), Some("2"));
    assert_eq!(hit.text(), "version one body");
    assert_eq!(origin.count("/doc"), 2);
    Ok(())
}

#[tokio::test]
async fn last_modified_revalidation_sends_if_modified_since() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let last_modified = http_date(-3600);
    origin.route(
        "/lm",
        Reply::ok("dated")
            .header("last-modified", last_modified.clone())
            .cache_control("max-age=10")
            .header("age", "15")
            .conditional(),
    );
    node.prime("shop.test", "/lm").await?;
    let second = node.get("shop.test", "/lm").await?;
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "dated");
    assert_eq!(second.cache_status().fwd_status(), Some(304), "{}", second.summary());
    let sent = origin.last("/lm")?;
    assert_eq!(sent.header("if-modified-since"), Some(last_modified.as_str()));
    assert_eq!(sent.header("if-none-match"), None);
    Ok(())
}

#[tokio::test]
async fn client_if_none_match_is_answered_from_cache() -> anyhow::Result<()> {
    // RFC 9111 §4.3.2: a cache answers a conditional request with its stored response.
    let (origin, node) = shop().await?;
    origin.route("/e", Reply::ok("tagged").cache_control("max-age=60").etag("\"e1\""));
    node.get("shop.test", "/e").await?;

    let matching = node.send(Req::get("shop.test", "/e").header("if-none-match", "\"e1\"")).await?;
    assert_eq!(matching.status, 304, "{}", matching.summary());
    assert!(matching.body.is_empty());
    assert_eq!(matching.header("etag"), Some("\"e1\""));
    assert!(matching.cache_status().hit(), "{}", matching.summary());

    let list = node.send(Req::get("shop.test", "/e").header("if-none-match", "\"zz\", W/\"e1\"")).await?;
    assert_eq!(list.status, 304, "weak comparison over a list: {}", list.summary());

    let other = node.send(Req::get("shop.test", "/e").header("if-none-match", "\"e0\"")).await?;
    assert_eq!(other.status, 200);
    assert_eq!(other.text(), "tagged");
    assert_eq!(origin.count("/e"), 1);
    Ok(())
}

#[tokio::test]
async fn client_if_modified_since_is_answered_from_cache() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/m", Reply::ok("dated").cache_control("max-age=60").header("last-modified", http_date(-3600)));
    node.get("shop.test", "/m").await?;
    let later = node.send(Req::get("shop.test", "/m").header("if-modified-since", http_date(-60))).await?;
    assert_eq!(later.status, 304, "{}", later.summary());
    assert!(later.body.is_empty());
    let earlier = node.send(Req::get("shop.test", "/m").header("if-modified-since", http_date(-7200))).await?;
    assert_eq!(earlier.status, 200);
    assert_eq!(earlier.text(), "dated");
    assert_eq!(origin.count("/m"), 1);
    Ok(())
}

#[tokio::test]
async fn client_no_cache_asks_the_origin_when_the_service_honours_it() -> anyhow::Result<()> {
    // `honor_client_cache_control = true` (default false: forwarding.rs covers that).
    let (origin, node) = outpost_tests::shop_with(|mut c| {
        c.services[0].extra.push("honor_client_cache_control = true".into());
        c
    })
    .await?;
    origin.route("/f", Reply::ok("fresh").cache_control("max-age=60").etag("\"f\"").conditional());
    node.prime("shop.test", "/f").await?;
    let forced = node.send(Req::get("shop.test", "/f").header("cache-control", "no-cache")).await?;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.text(), "fresh");
    assert_eq!(forced.cache_status().fwd(), Some("request"), "{}", forced.summary());
    assert_eq!(origin.count("/f"), 2);
    let zero = node.send(Req::get("shop.test", "/f").header("cache-control", "max-age=0")).await?;
    assert_eq!(zero.cache_status().fwd(), Some("request"), "{}", zero.summary());
    assert_eq!(origin.count("/f"), 3);
    Ok(())
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() -> anyhow::Result<()> {
    // A first-byte timeout above the revalidation's 3 s delay (the harness's default is 2 s).
    let (origin, node) = outpost_tests::shop_with(|mut c| {
        c.first_byte_timeout = "10s".into();
        c
    })
    .await?;
    origin.route_fn("/swr", |req| {
        if req.header("if-none-match").is_some() {
            // The background revalidation is slow: clients must not wait for it. Slow enough
            // that three requests on a loaded machine finish well before it answers.
            Reply::status(304).etag("\"s1\"").cache_control("max-age=60").delay(Duration::from_secs(3))
        } else {
            Reply::ok("stale but fine")
                .etag("\"s1\"")
                .cache_control("max-age=1, stale-while-revalidate=60")
                .header("age", "3")
        }
    });
    node.prime("shop.test", "/swr").await?;

    for _ in 0..3 {
        let stale = node.get("shop.test", "/swr").await?;
        assert_eq!(stale.status, 200);
        assert_eq!(stale.text(), "stale but fine");
        let cs = stale.cache_status();
        assert!(cs.hit(), "{}", cs.raw);
        assert_eq!(cs.detail(), Some("stale-while-revalidate"), "{}", cs.raw);
        assert!(cs.ttl().is_some_and(|t| t < 0), "{}", cs.raw);
    }
    assert_eq!(origin.responded("/swr"), 1, "the stale responses were sent before the revalidation finished");
    origin.wait_for_count("/swr", 2, Duration::from_secs(5)).await?;
    assert!(
        eventually(Duration::from_secs(10), || origin.responded("/swr") == 2).await,
        "the background revalidation completes"
    );
    // Let the node apply the 304 before asking again.
    let mut refreshed = None;
    for _ in 0..50 {
        let resp = node.get("shop.test", "/swr").await?;
        if resp.cache_status().detail().is_none() {
            refreshed = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refreshed = refreshed.ok_or_else(|| anyhow::anyhow!("the entry was never refreshed"))?;
    assert!(refreshed.cache_status().hit(), "{}", refreshed.summary());
    assert_eq!(refreshed.text(), "stale but fine");
    assert_eq!(origin.count("/swr"), 2, "exactly one background revalidation");
    assert_eq!(origin.last("/swr")?.header("if-none-match"), Some("\"s1\""));
    Ok(())
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_fails() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let failing = Switch::default();
    let f = failing.clone();
    origin.route_fn("/sie", move |_| {
        if f.is_on() {
            Reply::status(503).body("down for maintenance")
        } else {
            Reply::ok("last good copy").cache_control("max-age=10, stale-if-error=60").header("age", "15")
        }
    });
    node.prime("shop.test", "/sie").await?;
    failing.on();
    let stale = node.get("shop.test", "/sie").await?;
    assert_eq!(stale.status, 200, "{}", stale.summary());
    assert_eq!(stale.text(), "last good copy");
    let cs = stale.cache_status();
    assert_eq!(cs.fwd(), Some("stale"), "{}", cs.raw);
    assert_eq!(cs.fwd_status(), Some(503), "{}", cs.raw);
    assert_eq!(cs.detail(), Some("stale-if-error"), "{}", cs.raw);
    assert!(stale.has("age"));
    assert_eq!(origin.count("/sie"), 2);
    Ok(())
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_is_gone() -> anyhow::Result<()> {
    let (mut origin, node) = shop().await?;
    origin.route("/gone", Reply::ok("kept").cache_control("max-age=10, stale-if-error=60").header("age", "15"));
    node.prime("shop.test", "/gone").await?;
    origin.stop().await;
    let stale = node.get("shop.test", "/gone").await?;
    assert_eq!(stale.status, 200, "{}", stale.summary());
    assert_eq!(stale.text(), "kept");
    let cs = stale.cache_status();
    assert_eq!(cs.detail(), Some("stale-if-error"), "{}", cs.raw);
    assert_eq!(cs.fwd_status(), None, "no fwd-status when the origin was unreachable: {}", cs.raw);
    Ok(())
}

#[tokio::test]
async fn without_stale_if_error_origin_errors_reach_the_client() -> anyhow::Result<()> {
    let (mut origin, node) = shop().await?;
    let failing = Switch::default();
    let f = failing.clone();
    origin.route_fn("/plain", move |_| {
        if f.is_on() {
            Reply::status(500).body("origin error page")
        } else {
            Reply::ok("good").cache_control("max-age=10").header("age", "15")
        }
    });
    node.prime("shop.test", "/plain").await?;
    failing.on();
    let passed = node.get("shop.test", "/plain").await?;
    assert_eq!(passed.status, 500, "{}", passed.summary());
    assert_eq!(passed.text(), "origin error page");

    origin.stop().await;
    let refused = node.get("shop.test", "/plain").await?;
    assert_eq!(refused.status, 502, "{}", refused.summary());
    Ok(())
}

#[tokio::test]
async fn cold_conditional_request_fills_the_cache_and_gets_304() -> anyhow::Result<()> {
    // The fill is unconditional (the cache needs the body); the client's validator is then
    // checked against the stored response.
    let (origin, node) = shop().await?;
    origin.route("/cold", Reply::ok("cold body").cache_control("max-age=60").etag("\"c1\"").conditional());
    let conditional = node.send(Req::get("shop.test", "/cold").header("if-none-match", "\"c1\"")).await?;
    assert_eq!(conditional.status, 304, "{}", conditional.summary());
    assert_eq!(origin.last("/cold")?.header("if-none-match"), None, "the client's validator was forwarded");
    // The 304 went out with the head; the body was still streaming into the store. A request
    // now (rightly) joins that fetch (`collapsed`, no new origin request): ask until one meets
    // the stored object (bounded), rather than sleeping a fixed time.
    let start = std::time::Instant::now();
    let full = loop {
        let resp = node.get("shop.test", "/cold").await?;
        if !resp.cache_status().collapsed() || start.elapsed() > Duration::from_secs(5) {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(full.cache_status().hit(), "{}", full.summary());
    assert_eq!(full.text(), "cold body");
    assert_eq!(origin.count("/cold"), 1);
    Ok(())
}

#[tokio::test]
async fn stale_if_error_covers_an_origin_timeout() -> anyhow::Result<()> {
    // 2 s, not 500 ms: the prime must get its head within it on a loaded machine; the slow
    // origin (5 s) still answers well after the timeout.
    let (origin, node) = outpost_tests::shop_with(|mut c| {
        c.first_byte_timeout = "2s".into();
        c
    })
    .await?;
    let slow = Switch::default();
    let s = slow.clone();
    origin.route_fn("/t", move |_| {
        let reply =
            Reply::ok("kept through a timeout").cache_control("max-age=10, stale-if-error=60").header("age", "15");
        if s.is_on() { reply.delay(Duration::from_secs(5)) } else { reply }
    });
    node.prime("shop.test", "/t").await?;
    slow.on();
    let stale = node.get("shop.test", "/t").await?;
    assert_eq!(stale.status, 200, "{}", stale.summary());
    assert_eq!(stale.text(), "kept through a timeout");
    assert_eq!(stale.cache_status().detail(), Some("stale-if-error"), "{}", stale.summary());
    assert_eq!(origin.responded("/t"), 1, "served before the slow origin answered");
    Ok(())
}

#[tokio::test]
async fn only_if_cached_never_contacts_the_origin() -> anyhow::Result<()> {
    // RFC 9111 §5.2.1.7: answer from the cache or with 504.
    let (origin, node) = shop().await?;
    origin.route("/oic", Reply::ok("cached").cache_control("max-age=60"));
    let cold = node.send(Req::get("shop.test", "/oic").header("cache-control", "only-if-cached")).await?;
    assert_eq!(cold.status, 504, "{}", cold.summary());
    assert_eq!(origin.count("/oic"), 0);
    node.get("shop.test", "/oic").await?;
    let warm = node.send(Req::get("shop.test", "/oic").header("cache-control", "only-if-cached")).await?;
    assert_eq!(warm.status, 200);
    assert_eq!(warm.text(), "cached");
    assert_eq!(origin.count("/oic"), 1);
    Ok(())
}

#[tokio::test]
async fn background_revalidation_picks_up_changed_content() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let changed = Switch::default();
    let c = changed.clone();
    origin.route_fn("/news", move |_| {
        if c.is_on() {
            Reply::ok("version two").etag("\"n2\"").cache_control("max-age=60")
        } else {
            Reply::ok("version one")
                .etag("\"n1\"")
                .cache_control("max-age=1, stale-while-revalidate=60")
                .header("age", "3")
        }
    });
    node.prime("shop.test", "/news").await?;
    changed.on();
    let stale = node.get("shop.test", "/news").await?;
    assert_eq!(stale.text(), "version one");
    assert_eq!(stale.cache_status().detail(), Some("stale-while-revalidate"), "{}", stale.summary());
    origin.wait_for_count("/news", 2, Duration::from_secs(5)).await?;
    let mut latest = String::new();
    for _ in 0..50 {
        latest = node.get("shop.test", "/news").await?.text();
        if latest == "version two" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(latest, "version two", "the refreshed object replaced the stale one");
    assert_eq!(origin.count("/news"), 2);
    Ok(())
}

/// An origin whose `path` is stale on arrival (max-age=10, Age: 15) with ETag "v1", and whose
/// 304 to a revalidation carries `not_modified` (name, value) fields besides the ETag.
fn stale_with_304(origin: &outpost_tests::Origin, path: &str, not_modified: &'static [(&'static str, &'static str)]) {
    origin.route_fn(path, move |req| {
        if req.header("if-none-match") == Some("\"v1\"") {
            let mut reply = Reply::status(304).etag("\"v1\"");
            for (name, value) in not_modified {
                reply = reply.header(name, *value);
            }
            reply
        } else {
            Reply::ok("shared body").etag("\"v1\"").cache_control("max-age=10").header("age", "15")
        }
    });
}

#[tokio::test]
async fn a_304s_set_cookie_goes_to_its_requester_only() -> anyhow::Result<()> {
    // Issue 18 finding 2. RFC 9111 §3.2 / §4.3.4: the 304 answers alice's request; its cookie
    // is hers and never part of the stored response.
    let (origin, node) = shop().await?;
    stale_with_304(&origin, "/account", &[("cache-control", "max-age=60"), ("set-cookie", "session=alice")]);
    node.prime("shop.test", "/account").await?;

    let alice = node.send(Req::get("shop.test", "/account").header("cookie", "login=alice")).await?;
    assert_eq!(alice.cache_status().fwd_status(), Some(304), "{}", alice.summary());
    assert_eq!(alice.header("set-cookie"), Some("session=alice"), "the requester gets its cookie");
    assert_eq!(alice.text(), "shared body");

    let bob = node.get("shop.test", "/account").await?;
    assert!(bob.cache_status().hit(), "the refreshed entry is stored: {}", bob.summary());
    assert_eq!(bob.header("set-cookie"), None, "alice's session was served to another client: {}", bob.summary());
    // Bob's own conditional request: answered 304 from the store, still without her cookie.
    let bob_again = node.send(Req::get("shop.test", "/account").header("if-none-match", "\"v1\"")).await?;
    assert_eq!(bob_again.status, 304);
    assert_eq!(bob_again.header("set-cookie"), None, "{}", bob_again.summary());
    assert_eq!(origin.count("/account"), 2);
    Ok(())
}

#[tokio::test]
async fn a_304_that_makes_the_response_private_or_no_store_ends_the_stored_copy() -> anyhow::Result<()> {
    // RFC 9111 §4.3.4 then §3 (§5.2.2.7 private, §5.2.2.5 no-store, RFC 9213 CDN-Cache-Control):
    // the merged response may not be stored, so it answers the requester only and the stored
    // copy goes; the next client is fetched for, not served a hit.
    let (origin, node) = shop().await?;
    let cases: [(&str, &'static [(&str, &str)]); 3] = [
        ("/private", &[("cache-control", "private, max-age=60")]),
        ("/no-store", &[("cache-control", "no-store")]),
        ("/cdn-no-store", &[("cdn-cache-control", "no-store"), ("cache-control", "max-age=60")]),
    ];
    for (path, fields) in cases {
        stale_with_304(&origin, path, fields);
        node.prime("shop.test", path).await?;
        let first = node.get("shop.test", path).await?;
        assert_eq!(first.status, 200, "{path}: {}", first.summary());
        assert_eq!(first.text(), "shared body", "{path}");
        let cs = first.cache_status();
        assert_eq!(cs.fwd_status(), Some(304), "{path}: {}", cs.raw);
        assert!(!cs.stored(), "{path}: the update may not be stored: {}", cs.raw);

        let next = node.get("shop.test", path).await?;
        assert!(
            !next.cache_status().hit(),
            "{path}: a private/no-store update was served as a hit: {}",
            next.summary()
        );
        assert_eq!(origin.count(path), 3, "{path}: the next client was fetched for");
    }
    Ok(())
}

#[tokio::test]
async fn a_304_that_changes_vary_is_not_served_to_other_variants() -> anyhow::Result<()> {
    // RFC 9111 §4.1: the stored response was keyed without Vary; after a 304 saying
    // `Vary: Accept-Language` it must not be served to a request in another language.
    let (origin, node) = shop().await?;
    stale_with_304(&origin, "/lang", &[("cache-control", "max-age=60"), ("vary", "accept-language")]);
    node.prime("shop.test", "/lang").await?;
    let en = node.send(Req::get("shop.test", "/lang").header("accept-language", "en")).await?;
    assert_eq!(en.cache_status().fwd_status(), Some(304), "{}", en.summary());
    let fr = node.send(Req::get("shop.test", "/lang").header("accept-language", "fr")).await?;
    assert!(!fr.cache_status().hit(), "served across a Vary it did not match: {}", fr.summary());
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_fields_of_a_304_are_not_stored() -> anyhow::Result<()> {
    // RFC 9111 §3.1 / RFC 9110 §7.6.1: Connection, the fields it names, and Keep-Alive are for
    // one hop; a 304 carrying them does not put them in the stored response.
    let (origin, node) = shop().await?;
    stale_with_304(
        &origin,
        "/hop",
        &[("cache-control", "max-age=60"), ("connection", "x-secret"), ("x-secret", "1"), ("x-kept", "yes")],
    );
    node.prime("shop.test", "/hop").await?;
    node.get("shop.test", "/hop").await?;
    let hit = node.get("shop.test", "/hop").await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    assert_eq!(hit.header("x-secret"), None, "{}", hit.summary());
    assert_eq!(hit.header("x-kept"), Some("yes"), "end-to-end fields of the 304 are merged");
    Ok(())
}

#[tokio::test]
async fn collapsed_waiters_never_get_the_leaders_cookie() -> anyhow::Result<()> {
    // Many clients find the object stale at once; one revalidation goes upstream and its 304's
    // Set-Cookie reaches exactly one of them (the one whose request went).
    let (origin, node) = shop().await?;
    origin.route_fn("/burst", |req| {
        if req.header("if-none-match") == Some("\"v1\"") {
            Reply::status(304)
                .etag("\"v1\"")
                .cache_control("max-age=60")
                .header("set-cookie", "session=leader")
                .delay(Duration::from_millis(200))
        } else {
            Reply::ok("shared body").etag("\"v1\"").cache_control("max-age=10").header("age", "15")
        }
    });
    node.prime("shop.test", "/burst").await?;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let req = Req::get("shop.test", "/burst");
        let addr = node.http_addr();
        set.spawn(async move { outpost_tests::client::send(addr, &req).await });
    }
    let mut with_cookie = 0;
    while let Some(r) = set.join_next().await {
        let r = r??;
        assert_eq!(r.text(), "shared body");
        with_cookie += usize::from(r.header("set-cookie").is_some());
    }
    let revalidations = origin.requests_for("/burst").iter().filter(|r| r.header("if-none-match").is_some()).count();
    assert_eq!(with_cookie, revalidations, "one cookie per upstream revalidation, to its requester");
    Ok(())
}

#[tokio::test]
async fn a_stored_set_cookie_response_keeps_its_cookie_for_the_fetching_client() -> anyhow::Result<()> {
    // `store_set_cookie = true`: the response is stored, its Set-Cookie is not (RFC 6265 §3:
    // one user agent's state). Without the option it is not stored at all (caching.rs).
    let origin = outpost_tests::Origin::start().await?;
    let service = outpost_tests::ServiceSpec::new("shop", &["shop.test"], origin.url()).line("store_set_cookie = true");
    let node = outpost_tests::EdgeNode::start(outpost_tests::NodeConfig::with_service(service)).await?;
    origin.route("/home", Reply::ok("home").cache_control("max-age=60").header("set-cookie", "session=first"));
    let first = node.get("shop.test", "/home").await?;
    assert_eq!(first.header("set-cookie"), Some("session=first"), "{}", first.summary());
    assert!(first.cache_status().stored(), "{}", first.summary());
    let second = node.get("shop.test", "/home").await?;
    assert!(second.cache_status().hit(), "{}", second.summary());
    assert_eq!(second.header("set-cookie"), None, "the first client's cookie was replayed: {}", second.summary());
    assert_eq!(origin.count("/home"), 1);
    Ok(())
}
