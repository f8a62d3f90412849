//! PoP failover through DNS (issue 7): a real control plane answering DNS for `cdn.example.`,
//! edges in two PoPs on their own loopback addresses (PoP `a` on 127.0.1.1 and 127.0.1.2, PoP
//! `b` on 127.0.2.1) that follow it through their agents, and questions asked with `dig`
//! (Debian's dnsutils). Clients in 10.1.0.0/16 (region `ra`) prefer `a`, then `b`; clients in
//! 10.2.0.0/16 (region `rb`) prefer `b`; anyone else goes to `b` first. The client subnet is
//! sent as EDNS Client Subnet (`+subnet=`).
//!
//! Health is checked every 200 ms with a 500 ms timeout, two failures to go down, two passes to
//! come back: a dead PoP is out of the answers within 0.9 s (the configured detection time). The
//! waits below poll `dig` with a generous bound and print how long the move took.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;
use outpost_tests::control::{ControlConfig, ControlPlane, OPERATOR, expect_error, json};
use outpost_tests::fleet::{TENANT_TOKEN, follower};
use outpost_tests::{EdgeNode, NodeConfig};
use serde_json::Value;

/// `[health]`.
const HEALTH: [&str; 4] =
    ["interval = \"200ms\"", "timeout = \"500ms\"", "unhealthy_threshold = 2", "healthy_threshold = 2"];

const TABLES: &str = r#"
[dns]
listen = "127.0.0.1:0"
zone = "cdn.example."
ttl = "5s"
ns = ["ns1.cdn.example.", "ns2.cdn.example."]
default_pops = ["b"]

[dns.soa]
rname = "noc.cdn.example."

[dns.regions.ra]
subnets = ["10.1.0.0/16"]
pops = ["a", "b"]

[dns.regions.rb]
subnets = ["10.2.0.0/16", "2001:db8:2::/48"]
pops = ["b", "a"]
"#;

/// `unhealthy_threshold × interval + timeout` above.
const DETECTION: Duration = Duration::from_millis(900);

/// Bound on every wait for DNS answers to move: generous, so a loaded machine does not fail the
/// scenario; the time actually taken is printed.
const MOVE_LIMIT: Duration = Duration::from_secs(20);

const IN_RA: &str = "10.1.7.0/24";
const IN_RB: &str = "10.2.7.0/24";
const POP_A: [&str; 2] = ["127.0.1.1", "127.0.1.2"];
const POP_B: [&str; 1] = ["127.0.2.1"];

fn control_config() -> ControlConfig {
    HEALTH
        .iter()
        .fold(ControlConfig::default(), |config, line| config.health(line))
        .nodes("heartbeat_interval = \"200ms\"")
        .tables(TABLES)
}

/// An edge of `pop` listening (client and admin) on `ip`, following `cp`.
async fn edge(name: &str, pop: &str, ip: &str, cp: &ControlPlane) -> anyhow::Result<EdgeNode> {
    let mut config: NodeConfig = follower(name, pop, &format!("r{pop}"), cp.addr());
    config.http_listen = format!("{ip}:0");
    config.admin_listen = format!("{ip}:0");
    EdgeNode::start(config).await
}

/// One resource record as dig prints it.
#[derive(Debug, Clone)]
struct Rr {
    kind: String,
    ttl: u32,
    data: String,
}

/// What dig printed for one question.
#[derive(Debug, Clone, Default)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answer: Vec<Rr>,
    authority: Vec<Rr>,
    /// `ADDRESS/SOURCE/SCOPE` of the EDNS Client Subnet option in the response.
    subnet: Option<String>,
    text: String,
}

impl Dig {
    /// The A and AAAA addresses of the answer, sorted.
    fn ips(&self) -> Vec<String> {
        let mut ips: Vec<String> =
            self.answer.iter().filter(|r| r.kind == "A" || r.kind == "AAAA").map(|r| r.data.clone()).collect();
        ips.sort();
        ips
    }

