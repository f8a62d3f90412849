//! `edge-node demo`: a sample origin and an edge node on loopback with a generated self-signed
//! certificate, nothing to install. It fetches one object twice over cleartext HTTP/1.1 and
//! another twice over HTTP/2 with TLS, so each shows a miss then a hit (the cache key has no
//! scheme: one object fetched over both would be a hit the second time whatever the protocol);
//! prints the URLs and curl lines to try, each on an object not fetched yet, and runs until
//! SIGINT (Ctrl-C) or SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use crate::RunningNode;

const HOST: &str = "localhost";

/// Where the demo listens. A port in use (another demo, a local web server) falls back to one
/// the OS picks; `127.0.0.1:0` always does.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Cleartext HTTP/1.1 and h2c listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// TLS listener (HTTP/1.1 and HTTP/2; the certificate is generated and self-signed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub https: SocketAddr,
    /// Admin listener (/metrics, /purge; the token is generated).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub admin: SocketAddr,
}

/// What the demo writes into its scratch directory.
struct Files {
    cert: PathBuf,
    cert_der: CertificateDer<'static>,
    key: PathBuf,
    token: PathBuf,
    cache: PathBuf,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("outpost-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let result = run_in(&dir, &args).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    let (cert, cert_der, key) = write_certificate(dir)?;
    let files = Files { cert, cert_der, key, token: write_admin_token(dir)?, cache: dir.join("cache") };
    let origin_hits = Arc::new(AtomicU64::new(0));
    let origin = start_origin(origin_hits.clone()).await?;
    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, config_text(args, &files, origin))?;
    let cfg = outpost_config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Handlers first: a stop signal during the rounds below ends the demo cleanly.
    let stop = stop_signal()?;
    let node = RunningNode::start(cfg).await?;
    let http = node.addrs.http.context("demo has an http listener")?;
    let https = node.addrs.https.context("demo has an https listener")?;

    println!("Outpost demo: an origin on {origin} and an edge node in front of it.\n");
    let tls = tls_connector(files.cert_der.clone())?;
    for round in ["first ", "second"] {
        let status = cache_status_http(http, "/").await.unwrap_or_else(|e| format!("request failed: {e}"));
        println!("  {round} GET http://{HOST}:{}/  (HTTP/1.1)  ->  Cache-Status: {status}", http.port());
    }
    for round in ["first ", "second"] {
        let status =
            cache_status_https(https, &tls, "/secure.html").await.unwrap_or_else(|e| format!("request failed: {e}"));
        println!(
            "  {round} GET https://{HOST}:{}/secure.html  (HTTP/2, TLS)  ->  Cache-Status: {status}",
            https.port()
        );
    }
    println!("  origin requests so far: {}\n", origin_hits.load(Ordering::Relaxed));
    print_try_it(http, https, node.addrs.admin, &files);
    stop.await;
    node.shutdown().await;
    Ok(())
}

fn config_text(args: &DemoArgs, files: &Files, origin: SocketAddr) -> String {
    format!(
        r#"
[node]
name = "demo-edge"
[listen]
http = "{http}"
https = "{https}"
admin = "{admin}"
admin_token_file = "{token}"
[[tls.certificates]]
hosts = ["{HOST}", "demo.outpost.test"]
cert = "{cert}"
key = "{key}"
[cache]
memory = "64MiB"
disk_path = "{cache}"
disk = "256MiB"
max_object_size = "16MiB"
[log]
access = "off"
level = "warn"
[[services]]
name = "demo"
hosts = ["{HOST}", "demo.outpost.test"]
origin = "http://{origin}"
"#,
        http = free_or_any(args.http),
        https = free_or_any(args.https),
        admin = free_or_any(args.admin),
        cert = files.cert.display(),
        key = files.key.display(),
        token = files.token.display(),
        cache = files.cache.display(),
    )
}

