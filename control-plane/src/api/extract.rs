//! Extractors that fail with an [`ApiError`] (axum's own answer in plain text), and JSON
//! parsing that names the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, ErrorKind};
use outpost_config::NodeId;

use crate::auth::Principal;

/// The caller of a tenant or operator route, from its token. Runs before the body is read: a
/// request without a valid token costs no body buffering. A node token is refused here (403),
/// so it can reach only the node routes, which take [`NodeAuth`].
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, app)? {
            Principal::Node(_) => Err(ApiError::new(
                ErrorKind::Forbidden,
                "a node token may only register a node, open its stream and acknowledge",
            )),
            principal => Ok(Auth(principal)),
        }
    }
}

/// The caller of a node route (`/v1/nodes/{id}` register, stream, ack): a node token only,
/// bound to one node id or not (see [`NodeAuth::check`]).
pub struct NodeAuth(Option<NodeId>);

impl NodeAuth {
    /// May the token act as node `id`? A token bound to another node gets 403.
    pub fn check(&self, id: &NodeId) -> Result<(), ApiError> {
        match &self.0 {
            Some(own) if own != id => Err(ApiError::new(
                ErrorKind::Forbidden,
                format!("this node token is node \"{own}\"'s; it cannot act as \"{id}\""),
            )),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for NodeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, app)? {
            Principal::Node(id) => Ok(NodeAuth(id)),
            other => {
                Err(ApiError::new(ErrorKind::Forbidden, format!("this route is for node tokens, not the {other}")))
            }
        }
    }
}

fn authenticate(parts: &Parts, app: &AppState) -> Result<Principal, ApiError> {
    app.tokens.authenticate(&parts.headers).map_err(|e| ApiError::new(ErrorKind::Unauthorized, e.to_string()))
}

/// The address of the connection a request came on (`None` outside the accept loop, e.g. in
/// tests that call the router directly).
pub struct Peer(pub Option<std::net::SocketAddr>);

impl<S: Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(Peer(info.map(|info| info.0)))
    }
}

/// The whole body, at most `limits.max_body_size` (the router's `DefaultBodyLimit`).
pub struct Body(pub Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, ApiError> {
        match Bytes::from_request(request, app).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                ErrorKind::BodyTooLarge,
                format!("the body is larger than {} (limits.max_body_size)", app.limits.max_body_size),
            )),
            Err(rejection) => Err(ApiError::new(ErrorKind::InvalidRequest, rejection.body_text())),
        }
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, app).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::new(ErrorKind::InvalidRequest, rejection.body_text())),
        }
    }
}

/// Query parameters; unknown ones are an error where `T` denies them.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, app).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::new(ErrorKind::InvalidRequest, rejection.body_text())),
        }
    }
}

/// Parses a JSON body into `T`. Not JSON: `bad_json` with serde's position. JSON of the wrong
/// shape: `kind`, with the path of the field at fault (`urls[2]`, `retry.max_retries`).
/// The `Content-Type` is not checked: `curl -d` sends a form type for JSON, and the body
/// says what it is.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], kind: ErrorKind) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer);
    match parsed {
        // Trailing characters after the value: serde_json's `end` reports them.
        Ok(value) => match deserializer.end() {
            Ok(()) => Ok(value),
            Err(error) => Err(ApiError::new(ErrorKind::BadJson, format!("the body is not JSON: {error}"))),
        },
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let path = if path == "." { String::new() } else { path };
                    Err(ApiError::field(kind, path, data_message(&inner)))
                }
                _ => Err(ApiError::new(ErrorKind::BadJson, format!("the body is not JSON: {inner}"))),
            }
        }
    }
}

/// serde's message without its position (the path says where) and without Rust's type
/// names.
fn data_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    message
        .replace("expected usize", "expected a whole number")
        .replace("expected u32", "expected a whole number")
        .replace("expected u64", "expected a whole number")
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected an object")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        #[serde(default)]
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        weight: u32,
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases = [
            ("{", ErrorKind::BadJson, "", "the body is not JSON: EOF while parsing"),
            (r#"{"name": "a"} x"#, ErrorKind::BadJson, "", "the body is not JSON: trailing characters"),
            ("", ErrorKind::BadJson, "", "the body is not JSON"),
            (r#""7""#, ErrorKind::InvalidRequest, "", "invalid type: string \"7\", expected struct Sample"),
            (r#"{"nam": "a"}"#, ErrorKind::InvalidRequest, "nam", "unknown field `nam`"),
            (r#"{"inner": []}"#, ErrorKind::InvalidRequest, "", "missing field `name`"),
            (
                r#"{"name": "a", "inner": [{"weight": 1}, {"weight": "x"}]}"#,
                ErrorKind::InvalidRequest,
                "inner[1].weight",
                "invalid type: string \"x\", expected a whole number",
            ),
        ];
        for (body, kind, path, fragment) in cases {
            let error = parse_json::<Sample>(body.as_bytes(), ErrorKind::InvalidRequest).err();
            let Some(error) = error else { panic!("{body}: accepted") };
            assert_eq!(error.kind, kind, "{body}: {error:?}");
            assert_eq!(error.fields.first().map_or("", |f| f.path.as_str()), path, "{body}: {error:?}");
            assert!(error.message.contains(fragment), "{body}: {}", error.message);
            if kind != ErrorKind::BadJson {
                assert!(!error.message.contains(" at line "), "{body}: {}", error.message);
            }
        }
    }
}
