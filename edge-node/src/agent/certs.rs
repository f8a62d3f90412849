//! The control plane's certificates on the node: each record's private key, fetched once per
//! version over the node's authenticated connection (`GET /v1/nodes/{id}/certificates/...`)
//! and kept in `<state_dir>/certificates/<service>/<name>.json` (mode 0600, its directories
//! 0700), so a node restarted while the control plane is away still serves HTTPS; then the
//! certificate set handed to the listeners ([`Certs::set_remote`]).
//!
//! A certificate is served only for hosts of its own service that it covers
//! ([`served_hosts`] is the one place that says which hosts of a service may be served): never
//! for another tenant's host, whatever names it carries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::StatusCode;
use outpost_config::{CertificateKey, CertificateName, CertificateRecord, HostPattern, Seq, ServiceId, ServiceRecord};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::client::ControlClient;
use super::error::AgentError;
use crate::listen::certs::Certs;
use crate::listen::tls::Site;

/// The hosts of `service` its certificates may be served for: the hosts of its config that
/// the node serves, i.e. verified ones (`ServiceRecord::serves`: every host for a record from
/// before domain verification). A pending or lapsed host gets no certificate, as it gets no
/// routing: its TLS handshake ends in `unrecognized_name`.
pub fn served_hosts(service: &ServiceRecord) -> Vec<HostPattern> {
    let hosts = service.config.get("hosts").and_then(|h| h.as_array());
    let patterns = hosts.into_iter().flatten().filter_map(|h| h.as_str()).filter_map(|h| h.parse::<HostPattern>().ok());
    patterns.filter(|p| service.serves(&p.to_string())).collect()
}

/// The key files, and the keys loaded from them (by certificate and version).
pub struct CertificateFiles {
    dir: PathBuf,
    loaded: HashMap<(ServiceId, CertificateName), (Seq, Arc<CertifiedKey>)>,
}

impl CertificateFiles {
    pub fn new(state_dir: &Path) -> Self {
        Self { dir: state_dir.join("certificates"), loaded: HashMap::new() }
    }

    fn path(&self, record: &CertificateRecord) -> PathBuf {
        // Both names are 1 to 64 of a-z 0-9 _ - (checked when parsed): safe as path parts.
        self.dir.join(record.service.as_str()).join(format!("{}.json", record.name))
    }