/// The curl lines, each on an object the demo has not fetched: the first run is a miss.
fn print_try_it(http: SocketAddr, https: SocketAddr, admin: SocketAddr, files: &Files) {
    println!("Try it (run each twice: fwd=uri-miss, then hit):");
    println!("  curl -s -D - -o /dev/null http://{HOST}:{}/hello.txt", http.port());
    println!(
        "  curl -s --http2 --cacert {} -D - -o /dev/null https://{HOST}:{}/hello-tls.txt",
        files.cert.display(),
        https.port()
    );
    println!("  curl -s -D - -o /dev/null http://{HOST}:{}/time   # no-store: never cached", http.port());
    let auth = format!("-H \"Authorization: Bearer $(cat {})\"", files.token.display());
    println!(
        "  curl -s {auth} -X POST http://{admin}/purge -d '{{\"service\":\"demo\",\"kind\":\"all\"}}'   # purge, then MISS again"
    );
    println!("  curl -s {auth} http://{admin}/metrics | grep outpost_requests_total");
    println!("\nCertificate: {}. Ctrl-C stops the demo.", files.cert.display());
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

fn free_or_any(addr: SocketAddr) -> SocketAddr {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => addr,
        Err(_) => SocketAddr::new(addr.ip(), 0),
    }
}

/// A fresh random admin token in `dir/admin-token`, readable by this user only.
fn write_admin_token(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness for the admin token"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("admin-token");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    file.write_all(token.as_bytes())?;
    Ok(path)
}

fn write_certificate(dir: &Path) -> anyhow::Result<(PathBuf, CertificateDer<'static>, PathBuf)> {
    let ck = rcgen::generate_simple_self_signed(vec![HOST.into(), "demo.outpost.test".into()])?;
    let cert = dir.join("demo-cert.pem");
    let key = dir.join("demo-key.pem");
    std::fs::write(&cert, ck.cert.pem())?;
    std::fs::write(&key, ck.signing_key.serialize_pem())?;
    Ok((cert, ck.cert.der().clone(), key))
}

/// The sample origin: a cacheable page at `/`, an uncacheable clock at `/time`, and a
/// cacheable text for any other path (so each curl line has an object of its own).
async fn start_origin(hits: Arc<AtomicU64>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let hits = hits.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    hits.fetch_add(1, Ordering::Relaxed);
                    async move { Ok::<_, Infallible>(origin_response(req.uri().path())) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn origin_response(path: &str) -> Response<Full<Bytes>> {
    let (cache_control, ctype, body): (&str, &str, String) = match path {
        "/" => ("public, max-age=60", "text/html", "<h1>Hello from the Outpost demo origin</h1>\n".into()),
        "/time" => ("no-store", "text/plain", format!("{:?}\n", std::time::SystemTime::now())),
        _ => ("max-age=300, stale-while-revalidate=30", "text/plain", format!("hello, edge: {path}\n")),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_str(cache_control).unwrap_or(header::HeaderValue::from_static("no-store")),
    );
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(ctype).unwrap_or(header::HeaderValue::from_static("text/plain")),
    );
    h.insert(header::ETAG, header::HeaderValue::from_static("\"demo-v1\""));
    resp
}

/// A TLS client that trusts the demo's own certificate only, offering h2.
fn tls_connector(cert: CertificateDer<'static>) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

async fn cache_status_http(edge: SocketAddr, path: &str) -> anyhow::Result<String> {
    let tcp = TcpStream::connect(edge).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = Request::get(path).header(header::HOST, HOST).body(Empty::<Bytes>::new())?;
    read_cache_status(sender.send_request(req).await?).await
}

async fn cache_status_https(edge: SocketAddr, tls: &tokio_rustls::TlsConnector, path: &str) -> anyhow::Result<String> {
    let tcp = TcpStream::connect(edge).await?;
    let stream = tls.connect(ServerName::try_from(HOST)?, tcp).await?;
    anyhow::ensure!(stream.get_ref().1.alpn_protocol() == Some(b"h2"), "the node did not choose h2");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let uri = format!("https://{HOST}:{}{path}", edge.port());
    let req = Request::get(uri).body(Empty::<Bytes>::new())?;
    read_cache_status(sender.send_request(req).await?).await
}

async fn read_cache_status(resp: Response<Incoming>) -> anyhow::Result<String> {
    let status = resp.headers().get("cache-status").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let _ = resp.into_body().collect().await;
    Ok(status)
}
