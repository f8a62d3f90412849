//! The cache's reading of the fields RFC 9111 leaves room in, through the real node and the
//! scripted origin: CDN-Cache-Control as a Structured Field Dictionary (RFC 9213 §2.1), the
//! three HTTP-date forms (RFC 9110 §5.6.7), a 304 that matches nothing (RFC 9111 §4.3.4), and
//! repeated Cache-Control directives (RFC 9111 §4.2.1).
//!
//! Stale entries come from the origin's `Age` header (see caching.rs) rather than from sleeping.

use outpost_tests::{Reply, Req, http_date, shop};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// RFC 9110 §5.6.7 obsolete forms of `now + offset` seconds.
fn rfc850(offset: i64) -> String {
    reformat(offset, |wd, d, m, y, t| format!("{}, {d}-{m}-{} {t} GMT", full_day(wd), &y[2..]))
}
fn asctime(offset: i64) -> String {
    reformat(offset, |wd, d, m, y, t| format!("{wd} {m} {:>2} {t} {y}", d.trim_start_matches('0')))
}

/// Splits an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) and rebuilds it with `f`.
fn reformat(offset: i64, f: impl Fn(&str, &str, &str, &str, &str) -> String) -> String {
    let imf = http_date(offset);
    let p: Vec<&str> = imf.split([' ', ',']).filter(|s| !s.is_empty()).collect();
    f(p[0], p[1], p[2], p[3], p[4])
}

fn full_day(abbrev: &str) -> &'static str {
    match abbrev {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    }
}

#[tokio::test]
async fn cdn_cache_control_that_fails_to_parse_is_ignored_and_cache_control_applies() -> anyhow::Result<()> {
    // RFC 9213 §2.1: a parse error (here a Token where max-age needs an Integer) means the field
    // is ignored whole: Cache-Control's max-age=60 applies, not "invalid max-age, stale".
    let (origin, node) = shop().await?;
    origin.route("/bad", Reply::ok("bad dict").cache_control("max-age=60").header("cdn-cache-control", "max-age=abc"));
    node.prime("shop.test", "/bad").await?;
    let second = node.get("shop.test", "/bad").await?;
    let cs = second.cache_status();
    assert!(cs.hit(), "Cache-Control's TTL applies: {}", second.summary());
    assert!(cs.ttl().is_some_and(|t| (1..=60).contains(&t)), "ttl from max-age=60: {}", cs.raw);
    assert_eq!(origin.count("/bad"), 1);
    // And a trailing comma (RFC 9651 §4.2.2) spoils an otherwise longer lifetime.
    origin.route("/comma", Reply::ok("x").cache_control("max-age=60").header("cdn-cache-control", "max-age=6000,"));
    node.prime("shop.test", "/comma").await?;
    let hit = node.get("shop.test", "/comma").await?;
    assert!(hit.cache_status().ttl().is_some_and(|t| t <= 60), "{}", hit.summary());
    Ok(())
}

#[tokio::test]
async fn cdn_cache_control_that_parses_wins_over_cache_control() -> anyhow::Result<()> {
    // RFC 9213 §2.2: the valid targeted field is used and Cache-Control is ignored; lines combine
    // into one Dictionary (RFC 9651 §4.2) and parameters are ignored (RFC 9213 §2.1).
    let (origin, node) = shop().await?;
    origin.route(
        "/good",
        Reply::ok("good dict")
            .cache_control("no-store")
            .header("cdn-cache-control", "public")
            .header("cdn-cache-control", "max-age=600;owner=\"ops\""),
    );
    node.prime("shop.test", "/good").await?;
    let second = node.get("shop.test", "/good").await?;
    assert!(second.cache_status().hit(), "{}", second.summary());
    assert!(second.cache_status().ttl().is_some_and(|t| t > 60), "{}", second.cache_status().raw);
    assert_eq!(origin.count("/good"), 1);
    assert!(!second.has("cdn-cache-control"), "the targeted field is the CDN's, stripped before the client");
    Ok(())
}

