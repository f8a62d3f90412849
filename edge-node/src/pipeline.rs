//! The request path, in order: accept · route · function (when the service has one) ·
//! transform · cache · upstream · store · respond. This is the one place the order is written
//! down; each phase lives in its module, and transform · cache · upstream · store are entered
//! through [`Delivery`], the one door edge functions' fetches use too.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, Version};
use http_body_util::BodyExt;
use outpost_config::LimitsConfig;
use tracing::Instrument;

use crate::body::EdgeBody;
use crate::ctx::{ConnInfo, Phase, Protocol, RequestCtx};
use crate::delivery::Delivery;
use crate::error::{EdgeError, ErrorKind};
use crate::http::SHIELD_HEALTH_PATH;
use crate::http::body_limit::LimitedBody;
use crate::listen::{Asterisk, ConnBuilders};
use crate::respond::{self, AccessLog, Outcome};
use crate::route::rules::Flow;
use crate::route::rules::render::Vars;

/// What every request on this node shares: built once per config version.
pub struct NodeState {
    pub name: Arc<str>,
    pub role: outpost_config::NodeRole,
    /// `Via: 1.1 <name>` (RFC 9110 §7.6.3), built once.
    pub via: http::HeaderValue,
    /// The services in force; swapped whole by [`crate::reload::Reloader`].
    pub routes: crate::route::RouteTable,
    /// The way into transform · cache · upstream · store, shared with edge functions' fetches.
    pub delivery: Arc<Delivery>,
    pub limits: LimitsConfig,
    pub builders: ConnBuilders,
    pub access_log: AccessLog,
    /// The engine services' edge functions run on; reloads compile new versions on it.
    pub functions: Arc<crate::function::FunctionHost>,
    /// The ACME challenges the control plane published, answered before any tenant logic.
    pub acme: Arc<crate::acme::Challenges>,
}

/// What the access log says of the request, read before the request is taken apart.
struct Head {
    method: http::Method,
    path: String,
    host: Result<String, EdgeError>,
}

/// One request through every phase, in order: accept · route · function · transform · cache ·
/// upstream · store · respond. `B` is the request body of whichever listener took it (hyper's
/// for HTTP/1.1 and HTTP/2).
pub async fn handle<B>(state: Arc<NodeState>, conn: Arc<ConnInfo>, req: Request<B>) -> Response<EdgeBody>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    let ctx = RequestCtx::new((*conn).clone(), protocol(&req));
    // Every log line of the request carries its id and service: its own, and those of the work
    // spawned for it (fetch jobs, variant jobs), which enter this span with `in_current_span`.
    let span = tracing::info_span!("request", id = %ctx.id.0, service = tracing::field::Empty);
    phases(state, ctx, req).instrument(span).await
}

async fn phases<B>(state: Arc<NodeState>, mut ctx: RequestCtx, req: Request<B>) -> Response<EdgeBody>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    let head = Head {
        method: req.method().clone(),
        path: req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
        host: crate::route::request_host(&req),
    };
    let mut outcome = Outcome {
        node: &state.name,
        via: &state.via,
        method: &head.method,
        host: head.host.as_ref().map_or("", |h| h.as_str()),
        path: &head.path,
        service: None,
        cache: None,
        error: None,
    };
    // accept
    let mut req = match accept(&state, &head, req, &ctx) {
        Accepted::Pass(req) => req,
        Accepted::Answered(resp) => return respond::finish(&ctx, resp, outcome, &state.access_log),
        Accepted::Refused(e) => return fail(&state, &ctx, outcome, &e),
    };
    // route
    let route = match route(&state, &head, &mut ctx) {
        Ok(route) => route,
        Err(e) => return fail(&state, &ctx, outcome, &e),
    };
    outcome.service = Some(&route.service.name);
    tracing::Span::current().record("service", &*route.service.name);
    // route: the service's rules answer (redirect, deny) or shape the request and its key.
    let started = Instant::now();
    let flow = route.service.rules.apply(&route.host, &mut req, ctx.conn.peer.ip(), ctx.conn.tls);
    ctx.record(Phase::Route, started.elapsed());
    let applied = match flow {
        Flow::Continue(applied) => applied,
        Flow::Respond(resp) => return respond::finish(&ctx, resp, outcome, &state.access_log),
    };
    let (path, query) = head.path.split_once('?').map_or((head.path.as_str(), None), |(p, q)| (p, Some(q)));
    let vars = Vars { host: &route.host, path, query, client_ip: ctx.conn.peer.ip(), tls: ctx.conn.tls };
    let rules = &route.service.rules;
    // The phases' way to the client's connection for 1xx (RFC 9110 §15.2), when it has one.
    crate::hints::attach(&mut req, &route.service.hints);
    // function: the service's edge function answers; its fetches re-enter at the transform phase.
    if let Some(function) = &route.service.function {
        let started = Instant::now();
        let result = function.serve(&state.delivery, &route.service, &route.host, req, &ctx).await;
        ctx.record(Phase::Function, started.elapsed());
        return match result {
            Ok(resp) => {
                let resp = rules.finish(&applied, &vars, for_client(&state, resp));
                respond::finish(&ctx, resp, outcome, &state.access_log)
            }
            Err(e) => fail_routed(&state, &ctx, outcome, &e, |resp| rules.error(&applied, &vars, resp)),
        };
    }
    // transform · cache · upstream · store
    let served = state.delivery.serve(&route.service, &route.host, req, &mut ctx).await;
    // respond
    match served {
        Ok(served) => {
            outcome.cache = Some(&served.status);
            let resp = rules.finish(&applied, &vars, for_client(&state, served.response));
            respond::finish(&ctx, resp, outcome, &state.access_log)
        }
        Err(e) => fail_routed(&state, &ctx, outcome, &e, |resp| rules.error(&applied, &vars, resp)),
    }
}

