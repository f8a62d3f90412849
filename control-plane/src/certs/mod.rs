//! Certificates for tenants' hosts: checked ([`check`]), their private keys sealed
//! ([`crate::secrets`]), stored with their event, and sent to nodes.
//!
//! [`install`] is the one way a certificate gets in, whoever brings it: the API's upload
//! (`PUT /v1/services/{id}/certificates/{name}`) and ACME (source `acme`) both call it. It
//! checks the chain and key against the service's hosts ([`service_hosts`], the one place that
//! says which hosts of a service a certificate may be served for), seals the key bound to the
//! record's identity ([`key_aad`]) and writes one `certificate_put` event; nodes then fetch
//! the key over their own connection and swap it in.
//!
//! Key rotation: [`reseal_all`] runs at start and re-seals every key sealed under an old key.

pub mod check;
pub mod x509;

#[cfg(test)]
pub(crate) mod testpki;

use outpost_config::{
    CertificateName, CertificateRecord, CertificateSource, Change, HostPattern, Seq, ServiceRecord, Timestamp,
};

use crate::api::{ApiError, AppState, ErrorKind};
use crate::secrets::{Keyring, SecretsError};
use crate::store::{Store, StoreError, StoredCertificate};

/// What to install.
#[derive(Debug, Clone)]
pub struct Install<'a> {
    pub service: &'a ServiceRecord,
    pub name: CertificateName,
    pub chain_pem: &'a str,
    pub key_pem: &'a str,
    /// The hosts it is for (each a host of the service it covers); `None`: at least one.
    pub hosts: Option<&'a [String]>,
    pub source: CertificateSource,
}

/// Checks, seals and stores a certificate, and wakes the node streams; returns the stored
/// record (never the key). A bad certificate is [`ErrorKind::InvalidCertificate`] (400) with
/// each problem at its field (`chain_pem`, `key_pem`, `hosts[i]`).
pub async fn install(app: &AppState, install: Install<'_>, now: Timestamp) -> Result<CertificateRecord, ApiError> {
    let service = install.service;
    let hosts = service_hosts(service);
    let checked = check::check(install.chain_pem, install.key_pem, install.hosts, &hosts, now)
        .map_err(|fields| ApiError::fields(ErrorKind::InvalidCertificate, fields))?;
    let existing =
        app.store.certificates(Some(service.id.clone()), app.limits.max_certificates_per_service + 1).await?;
    let replaces = existing.iter().any(|c| c.record.name == install.name);
    if !replaces && existing.len() >= app.limits.max_certificates_per_service {
        return Err(ApiError::new(
            ErrorKind::CertificateLimit,
            format!(
                "service \"{}\" holds {} certificates, the most allowed (limits.max_certificates_per_service); delete one first",
                service.id,
                existing.len()
            ),
        ));
    }
    let record = CertificateRecord {
        service: service.id.clone(),
        tenant: service.tenant.clone(),
        name: install.name,
        version: Seq(0),
        updated_at: now,
        chain_pem: checked.chain_pem,
        names: checked.names,
        issuer: checked.issuer,
        not_before: checked.not_before,
        not_after: checked.not_after,
        sha256: checked.sha256,
        source: install.source,
    };
    let key = app.keyring.seal(install.key_pem.trim().as_bytes(), &key_aad(&record)).map_err(sealing)?;
    let event = app.store.put_certificate(StoredCertificate { record, key }, now).await.map_err(gone)?;
    app.nodes.appended(event.seq);
    let Change::CertificatePut { certificate } = event.change else {
        return Err(ApiError::internal("put certificate", "the store answered with another kind of event"));
    };
    tracing::info!(service = %certificate.service, name = %certificate.name, seq = %event.seq,
        source = certificate.source.as_str(), sha256 = %certificate.sha256, not_after = %certificate.not_after,
        names = ?certificate.names, "certificate_put");
    Ok(certificate)
}

/// The hosts of `service` a certificate may be served for. Every host of its config today;
/// domain verification narrows this to the verified ones (one place to change, here and in
/// the node's `listen::certs::served_hosts`).
pub fn service_hosts(service: &ServiceRecord) -> Vec<HostPattern> {
    let hosts = service.config.get("hosts").and_then(|h| h.as_array());
    hosts.into_iter().flatten().filter_map(|h| h.as_str()).filter_map(|h| h.parse().ok()).collect()
}

/// What a sealed key is bound to: its tenant, service and name. A sealed key copied onto
/// another record (another tenant's) does not open.
pub fn key_aad(record: &CertificateRecord) -> Vec<u8> {
    format!("outpost certificate key\0{}\0{}\0{}", record.tenant, record.service, record.name).into_bytes()
}

/// The private key of a stored certificate, in PEM.
pub fn open_key(keyring: &Keyring, stored: &StoredCertificate) -> Result<String, SecretsError> {
    let plain = keyring.open(&stored.key, &key_aad(&stored.record))?;
    String::from_utf8(plain).map_err(|_| SecretsError::Tampered)
}

/// Re-seals every certificate key sealed under an old key with the primary one (at start,
/// after a rotation); returns how many. A key that does not open is logged and left.
pub async fn reseal_all(store: &dyn Store, keyring: &Keyring) -> Result<usize, StoreError> {
    let mut done = 0;
    for stored in store.certificates(None, usize::MAX).await? {
        if !keyring.is_old(&stored.key) {
            continue;
        }
        let record = &stored.record;
        let resealed = open_key(keyring, &stored).and_then(|pem| keyring.seal(pem.as_bytes(), &key_aad(record)));
        match resealed {
            Ok(sealed) => {
                if store.reseal_certificate(&record.service, &record.name, record.version, sealed).await? {
                    done += 1;
                }
            }
            Err(error) => {
                tracing::error!(service = %record.service, name = %record.name, "secrets: cannot re-seal: {error}")
            }
        }
    }
    if done > 0 {
        tracing::info!(
            resealed = done,
            key_id = keyring.primary_id(),
            "secrets: certificate keys re-sealed under the primary key"
        );
    }
    Ok(done)
}

fn sealing(error: SecretsError) -> ApiError {
    ApiError::internal("seal certificate key", error)
}

/// The service went away (or changed hands) between the lookup and the write.
fn gone(error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict { id, .. } => ApiError::not_found(format_args!("service \"{id}\"")),
        other => other.into(),
    }
}
