//! End-to-end tests for Outpost: real `edge-node` and `origin-shield` processes in front of real
//! origins on loopback, and the real `control-plane`.
//!
//! The harness has these parts, each in its own module:
//! - [`origin`]: a scripted hyper origin that records what it receives;
//! - [`raw_origin`]: a raw-TCP origin that frames requests as nginx does (answers before the body);
//! - [`interim_origin`]: a raw-TCP origin that sends 1xx (103 Early Hints) before its answer;
//! - [`interim_client`]: HTTP/1.1 and HTTP/2 clients that see the 1xx a node sends;
//! - [`node`]: the node under test (an edge, or a shield), its config file and its process;
//! - [`client`]: HTTP/1.1 and HTTP/2 clients, cleartext or TLS, and a raw socket;
//! - [`h3client`]: an HTTP/3 client (quinn + h3) for the node's QUIC listener;
//! - [`tls`]: a throwaway CA and the certificates it signs;
//! - [`chromium`]: headless Chromium loading a page, the DOM it settled on;
//! - [`control`]: the control plane under test, its tokens, config and data file;
//! - [`fleet`]: a control plane with edges in two PoPs and a shield following it;
//! - [`wasm`]: edge-function guests built for `wasm32-wasip2` (a nested cargo, once per process);
//! - [`pg`]: a throwaway PostgreSQL cluster (`initdb` + `pg_ctl` on loopback) for the control
//!   plane's PostgreSQL store and its replicas;
//! - [`tmpfs`]: a small tmpfs mounted for a scenario (a full disk), unmounted on drop;
//! - [`pebble`]: Pebble, the ACME test server (Debian's `pebble`), with its test CA, its
//!   validator aimed at an edge's listeners;
//! - [`challtestsrv`]: a DNS server the test controls (`pebble-challtestsrv`): A and TXT records
//!   set through its management API, for proofs of domain
//!   control and ACME.
//!
//! A scenario in `tests/*.rs` starts an origin, scripts it, starts a node whose service points at
//! it, sends requests and asserts on both ends: the response and `Cache-Status` the client got,
//! and the requests (count, headers) the origin saw.
//!
//! The node binary is `OUTPOST_EDGE_NODE_BIN` when set; otherwise the first scenario of each test
//! process runs `cargo build -p edge-node --bin edge-node` and uses what cargo reports (the shield
//! likewise: `OUTPOST_ORIGIN_SHIELD_BIN`, or `cargo build -p origin-shield`; the control plane:
//! `OUTPOST_CONTROL_PLANE_BIN`, or `cargo build -p control-plane`). Every
//! listener binds port 0; every wait is bounded (start-up 30 s, one exchange 15 s, shutdown 15 s).
//! When a scenario fails, the node's stderr and stdout are printed under the assertion.

pub mod challtestsrv;
pub mod chromium;
pub mod client;
pub mod control;
pub mod dig;
pub mod fleet;
pub mod h3client;
pub mod interim_client;
pub mod interim_origin;
pub mod node;
pub mod origin;
pub mod pebble;
pub mod pg;
pub mod proxy;
pub mod raw_origin;
pub mod tls;
pub mod tmpfs;
pub mod wasm;

use std::time::{Duration, SystemTime};

pub use client::{CacheStatus, Proto, RawResponse, Req, Resp, raw_exchange, raw_exchange_from};
pub use interim_origin::{Hold, InterimOrigin, Step};
pub use node::{Binary, EdgeNode, HostHeader, NodeConfig, ServiceSpec};
pub use origin::{Chunk, Gate, Origin, Recorded, Reply, refused_addr};
pub use raw_origin::{Kill, RawOrigin, RawRequest};
pub use tls::TestCa;

/// An HTTP-date (RFC 9110 §5.6.7) `offset` away from now, in the past when negative.
pub fn http_date(offset_secs: i64) -> String {
    let now = SystemTime::now();
    let at = if offset_secs >= 0 {
        now + Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    };
    httpdate::fmt_http_date(at)
}

/// Starts an origin and a node with one service "shop" for `shop.test` and `*.shop.test`
/// pointing at it: the topology most scenarios use.
pub async fn shop() -> anyhow::Result<(Origin, EdgeNode)> {
    shop_with(|c| c).await
}

/// Like [`shop`], with the config adjusted by `f` first.
pub async fn shop_with(f: impl FnOnce(NodeConfig) -> NodeConfig) -> anyhow::Result<(Origin, EdgeNode)> {
    let origin = Origin::start().await?;
    let service = ServiceSpec::new("shop", &["shop.test", "*.shop.test"], origin.url());
    let node = EdgeNode::start(f(NodeConfig::with_service(service))).await?;
    Ok((origin, node))
}

/// Polls `check` every 10 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks an error response against the contract: the status, an `x-request-id` header, a
/// `text/plain` body `"<code> <reason>\nrequest-id: <id>\n"` naming that same id.
pub fn check_error(resp: &Resp, status: u16) -> anyhow::Result<()> {
    check_error_parts(
        resp.status.as_u16(),
        resp.header("x-request-id"),
        resp.header("content-type"),
        &resp.text(),
        status,
    )
}

/// [`check_error`] for a response read off a raw socket.
pub fn check_raw_error(resp: &RawResponse, status: u16) -> anyhow::Result<()> {
    check_error_parts(resp.status, resp.header("x-request-id"), resp.header("content-type"), &resp.text(), status)
}

fn check_error_parts(
    got: u16,
    id: Option<&str>,
    content_type: Option<&str>,
    body: &str,
    status: u16,
) -> anyhow::Result<()> {
    anyhow::ensure!(got == status, "expected status {status}, got {got}; body {body:?}");
    let id = id.ok_or_else(|| anyhow::anyhow!("{status} response has no x-request-id"))?;
    anyhow::ensure!(!id.is_empty(), "{status} response has an empty x-request-id");
    anyhow::ensure!(
        content_type.is_some_and(|c| c.starts_with("text/plain")),
        "{status} response content-type is {content_type:?}, expected text/plain"
    );
    let reason = http::StatusCode::from_u16(status)?.canonical_reason().unwrap_or("");
    // The status line, then (for errors the client can fix) one line saying what, then the id.
    let (head, tail) = (format!("{status} {reason}\n"), format!("request-id: {id}\n"));
    let message = body.strip_prefix(&head).and_then(|rest| rest.strip_suffix(&tail));
    anyhow::ensure!(
        message.is_some_and(|m| m.is_empty() || (m.ends_with('\n') && m.matches('\n').count() == 1)),
        "{status} body is {body:?}, expected {head:?}, an optional message line, then {tail:?}"
    );
    Ok(())
}
