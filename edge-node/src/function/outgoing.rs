//! A function's outgoing requests (`wasi:http/outgoing-handler`). The request's authority names
//! a backend: `origin` (the service's own upstream) or one of the function's named backends,
//! case-insensitive, scheme ignored; anything else fails with `HTTP-request-denied`. An allowed
//! request enters the same path as a client's request after routing, so it is cached, collapsed
//! with other requests for the same object and routed through the shields; a fetch of `origin`
//! shares its cache key with direct requests for the same host and path.

use std::future::Future;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as WasiError, RequestOptions, WasiBody, WasiHttpHooks};

use super::bodies::backend_body;
use crate::body::BoxError;
use crate::ctx::{ConnInfo, Protocol, RequestCtx, RequestId};
use crate::delivery::Delivery;
use crate::error::{EdgeError, ErrorKind};
use crate::service::CompiledService;

/// Where an allowed request goes: a service (the function's own, or a backend's) and the host
/// its cache key and `Host` header carry.
#[derive(Clone)]
pub(super) struct Backend {
    pub(super) service: Arc<CompiledService>,
    /// `None`: the client's host (the service's own upstream); else the backend URL's host.
    pub(super) host: Option<Arc<str>>,
}

/// What every outgoing request of one incoming request shares.
pub(super) struct FetchCtx {
    /// The one way into transform · cache · upstream · store a client's request takes too.
    pub(super) delivery: Arc<Delivery>,
    pub(super) origin: Arc<CompiledService>,
    /// Named backends, lower-case names.
    pub(super) backends: Arc<[(Box<str>, Backend)]>,
    pub(super) client_host: Arc<str>,
    pub(super) conn: ConnInfo,
    pub(super) protocol: Protocol,
    pub(super) request_id: RequestId,
    pub(super) max_requests: u32,
    pub(super) max_response: u64,
}

/// The hooks of one request's store: counts its outgoing requests.
pub(super) struct Outgoing {
    /// `None` for an instance that serves no request (the instantiation benchmark): every
    /// outgoing request is denied.
    ctx: Option<Arc<FetchCtx>>,
    sent: u32,
}

impl Outgoing {
    pub(super) fn new(ctx: Option<Arc<FetchCtx>>) -> Self {
        Self { ctx, sent: 0 }
    }
}

type SendResult = Result<(Response<WasiBody>, Box<dyn Future<Output = Result<(), WasiError>> + Send>), WasiError>;

impl WasiHttpHooks for Outgoing {
    /// The host sets `Host` itself (the client's host, or the backend's), not the backend name.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), WasiError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let Some(ctx) = self.ctx.clone() else {
            return Box::new(async { Err(WasiError::HttpRequestDenied) });
        };
        let name = request.uri().host().unwrap_or("").to_ascii_lowercase();
        let Some(backend) = resolve(&ctx, &name) else {
            tracing::debug!(request_id = %ctx.request_id.0, backend = %name, "function fetch denied: not a backend");
            return Box::new(async { Err(WasiError::HttpRequestDenied) });
        };
        self.sent = self.sent.saturating_add(1);
        if self.sent > ctx.max_requests {
            tracing::debug!(request_id = %ctx.request_id.0, limit = ctx.max_requests, "function fetch denied: max_backend_requests");
            return Box::new(async { Err(WasiError::ConnectionLimitReached) });
        }
        Box::new(async move {
            let response = fetch(&ctx, &backend, request).await?;
            let done: Box<dyn Future<Output = Result<(), WasiError>> + Send> = Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

fn resolve(ctx: &FetchCtx, name: &str) -> Option<Backend> {
    if name == outpost_config::ORIGIN_BACKEND {
        return Some(Backend { service: ctx.origin.clone(), host: None });
    }
    ctx.backends.iter().find(|(n, _)| &**n == name).map(|(_, b)| b.clone())
}

/// Through the transform and cache phases, as a client's request for the same host and path.
async fn fetch(ctx: &FetchCtx, backend: &Backend, request: Request<WasiBody>) -> Result<Response<WasiBody>, WasiError> {
    let host: Arc<str> = backend.host.clone().unwrap_or_else(|| ctx.client_host.clone());
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = path.parse::<Uri>().map_err(|_| WasiError::HttpRequestUriInvalid)?;
    let host_value = HeaderValue::from_str(&host).map_err(|_| WasiError::HttpRequestUriInvalid)?;
    parts.headers.insert(header::HOST, host_value);
    let body = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
    let mut rctx = RequestCtx::new(ctx.conn.clone(), ctx.protocol);
    rctx.id = ctx.request_id.clone();
    let served = ctx.delivery.serve(&backend.service, &host, Request::from_parts(parts, body), &mut rctx).await;
    let served = served.map_err(|e| to_wasi(&e))?;
    let (mut head, body) = served.response.into_parts();
    // RFC 9211: what this node's cache did, as a client of the same request would see it.
    if let Ok(value) = HeaderValue::from_str(&served.status.header_value(ctx.delivery.node())) {
        head.headers.append(CACHE_STATUS.clone(), value);
    }
    let declared = crate::http::content_length(&head.headers);
    if declared.is_some_and(|n| n > ctx.max_response) {
        return Err(WasiError::HttpResponseBodySize(Some(ctx.max_response)));
    }
    Ok(Response::from_parts(head, backend_body(body, ctx.max_response)))
}

static CACHE_STATUS: header::HeaderName = header::HeaderName::from_static("cache-status");

/// The wasi-http error code closest to what went wrong upstream.
fn to_wasi(e: &EdgeError) -> WasiError {
    match e.kind {
        ErrorKind::UpstreamConnect => WasiError::ConnectionRefused,
        ErrorKind::UpstreamTimeout => WasiError::HttpResponseTimeout,
        ErrorKind::UpstreamTls => WasiError::TlsProtocolError,
        ErrorKind::UpstreamForbidden => WasiError::DestinationIpProhibited,
        ErrorKind::UpstreamProtocol => WasiError::HttpProtocolError,
        ErrorKind::NoUpstream => WasiError::DestinationUnavailable,
        ErrorKind::BodyTooLarge => WasiError::HttpRequestBodySize(None),
        _ => WasiError::InternalError(Some(e.to_string())),
    }
}
