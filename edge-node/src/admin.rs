//! The admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text) and `POST /purge`.
//! Loopback by default (config refuses a public address unless told otherwise).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use metrics_exporter_prometheus::PrometheusHandle;
use outpost_config::{PurgeRequest, PurgeTarget};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, EdgeBody};
use crate::cache::purge::Target;
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
    let cache = admin.state.cache.clone();
    let soft = request.soft;
    let svc = service.clone();
    let recorded =
        tokio::task::spawn_blocking(move || cache.purges.record(&svc, target, soft, SystemTime::now())).await;
    match recorded {
        Ok(Ok(id)) => {
            let kind = match &request.target {
                PurgeTarget::Url { .. } => "url",
                PurgeTarget::Prefix { .. } => "prefix",
                PurgeTarget::Tag { .. } => "tag",
                PurgeTarget::All => "all",
            };
            metrics::counter!(crate::metrics::PURGES, "kind" => kind, "soft" => if soft { "true" } else { "false" })
                .increment(1);
            tracing::info!(id, service, kind, soft, "purge recorded");
            json_response(StatusCode::OK, &json!({ "id": id, "service": service, "purged": request }))
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "purge_log", &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e.to_string()),
    }
}

/// Every service's shields and origins: health, circuit breaker, requests in flight.
fn upstreams(admin: &Admin) -> Response<EdgeBody> {
    let services: Vec<_> = admin
        .state
        .router
        .services()
        .iter()
        .map(|s| json!({ "service": &*s.name, "upstreams": s.upstream.snapshot() }))
        .collect();
    json_response(StatusCode::OK, &json!({ "services": services }))
}

/// The purge's service and its target as the purge log keys it (`host/path`).
#[allow(clippy::result_large_err)]
fn resolve(admin: &Admin, req: &PurgeRequest) -> Result<(String, Target), Response<EdgeBody>> {
    let router = &admin.state.router;
    let by_name = |name: &str| router.services().iter().any(|s| &*s.name == name);
    let (host_service, target) = match &req.target {
        PurgeTarget::Url { url } => {
            let key = url_key(url).map_err(|m| error(StatusCode::BAD_REQUEST, "bad_url", &m))?;
            (router.lookup(key.split('/').next().unwrap_or("")).map(|s| s.name.to_string()), Target::Url(key))
        }
        PurgeTarget::Prefix { prefix } => {
            let key = url_key(prefix).map_err(|m| error(StatusCode::BAD_REQUEST, "bad_prefix", &m))?;
            (router.lookup(key.split('/').next().unwrap_or("")).map(|s| s.name.to_string()), Target::Prefix(key))
        }
        PurgeTarget::Tag { tag } if tag.is_empty() => {
            return Err(error(StatusCode::BAD_REQUEST, "bad_tag", "tag must not be empty"));
        }
        PurgeTarget::Tag { tag } => (None, Target::Tag(tag.clone())),
        PurgeTarget::All => (None, Target::All),
    };
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

/// `http://Shop.Example/a?x` or `shop.example/a?x` → `shop.example/a?x` (the cache's URL key).
fn url_key(raw: &str) -> Result<String, String> {
    let rest = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://")).unwrap_or(raw);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Err(format!("{raw:?}: expected host/path, e.g. \"shop.example/images/\""));
    }
    Ok(format!("{host}{path}"))
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

#[cfg(test)]
mod tests {
    use super::url_key;

    #[test]
    fn url_keys() {
        for (raw, want) in [
            ("http://Shop.Example/a?x=1", Some("shop.example/a?x=1")),
            ("https://shop.example:8443/a", Some("shop.example/a")),
            ("shop.example/images/", Some("shop.example/images/")),
            ("shop.example", Some("shop.example/")),
            ("", None),
            ("/just/a/path", None),
        ] {
            assert_eq!(url_key(raw).ok().as_deref(), want, "{raw}");
        }
    }
}
