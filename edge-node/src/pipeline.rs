//! The request path, in order: accept · route · function (when the service has one) · cache (which runs upstream and store on a miss)
//! · respond. This is the one place the order is written down; each phase lives in its module.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, Version};
use http_body_util::BodyExt;
use outpost_config::LimitsConfig;

use crate::body::EdgeBody;
use crate::cache::Cache;
use crate::ctx::{ConnInfo, Phase, Protocol, RequestCtx};
use crate::error::{EdgeError, ErrorKind};
use crate::listen::{Asterisk, ConnBuilders, LimitedBody};
use crate::respond::{self, AccessLog, Outcome};
use crate::transform::Transforms;
use crate::transform::image::Transcoder;
use crate::upstream::ForwardInfo;

/// What every request on this node shares: built once per config version.
/// Edges probe their shields here; a shield answers it itself, without its origin, so a slow
/// origin does not make the shield tier look dead.
pub const SHIELD_HEALTH_PATH: &str = "/.outpost/health";

pub struct NodeState {
    pub name: Arc<str>,
    pub role: outpost_config::NodeRole,
    /// `Via: 1.1 <name>` (RFC 9110 §7.6.3), built once.
    pub via: http::HeaderValue,
    /// The services in force; swapped whole by [`crate::reload::Reloader`].
    pub routes: crate::route::RouteTable,
    pub cache: Arc<Cache>,
    /// The node's image transcoding slots, shared by every service.
    pub transcoder: Arc<Transcoder>,
    /// Compression and decompression slots and memory (`limits.max_concurrent_encodes`,
    /// `limits.max_codec_memory`), node-wide, and the bases known to decode past their bound.
    pub encodes: Arc<crate::transform::compress::budget::Codecs>,
    pub limits: LimitsConfig,
    pub builders: ConnBuilders,
    pub access_log: AccessLog,
    /// The engine services' edge functions run on; reloads compile new versions on it.
    pub functions: Arc<crate::function::FunctionHost>,
}

/// One request through every phase. `B` is the request body of whichever listener took it
/// (hyper's for HTTP/1.1 and HTTP/2).
pub async fn handle<B>(state: Arc<NodeState>, conn: Arc<ConnInfo>, req: Request<B>) -> Response<EdgeBody>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    let protocol = match req.version() {
        Version::HTTP_2 => Protocol::Http2,
        Version::HTTP_3 => Protocol::Http3,
        _ => Protocol::Http1,
    };
    let mut ctx = RequestCtx::new((*conn).clone(), protocol);
    let method = req.method().clone();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let host = crate::route::request_host(&req);
    let raw_host = host.as_ref().map_or("", |h| h.as_str());
    let mut outcome = Outcome {
        node: &state.name,
        via: &state.via,
        method: &method,
        host: raw_host,
        path: &path,
        service: None,
        cache: None,
        error: None,
    };

    if state.role == outpost_config::NodeRole::Shield && path == SHIELD_HEALTH_PATH {
        let resp = respond::plain(http::StatusCode::OK, &ctx.id.0);
        return respond::finish(&ctx, resp, outcome, &state.access_log);
    }
    // accept: `OPTIONS *` is about this server, answered here (RFC 9110 §9.3.7); then request
    // limits the HTTP layer does not enforce itself.
    match crate::listen::asterisk(req.method(), req.uri()) {
        Asterisk::No => {}
        Asterisk::ServerOptions => {
            let resp = crate::listen::server_options();
            return respond::finish(&ctx, resp, outcome, &state.access_log);
        }
        Asterisk::Invalid => {
            let e = EdgeError::new(ErrorKind::BadRequest, format!("{method} with the asterisk-form target"));
            return fail(&state, &ctx, outcome, &e);
        }
    }
    let mut req = match accept(req, &state.limits) {
        Ok(r) => r,
        Err(e) => return fail(&state, &ctx, outcome, &e),
    };
    // From here on the request names one host: the one it is routed, keyed and forwarded by.
    if let Ok(h) = &host
        && let Ok(value) = http::HeaderValue::from_str(h)
    {
        req.headers_mut().insert(http::header::HOST, value);
    }
    // route
    let started = Instant::now();
    let route = match &host {
        Ok(h) => state.routes.current().resolve(h, &ctx.conn),
        Err(e) => Err(e.clone()),
    };
    ctx.record(Phase::Route, started.elapsed());
    let route = match route {
        Ok(r) => r,
        Err(e) => return fail(&state, &ctx, outcome, &e),
    };
    outcome.service = Some(&route.service.name);
    // The phases' way to the client's connection for 1xx (RFC 9110 §15.2), when it has one.
    crate::hints::attach(&mut req, &route.service.hints);
    // function: the service's edge function answers; its fetches re-enter at the cache phase.
    if let Some(function) = &route.service.function {
        let started = Instant::now();
        let result = function.serve(&state, &route.service, &route.host, req, &ctx).await;
        ctx.record(Phase::Function, started.elapsed());
        return match result {
            Ok(resp) => respond::finish(&ctx, for_client(&state, resp), outcome, &state.access_log),
            Err(e) => fail(&state, &ctx, outcome, &e),
        };
    }
    // cache → (upstream → store) → respond
    let fwd = ForwardInfo {
        client_ip: conn.peer.ip(),
        host: &route.host,
        tls: conn.tls,
        node: &state.name,
        trusted: route.service.trusts(conn.peer.ip()),
    };
    let transforms = Transforms {
        cache: &state.cache,
        transcoder: &state.transcoder,
        encodes: &state.encodes,
        svc: &route.service,
        host: &route.host,
        fwd: &fwd,
    };
    match transforms.serve(req, &mut ctx).await {
        Ok(served) => {
            outcome.cache = Some(&served.status);
            respond::finish(&ctx, for_client(&state, served.response), outcome, &state.access_log)
        }
        Err(e) => fail(&state, &ctx, outcome, &e),
    }
}