fn protocol<B>(req: &Request<B>) -> Protocol {
    match req.version() {
        Version::HTTP_2 => Protocol::Http2,
        Version::HTTP_3 => Protocol::Http3,
        _ => Protocol::Http1,
    }
}

/// What the accept phase made of a request.
enum Accepted {
    /// On to routing.
    Pass(Request<EdgeBody>),
    /// Answered by the node itself (a shield's health probe, `OPTIONS *`).
    Answered(Response<EdgeBody>),
    Refused(EdgeError),
}

/// The accept phase: what the node answers itself, then the request limits the HTTP layer does
/// not enforce. The request passed on names one host: the one it is routed, keyed and
/// forwarded by.
fn accept<B>(state: &NodeState, head: &Head, req: Request<B>, ctx: &RequestCtx) -> Accepted
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    if state.role == outpost_config::NodeRole::Shield && head.path == SHIELD_HEALTH_PATH {
        return Accepted::Answered(respond::plain(http::StatusCode::OK, &ctx.id.0));
    }
    // ACME HTTP-01 (RFC 8555 §8.3): the CA's validator, before any tenant logic.
    if let Ok(host) = &head.host
        && head.path.starts_with(crate::acme::http01::PREFIX)
        && let Some(resp) =
            crate::acme::http01::answer(&state.acme.current(), &head.method, host, &head.path, crate::acme::now())
    {
        return Accepted::Answered(resp);
    }
    // `OPTIONS *` is about this server, answered here (RFC 9110 §9.3.7).
    match crate::listen::asterisk(req.method(), req.uri()) {
        Asterisk::No => {}
        Asterisk::ServerOptions => return Accepted::Answered(crate::listen::server_options()),
        Asterisk::Invalid => {
            let msg = format!("{} with the asterisk-form target", head.method);
            return Accepted::Refused(EdgeError::new(ErrorKind::BadRequest, msg));
        }
    }
    let mut req = match limit(req, &state.limits) {
        Ok(req) => req,
        Err(e) => return Accepted::Refused(e),
    };
    if let Ok(h) = &head.host
        && let Ok(value) = http::HeaderValue::from_str(h)
    {
        req.headers_mut().insert(http::header::HOST, value);
    }
    Accepted::Pass(req)
}

/// The route phase: Host → service, timed.
fn route(state: &NodeState, head: &Head, ctx: &mut RequestCtx) -> Result<crate::route::Route, EdgeError> {
    let started = Instant::now();
    let route = match &head.host {
        Ok(h) => state.routes.current().resolve(h, &ctx.conn),
        Err(e) => Err(e.clone()),
    };
    ctx.record(Phase::Route, started.elapsed());
    route
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

fn fail<'a>(state: &NodeState, ctx: &RequestCtx, outcome: Outcome<'a>, err: &'a EdgeError) -> Response<EdgeBody> {
    fail_routed(state, ctx, outcome, err, |resp| resp)
}

/// [`fail`] for a request routed to a service, whose rules finish the error response (its
/// error page, its fields).
fn fail_routed<'a>(
    state: &NodeState,
    ctx: &RequestCtx,
    mut outcome: Outcome<'a>,
    err: &'a EdgeError,
    finish: impl FnOnce(Response<EdgeBody>) -> Response<EdgeBody>,
) -> Response<EdgeBody> {
    let resp = finish(respond::error_response(ctx, err));
    outcome.error = Some(err);
    // RFC 9211: an error the cache phase made from an upstream response still says what the
    // cache saw (`fwd-status=200; detail=upstream-body-incomplete`).
    outcome.cache = err.cache.as_deref();
    respond::finish(ctx, resp, outcome, &state.access_log)
}

/// Header section size (431) and declared body size (413); the body is wrapped so a streamed one
/// cannot grow past the limit either.
fn limit<B>(req: Request<B>, limits: &LimitsConfig) -> Result<Request<EdgeBody>, EdgeError>
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
    let declared = crate::http::content_length(req.headers());
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
