//! TLS-ALPN-01 (RFC 8737): the validation certificate, made by each edge from the host and the
//! key authorization (so no private key travels), and the resolver that presents it.

use std::fmt;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::Challenges;

/// RFC 8737 §6.2: the ALPN protocol of the validation handshake.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug, thiserror::Error)]
pub enum AlpnError {
    #[error("building the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("loading its key: {0}")]
    Key(#[from] rustls::Error),
}

/// RFC 8737 §3: a self-signed certificate whose only name is `host` (a dNSName SAN) and which
/// carries the critical `id-pe-acmeIdentifier` extension holding SHA-256 of the key
/// authorization. A fresh ECDSA P-256 key per challenge: the key signs this one handshake and
/// proves nothing, the digest does.
pub fn validation_certificate(host: &str, key_authorization: &str) -> Result<Arc<CertifiedKey>, AlpnError> {
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing)))
}

/// Makes `config` answer TLS-ALPN-01 for the hosts in `challenges`: `acme-tls/1` is offered
/// last (a client that offers it beside another protocol gets the other), and a ClientHello
/// offering only `acme-tls/1` gets the validation certificate of its SNI name, or no
/// certificate (a failed handshake) when no live challenge names it. Every other ClientHello
/// goes to the resolver `config` had.
pub fn answer_tls_alpn(config: &mut rustls::ServerConfig, challenges: Arc<Challenges>) {
    let inner = config.cert_resolver.clone();
    config.cert_resolver = Arc::new(AcmeResolver { inner, challenges });
    config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
}

struct AcmeResolver {
    inner: Arc<dyn ResolvesServerCert>,
    challenges: Arc<Challenges>,
}

impl fmt::Debug for AcmeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeResolver").field("inner", &self.inner).finish()
    }
}

/// RFC 8737 §3: the validator's ClientHello carries `acme-tls/1` as its only protocol.
pub fn validation_hello(hello: &ClientHello<'_>) -> bool {
    let Some(mut protocols) = hello.alpn() else { return false };
    protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
}

impl ResolvesServerCert for AcmeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if !validation_hello(&hello) {
            return self.inner.resolve(hello);
        }
        let host = hello.server_name()?.to_ascii_lowercase();
        let key = self.challenges.current().tls_alpn(&host, super::now());
        if key.is_none() {
            tracing::debug!(%host, "acme-tls/1 handshake for a host without a live challenge: refused");
        }
        key
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_the_host_and_carries_the_digest_critically() {
        let key = validation_certificate("www.example.test", "tok.thumb").unwrap();
        let der = key.cert[0].as_ref();
        // RFC 8737 §3: id-pe-acmeIdentifier 1.3.6.1.5.5.7.1.31, critical, an OCTET STRING
        // of the 32-byte SHA-256 of the key authorization inside the extnValue.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der.windows(oid.len()).position(|w| w == oid).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, b"tok.thumb");
        let mut rest = vec![0x01, 0x01, 0xff, 0x04, 0x22, 0x04, 0x20];
        rest.extend_from_slice(digest.as_ref());
        assert_eq!(&der[at + oid.len()..at + oid.len() + rest.len()], rest.as_slice());
        assert!(der.windows(16).any(|w| w == b"www.example.test"));
        // Self-signed, nothing else in the chain (RFC 8737 §3).
        assert_eq!(key.cert.len(), 1);
    }
}