#[tokio::test]
async fn obsolete_date_forms_are_read_for_expires_and_last_modified() -> anyhow::Result<()> {
    // RFC 9110 §5.6.7: recipients MUST accept rfc850-date and asctime-date.
    let (origin, node) = shop().await?;
    origin.route("/rfc850", Reply::ok("850").header("date", http_date(0)).header("expires", rfc850(600)));
    node.prime("shop.test", "/rfc850").await?;
    let hit = node.get("shop.test", "/rfc850").await?;
    assert!(hit.cache_status().hit(), "RFC 850 Expires: {}", hit.summary());

    origin.route("/asctime", Reply::ok("asc").header("date", http_date(0)).header("expires", asctime(600)));
    node.prime("shop.test", "/asctime").await?;
    assert!(node.get("shop.test", "/asctime").await?.cache_status().hit(), "asctime Expires");

    // RFC 9111 §4.2.2: heuristic freshness from an asctime Last-Modified 10 days old (10%: a day).
    let lm = asctime(-864_000);
    origin.route("/heuristic", Reply::ok("old").header("date", http_date(0)).header("last-modified", lm.clone()));
    node.prime("shop.test", "/heuristic").await?;
    let hit = node.get("shop.test", "/heuristic").await?;
    assert!(hit.cache_status().hit(), "heuristic from asctime Last-Modified: {}", hit.summary());
    assert_eq!(origin.count("/heuristic"), 1);

    // RFC 9111 §5.3: an invalid Expires (here "0") still means already expired.
    origin.route("/zero", Reply::ok("z").header("date", http_date(0)).header("expires", "0"));
    node.prime("shop.test", "/zero").await?;
    let again = node.get("shop.test", "/zero").await?;
    assert!(!again.cache_status().hit(), "{}", again.summary());
    assert_eq!(origin.count("/zero"), 2);
    Ok(())
}

#[tokio::test]
async fn revalidation_sends_the_stored_asctime_last_modified() -> anyhow::Result<()> {
    // RFC 9111 §4.3.1: the stored Last-Modified goes back as If-Modified-Since; the origin
    // compares it as a date (RFC 9110 §13.1.3) and answers 304.
    let (origin, node) = shop().await?;
    let lm = asctime(-3600);
    origin.route(
        "/lm",
        Reply::ok("dated")
            .header("last-modified", lm.clone())
            .cache_control("max-age=10")
            .header("age", "15")
            .conditional(),
    );
    node.prime("shop.test", "/lm").await?;
    let second = node.get("shop.test", "/lm").await?;
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "dated");
    assert_eq!(second.cache_status().fwd_status(), Some(304), "{}", second.summary());
    assert_eq!(origin.last("/lm")?.header("if-modified-since"), Some(lm.as_str()));
    // A client's own If-Modified-Since in RFC 850 form is answered from the cache.
    let mine = node.send(Req::get("shop.test", "/lm").header("if-modified-since", rfc850(-60))).await?;
    assert_eq!(mine.status, 304, "{}", mine.summary());
    Ok(())
}

#[tokio::test]
async fn rfc850_two_digit_years_follow_the_fifty_year_rule() -> anyhow::Result<()> {
    // RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is the most recent past year
    // with those digits, and one less far ahead is in the future. 45 years from now (a year
    // written "7x" until 2030) is in the future: an Expires written that way keeps the response
    // fresh, where a fixed 1970 pivot would read it as the 1970s (stale).
    let (origin, node) = shop().await?;
    let years_45 = 45 * 365 * 86_400;
    origin.route("/future", Reply::ok("f").header("date", http_date(0)).header("expires", rfc850(years_45)));
    node.prime("shop.test", "/future").await?;
    let hit = node.get("shop.test", "/future").await?;
    assert!(hit.cache_status().hit(), "RFC 850 year 30 years ahead: {}", hit.summary());
    assert_eq!(origin.count("/future"), 1);
    Ok(())
}

