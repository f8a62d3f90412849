//! The admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text), `/upstreams` and
//! `POST /purge`. Loopback by default (config refuses a public address unless told otherwise
//! and given a token).
//!
//! Every route needs `Authorization: Bearer TOKEN` (RFC 6750 §2.1) with the token of
//! `listen.admin_token(_file)`, compared in constant time; `GET /healthz` too (issue 18: an
//! open route on the admin listener tells anyone who reaches it which nodes run, and the
//! control plane's probes carry the token, `health.node_admin_token_file`). Two exceptions keep
//! liveness probes working: `listen.admin_open_healthz = true` serves `/healthz` to anyone (for
//! probes that cannot send a header), and a node with no token configured serves `/healthz`
//! only, to anyone, and 401 to the rest (a fresh install; the start-up warning says so).
//! Connections are bounded (`listen.admin_max_connections`, longest-idle closed first)
//! and timed out like client connections (`limits.header_read_timeout`,
//! `limits.keepalive_timeout`).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use metrics_exporter_prometheus::PrometheusHandle;
use outpost_config::PurgeRequest;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, EdgeBody};
use crate::cache::purge::{self, PurgeSource, Target};
use crate::listen::conns::Conns;
use crate::listen::{self, TrackedBody};
use crate::pipeline::NodeState;

/// Largest purge request body. Default: 64 KiB.
const MAX_PURGE_BODY: usize = 64 * 1024;
/// Largest admin request header section (hyper's parse buffer): admin requests are small.
const MAX_ADMIN_HEADER: usize = 16 * 1024;

mod auth;
pub use auth::{AdminToken, TokenError};
use auth::{authorize, is_open, unauthorized};

pub struct Admin {
    pub state: Arc<NodeState>,
    pub metrics: PrometheusHandle,
    pub ready: AtomicBool,
    /// `listen.admin_token(_file)`; `None`: every route but `/healthz` answers 401.
    pub token: Option<AdminToken>,
    /// `listen.admin_open_healthz`: `/healthz` needs no token.
    pub open_healthz: bool,
    /// `listen.admin_max_connections`.
    pub max_connections: usize,
}

pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut shutdown: watch::Receiver<bool>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(admin.state.limits.header_read_timeout)
        .max_buf_size(MAX_ADMIN_HEADER);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(16).max_header_list_size(MAX_ADMIN_HEADER as u32);
    let conns = Conns::new(admin.max_connections);
    let timeouts = listen::timeouts(&admin.state.limits);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Ok((tcp, peer)) = accepted else { continue };
        let Some(slot) = listen::admit(&conns, peer, "listen.admin_max_connections") else { continue };
        let activity = slot.activity.clone();
        let admin = admin.clone();
        let builder = builder.clone();
        listen::watched(slot, peer, timeouts, false, async move {
            let svc = service_fn(move |req| {
                let busy = activity.begin();
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&admin, req).await.map(|b| TrackedBody::new(b, busy))) }
            });
            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

async fn route(admin: &Admin, req: Request<Incoming>) -> Response<EdgeBody> {
    if !is_open(req.method(), req.uri().path(), admin.token.is_some(), admin.open_healthz)
        && let Err(refusal) = authorize(admin.token.as_ref(), req.headers())
    {
        return unauthorized(refusal);
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") if admin.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        (&Method::GET, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        (&Method::GET, "/metrics") => {
            let cache = admin.state.delivery.cache();
            metrics::gauge!(crate::metrics::CACHE_MEMORY_BYTES).set(cache.memory_usage() as f64);
            metrics::gauge!(crate::metrics::PURGE_RECORDS).set(cache.purge_records() as f64);
            let mut resp = text(StatusCode::OK, "");
            *resp.body_mut() = body::full(admin.metrics.render());
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; version=0.0.4"));
            resp
        }
        (&Method::POST, "/purge") => purge(admin, req).await,
        (&Method::GET, "/upstreams") => upstreams(admin),
        (_, "/purge") => error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST /purge"),
        _ => error(StatusCode::NOT_FOUND, "not_found", "endpoints: /healthz /readyz /metrics /upstreams POST /purge"),
    }
}

async fn purge(admin: &Admin, req: Request<Incoming>) -> Response<EdgeBody> {
    let raw: Bytes = match Limited::new(req.into_body(), MAX_PURGE_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &format!("purge body: {e}")),
    };
    let request: PurgeRequest = match serde_json::from_slice(&raw) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &format!("purge body: {e}")),
    };
    let (service, target) = match resolve(admin, &request) {
        Ok(st) => st,
        Err(resp) => return resp,
    };
    match purge::record(admin.state.delivery.cache(), &service, target, request.soft, PurgeSource::Admin).await {
        Ok(id) => json_response(StatusCode::OK, &json!({ "id": id, "service": service, "purged": request })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "purge_log", &e.to_string()),
    }
}

/// Every service's shields and origins: health, circuit breaker, requests in flight.
fn upstreams(admin: &Admin) -> Response<EdgeBody> {
    let services: Vec<_> = admin
        .state
        .routes
        .current()
        .services()
        .iter()
        .map(|s| json!({ "service": &*s.name, "upstreams": s.upstream.snapshot() }))
        .collect();
    json_response(StatusCode::OK, &json!({ "services": services }))
}

/// The purge's service and its target as the purge log keys it (`host/path`).
#[allow(clippy::result_large_err)]
fn resolve(admin: &Admin, req: &PurgeRequest) -> Result<(String, Target), Response<EdgeBody>> {
    let router = admin.state.routes.current();
    let by_name = |name: &str| router.services().iter().any(|s| &*s.name == name);
    let target =
        Target::from_request(&req.target).map_err(|e| error(StatusCode::BAD_REQUEST, e.code(), &e.to_string()))?;
    let host_service = target.host().and_then(|host| router.lookup(host)).map(|s| s.name.to_string());
    let service = match (&req.service, host_service) {
        (Some(s), Some(h)) if *s != h => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "service_mismatch",
                &format!("the host belongs to service {h}, not {s}"),
            ));
        }
        (Some(s), _) if !by_name(s) => {
            return Err(error(StatusCode::NOT_FOUND, "unknown_service", &format!("no service named {s}")));
        }
        (Some(s), _) => s.clone(),
        (None, Some(h)) => h,
        (None, None) => {
            let msg = match target {
                Target::Url(_) | Target::Prefix(_) => "no service serves this host; name one with \"service\"",
                _ => "\"service\" is required for tag and all purges",
            };
            return Err(error(StatusCode::BAD_REQUEST, "service_required", msg));
        }
    };
    let target = router.purge_target(&service, target);
    Ok((service, target))
}

fn text(status: StatusCode, body: &'static str) -> Response<EdgeBody> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    resp
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<EdgeBody> {
    let mut resp = Response::new(body::full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<EdgeBody> {
    tracing::info!(code, message, "admin request refused");
    json_response(status, &json!({ "error": { "code": code, "message": message } }))
}