    fn authoritative(&self) -> bool {
        self.flags.iter().any(|f| f == "aa")
    }
}

/// Asks `server` for `name`/`kind` with dig (UDP unless `args` say `+tcp`), no recursion.
async fn dig(server: SocketAddr, name: &str, kind: &str, args: &[&str]) -> anyhow::Result<Dig> {
    let mut command = std::process::Command::new("dig");
    command
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .arg(name)
        .arg(kind)
        .args(["+norecurse", "+tries=1", "+time=3", "+nocmd", "+nostats"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output()).await?;
    let output = match output {
        Ok(output) => output,
        Err(e) => anyhow::bail!("running dig (Debian's dnsutils; `apt-get install dnsutils`): {e}"),
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "dig {name} {kind} {args:?}: {}\n{text}", output.status);
    Ok(parse_dig(&text))
}

fn parse_dig(text: &str) -> Dig {
    let mut dig = Dig { text: text.to_owned(), ..Dig::default() };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            dig.status = rest.split(',').next().unwrap_or_default().to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags:") {
            dig.flags = rest.split(';').next().unwrap_or_default().split_whitespace().map(str::to_owned).collect();
        } else if let Some(rest) = line.strip_prefix("; CLIENT-SUBNET: ") {
            dig.subnet = Some(rest.trim().to_owned());
        } else if line.starts_with(";; ") && line.ends_with(" SECTION:") {
            section = line.trim_start_matches(";; ").trim_end_matches(" SECTION:");
        } else if line.is_empty() || line.starts_with(';') {
            continue;
        } else {
            // NAME TTL CLASS TYPE DATA...
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [_name, ttl, _class, kind, data @ ..] = fields.as_slice() {
                let rr = Rr { kind: (*kind).to_owned(), ttl: ttl.parse().unwrap_or_default(), data: data.join(" ") };
                match section {
                    "ANSWER" => dig.answer.push(rr),
                    "AUTHORITY" => dig.authority.push(rr),
                    _ => {}
                }
            }
        }
    }
    dig
}

/// `A shop.cdn.example.` for a client in `subnet`.
async fn shop_for(cp: &ControlPlane, subnet: &str) -> anyhow::Result<Dig> {
    dig(cp.dns_addr()?, "shop.cdn.example", "A", &[&format!("+subnet={subnet}")]).await
}

