//! Interim responses (RFC 9110 §15.2) end to end: an origin's `103 Early Hints` (RFC 8297)
//! reaches the client before the final response, never stored and never mixed into it; and
//! with `early_hints = true`, the node makes a 103 itself from a stored page's `Link` fields
//! while the origin is still working on a stale or evicted page (what Cloudflare does).
//!
//! The origin is [`InterimOrigin`], raw TCP: hyper's server cannot send 1xx. Over HTTP/3 the
//! node's own transport writes the heads; over HTTP/1.1 and HTTP/2 the h1/h2 interim transport
//! (edge-node/src/listen/h1.rs, h2/) does.

use std::time::Duration;

use http::Method;
use outpost_tests::interim_origin::{final_response, interim};
use outpost_tests::tls::Leaf;
use outpost_tests::{
    EdgeNode, Hold, InterimOrigin, NodeConfig, Origin, Reply, Req, ServiceSpec, Step, TestCa, h3client, interim_client,
};
use serde_json::json;

struct Topology {
    ca: TestCa,
    origin: InterimOrigin,
    node: EdgeNode,
    _cert: Leaf,
}

/// An HTTP/3 node with one service `shop` for `shop.test` in front of an [`InterimOrigin`];
/// `extra` lines go into the service's table.
async fn topology(extra: &[&str]) -> anyhow::Result<Topology> {
    topology_with(InterimOrigin::start().await?, extra).await
}

/// The same in front of an HTTP/2 (h2c) origin, reached with `origin_protocol = "http2"`
/// through the node's h2 upstream client.
async fn h2_origin_topology() -> anyhow::Result<Topology> {
    topology_with(InterimOrigin::start_h2().await?, &["origin_protocol = \"http2\""]).await
}

async fn topology_with(origin: InterimOrigin, extra: &[&str]) -> anyhow::Result<Topology> {
    let ca = TestCa::new("early hints CA")?;
    let cert = ca.issue(&["shop.test"])?;
    let mut service = ServiceSpec::new("shop", &["shop.test"], origin.url());
    for line in extra {
        service = service.line(*line);
    }
    let config = NodeConfig::with_service(service).certificate(cert.clone()).http3(true);
    let node = EdgeNode::start(config).await?;
    Ok(Topology { ca, origin, node, _cert: cert })
}

impl Topology {
    async fn h3_conn(&self) -> anyhow::Result<h3client::H3Conn> {
        h3client::H3Client::new(&self.ca, "shop.test")?.connect(self.node.https_addr()?).await
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.node.admin(Method::GET, "/metrics", "").await?.text())
    }
}

fn values(h: &http::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name).iter().map(|v| v.to_str().unwrap_or("?").to_string()).collect()
}

/// The sample of a metric series, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

const PAGE: &str = "<html>hello</html>";

/// RFC 8297 §2 and RFC 9110 §15.2: the origin's 103 reaches the client first, with its Link
/// and without hop-by-hop fields (§7.6.1); the origin's unsolicited 100 does not (each hop
/// answers Expect itself, §10.1.1); the 200 carries none of the 103's fields, and the cache
/// stores the 200 only: a hit gets no 103 and no hint field.
#[tokio::test]
async fn h3_an_origins_103_comes_first_and_stays_out_of_the_200_and_the_cache() -> anyhow::Result<()> {
    let t = topology(&[]).await?;
    t.origin.route(
        "/page",
        vec![vec![
            interim(100, "Continue", &[]),
            interim(
                103,
                "Early Hints",
                &[
                    ("link", "</style.css>; rel=preload; as=style"),
                    ("x-hint", "only-in-103"),
                    ("connection", "x-hop"),
                    ("x-hop", "secret"),
                    ("keep-alive", "timeout=5"),
                ],
            ),
            final_response(200, "OK", &[("content-type", "text/html"), ("cache-control", "max-age=600")], PAGE),
        ]],
    );
    let conn = t.h3_conn().await?;
    let (hints, first) = conn.send_with_interim(&Req::get("shop.test", "/page")).await?;
    let statuses: Vec<u16> = hints.iter().map(|h| h.status().as_u16()).collect();
    assert_eq!(statuses, [103], "one 103 and no 100 before {}", first.summary());
    assert_eq!(values(hints[0].headers(), "link"), ["</style.css>; rel=preload; as=style"]);
    assert_eq!(values(hints[0].headers(), "x-hint"), ["only-in-103"]);
    for hop in ["connection", "x-hop", "keep-alive"] {
        assert!(!hints[0].headers().contains_key(hop), "{hop} is hop-by-hop: {:?}", hints[0].headers());
    }
    assert_eq!(first.status, 200, "{}", first.summary());
    assert_eq!(first.text(), PAGE);
    assert!(first.header("link").is_none() && first.header("x-hint").is_none(), "{}", first.summary());
    assert!(first.cache_status().stored(), "{}", first.summary());

    let (hints, hit) = conn.send_with_interim(&Req::get("shop.test", "/page")).await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    assert!(hints.is_empty(), "a hit is the stored 200 alone: {hints:?}");
    assert!(hit.header("link").is_none() && hit.header("x-hint").is_none(), "{}", hit.summary());
    assert_eq!(t.origin.count("/page"), 1);
    assert_eq!(sample(&t.metrics().await?, "outpost_early_hints_sent_total{source=\"origin\"}"), 1.0);
    conn.close().await;
    Ok(())
}

