//! The HTTP client instant-acme talks to the CA through: hyper + hyper-rustls (already in the
//! control plane), ring, the system's roots plus `acme.ca_file`, and a bound on every request.
//! Also the account: kept per directory URL in the store, created once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountCredentials, BodyWrapper, BytesResponse, HttpClient, NewAccount};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::AcmeSettings;
use crate::secrets::{Keyring, Sealed};
use crate::store::Store;

/// One request to the CA (connect, TLS, response head and body): past it the request fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("acme.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS client: {0}")]
    Tls(#[from] rustls::Error),
}

/// hyper's client over rustls, for instant-acme.
struct Http(HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl HttpClient for Http {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.0.request(req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, response).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Str("the ACME server did not answer within 30s")),
            }
        })
    }
}

/// Builds the client: HTTPS only, the system's roots and those of `ca_file`.
pub fn http(settings: &AcmeSettings) -> Result<Box<dyn HttpClient>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot use is skipped, as every rustls client does.
        let _ = roots.add(cert);
    }
    if let Some(path) = &settings.ca_file {
        let error = |message: String| ClientError::CaFile { path: path.display().to_string(), message };
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| error(e.to_string()))?;
        let mut added = 0;
        for cert in certs {
            roots.add(cert.map_err(|e| error(e.to_string()))?).map_err(|e| error(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(error("holds no PEM certificate".to_owned()));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Box::new(Http(HyperClient::builder(TokioExecutor::new()).build(https))))
}

/// The account for `settings.directory`: the one kept in the store, else a new one (agreeing
/// to the CA's terms), kept for next time. Its credentials (the account's private key) are
/// sealed with the control plane's keyring (`[secrets]`), bound to the directory URL. Two
/// replicas creating one at once: the first kept wins, and both use it.
pub async fn account(settings: &AcmeSettings, store: &Arc<dyn Store>, keyring: &Keyring) -> Result<Account, String> {
    let directory = settings.directory.as_str();
    if let Some(kept) = store.acme_account(directory).await.map_err(|e| e.to_string())? {
        return restore(settings, keyring, &kept).await;
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
    let builder = Account::builder_with_http(http(settings).map_err(|e| e.to_string())?);
    let (account, credentials) = builder.create(&new, directory.to_owned(), None).await.map_err(|e| e.to_string())?;
    let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
    let sealed = keyring.seal(&json, &account_aad(directory)).map_err(|e| format!("sealing the account key: {e}"))?;
    let sealed = serde_json::to_string(&sealed).map_err(|e| e.to_string())?;
    let kept = store.put_acme_account(directory, sealed.clone()).await.map_err(|e| e.to_string())?;
    if kept == sealed {
        tracing::info!(%directory, id = account.id(), "ACME account created");
        return Ok(account);
    }
    // Another replica's account won: use it.
    restore(settings, keyring, &kept).await
}

/// What a sealed account is bound to: a sealed value copied to another directory's row does
/// not open.
fn account_aad(directory: &str) -> Vec<u8> {
    format!("outpost acme account\0{directory}").into_bytes()
}

async fn restore(settings: &AcmeSettings, keyring: &Keyring, kept: &str) -> Result<Account, String> {
    let sealed: Sealed = serde_json::from_str(kept).map_err(|e| format!("the stored account does not read: {e}"))?;
    let plain = keyring
        .open(&sealed, &account_aad(&settings.directory))
        .map_err(|e| format!("the stored account does not open with [secrets]' keys: {e}"))?;
    let credentials: AccountCredentials =
        serde_json::from_slice(&plain).map_err(|e| format!("the stored account does not read back: {e}"))?;
    let builder = Account::builder_with_http(http(settings).map_err(|e| e.to_string())?);
    builder.from_credentials(credentials).await.map_err(|e| e.to_string())
}
