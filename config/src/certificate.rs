//! Certificates the control plane holds for tenants' hosts, as it stores them and sends them to
//! nodes: [`CertificateRecord`] (chain, names, validity; never the private key) in
//! `certificate_put` events and snapshots, and [`CertificateKey`], the private key a node
//! fetches over its authenticated connection (`GET /v1/nodes/{id}/certificates/{service}/{name}`).
//!
//! JSON of a record:
//! `{"service": "shop", "tenant": "acme", "name": "www", "version": 12,
//!   "updated_at": "2026-12-07T10:00:00.000Z", "chain_pem": "-----BEGIN CERTIFICATE-----...",
//!   "names": ["shop.example", "*.shop.example"], "issuer": "R11",
//!   "not_before": "...", "not_after": "...", "sha256": "<64 hex digits>", "source": "upload"}`.

use serde::{Deserialize, Serialize};

use crate::control::{CertificateName, Seq, ServiceId, TenantId};
use crate::timestamp::Timestamp;

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    /// Uploaded by the tenant or the operator (`PUT /v1/services/{id}/certificates/{name}`).
    Upload,
    /// Obtained (and renewed) by the control plane from an ACME CA.
    Acme,
}

impl CertificateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateSource::Upload => "upload",
            CertificateSource::Acme => "acme",
        }
    }
}

/// A certificate of one service, checked when it was installed (key matches, chain builds,
/// names cover hosts of the service, within its validity). Nodes serve it only for hosts of
/// `service`, whatever other names it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    pub service: ServiceId,
    pub tenant: TenantId,
    pub name: CertificateName,
    /// The sequence number of the event that wrote this version.
    pub version: Seq,
    pub updated_at: Timestamp,
    /// The PEM chain, leaf first, as served.
    pub chain_pem: String,
    /// The leaf's DNS names (subjectAltName), lower-case, wildcards as `*.example.com`.
    pub names: Vec<String>,
    /// The issuer's common name (or its whole distinguished name when it has none).
    pub issuer: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// SHA-256 of the leaf certificate's DER, 64 lower-case hex digits (its fingerprint).
    pub sha256: String,
    pub source: CertificateSource,
}

/// The answer to a node's `GET /v1/nodes/{id}/certificates/{service}/{name}`: the private key
/// of the certificate's current `version`, in PEM. Only ever sent to node tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateKey {
    pub version: Seq,
    /// SHA-256 of the leaf the key belongs to (as in [`CertificateRecord::sha256`]).
    pub sha256: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: a debug print ends up in logs.
        f.debug_struct("CertificateKey").field("version", &self.version).field("sha256", &self.sha256).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Change, Event, Snapshot};

    fn record() -> CertificateRecord {
        CertificateRecord {
            service: ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}")),
            tenant: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
            name: CertificateName::parse("www").unwrap_or_else(|e| panic!("{e}")),
            version: Seq(10),
            updated_at: Timestamp(0),
            chain_pem: "-----BEGIN CERTIFICATE-----\n".to_owned(),
            names: vec!["shop.example".to_owned()],
            issuer: "R11".to_owned(),
            not_before: Timestamp(0),
            not_after: Timestamp(1000),
            sha256: "0".repeat(64),
            source: CertificateSource::Upload,
        }
    }

    #[test]
    fn certificate_events_have_a_flat_json_form() {
        let put = Event { seq: Seq(10), at: Timestamp(0), change: Change::CertificatePut { certificate: record() } };
        let json = serde_json::to_value(&put).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["type"], "certificate_put");
        assert_eq!(json["certificate"]["source"], "upload");
        assert_eq!(json["certificate"]["not_after"], "1970-01-01T00:00:01.000Z");
        assert!(json["certificate"].get("key_pem").is_none());
        let back: Event = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, put);
        assert_eq!(back.change.service().map(ServiceId::as_str), Some("shop"));
        let deleted = r#"{"seq":11,"at":"1970-01-01T00:00:00.000Z","type":"certificate_deleted","service":"shop","tenant":"acme","name":"www"}"#;
        let event: Event = serde_json::from_str(deleted).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(&event.change, Change::CertificateDeleted { name, .. } if name.as_str() == "www"));
        assert_eq!(serde_json::to_string(&event).ok().as_deref(), Some(deleted));
    }

    #[test]
    fn a_snapshot_without_certificates_reads_as_none() {
        let old = r#"{"seq":3,"services":[],"resync":false}"#;
        let snapshot: Snapshot = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
        assert!(snapshot.certificates.is_empty());
        assert_eq!(serde_json::to_string(&snapshot).ok().as_deref(), Some(old), "written as before when empty");
        let with = Snapshot { certificates: vec![record()], ..snapshot };
        let json = serde_json::to_string(&with).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Snapshot>(&json).ok(), Some(with));
    }

    #[test]
    fn a_key_never_prints() {
        let key = CertificateKey { version: Seq(1), sha256: "ab".to_owned(), key_pem: "SECRET".to_owned() };
        assert!(!format!("{key:?}").contains("SECRET"));
    }
}
