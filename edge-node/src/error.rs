//! `EdgeError`: every failure on the request path, with the side it came from, its kind, and the
//! route the request took (`service shop: upstream 127.0.0.1:8081: connect: refused`).
//! One function, [`EdgeError::status`], maps an error to what the client sees.

use http::StatusCode;
use std::fmt;
use std::sync::Arc;

/// Who is to blame: decides the log level and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    /// The service's edge function (its code, or its limits).
    Function,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request could not be parsed or is not valid HTTP.
    BadRequest,
    /// No service serves this Host.
    UnknownHost,
    /// TLS: the Host names a site the connection's certificate (chosen by SNI) does not cover.
    Misdirected,
    /// Request body above `limits.max_request_body`.
    BodyTooLarge,
    /// Header section above `limits.max_header_bytes` / `limits.max_headers`.
    HeadersTooLarge,
    /// An unsafe method sent in TLS early data, which could be a replay (RFC 8470 §5.2).
    TooEarly,
    /// `Cache-Control: only-if-cached` and nothing usable stored (RFC 9111 §5.2.1.7).
    NotCached,
    /// The client went away before its request was complete (its body broke off): 499, as
    /// nginx logs it. The client never sees it; the access log does.
    ClientAborted,
    /// The client sent its request body too slowly for the upstream exchange (RFC 9110 §15.5.9).
    RequestTimeout,
    /// The upstream refused the connection, reset it, or sent something unparsable.
    UpstreamConnect,
    UpstreamProtocol,
    /// No response head within `first_byte_timeout` / no body bytes within `between_bytes_timeout`.
    UpstreamTimeout,
    /// TLS to the upstream failed (certificate not trusted, handshake).
    UpstreamTls,
    /// A tenant's upstream resolved into a network tenants may not reach (the node's own
    /// loopback, private networks...; `limits.tenant_upstream_allow`): not connected.
    UpstreamForbidden,
    /// An image transform was asked of a body this node cannot decode (or may not: over the
    /// service's source limits), and the service is strict about it.
    UnsupportedMedia,
    /// Every upstream is unhealthy or behind an open circuit breaker (or the shields are and
    /// the service may not go to its origins directly).
    NoUpstream,
    /// The edge function trapped (a panic, an `unreachable`, a failed import).
    FunctionTrap,
    /// The edge function used more than its `cpu_time`.
    FunctionCpuTime,
    /// The edge function asked for more than its `memory`.
    FunctionMemory,
    /// The edge function did not answer within its `wall_time`.
    FunctionWallTime,
    /// The edge function returned no response, answered with an error code, or declared a
    /// response body above its `max_response_body`.
    FunctionBadResponse,
    /// Every function instance slot is in use (`functions.max_instances`).
    FunctionCapacity,
    /// Our own broken invariant.
    Internal,
}

impl ErrorKind {
    pub fn side(self) -> Side {
        use ErrorKind::*;
        match self {
            BadRequest | UnknownHost | Misdirected | BodyTooLarge | HeadersTooLarge | TooEarly | NotCached
            | ClientAborted | RequestTimeout => Side::Client,
            UpstreamConnect | UpstreamProtocol | UpstreamTimeout | UpstreamTls | UpstreamForbidden
            | UnsupportedMedia | NoUpstream => Side::Upstream,
            FunctionTrap | FunctionCpuTime | FunctionMemory | FunctionWallTime | FunctionBadResponse
            | FunctionCapacity => Side::Function,
            Internal => Side::Internal,
        }
    }

    /// The status a client sees for this kind of failure.
    pub fn status(self) -> StatusCode {
        use ErrorKind::*;
        match self {
            BadRequest => StatusCode::BAD_REQUEST,
            UnknownHost => StatusCode::NOT_FOUND,
            Misdirected => StatusCode::MISDIRECTED_REQUEST,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            TooEarly => StatusCode::TOO_EARLY,
            NotCached => StatusCode::GATEWAY_TIMEOUT,
            // 499 is nginx's "client closed request"; not registered, but what operators grep for.
            ClientAborted => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            // A forbidden upstream is a broken gateway config, as an unreachable one: 502.
            UpstreamConnect | UpstreamProtocol | UpstreamTls | UpstreamForbidden => StatusCode::BAD_GATEWAY,
            UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NoUpstream => StatusCode::SERVICE_UNAVAILABLE,
            // The function is the tenant's application: its crash is a 500 (as an exception in
            // a Cloudflare Worker), its resource limits a 503 (retry may land on a lighter
            // moment), a function that does not answer in time a 504, and no or a broken answer
            // a 502, as from an origin.
            FunctionTrap => StatusCode::INTERNAL_SERVER_ERROR,
            FunctionCpuTime | FunctionMemory | FunctionCapacity => StatusCode::SERVICE_UNAVAILABLE,
            FunctionWallTime => StatusCode::GATEWAY_TIMEOUT,
            FunctionBadResponse => StatusCode::BAD_GATEWAY,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Bounded label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest => "bad_request",
            UnknownHost => "unknown_host",
            Misdirected => "misdirected",
            BodyTooLarge => "body_too_large",
            HeadersTooLarge => "headers_too_large",
            TooEarly => "too_early",
            NotCached => "not_cached",
            ClientAborted => "client_aborted",
            RequestTimeout => "request_timeout",
            UpstreamConnect => "upstream_connect",
            UpstreamProtocol => "upstream_protocol",
            UpstreamTimeout => "upstream_timeout",
            UpstreamTls => "upstream_tls",
            UpstreamForbidden => "upstream_forbidden",
            UnsupportedMedia => "unsupported_media",
            NoUpstream => "no_upstream",
            FunctionTrap => "function_trap",
            FunctionCpuTime => "function_cpu_time",
            FunctionMemory => "function_memory",
            FunctionWallTime => "function_wall_time",
            FunctionBadResponse => "function_bad_response",
            FunctionCapacity => "function_capacity",
            Internal => "internal",
        }
    }
}