/// Forwarded 1xx are bounded: one over `max_interim_bytes` is dropped, and no more than four
/// reach the client however many the origin sends; the final response is untouched.
#[tokio::test]
async fn h3_forwarded_interim_responses_are_bounded_in_size_and_count() -> anyhow::Result<()> {
    let t = topology(&["max_interim_bytes = \"1KiB\""]).await?;
    let big = format!("</{}.css>; rel=preload", "x".repeat(2000));
    let mut answer = vec![interim(103, "Early Hints", &[("link", big.as_str())])];
    for i in 0..10 {
        let link = format!("</{i}.js>; rel=preload; as=script");
        answer.push(interim(103, "Early Hints", &[("link", link.as_str())]));
    }
    answer.push(final_response(200, "OK", &[("cache-control", "max-age=600")], "done"));
    t.origin.route("/many", vec![answer]);
    let conn = t.h3_conn().await?;
    let (hints, resp) = conn.send_with_interim(&Req::get("shop.test", "/many")).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "done");
    let links: Vec<Vec<String>> = hints.iter().map(|h| values(h.headers(), "link")).collect();
    let want: Vec<Vec<String>> = (0..4).map(|i| vec![format!("</{i}.js>; rel=preload; as=script")]).collect();
    assert_eq!(links, want, "the oversized one dropped, then four");
    let metrics = t.metrics().await?;
    assert_eq!(sample(&metrics, "outpost_interim_dropped_total{reason=\"too_large\"}"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "outpost_interim_dropped_total{reason=\"budget\"}"), 6.0, "{metrics}");
    conn.close().await;
    Ok(())
}

fn page(links: &[(&str, &str)]) -> Step {
    let mut fields =
        vec![("content-type", "text/html; charset=utf-8"), ("cache-control", "max-age=600"), ("etag", "\"v1\"")];
    fields.extend_from_slice(links);
    final_response(200, "OK", &fields, PAGE)
}

