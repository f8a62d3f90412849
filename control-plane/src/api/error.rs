//! The API's one error type and its JSON form:
//! `{"error": {"code": "invalid_config", "message": "...", "fields": [{"path", "message"}]}}`.
//!
//! [`ErrorKind::status`] is the one place a kind becomes a status; a table test covers every
//! kind. `fields` is there only for errors about the request's body, one entry per problem.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use outpost_config::ConfigErrors;
use serde::Serialize;

use crate::store::StoreError;

/// Declares [`ErrorKind`] from one list of `Kind => "code"` lines, with [`ErrorKind::ALL`] and
/// [`ErrorKind::code`]: a kind cannot be added without its code, nor left out of `ALL` (which
/// the OpenAPI document's list of codes is written from).
macro_rules! error_kinds {
    ($($(#[doc = $doc:literal])* $kind:ident => $code:literal,)+) => {
        /// What went wrong, from the client's side of things.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorKind {
            $($(#[doc = $doc])* $kind,)+
        }

        impl ErrorKind {
            /// Every kind, in the order declared.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind),+];

            /// The stable, machine-readable `code`.
            pub fn code(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $code,)+
                }
            }
        }
    };
}

error_kinds! {
    /// The body is not JSON.
    BadJson => "bad_json",
    /// The body is JSON but not a valid service config (`fields` name the problems).
    InvalidConfig => "invalid_config",
    /// Anything else about the request is wrong: a field, a parameter, an id.
    InvalidRequest => "invalid_request",
    /// An uploaded function is a core module, not a component.
    NotAComponent => "not_a_component",
    /// An uploaded component does not export `wasi:http/incoming-handler`.
    MissingExport => "missing_export",
    /// An uploaded function is not valid WebAssembly.
    InvalidWasm => "invalid_wasm",
    /// An uploaded certificate or key fails a check (`fields` name each problem).
    InvalidCertificate => "invalid_certificate",
    /// No token, or one we do not know.
    Unauthorized => "unauthorized",
    /// A known token that may not do this (a tenant reading the event log).
    Forbidden => "forbidden",
    /// The tenant owns `limits.max_services_per_tenant` services already.
    ServiceLimit => "service_limit",
    /// The service holds `limits.max_certificates_per_service` certificates already.
    CertificateLimit => "certificate_limit",
    /// No such resource, or one the caller may not see (tenants never learn of others').
    NotFound => "not_found",
    /// The route exists, not with this method.
    MethodNotAllowed => "method_not_allowed",
    /// The service id belongs to another tenant (ids are global, like host names).
    IdTaken => "id_taken",
    /// A host of the config belongs to another service.
    HostTaken => "host_taken",
    /// The service changed between read and write; retry.
    Conflict => "conflict",
    /// Another connection holds the node id's stream (one node, one identity).
    NodeIdInUse => "node_id_in_use",
    /// The node's stream is open: deregistering it needs `?force=true`.
    NodeLive => "node_live",
    /// A function rollback with no version active before the current one.
    NoPreviousVersion => "no_previous_version",
    /// The body is larger than `limits.max_body_size`.
    BodyTooLarge => "body_too_large",
    /// Over the tenant's purge rate.
    RateLimited => "rate_limited",
    /// Our fault; the log says more.
    Internal => "internal",
    /// The store cannot be reached (health check).
    Unavailable => "unavailable",
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadJson
            | ErrorKind::InvalidConfig
            | ErrorKind::InvalidRequest
            | ErrorKind::NotAComponent
            | ErrorKind::MissingExport
            | ErrorKind::InvalidWasm
            | ErrorKind::InvalidCertificate => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden | ErrorKind::ServiceLimit => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::IdTaken
            | ErrorKind::HostTaken
            | ErrorKind::Conflict
            | ErrorKind::NoPreviousVersion
            | ErrorKind::NodeIdInUse
            | ErrorKind::NodeLive
            | ErrorKind::CertificateLimit => StatusCode::CONFLICT,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// One problem in the request body, at a field path (`origin`, `urls[2]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub fields: Vec<FieldError>,
    /// For [`ErrorKind::RateLimited`]: sent as `Retry-After`, in whole seconds rounded up.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), fields: Vec::new(), retry_after: None }
    }

    /// A body error naming its fields; the message lists them, one `path: message` each.
    pub fn fields(kind: ErrorKind, fields: Vec<FieldError>) -> Self {
        let message = fields
            .iter()
            .map(|f| if f.path.is_empty() { f.message.clone() } else { format!("{}: {}", f.path, f.message) })
            .collect::<Vec<_>>()
            .join("; ");
        Self { kind, message, fields, retry_after: None }
    }

    /// One body error at `path`.
    pub fn field(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::fields(kind, vec![FieldError { path: path.into(), message: message.into() }])
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn rate_limited(wait: Duration) -> Self {
        let mut error =
            Self::new(ErrorKind::RateLimited, "too many purges for this tenant; retry after the Retry-After delay");
        error.retry_after = Some(wait);
        error
    }

    /// Our own failure: logged in full, answered without detail.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        Self::new(ErrorKind::Internal, "internal error; the control plane's log has the details")
    }
}

