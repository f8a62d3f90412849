//! HTTP/3 over QUIC (quinn + h3) on the UDP port of the HTTPS listener: the same certificates,
//! chosen by SNI through the same certificate set ([`Certs`]), and every request handed to the same
//! [`pipeline::handle`] as HTTP/1.1 and HTTP/2.

mod admission;
mod body;
mod message;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::Shared;
use h3::server::RequestStream;
use http::{Request, Version};
use http_body_util::BodyExt;
use outpost_config::{LimitsConfig, ListenConfig, QuicRetry};
use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use self::admission::{HandshakeGuard, Handshakes, needs_retry};
use self::body::H3Body;
use super::certs::Certs;
use crate::body::BoxError;
use crate::ctx::{ConnInfo, EarlyData, Protocol};
use crate::interim::{self, InterimHead, InterimReceiver};
use crate::pipeline::{self, NodeState};

type SendStream = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// RFC 9114 §8.1: the application error code of a clean close.
const H3_NO_ERROR: quinn::VarInt = quinn::VarInt::from_u32(0x100);

/// After an HTTP/3 GOAWAY, how long a connection still takes the requests the client sent
/// before it read the GOAWAY (at least three round trips): closing at once would drop them
/// with the connection, although their stream ids are below the GOAWAY's.
const GOAWAY_LINGER: Duration = Duration::from_millis(250);

