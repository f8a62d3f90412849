//! The admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text) and `POST /purge`.
//! Loopback by default (config refuses a public address unless told otherwise).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use metrics_exporter_prometheus::PrometheusHandle;
use outpost_config::PurgeRequest;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, EdgeBody};
use crate::cache::purge::{self, PurgeSource, Target};
use crate::pipeline::NodeState;

/// Largest purge request body. Default: 64 KiB.
const MAX_PURGE_BODY: usize = 64 * 1024;

pub struct Admin {
    pub state: Arc<NodeState>,
    pub metrics: PrometheusHandle,
    pub ready: AtomicBool,
}

pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut shutdown: watch::Receiver<bool>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let admin = admin.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&admin, req).await) }
            });
            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

async fn route(admin: &Admin, req: Request<Incoming>) -> Response<EdgeBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") if admin.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        (&Method::GET, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        (&Method::GET, "/metrics") => {
            let cache = &admin.state.cache;
            metrics::gauge!(crate::metrics::CACHE_MEMORY_BYTES).set(cache.store.memory_usage() as f64);
            metrics::gauge!(crate::metrics::PURGE_RECORDS).set(cache.purges.len() as f64);
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
    match purge::record(&admin.state.cache, &service, target, request.soft, PurgeSource::Admin).await {
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
