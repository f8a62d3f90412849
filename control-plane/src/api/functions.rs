//! `/v1/services/{id}/functions`: upload, list, activate and roll back a service's edge
//! function; `/v1/functions/{sha256}`: the bytes, for nodes.
//!
//! An upload is checked ([`component::check`]) and stored by content hash as an immutable
//! version; nothing runs it until it is activated. Activating or rolling back writes a new
//! version of the service record with its `function` (a `service_put` event), so nodes apply
//! config and function together, fetching the bytes by hash.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use outpost_config::{FunctionRef, ServiceId, ServiceRecord, Timestamp};
use serde::Serialize;

use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, Auth};
use super::services::lookup;
use super::{AppState, component};
use crate::auth::Principal;
use crate::store::{FunctionChange, FunctionVersion, NewFunction};

/// The `.wasm` body, at most `limits.max_function_size` (the route has no `DefaultBodyLimit`;
/// this is its limit). Refused before reading when the `Content-Type` says it is something
/// else.
pub struct WasmBody(pub Bytes);

impl FromRequest<AppState> for WasmBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, ApiError> {
        let kind = request.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?").to_owned());
        if let Some(kind) = kind
            && !(kind.starts_with("application/wasm") || kind.starts_with("application/octet-stream"))
        {
            return Err(ApiError::field(
                ErrorKind::InvalidRequest,
                "Content-Type",
                format!("\"{kind}\" is not a function; send the .wasm as application/wasm"),
            ));
        }
        let limit = app.limits.max_function_size;
        match axum::body::to_bytes(request.into_body(), limit.as_usize()).await {
            Ok(bytes) => Ok(WasmBody(bytes)),
            Err(_) => Err(ApiError::new(
                ErrorKind::BodyTooLarge,
                format!("the function is larger than {limit} (limits.max_function_size), or its upload broke off"),
            )),
        }
    }
}

/// What an upload answers.
#[derive(Debug, Serialize)]
pub struct Uploaded {
    service: ServiceId,
    #[serde(flatten)]
    version: FunctionVersion,
}

/// `POST /v1/services/{id}/functions`: 201 with the new version; 200 with the existing one
/// when the service already has these bytes.
pub async fn upload(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
    WasmBody(bytes): WasmBody,
) -> Result<Response, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    if let Err(error) = component::check(&bytes) {
        tracing::info!(service = %service.id, code = error.kind.code(), "function refused: {}", error.message);
        return Err(error);
    }
    let sha256 = sha256_hex(&bytes);
    let new = NewFunction {
        service: service.id.clone(),
        tenant: service.tenant.clone(),
        sha256,
        bytes,
        max_versions: app.limits.max_function_versions,
    };
    let added = app.store.add_function(new, now()).await?;
    for dropped in &added.dropped {
        tracing::info!(service = %service.id, version = dropped.version, "function version deleted (limits.max_function_versions)");
    }
    tracing::info!(service = %service.id, version = added.version.version, sha256 = %added.version.sha256,
        size = added.version.size, created = added.created, by = %principal, "function_uploaded");
    let status = if added.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Uploaded { service: service.id, version: added.version })).into_response())
}

/// What the list answers.
#[derive(Debug, Serialize)]
pub struct FunctionList {
    service: ServiceId,
    /// The active version, as the service record names it; null when none is.
    active: Option<FunctionRef>,
    /// Ascending by version.
    versions: Vec<FunctionVersion>,
    /// Activated versions, oldest first; the last is active, the one before it is where a
    /// rollback goes.
    history: Vec<u32>,
}

/// `GET /v1/services/{id}/functions`.
pub async fn list(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<FunctionList>, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let set = app.store.functions(&service.id).await?;
    Ok(Json(FunctionList {
        service: service.id,
        active: service.function,
        versions: set.versions,
        history: set.history,
    }))
}

/// `POST /v1/services/{id}/functions/{version}/activate`: 200 with the new service record.
pub async fn activate(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath((id, version)): ApiPath<(String, String)>,
) -> Result<Json<ServiceRecord>, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let not_found = || ApiError::not_found(format_args!("function version {version} of service \"{}\"", service.id));
    let number: u32 = version.parse().map_err(|_| not_found())?;
    let set = app.store.functions(&service.id).await?;
    if set.version(number).is_none() {
        return Err(not_found());
    }
    change(&app, &principal, service, FunctionChange::Activate(number)).await
}

/// `POST /v1/services/{id}/functions/rollback`: back to the version active before the
/// current one; 409 `no_previous_version` when there is none.
pub async fn rollback(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ServiceRecord>, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let set = app.store.functions(&service.id).await?;
    if set.previous().is_none() {
        let why = match set.active() {
            Some(active) => {
                format!("version {} is the first activated (or the earlier ones were deleted)", active.version)
            }
            None => "no function is active".to_owned(),
        };
        return Err(ApiError::new(
            ErrorKind::NoPreviousVersion,
            format!("service \"{}\" has no earlier function to roll back to: {why}", service.id),
        ));
    }
    change(&app, &principal, service, FunctionChange::RollBack).await
}

/// Writes the activation or rollback and wakes the node streams.
async fn change(
    app: &AppState,
    principal: &Principal,
    service: ServiceRecord,
    change: FunctionChange,
) -> Result<Json<ServiceRecord>, ApiError> {
    let event = app.store.set_function(&service.id, service.version, change, now()).await?;
    app.nodes.appended(event.seq);
    let outpost_config::Change::ServicePut { service: record } = event.change else {
        return Err(ApiError::internal("set function", "the store answered with another kind of event"));
    };
    let label = record.function.as_ref().map(FunctionRef::label).unwrap_or_default();
    tracing::info!(service = %record.id, seq = %event.seq, function = %label, ?change, by = %principal, "function_activated");
    Ok(Json(record))
}

/// `GET /v1/functions/{sha256}`: the bytes of a stored version (node and operator tokens:
/// nodes fetch what a service record names; tenants read their versions by the list).
pub async fn bytes(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiPath(sha256): ApiPath<String>,
) -> Result<Response, ApiError> {
    let principal =
        app.tokens.authenticate(&headers).map_err(|e| ApiError::new(ErrorKind::Unauthorized, e.to_string()))?;
    if let Principal::Tenant(_) = principal {
        return Err(ApiError::new(ErrorKind::Forbidden, "function bytes are for node and operator tokens"));
    }
    let not_found = || ApiError::not_found(format_args!("function {sha256}"));
    if !FunctionRef::is_sha256(&sha256) {
        return Err(not_found());
    }
    let Some(bytes) = app.store.function_bytes(&sha256).await? else {
        return Err(not_found());
    };
    let etag = format!("\"{sha256}\"");
    let headers = [
        (header::CONTENT_TYPE, "application/wasm".to_owned()),
        // Content-addressed: the bytes under a hash never change.
        (header::CACHE_CONTROL, "public, max-age=31536000, immutable".to_owned()),
        (header::ETAG, etag),
    ];
    Ok((headers, bytes).into_response())
}

/// SHA-256 of `bytes` as 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::auth::hex(&crate::auth::sha256(bytes))
}

fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lower_case_hex_sha256() {
        // FIPS 180-2 test vector: SHA-256("abc").
        let abc = sha256_hex(b"abc");
        assert_eq!(abc, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(FunctionRef::is_sha256(&abc));
        assert!(!FunctionRef::is_sha256(&abc.to_uppercase()));
        assert!(!FunctionRef::is_sha256("../../etc/passwd"));
    }
}