/// TLS sessions remembered for resumption (and so for 0-RTT): about 1 KiB each.
const SESSION_CACHE_ENTRIES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    #[error("TLS config: {0}")]
    Tls(#[from] rustls::Error),
    #[error("QUIC TLS config: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("limits.keepalive_timeout: {0}")]
    IdleTimeout(#[from] quinn::VarIntBoundsExceeded),
    #[error("listen.https (UDP, for HTTP/3) {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// What the QUIC listener takes from `[listen]` beyond the certificates.
#[derive(Debug, Clone, Copy)]
pub struct QuicOptions {
    pub early_data: bool,
    pub retry: QuicRetry,
    pub retry_threshold: usize,
}

impl QuicOptions {
    pub fn from_config(listen: &ListenConfig) -> Self {
        Self {
            early_data: listen.http3_early_data,
            retry: listen.quic_retry,
            retry_threshold: listen.quic_retry_threshold,
        }
    }
}

/// The QUIC server config: TLS 1.3 only (QUIC requires it), ALPN `h3`, 0-RTT only when
/// configured, and the per-connection limits from `[limits]`.
pub fn server_config(
    certs: Arc<Certs>,
    limits: &LimitsConfig,
    options: QuicOptions,
) -> Result<quinn::ServerConfig, H3Error> {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    tls.alpn_protocols = vec![b"h3".to_vec()];
    // Stateful resumption: a session is taken from the cache when used, so a ticket's early
    // data is accepted at most once per node (RFC 8446 §8.1's single-use tickets). QUIC needs
    // 0 or u32::MAX here (RFC 9001 §4.6.1).
    tls.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    tls.max_early_data_size = if options.early_data { u32::MAX } else { 0 };
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(limits.max_concurrent_streams.into())
        // Control, QPACK encoder and decoder streams, and a little room for extensions.
        .max_concurrent_uni_streams(8u32.into())
        .max_idle_timeout(Some(limits.keepalive_timeout.try_into()?));
    sc.transport_config(Arc::new(transport));
    Ok(sc)
}

/// The QUIC endpoint on `socket` (bound to the HTTPS address: same IP, same port number, UDP),
/// issuing connection IDs tagged `tag` and routing datagrams across a binary upgrade
/// ([`crate::handoff::quic`]).
pub fn endpoint(
    socket: std::net::UdpSocket,
    config: quinn::ServerConfig,
    tag: crate::handoff::quic::Tag,
) -> Result<(quinn::Endpoint, Arc<crate::handoff::quic::HandoffUdp>), H3Error> {
    use crate::handoff::quic::{HandoffUdp, TaggedCids};
    let addr = socket.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let err = |source| H3Error::Bind { addr, source };
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let udp = Arc::new(HandoffUdp::new(runtime.wrap_udp_socket(socket).map_err(err)?));
    let mut endpoint_config = quinn::EndpointConfig::default();
    endpoint_config.cid_generator(move || -> Box<dyn quinn::ConnectionIdGenerator> { Box::new(TaggedCids::new(tag)) });
    let endpoint =
        quinn::Endpoint::new_with_abstract_socket(endpoint_config, Some(config), udp.clone(), runtime).map_err(err)?;
    Ok((endpoint, udp))
}

/// Accept QUIC connections until `shutdown` turns true; then refuse new ones. Connections in
/// flight see the same signal and send GOAWAY; [`drain`] waits for them.
pub async fn serve(
    endpoint: quinn::Endpoint,
    certs: Arc<Certs>,
    state: Arc<NodeState>,
    options: QuicOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = endpoint.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let slots = Arc::new(Semaphore::new(state.limits.max_connections));
    let handshakes = Handshakes::default();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Some(incoming) = incoming else { break };
        // Before any per-connection work: an unproven address costs one stateless packet.
        if needs_retry(
            options.retry,
            incoming.remote_address_validated(),
            handshakes.in_progress(),
            options.retry_threshold,
        ) && incoming.may_retry()
        {
            metrics::counter!(crate::metrics::QUIC_RETRIES).increment(1);
            if let Err(e) = incoming.retry() {
                e.into_incoming().refuse();
            }
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
            tracing::debug!(peer = %incoming.remote_address(), "limits.max_connections reached; QUIC connection refused");
            incoming.refuse();
            continue;
        };
        let handshake = handshakes.start();
        let (state, certs, shutdown) = (state.clone(), certs.clone(), shutdown.clone());
        tokio::spawn(async move {
            metrics::gauge!(crate::metrics::CONNECTIONS).increment(1.0);
            connection(incoming, handshake, local, certs, state, options, shutdown).await;
            metrics::gauge!(crate::metrics::CONNECTIONS).decrement(1.0);
            drop(permit);
        });
    }
    // No new connections from here on; the ones open finish their requests.
    endpoint.set_server_config(None);
}

/// Wait (at most `timeout`) for open connections to finish, then close the endpoint.
pub async fn drain(endpoint: quinn::Endpoint, timeout: Duration) {
    if tokio::time::timeout(timeout, endpoint.wait_idle()).await.is_err() {
        tracing::warn!(?timeout, "HTTP/3 drain timed out; closing remaining connections");
    }
    endpoint.close(0u32.into(), b"shutdown");
    endpoint.wait_idle().await;
}

/// A QUIC connection whose handshake may still be in progress (0.5-RTT with early data on).
struct Established {
    quic: quinn::Connection,
    /// Resolves once the client's Finished has arrived. Until then requests are early data,
    /// which an attacker could have replayed (RFC 8470 §1). `None`: the handshake was complete
    /// before the connection was used.
    handshake: Option<Shared<quinn::ZeroRttAccepted>>,
}

impl Established {
    /// Whether the handshake is still unfinished. Asked synchronously: quinn resolves the future
    /// in the same pass that processes the client's Finished, before any stream it carried is
    /// handed to us, so a request sent after the handshake is never taken for early data.
    fn handshaking(&self) -> bool {
        self.handshake.as_ref().is_some_and(|h| h.clone().now_or_never().is_none())
    }
}

/// The handshake, bounded by `limits.header_read_timeout`. With early data on, the connection is
/// used as soon as the ClientHello is read, and `confirmed` turns true when the handshake ends.
async fn establish(
    incoming: quinn::Incoming,
    handshake: HandshakeGuard,
    early_data: bool,
    timeout: Duration,
) -> Result<Established, String> {
    let mut connecting = incoming.accept().map_err(|e| e.to_string())?;
    if !early_data {
        let quic = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("handshake timed out".into()),
        };
        handshake.done();
        return Ok(Established { quic, handshake: None });
    }
    // The SNI (certificate choice, 421 checks) is known once the ClientHello has been read.
    match tokio::time::timeout(timeout, connecting.handshake_data()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("handshake timed out".into()),
    }
    let (quic, finished) = match connecting.into_0rtt() {
        Ok(pair) => pair,
        // Servers can always go 0.5-RTT; this arm is only for a future quinn that disagrees.
        Err(connecting) => {
            let quic = tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| "handshake timed out".to_string())?
                .map_err(|e| e.to_string())?;
            handshake.done();
            return Ok(Established { quic, handshake: None });
        }
    };
    let finished = finished.shared();
    let (watched, watcher) = (quic.clone(), finished.clone());
    tokio::spawn(async move {
        // Resolves when the handshake completes or the connection dies.
        if tokio::time::timeout(timeout, watcher).await.is_err() {
            watched.close(0u32.into(), b"handshake timed out");
        }
        handshake.done();
    });
    Ok(Established { quic, handshake: Some(finished) })
}

