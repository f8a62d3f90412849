use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use outpost_config::{OriginProtocol, OriginUrl, Scheme, ServiceConfig, UpstreamConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::body::EdgeBody;
use crate::error::{EdgeError, ErrorKind};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, EdgeBody>;

/// One service's origin: where it is, how to reach it, and how long to wait.
pub struct Upstream {
    client: HttpsClient,
    pub origin: OriginUrl,
    /// `scheme://host:port`, prefixed to each request's path.
    base: String,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UpstreamBuildError(pub String);

impl Upstream {
    pub fn new(svc: &ServiceConfig, defaults: &UpstreamConfig) -> Result<Self, UpstreamBuildError> {
        // Several origins come with issue 3's selection; until then the first one is used.
        let origins = svc.origin_list();
        let origin = origins.first().map(|o| &o.url).ok_or_else(|| UpstreamBuildError("no origin".into()))?;
        let roots = match &svc.origin_ca {
            Some(path) => ca_roots(path)?,
            None => system_roots(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| UpstreamBuildError(format!("TLS versions: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(svc.connect_timeout.unwrap_or(defaults.connect_timeout)));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let connector = match svc.origin_protocol {
            OriginProtocol::Auto => builder.enable_http1().enable_http2().wrap_connector(http),
            OriginProtocol::Http1 => builder.enable_http1().wrap_connector(http),
            OriginProtocol::Http2 => builder.enable_http2().wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(defaults.pool_idle_timeout)
            .pool_max_idle_per_host(defaults.pool_max_idle_per_host)
            .http2_only(svc.origin_protocol == OriginProtocol::Http2)
            .build(connector);
        let scheme = match origin.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        Ok(Self {
            client,
            base: format!("{scheme}://{}", origin.authority()),
            origin: origin.clone(),
            first_byte_timeout: svc.first_byte_timeout.unwrap_or(defaults.first_byte_timeout),
            between_bytes_timeout: svc.between_bytes_timeout.unwrap_or(defaults.between_bytes_timeout),
        })
    }

    pub fn uri(&self, path_and_query: &str) -> Result<Uri, EdgeError> {
        format!("{}{}", self.base, path_and_query)
            .parse()
            .map_err(|e| EdgeError::new(ErrorKind::BadRequest, format!("request target: {e}")))
    }

    /// Send a request and wait for the response head, at most `first_byte_timeout` (which also
    /// covers connecting).
    pub async fn send(&self, req: Request<EdgeBody>) -> Result<Response<Incoming>, EdgeError> {
        let origin = self.origin.authority();
        match tokio::time::timeout(self.first_byte_timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e).within(format!("upstream {origin}"))),
            Err(_) => Err(EdgeError::new(
                ErrorKind::UpstreamTimeout,
                format!("no response head within {:?}", self.first_byte_timeout),
            )
            .within(format!("upstream {origin}"))),
        }
    }
}

/// Map a client error to a kind, with the innermost cause as the message.
fn classify(e: &hyper_util::client::legacy::Error) -> EdgeError {
    let mut cause: &dyn std::error::Error = e;
    let mut tls = false;
    let mut body_limit = false;
    while let Some(next) = cause.source() {
        if next.downcast_ref::<rustls::Error>().is_some() {
            tls = true;
        }
        if next.downcast_ref::<crate::listen::BodyTooLarge>().is_some() {
            body_limit = true;
        }
        cause = next;
    }
    let msg = cause.to_string();
    let kind = if body_limit {
        ErrorKind::BodyTooLarge
    } else if tls || msg.contains("certificate") {
        ErrorKind::UpstreamTls
    } else if e.is_connect() {
        if msg.contains("timed out") { ErrorKind::UpstreamTimeout } else { ErrorKind::UpstreamConnect }
    } else {
        ErrorKind::UpstreamProtocol
    };
    let what = if e.is_connect() { "connect" } else { "request" };
    EdgeError::new(kind, format!("{what}: {msg}"))
}

fn system_roots() -> rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "loading system root certificates");
            }
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system root certificates");
            store
        })
        .clone()
}

fn ca_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, UpstreamBuildError> {
    let err = |m: String| UpstreamBuildError(format!("origin_ca {}: {m}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(err("no usable certificate".into()));
    }
    Ok(store)
}
