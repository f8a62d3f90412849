//! The node's three calls to the control plane (`PUT /v1/nodes/{id}`, `GET
//! /v1/nodes/{id}/stream?after=N`, `POST /v1/nodes/{id}/ack`), with the node token, over
//! HTTP/1.1 or HTTP/2 (ALPN), TLS verified against the system roots or `control.ca`. Every
//! call goes to the URL in use ([`ControlClient::use_url`]: one of `control.urls`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use outpost_config::{Ack, ControlConfig, NodeId, NodeRegistration, Seq};
use serde::Deserialize;

use super::error::AgentError;

/// Largest answer read from register and ack (they are a few hundred bytes).
const MAX_ANSWER: usize = 1 << 20;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct ControlClient {
    http: Client<Connector, Full<Bytes>>,
    /// `http://host:port` of each control plane, without a trailing slash.
    bases: Vec<String>,
    /// The index in `bases` in use.
    current: AtomicUsize,
    node: NodeId,
    token: TokenSource,
    /// The bearer header, read at registration (a token file is read again on each).
    bearer: Mutex<Option<HeaderValue>>,
    request_timeout: Duration,
    /// Largest function fetched (`control.max_message_size`).
    max_function: usize,
}

enum TokenSource {
    Inline(String),
    File(PathBuf),
}

/// The parts of the register answer the node uses.
#[derive(Deserialize)]
pub struct Registered {
    pub head: Seq,
    /// The log's identity; absent from a control plane that does not give one.
    #[serde(default)]
    pub log: Option<String>,
}

