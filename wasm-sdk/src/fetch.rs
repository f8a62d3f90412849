//! Backend fetches: `wasi:http/outgoing-handler` with the backend's name as the authority.
//!
//! The node lets a function reach only the backends its service names: `origin` is the
//! service's own upstream (through the node's cache, so a fetch can be a cache hit), and a
//! service may list others by name. Anything else the host refuses with the standard
//! `HTTP-request-denied` error code, which [`fetch`] returns as [`FetchError::Denied`].
//!
//! ```no_run
//! use outpost_sdk::{Body, FetchOptions, fetch_with, http};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), outpost_sdk::Error> {
//! let req = http::Request::get("/api/price?sku=42").body(Body::empty())?;
//! let opts = FetchOptions::new().first_byte_timeout(Duration::from_secs(2));
//! let resp = fetch_with("origin", req, &opts)?;
//! let price = resp.into_body().with_limit(64 << 10).into_string()?;
//! # let _ = price; Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, FutureIncomingResponse, IncomingResponse, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

use crate::body::{Body, Parent};
use crate::serve::MAX_BLOCKING_WRITE;
use crate::wire::{from_fields, to_fields, to_wasi_method};
use crate::{Request, Response};

/// The backend name of the service's own upstream (reached through the node's cache).
pub const ORIGIN: &str = "origin";

/// Timeouts of one fetch (`wasi:http` request options). Unset ones are the node's.
#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    connect_timeout: Option<Duration>,
    first_byte_timeout: Option<Duration>,
    between_bytes_timeout: Option<Duration>,
}

impl FetchOptions {
    /// The node's timeouts for everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Time to establish the connection to the backend.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// Time from sending the request to the first byte of the response.
    pub fn first_byte_timeout(mut self, d: Duration) -> Self {
        self.first_byte_timeout = Some(d);
        self
    }

    /// Time allowed between two chunks of the response body.
    pub fn between_bytes_timeout(mut self, d: Duration) -> Self {
        self.between_bytes_timeout = Some(d);
        self
    }

    fn is_default(&self) -> bool {
        self.connect_timeout.is_none() && self.first_byte_timeout.is_none() && self.between_bytes_timeout.is_none()
    }

    fn to_wasi(&self) -> Result<Option<RequestOptions>, FetchError> {
        if self.is_default() {
            return Ok(None);
        }
        let opts = RequestOptions::new();
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let refused =
            |what: &str| FetchError::Invalid { backend: String::new(), reason: format!("the host refused {what}") };
        if let Some(d) = self.connect_timeout {
            opts.set_connect_timeout(Some(nanos(d))).map_err(|()| refused("connect_timeout"))?;
        }
        if let Some(d) = self.first_byte_timeout {
            opts.set_first_byte_timeout(Some(nanos(d))).map_err(|()| refused("first_byte_timeout"))?;
        }
        if let Some(d) = self.between_bytes_timeout {
            opts.set_between_bytes_timeout(Some(nanos(d))).map_err(|()| refused("between_bytes_timeout"))?;
        }
        Ok(Some(opts))
    }
}

/// Why a fetch failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// The host refused the fetch (`HTTP-request-denied`, "destination not allowed"): the service
    /// does not name this backend, or the request already made `max_backend_requests` fetches.
    Denied { backend: String },
    /// The host ran out of connections for this backend (`connection-limit-reached`).
    LimitReached { backend: String },
    /// A timeout of [`FetchOptions`] (or the node's) expired.
    Timeout { backend: String, code: String },
    /// The request could not be built (bad path, header or body).
    Invalid { backend: String, reason: String },
    /// Any other failure the host reported (connection refused, protocol error, ...).
    Upstream { backend: String, code: String },
}

