//! TLS for the HTTPS listener: one [`CertResolver`] per certificate set (the file's
//! `[[tls.certificates]]` and the control plane's, see `certs`), chosen by SNI: the exact name,
//! then the longest wildcard. A name no certificate covers has none (the listener answers with
//! an `unrecognized_name` alert: never another tenant's certificate); a client without SNI gets
//! `tls.default_host`'s, if set. TLS 1.2 and 1.3 only; ALPN `h2`, `http/1.1`.

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

/// Which certificate serves which name: a pure lookup table, built once per certificate set.
pub struct CertResolver {
    exact: HashMap<String, Arc<Site>>,
    /// `(".suffix", site)`, longest suffix first.
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

/// The file's `[[tls.certificates]]`, loaded: every problem is an error naming its entry.
pub fn load_sites(certs: &[CertificateConfig]) -> Result<Vec<Arc<Site>>, TlsError> {
    let mut sites = Vec::new();
    for (index, c) in certs.iter().enumerate() {
        let err = |message: String| TlsError { index, message };
        let chain = read_chain(&c.cert).map_err(|m| err(format!("cert {}: {m}", c.cert.display())))?;
        let signing = load_key(&c.key).map_err(|m| err(format!("key {}: {m}", c.key.display())))?;
        let key = CertifiedKey::new(chain, signing);
        key.keys_match().map_err(|e| err(format!("key {} does not match cert: {e}", c.key.display())))?;
        sites.push(Arc::new(Site { key: Arc::new(key), hosts: c.hosts.clone().into() }));
    }
    Ok(sites)
}

impl CertResolver {
    /// The table for `sites`; where two serve one pattern, the earlier wins (the file's come
    /// first). `default_host` picks the site for clients without SNI.
    pub fn from_sites(sites: &[Arc<Site>], default_host: Option<&str>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards: Vec<(String, Arc<Site>)> = Vec::new();
        for site in sites {
            for p in site.hosts.iter() {
                match p {
                    HostPattern::Exact(h) => {
                        exact.entry(h.clone()).or_insert_with(|| site.clone());
                    }
                    HostPattern::Wildcard(s) if !wildcards.iter().any(|(w, _)| w == s) => {
                        wildcards.push((s.clone(), site.clone()))
                    }
                    HostPattern::Wildcard(_) => {}
                }
            }
        }
        // Stable: among equal lengths the earlier stays first.
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        let mut resolver = Self { exact, wildcards, default: None };
        resolver.default = default_host.and_then(|h| resolver.by_name(&h.to_ascii_lowercase()).cloned());
        resolver
    }

    /// The site for an SNI name (lower-case); without SNI, the default. `None`: no
    /// certificate for it (the handshake is refused with `unrecognized_name`).
    pub fn site(&self, sni: Option<&str>) -> Option<&Arc<Site>> {
        match sni {
            None => self.default.as_ref(),
            Some(name) => self.by_name(name),
        }
    }

    /// RFC 6125 §6.4.3: the exact name first, then the longest wildcard (which covers one or
    /// more labels in front of its suffix, as the service's host patterns do).
    fn by_name(&self, name: &str) -> Option<&Arc<Site>> {
        self.exact.get(name).or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
                .map(|(_, s)| s)
        })
    }

    /// How many names and wildcards it serves (for logs).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        self.site(sni.as_deref()).map(|s| s.key.clone())
    }
}

/// The server config: TLS 1.2 and 1.3 (rustls supports nothing older), ALPN h2 then http/1.1.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn site(names: &[&str]) -> Arc<Site> {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.trim_start_matches("*.").to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let signing = rustls::crypto::ring::default_provider().key_provider.load_private_key(der).unwrap();
        let key = Arc::new(CertifiedKey::new(vec![ck.cert.der().clone()], signing));
        Arc::new(Site { key, hosts: names.iter().map(|n| n.parse().unwrap()).collect::<Vec<_>>().into() })
    }

    /// (clause, SNI (None: the client sent none), the default host, the site that serves it,
    /// or none: `unrecognized_name`).
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a Arc<Site>>);

    #[test]
    fn sni_chooses_exact_then_longest_wildcard_and_never_falls_back() {
        let file = site(&["shop.test", "*.shop.test"]);
        let tenant = site(&["*.eu.shop.test", "blog.test"]);
        let clash = site(&["shop.test"]);
        let sites = [file.clone(), tenant.clone(), clash];
        let rows: [Row; 9] = [
            ("RFC 6066 §3 exact name", Some("shop.test"), None, Some(&file)),
            ("exact beats any wildcard", Some("blog.test"), None, Some(&tenant)),
            ("RFC 6125 §6.4.3 the longest wildcard", Some("a.eu.shop.test"), None, Some(&tenant)),
            ("a shorter wildcard", Some("a.shop.test"), None, Some(&file)),
            ("a wildcard covers more labels, as host patterns do", Some("a.b.us.shop.test"), None, Some(&file)),
            ("RFC 6066 §3 uncovered name: unrecognized_name, never another's", Some("evil.test"), None, None),
            ("a wildcard never covers its bare suffix", Some("eu.shop.test"), None, Some(&file)),
            ("no SNI without a default", None, None, None),
            ("no SNI with the default host", None, Some("Blog.test"), Some(&tenant)),
        ];
        for (clause, sni, default, want) in rows {
            let resolver = CertResolver::from_sites(&sites, default);
            let got = resolver.site(sni);
            assert_eq!(got.map(Arc::as_ptr), want.map(Arc::as_ptr), "{clause}");
        }
    }
}