impl ControlClient {
    pub fn new(cfg: &ControlConfig, node: NodeId) -> Result<Self, String> {
        let roots = match &cfg.ca {
            Some(path) => crate::http::tls::ca_roots("control.ca", path).map_err(|e| e.to_string())?,
            None => crate::http::tls::system_roots(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(cfg.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        if cfg.urls().is_empty() {
            return Err("no control-plane URL (control.url or control.urls)".to_owned());
        }
        let token = match (&cfg.token, &cfg.token_file) {
            (Some(token), _) => TokenSource::Inline(token.clone()),
            (None, Some(file)) => TokenSource::File(file.clone()),
            (None, None) => return Err("no node token (control.token or control.token_file)".to_owned()),
        };
        Ok(Self {
            http,
            bases: cfg.urls().iter().map(|url| format!("{}://{}", url.scheme, url.authority())).collect(),
            current: AtomicUsize::new(0),
            node,
            token,
            bearer: Mutex::new(None),
            request_timeout: cfg.request_timeout,
            max_function: usize::try_from(cfg.max_message_size.as_u64()).unwrap_or(usize::MAX),
        })
    }

    /// How many control planes the node may follow.
    pub fn url_count(&self) -> usize {
        self.bases.len()
    }

    /// Sends every later call to the control plane at `index` (modulo the list).
    pub fn use_url(&self, index: usize) {
        self.current.store(index % self.bases.len().max(1), Ordering::Relaxed);
    }

    /// The URL in use (for logs).
    pub fn url(&self) -> &str {
        self.bases.get(self.current.load(Ordering::Relaxed)).map_or("", String::as_str)
    }

    /// `PUT /v1/nodes/{id}`: (re)registers the node; returns the control plane's head.
    pub async fn register(&self, registration: &NodeRegistration) -> Result<Registered, AgentError> {
        const STEP: &str = "register";
        let bearer = self.read_token().await?;
        if let Ok(mut slot) = self.bearer.lock() {
            *slot = Some(bearer);
        }
        let body = serde_json::to_vec(registration).map_err(|e| protocol(STEP, e.to_string()))?;
        let resp = self.send(STEP, Method::PUT, &format!("/v1/nodes/{}", self.node), Some(body)).await?;
        let answer = self.read(STEP, resp).await?;
        let registered: Registered =
            serde_json::from_slice(&answer).map_err(|e| protocol(STEP, format!("answer: {e}")))?;
        Ok(registered)
    }

    /// `GET /v1/nodes/{id}/stream?after=N`: the open stream's body, once the control plane has
    /// answered 200.
    pub async fn stream(&self, after: Seq) -> Result<Incoming, AgentError> {
        const STEP: &str = "stream";
        let path = format!("/v1/nodes/{}/stream?after={after}", self.node);
        let resp = self.send(STEP, Method::GET, &path, None).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.refused(STEP, resp).await);
        }
        Ok(resp.into_body())
    }

    /// `POST /v1/nodes/{id}/ack` with `{"seq": N, "functions": {...}}`.
    pub async fn ack(&self, ack: &Ack) -> Result<(), AgentError> {
        const STEP: &str = "ack";
        let body = serde_json::to_vec(ack).map_err(|e| protocol(STEP, e.to_string()))?;
        let resp = self.send(STEP, Method::POST, &format!("/v1/nodes/{}/ack", self.node), Some(body)).await?;
        self.read(STEP, resp).await.map(|_| ())
    }

    /// `GET /v1/nodes/{id}/certificates/{service}/{name}`: the private key of a certificate's
    /// current version (never logged: [`CertificateKey`]'s `Debug` leaves it out).
    pub async fn certificate_key(
        &self,
        service: &outpost_config::ServiceId,
        name: &outpost_config::CertificateName,
    ) -> Result<outpost_config::CertificateKey, AgentError> {
        const STEP: &str = "certificate key";
        let path = format!("/v1/nodes/{}/certificates/{service}/{name}", self.node);
        let resp = self.send(STEP, Method::GET, &path, None).await?;
        let answer = self.read(STEP, resp).await?;
        serde_json::from_slice(&answer).map_err(|e| protocol(STEP, format!("answer: {e}")))
    }

    /// The largest function body [`Self::function`] takes (`control.max_message_size`).
    pub fn max_function(&self) -> u64 {
        self.max_function as u64
    }

    /// `GET /v1/functions/{sha256}`: a deployed function's bytes (at most
    /// `control.max_message_size`; the caller checks the hash).
    pub async fn function(&self, sha256: &str) -> Result<Bytes, AgentError> {
        const STEP: &str = "function";
        let resp = self.send(STEP, Method::GET, &format!("/v1/functions/{sha256}"), None).await?;
        if !resp.status().is_success() {
            return Err(self.refused(STEP, resp).await);
        }
        let body = Limited::new(resp.into_body(), self.max_function).collect();
        match tokio::time::timeout(self.request_timeout, body).await {
            Err(_) => Err(AgentError::Timeout { step: STEP, after: self.request_timeout }),
            Ok(Err(e)) => Err(protocol(STEP, format!("function {sha256}: {e} (control.max_message_size)"))),
            Ok(Ok(body)) => Ok(body.to_bytes()),
        }
    }

    async fn send(
        &self,
        step: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, AgentError> {
        let uri = format!("{}{path}", self.url());
        let mut req = Request::builder().method(method).uri(&uri);
        if let Some(bearer) = self.bearer.lock().ok().and_then(|b| b.clone()) {
            req = req.header(header::AUTHORIZATION, bearer);
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| protocol(step, format!("{uri}: {e}")))?;
        match tokio::time::timeout(self.request_timeout, self.http.request(req)).await {
            Err(_) => Err(AgentError::Timeout { step, after: self.request_timeout }),
            Ok(Err(e)) => Err(AgentError::Unreachable { step, message: innermost(&e) }),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// A 2xx answer's body (bounded, within the request timeout); any other status an error.
    async fn read(&self, step: &'static str, resp: Response<Incoming>) -> Result<Bytes, AgentError> {
        if !resp.status().is_success() {
            return Err(self.refused(step, resp).await);
        }
        let body = Limited::new(resp.into_body(), MAX_ANSWER).collect();
        match tokio::time::timeout(self.request_timeout, body).await {
            Err(_) => Err(AgentError::Timeout { step, after: self.request_timeout }),
            Ok(Err(e)) => Err(protocol(step, format!("answer: {e}"))),
            Ok(Ok(body)) => Ok(body.to_bytes()),
        }
    }

    /// An error answer, with the message of its `{"error": {"code", "message"}}` body.
    async fn refused(&self, step: &'static str, resp: Response<Incoming>) -> AgentError {
        let status = resp.status();
        let body =
            tokio::time::timeout(self.request_timeout, Limited::new(resp.into_body(), MAX_ANSWER).collect()).await;
        let text = match body {
            Ok(Ok(b)) => b.to_bytes(),
            _ => Bytes::new(),
        };
        let message = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&text).chars().take(200).collect());
        AgentError::Refused { step, status, message }
    }

    async fn read_token(&self) -> Result<HeaderValue, AgentError> {
        let token = match &self.token {
            TokenSource::Inline(token) => token.clone(),
            TokenSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| AgentError::Token(format!("{}: {e}", path.display())))?
                .trim()
                .to_owned(),
        };
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AgentError::Token("the token must be non-empty visible ASCII without spaces".to_owned()));
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| AgentError::Token(format!("not a header value: {e}")))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

fn protocol(step: &'static str, message: String) -> AgentError {
    AgentError::Protocol { step, message }
}

/// The innermost cause: hyper's outer messages ("client error (Connect)") say little.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