async fn connection(
    incoming: quinn::Incoming,
    handshake: HandshakeGuard,
    local: SocketAddr,
    certs: Arc<Certs>,
    state: Arc<NodeState>,
    options: QuicOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = incoming.remote_address();
    let established = match establish(incoming, handshake, options.early_data, state.limits.header_read_timeout).await {
        Ok(e) => Arc::new(e),
        Err(e) => {
            metrics::counter!(crate::metrics::TLS_HANDSHAKES, "outcome" => "failed", "protocol" => "quic").increment(1);
            return tracing::debug!(%peer, error = %e, "QUIC handshake failed");
        }
    };
    metrics::counter!(crate::metrics::TLS_HANDSHAKES, "outcome" => "ok", "protocol" => "quic").increment(1);
    let quic = established.quic.clone();
    let sni: Option<Arc<str>> = quic
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.server_name)
        .map(|s| s.to_ascii_lowercase().into());
    let cert_hosts = certs.current().site(sni.as_deref()).map(|s| s.hosts.clone());
    let conn = Arc::new(ConnInfo { peer, local, tls: true, sni, cert_hosts });
    let built = h3::server::builder()
        .max_field_section_size((state.limits.max_header_bytes.as_usize() * 2).max(16 * 1024) as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(quic.clone()))
        .await;
    let mut h3c = match built {
        Ok(c) => c,
        Err(e) => return tracing::debug!(%peer, error = %e, "HTTP/3 connection setup failed"),
    };
    let mut requests = JoinSet::new();
    let mut closing = false;
    // After GOAWAY: requests the client sent before it read the GOAWAY are still on their way;
    // the connection takes them until this moment, then closes once none is running.
    let mut linger_until = tokio::time::Instant::now();
    loop {
        let accepted = tokio::select! {
            a = h3c.accept() => Some(a),
            r = shutdown.wait_for(|s| *s), if !closing => {
                drop(r);
                None
            }
            // Reap finished requests; once GOAWAY is out, the linger over and none left, the
            // connection is done (h3 itself would wait for the client to close an idle one).
            Some(_) = requests.join_next(), if !requests.is_empty() => continue,
            () = tokio::time::sleep_until(linger_until), if closing && requests.is_empty() => break,
        };
        let Some(accepted) = accepted else {
            closing = true;
            linger_until = tokio::time::Instant::now() + GOAWAY_LINGER.max(quic.rtt() * 3);
            // GOAWAY: streams already accepted finish, and so do those the client may have
            // sent meanwhile (at most the stream limit); no new ones are taken.
            if let Err(e) = h3c.shutdown(state.limits.max_concurrent_streams as usize).await {
                tracing::debug!(%peer, error = %e, "HTTP/3 GOAWAY failed");
            }
            continue;
        };
        match accepted {
            Ok(Some(resolver)) => {
                let (state, conn, established) = (state.clone(), conn.clone(), established.clone());
                requests.spawn(async move {
                    let (mut req, stream) = match resolver.resolve_request().await {
                        Ok(r) => r,
                        Err(e) => return tracing::debug!(%peer, error = %e, "HTTP/3 request rejected"),
                    };
                    if established.handshaking() {
                        mark_early(&mut req);
                    }
                    request(req, stream, state, conn).await;
                });
            }
            Ok(None) => break,
            Err(e) if e.is_h3_no_error() => break,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "HTTP/3 connection closed with an error");
                break;
            }
        }
    }
    if closing {
        close_after_flush(&quic, requests).await;
    } else {
        // The client went away: requests still running finish their cache work on their own.
        requests.detach_all();
    }
}

/// After GOAWAY and the last response: let the final bytes reach the client (about three round
/// trips, for an acknowledgement and one loss recovery) before closing with H3_NO_ERROR, since
/// closing discards whatever is still unacknowledged.
async fn close_after_flush(quic: &quinn::Connection, mut requests: JoinSet<()>) {
    while requests.join_next().await.is_some() {}
    let grace = (quic.rtt() * 3).max(Duration::from_millis(25));
    tokio::select! {
        _ = tokio::time::sleep(grace) => {}
        _ = quic.closed() => return,
    }
    quic.close(H3_NO_ERROR, b"");
}

/// RFC 8470 §5.1: a request received in early data is forwarded with `Early-Data: 1`, and the
/// pipeline answers an unsafe one with 425.
fn mark_early(req: &mut Request<()>) {
    req.extensions_mut().insert(EarlyData);
    req.headers_mut().insert("early-data", http::HeaderValue::from_static("1"));
}