/// An error on the request path. `context` reads like the route the request took.
#[derive(Debug, Clone)]
pub struct EdgeError {
    pub kind: ErrorKind,
    pub context: String,
    /// What the client is told beyond the status, when it needs to fix its request (a bad image
    /// parameter). Never upstream details: those stay in the log.
    pub public: Option<String>,
    /// The error value that caused this one (hyper's, an I/O error), kept for `source()` so a
    /// log line or a test can walk the chain instead of parsing `context`.
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// The cache's account when the cache phase turned an upstream response into this error
    /// (a body that broke off): the error page carries it as `Cache-Status` (RFC 9211).
    pub cache: Option<Box<crate::http::cache_status::CacheStatus>>,
}

impl EdgeError {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Self { kind, context: context.into(), public: None, cause: None, cache: None }
    }

    /// An error whose message the client sees in the error page, e.g. `width: must be ...`.
    pub fn told(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { kind, context: message.clone(), public: Some(message), cause: None, cache: None }
    }

    /// Keep `cause` as this error's source.
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }

    /// Attach the cache's account of the request (see [`EdgeError::cache`]).
    pub fn with_cache_status(mut self, status: crate::http::cache_status::CacheStatus) -> Self {
        self.cache = Some(Box::new(status));
        self
    }

    /// Prepend one piece of context (the layer the error passed through).
    pub fn within(mut self, layer: impl fmt::Display) -> Self {
        self.context = format!("{layer}: {}", self.context);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    pub fn side(&self) -> Side {
        self.kind.side()
    }
}

impl fmt::Display for EdgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.context, self.kind.as_str())
    }
}

impl std::error::Error for EdgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_a_status_and_side() {
        use ErrorKind::*;
        let table = [
            (BadRequest, 400, Side::Client),
            (UnknownHost, 404, Side::Client),
            (Misdirected, 421, Side::Client),
            (BodyTooLarge, 413, Side::Client),
            (HeadersTooLarge, 431, Side::Client),
            (TooEarly, 425, Side::Client),
            (NotCached, 504, Side::Client),
            (ClientAborted, 499, Side::Client),
            (RequestTimeout, 408, Side::Client),
            (UpstreamConnect, 502, Side::Upstream),
            (UpstreamProtocol, 502, Side::Upstream),
            (UpstreamTls, 502, Side::Upstream),
            (UpstreamForbidden, 502, Side::Upstream),
            (UpstreamTimeout, 504, Side::Upstream),
            (UnsupportedMedia, 415, Side::Upstream),
            (NoUpstream, 503, Side::Upstream),
            (FunctionTrap, 500, Side::Function),
            (FunctionCpuTime, 503, Side::Function),
            (FunctionMemory, 503, Side::Function),
            (FunctionWallTime, 504, Side::Function),
            (FunctionBadResponse, 502, Side::Function),
            (FunctionCapacity, 503, Side::Function),
            (Internal, 500, Side::Internal),
        ];
        for (kind, status, side) in table {
            assert_eq!(kind.status().as_u16(), status, "{kind:?}");
            assert_eq!(kind.side(), side, "{kind:?}");
            assert!(!kind.as_str().is_empty());
        }
    }

    #[test]
    fn context_reads_like_the_route() {
        let e = EdgeError::new(ErrorKind::UpstreamConnect, "connect: refused")
            .within("upstream 127.0.0.1:1")
            .within("service shop");
        assert_eq!(e.to_string(), "service shop: upstream 127.0.0.1:1: connect: refused (upstream_connect)");
    }
}
