//! HTTP/3 over QUIC (quinn + h3) on the UDP port of the HTTPS listener: the same certificates,
//! chosen by SNI through the same [`CertResolver`], and every request handed to the same
//! [`pipeline::handle`] as HTTP/1.1 and HTTP/2.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http::{Request, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use outpost_config::LimitsConfig;
use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use tokio::sync::{Semaphore, watch};

use super::tls::CertResolver;
use crate::body::BoxError;
use crate::ctx::ConnInfo;
use crate::pipeline::{self, NodeState};

type RecvStream = RequestStream<h3_quinn::RecvStream, Bytes>;
type SendStream = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

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

/// The QUIC server config: TLS 1.3 only (QUIC requires it), ALPN `h3`, no 0-RTT, and the
/// per-connection limits from `[limits]`.
pub fn server_config(resolver: Arc<CertResolver>, limits: &LimitsConfig) -> Result<quinn::ServerConfig, H3Error> {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls.max_early_data_size = 0; // 0-RTT off: early data is replayable.
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

/// Bind the QUIC endpoint on `addr` (the bound HTTPS address: same IP, same port number, UDP).
pub fn bind(addr: SocketAddr, config: quinn::ServerConfig) -> Result<quinn::Endpoint, H3Error> {
    quinn::Endpoint::server(config, addr).map_err(|source| H3Error::Bind { addr, source })
}

/// Accept QUIC connections until `shutdown` turns true; then refuse new ones. Connections in
/// flight see the same signal and send GOAWAY; [`drain`] waits for them.
pub async fn serve(
    endpoint: quinn::Endpoint,
    resolver: Arc<CertResolver>,
    state: Arc<NodeState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = endpoint.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let slots = Arc::new(Semaphore::new(state.limits.max_connections));
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Some(incoming) = incoming else { break };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
            tracing::debug!(peer = %incoming.remote_address(), "limits.max_connections reached; QUIC connection refused");
            incoming.refuse();
            continue;
        };
        let (state, resolver, shutdown) = (state.clone(), resolver.clone(), shutdown.clone());
        tokio::spawn(async move {
            metrics::gauge!(crate::metrics::CONNECTIONS).increment(1.0);
            connection(incoming, local, resolver, state, shutdown).await;
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

async fn connection(
    incoming: quinn::Incoming,
    local: SocketAddr,
    resolver: Arc<CertResolver>,
    state: Arc<NodeState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = incoming.remote_address();
    let handshake = tokio::time::timeout(state.limits.header_read_timeout, incoming).await;
    let quic = match handshake {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "QUIC handshake failed"),
        Err(_) => return tracing::debug!(%peer, "QUIC handshake timed out"),
    };
    let sni: Option<Arc<str>> = quic
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.server_name)
        .map(|s| s.to_ascii_lowercase().into());
    let cert_hosts = resolver.site(sni.as_deref()).map(|s| s.hosts.clone());
    let conn = Arc::new(ConnInfo { peer, local, tls: true, sni, cert_hosts });
    let built = h3::server::builder()
        .max_field_section_size((state.limits.max_header_bytes.as_usize() * 2).max(16 * 1024) as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(quic))
        .await;
    let mut h3c = match built {
        Ok(c) => c,
        Err(e) => return tracing::debug!(%peer, error = %e, "HTTP/3 connection setup failed"),
    };
    let mut closing = false;
    loop {
        let accepted = tokio::select! {
            a = h3c.accept() => Some(a),
            r = shutdown.wait_for(|s| *s), if !closing => {
                drop(r);
                None
            }
        };
        let Some(accepted) = accepted else {
            closing = true;
            // GOAWAY: streams already accepted finish; accept() returns None once they have.
            if let Err(e) = h3c.shutdown(0).await {
                tracing::debug!(%peer, error = %e, "HTTP/3 GOAWAY failed");
            }
            continue;
        };
        match accepted {
            Ok(Some(resolver)) => {
                let (state, conn) = (state.clone(), conn.clone());
                tokio::spawn(async move {
                    let (req, stream) = match resolver.resolve_request().await {
                        Ok(r) => r,
                        Err(e) => return tracing::debug!(%peer, error = %e, "HTTP/3 request rejected"),
                    };
                    request(req, stream, state, conn).await;
                });
            }
            Ok(None) => break,
            Err(e) if e.is_h3_no_error() => break,
            Err(e) => return tracing::debug!(%peer, error = %e, "HTTP/3 connection closed with an error"),
        }
    }
}

/// One request stream: the pipeline, then the response head and body frames, then FIN.
async fn request(
    head: Request<()>,
    stream: RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    state: Arc<NodeState>,
    conn: Arc<ConnInfo>,
) {
    let peer = conn.peer;
    let (mut send, recv) = stream.split();
    let (mut parts, ()) = head.into_parts();
    parts.version = Version::HTTP_3;
    let req = Request::from_parts(parts, H3Body::new(recv));
    let resp = pipeline::handle(state, conn, req).await;
    if let Err(e) = respond(&mut send, resp).await {
        tracing::debug!(%peer, error = %e, "HTTP/3 response not completed");
        send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
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

/// The request body, read from the h3 stream as the pipeline polls it (QUIC flow control
/// bounds what the client can send ahead). Trailers are ignored.
struct H3Body {
    recv: RecvStream,
    /// What the probe in [`H3Body::new`] read (data or an error), handed out first.
    first: Option<Result<Bytes, BoxError>>,
    done: bool,
}

impl H3Body {
    /// Probe the stream once without waiting: a GET's HEADERS frame usually arrives with FIN, and
    /// a body known to be empty lets the upstream client send no body and retry safely.
    fn new(mut recv: RecvStream) -> Self {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (first, done) = match recv.poll_recv_data(&mut cx) {
            Poll::Ready(Ok(Some(mut buf))) => (Some(Ok(buf.copy_to_bytes(buf.remaining()))), false),
            Poll::Ready(Ok(None)) => (None, true),
            Poll::Ready(Err(e)) => (Some(Err(Box::new(e) as BoxError)), true),
            Poll::Pending => (None, false),
        };
        Self { recv, first, done }
    }
}

/// RFC 9114 §4.1.2: a response may be complete before the request body is (a 413, a cache
/// hit for a request with a body); the rest of the body is then refused with H3_NO_ERROR, so
/// the client reads the response instead of treating the stream as failed.
impl Drop for H3Body {
    fn drop(&mut self) {
        if !self.done {
            self.recv.stop_sending(h3::error::Code::H3_NO_ERROR);
        }
    }
}

impl http_body::Body for H3Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first.map(Frame::data)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        match self.recv.poll_recv_data(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(mut buf))) => Poll::Ready(Some(Ok(Frame::data(buf.copy_to_bytes(buf.remaining()))))),
            Poll::Ready(Ok(None)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.first.is_none()
    }
}