/// One request stream: the pipeline, then the response head and body frames, then FIN.
async fn request(
    head: Request<()>,
    stream: RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    state: Arc<NodeState>,
    conn: Arc<ConnInfo>,
) {
    let peer = conn.peer;
    let (mut send, mut recv) = stream.split();
    let (mut parts, ()) = head.into_parts();
    parts.version = Version::HTTP_3;
    // RFC 9114 §4.1.2: a malformed request is not forwarded; the stream is reset with
    // H3_MESSAGE_ERROR.
    if let Some(why) = message::malformed(&parts.headers) {
        recv.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
        send.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
        return pipeline::log_rejected(&state, &conn, Protocol::Http3, 400, why);
    }
    let malformed = Arc::new(AtomicBool::new(false));
    let declared = crate::http::declared_length(&parts.headers);
    let (hints, interim) = interim::channel();
    parts.extensions.insert(hints);
    // Answered here, never forwarded (see `informational::expects_continue`).
    let expect = super::informational::expects_continue(&parts.headers);
    parts.headers.remove(http::header::EXPECT);
    let mut body = H3Body::new(recv, declared, malformed.clone());
    let continue_wanted = body.awaits_continue(expect).then(|| Arc::new(Notify::new()));
    if let Some(wanted) = &continue_wanted {
        body.tell_when_read(wanted.clone());
    }
    let req = Request::from_parts(parts, body);
    let resp = with_interim(&mut send, interim, continue_wanted, pipeline::handle(state, conn, req)).await;
    if malformed.load(Ordering::Acquire) {
        // The body disagreed with its Content-Length; the request was logged as a 400.
        return send.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
    }
    if let Err(e) = respond(&mut send, resp).await {
        tracing::debug!(%peer, error = %e, "HTTP/3 response not completed");
        send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
    }
}

/// Runs the pipeline for one request while writing the interim heads it queues (RFC 9114
/// §4.1: "zero or more interim responses" on the request stream, each a HEADERS frame, before
/// the final one), in order, then any still queued; dropping the receiver then refuses more.
/// `continue_wanted` is told when the pipeline first reads a body the client holds back for
/// `100 Continue`, which is then sent (RFC 9110 §10.1.1: this hop's own answer, never the
/// upstream's); a request answered without reading it gets none. A head that cannot be
/// written (the client reset the stream) ends interim writing only: the final response meets
/// the same stream and reports its own error.
async fn with_interim<F>(
    send: &mut SendStream,
    mut interim: InterimReceiver,
    continue_wanted: Option<Arc<Notify>>,
    handling: F,
) -> F::Output
where
    F: std::future::Future,
{
    let mut handling = std::pin::pin!(handling);
    let mut writable = true;
    let wanted = async {
        match &continue_wanted {
            Some(w) => w.notified().await,
            None => std::future::pending().await,
        }
    };
    let mut wanted = std::pin::pin!(wanted);
    let mut continue_sent = false;
    let resp = loop {
        tokio::select! {
            biased;
            () = &mut wanted, if writable && !continue_sent => {
                continue_sent = true;
                let head = InterimHead { status: http::StatusCode::CONTINUE, headers: http::HeaderMap::new() };
                writable = write_interim(send, head).await;
            }
            Some(head) = interim.recv(), if writable => writable = write_interim(send, head).await,
            resp = &mut handling => break resp,
        }
    };
    interim.close();
    while writable && let Ok(head) = interim.try_recv() {
        writable = write_interim(send, head).await;
    }
    resp
}

async fn write_interim(send: &mut SendStream, head: InterimHead) -> bool {
    let mut resp = http::Response::new(());
    *resp.status_mut() = head.status;
    *resp.headers_mut() = head.headers;
    match send.send_response(resp).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/3 interim response not written");
            false
        }
    }
}

async fn respond(send: &mut SendStream, resp: http::Response<crate::body::EdgeBody>) -> Result<(), BoxError> {
    let (parts, mut body) = resp.into_parts();
    send.send_response(http::Response::from_parts(parts, ())).await?;
    while let Some(frame) = body.frame().await {
        // Trailers are not forwarded (the pipeline does not produce them).
        if let Ok(data) = frame?.into_data()
            && !data.is_empty()
        {
            send.send_data(data).await?;
        }
    }
    send.finish().await?;
    Ok(())
}
