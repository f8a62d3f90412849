//! Respond phase: the headers every response gets (`Cache-Status`, `Age` via the cache,
//! `Server-Timing`, `x-request-id`), error pages, metrics and the access-log line.

pub mod access_log;

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::body::{self, EdgeBody};
use crate::cache::status::CacheStatus;
use crate::ctx::RequestCtx;
use crate::error::{EdgeError, Side};

pub use access_log::{AccessLog, AccessRecord};

static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
static CACHE_STATUS: header::HeaderName = header::HeaderName::from_static("cache-status");
static SERVER_TIMING: header::HeaderName = header::HeaderName::from_static("server-timing");

/// The short error page: status line and the request id, so a user's report can be traced.
pub fn error_response(ctx: &RequestCtx, err: &EdgeError) -> Response<EdgeBody> {
    let status = err.status();
    match err.side() {
        Side::Client => tracing::debug!(request_id = %ctx.id.0, error = %err, "client error"),
        Side::Upstream => tracing::warn!(request_id = %ctx.id.0, error = %err, "upstream error"),
        // The function host has logged it with the service, version and reason.
        Side::Function => tracing::debug!(request_id = %ctx.id.0, error = %err, "function error"),
        Side::Internal => tracing::error!(request_id = %ctx.id.0, error = %err, "internal error"),
    }
    let mut resp = plain(status, &ctx.id.0);
    if let Some(message) = &err.public {
        let text = format!(
            "{} {}\n{message}\nrequest-id: {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            ctx.id.0
        );
        *resp.body_mut() = body::full(text);
    }
    resp
}

pub fn plain(status: StatusCode, request_id: &str) -> Response<EdgeBody> {
    let text = format!("{} {}\nrequest-id: {request_id}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// What the pipeline knows about a finished request, for headers, metrics and the log.
pub struct Outcome<'a> {
    pub node: &'a str,
    pub via: &'a HeaderValue,
    pub method: &'a Method,
    pub host: &'a str,
    pub path: &'a str,
    pub service: Option<&'a str>,
    pub cache: Option<&'a CacheStatus>,
    pub error: Option<&'a EdgeError>,
}

pub fn finish(ctx: &RequestCtx, mut resp: Response<EdgeBody>, out: Outcome<'_>, log: &AccessLog) -> Response<EdgeBody> {
    let headers = resp.headers_mut();
    headers.append(header::VIA, out.via.clone());
    if let Ok(v) = HeaderValue::from_str(&ctx.id.0) {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
    // This node's Cache-Status entry, kept for the access log.
    let ours = out.cache.map(|cs| cs.header_value(out.node));
    if let Some(ours) = &ours {
        // RFC 9211 §2: entries of the caches further upstream (a shield's) come first, this
        // node's last.
        let value = match headers.get(&CACHE_STATUS).and_then(|v| v.to_str().ok()) {
            Some(upstream) if !upstream.is_empty() => HeaderValue::from_str(&format!("{upstream}, {ours}")),
            _ => HeaderValue::from_str(ours),
        };
        if let Ok(v) = value {
            headers.insert(CACHE_STATUS.clone(), v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.server_timing()) {
        headers.insert(SERVER_TIMING.clone(), v);
    }
    let status = resp.status().as_u16();
    let outcome = match (out.cache, out.error) {
        (Some(cs), _) => cs.outcome(),
        (None, Some(_)) => "error",
        (None, None) => "none",
    };
    let bytes = crate::http::content_length(resp.headers());
    let elapsed = ctx.started.elapsed();
    let protocol = ctx.protocol.as_str();
    let sent = bytes.filter(|_| *out.method != Method::HEAD);
    crate::metrics::record_request(outcome, status, protocol, elapsed.as_secs_f64(), sent);
    if !log.is_on() {
        return resp;
    }
    log.write(&AccessRecord {
        ts: std::time::SystemTime::now(),
        request_id: &ctx.id.0,
        client: ctx.conn.peer,
        protocol,
        tls: ctx.conn.tls,
        method: out.method.as_str(),
        host: out.host,
        path: out.path,
        service: out.service,
        status,
        cache: outcome,
        cache_status: ours.as_deref(),
        bytes,
        duration: elapsed,
        error: out.error.map(|e| e as &dyn std::fmt::Display),
    });
    resp
}
