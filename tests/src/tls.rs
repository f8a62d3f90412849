//! Test certificates: a throwaway CA made with rcgen, leaf certificates it signs, and the rustls
//! configs the harness's clients and TLS origins use. Everything is ring-backed (see deps.md:
//! one crypto provider).

use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData as _,
};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The one crypto provider of the test process.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A calendar date, `(year, month, day)`.
pub type Ymd = (i32, u8, u8);

/// A certificate authority that exists for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, in both PEM (for the node's config) and DER (for rustls).
#[derive(Clone)]
pub struct Leaf {
    pub hosts: Vec<String>,
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    spki_der: Vec<u8>,
}

impl TestCa {
    pub fn new(common_name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    /// The CA certificate in PEM, as a node's `origin_ca` file holds it.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Issues a server certificate whose SANs are `hosts` (wildcards allowed).
    pub fn issue(&self, hosts: &[&str]) -> anyhow::Result<Leaf> {
        self.issue_valid(hosts, None)
    }

    /// [`TestCa::issue`], valid from `not_before` to `not_after` (`(year, month, day)`, UTC
    /// midnight) instead of rcgen's default (1975 to 4096): an expired or not yet valid leaf.
    pub fn issue_valid(&self, hosts: &[&str], validity: Option<(Ymd, Ymd)>) -> anyhow::Result<Leaf> {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(hosts.clone())?;
        if let Some(((y0, m0, d0), (y1, m1, d1))) = validity {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        params.distinguished_name.push(DnType::CommonName, hosts.first().cloned().unwrap_or_default());
        params.is_ca = IsCa::NoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            hosts,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
            spki_der: key.subject_public_key_info(),
        })
    }

    pub fn roots(&self) -> anyhow::Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der()).context("adding the test CA")?;
        Ok(roots)
    }

    /// A client config trusting only this CA, offering the given ALPN protocols.
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<rustls::ClientConfig> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots()?)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf").field("hosts", &self.hosts).finish()
    }
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The certificate's SubjectPublicKeyInfo (RFC 5280 §4.1), DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Base64 of SHA-256 of [`Leaf::spki_der`]: the pin format of HPKP (RFC 7469 §2.4) that
    /// Chromium's `--ignore-certificate-errors-spki-list` takes.
    pub fn spki_sha256_base64(&self) -> anyhow::Result<String> {
        spki_pin(&self.spki_der)
    }

    /// A server config presenting this certificate, offering h2 and http/1.1.
    pub fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], self.key_der())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Base64 of SHA-256 of a DER SubjectPublicKeyInfo: the pin format of HPKP (RFC 7469 §2.4)
/// that Chromium's `--ignore-certificate-errors-spki-list` takes.
pub fn spki_pin(spki_der: &[u8]) -> anyhow::Result<String> {
    // SHA-256 from the ring provider rustls already carries, rather than another crate.
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .context("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite")?;
    Ok(base64(suite.common.hash_provider.hash(spki_der).as_ref()))
}

/// The SubjectPublicKeyInfo of a DER X.509 certificate someone else issued (Pebble's), for
/// [`spki_pin`]. A walk over the DER of RFC 5280 §4.1 rather than an X.509 crate: `Certificate
/// ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
/// issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }`.
pub fn certificate_spki(cert_der: &[u8]) -> anyhow::Result<&[u8]> {
    let (certificate, _) = der_element(cert_der)?;
    let (tbs, _) = der_element(der_content(certificate)?)?;
    let mut rest = der_content(tbs)?;
    // version [0] EXPLICIT (tag 0xa0) is absent in v1 certificates.
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest)?.1;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_element(rest)?.1;
    }
    let (spki, _) = der_element(rest)?;
    anyhow::ensure!(spki.first() == Some(&0x30), "subjectPublicKeyInfo is not a SEQUENCE");
    Ok(spki)
}

/// The first DER element of `input` (tag, length and content), and what follows it.
fn der_element(input: &[u8]) -> anyhow::Result<(&[u8], &[u8])> {
    let (len, header) = der_header_len(input)?;
    let end = header.checked_add(len).filter(|end| *end <= input.len()).context("DER element runs past its input")?;
    Ok(input.split_at(end))
}

/// The content of one DER element (what follows its tag and length).
fn der_content(element: &[u8]) -> anyhow::Result<&[u8]> {
    let (len, header) = der_header_len(element)?;
    element.get(header..header + len).context("DER element runs past its input")
}

/// `(content length, header length)` of the DER element at the start of `input`: one tag
/// byte (certificates use no high tag numbers), then a short or long definite length (X.690 §8.1.3).
fn der_header_len(input: &[u8]) -> anyhow::Result<(usize, usize)> {
    let first = *input.get(1).context("DER element shorter than its header")?;
    if first < 0x80 {
        return Ok((usize::from(first), 2));
    }
    let count = usize::from(first & 0x7f);
    anyhow::ensure!((1..=4).contains(&count), "DER length of {count} bytes");
    let bytes = input.get(2..2 + count).context("DER length runs past its input")?;
    let len = bytes.iter().fold(0usize, |len, b| len << 8 | usize::from(*b));
    Ok((len, 2 + count))
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{TestCa, base64, certificate_spki};

    #[test]
    fn certificate_spki_finds_the_key_rcgen_put_in_leaf_and_ca_certificates() -> anyhow::Result<()> {
        let ca = TestCa::new("spki test CA")?;
        let leaf = ca.issue(&["a.test", "b.test"])?;
        assert_eq!(certificate_spki(&leaf.cert_der)?, leaf.spki_der());
        // The CA's own certificate parses too, and its key is not the leaf's.
        assert_ne!(certificate_spki(&ca.cert_der())?, leaf.spki_der());
        assert!(certificate_spki(&leaf.cert_der[..40]).is_err(), "a truncated certificate is an error");
        Ok(())
    }

    #[test]
    fn base64_matches_rfc_4648_section_10() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base64(input.as_bytes()), expected, "base64({input:?})");
        }
    }
}
