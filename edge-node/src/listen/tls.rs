//! TLS for the HTTPS listener: certificates chosen by SNI (exact names, then the longest
//! wildcard), the first certificate when the client sends no SNI or an unknown one; TLS 1.2 and
//! 1.3 only; ALPN `h2`, `http/1.1`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use outpost_config::{CertificateConfig, HostPattern};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::tls_check::{load_key, read_chain};

/// One certificate and the host patterns it serves.
pub struct Site {
    pub key: Arc<CertifiedKey>,
    pub hosts: Arc<[HostPattern]>,
}

pub struct CertResolver {
    exact: HashMap<String, Arc<Site>>,
    wildcards: Vec<(String, Arc<Site>)>,
    default: Option<Arc<Site>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").field("exact", &self.exact.keys().collect::<Vec<_>>()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("tls.certificates[{index}]: {message}")]
pub struct TlsError {
    pub index: usize,
    pub message: String,
}

impl CertResolver {
    pub fn load(certs: &[CertificateConfig]) -> Result<Self, TlsError> {
        let mut sites = Vec::new();
        for (index, c) in certs.iter().enumerate() {
            let err = |message: String| TlsError { index, message };
            let chain = read_chain(&c.cert).map_err(|m| err(format!("cert {}: {m}", c.cert.display())))?;
            let signing = load_key(&c.key).map_err(|m| err(format!("key {}: {m}", c.key.display())))?;
            let key = CertifiedKey::new(chain, signing);
            key.keys_match().map_err(|e| err(format!("key {} does not match cert: {e}", c.key.display())))?;
            sites.push(Arc::new(Site { key: Arc::new(key), hosts: c.hosts.clone().into() }));
        }
        Ok(Self::from_sites(sites))
    }

    pub fn from_sites(sites: Vec<Arc<Site>>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for site in &sites {
            for p in site.hosts.iter() {
                match p {
                    HostPattern::Exact(h) => {
                        exact.entry(h.clone()).or_insert_with(|| site.clone());
                    }
                    HostPattern::Wildcard(s) => wildcards.push((s.clone(), site.clone())),
                }
            }
        }
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Self { exact, wildcards, default: sites.first().cloned() }
    }

    /// The site for an SNI name (lower-case), or the default.
    pub fn site(&self, sni: Option<&str>) -> Option<&Arc<Site>> {
        let Some(name) = sni else { return self.default.as_ref() };
        self.exact
            .get(name)
            .or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
                    .map(|(_, s)| s)
            })
            .or(self.default.as_ref())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        self.site(sni.as_deref()).map(|s| s.key.clone())
    }
}

/// The server config: TLS 1.2 and 1.3 (rustls supports nothing older), ALPN h2 then http/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
