//! The HTTP side of `outpostctl`: one request to the control plane's API, its JSON answer, and
//! the API's `{"error": {"code", "message"}}` turned into a [`CtlError`].

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The largest answer read: the API pages its lists, so this is generous.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// What the user asked for cannot be sent (a bad flag value, an unreadable file).
    #[error("{0}")]
    Usage(String),
    /// The control plane could not be reached or answered something that is not the API.
    #[error("{0}")]
    Transport(String),
    /// The API refused the request.
    #[error("{code}: {message} (HTTP {status})")]
    Api { status: u16, code: String, message: String },
}

pub struct Client {
    base: String,
    token: Option<String>,
    timeout: Duration,
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A successful answer: its status (200, 201, 202 …) and JSON body (`null` when empty).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Client {
    /// `base` is the API's root URL (`http://127.0.0.1:7400`); `timeout` bounds each request,
    /// including a purge's `wait=true`.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Result<Self, CtlError> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|e| CtlError::Usage(format!("--url {base:?}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(CtlError::Usage(format!("--url {base:?}: use http://HOST:PORT or https://HOST")));
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| CtlError::Transport(format!("loading the system's CA certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = HyperClient::builder(TokioExecutor::new()).build(https);
        Ok(Self { base, token, timeout, http })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, CtlError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, CtlError> {
        let body = body.map(|json| ("application/json", Bytes::from(json.to_string())));
        self.send_raw(method, path, body).await
    }

    /// [`Client::send`] with a body of any type: `(Content-Type, bytes)` (a function's `.wasm`).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Answer, CtlError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method.clone()).uri(&url);
        if let Some(token) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some((kind, bytes)) => {
                req = req.header(header::CONTENT_TYPE, kind);
                bytes
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).map_err(|e| CtlError::Usage(format!("{method} {url}: {e}")))?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| transport(&method, &url, &e))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| CtlError::Transport(format!("{method} {url}: reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, CtlError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CtlError::Transport(format!("{method} {url}: no answer within {:?}", self.timeout)))??;
        let json: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|_| {
                CtlError::Transport(format!(
                    "{method} {url}: HTTP {status} with a body that is not JSON: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ))
            })?
        };
        if status.is_success() {
            return Ok(Answer { status, body: json });
        }
        let error = &json["error"];
        Err(CtlError::Api {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"].as_str().unwrap_or("(no message)").to_owned(),
        })
    }
}

/// hyper's error chain, down to the cause a user can act on ("Connection refused").
fn transport(method: &Method, url: &str, error: &dyn std::error::Error) -> CtlError {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    CtlError::Transport(format!("{method} {url}: {text}"))
}

/// `s` made safe inside a URL path segment or query value (the API's ids are plain, but a
/// user's typo should get the API's error, not a malformed request).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_is_not_unreserved() {
        assert_eq!(encode("shop"), "shop");
        assert_eq!(encode("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[test]
    fn refuses_urls_that_are_not_http() {
        for bad in ["127.0.0.1:7400", "ftp://x", "http://"] {
            assert!(matches!(Client::new(bad, None, Duration::from_secs(1)), Err(CtlError::Usage(_))), "{bad}");
        }
    }
}