/// Fields meant for the CDN (CDN-Cache-Control, Surrogate-Control, Surrogate-Key, Cache-Tag)
/// leave the CDN at the edge. A shield passes them on: its clients are edges, which need the
/// same freshness rules and the tags that purges by tag match.
fn for_client(state: &NodeState, mut resp: Response<EdgeBody>) -> Response<EdgeBody> {
    if state.role == outpost_config::NodeRole::Edge {
        crate::cache::policy::strip_cdn_headers(resp.headers_mut());
    }
    resp
}

fn fail<'a>(state: &NodeState, ctx: &RequestCtx, mut outcome: Outcome<'a>, err: &'a EdgeError) -> Response<EdgeBody> {
    let resp = respond::error_response(ctx, err);
    outcome.error = Some(err);
    // RFC 9211: an error the cache phase made from an upstream response still says what the
    // cache saw (`fwd-status=200; detail=upstream-body-incomplete`).
    outcome.cache = err.cache.as_deref();
    respond::finish(ctx, resp, outcome, &state.access_log)
}

/// Header section size (431) and declared body size (413); the body is wrapped so a streamed one
/// cannot grow past the limit either.
fn accept<B>(req: Request<B>, limits: &LimitsConfig) -> Result<Request<EdgeBody>, EdgeError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    // RFC 8470 §5.2: early data may be replayed; only safe methods are served from it.
    if req.extensions().get::<crate::ctx::EarlyData>().is_some() && !req.method().is_safe() {
        return Err(EdgeError::new(ErrorKind::TooEarly, format!("{} sent in TLS early data", req.method())));
    }
    // RFC 6585 §5: header fields too large. Counted as HTTP/1.1 would carry them.
    let header_bytes: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if header_bytes > limits.max_header_bytes.as_usize() || req.headers().len() > limits.max_headers {
        return Err(EdgeError::new(
            ErrorKind::HeadersTooLarge,
            format!("{header_bytes} bytes in {} header fields", req.headers().len()),
        ));
    }
    let max_body = limits.max_request_body.as_u64();
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Err(EdgeError::new(ErrorKind::BodyTooLarge, format!("Content-Length above {max_body}")));
    }
    Ok(req.map(|b| LimitedBody::new(b, max_body).boxed_unsync()))
}

/// A request hyper rejected before it reached the pipeline still gets its access-log line.
pub fn log_unparsed(state: &NodeState, conn: &Arc<ConnInfo>, status: u16, error: &str) {
    log_rejected(state, conn, Protocol::Http1, status, error);
}

/// A request refused before the pipeline (unparsable, or malformed HTTP/3) gets its log line.
pub fn log_rejected(state: &NodeState, conn: &Arc<ConnInfo>, protocol: Protocol, status: u16, error: &str) {
    let ctx = RequestCtx::new((**conn).clone(), protocol);
    let kind = if status == 431 { ErrorKind::HeadersTooLarge } else { ErrorKind::BadRequest };
    let err = EdgeError::new(kind, error.to_string());
    let resp = respond::plain(kind.status(), &ctx.id.0);
    let method = http::Method::GET;
    let outcome = Outcome {
        node: &state.name,
        via: &state.via,
        method: &method,
        host: "",
        path: "",
        service: None,
        cache: None,
        error: Some(&err),
    };
    drop(respond::finish(&ctx, resp, outcome, &state.access_log));
}