impl FetchError {
    /// The status a client gets when a handler returns this error.
    pub fn to_status(&self) -> StatusCode {
        match self {
            FetchError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            FetchError::Invalid { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            FetchError::Denied { .. } | FetchError::LimitReached { .. } | FetchError::Upstream { .. } => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// The backend the fetch was for.
    pub fn backend(&self) -> &str {
        match self {
            FetchError::Denied { backend }
            | FetchError::LimitReached { backend }
            | FetchError::Timeout { backend, .. }
            | FetchError::Invalid { backend, .. }
            | FetchError::Upstream { backend, .. } => backend,
        }
    }

    fn from_code(backend: &str, code: ErrorCode) -> Self {
        let backend = backend.to_owned();
        match code {
            ErrorCode::HttpRequestDenied => FetchError::Denied { backend },
            ErrorCode::ConnectionLimitReached => FetchError::LimitReached { backend },
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout
            | ErrorCode::DnsTimeout => FetchError::Timeout { backend, code: format!("{code:?}") },
            ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestUriTooLong
            | ErrorCode::HttpRequestHeaderSectionSize(_)
            | ErrorCode::HttpRequestHeaderSize(_)
            | ErrorCode::HttpRequestBodySize(_) => FetchError::Invalid { backend, reason: format!("{code:?}") },
            other => FetchError::Upstream { backend, code: format!("{other:?}") },
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Denied { backend } => {
                // The node's words for both cases: not a backend of this service, or one fetch
                // more than its `max_backend_requests`.
                write!(f, "backend {backend:?}: destination not allowed")
            }
            FetchError::LimitReached { backend } => write!(f, "backend {backend:?}: connection limit reached"),
            FetchError::Timeout { backend, code } => write!(f, "backend {backend:?}: timed out ({code})"),
            FetchError::Invalid { backend, reason } => write!(f, "backend {backend:?}: invalid request: {reason}"),
            FetchError::Upstream { backend, code } => write!(f, "backend {backend:?}: {code}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Sends `request` to `backend` with the node's timeouts. See [`fetch_with`].
pub fn fetch(backend: &str, request: Request) -> Result<Response, FetchError> {
    fetch_with(backend, request, &FetchOptions::default())
}

/// Sends `request` to `backend` (a name the service configures, e.g. [`ORIGIN`]) and waits for
/// the response head; the body streams as it is read. The request's path and query, method and
/// headers are sent; its scheme and authority are replaced by the backend's name. The body is
/// written after the request is sent; if the host stops taking it (the node does not forward a
/// GET's body), the upload ends there and the response still comes back.
pub fn fetch_with(backend: &str, request: Request, options: &FetchOptions) -> Result<Response, FetchError> {
    let invalid = |reason: String| FetchError::Invalid { backend: backend.to_owned(), reason };
    let (parts, mut body) = request.into_parts();
    let headers = to_fields(&parts.headers).map_err(|e| invalid(e.to_string()))?;
    let outgoing = OutgoingRequest::new(headers);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    outgoing.set_method(&to_wasi_method(&parts.method)).map_err(|()| invalid(format!("method {}", parts.method)))?;
    outgoing.set_path_with_query(Some(path)).map_err(|()| invalid(format!("path {path:?}")))?;
    outgoing.set_scheme(Some(&Scheme::Http)).map_err(|()| invalid("scheme".into()))?;
    outgoing.set_authority(Some(backend)).map_err(|()| invalid(format!("backend name {backend:?}")))?;
    let out_body = outgoing.body().map_err(|()| invalid("body taken".into()))?;
    let options = options.to_wasi().map_err(|e| match e {
        FetchError::Invalid { reason, .. } => invalid(reason),
        other => other,
    })?;

    // Send first, then write the body: a host may not read a body before the request is sent.
    let future = outgoing_handler::handle(outgoing, options).map_err(|code| FetchError::from_code(backend, code))?;
    write_request_body(&mut body, out_body).map_err(invalid)?;
    let response = wait(&future).map_err(|code| FetchError::from_code(backend, code))?;
    into_response(response).map_err(invalid)
}

fn write_request_body(body: &mut Body, out: OutgoingBody) -> Result<(), String> {
    let mut closed = false;
    if body.known_len() != Some(0) {
        let stream = out.write().map_err(|()| "request body stream taken".to_owned())?;
        let uploaded = upload(body, &stream);
        drop(stream);
        closed = uploaded?;
    }
    match OutgoingBody::finish(out, None) {
        Ok(()) => Ok(()),
        // Cut short by the host (a Content-Length not reached): the response says what happened.
        Err(_) if closed => Ok(()),
        Err(code) => Err(format!("finishing the request body: {code:?}")),
    }
}

/// Copies `body` into the request's stream, one `blocking-write-and-flush` per 4096 bytes.
/// Returns true when the host closed the stream first: a host may stop reading a body it does
/// not forward (a GET's, say) or once the backend has answered, as an HTTP server may answer
/// before the whole upload. That ends the upload without an error; the response tells how the
/// request went.
fn upload(body: &mut Body, stream: &OutputStream) -> Result<bool, String> {
    let mut buf = vec![0u8; MAX_BLOCKING_WRITE];
    loop {
        let n = std::io::Read::read(body, &mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(false);
        }
        match stream.blocking_write_and_flush(&buf[..n]) {
            Ok(()) => {}
            Err(StreamError::Closed) => return Ok(true),
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
}

fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, ErrorCode> {
    loop {
        match future.get() {
            Some(Ok(result)) => return result,
            // Taken twice: cannot happen with one get per ready future.
            Some(Err(())) => return Err(ErrorCode::InternalError(Some("response already taken".into()))),
            None => future.subscribe().block(),
        }
    }
}

fn into_response(incoming: IncomingResponse) -> Result<Response, String> {
    let status = StatusCode::from_u16(incoming.status()).map_err(|e| e.to_string())?;
    let headers = from_fields(&incoming.headers());
    let mut response = Response::new(Body::incoming(Parent::Response(incoming)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_error_codes_become_typed_errors() {
        let b = "pricing";
        assert_eq!(FetchError::from_code(b, ErrorCode::HttpRequestDenied), FetchError::Denied { backend: b.into() });
        assert_eq!(
            FetchError::from_code(b, ErrorCode::ConnectionLimitReached),
            FetchError::LimitReached { backend: b.into() }
        );
        assert!(matches!(FetchError::from_code(b, ErrorCode::HttpResponseTimeout), FetchError::Timeout { .. }));
        assert!(matches!(FetchError::from_code(b, ErrorCode::ConnectionRefused), FetchError::Upstream { .. }));
        assert!(matches!(FetchError::from_code(b, ErrorCode::HttpRequestUriInvalid), FetchError::Invalid { .. }));
    }

    #[test]
    fn a_denied_fetch_says_destination_not_allowed() {
        let msg = FetchError::Denied { backend: "evil.example".into() }.to_string();
        assert!(msg.contains("destination not allowed") && msg.contains("evil.example"), "{msg}");
        assert_eq!(FetchError::Denied { backend: "x".into() }.to_status(), StatusCode::BAD_GATEWAY);
    }
}