/// `early_hints = true`: the first fetch stores an HTML page with Link preload/preconnect;
/// after a soft purge makes it stale, the next request gets a 103 with those links while the
/// origin is still held (so before the origin answered), then the origin's own 103 without
/// the link already hinted, then the 200.
#[tokio::test]
async fn h3_early_hints_from_cache_come_before_the_origin_answers() -> anyhow::Result<()> {
    let t = topology(&["early_hints = true"]).await?;
    let links = [
        ("link", "</app.css>; rel=preload; as=style, </next>; rel=next"),
        ("link", "<https://fonts.example>; rel=preconnect"),
    ];
    let hold = Hold::default();
    t.origin.route(
        "/",
        vec![
            vec![page(&links)],
            vec![
                Step::Wait(hold.clone()),
                interim(
                    103,
                    "Early Hints",
                    &[("link", "</app.css>; rel=preload; as=style"), ("link", "</late.js>; rel=preload; as=script")],
                ),
                page(&links),
            ],
        ],
    );
    let conn = t.h3_conn().await?;
    let (hints, first) = conn.send_with_interim(&Req::get("shop.test", "/")).await?;
    assert!(hints.is_empty(), "nothing stored yet, and the origin sent no 103: {hints:?}");
    assert!(first.cache_status().stored(), "{}", first.summary());

    t.node.purge(json!({"kind": "url", "url": "shop.test/", "soft": true})).await?;
    let asked = std::time::Instant::now();
    let mut exchange = conn.open(&Req::get("shop.test", "/")).await?;
    let from_cache = exchange.next_head().await?;
    // A figure for the report, not an assertion: how soon the hint came, origin still held.
    eprintln!("103 from cache {:?} after the request, before the origin answered", asked.elapsed());
    assert_eq!(from_cache.status(), 103);
    assert_eq!(
        values(from_cache.headers(), "link"),
        ["</app.css>; rel=preload; as=style", "<https://fonts.example>; rel=preconnect"],
        "preload and preconnect only, sent while the origin was held"
    );
    hold.release();
    let from_origin = exchange.next_head().await?;
    assert_eq!(from_origin.status(), 103);
    assert_eq!(values(from_origin.headers(), "link"), ["</late.js>; rel=preload; as=script"], "no link twice");
    let head = exchange.next_head().await?;
    assert_eq!(head.status(), 200);
    let resp = exchange.finish(head).await?;
    assert_eq!(resp.text(), PAGE);
    assert_eq!(resp.cache_status().fwd(), Some("stale"), "{}", resp.summary());
    assert_eq!(
        t.origin.requests().last().and_then(|r| r.header("if-none-match").map(String::from)),
        Some("\"v1\"".into())
    );
    let metrics = t.metrics().await?;
    assert_eq!(sample(&metrics, "outpost_early_hints_sent_total{source=\"cache\"}"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "outpost_early_hints_sent_total{source=\"origin\"}"), 1.0, "{metrics}");
    conn.close().await;
    Ok(())
}

/// Requests collapsed onto one revalidation: each waiter gets the 103 made from cache (its
/// own request's), but the origin's 103 goes to the request that leads the fetch only.
#[tokio::test]
async fn h3_collapsed_waiters_get_cache_hints_and_only_the_leader_gets_the_origins() -> anyhow::Result<()> {
    let t = topology(&["early_hints = true"]).await?;
    let links = [("link", "</app.css>; rel=preload; as=style")];
    let hold = Hold::default();
    let origin_hint = interim(103, "Early Hints", &[("link", "</late.js>; rel=preload; as=script")]);
    t.origin.route("/", vec![vec![page(&links)], vec![Step::Wait(hold.clone()), origin_hint, page(&links)]]);
    let conn = t.h3_conn().await?;
    conn.send_with_interim(&Req::get("shop.test", "/")).await?;
    t.node.purge(json!({"kind": "url", "url": "shop.test/", "soft": true})).await?;

    let mut leader = conn.open(&Req::get("shop.test", "/")).await?;
    assert_eq!(leader.next_head().await?.status(), 103);
    // The leader's revalidation has reached the origin (and is held there).
    let reached = outpost_tests::eventually(Duration::from_secs(10), || t.origin.count("/") == 2).await;
    assert!(reached, "the revalidation reached the origin");
    let mut follower = conn.open(&Req::get("shop.test", "/")).await?;
    let hint = follower.next_head().await?;
    assert_eq!(hint.status(), 103);
    assert_eq!(values(hint.headers(), "link"), ["</app.css>; rel=preload; as=style"]);
    hold.release();

    let from_origin = leader.next_head().await?;
    assert_eq!(values(from_origin.headers(), "link"), ["</late.js>; rel=preload; as=script"]);
    let head = leader.next_head().await?;
    assert_eq!(head.status(), 200);
    assert_eq!(leader.finish(head).await?.text(), PAGE);
    let head = follower.next_head().await?;
    assert_eq!(head.status(), 200, "the follower gets no origin 103");
    let resp = follower.finish(head).await?;
    assert!(resp.cache_status().collapsed(), "{}", resp.summary());
    assert_eq!(t.origin.count("/"), 2, "one revalidation for both");
    conn.close().await;
    Ok(())
}

