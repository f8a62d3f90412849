//! Accept phase: TCP listeners (cleartext HTTP/1.1 + h2c with prior knowledge; TLS with ALPN
//! h2 / http/1.1), connection limits (the longest-idle connection closed first when full),
//! first-request and keep-alive timeouts from accept on ([`conns`]), and graceful shutdown.
//! Every request is handed to [`crate::pipeline::handle`].

mod asterisk;
pub mod certs;
pub mod conns;
mod detect;
mod h1;
pub mod h2;
pub mod h3;
mod informational;
#[cfg(test)]
mod interim_tests;
pub mod tls;
pub mod tls_check;
mod tracked;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use outpost_config::LimitsConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::http::body_limit::{BodyTooLarge, LengthMismatch, LimitedBody};
pub use asterisk::{Asterisk, asterisk, server_options};
pub use informational::takes_interim;
pub use tracked::TrackedBody;

use self::conns::{Activity, Admission, Conns, Slot, Timeouts};

use crate::body::{BoxError, EdgeBody};
use crate::ctx::ConnInfo;
use crate::pipeline::{self, NodeState};
use http::{Request, Response};

/// hyper's own parse buffer: a hard stop well above `max_header_bytes`, which the pipeline
/// enforces itself so the client gets a 431 with a body naming the request.
fn parse_buffer(limits: &LimitsConfig) -> usize {
    (limits.max_header_bytes.as_usize() * 2).max(16 * 1024)
}

/// The addresses the node actually listens on (port 0 in config → the port the OS chose).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BoundAddrs {
    pub http: Option<std::net::SocketAddr>,
    pub https: Option<std::net::SocketAddr>,
    pub admin: std::net::SocketAddr,
}

/// How connections are served: HTTP/1.1 by hyper, HTTP/2 by the `h2` glue of [`h2`] (which can
/// send interim responses). Cleartext connections are told apart by the h2 preface
/// ([`detect`]); TLS ones by ALPN.
pub struct ConnBuilders {
    h1: http1::Builder,
    pub h2: h2::H2Settings,
}

impl ConnBuilders {
    pub fn new(limits: &LimitsConfig) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(parse_buffer(limits))
            .max_headers(limits.max_headers)
            .keep_alive(true);
        let h2 = h2::H2Settings::new(limits, u32::try_from(parse_buffer(limits)).unwrap_or(u32::MAX));
        Self { h1, h2 }
    }
}

pub struct Tls {
    /// The server config (its resolver is `certs`), built once.
    pub config: Arc<rustls::ServerConfig>,
    /// The certificate set in force, swapped without a restart.
    pub certs: Arc<certs::Certs>,
    /// `Alt-Svc: h3=":PORT"; ma=N` added to every response when HTTP/3 is on.
    pub alt_svc: Option<http::HeaderValue>,
}

/// The `Alt-Svc` value advertising HTTP/3 on `port` for `max_age` (RFC 7838, RFC 9114 §3.1.1).
pub fn alt_svc(port: u16, max_age: std::time::Duration) -> http::HeaderValue {
    http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma={}", max_age.as_secs().max(1)))
        .unwrap_or(http::HeaderValue::from_static("clear"))
}

/// Accept connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    state: Arc<NodeState>,
    mut shutdown: watch::Receiver<bool>,
    graceful: Arc<GracefulShutdown>,
) {
    let conns = Conns::new(state.limits.max_connections);
    let timeouts = timeouts(&state.limits);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = admit(&conns, peer, "limits.max_connections") else { continue };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(peer);
        let state = state.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let serving = Serving { handler: state, watcher, activity: slot.activity.clone(), shutdown: shutdown.clone() };
        watched(slot, peer, timeouts, true, connection(tcp, peer, local, tls, serving));
    }
}

/// The watchdog's timeouts from `[limits]`.
pub fn timeouts(limits: &LimitsConfig) -> Timeouts {
    Timeouts { first_request: limits.header_read_timeout, keepalive: limits.keepalive_timeout }
}

