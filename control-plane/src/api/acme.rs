//! `GET /v1/services/{id}/acme`: where a `tls = "auto"` service's certificate stands: the
//! order in flight or the last one, the certificate's dates, failures in a row and the last
//! ACME error (the CA's problem detail), and when the next attempt is due. The tenant's own
//! services only (another tenant's is 404, as a missing one).

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use outpost_config::{ServiceConfig, ServiceId, Timestamp, TlsMode};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, Auth};
use super::services::lookup;
use crate::acme::schedule::{self, Jitter, Plan, Standing};
use crate::store::{AcmeFailure, AcmeStatus, IssuedDates};

/// The answer.
#[derive(Debug, Serialize)]
pub struct AcmeView {
    service: ServiceId,
    /// The service's `tls`: `"auto"` or `"manual"` (then nothing else is set).
    tls: TlsMode,
    /// `idle`, `ordering`, `valid`, `failed`; absent before the first round looked at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<AcmeStatus>,
    hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<IssuedDates>,
    failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<AcmeFailure>,
    /// When the driver next orders (a renewal, or a retry after a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt: Option<Timestamp>,
}

/// `GET /v1/services/{id}/acme`.
pub async fn get(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AcmeView>, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let tls = serde_json::from_value::<ServiceConfig>(service.config.clone()).map(|c| c.tls).unwrap_or_default();
    let state = if tls == TlsMode::Auto { app.store.acme_state(&service.id).await? } else { None };
    let Some(state) = state else {
        return Ok(Json(AcmeView {
            service: service.id,
            tls,
            status: None,
            hosts: Vec::new(),
            certificate: None,
            failures: 0,
            last_error: None,
            next_attempt: None,
        }));
    };
    let settings = &app.acme;
    let standing = Standing {
        certificate: state.certificate.map(|c| (c.not_before, c.not_after)),
        failures: state.failures,
        failed_at: state.last_error.as_ref().map(|e| e.at),
    };
    let jitter = Jitter { renew: state.renew_jitter, retry: state.retry_jitter };
    let now = Timestamp::from_system(SystemTime::now());
    let next_attempt = match schedule::plan(standing, now, settings.retry_min, settings.retry_max, jitter) {
        _ if state.status == AcmeStatus::Ordering => None,
        Plan::Order => Some(now),
        Plan::Wait(at) => Some(at),
    };
    Ok(Json(AcmeView {
        service: service.id,
        tls,
        status: Some(state.status),
        hosts: state.hosts,
        certificate: state.certificate,
        failures: state.failures,
        last_error: state.last_error,
        next_attempt,
    }))
}
