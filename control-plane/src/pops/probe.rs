//! One health probe: `GET /healthz` on a node's admin listener over HTTP/1.1, the whole
//! exchange (connect, request, response head) within the timeout; 2xx passes.
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

/// Why a probe failed (logged on a node's transition, shown in `GET /v1/pops`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("connect {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("GET http://{addr}/healthz: {reason}")]
    Exchange { addr: SocketAddr, reason: String },
    #[error("GET http://{addr}/healthz: status {status}")]
    Status { addr: SocketAddr, status: StatusCode },
    #[error("GET http://{addr}/healthz: no answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// Probes `addr`; `Ok` when `/healthz` answers 2xx within `timeout`.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    match tokio::time::timeout(timeout, exchange(addr)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout { addr, timeout }),
    }
}

async fn exchange(addr: SocketAddr) -> Result<(), ProbeError> {
    let stream =
        tokio::net::TcpStream::connect(addr).await.map_err(|e| ProbeError::Connect { addr, reason: e.to_string() })?;
    let _ = stream.set_nodelay(true);
    let exchange_error = |e: hyper::Error| ProbeError::Exchange { addr, reason: e.to_string() };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(exchange_error)?;
    // The connection's driver runs beside the request; it ends with this function (the
    // socket closes when both halves are dropped).
    let driver = tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::GET)
        .uri("/healthz")
        .header(header::HOST, addr.to_string())
        .header(header::USER_AGENT, "outpost-control-plane")
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::Exchange { addr, reason: e.to_string() });
    let result = match request {
        Ok(request) => sender.send_request(request).await.map_err(exchange_error),
        Err(error) => Err(error),
    };
    driver.abort();
    let status = result?.status();
    if status.is_success() { Ok(()) } else { Err(ProbeError::Status { addr, status }) }
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let Some(head) = read_head(&mut socket).await else { return };
            assert!(head.starts_with(b"GET /healthz HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&head));
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
        assert_eq!(probe(ok, timeout).await, Ok(()));
        let draining = server(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        assert!(matches!(probe(draining, timeout).await, Err(ProbeError::Status { status, .. }) if status == 503));
        let garbage = server(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert!(matches!(probe(garbage, timeout).await, Err(ProbeError::Exchange { .. })));
        // A port nobody listens on: bind one, note it, close it.
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(matches!(probe(closed, timeout).await, Err(ProbeError::Connect { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_never_answers_times_out() {
        let silent = server(b"").await;
        let timeout = Duration::from_millis(500);
        assert_eq!(probe(silent, timeout).await, Err(ProbeError::Timeout { addr: silent, timeout }));
    }
}
