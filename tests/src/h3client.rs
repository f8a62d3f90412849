//! An HTTP/3 client (quinn + h3) for the node's QUIC listener: trusts the test CA, sends the
//! given SNI, offers ALPN `h3`. Every exchange uses a fresh QUIC connection.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::{Buf, BytesMut};
use http::{Request, Version};
use quinn::crypto::rustls::QuicClientConfig;

use crate::client::{EXCHANGE_LIMIT, Req, Resp};
use crate::tls::{TestCa, provider};

/// Sends `req` over HTTP/3 to `addr` (UDP), with TLS SNI `sni`; bounded by [`EXCHANGE_LIMIT`].
pub async fn send(addr: SocketAddr, ca: &TestCa, sni: &str, req: &Req) -> anyhow::Result<Resp> {
    tokio::time::timeout(EXCHANGE_LIMIT, exchange(addr, ca, sni, req))
        .await
        .with_context(|| format!("HTTP/3 exchange with {addr} timed out after {EXCHANGE_LIMIT:?}"))?
}

async fn exchange(addr: SocketAddr, ca: &TestCa, sni: &str, req: &Req) -> anyhow::Result<Resp> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(ca.roots()?)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?)));
    let conn = endpoint.connect(addr, sni)?.await.with_context(|| format!("QUIC handshake with {addr}"))?;
    let peer_cert = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().cloned());
    let (mut driver, mut sender) = h3::client::new(h3_quinn::Connection::new(conn.clone())).await?;
    let driving = tokio::spawn(async move { driver.wait_idle().await });

    let mut builder = Request::builder().method(req.method.clone()).uri(format!("https://{}{}", req.host, req.path));
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let mut stream = sender.send_request(builder.body(())?).await?;
    // A server may answer before reading the whole body (413) and stop the upload (RFC 9114
    // §4.1.2): as a browser does, read the response whatever became of the upload.
    if !req.body.is_empty() {
        let _ = stream.send_data(req.body.clone()).await;
    }
    let _ = stream.finish().await;
    let head = stream.recv_response().await?;
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    drop(stream);
    drop(sender);
    conn.close(0u32.into(), b"done");
    driving.abort();
    endpoint.wait_idle().await;
    let (parts, ()) = head.into_parts();
    Ok(Resp {
        status: parts.status,
        version: Version::HTTP_3,
        headers: parts.headers,
        body: body.freeze(),
        peer_cert,
        alpn: Some(b"h3".to_vec()),
    })
}