/// Without `early_hints` (the default) a stale page's links stay in the cache: the client gets
/// only what the origin sends.
#[tokio::test]
async fn h3_no_early_hints_from_cache_unless_the_service_asks() -> anyhow::Result<()> {
    let t = topology(&[]).await?;
    t.origin.route("/", vec![vec![page(&[("link", "</app.css>; rel=preload; as=style")])]]);
    let conn = t.h3_conn().await?;
    conn.send_with_interim(&Req::get("shop.test", "/")).await?;
    t.node.purge(json!({"kind": "url", "url": "shop.test/", "soft": true})).await?;
    let (hints, resp) = conn.send_with_interim(&Req::get("shop.test", "/")).await?;
    assert_eq!(resp.cache_status().fwd(), Some("stale"), "{}", resp.summary());
    assert!(hints.is_empty(), "{hints:?}");
    conn.close().await;
    Ok(())
}

/// RFC 9110 §10.1.1: a client that sends `Expect: 100-continue` holds its content back until
/// this hop's `100 Continue`; the node sends it when the request's body is first read (here:
/// forwarded to the origin), and the upload then completes.
#[tokio::test]
async fn h3_expect_100_continue_is_answered_when_the_body_is_wanted() -> anyhow::Result<()> {
    let ca = TestCa::new("expect CA")?;
    let cert = ca.issue(&["shop.test"])?;
    let origin = Origin::start().await?;
    origin.route("/upload", Reply::ok("got it"));
    let config = NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], origin.url()))
        .certificate(cert.clone())
        .http3(true);
    let node = EdgeNode::start(config).await?;
    let conn = h3client::H3Client::new(&ca, "shop.test")?.connect(node.https_addr()?).await?;
    let req = Req::post("shop.test", "/upload").header("expect", "100-continue").header("content-length", "5");
    let mut exchange = conn.open_head_only(&req).await?;
    let head = exchange.next_head().await?;
    assert_eq!(head.status(), 100, "the client sent no content yet; the node asks for it");
    exchange.send_body(bytes::Bytes::from_static(b"hello")).await?;
    let head = exchange.next_head().await?;
    assert_eq!(head.status(), 200);
    let resp = exchange.finish(head).await?;
    assert_eq!(resp.text(), "got it");
    assert_eq!(&origin.last("/upload")?.body[..], b"hello");
    conn.close().await;
    Ok(())
}

/// The origin's 103 and its 200, as the HTTP/1.1 and HTTP/2 scenarios script them.
fn hinted_page() -> Vec<Step> {
    vec![
        interim(103, "Early Hints", &[("link", "</style.css>; rel=preload; as=style"), ("x-hint", "only-in-103")]),
        final_response(200, "OK", &[("content-type", "text/html"), ("cache-control", "max-age=600")], PAGE),
    ]
}

/// The client saw exactly the origin's 103 and then a 200 without its fields.
fn assert_origin_hint(hints: &[http::Response<()>], resp: &outpost_tests::Resp) {
    let statuses: Vec<u16> = hints.iter().map(|h| h.status().as_u16()).collect();
    assert_eq!(statuses, [103], "{}", resp.summary());
    assert_eq!(values(hints[0].headers(), "link"), ["</style.css>; rel=preload; as=style"]);
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert!(resp.header("link").is_none() && resp.header("x-hint").is_none(), "{}", resp.summary());
}