/// A slot for a connection from `peer`, or `None` (counted, logged) when `bound` is reached
/// and every connection is busy.
pub fn admit(conns: &Arc<Conns>, peer: SocketAddr, bound: &'static str) -> Option<Slot> {
    match conns.admit() {
        Admission::Admitted(slot) => Some(slot),
        Admission::MadeRoom(slot) => {
            metrics::counter!(crate::metrics::CONNECTIONS_CLOSED, "reason" => "evicted").increment(1);
            tracing::debug!(%peer, bound, "full; closed the connection idle the longest to make room");
            Some(slot)
        }
        Admission::Refused => {
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
            tracing::debug!(%peer, bound, "full and no connection idle; connection closed");
            None
        }
    }
}

/// Runs `serving` in its own task until it ends or the watchdog closes it (idle too long, or
/// evicted); the slot is given back either way. Client connections (`client`) count in
/// `outpost_open_connections`; admin connections do not.
pub fn watched(
    slot: Slot,
    peer: SocketAddr,
    timeouts: Timeouts,
    client: bool,
    serving: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        let open = if client { 1.0 } else { 0.0 };
        metrics::gauge!(crate::metrics::CONNECTIONS).increment(open);
        tokio::select! {
            () = serving => {}
            closed = slot.activity.expired(timeouts) => {
                // Evictions are counted at admission.
                if closed != conns::Closed::Evicted {
                    metrics::counter!(crate::metrics::CONNECTIONS_CLOSED, "reason" => closed.as_str()).increment(1);
                }
                tracing::debug!(%peer, reason = closed.as_str(), "idle connection closed");
            }
        }
        metrics::gauge!(crate::metrics::CONNECTIONS).decrement(open);
        drop(slot);
    });
}

/// What serves the requests a listener reads: the pipeline, or a test's stand-in.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle<B>(&self, conn: Arc<ConnInfo>, req: Request<B>) -> impl Future<Output = Response<EdgeBody>> + Send
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>;

    /// A request the HTTP/1.1 parser refused before `handle` (400, 431): its log line.
    fn unparsed(&self, conn: &Arc<ConnInfo>, status: u16, error: &str);
}

impl Handler for Arc<NodeState> {
    fn handle<B>(&self, conn: Arc<ConnInfo>, req: Request<B>) -> impl Future<Output = Response<EdgeBody>> + Send
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        pipeline::handle(self.clone(), conn, req)
    }

    fn unparsed(&self, conn: &Arc<ConnInfo>, status: u16, error: &str) {
        pipeline::log_unparsed(self, conn, status, error);
    }
}

/// What serving one connection needs beyond its socket.
pub struct Serving<H> {
    pub handler: H,
    /// Held until the connection ends, so a graceful shutdown waits for it.
    pub watcher: Watcher,
    pub activity: Arc<Activity>,
    pub shutdown: watch::Receiver<bool>,
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<Arc<Tls>>,
    serving: Serving<Arc<NodeState>>,
) {
    let state = serving.handler.clone();
    let builders = &state.builders;
    let Some(tls) = tls else {
        let conn = Arc::new(ConnInfo { peer, local, tls: false, sni: None, cert_hosts: None });
        // h2c with prior knowledge (RFC 9113 §3.3) or HTTP/1.1 (the `h2c` upgrade of RFC 7540
        // §3.2 was removed by RFC 9113 and is not offered).
        match detect::detect(tcp).await {
            Ok((detect::Detected::H2, io)) => serve_h2(io, conn, None, &builders.h2, serving).await,
            Ok((_, io)) => serve_h1(io, conn, None, &builders.h1, serving).await,
            Err(e) => tracing::debug!(%peer, error = %e, "connection failed before its first request"),
        }
        return;
    };
    let timeout = state.limits.header_read_timeout;
    let accepted = match certs::accept(tcp, &tls.certs, tls.config.clone(), timeout).await {
        Ok(accepted) => accepted,
        Err((outcome, error)) => {
            return tracing::debug!(%peer, outcome = outcome.label(), %error, "TLS handshake failed");
        }
    };
    let stream = accepted.stream;
    let alpn = stream.get_ref().1.alpn_protocol();
    // RFC 8737 §3: a TLS-ALPN-01 validation ends with the handshake; no data follows.
    if alpn == Some(crate::acme::ACME_TLS_ALPN) {
        return tracing::debug!(%peer, "ACME TLS-ALPN-01 validation handshake done; closing");
    }
    let h2 = alpn == Some(b"h2");
    let (sni, cert_hosts) = (accepted.sni, Some(accepted.cert_hosts));
    let conn = Arc::new(ConnInfo { peer, local, tls: true, sni, cert_hosts });
    let alt_svc = tls.alt_svc.clone();
    if h2 {
        serve_h2(stream, conn, alt_svc, &builders.h2, serving).await;
    } else {
        serve_h1(stream, conn, alt_svc, &builders.h1, serving).await;
    }
}

