//! One health probe: `GET /healthz` on a node's admin listener over HTTP/1.1, the whole
//! exchange (connect, request, response head) within the timeout; 2xx passes. It carries
//! `Authorization: Bearer` with `health.node_admin_token_file`'s token when one is set; a 401
//! says which side of that to fix.
//!
//! Only the `addresses.admin` a node registered is ever probed, with a fixed request: nothing
//! a DNS client or API caller sends chooses where the control plane connects. The body is not
//! read and redirects are not followed.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use super::settings::ProbeToken;

/// Why a probe failed (logged on a node's transition, shown in `GET /v1/pops`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("connect {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("GET http://{addr}/healthz: {reason}")]
    Exchange { addr: SocketAddr, reason: String },
    #[error("GET http://{addr}/healthz: status {status}")]
    Status { addr: SocketAddr, status: StatusCode },
    /// 401 (RFC 9110 §15.5.2): the node wants its admin token.
    #[error("GET http://{addr}/healthz: status 401: {}", if *.sent {
        "the node refused health.node_admin_token_file's token (is it the node's listen.admin_token_file?)"
    } else {
        "set health.node_admin_token_file (the node's listen.admin_token_file)"
    })]
    Unauthorized { addr: SocketAddr, sent: bool },
    #[error("GET http://{addr}/healthz: no answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// Probes `addr`, with `token` as the credential if given; `Ok` when `/healthz` answers 2xx
/// within `timeout`.
pub async fn probe(addr: SocketAddr, timeout: Duration, token: Option<&ProbeToken>) -> Result<(), ProbeError> {
    match tokio::time::timeout(timeout, exchange(addr, token)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout { addr, timeout }),
    }
}

async fn exchange(addr: SocketAddr, token: Option<&ProbeToken>) -> Result<(), ProbeError> {
    let stream =
        tokio::net::TcpStream::connect(addr).await.map_err(|e| ProbeError::Connect { addr, reason: e.to_string() })?;
    let _ = stream.set_nodelay(true);
    let exchange_error = |e: hyper::Error| ProbeError::Exchange { addr, reason: e.to_string() };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(exchange_error)?;
    // The connection's driver runs beside the request; it ends with this function (the
    // socket closes when both halves are dropped).
    let driver = tokio::spawn(connection);
    let authorization = token.and_then(ProbeToken::authorization);
    let sent = authorization.is_some();
    let result = match request(addr, authorization) {
        Ok(request) => sender.send_request(request).await.map_err(exchange_error),
        Err(error) => Err(error),
    };
    driver.abort();
    verdict(addr, result?.status(), sent)
}

fn request(addr: SocketAddr, authorization: Option<http::HeaderValue>) -> Result<Request<Empty<Bytes>>, ProbeError> {
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri("/healthz")
        .header(header::HOST, addr.to_string())
        .header(header::USER_AGENT, "outpost-control-plane")
        .header(header::CONNECTION, "close");
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(Empty::<Bytes>::new()).map_err(|e| ProbeError::Exchange { addr, reason: e.to_string() })
}

/// 2xx passes (RFC 9110 §15.3); 401 names the credential to fix; anything else fails with
/// its status.
fn verdict(addr: SocketAddr, status: StatusCode, sent: bool) -> Result<(), ProbeError> {
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::UNAUTHORIZED => Err(ProbeError::Unauthorized { addr, sent }),
        status => Err(ProbeError::Status { addr, status }),
    }
}

/// Reads a request head off `socket` (for the tests' `/healthz` servers); `None` when the
/// peer closes first.
#[cfg(test)]
pub(crate) async fn read_head(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A one-connection HTTP server that answers `reply` (raw bytes) after reading the head,
    /// or never answers when `reply` is empty.
    async fn server(reply: &'static [u8]) -> SocketAddr {
        server_expecting(reply, None).await
    }

    /// [`server`], which also checks the request's `authorization` line (`None`: absent).
    async fn server_expecting(reply: &'static [u8], authorization: Option<&'static str>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let Some(head) = read_head(&mut socket).await else { return };
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            assert!(text.starts_with("get /healthz http/1.1\r\n"), "{text}");
            let line = text.lines().find_map(|l| l.strip_prefix("authorization: ").map(str::to_owned));
            assert_eq!(line.as_deref(), authorization, "{text}");
            if reply.is_empty() {
                std::future::pending::<()>().await;
            }
            let _ = socket.write_all(reply).await;
        });
        addr
    }

    #[tokio::test]
    async fn a_2xx_passes_anything_else_fails_with_its_reason() {
        let timeout = Duration::from_secs(5);
        let ok = server(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n").await;
        assert_eq!(probe(ok, timeout, None).await, Ok(()));
        let draining = server(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        assert!(
            matches!(probe(draining, timeout, None).await, Err(ProbeError::Status { status, .. }) if status == 503)
        );
        let garbage = server(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert!(matches!(probe(garbage, timeout, None).await, Err(ProbeError::Exchange { .. })));
        // A port nobody listens on: bind one, note it, close it.
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(matches!(probe(closed, timeout, None).await, Err(ProbeError::Connect { .. })));
    }

    #[tokio::test]
    async fn the_token_goes_as_a_bearer_credential_and_a_401_names_the_field() {
        let timeout = Duration::from_secs(5);
        let token = ProbeToken::new("0123456789abcdef0123").unwrap_or_else(|e| panic!("{e}"));
        // RFC 6750 §2.1: `Authorization: Bearer TOKEN` (lower-cased by the server above).
        let ok = server_expecting(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", Some("bearer 0123456789abcdef0123"));
        assert_eq!(probe(ok.await, timeout, Some(&token)).await, Ok(()));
        let refused = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
        let without = server(refused).await;
        let error = probe(without, timeout, None).await;
        assert_eq!(error, Err(ProbeError::Unauthorized { addr: without, sent: false }));
        let shown = error.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(shown.contains("status 401: set health.node_admin_token_file"), "{shown}");
        let wrong = server_expecting(refused, Some("bearer 0123456789abcdef0123")).await;
        let error = probe(wrong, timeout, Some(&token)).await;
        assert_eq!(error, Err(ProbeError::Unauthorized { addr: wrong, sent: true }));
        let shown = error.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(shown.contains("refused health.node_admin_token_file's token"), "{shown}");
        assert!(!shown.contains("0123456789abcdef0123"), "the token is never shown: {shown}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_never_answers_times_out() {
        let silent = server(b"").await;
        let timeout = Duration::from_millis(500);
        assert_eq!(probe(silent, timeout, None).await, Err(ProbeError::Timeout { addr: silent, timeout }));
    }
}
