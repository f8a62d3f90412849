//! PoPs, for the operator: `GET /v1/pops` (each PoP's region, edge nodes, health, drain, and
//! the DNS answer counters), `POST /v1/pops/{pop}/drain` and `POST /v1/pops/{pop}/restore`.
//! Tenants and nodes get 403. A drain is persisted before it answers and takes effect in DNS
//! at once; both answer the PoP as it is now.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use outpost_config::is_node_label;
use serde::Serialize;

use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, Auth};
use super::{App, AppState};
use crate::auth::Principal;
use crate::dns::StatsView;
use crate::pops::{PopError, PopView};

/// What `GET /v1/pops` answers.
#[derive(Debug, Serialize)]
pub struct PopList {
    pops: Vec<PopView>,
    /// How long a dead edge node can stay up (`[health]`): how fast DNS answers move.
    #[serde(with = "outpost_config::units::duration")]
    detection_time: Duration,
    /// DNS answer counters since the control plane started.
    dns: StatsView,
}

fn operator(principal: &Principal) -> Result<(), ApiError> {
    if *principal == Principal::Operator {
        Ok(())
    } else {
        Err(ApiError::new(ErrorKind::Forbidden, "PoPs are for operator tokens"))
    }
}

fn pop_name(pop: &str) -> Result<(), ApiError> {
    if is_node_label(pop) {
        Ok(())
    } else {
        Err(ApiError::field(
            ErrorKind::InvalidRequest,
            "pop",
            format!("\"{pop}\" is not a PoP name; use 1 to 64 of A-Z a-z 0-9 . _ -"),
        ))
    }
}

fn pop_error(error: PopError) -> ApiError {
    match error {
        PopError::Unknown(_) => ApiError::new(ErrorKind::NotFound, error.to_string()),
        PopError::Store(error) => ApiError::from(error),
    }
}

/// `GET /v1/pops`.
pub async fn list(State(app): State<AppState>, Auth(principal): Auth) -> Result<Json<PopList>, ApiError> {
    operator(&principal)?;
    let detection_time = app.pops.settings().detection_time();
    Ok(Json(PopList { pops: app.pops.list(), detection_time, dns: app.dns_stats.view() }))
}

/// `POST /v1/pops/{pop}/drain`.
pub async fn drain(State(app): State<AppState>, Auth(who): Auth, ApiPath(pop): ApiPath<String>) -> PopAnswer {
    set_drained(&app, &who, &pop, true).await
}

/// `POST /v1/pops/{pop}/restore`.
pub async fn restore(State(app): State<AppState>, Auth(who): Auth, ApiPath(pop): ApiPath<String>) -> PopAnswer {
    set_drained(&app, &who, &pop, false).await
}

type PopAnswer = Result<Json<PopView>, ApiError>;

async fn set_drained(app: &App, principal: &Principal, pop: &str, drained: bool) -> PopAnswer {
    operator(principal)?;
    pop_name(pop)?;
    app.pops.set_drained(pop, drained).await.map(Json).map_err(pop_error)
}
