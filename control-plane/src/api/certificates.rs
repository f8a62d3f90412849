//! `/v1/services/{id}/certificates`: a service's TLS certificates (upload or replace, read,
//! list, delete); `/v1/certificates`: every certificate the caller may see (the operator: all);
//! `/v1/nodes/{id}/certificates/{service}/{name}`: a certificate's private key, for node
//! tokens only.
//!
//! No answer to a tenant or the operator ever holds a private key: it goes in with the upload,
//! is sealed at once ([`crate::certs::install`]) and comes out only to a node, over the node's
//! authenticated connection, to be served.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use outpost_config::{
    CertificateKey, CertificateName, CertificateRecord, CertificateSource, Seq, ServiceId, TenantId, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, ApiQuery, Auth, Body, NodeAuth, parse_json};
use super::nodes::node_id;
use super::services::lookup;
use crate::auth::Principal;
use crate::certs::{Install, install, open_key};

/// The body of `PUT /v1/services/{id}/certificates/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    /// PEM chain, leaf first.
    chain_pem: String,
    /// PEM private key of the leaf.
    key_pem: String,
    /// The service's hosts it is for; default: every host of the service it covers (at
    /// least one).
    #[serde(default)]
    hosts: Option<Vec<String>>,
}

/// A certificate as lists show it: everything but the chain (and never a key).
#[derive(Debug, Serialize)]
pub struct Summary {
    service: ServiceId,
    tenant: TenantId,
    name: CertificateName,
    version: Seq,
    updated_at: Timestamp,
    names: Vec<String>,
    issuer: String,
    not_before: Timestamp,
    not_after: Timestamp,
    sha256: String,
    source: CertificateSource,
}

impl From<CertificateRecord> for Summary {
    fn from(r: CertificateRecord) -> Self {
        Summary {
            service: r.service,
            tenant: r.tenant,
            name: r.name,
            version: r.version,
            updated_at: r.updated_at,
            names: r.names,
            issuer: r.issuer,
            not_before: r.not_before,
            not_after: r.not_after,
            sha256: r.sha256,
            source: r.source,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CertificateList {
    certificates: Vec<Summary>,
}

fn certificate_name(name: &str) -> Result<CertificateName, ApiError> {
    CertificateName::parse(name).map_err(|why| ApiError::field(ErrorKind::InvalidRequest, "name", why))
}

/// `PUT /v1/services/{id}/certificates/{name}`: 201 with the record when new, 200 when it
/// replaced one; 400 `invalid_certificate` naming each problem.
pub async fn put(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath((id, name)): ApiPath<(String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let name = certificate_name(&name)?;
    let upload: Upload = parse_json(&body, ErrorKind::InvalidRequest)?;
    let existed = app.store.certificate(&service.id, &name).await?.is_some();
    let request = Install {
        service: &service,
        name,
        chain_pem: &upload.chain_pem,
        key_pem: &upload.key_pem,
        hosts: upload.hosts.as_deref(),
        source: CertificateSource::Upload,
    };
    let record = match install(&app, request, now()).await {
        Ok(record) => record,
        Err(error) => {
            // The problems name fields and facts of the certificate, never the key.
            tracing::info!(service = %service.id, code = error.kind.code(), by = %principal, "certificate refused: {}", error.message);
            return Err(error);
        }
    };
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    let location = format!("/v1/services/{}/certificates/{}", record.service, record.name);
    Ok((status, [(header::LOCATION, location)], Json(record)).into_response())
}

/// `GET /v1/services/{id}/certificates/{name}`: the record, chain included.
pub async fn get(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<Json<CertificateRecord>, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let not_found = || ApiError::not_found(format_args!("certificate \"{name}\" of service \"{}\"", service.id));
    let parsed = CertificateName::parse(&name).map_err(|_| not_found())?;
    match app.store.certificate(&service.id, &parsed).await? {
        Some(stored) => Ok(Json(stored.record)),
        None => Err(not_found()),
    }
}

/// `GET /v1/services/{id}/certificates`: the service's certificates by name.
pub async fn list(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CertificateList>, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let stored = app.store.certificates(Some(service.id), app.limits.max_certificates_per_service).await?;
    Ok(Json(CertificateList { certificates: stored.into_iter().map(|c| c.record.into()).collect() }))
}

/// `?limit=N` on `GET /v1/certificates`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllQuery {
    limit: Option<usize>,
}

/// `GET /v1/certificates`: every certificate the caller may see, by (service, name): the
/// operator's dashboard of names, issuers, expiries and sources; a tenant sees its own.
pub async fn all(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<AllQuery>,
) -> Result<Json<CertificateList>, ApiError> {
    let limit = query.limit.unwrap_or(app.limits.max_page);
    if limit == 0 || limit > app.limits.max_page {
        let message = format!("{limit} is out of range; use 1 to {} (limits.max_page)", app.limits.max_page);
        return Err(ApiError::field(ErrorKind::InvalidRequest, "limit", message));
    }
    let stored = match &principal {
        Principal::Operator => app.store.certificates(None, limit).await?,
        // A tenant's own, read service by service (bounded by its service count).
        Principal::Tenant(_) | Principal::Node(_) => {
            let mut own = Vec::new();
            for stored in app.store.certificates(None, usize::MAX).await? {
                if principal.tenant() == Some(&stored.record.tenant) && own.len() < limit {
                    own.push(stored);
                }
            }
            own
        }
    };
    Ok(Json(CertificateList { certificates: stored.into_iter().map(|c| c.record.into()).collect() }))
}

/// `DELETE /v1/services/{id}/certificates/{name}`: 204; nodes stop serving it.
pub async fn delete(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let not_found = || ApiError::not_found(format_args!("certificate \"{name}\" of service \"{}\"", service.id));
    let parsed = CertificateName::parse(&name).map_err(|_| not_found())?;
    let Some(event) = app.store.delete_certificate(&service.id, &parsed, now()).await? else {
        return Err(not_found());
    };
    app.nodes.appended(event.seq);
    tracing::info!(service = %service.id, name = %parsed, seq = %event.seq, by = %principal, "certificate_deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/nodes/{id}/certificates/{service}/{name}`: the key of the certificate's current
/// version, for the node `id` (node tokens only; a token bound to another node gets 403).
pub async fn node_key(
    State(app): State<AppState>,
    auth: NodeAuth,
    ApiPath((id, service, name)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let id = node_id(&id)?;
    auth.check(&id)?;
    let not_found = || ApiError::not_found(format_args!("certificate \"{name}\" of service \"{service}\""));
    let service_id = ServiceId::parse(&service).map_err(|_| not_found())?;
    let parsed = CertificateName::parse(&name).map_err(|_| not_found())?;
    let Some(stored) = app.store.certificate(&service_id, &parsed).await? else {
        return Err(not_found());
    };
    let key_pem = open_key(&app.keyring, &stored).map_err(|e| ApiError::internal("open certificate key", e))?;
    tracing::info!(node = %id, service = %service_id, name = %parsed, version = %stored.record.version, "certificate key sent to node");
    let key = CertificateKey { version: stored.record.version, sha256: stored.record.sha256, key_pem };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(key)).into_response())
}

fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}
