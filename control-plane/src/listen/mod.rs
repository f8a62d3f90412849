//! The API's accept loop: HTTP/1.1 and h2c on one port, with a connection cap
//! (`limits.max_connections`, the longest-idle connection closed first when full), a timeout
//! from accept to the first request's headers (`limits.header_read_timeout`) and between
//! requests (`limits.keepalive_timeout`), and a graceful stop. `axum::serve` has none of these:
//! 20,400 connections that sent nothing exhausted the process's file descriptors.

mod conns;
mod tracked;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use self::conns::{Admission, Conns, Slot, Timeouts};
use self::tracked::TrackedBody;
use crate::settings::Limits;

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the connections
/// open to finish their requests. `dead_peer`: how long data may stay unacknowledged before the
/// kernel ends a connection (TCP_USER_TIMEOUT, RFC 5482).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    dead_peer: std::time::Duration,
    shutdown: impl Future<Output = ()>,
) {
    let conns = Conns::new(limits.max_connections);
    let timeouts = Timeouts { first_request: limits.header_read_timeout, keepalive: limits.keepalive_timeout };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = admit(&conns, peer) else { continue };
        // A node's stream is one long response with a heartbeat every interval. A node whose host
        // vanished without a FIN (power loss, partition) leaves those writes unacknowledged: the
        // kernel then ends the connection, the stream ends, and the node id it held is free for
        // the node's next connection (one node, one identity) within this bound, not after the
        // default retransmission timeout of about 15 minutes.
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_user_timeout(Some(dead_peer)) {
            tracing::debug!(%peer, error = %e, "TCP_USER_TIMEOUT not set");
        }
        let connection = builder.clone();
        let watcher = graceful.watcher();
        let router = router.clone();
        tokio::spawn(async move {
            let activity = slot.activity.clone();
            let service = service_fn(move |mut req: http::Request<Incoming>| {
                // Busy from here until the response body is sent (or the request abandoned).
                let busy = activity.begin();
                // Who is calling: a node stream's holder is reported to a second claimant.
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                let mut router = router.clone();
                async move {
                    let resp = tower_service::Service::call(&mut router, req).await;
                    resp.map(|r| r.map(|body| TrackedBody::new(body, busy)))
                }
            });
            let serving = watcher.watch(connection.serve_connection(TokioIo::new(tcp), service));
            watch(slot, peer, timeouts, serving).await;
        });
    }
    graceful.shutdown().await;
}

fn admit(conns: &Arc<Conns>, peer: SocketAddr) -> Option<Slot> {
    match conns.admit() {
        Admission::Admitted(slot) => Some(slot),
        Admission::MadeRoom(slot) => {
            tracing::debug!(%peer, "limits.max_connections reached; closed the connection idle the longest");
            Some(slot)
        }
        Admission::Refused => {
            tracing::warn!(%peer, "limits.max_connections reached and no connection idle; connection closed");
            None
        }
    }
}

/// Serves until the connection ends or the watchdog closes it.
async fn watch<F: Future>(slot: Slot, peer: SocketAddr, timeouts: Timeouts, serving: F) {
    tokio::select! {
        _ = serving => {}
        closed = slot.activity.expired(timeouts) => {
            tracing::debug!(%peer, reason = closed.as_str(), "idle connection closed");
        }
    }
}
