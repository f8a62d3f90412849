//! The node protocol's routes (docs/contracts.md, "Node protocol"): `PUT /v1/nodes/{id}`
//! (register), `GET /v1/nodes/{id}/stream?after=N` (NDJSON: snapshot or events, then new
//! events and heartbeats), `POST /v1/nodes/{id}/ack` — all for node tokens only — and
//! `GET /v1/nodes` for the operator.

use std::time::{Instant, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use outpost_config::{Ack, NodeId, NodeRecord, NodeRegistration, Registered, Seq, Timestamp};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, ApiQuery, Auth, Body, NodeAuth, parse_json};
use crate::auth::Principal;
use crate::nodes::{AckOutcome, NodeView, stream};

fn node_id(id: &str) -> Result<NodeId, ApiError> {
    NodeId::parse(id).map_err(|message| ApiError::field(ErrorKind::InvalidRequest, "id", message))
}

fn unknown(id: &NodeId) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("node \"{id}\" is not registered; PUT /v1/nodes/{id} first"))
}

/// `PUT /v1/nodes/{id}`: register, or update the registration. Idempotent.
pub async fn register(
    State(app): State<AppState>,
    auth: NodeAuth,
    ApiPath(id): ApiPath<String>,
    Body(body): Body,
) -> Result<Json<Registered>, ApiError> {
    let id = node_id(&id)?;
    auth.check(&id)?;
    let registration = parse_json::<NodeRegistration>(&body, ErrorKind::InvalidRequest)?;
    registration.check().map_err(|message| {
        let (path, message) = message.split_once(": ").unwrap_or(("", &message));
        ApiError::field(ErrorKind::InvalidRequest, path, message)
    })?;
    let record = NodeRecord { id, registration, registered_at: Timestamp::from_system(SystemTime::now()) };
    let stored = app.store.put_node(record).await?;
    app.nodes.registered(stored.clone());
    let head = app.store.last_seq().await?;
    let node = stored.node;
    tracing::info!(node = %node.id, pop = ?node.registration.pop, role = ?node.registration.role, "node registered");
    let log = Some(format!("{:016x}", app.store.log_id()));
    Ok(Json(Registered { node, head, log }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The last seq the node applied and persisted; 0 (the default) for nothing.
    after: Option<u64>,
}

/// `GET /v1/nodes/{id}/stream?after=N`: NDJSON, never ending by itself.
pub async fn stream(
    State(app): State<AppState>,
    auth: NodeAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let id = node_id(&id)?;
    auth.check(&id)?;
    if !app.nodes.is_registered(&id) {
        return Err(unknown(&id));
    }
    let Some(connection) = app.nodes.connect(&id) else {
        return Err(ApiError::new(ErrorKind::Unavailable, "the control plane is shutting down; reconnect later"));
    };
    let after = Seq(query.after.unwrap_or(0));
    tracing::info!(node = %id, %after, "stream opened");
    let body = stream::open(app.store.clone(), app.nodes.clone(), id, connection, after);
    let headers = [(header::CONTENT_TYPE, "application/x-ndjson"), (header::CACHE_CONTROL, "no-store")];
    Ok((StatusCode::OK, headers, body).into_response())
}

/// `POST /v1/nodes/{id}/ack` `{"seq": N}`: 204 once recorded (a lower seq is ignored).
pub async fn ack(
    State(app): State<AppState>,
    auth: NodeAuth,
    ApiPath(id): ApiPath<String>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    let id = node_id(&id)?;
    auth.check(&id)?;
    let Ack { seq, functions } = parse_json::<Ack>(&body, ErrorKind::InvalidRequest)?;
    if let Some(functions) = functions {
        app.nodes.report_functions(&id, functions);
    }
    // The hub's head is rarely behind the store (a writer that never woke it); ask the store
    // before refusing.
    let known = *app.nodes.head().borrow();
    if seq > known {
        let head = app.store.last_seq().await?;
        if seq > head {
            return Err(ApiError::field(
                ErrorKind::InvalidRequest,
                "seq",
                format!("{seq} is beyond the log's head ({head}); ack only what the stream sent"),
            ));
        }
    }
    let at = Timestamp::from_system(SystemTime::now());
    match app.nodes.ack(&id, seq, at).await {
        Ok(AckOutcome::Unknown) => Err(unknown(&id)),
        Ok(AckOutcome::Advanced | AckOutcome::Ignored) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(ApiError::internal("record ack", error)),
    }
}

/// What `GET /v1/nodes` answers.
#[derive(Debug, Serialize)]
pub struct NodeList {
    nodes: Vec<NodeView>,
    head: Seq,
}

/// `GET /v1/nodes`: every registered node with its liveness and acks (operator only).
pub async fn list(State(app): State<AppState>, Auth(principal): Auth) -> Result<Json<NodeList>, ApiError> {
    if principal != Principal::Operator {
        return Err(ApiError::new(ErrorKind::Forbidden, "the node list is for operator tokens"));
    }
    let head = app.store.last_seq().await?;
    Ok(Json(NodeList { nodes: app.nodes.list(Instant::now()), head }))
}
