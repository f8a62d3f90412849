//! `POST /v1/backup` `{"path": "/var/backups/cp-2026-12-07.redb"}` (operator only): the
//! store writes a consistent copy of itself, taken at one instant while it serves, to a new
//! file on the control plane's host (never over an existing one). `control-plane backup FILE`
//! calls it when the control plane runs. 200 `{"path", "records"}`.

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ErrorKind};
use super::extract::{Auth, Body, parse_json};
use crate::auth::Principal;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// Absolute path of the copy, on the control plane's host.
    path: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct BackupDone {
    path: PathBuf,
    records: u64,
}

/// `POST /v1/backup`.
pub async fn post(
    State(app): State<AppState>,
    Auth(principal): Auth,
    Body(body): Body,
) -> Result<Json<BackupDone>, ApiError> {
    if principal != Principal::Operator {
        return Err(ApiError::new(ErrorKind::Forbidden, "backups are for operator tokens"));
    }
    let BackupBody { path } = parse_json(&body, ErrorKind::InvalidRequest)?;
    if !path.is_absolute() {
        return Err(ApiError::field(
            ErrorKind::InvalidRequest,
            "path",
            format!("\"{}\" is relative; give an absolute path on the control plane's host", path.display()),
        ));
    }
    let records = app
        .store
        .backup(path.clone())
        .await
        .map_err(|e| ApiError::field(ErrorKind::InvalidRequest, "path", format!("cannot write the backup: {e}")))?;
    tracing::info!(path = %path.display(), records, by = %principal, "store backed up");
    Ok(Json(BackupDone { path, records }))
}
