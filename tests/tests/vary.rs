//! Secondary cache keys (RFC 9111 §4.1): one URL, several stored variants chosen by the request
//! headers the response's `Vary` names.

use outpost_tests::{Recorded, Reply, Req, shop};

fn greeting(req: &Recorded) -> Reply {
    let body = match req.header("accept-language") {
        Some(l) if l.starts_with("fr") => "bonjour",
        Some(l) if l.starts_with("en") => "hello",
        _ => "hi",
    };
    Reply::ok(body).cache_control("max-age=60").header("vary", "Accept-Language")
}

#[tokio::test]
async fn accept_language_variants_are_stored_separately() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route_fn("/greet", greeting);
    let en = || Req::get("shop.test", "/greet").header("accept-language", "en");
    let fr = || Req::get("shop.test", "/greet").header("accept-language", "fr");

    let first_en = node.send(en()).await?;
    assert_eq!(first_en.text(), "hello");
    assert_eq!(first_en.cache_status().fwd(), Some("uri-miss"), "{}", first_en.summary());
    assert_eq!(first_en.header("vary"), Some("Accept-Language"), "Vary reaches the client");

    let first_fr = node.send(fr()).await?;
    assert_eq!(first_fr.text(), "bonjour");
    assert_eq!(first_fr.cache_status().fwd(), Some("vary-miss"), "{}", first_fr.summary());

    let again_en = node.send(en()).await?;
    assert!(again_en.cache_status().hit(), "{}", again_en.summary());
    assert_eq!(again_en.text(), "hello");
    let again_fr = node.send(fr()).await?;
    assert!(again_fr.cache_status().hit(), "{}", again_fr.summary());
    assert_eq!(again_fr.text(), "bonjour");
    assert_eq!(origin.count("/greet"), 2);

    let none = node.get("shop.test", "/greet").await?;
    assert_eq!(none.text(), "hi", "a request without the header is its own variant");
    assert_eq!(origin.count("/greet"), 3);
    let fr_again = node.send(fr()).await?;
    assert_eq!(fr_again.text(), "bonjour", "storing a third variant keeps the others");
    assert!(fr_again.cache_status().hit(), "{}", fr_again.summary());
    Ok(())
}

#[tokio::test]
async fn vary_star_is_never_a_hit() -> anyhow::Result<()> {
    // RFC 9111 §4.1: "Vary: *" always fails to match.
    let (origin, node) = shop().await?;
    origin.route("/star", Reply::ok("star").cache_control("max-age=60").header("vary", "*"));
    for _ in 0..3 {
        let resp = node.get("shop.test", "/star").await?;
        assert_eq!(resp.text(), "star");
        assert!(!resp.cache_status().hit(), "{}", resp.summary());
    }
    assert_eq!(origin.count("/star"), 3);
    Ok(())
}

#[tokio::test]
async fn variants_follow_the_request_headers_named_by_vary_only() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route_fn("/greet", greeting);
    node.send(Req::get("shop.test", "/greet").header("accept-language", "fr").header("user-agent", "a")).await?;
    let other_agent =
        node.send(Req::get("shop.test", "/greet").header("accept-language", "fr").header("user-agent", "b")).await?;
    assert!(other_agent.cache_status().hit(), "{}", other_agent.summary());
    assert_eq!(other_agent.text(), "bonjour");
    assert_eq!(origin.count("/greet"), 1);
    Ok(())
}