/// Polls until a client in `subnet` is answered exactly `ips`; returns the time it took.
async fn wait_answer(cp: &ControlPlane, subnet: &str, ips: &[&str], why: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let answer = shop_for(cp, subnet).await?;
        if answer.status == "NOERROR" && answer.ips() == ips {
            return Ok(start.elapsed());
        }
        if start.elapsed() > MOVE_LIMIT {
            let pops = pops(cp).await.unwrap_or_default();
            anyhow::bail!(
                "{why}: a client in {subnet} still gets {:?}, not {ips:?}\n{}\npops: {pops}",
                answer.ips(),
                answer.text
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pops(cp: &ControlPlane) -> anyhow::Result<Value> {
    let resp = cp.call(Method::GET, "/v1/pops", Some(OPERATOR), "").await?;
    anyhow::ensure!(resp.status == 200, "GET /v1/pops: {} {}", resp.status, resp.text());
    json(&resp)
}

/// The entry of `pop` in `GET /v1/pops`.
fn pop<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["pops"].as_array().and_then(|pops| pops.iter().find(|p| p["pop"] == name)).unwrap_or(&Value::Null)
}

/// Polls `GET /v1/pops` until `check` holds (bounded).
async fn wait_pops(cp: &ControlPlane, why: &str, check: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let start = Instant::now();
    loop {
        let list = pops(cp).await?;
        if check(&list) {
            return Ok(list);
        }
        anyhow::ensure!(start.elapsed() < MOVE_LIMIT, "{why}: GET /v1/pops is still {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_shop(cp: &ControlPlane) -> anyhow::Result<()> {
    let body = r#"{"hosts": ["shop.test"], "origin": "http://127.0.0.1:9"}"#;
    let resp = cp.call(Method::PUT, "/v1/services/shop", Some(TENANT_TOKEN), body).await?;
    anyhow::ensure!(resp.status.is_success(), "PUT /v1/services/shop: {} {}", resp.status, resp.text());
    Ok(())
}

async fn post(cp: &ControlPlane, path: &str, token: &str) -> anyhow::Result<outpost_tests::Resp> {
    cp.call(Method::POST, path, Some(token), "").await
}

#[tokio::test]
async fn answers_follow_pop_health_and_drains() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(control_config()).await?;
    let mut pop_a = vec![edge("edge-a1", "a", POP_A[0], &cp).await?, edge("edge-a2", "a", POP_A[1], &cp).await?];
    let mut pop_b = vec![edge("edge-b1", "b", POP_B[0], &cp).await?];
    create_shop(&cp).await?;

    // Everyone healthy: each region gets its nearest PoP, every edge of it.
    wait_answer(&cp, IN_RA, &POP_A, "both PoPs up").await?;
    let answer = shop_for(&cp, IN_RA).await?;
    assert!(answer.authoritative(), "{}", answer.text);
    assert!(answer.answer.iter().all(|rr| rr.ttl == 5), "the configured TTL: {}", answer.text);
    assert_eq!(answer.subnet.as_deref(), Some("10.1.7.0/24/24"), "ECS echoed with its scope: {}", answer.text);
    wait_answer(&cp, IN_RB, &POP_B, "both PoPs up").await?;
    assert_eq!(shop_for(&cp, "2001:db8:2:1::/64").await?.ips(), POP_B, "an IPv6 client subnet of region rb");
    // No subnet: dig's own address (127.0.0.1) is in no region, so the default order.
    let direct = dig(cp.dns_addr()?, "shop.cdn.example", "A", &[]).await?;
    assert_eq!(direct.ips(), POP_B, "{}", direct.text);
    // Asked over TCP: the same answer.
    let tcp = dig(cp.dns_addr()?, "shop.cdn.example", "A", &["+tcp", &format!("+subnet={IN_RA}")]).await?;
    assert_eq!(tcp.ips(), POP_A, "{}", tcp.text);

    // PoP a's edges die: region ra's clients move to b.
    for edge in &mut pop_a {
        edge.kill()?;
    }
    let took = wait_answer(&cp, IN_RA, &POP_B, "PoP a killed").await?;
    eprintln!("answers moved from a to b {took:?} after a's edges died (detection time {DETECTION:?})");
    let list = pops(&cp).await?;
    assert_eq!(
        (pop(&list, "a")["healthy"].clone(), pop(&list, "b")["healthy"].clone()),
        (false.into(), true.into()),
        "{list}"
    );
    assert!(pop(&list, "a")["nodes"].as_array().is_some_and(|n| n.iter().all(|n| n["probe"] == "down")), "{list}");
    assert_eq!(list["detection_time"], "900ms", "{list}");

    // b dies too: every PoP down, so each client gets its nearest PoP anyway.
    pop_b[0].kill()?;
    wait_pops(&cp, "b killed", |list| pop(list, "b")["healthy"] == false).await?;
    assert_eq!(shop_for(&cp, IN_RA).await?.ips(), POP_A);
    assert_eq!(shop_for(&cp, IN_RB).await?.ips(), POP_B);
    let list = pops(&cp).await?;
    assert!(list["dns"]["picks"]["all_down"].as_u64() >= Some(2), "{list}");

    // Everything back, b first: region ra is then answered from b (the nearest healthy PoP), and
    // returns to a once a is back. (With every PoP down, ra gets a anyway: restarting both at
    // once would measure nothing.)
    for edge in &mut pop_b {
        edge.restart().await?;
    }
    wait_answer(&cp, IN_RA, &POP_B, "PoP b restarted").await?;
    for edge in &mut pop_a {
        edge.restart().await?;
    }
    let took = wait_answer(&cp, IN_RA, &POP_A, "PoP a restarted").await?;
    eprintln!("answers back on a {took:?} after its edges restarted");
    wait_answer(&cp, IN_RB, &POP_B, "PoP b restarted").await?;
    // Every node checked healthy again before the drain below reports a's health.
    wait_pops(&cp, "a and b restarted", |list| {
        pop(list, "a")["nodes"].as_array().is_some_and(|n| n.iter().all(|n| n["healthy"] == true))
            && pop(list, "b")["healthy"] == true
    })
    .await?;

    // Drain a: at once, region ra goes to b; region rb is unaffected.
    let resp = post(&cp, "/v1/pops/a/drain", OPERATOR).await?;
    let drained = json(&resp)?;
    assert_eq!(resp.status, 200, "{drained}");
    assert_eq!((drained["drained"].clone(), drained["healthy"].clone()), (true.into(), true.into()), "{drained}");
    assert_eq!(shop_for(&cp, IN_RA).await?.ips(), POP_B, "a drain takes effect at once");
    assert_eq!(shop_for(&cp, IN_RB).await?.ips(), POP_B);

    // A restarted control plane keeps the drain (on the API address the agents know).
    let config = cp.dir().join("control-plane.toml");
    let text = std::fs::read_to_string(&config)?;
    // The first `listen` is the API's; the DNS server's stays on port 0.
    std::fs::write(&config, text.replacen("listen = \"127.0.0.1:0\"", &format!("listen = \"{}\"", cp.addr()), 1))?;
    cp.restart().await?;
    let list = wait_pops(&cp, "control plane restarted", |list| {
        pop(list, "a")["healthy"] == true && pop(list, "b")["healthy"] == true
    })
    .await?;
    assert_eq!(pop(&list, "a")["drained"], true, "{list}");
    assert_eq!(shop_for(&cp, IN_RA).await?.ips(), POP_B, "still drained after the restart");

    // Restore: region ra is back on a.
    let resp = post(&cp, "/v1/pops/a/restore", OPERATOR).await?;
    let restored = json(&resp)?;
    assert_eq!((resp.status.as_u16(), restored["drained"].clone()), (200, false.into()), "{restored}");
    assert_eq!(shop_for(&cp, IN_RA).await?.ips(), POP_A, "a restore takes effect at once");
    let list = pops(&cp).await?;
    assert!(list["dns"]["pops"]["a"].as_u64() >= Some(1), "answers counted by PoP: {list}");
    Ok(())
}

/// A node bound to one address answers DNS with the one it advertises
/// (`[control.advertise]`), as a node on `0.0.0.0` or behind NAT must; the control plane
/// still probes the admin address it gives.
#[tokio::test]
async fn answers_carry_the_address_a_node_advertises() -> anyhow::Result<()> {
    let cp = ControlPlane::start(control_config()).await?;
    create_shop(&cp).await?;
    let mut config: NodeConfig = follower("edge-b-1", "b", "rb", cp.addr());
    config.http_listen = "127.0.2.1:0".to_owned();
    config.admin_listen = "127.0.2.1:0".to_owned();
    config.extra.push_str("[control.advertise]\nhttp = \"127.0.2.9:80\"\n");
    let _edge = EdgeNode::start(config).await?;
    wait_answer(&cp, IN_RB, &["127.0.2.9"], "the advertised address").await?;
    let list = pops(&cp).await?;
    assert_eq!(pop(&list, "b")["healthy"], true, "{list}");
    Ok(())
}

/// Issue 18: the nodes' `/healthz` needs their admin token, so the probes carry it
/// (`health.node_admin_token_file`). A control plane with the token sees the edge healthy; one
/// without it reports why the edge is down (`GET /v1/pops`), not a silent failover.
#[tokio::test]
async fn probes_carry_the_nodes_admin_token() -> anyhow::Result<()> {
    let with = ControlPlane::start(control_config()).await?;
    let _edge = edge("edge-b1", "b", POP_B[0], &with).await?;
    wait_pops(&with, "probed with the token", |list| pop(list, "b")["healthy"] == true).await?;

    let mut config = control_config();
    config.node_admin_token = None;
    let without = ControlPlane::start(config).await?;
    let _refused = edge("edge-b2", "b", POP_B[0], &without).await?;
    let list = wait_pops(&without, "probed without the token", |list| {
        pop(list, "b")["nodes"][0]["checked_at"].is_string() && pop(list, "b")["nodes"][0]["probe"] == "down"
    })
    .await?;
    let node = &pop(&list, "b")["nodes"][0];
    assert_eq!(pop(&list, "b")["healthy"], false, "{list}");
    let error = node["error"].as_str().unwrap_or_default();
    assert!(error.contains("status 401: set health.node_admin_token_file"), "{list}");
    // The log says it too (read from the process's stderr as it arrives: bounded wait).
    let start = Instant::now();
    while !without.stderr_text().contains("set health.node_admin_token_file") {
        anyhow::ensure!(start.elapsed() < MOVE_LIMIT, "no log line names the field:\n{}", without.stderr_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn the_zone_is_answered_like_an_authoritative_server() -> anyhow::Result<()> {
    let cp = ControlPlane::start(control_config()).await?;
    create_shop(&cp).await?;
    let server = cp.dns_addr()?;

    // The apex: SOA and NS, authoritative.
    let soa = dig(server, "cdn.example", "SOA", &[]).await?;
    assert_eq!(soa.status, "NOERROR", "{}", soa.text);
    assert!(soa.authoritative(), "{}", soa.text);
    assert!(
        soa.answer
            .first()
            .is_some_and(|rr| rr.kind == "SOA" && rr.data.starts_with("ns1.cdn.example. noc.cdn.example. ")),
        "{}",
        soa.text
    );
    let ns = dig(server, "CDN.Example", "NS", &["+tcp"]).await?;
    let mut servers: Vec<&str> = ns.answer.iter().filter(|rr| rr.kind == "NS").map(|rr| rr.data.as_str()).collect();
    servers.sort_unstable();
    assert_eq!(servers, ["ns1.cdn.example.", "ns2.cdn.example."], "{}", ns.text);

    // Names in the zone that are not services: NXDOMAIN with the SOA, so resolvers cache it.
    for name in ["nope.cdn.example", "www.shop.cdn.example", "a.b.cdn.example"] {
        let answer = dig(server, name, "A", &["+subnet=10.1.0.0/16"]).await?;
        assert_eq!(answer.status, "NXDOMAIN", "{name}: {}", answer.text);
        assert!(answer.authoritative(), "{name}: {}", answer.text);
        assert!(answer.authority.iter().any(|rr| rr.kind == "SOA"), "{name}: {}", answer.text);
        assert_eq!(answer.subnet.as_deref(), Some("10.1.0.0/16/0"), "scope 0: the same for everyone: {}", answer.text);
    }
    // The service exists, but no PoP has an edge yet; another type: NOERROR without records.
    for (name, kind) in
        [("shop.cdn.example", "A"), ("shop.cdn.example", "MX"), ("shop.cdn.example", "AAAA"), ("cdn.example", "A")]
    {
        let answer = dig(server, name, kind, &[]).await?;
        assert_eq!((answer.status.as_str(), answer.answer.len()), ("NOERROR", 0), "{name} {kind}: {}", answer.text);
        assert!(answer.authority.iter().any(|rr| rr.kind == "SOA"), "{name} {kind}: {}", answer.text);
    }
    // Outside the zone: not ours.
    for name in ["example.org", "cdn.example.org", "example"] {
        let answer = dig(server, name, "A", &[]).await?;
        assert_eq!(answer.status, "REFUSED", "{name}: {}", answer.text);
        assert!(!answer.authoritative(), "{name}: {}", answer.text);
    }
    // A class other than IN: not ours either. Unsupported opcode and EDNS version: said so.
    let chaos = dig(server, "version.cdn.example", "TXT", &["-c", "CH"]).await?;
    assert_eq!(chaos.status, "REFUSED", "{}", chaos.text);
    let notify = dig(server, "cdn.example", "SOA", &["+opcode=notify"]).await?;
    assert_eq!(notify.status, "NOTIMP", "{}", notify.text);
    let edns1 = dig(server, "cdn.example", "SOA", &["+edns=1", "+noednsnegotiation"]).await?;
    assert_eq!(edns1.status, "BADVERS", "{}", edns1.text);

    // A service deleted is gone from DNS at once.
    let resp = cp.call(Method::DELETE, "/v1/services/shop", Some(TENANT_TOKEN), "").await?;
    assert!(resp.status.is_success(), "{} {}", resp.status, resp.text());
    assert_eq!(dig(server, "shop.cdn.example", "A", &[]).await?.status, "NXDOMAIN");

    // The PoPs the region map names are listed before any node registers; the counters moved.
    let list = pops(&cp).await?;
    let names: Vec<&str> = list["pops"].as_array().into_iter().flatten().filter_map(|p| p["pop"].as_str()).collect();
    assert_eq!(names, ["a", "b"], "{list}");
    assert!(list["dns"]["queries"]["nxdomain"].as_u64() >= Some(4), "{list}");
    assert!(list["dns"]["queries"]["refused"].as_u64() >= Some(3), "{list}");

    // The API: operator only; unknown and invalid PoPs; JSON errors.
    expect_error(&cp.call(Method::GET, "/v1/pops", Some(TENANT_TOKEN), "").await?, 403, "forbidden")?;
    expect_error(&post(&cp, "/v1/pops/a/drain", TENANT_TOKEN).await?, 403, "forbidden")?;
    expect_error(&post(&cp, "/v1/pops/a/restore", "globex-token").await?, 403, "forbidden")?;
    expect_error(&cp.call(Method::GET, "/v1/pops", None, "").await?, 401, "unauthorized")?;
    expect_error(&post(&cp, "/v1/pops/zzz/drain", OPERATOR).await?, 404, "not_found")?;
    expect_error(&post(&cp, "/v1/pops/zzz/restore", OPERATOR).await?, 404, "not_found")?;
    expect_error(&post(&cp, "/v1/pops/a%20b/drain", OPERATOR).await?, 400, "invalid_request")?;
    expect_error(&cp.call(Method::GET, "/v1/pops/a/drain", Some(OPERATOR), "").await?, 405, "method_not_allowed")?;
    // A PoP the map names can be drained before it has nodes; the answer says so.
    let drained = json(&post(&cp, "/v1/pops/b/drain", OPERATOR).await?)?;
    assert_eq!((drained["pop"].as_str(), drained["drained"].as_bool()), (Some("b"), Some(true)), "{drained}");
    Ok(())
}

#[test]
fn check_config_names_the_dns_field_at_fault() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cp.toml");
    let token = outpost_tests::control::sha256_hex("t");
    std::fs::write(
        &file,
        format!(
            "data = \"cp.redb\"\n[[tokens]]\noperator = true\nsha256 = \"{token}\"\n\
             [health]\ninterval = \"1ms\"\n\
             [dns]\nzone = \"cdn.example\"\n[dns.regions.eu]\npops = [\"fra\"]\nsubnets = [\"10.0.0.1/8\"]\n"
        ),
    )?;
    let output =
        std::process::Command::new(outpost_tests::control::binary()?).arg("check-config").arg(&file).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("dns.regions.eu.subnets[0]") && stderr.contains("host bits set"), "{stderr}");
    assert!(stderr.contains("health.interval") && stderr.contains("100ms to 5m"), "{stderr}");
    Ok(())
}
