//! Accept phase: TCP listeners (cleartext HTTP/1.1 + h2c with prior knowledge; TLS with ALPN
//! h2 / http/1.1), connection limits (the longest-idle connection closed first when full),
//! first-request and keep-alive timeouts from accept on ([`conns`]), and graceful shutdown.
//! Every request is handed to [`crate::pipeline::handle`].

mod asterisk;
mod body_limit;
pub mod conns;
pub mod h3;
pub mod tls;
pub mod tls_check;
mod tracked;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use outpost_config::LimitsConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use asterisk::{Asterisk, asterisk, server_options};
pub use body_limit::{BodyTooLarge, LengthMismatch, LimitedBody};
pub use tracked::TrackedBody;

use self::conns::{Activity, Admission, Conns, Slot, Timeouts};

use crate::ctx::ConnInfo;
use crate::pipeline::{self, NodeState};

/// hyper's own parse buffer: a hard stop well above `max_header_bytes`, which the pipeline
/// enforces itself so the client gets a 431 with a body naming the request.
fn parse_buffer(limits: &LimitsConfig) -> usize {
    (limits.max_header_bytes.as_usize() * 2).max(16 * 1024)
}

/// The three ways a connection is served: auto-detect (cleartext: HTTP/1.1 or h2c prior
/// knowledge), and HTTP/1.1-only or h2-only as TLS ALPN decided.
pub struct ConnBuilders {
    auto: auto::Builder<TokioExecutor>,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl ConnBuilders {
    pub fn new(limits: &LimitsConfig) -> Self {
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(parse_buffer(limits))
            .max_headers(limits.max_headers)
            .keep_alive(true);
        b.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(parse_buffer(limits) as u32)
            .keep_alive_interval(Some(limits.keepalive_timeout / 2))
            .keep_alive_timeout(limits.keepalive_timeout);
        Self { auto: b.clone(), h1: b.clone().http1_only(), h2: b.http2_only() }
    }
}

pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub resolver: Arc<tls::CertResolver>,
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
        let activity = slot.activity.clone();
        watched(slot, peer, timeouts, true, connection(tcp, peer, local, tls, state, watcher, activity));
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

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<Arc<Tls>>,
    state: Arc<NodeState>,
    watcher: Watcher,
    activity: Arc<Activity>,
) {
    let Some(tls) = tls else {
        let conn = Arc::new(ConnInfo { peer, local, tls: false, sni: None, cert_hosts: None });
        let auto = &state.builders.auto;
        serve_http(auto, TokioIo::new(tcp), conn, None, state.clone(), watcher, activity).await;
        return;
    };
    let handshake = tokio::time::timeout(state.limits.header_read_timeout, tls.acceptor.accept(tcp)).await;
    let stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    let (_, session) = stream.get_ref();
    let h2 = session.alpn_protocol() == Some(b"h2");
    let sni: Option<Arc<str>> = session.server_name().map(|s| s.to_ascii_lowercase().into());
    let cert_hosts = tls.resolver.site(sni.as_deref()).map(|s| s.hosts.clone());
    let conn = Arc::new(ConnInfo { peer, local, tls: true, sni, cert_hosts });
    let builder = if h2 { &state.builders.h2 } else { &state.builders.h1 };
    let alt_svc = tls.alt_svc.clone();
    serve_http(builder, TokioIo::new(stream), conn, alt_svc, state.clone(), watcher, activity).await;
}

async fn serve_http<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    conn: Arc<ConnInfo>,
    alt_svc: Option<http::HeaderValue>,
    state: Arc<NodeState>,
    watcher: Watcher,
    activity: Arc<Activity>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let svc_state = state.clone();
    let svc_conn = conn.clone();
    let service = service_fn(move |req| {
        // Busy from here until the response body is sent (or the request abandoned).
        let busy = activity.begin();
        let state = svc_state.clone();
        let conn = svc_conn.clone();
        let alt_svc = alt_svc.clone();
        async move {
            let mut resp = pipeline::handle(state, conn, req).await;
            if let Some(v) = alt_svc {
                resp.headers_mut().insert(http::header::ALT_SVC, v);
            }
            Ok::<_, Infallible>(resp.map(|body| TrackedBody::new(body, busy)))
        }
    });
    let served = watcher.watch(builder.serve_connection(io, service)).await;
    if let Err(e) = served {
        // hyper answered a request it could not parse itself (400, or 431 past its buffer):
        // log it like any other request.
        if let Some(status) = parse_error_status(e.as_ref()) {
            pipeline::log_unparsed(&state, &conn, status, &e.to_string());
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
