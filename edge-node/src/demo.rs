//! `edge-node demo`: a sample origin and an edge node on loopback with a generated self-signed
//! certificate, nothing to install. It fetches one URL twice to show a miss then a hit, prints the
//! URLs and curl lines to try, and runs until Ctrl-C.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use crate::RunningNode;

const HOST: &str = "localhost";

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("outpost-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let result = run_in(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &std::path::Path) -> anyhow::Result<()> {
    let (cert, key) = write_certificate(dir)?;
    let token_file = write_admin_token(dir)?;
    let origin_hits = Arc::new(AtomicU64::new(0));
    let origin = start_origin(origin_hits.clone()).await?;
    let config = format!(
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
        http = free_or_any("127.0.0.1:8080"),
        https = free_or_any("127.0.0.1:8443"),
        admin = free_or_any("127.0.0.1:9090"),
        cert = cert.display(),
        key = key.display(),
        token = token_file.display(),
        cache = dir.join("cache").display(),
    );
    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, &config)?;
    let cfg = outpost_config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let node = RunningNode::start(cfg).await?;
    let http = node.addrs.http.context("demo has an http listener")?;
    let https = node.addrs.https.context("demo has an https listener")?;
    let admin = node.addrs.admin;

    println!("Outpost demo: an origin on {origin} and an edge node in front of it.\n");
    for round in ["first", "second"] {
        let status = cache_status(http, "/").await.unwrap_or_else(|e| format!("request failed: {e}"));
        println!("  {round} GET http://{HOST}:{}/  ->  Cache-Status: {status}", http.port());
    }
    println!("  origin requests so far: {}\n", origin_hits.load(Ordering::Relaxed));
    println!("Try it:");
    println!(
        "  curl -s -D - -o /dev/null http://{HOST}:{}/hello.txt   # run twice: fwd=uri-miss, then hit",
        http.port()
    );
    println!(
        "  curl -sk --http2 -D - -o /dev/null https://{HOST}:{}/hello.txt   # self-signed certificate: -k",
        https.port()
    );
    println!("  curl -s -D - -o /dev/null http://{HOST}:{}/time   # no-store: never cached", http.port());
    let auth = format!("-H \"Authorization: Bearer $(cat {})\"", token_file.display());
    println!(
        "  curl -s {auth} -X POST http://{admin}/purge -d '{{\"service\":\"demo\",\"kind\":\"all\"}}'   # purge, then MISS again"
    );
    println!("  curl -s {auth} http://{admin}/metrics | grep outpost_requests_total");
    println!("\nCertificate: {}. Ctrl-C stops the demo.", cert.display());

    tokio::signal::ctrl_c().await?;
    node.shutdown().await;
    Ok(())
}

fn free_or_any(addr: &str) -> String {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => addr.to_string(),
        Err(_) => "127.0.0.1:0".to_string(),
    }
}

/// A fresh random admin token in `dir/admin-token`, readable by this user only.
fn write_admin_token(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
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

fn write_certificate(dir: &std::path::Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let ck = rcgen::generate_simple_self_signed(vec![HOST.into(), "demo.outpost.test".into()])?;
    let cert = dir.join("demo-cert.pem");
    let key = dir.join("demo-key.pem");
    std::fs::write(&cert, ck.cert.pem())?;
    std::fs::write(&key, ck.signing_key.serialize_pem())?;
    Ok((cert, key))
}

/// The sample origin: a cacheable page, a cacheable text file, an uncacheable clock.
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
    let (status, cache_control, ctype, body): (u16, &str, &str, String) = match path {
        "/" => (200, "public, max-age=60", "text/html", "<h1>Hello from the Outpost demo origin</h1>\n".into()),
        "/hello.txt" => (200, "max-age=300, stale-while-revalidate=30", "text/plain", "hello, edge\n".into()),
        "/time" => (200, "no-store", "text/plain", format!("{:?}\n", std::time::SystemTime::now())),
        _ => (404, "max-age=10", "text/plain", "not found\n".into()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
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

async fn cache_status(edge: SocketAddr, path: &str) -> anyhow::Result<String> {
    let tcp = TcpStream::connect(edge).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = Request::get(path).header(header::HOST, HOST).body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.headers().get("cache-status").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let _ = resp.into_body().collect().await;
    Ok(status)
}
