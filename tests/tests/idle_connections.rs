//! Idle connections (issue 18, finding 6): connections that send nothing, or only part of the
//! HTTP/2 preface, are closed `limits.header_read_timeout` after accept; when the listener is
//! full, the connection idle the longest is closed to let a new one in, so a flood of idle
//! sockets cannot lock clients out. The same for the admin listener and the control plane's
//! API. Counts stay in the hundreds, within any test process's file-descriptor limit.

use std::time::Duration;

use http::Method;
use outpost_tests::client::{self, closed_by_peer, idle_connections};
use outpost_tests::control::{ControlConfig, ControlPlane};
use outpost_tests::{Reply, Req, shop_with};

/// Far above every timeout under test: a bound on waiting, not a measurement.
const LIMIT: Duration = Duration::from_secs(20);
/// The start of the HTTP/2 connection preface (RFC 9113 §3.4), cut short.
const HALF_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

#[tokio::test]
async fn a_flood_of_idle_connections_does_not_lock_out_clients() -> anyhow::Result<()> {
    // A long header timeout: making room must not wait for it.
    let (origin, node) =
        shop_with(|c| c.limits_line("max_connections = 40").limits_line("header_read_timeout = \"60s\"")).await?;
    origin.route("/", Reply::ok("hello").cache_control("max-age=60"));
    let mut flood = idle_connections(node.http_addr(), 60, b"").await?;
    flood.extend(idle_connections(node.http_addr(), 60, HALF_PREFACE).await?);
    for i in 0..20 {
        let resp = node.get("shop.test", "/").await?;
        assert_eq!(resp.status, 200, "request {i} while 120 idle sockets are open");
    }
    // The ones made room for were closed by the node, the oldest first.
    assert!(closed_by_peer(&mut flood[0], LIMIT).await, "the oldest idle connection was closed");
    Ok(())
}

#[tokio::test]
async fn connections_that_never_send_a_request_are_closed_after_header_read_timeout() -> anyhow::Result<()> {
    let (_origin, node) = shop_with(|c| c.limits_line("header_read_timeout = \"500ms\"")).await?;
    for (what, prefix) in [("nothing", &b""[..]), ("half an h2 preface", HALF_PREFACE), ("half a request", b"GET / HT")]
    {
        let mut idle = idle_connections(node.http_addr(), 1, prefix).await?;
        assert!(closed_by_peer(&mut idle[0], LIMIT).await, "a connection that sent {what} is still open");
    }
    Ok(())
}

#[tokio::test]
async fn a_keep_alive_connection_idle_past_keepalive_timeout_is_closed() -> anyhow::Result<()> {
    let (origin, node) = shop_with(|c| c.limits_line("keepalive_timeout = \"500ms\"")).await?;
    origin.route("/", Reply::ok("hello"));
    let mut tcp = tokio::net::TcpStream::connect(node.http_addr()).await?;
    use tokio::io::AsyncWriteExt;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n").await?;
    assert!(closed_by_peer(&mut tcp, LIMIT).await, "idle after its request, the connection stays open");
    Ok(())
}

#[tokio::test]
async fn the_admin_listener_bounds_and_times_out_its_connections() -> anyhow::Result<()> {
    let (_origin, node) =
        shop_with(|c| c.listen_line("admin_max_connections = 4").limits_line("header_read_timeout = \"500ms\""))
            .await?;
    let mut idle = idle_connections(node.admin_addr(), 10, b"").await?;
    let metrics = node.admin(Method::GET, "/metrics", "").await?;
    assert_eq!(metrics.status, 200, "the admin listener still answers past 10 idle sockets");
    for (i, tcp) in idle.iter_mut().enumerate() {
        assert!(closed_by_peer(tcp, LIMIT).await, "idle admin connection {i} is still open");
    }
    Ok(())
}

#[tokio::test]
async fn the_control_planes_api_bounds_and_times_out_idle_connections() -> anyhow::Result<()> {
    let cp = ControlPlane::start(
        ControlConfig::default()
            .limit("max_connections = 16")
            .limit("header_read_timeout = \"500ms\"")
            .limit("keepalive_timeout = \"500ms\""),
    )
    .await?;
    let mut idle = idle_connections(cp.addr(), 30, b"").await?;
    idle.extend(idle_connections(cp.addr(), 30, HALF_PREFACE).await?);
    let health = client::send(cp.addr(), &Req::get("localhost", "/healthz")).await?;
    assert_eq!(health.status, 200, "/healthz answers past 60 idle sockets");
    for (i, tcp) in idle.iter_mut().enumerate() {
        assert!(closed_by_peer(tcp, LIMIT).await, "idle API connection {i} is still open");
    }
    Ok(())
}

/// HTTP/2 has no header timeout between streams: a client that answers the node's pings and
/// opens no stream held its connection (and a `max_connections` slot) forever.
#[tokio::test]
async fn an_http2_connection_with_no_stream_open_is_closed_after_keepalive_timeout() -> anyhow::Result<()> {
    let (origin, node) = shop_with(|c| c.limits_line("keepalive_timeout = \"500ms\"")).await?;
    origin.route("/", Reply::ok("hello"));
    let tcp = tokio::net::TcpStream::connect(node.http_addr()).await?;
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await?;
    let driver = tokio::spawn(connection);
    let req = http::Request::get("http://shop.test/").body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
    assert_eq!(&body[..], b"hello");
    // The connection (which answers pings) ends only when the node closes it.
    assert!(tokio::time::timeout(LIMIT, driver).await.is_ok(), "an idle HTTP/2 connection stays open");
    Ok(())
}
