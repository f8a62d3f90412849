//! The node's certificates, from two sources swapped as one: the file's `[[tls.certificates]]`
//! (re-read on SIGHUP) and the control plane's (set by the agent). Either change builds a new
//! [`CertResolver`] and swaps it in atomically; a handshake uses the set in force when its
//! ClientHello arrived, and an open connection keeps the session it has (TLS never re-selects a
//! certificate mid-connection), so nothing is dropped.
//!
//! The TCP listener reads the ClientHello first ([`accept`]): a name no certificate covers (or
//! no SNI without `tls.default_host`) gets a fatal `unrecognized_name` alert (RFC 6066 §3) and
//! the connection is closed. The QUIC listener uses the same set through [`Certs`]'s
//! [`ResolvesServerCert`]; there a refusal is rustls' own handshake failure.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::tls::{CertResolver, Site};
use crate::metrics::TLS_HANDSHAKES;

/// Bytes read while waiting for a ClientHello before giving up on it (rustls bounds the
/// message itself; this bounds the loop). A ClientHello is rarely above 2 KiB.
const MAX_HELLO_BYTES: usize = 64 * 1024;

/// A fatal `unrecognized_name` alert (RFC 6066 §3; RFC 8446 §6: level 2 fatal, description
/// 112) in a TLS 1.2-versioned alert record (RFC 8446 §5.1: content type 21).
const UNRECOGNIZED_NAME: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];

/// What the set is built from.
struct Sources {
    file: Vec<Arc<Site>>,
    remote: Vec<Arc<Site>>,
    default_host: Option<String>,
}

/// The certificate set in force, and how to rebuild it.
pub struct Certs {
    current: RwLock<Arc<CertResolver>>,
    sources: Mutex<Sources>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs").field("current", &self.current()).finish()
    }
}

impl Certs {
    /// The file's sites and the default host; no control-plane certificates yet.
    pub fn new(file: Vec<Arc<Site>>, default_host: Option<String>) -> Self {
        let resolver = CertResolver::from_sites(&file, default_host.as_deref());
        Self {
            current: RwLock::new(Arc::new(resolver)),
            sources: Mutex::new(Sources { file, remote: Vec::new(), default_host }),
        }
    }

    /// The set in force.
    pub fn current(&self) -> Arc<CertResolver> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Replaces the file's certificates and default host (SIGHUP).
    pub fn set_file(&self, file: Vec<Arc<Site>>, default_host: Option<String>) {
        self.rebuild(|sources| {
            sources.file = file;
            sources.default_host = default_host;
        });
    }

    /// Replaces the control plane's certificates (the agent).
    pub fn set_remote(&self, remote: Vec<Arc<Site>>) {
        self.rebuild(|sources| sources.remote = remote);
    }

    fn rebuild(&self, change: impl FnOnce(&mut Sources)) {
        // One rebuild at a time, so two changes never both start from the same old sources.
        let mut sources = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut sources);
        let all: Vec<Arc<Site>> = sources.file.iter().chain(&sources.remote).cloned().collect();
        let resolver = Arc::new(CertResolver::from_sites(&all, sources.default_host.as_deref()));
        tracing::info!(
            names = resolver.len(),
            file = sources.file.len(),
            control = sources.remote.len(),
            "TLS certificates swapped in"
        );
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = resolver;
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        self.current().site(sni.as_deref()).map(|s| s.key.clone())
    }
}

/// How a TCP handshake ended (the `outcome` label of `outpost_tls_handshakes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// SNI for a name no certificate covers: `unrecognized_name` sent.
    UnknownName,
    /// No SNI and no `tls.default_host`: `unrecognized_name` sent.
    NoSni,
    /// Not TLS, a bad ClientHello, or the handshake failed after it.
    Failed,
    TimedOut,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UnknownName => "unrecognized_name",
            Outcome::NoSni => "no_sni",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timeout",
        }
    }
}

/// An accepted TLS connection: the stream, its SNI and the hosts its certificate serves.
pub struct Accepted {
    pub stream: TlsStream<TcpStream>,
    pub sni: Option<Arc<str>>,
    pub cert_hosts: Arc<[outpost_config::HostPattern]>,
}

