//! HTTP/2 on the client side, served with the `h2` crate directly rather than through hyper:
//! hyper 1.12's h2 glue owns each stream's `SendResponse` and has no way to send a 1xx
//! (hyper PR #4114, open), and interim responses (`103 Early Hints`, RFC 8297) must reach h2
//! clients. This module is the glue hyper's `proto/h2/server.rs` was: the same h2 settings,
//! keep-alive pings, graceful GOAWAY; [`stream`] serves one request stream, [`body`] reads its
//! body as the pipeline polls it.
//!
//! What hyper's glue held, this holds the same way, since the protocol work stays in `h2`:
//! streams the client resets before they are accepted never reach the pipeline and count
//! towards `max_pending_accept_reset_streams` (rapid reset, CVE-2023-44487); a stream reset
//! after acceptance drops its pipeline future, so its upstream request is cancelled; header
//! lists are bounded while they are decoded (CONTINUATION floods); PING and SETTINGS floods
//! are bounded by h2's own queues.

mod body;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use outpost_config::LimitsConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::Handler;
use super::conns::Activity;
use crate::ctx::ConnInfo;

/// hyper's server defaults, kept so the switch changes nothing on the wire but the 1xx:
/// 1 MiB stream and connection windows (RFC 9113 §6.9.2's 64 KiB is too small for a CDN's
/// bulk downloads), 16 KiB frames (RFC 9113 §4.2's minimum maximum), 400 KiB buffered per
/// stream before its writer waits, 1024 locally caused stream errors before GOAWAY
/// (h2's defence against streams made to fail on purpose), 20 streams reset before acceptance
/// (h2's default, the rapid-reset bound).
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONN_WINDOW: u32 = 1024 * 1024;
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 400 * 1024;
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
const MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// The h2 server settings of one node, built once per config.
#[derive(Clone)]
pub struct H2Settings {
    builder: h2::server::Builder,
    /// A PING every `ping_interval` (`keepalive_timeout / 2`, as hyper was configured) ...
    ping_interval: Duration,
    /// ... answered within `keepalive_timeout`, or the connection is closed.
    ping_timeout: Duration,
}

impl H2Settings {
    pub fn new(limits: &LimitsConfig, max_header_list: u32) -> Self {
        let mut builder = h2::server::Builder::new();
        builder
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW)
            .max_frame_size(MAX_FRAME_SIZE)
            .max_header_list_size(max_header_list)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
            .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
            .max_send_buffer_size(MAX_SEND_BUFFER);
        Self {
            builder,
            ping_interval: (limits.keepalive_timeout / 2).max(Duration::from_millis(1)),
            ping_timeout: limits.keepalive_timeout,
        }
    }
}

/// What every stream of one connection shares.
pub struct ConnCtx<H> {
    pub handler: H,
    pub conn: Arc<ConnInfo>,
    pub alt_svc: Option<http::HeaderValue>,
    pub activity: Arc<Activity>,
}

/// Serves one HTTP/2 connection (after TLS with ALPN `h2`, or after the cleartext preface was
/// seen) until the client closes it, an error ends it, or `shutdown` turns true: then GOAWAY,
/// and the streams in progress finish (RFC 9113 §6.8).
pub async fn serve<T, H>(
    io: T,
    settings: &H2Settings,
    ctx: Arc<ConnCtx<H>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let mut conn = settings.builder.handshake::<_, Bytes>(io).await?;
    let keepalive = keepalive(conn.ping_pong(), settings.ping_interval, settings.ping_timeout);
    tokio::pin!(keepalive);
    let mut closing = false;
    loop {
        tokio::select! {
            accepted = conn.accept() => match accepted {
                Some(Ok((req, respond))) => {
                    // Busy from here until the response body is sent, as with HTTP/1.1.
                    let busy = ctx.activity.begin();
                    tokio::spawn(stream::serve(req, respond, ctx.clone(), busy));
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            r = shutdown.wait_for(|s| *s), if !closing => {
                drop(r);
                closing = true;
                conn.graceful_shutdown();
            }
            () = &mut keepalive, if !closing => {
                tracing::debug!(peer = %ctx.conn.peer, "HTTP/2 keep-alive ping unanswered; closing");
                closing = true;
                conn.abrupt_shutdown(h2::Reason::NO_ERROR);
            }
        }
    }
}

/// Resolves when a PING went unanswered for `timeout` (RFC 9113 §6.7: the peer MUST answer);
/// never when pings are unavailable or the connection is gone (the accept loop sees that).
async fn keepalive(ping_pong: Option<h2::PingPong>, interval: Duration, timeout: Duration) {
    let Some(mut ping_pong) = ping_pong else { return std::future::pending().await };
    loop {
        tokio::time::sleep(interval).await;
        if ping_pong.send_ping(h2::Ping::opaque()).is_err() {
            return std::future::pending().await;
        }
        let pong = std::future::poll_fn(|cx| ping_pong.poll_pong(cx));
        match tokio::time::timeout(timeout, pong).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}