    /// Builds the control plane's sites from `certificates` and swaps them into `certs`.
    /// A key not on disk is fetched, unless `offline` (at start, from the saved state): a
    /// certificate without its key is then left out until the control plane answers. A fetch
    /// that fails for a reason that may pass (the control plane away) fails the whole set, to
    /// be retried; one the control plane refuses (deleted or replaced since) skips it.
    pub async fn apply<'a>(
        &mut self,
        client: &ControlClient,
        certificates: impl Iterator<Item = &'a CertificateRecord>,
        services: impl Fn(&ServiceId) -> Option<&'a ServiceRecord>,
        certs: &Certs,
        offline: bool,
    ) -> Result<usize, AgentError> {
        let mut sites = Vec::new();
        let mut keep = HashMap::new();
        for record in certificates {
            let Some(service) = services(&record.service) else { continue };
            let id = (record.service.clone(), record.name.clone());
            let key = match self.loaded.remove(&id).filter(|(version, _)| *version == record.version) {
                Some((_, key)) => Some(key),
                None => self.load(client, record, offline).await?,
            };
            let Some(key) = key else { continue };
            let hosts = covered(&key, &served_hosts(service));
            if hosts.is_empty() {
                tracing::warn!(service = %record.service, name = %record.name, names = ?record.names,
                    "certificate covers none of its service's hosts; not served");
            } else {
                sites.push(Arc::new(Site { key: key.clone(), hosts: hosts.into() }));
            }
            keep.insert(id, (record.version, key));
        }
        self.loaded = keep;
        let count = sites.len();
        certs.set_remote(sites);
        self.remove_unused().await;
        Ok(count)
    }

    /// The key of `record` from its file, else from the control plane (then saved).
    async fn load(
        &self,
        client: &ControlClient,
        record: &CertificateRecord,
        offline: bool,
    ) -> Result<Option<Arc<CertifiedKey>>, AgentError> {
        let path = self.path(record);
        let saved = tokio::fs::read(&path).await.ok().and_then(|b| serde_json::from_slice::<CertificateKey>(&b).ok());
        let key = match saved.filter(|k| k.version == record.version && k.sha256 == record.sha256) {
            Some(key) => key,
            None if offline => {
                tracing::warn!(service = %record.service, name = %record.name, "certificate key not on disk; served once the control plane answers");
                return Ok(None);
            }
            None => match client.certificate_key(&record.service, &record.name).await {
                Ok(key) if key.version == record.version && key.sha256 == record.sha256 => {
                    save(&path, &key).await.map_err(|e| protocol(format!("{}: {e}", path.display())))?;
                    key
                }
                Ok(key) => {
                    // Replaced since this record: its own event is on the way.
                    tracing::debug!(service = %record.service, name = %record.name, fetched = %key.version, record = %record.version, "certificate key of another version; skipped");
                    return Ok(None);
                }
                Err(AgentError::Refused { status, .. }) if status == StatusCode::NOT_FOUND => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        match certified(record, &key.key_pem) {
            Ok(key) => Ok(Some(Arc::new(key))),
            Err(why) => {
                tracing::error!(service = %record.service, name = %record.name, "certificate not served: {why}");
                Ok(None)
            }
        }
    }

    /// Removes key files of certificates no longer held.
    async fn remove_unused(&self) {
        let Ok(mut services) = tokio::fs::read_dir(&self.dir).await else { return };
        while let Ok(Some(service)) = services.next_entry().await {
            let Ok(mut files) = tokio::fs::read_dir(service.path()).await else { continue };
            while let Ok(Some(file)) = files.next_entry().await {
                let name = file.file_name().to_string_lossy().trim_end_matches(".json").to_owned();
                let held = self
                    .loaded
                    .keys()
                    .any(|(s, n)| s.as_str() == service.file_name().to_string_lossy() && n.as_str() == name);
                if !held {
                    let _ = tokio::fs::remove_file(file.path()).await;
                }
            }
        }
    }
}

/// The record's chain with `key_pem`, checked to belong together.
fn certified(record: &CertificateRecord, key_pem: &str) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(record.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("chain: {e}"))?;
    let der =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| "the key is not a PEM private key".to_owned())?;
    let signing =
        rustls::crypto::ring::default_provider().key_provider.load_private_key(der).map_err(|e| format!("key: {e}"))?;
    let key = CertifiedKey::new(chain, signing);
    key.keys_match().map_err(|e| format!("the key does not match the chain: {e}"))?;
    Ok(key)
}

/// The host patterns of `hosts` the certificate's leaf covers.
fn covered(key: &CertifiedKey, hosts: &[HostPattern]) -> Vec<HostPattern> {
    let Some(leaf) = key.cert.first().and_then(|der| webpki::EndEntityCert::try_from(der).ok()) else {
        return Vec::new();
    };
    hosts.iter().filter(|h| crate::listen::tls_check::covers(&leaf, h)).cloned().collect()
}

/// Writes `key` to `path` whole (a temporary file renamed over it), mode 0600 in a 0700
/// directory.
async fn save(path: &Path, key: &CertificateKey) -> std::io::Result<()> {
    let (path, json) = (path.to_path_buf(), serde_json::to_vec(key).map_err(std::io::Error::other)?);
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        let tmp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .map_err(std::io::Error::other)?
}

fn protocol(message: String) -> AgentError {
    AgentError::Protocol { step: "certificate key", message }
}

#[cfg(test)]
mod tests {
    use outpost_config::{Seq, ServiceId, ServiceRecord, TenantId, Timestamp};

    use super::served_hosts;

    fn record(verified: Option<&[&str]>) -> ServiceRecord {
        ServiceRecord {
            id: ServiceId::parse("shop").expect("id"),
            tenant: TenantId::parse("acme").expect("tenant"),
            version: Seq(3),
            updated_at: Timestamp(0),
            config: serde_json::json!({"hosts": ["shop.example", "*.cdn.example", "new.example"]}),
            function: None,
            verified_hosts: verified.map(|v| v.iter().map(|h| (*h).to_owned()).collect()),
        }
    }

    #[test]
    fn certificates_serve_only_the_hosts_the_node_serves() {
        let names = |r: &ServiceRecord| served_hosts(r).iter().map(ToString::to_string).collect::<Vec<_>>();
        // A record from before domain verification: every host.
        assert_eq!(names(&record(None)), ["shop.example", "*.cdn.example", "new.example"]);
        // `new.example` pending: no certificate for it, whatever the certificate's names.
        assert_eq!(names(&record(Some(&["shop.example", "*.cdn.example"]))), ["shop.example", "*.cdn.example"]);
        assert!(names(&record(Some(&[]))).is_empty());
    }
}
