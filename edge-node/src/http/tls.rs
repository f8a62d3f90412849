//! Trust roots for the node's TLS clients (origins and shields, the control plane): the
//! system's, read once, or a PEM file's.

use std::sync::OnceLock;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A PEM file that gives no trust roots: `"{field} {path}: {reason}"`.
#[derive(Debug, thiserror::Error)]
#[error("{field} {path}: {reason}")]
pub struct RootsError {
    pub field: String,
    pub path: String,
    pub reason: String,
}

/// The system's trust roots, loaded once per process.
pub fn system_roots() -> rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "loading system root certificates");
            }
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system root certificates");
            store
        })
        .clone()
}

/// The certificates of the PEM file `path` (named `field` in errors) as trust roots.
pub fn ca_roots(field: &str, path: &std::path::Path) -> Result<rustls::RootCertStore, RootsError> {
    let err = |reason: String| RootsError { field: field.to_string(), path: path.display().to_string(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(err("no usable certificate".into()));
    }
    Ok(store)
}