impl From<ConfigErrors> for ApiError {
    fn from(errors: ConfigErrors) -> Self {
        let fields = errors.iter().map(|e| FieldError { path: e.path.clone(), message: e.message.clone() }).collect();
        ApiError::fields(ErrorKind::InvalidConfig, fields)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { id, .. } => {
                ApiError::new(ErrorKind::Conflict, format!("service {id} changed while this request ran; retry"))
            }
            // The owner is not named: it may be another tenant's service.
            StoreError::HostTaken { host, .. } => ApiError::new(
                ErrorKind::HostTaken,
                format!("host \"{host}\" belongs to another service; a host pattern may belong to one service only"),
            ),
            StoreError::Backend(_) | StoreError::Corrupt { .. } => ApiError::internal("store", error),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    fields: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body { error: Inner { code: self.kind.code(), message: &self.message, fields: &self.fields } };
        let mut response = (self.kind.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        if self.kind == ErrorKind::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(wait) = self.retry_after {
            // RFC 9110 §10.2.3: delay-seconds, a whole number; round up so a retry is not early.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[test]
    fn every_kind_has_its_status_and_code() {
        let table = [
            (ErrorKind::BadJson, 400, "bad_json"),
            (ErrorKind::InvalidConfig, 400, "invalid_config"),
            (ErrorKind::InvalidRequest, 400, "invalid_request"),
            (ErrorKind::NotAComponent, 400, "not_a_component"),
            (ErrorKind::MissingExport, 400, "missing_export"),
            (ErrorKind::InvalidWasm, 400, "invalid_wasm"),
            (ErrorKind::InvalidCertificate, 400, "invalid_certificate"),
            (ErrorKind::Unauthorized, 401, "unauthorized"),
            (ErrorKind::Forbidden, 403, "forbidden"),
            (ErrorKind::ServiceLimit, 403, "service_limit"),
            (ErrorKind::CertificateLimit, 409, "certificate_limit"),
            (ErrorKind::NotFound, 404, "not_found"),
            (ErrorKind::MethodNotAllowed, 405, "method_not_allowed"),
            (ErrorKind::IdTaken, 409, "id_taken"),
            (ErrorKind::HostTaken, 409, "host_taken"),
            (ErrorKind::Conflict, 409, "conflict"),
            (ErrorKind::NodeIdInUse, 409, "node_id_in_use"),
            (ErrorKind::NodeLive, 409, "node_live"),
            (ErrorKind::NoPreviousVersion, 409, "no_previous_version"),
            (ErrorKind::BodyTooLarge, 413, "body_too_large"),
            (ErrorKind::RateLimited, 429, "rate_limited"),
            (ErrorKind::Internal, 500, "internal"),
            (ErrorKind::Unavailable, 503, "unavailable"),
        ];
        for (kind, status, code) in table {
            assert_eq!((kind.status().as_u16(), kind.code()), (status, code), "{kind:?}");
        }
        let listed: Vec<ErrorKind> = table.iter().map(|(kind, _, _)| *kind).collect();
        assert_eq!(listed, ErrorKind::ALL, "the table covers every kind, in order");
        let mut codes: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorKind::ALL.len(), "every code is one kind's");
    }

    async fn render(error: ApiError) -> (Response, serde_json::Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
        (Response::from_parts(parts, axum::body::Body::empty()), json)
    }

    #[tokio::test]
    async fn renders_the_json_shape_with_its_headers() {
        let error = ApiError::fields(
            ErrorKind::InvalidConfig,
            vec![
                FieldError { path: "origin".into(), message: "missing".into() },
                FieldError { path: "retry.max_retries".into(), message: "use 0 to 10".into() },
            ],
        );
        let (response, json) = render(error).await;
        assert_eq!(response.status(), 400);
        assert_eq!(json["error"]["code"], "invalid_config");
        assert_eq!(json["error"]["message"], "origin: missing; retry.max_retries: use 0 to 10");
        assert_eq!(json["error"]["fields"][1]["path"], "retry.max_retries");

        let (response, json) = render(ApiError::rate_limited(Duration::from_millis(1500))).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
        assert!(json["error"].get("fields").is_none());

        let (response, _) = render(ApiError::new(ErrorKind::Unauthorized, "no token")).await;
        assert_eq!(response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    }
}
