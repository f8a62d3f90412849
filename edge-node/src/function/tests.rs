//! In-process tests of the function host: a real node ([`RunningNode`]) on loopback running the
//! probe guest (`tests/guests/probe`), and the benchmark of instantiation and of a whole request.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use outpost_config::NodeConfig;

use super::{Function, FunctionHost};
use crate::RunningNode;

/// A node config: one service `shop` for `shop.test` whose function is `wasm`.
fn config(dir: &Path, wasm: &Path, function: &str) -> NodeConfig {
    let text = format!(
        "[node]\nname = \"edge-t\"\npop = \"tst\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [cache]\nmemory = \"8MiB\"\ndisk_path = {cache:?}\ndisk = \"32MiB\"\nmax_object_size = \"1MiB\"\n\
         [log]\naccess = \"off\"\n[[services]]\nname = \"shop\"\nhosts = [\"shop.test\"]\n\
         origin = \"http://127.0.0.1:9\"\n[services.function]\nwasm = {wasm:?}\n{function}\n",
        cache = dir.join("cache").display().to_string(),
        wasm = wasm.display().to_string(),
    );
    outpost_config::parse(&text, &dir.join("edge.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The component under test: `OUTPOST_BENCH_WASM` when set (the benchmark's hello function),
/// else the probe guest.
fn wasm() -> std::path::PathBuf {
    match std::env::var_os("OUTPOST_BENCH_WASM") {
        Some(path) => path.into(),
        None => outpost_tests::wasm::probe_guest().unwrap_or_else(|e| panic!("building the probe: {e:#}")),
    }
}

/// One HTTP/1.1 keep-alive connection to the node.
struct Client(http1::SendRequest<Empty<Bytes>>);

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
        tokio::spawn(conn);
        Self(sender)
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let req = Request::get(path).header("host", "shop.test").body(Empty::new()).expect("request");
        self.0.ready().await.expect("connection ready");
        let resp = self.0.send_request(req).await.expect("response");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pop_header_comes_from_node_pop_and_failures_are_isolated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(config(dir.path(), &wasm(), "cpu_time = \"50ms\"")).await.expect("node");
    let mut client = Client::connect(node.addrs.http.expect("http listener")).await;

    let (status, headers) = client.get("/headers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains("outpost-pop: tst\n") && headers.contains("outpost-node: edge-t\n"), "{headers}");
    let (status, _) = client.get("/loop").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = client.get("/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from probe v0\n"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_without_the_proxy_export_is_refused_at_compile_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The smallest component: the header and nothing else, so no incoming-handler export.
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\x00\x01\x00").expect("write");
    let cfg = config(dir.path(), &empty, "");
    let host = Arc::new(FunctionHost::new(&cfg.functions, &cfg.node));
    let svc = &cfg.services[0];
    let Some(function) = &svc.function else { panic!("no function in the config") };
    let error =
        Function::compile(&host, 0, svc, function, &cfg, &crate::upstream::Guard::Operator).err().expect("refused");
    assert!(error.to_string().contains("not a wasi:http/proxy component"), "{error}");
    assert!(error.to_string().starts_with("services[0] (shop): function.wasm"), "{error}");
}

/// Prints microseconds per instantiation (a fresh store and instance from the pre-instantiated
/// template, pooling allocator) and per whole request (HTTP/1.1 over loopback into the node,
/// the function answering `GET /`). `bench/functions.sh` runs it with the hello function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures, asserts nothing; run by bench/functions.sh"]
async fn bench_instantiation_and_request() {
    let runs: u32 = std::env::var("OUTPOST_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = wasm();
    let cfg = config(dir.path(), &wasm, "");
    let host = Arc::new(FunctionHost::new(&cfg.functions, &cfg.node));
    let svc = &cfg.services[0];
    let Some(function) = &svc.function else { panic!("no function in the config") };
    let function =
        Function::compile(&host, 0, svc, function, &cfg, &crate::upstream::Guard::Operator).expect("compile");
    function.time_instantiation(runs / 10).await.expect("warm-up");
    let per_instance = function.time_instantiation(runs).await.expect("instantiate");

    let node = RunningNode::start(cfg).await.expect("node");
    let mut client = Client::connect(node.addrs.http.expect("http listener")).await;
    for _ in 0..runs / 10 {
        client.get("/").await;
    }
    let started = Instant::now();
    for _ in 0..runs {
        let (status, _) = client.get("/").await;
        assert_eq!(status, StatusCode::OK);
    }
    let per_request = started.elapsed() / runs;
    node.shutdown().await;
    println!("function: {}", wasm.display());
    println!("instantiation_us {:.1}", micros(per_instance));
    println!("request_us {:.1}", micros(per_request));
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
