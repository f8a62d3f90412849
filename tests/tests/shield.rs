//! The shield tier and resilient upstreams (contracts.md "Issue 3"), end to end with real
//! processes on loopback: origin offload across two tiers, one home shield per object, a shield
//! killed mid-load, every shield down, the origin down, a circuit breaker opening and closing, and
//! health checks taking a shield out and bringing it back.
//!
//! Which shield fetched an object is read at the origin: each shield appends `Via: 1.1 <name>`
//! to the requests it sends upstream, after the edge's own `Via` entry.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use outpost_tests::{EdgeNode, NodeConfig, Origin, Recorded, Reply, Req, Resp, ServiceSpec, client, refused_addr};
use serde_json::Value;
use tokio::task::JoinSet;

const HOST: &str = "shop.test";
/// The path edges probe their shields at; each shield forwards it to the origin, which says 200.
const PROBE: &str = "/healthz-probe";

/// An origin that answers the health probe (uncached, so every probe reaches it).
async fn origin() -> anyhow::Result<Origin> {
    let origin = Origin::start().await?;
    origin.route(PROBE, Reply::ok("ok").cache_control("no-store"));
    Ok(origin)
}

/// `n` objects `/obj/{i}` with body `object {i}`, fresh for a minute; a short delay at the origin
/// widens the window in which concurrent misses must collapse.
fn objects(origin: &Origin, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let path = format!("/obj/{i}");
            let reply = Reply::ok(format!("object {i}")).cache_control("max-age=60").delay(Duration::from_millis(30));
            origin.route(&path, reply);
            path
        })
        .collect()
}

/// A shield named `name` whose service "shop" sends misses to `origin`.
async fn start_shield(name: &str, origin: &Origin) -> anyhow::Result<EdgeNode> {
    let service = ServiceSpec::new("shop", &[HOST], origin.url());
    EdgeNode::start_shield(NodeConfig::with_service(service).name(name)).await
}

/// An edge's service "shop": `shields` in front of `origin`, probed at [`PROBE`] every second,
/// down after 3 failed probes, up after 2 good ones. (A probe crosses the shield to the origin,
/// which runs in the test process: with every scenario running at once it can take 200 ms.)
fn edge_service(origin: &Origin, shields: &[&EdgeNode]) -> ServiceSpec {
    let pops = ["fra", "ams", "lhr"];
    ServiceSpec::new("shop", &[HOST], origin.url())
        .shields(shields.iter().zip(pops).map(|(s, pop)| (s.url(), pop.to_string())).collect())
        .health(PROBE, "1s", "1s", 3, 2)
}

/// Two shields in front of `origin`, and three edges each listing both.
async fn two_shields_three_edges(origin: &Origin) -> anyhow::Result<([EdgeNode; 2], Vec<EdgeNode>)> {
    let (s1, s2) = tokio::try_join!(start_shield("shield-1", origin), start_shield("shield-2", origin))?;
    let mut edges = Vec::new();
    for name in ["edge-1", "edge-2", "edge-3"] {
        edges.push(start_edge(name, edge_service(origin, &[&s1, &s2])).await?);
    }
    Ok(([s1, s2], edges))
}

async fn start_edge(name: &str, service: ServiceSpec) -> anyhow::Result<EdgeNode> {
    EdgeNode::start(NodeConfig::with_service(service).name(name)).await
}

/// The tier that fetched a request from the origin, by its `Via`: "shield-1", "shield-2", or
/// "direct" when no shield was on the way.
fn fetched_by(r: &Recorded) -> &'static str {
    let via = r.header_joined("via").unwrap_or_default();
    if via.contains("shield-1") {
        "shield-1"
    } else if via.contains("shield-2") {
        "shield-2"
    } else {
        "direct"
    }
}

/// Origin requests whose path starts with `prefix`.
fn origin_requests(origin: &Origin, prefix: &str) -> Vec<Recorded> {
    origin.requests().into_iter().filter(|r| r.path.starts_with(prefix)).collect()
}

/// A deterministic shuffle (xorshift), so each client walks the objects in its own order.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// One response of [`fan_out`]: which edge, which path, what came back.
struct Fetched {
    edge: String,
    path: String,
    resp: Resp,
}

