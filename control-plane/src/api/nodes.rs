//! The node protocol's routes (docs/contracts.md, "Node protocol"): `PUT /v1/nodes/{id}`
//! (register), `GET /v1/nodes/{id}/stream?after=N` (NDJSON: snapshot or events, then new
//! events and heartbeats), `POST /v1/nodes/{id}/ack` — all for node tokens only — and
//! `GET /v1/nodes` for the operator (deregistration and drains are in `node_admin`).
//!
//! One node, one identity: while a stream holds a node id, registering or streaming as that id
//! from another connection gets **409** `node_id_in_use` naming the holder's address (logged,
//! counted in `outpost_cp_node_id_conflicts_total`); the registration and DNS answers keep the
//! holder's. A node restarted on its id gets it back once its old stream has ended.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use outpost_config::{Ack, NodeId, NodeRecord, NodeRegistration, Registered, Seq, Timestamp};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, ApiQuery, Auth, Body, NodeAuth, Peer, parse_json};
use crate::auth::Principal;
use crate::nodes::{AckOutcome, NodeView, Refusal, stream};

pub(super) fn node_id(id: &str) -> Result<NodeId, ApiError> {
    NodeId::parse(id).map_err(|message| ApiError::field(ErrorKind::InvalidRequest, "id", message))
}

pub(super) fn unknown(id: &NodeId) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("node \"{id}\" is not registered; PUT /v1/nodes/{id} first"))
}

/// 409 `node_id_in_use`, logged and counted: `peer` claimed `id`, which `holder`'s stream holds
/// (on `replica`, when another replica holds it).
fn in_use(
    app: &AppState,
    id: &NodeId,
    peer: Option<SocketAddr>,
    holder: Option<SocketAddr>,
    replica: Option<&str>,
) -> ApiError {
    app.counters.node_id_conflict();
    let mut holder = holder.map_or_else(|| "an open stream".to_owned(), |h| h.to_string());
    if let Some(replica) = replica {
        holder = format!("{holder} (control-plane replica {replica})");
    }
    let claimant = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    tracing::warn!(node = %id, %holder, %claimant, "node id claimed while another connection holds its stream; refused");
    ApiError::new(
        ErrorKind::NodeIdInUse,
        format!(
            "node id \"{id}\" is held by a live stream from {holder}; a node restarted on this id gets it back once \
             that stream ends (retry shortly), two nodes need two ids"
        ),
    )
}

/// `PUT /v1/nodes/{id}`: register, or update the registration. Idempotent. Refused (409)
/// while another connection holds the node's stream.
pub async fn register(
    State(app): State<AppState>,
    auth: NodeAuth,
    Peer(peer): Peer,
    ApiPath(id): ApiPath<String>,
    Body(body): Body,
) -> Result<Json<Registered>, ApiError> {
    let id = node_id(&id)?;
    auth.check(&id)?;
    if let Some(holder) = app.nodes.holder(&id) {
        return Err(in_use(&app, &id, peer, holder, None));
    }
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

/// `GET /v1/nodes/{id}/stream?after=N`: NDJSON, never ending by itself. Refused (409) while
/// another connection holds the node's stream.
pub async fn stream(
    State(app): State<AppState>,
    auth: NodeAuth,
    Peer(peer): Peer,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let id = node_id(&id)?;
    auth.check(&id)?;
    let connection = match app.nodes.claim(&id, peer).await {
        Ok(connection) => connection,
        Err(Refusal::Unknown) => return Err(unknown(&id)),
        Err(Refusal::InUse { holder, replica }) => return Err(in_use(&app, &id, peer, holder, replica.as_deref())),
        Err(Refusal::Closing) => {
            return Err(ApiError::new(ErrorKind::Unavailable, "the control plane is shutting down; reconnect later"));
        }
        Err(Refusal::Store(error)) => {
            tracing::warn!(node = %id, %error, "stream refused: the store did not take the claim");
            return Err(ApiError::new(ErrorKind::Unavailable, "the store does not answer; try another control plane"));
        }
    };
    let after = Seq(query.after.unwrap_or(0));
    tracing::info!(node = %id, %after, peer = ?peer, "stream opened");
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
    /// The replica that answered (its id in `nodes[].replica`).
    replica: String,
}

/// `GET /v1/nodes`: every registered node with its liveness and acks (operator only).
pub async fn list(State(app): State<AppState>, Auth(principal): Auth) -> Result<Json<NodeList>, ApiError> {
    if principal != Principal::Operator {
        return Err(ApiError::new(ErrorKind::Forbidden, "the node list is for operator tokens"));
    }
    let head = app.store.last_seq().await?;
    Ok(Json(NodeList { nodes: app.nodes.list(Instant::now()), head, replica: app.nodes.replica().to_owned() }))
}
