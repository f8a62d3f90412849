//! Node administration, for the operator: `DELETE /v1/nodes/{id}[?force=true]` (deregister),
//! `POST /v1/nodes/{id}/drain` and `POST /v1/nodes/{id}/restore` (per-node drain, beside the
//! PoP drain). Tenants and nodes get 403.
//!
//! - Deregistering forgets the node's registration and acks: it leaves DNS answers and purge
//!   progress at once. A node whose stream is open is refused (409 `node_live`: it would
//!   register again on its next reconnect) unless `force=true`, which also ends the stream.
//! - A drained node stays registered and followed (it keeps applying purges) but DNS leaves
//!   its address out, as for a drained PoP; persisted, so a restart keeps it.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use outpost_config::Timestamp;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, ApiQuery, Auth};
use super::nodes::{node_id, unknown};
use crate::auth::Principal;
use crate::nodes::NodeView;

fn operator(principal: &Principal) -> Result<(), ApiError> {
    if *principal == Principal::Operator {
        Ok(())
    } else {
        Err(ApiError::new(ErrorKind::Forbidden, "node administration is for operator tokens"))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// `DELETE /v1/nodes/{id}[?force=true]`: 204 once the store forgot the node.
pub async fn delete(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    operator(&principal)?;
    let id = node_id(&id)?;
    if app.nodes.is_connected(&id) && !query.force {
        return Err(ApiError::new(
            ErrorKind::NodeLive,
            format!("node \"{id}\" has an open stream and would register again; stop it first, or add ?force=true"),
        ));
    }
    if !app.store.delete_node(&id).await? {
        return Err(unknown(&id));
    }
    app.nodes.remove(&id);
    app.pops.rebuild();
    tracing::info!(node = %id, force = query.force, by = %principal, "node deregistered");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/nodes/{id}/drain`: the node as it is now.
pub async fn drain(State(app): State<AppState>, Auth(who): Auth, ApiPath(id): ApiPath<String>) -> NodeAnswer {
    set_drained(&app, &who, &id, true).await
}

/// `POST /v1/nodes/{id}/restore`.
pub async fn restore(State(app): State<AppState>, Auth(who): Auth, ApiPath(id): ApiPath<String>) -> NodeAnswer {
    set_drained(&app, &who, &id, false).await
}

type NodeAnswer = Result<Json<NodeView>, ApiError>;

async fn set_drained(app: &AppState, principal: &Principal, id: &str, drain: bool) -> NodeAnswer {
    operator(principal)?;
    let id = node_id(id)?;
    let now = std::time::Instant::now();
    let current = app.nodes.list(now).into_iter().find(|n| n.node.id == id).ok_or_else(|| unknown(&id))?;
    // Draining a drained node keeps its first drain time; restoring a restored one is a no-op.
    if current.drained_at.is_some() != drain {
        let at = drain.then(|| Timestamp::from_system(SystemTime::now()));
        if !app.store.set_node_drain(&id, at).await? {
            return Err(unknown(&id));
        }
        app.nodes.drained(&id, at);
        app.pops.rebuild();
        let what = if drain { "node drained: DNS leaves its address out" } else { "node restored" };
        tracing::info!(node = %id, by = %principal, "{what}");
    }
    let view = app.nodes.list(std::time::Instant::now()).into_iter().find(|n| n.node.id == id);
    view.map(Json).ok_or_else(|| unknown(&id))
}