/// Reads the ClientHello, refuses a name with no certificate (`unrecognized_name`), then
/// completes the handshake with `config`, all within `timeout`. Counts the outcome.
pub async fn accept(
    mut tcp: TcpStream,
    certs: &Certs,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> Result<Accepted, (Outcome, String)> {
    let result = tokio::time::timeout(timeout, async {
        let hello = read_hello(&mut tcp).await.map_err(|e| (Outcome::Failed, e))?;
        let sni: Option<Arc<str>> = hello.client_hello().server_name().map(|s| s.to_ascii_lowercase().into());
        // RFC 8737: a CA's TLS-ALPN-01 validation names a host that has no certificate yet;
        // the config's resolver (`acme::answer_tls_alpn`) answers it or refuses it.
        if crate::acme::validation_hello(&hello.client_hello()) {
            let stream = tokio_rustls::StartHandshake::from_parts(hello, tcp)
                .into_stream(config)
                .await
                .map_err(|e| (Outcome::Failed, e.to_string()))?;
            return Ok(Accepted { stream, sni, cert_hosts: Arc::from(Vec::new()) });
        }
        let resolver = certs.current();
        let Some(site) = resolver.site(sni.as_deref()) else {
            let outcome = if sni.is_some() { Outcome::UnknownName } else { Outcome::NoSni };
            // Best effort: the client may be gone already.
            let _ = tcp.write_all(&UNRECOGNIZED_NAME).await;
            let _ = tcp.shutdown().await;
            return Err((outcome, format!("no certificate for {}", sni.as_deref().unwrap_or("a client without SNI"))));
        };
        let cert_hosts = site.hosts.clone();
        let stream = tokio_rustls::StartHandshake::from_parts(hello, tcp)
            .into_stream(config)
            .await
            .map_err(|e| (Outcome::Failed, e.to_string()))?;
        Ok(Accepted { stream, sni, cert_hosts })
    })
    .await;
    let result = result.unwrap_or_else(|_| Err((Outcome::TimedOut, format!("no handshake within {timeout:?}"))));
    let outcome = result.as_ref().map_or_else(|(o, _)| *o, |_| Outcome::Ok);
    metrics::counter!(TLS_HANDSHAKES, "outcome" => outcome.label(), "protocol" => "tcp").increment(1);
    result
}

/// Feeds bytes to rustls' [`Acceptor`] until it has a whole ClientHello.
async fn read_hello(tcp: &mut TcpStream) -> Result<rustls::server::Accepted, String> {
    let mut acceptor = Acceptor::default();
    let mut buf = vec![0u8; 4096];
    let mut total = 0usize;
    loop {
        let n = tcp.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before a ClientHello".to_owned());
        }
        total += n;
        let mut input = &buf[..n];
        while !input.is_empty() {
            acceptor.read_tls(&mut input).map_err(|e| e.to_string())?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok(accepted),
            Ok(None) if total < MAX_HELLO_BYTES => {}
            Ok(None) => return Err(format!("no ClientHello in the first {MAX_HELLO_BYTES} bytes")),
            Err((error, mut alert)) => {
                // rustls' own alert for a malformed hello, written before closing.
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                let _ = tcp.write_all(&out).await;
                return Err(error.to_string());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn site(name: &str) -> (Arc<Site>, rustls_pki_types::CertificateDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let signing = rustls::crypto::ring::default_provider().key_provider.load_private_key(der).unwrap();
        let key = Arc::new(CertifiedKey::new(vec![ck.cert.der().clone()], signing));
        (Arc::new(Site { key, hosts: vec![name.parse().unwrap()].into() }), ck.cert.der().clone())
    }

    fn client(roots: &[rustls_pki_types::CertificateDer<'static>]) -> tokio_rustls::TlsConnector {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add(root.clone()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// A real handshake over loopback for each row: the name asked for, and whether it is
    /// served (else the client sees the `unrecognized_name` alert); the set is swapped between
    /// rows without a new listener.
    #[tokio::test]
    async fn uncovered_names_get_the_alert_and_swaps_take_effect() {
        let (shop, shop_der) = site("shop.test");
        let (blog, blog_der) = site("blog.test");
        let certs = Arc::new(Certs::new(vec![shop], None));
        let config = Arc::new(super::super::tls::server_config(certs.clone()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_certs = certs.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (certs, config) = (server_certs.clone(), config.clone());
                tokio::spawn(async move {
                    if let Ok(mut accepted) = accept(tcp, &certs, config, Duration::from_secs(5)).await {
                        let _ = accepted.stream.write_all(b"hi").await;
                        let _ = accepted.stream.shutdown().await;
                    }
                });
            }
        });
        let connector = client(&[shop_der, blog_der]);
        let handshake = |name: &'static str| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let name = rustls_pki_types::ServerName::try_from(name).unwrap();
                connector.connect(name, tcp).await.map(|_| ()).map_err(|e| e.to_string())
            }
        };
        assert_eq!(handshake("shop.test").await, Ok(()));
        let refused = handshake("blog.test").await.unwrap_err();
        // rustls' Debug spelling of the alert.
        assert!(refused.contains("UnrecognisedName"), "{refused}");
        certs.set_remote(vec![blog]);
        assert_eq!(handshake("blog.test").await, Ok(()), "swapped in without a new listener");
        assert_eq!(handshake("shop.test").await, Ok(()), "the file's stay");
        certs.set_remote(vec![]);
        assert!(handshake("blog.test").await.is_err(), "swapped out");
    }
}