#[tokio::test]
async fn a_304_that_matches_nothing_is_asked_again_unconditionally() -> anyhow::Result<()> {
    // RFC 9111 §4.3.4: a 304 whose strong ETag is not the stored one updates nothing; the
    // request is repeated without validators and its 200 is served and stored.
    let (origin, node) = shop().await?;
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    origin.route_fn("/doc", move |req| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::ok("version one").etag("\"v1\"").cache_control("max-age=10").header("age", "15");
        }
        if req.header("if-none-match").is_some() {
            return Reply::status(304).etag("\"v2\"").cache_control("max-age=60");
        }
        Reply::ok("version two").etag("\"v2\"").cache_control("max-age=60")
    });
    node.prime("shop.test", "/doc").await?;
    let second = node.get("shop.test", "/doc").await?;
    assert_eq!(second.status, 200, "{}", second.summary());
    assert_eq!(second.text(), "version two");
    assert_eq!(second.header("etag"), Some("\"v2\""));
    let sent = origin.requests_for("/doc");
    assert_eq!(sent.len(), 3, "prime, conditional, one unconditional repeat");
    assert_eq!(sent[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!((sent[2].header("if-none-match"), sent[2].header("if-modified-since")), (None, None));
    // The repeat's 200 was stored (before its last bytes reached the client, see fetch.rs).
    let third = node.get("shop.test", "/doc").await?;
    assert!(third.cache_status().hit(), "{}", third.summary());
    assert_eq!(third.text(), "version two");
    assert_eq!(origin.count("/doc"), 3);
    Ok(())
}

#[tokio::test]
async fn a_second_304_is_a_clean_error_not_a_loop() -> anyhow::Result<()> {
    // The origin answers 304 with another ETag to everything after the first fill: the repeat
    // without validators gets a 304 too, which answers nothing (RFC 9110 §15.4.5): 502, once.
    let (origin, node) = shop().await?;
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    origin.route_fn("/broken", move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::ok("v1").etag("\"v1\"").cache_control("max-age=10").header("age", "15");
        }
        Reply::status(304).etag("\"v2\"")
    });
    node.prime("shop.test", "/broken").await?;
    let second = node.get("shop.test", "/broken").await?;
    assert_eq!(second.status, 502, "{}", second.summary());
    assert_eq!(origin.count("/broken"), 3, "one conditional request and one repeat, no loop");

    // A 304 to a fill the cache made unconditional (the client's If-None-Match is the cache's
    // to answer) answers nothing either: 502, not a 304 the client may not have asked for.
    origin.route("/never", Reply::status(304).etag("\"x\""));
    let plain = node.get("shop.test", "/never").await?;
    assert_eq!(plain.status, 502, "{}", plain.summary());
    let cond = node.send(Req::get("shop.test", "/never").header("if-none-match", "\"x\"")).await?;
    assert_eq!(cond.status, 502, "{}", cond.summary());
    Ok(())
}

#[tokio::test]
async fn repeated_cache_control_directives_take_the_restrictive_reading() -> anyhow::Result<()> {
    // RFC 9111 §4.2.1: max-age given twice with different values (here on two field lines):
    // "the response should be considered stale".
    let (origin, node) = shop().await?;
    origin.route("/twice", Reply::ok("t").cache_control("max-age=600").cache_control("max-age=60"));
    node.prime("shop.test", "/twice").await?;
    let second = node.get("shop.test", "/twice").await?;
    assert!(!second.cache_status().hit(), "{}", second.summary());
    assert_eq!(origin.count("/twice"), 2);

    // The same value twice, odd case and quotes: no conflict (RFC 9111 §5.2).
    origin.route("/same", Reply::ok("s").cache_control("max-age=600, MAX-AGE=\"600\""));
    node.prime("shop.test", "/same").await?;
    assert!(node.get("shop.test", "/same").await?.cache_status().hit());

    // Any no-store among the lines wins (RFC 9111 §4.2.1 "most restrictive").
    origin.route("/nostore", Reply::ok("n").cache_control("public, max-age=600").cache_control("No-Store"));
    node.prime("shop.test", "/nostore").await?;
    node.get("shop.test", "/nostore").await?;
    assert_eq!(origin.count("/nostore"), 2);

    // private="set-cookie" is private for a shared cache (RFC 9111 §5.2.2.7).
    origin.route("/private", Reply::ok("p").cache_control("max-age=600, private=\"set-cookie\""));
    node.prime("shop.test", "/private").await?;
    node.get("shop.test", "/private").await?;
    assert_eq!(origin.count("/private"), 2);
    Ok(())
}