/// `clients` concurrent clients, each fetching every path from every edge once, in its own
/// shuffled order.
async fn fan_out(edges: &[EdgeNode], paths: &[String], clients: u64) -> anyhow::Result<Vec<Fetched>> {
    let targets: Vec<(String, SocketAddr)> = edges.iter().map(|e| (e.name().to_string(), e.http_addr())).collect();
    let mut tasks = JoinSet::new();
    for seed in 0..clients {
        let mut plan: Vec<(String, SocketAddr, String)> = targets
            .iter()
            .flat_map(|(name, addr)| paths.iter().map(move |p| (name.clone(), *addr, p.clone())))
            .collect();
        shuffle(&mut plan, seed + 1);
        tasks.spawn(async move {
            let mut got = Vec::with_capacity(plan.len());
            for (edge, addr, path) in plan {
                let resp = client::send(addr, &Req::get(HOST, &path)).await?;
                got.push(Fetched { edge, path, resp });
            }
            anyhow::Ok(got)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    Ok(all)
}

/// Polls `check` every 25 ms until it holds or `limit` passes; returns whether it held.
async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    loop {
        if check().await? {
            return Ok(true);
        }
        if start.elapsed() > limit {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The entry for `url` in a node's `GET /upstreams`.
fn upstream_entry<'a>(upstreams: &'a Value, url: &str) -> Option<&'a Value> {
    upstreams["services"]
        .as_array()?
        .iter()
        .filter_map(|s| s["upstreams"].as_array())
        .flatten()
        .find(|u| u["url"].as_str().map(|s| s.trim_end_matches('/')) == Some(url))
}

/// One field (`health`, `breaker`) of `url`'s entry in `node`'s `GET /upstreams`.
async fn upstream_state(node: &EdgeNode, url: &str, field: &str) -> anyhow::Result<String> {
    let upstreams = node.upstreams().await?;
    let entry = upstream_entry(&upstreams, url)
        .ok_or_else(|| anyhow::anyhow!("no upstream {url} in GET /upstreams: {upstreams}"))?;
    Ok(entry[field].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_object_is_fetched_from_the_origin_once_across_three_edges_and_two_shields() -> anyhow::Result<()> {
    // 30 objects; two shields; three edges, each listing both shields; six clients fetch every
    // object from every edge, each in its own order.
    let origin = origin().await?;
    let paths = objects(&origin, 30);
    let (_shields, edges) = two_shields_three_edges(&origin).await?;
    let fetched = fan_out(&edges, &paths, 6).await?;
    assert_eq!(fetched.len(), 6 * 3 * paths.len());

    for f in &fetched {
        let i = f.path.trim_start_matches("/obj/");
        assert_eq!(f.resp.status, 200, "{} {}: {}", f.edge, f.path, f.resp.summary());
        assert_eq!(f.resp.text(), format!("object {i}"), "{} {}: wrong body", f.edge, f.path);
        // RFC 9211 §2: the cache nearest the origin first, then each cache toward the client.
        let entries = f.resp.cache_statuses();
        let nodes: Vec<&str> = entries.iter().map(|e| e.node.as_str()).collect();
        assert_eq!(nodes.len(), 2, "{} {}: Cache-Status {:?}", f.edge, f.path, f.resp.header("cache-status"));
        assert!(nodes[0].starts_with("shield-"), "{} {}: Cache-Status {:?}", f.edge, f.path, nodes);
        assert_eq!(nodes[1], f.edge, "{} {}: Cache-Status {:?}", f.edge, f.path, nodes);
    }
    for path in &paths {
        let seen: Vec<&'static str> = origin.requests_for(path).iter().map(fetched_by).collect();
        assert_eq!(seen.len(), 1, "the origin saw {path} {} times, through {seen:?}", seen.len());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_object_has_one_home_shield() -> anyhow::Result<()> {
    // Same topology and traffic; then, per object: the origin's one request for it came through
    // one shield, every response for it (from any edge) names that same shield, and the two
    // shields share the objects.
    let origin = origin().await?;
    let paths = objects(&origin, 30);
    let (_shields, edges) = two_shields_three_edges(&origin).await?;
    let fetched = fan_out(&edges, &paths, 3).await?;

    let mut share = [0usize; 2];
    for path in &paths {
        let requests = origin.requests_for(path);
        assert_eq!(requests.len(), 1, "the origin saw {path} {} times", requests.len());
        let home = fetched_by(&requests[0]);
        match home {
            "shield-1" => share[0] += 1,
            "shield-2" => share[1] += 1,
            other => panic!("{path} was fetched {other}, via {:?}", requests[0].header_joined("via")),
        }
        for f in fetched.iter().filter(|f| &f.path == path) {
            let entries = f.resp.cache_statuses();
            let first = entries.first().map(|e| e.node.as_str());
            assert_eq!(first, Some(home), "{} {path}: Cache-Status {:?}", f.edge, f.resp.header("cache-status"));
        }
    }
    assert!(share[0] > 0 && share[1] > 0, "one shield got every object: shield-1 {}, shield-2 {}", share[0], share[1]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_from_three_edges_collapse_at_the_shield() -> anyhow::Result<()> {
    // One slow object; ten clients at each of three edges ask for it at once. Each edge collapses
    // its own clients, and the home shield collapses the three edges: one origin request.
    let origin = origin().await?;
    origin.route("/hot", Reply::ok("hot").cache_control("max-age=60").delay(Duration::from_millis(400)));
    let (_shields, edges) = two_shields_three_edges(&origin).await?;
    let mut clients = JoinSet::new();
    for edge in &edges {
        let addr = edge.http_addr();
        for _ in 0..10 {
            clients.spawn(async move { client::send(addr, &Req::get(HOST, "/hot")).await });
        }
    }
    let mut shields_named = std::collections::BTreeSet::new();
    while let Some(joined) = clients.join_next().await {
        let resp = joined??;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert_eq!(resp.text(), "hot");
        if let Some(first) = resp.cache_statuses().first() {
            shields_named.insert(first.node.clone());
        }
    }
    assert_eq!(origin.count("/hot"), 1, "the origin saw /hot more than once");
    assert_eq!(shields_named.len(), 1, "responses name different shields: {shields_named:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edges_reach_a_shield_over_http2_on_few_connections() -> anyhow::Result<()> {
    // Thirty concurrent misses through one edge: the shield's access log shows them arriving over
    // HTTP/2, multiplexed on a handful of pooled connections rather than one connection each.
    let origin = origin().await?;
    origin.route_prefix("/m/", |r| {
        Reply::ok(format!("m {}", r.path)).cache_control("max-age=60").delay(Duration::from_millis(100))
    });
    let shield = start_shield("shield-1", &origin).await?;
    let edge = start_edge("edge-1", edge_service(&origin, &[&shield])).await?;
    let addr = edge.http_addr();
    let mut clients = JoinSet::new();
    for i in 0..30 {
        clients.spawn(async move { client::send(addr, &Req::get(HOST, &format!("/m/{i}"))).await });
    }
    while let Some(joined) = clients.join_next().await {
        let resp = joined??;
        assert_eq!(resp.status, 200, "{}", resp.summary());
    }
    let lines: Vec<Value> = eventually_lines(&shield, "/m/", 30).await;
    let protocols: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| l["protocol"].as_str()).collect();
    let connections: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| l["client"].as_str()).collect();
    assert_eq!(protocols.into_iter().collect::<Vec<_>>(), vec!["h2"], "edge -> shield protocols");
    assert!(connections.len() <= 4, "30 requests came on {} connections: {connections:?}", connections.len());
    Ok(())
}

/// The shield's access-log lines for paths under `prefix`, once there are `n` of them (bounded).
async fn eventually_lines(node: &EdgeNode, prefix: &str, n: usize) -> Vec<Value> {
    let matching = || -> Vec<Value> {
        node.access_log().into_iter().filter(|l| l["path"].as_str().is_some_and(|p| p.starts_with(prefix))).collect()
    };
    let start = Instant::now();
    while matching().len() < n && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    matching()
}

/// One client request of a steady load: when it started and ended, and what went wrong if it
/// failed.
struct Attempt {
    path: String,
    started: Instant,
    ended: Instant,
    failure: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_shield_moves_its_keys_to_the_other() -> anyhow::Result<()> {
    // Four clients loop for 3 s through one edge, each request for a path never asked before
    // (a miss at both tiers). At 1 s shield-1 is killed (SIGKILL). Only requests in flight at that
    // moment may fail; afterwards the origin hears from shield-2 or the edge directly.
    const CLIENTS: usize = 4;
    let origin = origin().await?;
    origin.route_prefix("/k/", |r| {
        Reply::ok(format!("fresh {}", r.path)).cache_control("max-age=60").delay(Duration::from_millis(5))
    });
    let (mut s1, s2) = tokio::try_join!(start_shield("shield-1", &origin), start_shield("shield-2", &origin))?;
    let edge = start_edge("edge-1", edge_service(&origin, &[&s1, &s2])).await?;
    let addr = edge.http_addr();

    let load_ends = Instant::now() + Duration::from_secs(3);
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        clients.spawn(async move {
            let mut attempts = Vec::new();
            let mut n = 0;
            while Instant::now() < load_ends {
                n += 1;
                let path = format!("/k/{c}/{n}");
                let started = Instant::now();
                let result = client::send(addr, &Req::get(HOST, &path)).await;
                let failure = match result {
                    Ok(r) if r.status == 200 && r.text() == format!("fresh {path}") => None,
                    Ok(r) => Some(r.summary()),
                    Err(e) => Some(format!("{e:#}")),
                };
                attempts.push(Attempt { path, started, ended: Instant::now(), failure });
            }
            attempts
        });
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let kill_started = Instant::now();
    s1.kill()?;
    let killed = Instant::now();

    let mut attempts = Vec::new();
    while let Some(joined) = clients.join_next().await {
        attempts.extend(joined?);
    }
    let failures: Vec<&Attempt> = attempts.iter().filter(|a| a.failure.is_some()).collect();
    let describe = |a: &&Attempt| {
        format!(
            "{} started {:?} after the kill, ended {:?} after: {}",
            a.path,
            a.started.saturating_duration_since(killed),
            a.ended.saturating_duration_since(killed),
            a.failure.as_deref().unwrap_or("")
        )
    };
    let failed: Vec<String> = failures.iter().map(describe).collect();
    assert!(attempts.len() > 40, "only {} requests in 3 s; failures: {failed:#?}", attempts.len());
    assert!(failures.len() <= CLIENTS, "{} of {} requests failed: {failed:#?}", failures.len(), attempts.len());
    for a in &failures {
        assert!(a.started <= killed && a.ended >= kill_started, "failed, not in flight at the kill: {}", describe(a));
    }

    let fetches = origin_requests(&origin, "/k/");
    let before: Vec<&str> = fetches.iter().filter(|r| r.at < kill_started).map(fetched_by).collect();
    let after: Vec<&str> = fetches.iter().filter(|r| r.at > killed).map(fetched_by).collect();
    let count = |v: &[&str], who: &str| v.iter().filter(|w| **w == who).count();
    assert!(
        count(&before, "shield-1") > 0 && count(&before, "shield-2") > 0,
        "before the kill the shields did not share the load: {} via shield-1, {} via shield-2, {} direct",
        count(&before, "shield-1"),
        count(&before, "shield-2"),
        count(&before, "direct")
    );
    assert_eq!(count(&after, "shield-1"), 0, "fetches through a dead shield");
    let breaker = upstream_state(&edge, &s1.url(), "breaker").await?;
    let health = upstream_state(&edge, &s1.url(), "health").await?;
    assert!(
        breaker != "closed" || health == "unhealthy",
        "2 s after the kill the edge still uses shield-1: breaker {breaker}, health {health}"
    );
    assert!(count(&after, "shield-2") > 0, "after the kill nothing came through shield-2: {after:?}");
    eprintln!(
        "{} requests, {} failed; origin fetches before the kill: shield-1 {}, shield-2 {}; after: shield-2 {}, direct {}",
        attempts.len(),
        failures.len(),
        count(&before, "shield-1"),
        count(&before, "shield-2"),
        count(&after, "shield-2"),
        count(&after, "direct")
    );
    drop(s2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_shields_down_goes_to_the_origin() -> anyhow::Result<()> {
    // Both shields are addresses that refuse connections, and the edges' probes have found them
    // down. edge-1 (origin_when_shields_down, the default) goes to the origin; edge-2, with it
    // off, has nowhere else to go: panic mode sends to the shields anyway (Envoy's panic
    // threshold, issue 15), whose refusal is a 502, and it never goes to the origin.
    let origin = origin().await?;
    origin.route("/d", Reply::ok("from the origin").cache_control("max-age=60"));
    origin.route("/strict", Reply::ok("never fetched").cache_control("max-age=60"));
    let (dead1, dead2) = (refused_addr().await?, refused_addr().await?);
    let (dead1, dead2) = (format!("http://{dead1}"), format!("http://{dead2}"));
    let service = ServiceSpec::new("shop", &[HOST], origin.url())
        .shields(vec![(dead1.clone(), "fra".into()), (dead2.clone(), "ams".into())])
        .health(PROBE, "100ms", "100ms", 1, 1);
    let edge = start_edge("edge-1", service.clone()).await?;
    let strict = start_edge("edge-2", service.origin_when_shields_down(false)).await?;

    for node in [&edge, &strict] {
        for dead in [&dead1, &dead2] {
            let down = wait_until(Duration::from_secs(3), || async {
                Ok(upstream_state(node, dead, "health").await? == "unhealthy")
            })
            .await?;
            assert!(down, "{}: {dead} not unhealthy after 3 s: {}", node.name(), node.upstreams().await?);
        }
    }

    let resp = edge.get(HOST, "/d").await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "from the origin");
    let nodes: Vec<String> = resp.cache_statuses().into_iter().map(|e| e.node).collect();
    assert_eq!(nodes, vec!["edge-1".to_string()], "Cache-Status {:?}", resp.header("cache-status"));
    assert_eq!(origin.count("/d"), 1);
    assert_eq!(fetched_by(&origin.last("/d")?), "direct");

    let resp = strict.get(HOST, "/strict").await?;
    assert_eq!(resp.status, 502, "shields down and origin_when_shields_down = false: {}", resp.summary());
    assert_eq!(origin.count("/strict"), 0, "edge-2 went to the origin");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_down_serves_stale_and_fails_fast() -> anyhow::Result<()> {
    // edge -> shield -> origin; objects say max-age=1, stale-if-error=60. Prime them, stop the
    // origin, let them go stale: they are served stale, by the edge that has them and, to an edge
    // that never saw them, by the shield; a path never cached gets a 502 or 503 well inside the
    // 2 s first-byte timeout, even ten at once.
    let mut origin = origin().await?;
    let paths: Vec<String> = (0..3).map(|i| format!("/s/{i}")).collect();
    for (i, path) in paths.iter().enumerate() {
        origin.route(path, Reply::ok(format!("stale {i}")).cache_control("max-age=1, stale-if-error=60"));
    }
    origin.route_prefix("/never/", |_| Reply::ok("should not be reached").cache_control("max-age=60"));
    let shield = start_shield("shield-1", &origin).await?;
    let edge = EdgeNode::start(
        NodeConfig::with_service(edge_service(&origin, &[&shield])).name("edge-1").timeouts("1s", "2s"),
    )
    .await?;
    // edge-2's probes cross the shield to the origin too: once the origin stops, three failed
    // probes (2 to 3 s) would take the shield out and edge-2 would go to the dead origin directly.
    // Its question below comes about 1.3 s after the stop; a high threshold keeps it from racing
    // its probes on a loaded machine.
    let cold_edge = EdgeNode::start(
        NodeConfig::with_service(edge_service(&origin, &[&shield]).health(PROBE, "1s", "1s", 30, 2))
            .name("edge-2")
            .timeouts("1s", "2s"),
    )
    .await?;
    for path in &paths {
        let resp = edge.prime(HOST, path).await?;
        assert_eq!(resp.status, 200, "priming {path}: {}", resp.summary());
    }
    for path in &paths {
        assert_eq!(origin.count(path), 1, "{path} fetched more than once while priming");
    }

    origin.stop().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    for (i, path) in paths.iter().enumerate() {
        let resp = edge.get(HOST, path).await?;
        assert_eq!(resp.status, 200, "{path}: {}", resp.summary());
        assert_eq!(resp.text(), format!("stale {i}"));
        let entries = resp.cache_statuses();
        assert!(
            entries.iter().any(|e| e.detail() == Some("stale-if-error")),
            "{path}: no tier says stale-if-error: {:?}",
            resp.header("cache-status")
        );
    }

    // edge-2 never stored /s/0: the shield's copy is the stale one it gets.
    let resp = cold_edge.get(HOST, "/s/0").await?;
    assert_eq!(resp.status, 200, "/s/0 from edge-2: {}", resp.summary());
    assert_eq!(resp.text(), "stale 0");
    let entries = resp.cache_statuses();
    assert!(
        entries.first().is_some_and(|e| e.node == "shield-1" && e.detail() == Some("stale-if-error")),
        "/s/0 from edge-2: the shield's entry does not say stale-if-error: {:?}",
        resp.header("cache-status")
    );

    let addr = edge.http_addr();
    let started = Instant::now();
    let mut misses = JoinSet::new();
    for i in 0..10 {
        misses.spawn(async move {
            let path = format!("/never/{i}");
            let t = Instant::now();
            let resp = client::send(addr, &Req::get(HOST, &path)).await;
            (path, t.elapsed(), resp)
        });
    }
    while let Some(joined) = misses.join_next().await {
        let (path, took, resp) = joined?;
        let resp = resp?;
        // 502 when a try was made and refused; 503 once probes and breakers know that nothing is
        // usable (README "Upstreams": "Nothing usable: 503 at once").
        assert!(matches!(resp.status.as_u16(), 502 | 503), "{path} with the origin down: {}", resp.summary());
        assert!(took < Duration::from_secs(2), "{path} took {took:?}: errors should come fast");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "ten misses took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_origin_costs_one_timeout_per_try_until_its_breaker_opens() -> anyhow::Result<()> {
    // The origin accepts and never answers /hang/*. first_byte_timeout is 3 s (the prime of /kept
    // must get its head within it on a loaded machine), the breaker opens after 3 failures.
    // Three clients wait out the timeout (504); after that, ten more get an
    // error at once instead of ten more timeouts, and the origin hears none of them. A cached
    // object with stale-if-error is still served.
    let origin = Origin::start().await?;
    origin.route_prefix("/hang/", |_| Reply::ok("too late").delay(Duration::from_secs(10)));
    origin.route("/kept", Reply::ok("kept").cache_control("max-age=1, stale-if-error=60"));
    // A single origin is never ejected by default (issue 15): this test is about an operator who
    // lets its breaker take it out (max_ejection_percent = 100) to fail fast instead.
    let service = ServiceSpec::new("shop", &[HOST], origin.url()).passive(3, "30s").ejection(Some(100), None).retry(0);
    let edge = EdgeNode::start(NodeConfig::with_service(service).name("edge-1").timeouts("1s", "3s")).await?;
    edge.prime(HOST, "/kept").await?;
    origin.route("/kept", Reply::ok("too late").delay(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let addr = edge.http_addr();
    let mut first = JoinSet::new();
    for i in 0..3 {
        first.spawn(async move {
            let t = Instant::now();
            (client::send(addr, &Req::get(HOST, &format!("/hang/{i}"))).await, t.elapsed())
        });
    }
    while let Some(joined) = first.join_next().await {
        let (resp, took) = joined?;
        let resp = resp?;
        assert_eq!(resp.status, 504, "a try that timed out: {}", resp.summary());
        assert!(took >= Duration::from_millis(2900), "504 after only {took:?}");
    }
    let fetched = origin_requests(&origin, "/hang/").len();
    assert_eq!(fetched, 3);

    let mut rest = JoinSet::new();
    for i in 3..13 {
        rest.spawn(async move {
            let t = Instant::now();
            (client::send(addr, &Req::get(HOST, &format!("/hang/{i}"))).await, t.elapsed())
        });
    }
    while let Some(joined) = rest.join_next().await {
        let (resp, took) = joined?;
        let resp = resp?;
        assert!(matches!(resp.status.as_u16(), 502..=504), "with the breaker open: {}", resp.summary());
        assert!(took < Duration::from_millis(1500), "with the breaker open an error took {took:?}");
    }
    assert_eq!(origin_requests(&origin, "/hang/").len(), 3, "requests reached the origin with the breaker open");

    let started = Instant::now();
    let resp = edge.get(HOST, "/kept").await?;
    assert_eq!(resp.status, 200, "stale-if-error object with the breaker open: {}", resp.summary());
    assert_eq!(resp.text(), "kept");
    assert_eq!(resp.cache_status().detail(), Some("stale-if-error"), "{}", resp.summary());
    assert!(started.elapsed() < Duration::from_millis(1500), "stale copy took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_and_closes_end_to_end() -> anyhow::Result<()> {
    // One origin answers /flaky with 503 until told otherwise; the breaker opens after 3 failures
    // in a row for 3 s (long enough that the checks while open finish inside it on a loaded
    // machine). While open, the origin hears nothing and clients get a quick 5xx; once the
    // origin recovers and the ejection passes, one trial request closes it again.
    let origin = Origin::start().await?;
    let recovered = Arc::new(AtomicBool::new(false));
    let flag = recovered.clone();
    origin.route_fn("/flaky", move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok("recovered").cache_control("no-store")
        } else {
            Reply::status(503).cache_control("no-store").body("origin is failing\n")
        }
    });
    // Since issue 15 a single origin's 5xx do not count and it is never ejected by default; the
    // breaker's own cycle is what this test is about, so it opts into both.
    let service =
        ServiceSpec::new("shop", &[HOST], origin.url()).passive(3, "3s").ejection(Some(100), Some(true)).retry(0);
    let edge = start_edge("edge-1", service).await?;
    let url = origin.url();

    for n in 1..=3 {
        let resp = edge.get(HOST, "/flaky").await?;
        assert_eq!(resp.status, 503, "failure {n}: {}", resp.summary());
    }
    assert_eq!(origin.count("/flaky"), 3);
    assert_eq!(upstream_state(&edge, &url, "breaker").await?, "open", "{}", edge.upstreams().await?);

    for n in 1..=5 {
        let started = Instant::now();
        let resp = edge.get(HOST, "/flaky").await?;
        let took = started.elapsed();
        assert!(matches!(resp.status.as_u16(), 502 | 503), "request {n} while open: {}", resp.summary());
        assert!(took < Duration::from_millis(1500), "request {n} while open took {took:?}");
    }
    assert_eq!(origin.count("/flaky"), 3, "the origin was sent requests while the breaker was open");

    recovered.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let resp = edge.get(HOST, "/flaky").await?;
    assert_eq!(resp.status, 200, "trial request after the ejection: {}", resp.summary());
    assert_eq!(resp.text(), "recovered");
    assert_eq!(origin.count("/flaky"), 4);
    assert_eq!(upstream_state(&edge, &url, "breaker").await?, "closed", "{}", edge.upstreams().await?);

    for n in 1..=3 {
        let resp = edge.get(HOST, "/flaky").await?;
        assert_eq!(resp.status, 200, "request {n} after closing: {}", resp.summary());
    }
    assert_eq!(origin.count("/flaky"), 7, "traffic did not resume");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_checks_take_a_dead_shield_out_and_bring_it_back() -> anyhow::Result<()> {
    // Probes every 200 ms, down after 3 failures (two slow probes on a loaded machine must not
    // take shield-1 out), up after 2 successes. shield-2 dies: within about a second the edge
    // shows it unhealthy and every fetch goes through shield-1. It comes back on the same
    // address: healthy again, and it gets its keys back.
    let origin = origin().await?;
    origin.route_prefix("/g/", |r| Reply::ok(format!("g {}", r.path)).cache_control("max-age=60"));
    let (s1, mut s2) = tokio::try_join!(start_shield("shield-1", &origin), start_shield("shield-2", &origin))?;
    let service = edge_service(&origin, &[&s1, &s2]).health(PROBE, "200ms", "200ms", 3, 2);
    let edge = start_edge("edge-1", service).await?;
    let s2_url = s2.url();
    let healthy = |want: &'static str| {
        let (edge, url) = (&edge, s2_url.clone());
        move || {
            let url = url.clone();
            async move { Ok(upstream_state(edge, &url, "health").await? == want) }
        }
    };
    assert!(
        wait_until(Duration::from_secs(2), healthy("healthy")).await?,
        "shield-2 not healthy at start: {}",
        edge.upstreams().await?
    );

    s2.kill()?;
    let killed = Instant::now();
    assert!(
        wait_until(Duration::from_secs(3), healthy("unhealthy")).await?,
        "shield-2 still not unhealthy {:?} after it died: {}",
        killed.elapsed(),
        edge.upstreams().await?
    );
    let noticed = killed.elapsed();
    assert!(noticed < Duration::from_millis(1500), "the edge took {noticed:?} to notice shield-2 died");

    for i in 0..20 {
        let path = format!("/g/a/{i}");
        let resp = edge.get(HOST, &path).await?;
        assert_eq!(resp.status, 200, "{path} with shield-2 down: {}", resp.summary());
    }
    let fetched: Vec<&str> = origin_requests(&origin, "/g/a/").iter().map(fetched_by).collect();
    assert!(fetched.iter().all(|w| *w == "shield-1"), "with shield-2 down: {fetched:?}");

    s2.restart_same_addrs().await?;
    let restarted = Instant::now();
    assert!(
        wait_until(Duration::from_secs(3), healthy("healthy")).await?,
        "shield-2 not healthy {:?} after it came back: {}",
        restarted.elapsed(),
        edge.upstreams().await?
    );
    for i in 0..20 {
        let path = format!("/g/b/{i}");
        let resp = edge.get(HOST, &path).await?;
        assert_eq!(resp.status, 200, "{path} with shield-2 back: {}", resp.summary());
    }
    let fetched: Vec<&str> = origin_requests(&origin, "/g/b/").iter().map(fetched_by).collect();
    assert!(fetched.contains(&"shield-2"), "shield-2 got no keys back: {fetched:?}");
    assert!(!fetched.contains(&"direct"), "fetches skipped both shields: {fetched:?}");
    Ok(())
}

#[tokio::test]
async fn a_304s_set_cookie_crosses_the_shield_to_its_requester_only() -> anyhow::Result<()> {
    // Issue 18 finding 2 on two tiers. Both tiers hold the object stale; alice's revalidation
    // goes edge → shield → origin, whose 304 carries her cookie (RFC 9111 §3.2, §4.3.4). The
    // shield answers the edge's conditional with a 304 that still carries it, so it reaches
    // alice; neither tier stores it.
    let origin = origin().await?;
    origin.route_fn("/account", |req| {
        if req.header("if-none-match") == Some("\"v1\"") {
            Reply::status(304).etag("\"v1\"").cache_control("max-age=60").header("set-cookie", "session=alice")
        } else {
            Reply::ok("shared body").etag("\"v1\"").cache_control("max-age=10").header("age", "15")
        }
    });
    let shield = start_shield("shield-1", &origin).await?;
    let edge = start_edge("edge-1", edge_service(&origin, &[&shield])).await?;
    edge.get(HOST, "/account").await?;

    let alice = edge.send(Req::get(HOST, "/account").header("cookie", "login=alice")).await?;
    assert_eq!(alice.text(), "shared body", "{}", alice.summary());
    assert_eq!(alice.header("set-cookie"), Some("session=alice"), "the requester gets its cookie: {}", alice.summary());

    let bob_at_edge = edge.get(HOST, "/account").await?;
    assert!(bob_at_edge.cache_status().hit(), "{}", bob_at_edge.summary());
    assert_eq!(bob_at_edge.header("set-cookie"), None, "edge leaked: {}", bob_at_edge.summary());
    let bob_at_shield = shield.get(HOST, "/account").await?;
    assert!(bob_at_shield.cache_status().hit(), "{}", bob_at_shield.summary());
    assert_eq!(bob_at_shield.header("set-cookie"), None, "shield leaked: {}", bob_at_shield.summary());
    assert_eq!(origin.count("/account"), 2, "one fill, one revalidation");
    Ok(())
}