#[tokio::test]
async fn h1_an_origins_103_reaches_an_http1_client_first() -> anyhow::Result<()> {
    let t = topology(&[]).await?;
    t.origin.route("/page", vec![hinted_page()]);
    let (hints, resp) =
        interim_client::h1_send_with_interim(t.node.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert_origin_hint(&hints, &resp);
    let (hints, hit) =
        interim_client::h1_send_with_interim(t.node.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert!(hit.cache_status().hit() && hints.is_empty(), "{hints:?} {}", hit.summary());
    Ok(())
}

#[tokio::test]
async fn h2_an_origins_103_reaches_an_http2_client_first() -> anyhow::Result<()> {
    let t = topology(&[]).await?;
    t.origin.route("/page", vec![hinted_page()]);
    let (hints, resp) =
        interim_client::h2_send_with_interim(t.node.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert_origin_hint(&hints, &resp);
    let (hints, hit) =
        interim_client::h2_send_with_interim(t.node.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert!(hit.cache_status().hit() && hints.is_empty(), "{hints:?} {}", hit.summary());
    Ok(())
}

/// The issue's scenario with a real HTTP/2 client: the 103 made from cache arrives while the
/// origin is held, so before the 200.
#[tokio::test]
async fn h2_early_hints_from_cache_come_before_the_200() -> anyhow::Result<()> {
    let t = topology(&["early_hints = true"]).await?;
    let hold = Hold::default();
    let links = [("link", "</app.css>; rel=preload; as=style")];
    t.origin.route("/", vec![vec![page(&links)], vec![Step::Wait(hold.clone()), page(&links)]]);
    let (_, first) = interim_client::h2_send_with_interim(t.node.http_addr(), &Req::get("shop.test", "/")).await?;
    assert!(first.cache_status().stored(), "{}", first.summary());
    t.node.purge(json!({"kind": "url", "url": "shop.test/", "soft": true})).await?;
    let mut exchange = interim_client::H2Exchange::open(t.node.http_addr(), &Req::get("shop.test", "/")).await?;
    let hint = exchange.next_interim().await?.ok_or_else(|| anyhow::anyhow!("no 103 before the final head"))?;
    assert_eq!(hint.status(), 103);
    assert_eq!(values(hint.headers(), "link"), ["</app.css>; rel=preload; as=style"]);
    hold.release();
    assert!(exchange.next_interim().await?.is_none(), "the origin sent no 103 of its own");
    let resp = exchange.finish().await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), PAGE);
    Ok(())
}

/// RFC 9110 §15.2 over an HTTP/2 upstream: the origin's 103 travels as a HEADERS frame before
/// the final one (RFC 9113 §8.1), and the node's h2 client passes it on like an HTTP/1.1
/// origin's (hyper's h2 client dropped it). The 100 stays on its hop (§10.1.1).
#[tokio::test]
async fn h1_an_http2_origins_103_reaches_an_http1_client_first() -> anyhow::Result<()> {
    let t = h2_origin_topology().await?;
    let mut answer = vec![interim(100, "Continue", &[])];
    answer.extend(hinted_page());
    t.origin.route("/page", vec![answer]);
    let (hints, resp) =
        interim_client::h1_send_with_interim(t.node.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert_origin_hint(&hints, &resp);
    assert_eq!(resp.text(), PAGE);
    let (hints, hit) =
        interim_client::h1_send_with_interim(t.node.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert!(hit.cache_status().hit() && hints.is_empty(), "{hints:?} {}", hit.summary());
    assert_eq!(t.origin.count("/page"), 1);
    Ok(())
}

#[tokio::test]
async fn h2_an_http2_origins_103_reaches_an_http2_client_first() -> anyhow::Result<()> {
    let t = h2_origin_topology().await?;
    t.origin.route("/page", vec![hinted_page()]);
    let (hints, resp) =
        interim_client::h2_send_with_interim(t.node.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert_origin_hint(&hints, &resp);
    assert_eq!(resp.text(), PAGE);
    assert_eq!(sample(&t.metrics().await?, "outpost_early_hints_sent_total{source=\"origin\"}"), 1.0);
    Ok(())
}

/// Over HTTP/3, with the forwarding rules of an HTTP/1.1 origin's 1xx: hop-by-hop fields go
/// (RFC 9110 §7.6.1; an HTTP/2 origin may not send Connection, but nothing else may pass).
#[tokio::test]
async fn h3_an_http2_origins_103_comes_first_and_stays_out_of_the_cache() -> anyhow::Result<()> {
    let t = h2_origin_topology().await?;
    t.origin.route("/page", vec![hinted_page()]);
    let conn = t.h3_conn().await?;
    let (hints, first) = conn.send_with_interim(&Req::get("shop.test", "/page")).await?;
    assert_origin_hint(&hints, &first);
    assert_eq!(values(hints[0].headers(), "x-hint"), ["only-in-103"]);
    assert!(first.cache_status().stored(), "{}", first.summary());
    let (hints, hit) = conn.send_with_interim(&Req::get("shop.test", "/page")).await?;
    assert!(hit.cache_status().hit() && hints.is_empty(), "{hints:?} {}", hit.summary());
    conn.close().await;
    Ok(())
}

/// The 103 crosses two HTTP/2 upstream hops: origin (h2c) → shield → edge (the edge reaches its
/// shield over HTTP/2) → an HTTP/2 client, still before the 200, and neither tier stores it.
#[tokio::test]
async fn h2_a_103_crosses_the_edge_shield_origin_chain() -> anyhow::Result<()> {
    let origin = InterimOrigin::start_h2().await?;
    origin.route("/page", vec![hinted_page()]);
    let at_shield = ServiceSpec::new("shop", &["shop.test"], origin.url())
        .line("origin_protocol = \"http2\"")
        .without_health_checks();
    let shield = EdgeNode::start_shield(NodeConfig::with_service(at_shield).name("shield-1")).await?;
    let at_edge = ServiceSpec::new("shop", &["shop.test"], origin.url())
        .shields(vec![(shield.url(), "fra".to_string())])
        .without_health_checks();
    let edge = EdgeNode::start(NodeConfig::with_service(at_edge).name("edge-1")).await?;
    let (hints, resp) = interim_client::h2_send_with_interim(edge.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert_origin_hint(&hints, &resp);
    assert_eq!(resp.text(), PAGE);
    let via: Vec<String> =
        origin.requests().iter().flat_map(|r| r.headers.clone()).filter(|(n, _)| n == "via").map(|(_, v)| v).collect();
    assert!(via.iter().any(|v| v.contains("shield-1")), "fetched through the shield: {via:?}");
    let (hints, hit) = interim_client::h2_send_with_interim(edge.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert!(hit.cache_status().hit() && hints.is_empty(), "{hints:?} {}", hit.summary());
    assert_eq!(origin.count("/page"), 1);
    Ok(())
}

/// RFC 9113 §6.5.2, §9.1: streams share one connection to an HTTP/2 origin until its
/// SETTINGS_MAX_CONCURRENT_STREAMS is reached; then the node opens another (up to
/// `upstream.h2_max_connections`) rather than making the request wait for a slot.
#[tokio::test]
async fn a_second_connection_opens_when_the_origins_stream_limit_is_reached() -> anyhow::Result<()> {
    let t = topology_with(InterimOrigin::start_h2_with_max_streams(1).await?, &["origin_protocol = \"http2\""]).await?;
    let hold = Hold::default();
    for path in ["/a", "/b"] {
        t.origin.route(path, vec![vec![Step::Wait(hold.clone()), final_response(200, "OK", &[], path)]]);
    }
    // The second request goes once the first is at the origin: by then the origin's SETTINGS
    // (sent before it read a stream) have reached the node.
    let second = async {
        t.origin.wait_for_requests(1).await;
        let both = async {
            let seen = t.origin.wait_for_requests(2).await;
            hold.release();
            seen
        };
        tokio::join!(t.node.get("shop.test", "/b"), both)
    };
    let (a, (b, seen)) = tokio::join!(t.node.get("shop.test", "/a"), second);
    assert_eq!(seen.len(), 2, "both streams reached the origin while it held them");
    assert_ne!(
        seen[0].conn,
        seen[1].conn,
        "one stream per connection: {:?}",
        seen.iter().map(|r| r.conn).collect::<Vec<_>>()
    );
    assert_eq!((a?.text(), b?.text()), ("/a".to_string(), "/b".to_string()));
    Ok(())
}

/// An `https` origin under the default `origin_protocol = "auto"` that picks h2 by ALPN is
/// reached through the node's h2 client too, so its 103 reaches the client (RFC 9110 §15.2).
#[tokio::test]
async fn h2_an_alpn_h2_origins_103_reaches_an_http2_client_first() -> anyhow::Result<()> {
    let origin_ca = TestCa::new("origin CA")?;
    let origin = InterimOrigin::start_h2_tls(&origin_ca.issue(&["localhost"])?).await?;
    origin.route("/page", vec![hinted_page()]);
    let service = ServiceSpec::new("shop", &["shop.test"], origin.url()).origin_ca(origin_ca.cert_pem());
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    let (hints, resp) = interim_client::h2_send_with_interim(node.http_addr(), &Req::get("shop.test", "/page")).await?;
    assert_origin_hint(&hints, &resp);
    assert_eq!(resp.text(), PAGE);
    Ok(())
}