/// One HTTP/2 connection, through the `h2` glue of [`h2`].
pub async fn serve_h2<I, H>(
    io: I,
    conn: Arc<ConnInfo>,
    alt_svc: Option<http::HeaderValue>,
    settings: &h2::H2Settings,
    serving: Serving<H>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let Serving { handler, watcher, activity, shutdown } = serving;
    let peer = conn.peer;
    let ctx = Arc::new(h2::ConnCtx { handler, conn, alt_svc, activity });
    if let Err(e) = h2::serve(io, settings, ctx, shutdown).await {
        tracing::debug!(%peer, error = %e, "HTTP/2 connection closed with an error");
    }
    drop(watcher);
}

/// One HTTP/1.x connection, through hyper, with interim responses written beside it ([`h1`]).
pub async fn serve_h1<I, H>(
    io: I,
    conn: Arc<ConnInfo>,
    alt_svc: Option<http::HeaderValue>,
    builder: &http1::Builder,
    serving: Serving<H>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let Serving { handler, watcher, activity, shutdown } = serving;
    let peer = conn.peer;
    let (io, interim) = h1::split(io);
    let svc_handler = handler.clone();
    let svc_conn = conn.clone();
    let service = service_fn(move |mut req: Request<hyper::body::Incoming>| {
        // Busy from here until the response body is sent (or the request abandoned).
        let busy = activity.begin();
        let handler = svc_handler.clone();
        let conn = svc_conn.clone();
        let alt_svc = alt_svc.clone();
        let interim = interim.clone();
        let draining = shutdown.clone();
        async move {
            // RFC 9110 §10.1.1: hyper answers `Expect: 100-continue` when the pipeline first
            // reads the body; the next hop never sees the expectation (nginx drops it too).
            req.headers_mut().remove(http::header::EXPECT);
            // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client, so no sender for its requests.
            let mut resp = if takes_interim(req.version()) {
                let (tx, rx) = crate::interim::channel();
                req.extensions_mut().insert(tx);
                interim.around(handler.handle(conn, req), rx).await
            } else {
                handler.handle(conn, req).await
            };
            if let Some(v) = alt_svc {
                resp.headers_mut().insert(http::header::ALT_SVC, v);
            }
            // Draining: this is the connection's last response (RFC 9112 §9.6), so the client
            // opens a new connection, to whichever process accepts now, instead of sending
            // its next request into a connection about to close.
            if *draining.borrow() {
                resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp.map(|body| TrackedBody::new(body, busy)))
        }
    });
    let served = watcher.watch(builder.serve_connection(TokioIo::new(io), service)).await;
    if let Err(e) = served {
        // hyper answered a request it could not parse itself (400, or 431 past its buffer):
        // log it like any other request.
        if let Some(status) = parse_error_status(&e) {
            handler.unparsed(&conn, status, &e.to_string());
        } else {
            tracing::debug!(%peer, error = %e, "connection closed with an error");
        }
    }
}

fn parse_error_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let h = e.downcast_ref::<hyper::Error>()?;
    if h.is_parse_too_large() {
        Some(431)
    } else if h.is_parse() {
        Some(400)
    } else {
        None
    }
}
