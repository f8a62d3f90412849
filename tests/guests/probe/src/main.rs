//! The probe: one `wasi:http/proxy` component whose request path picks what it does, so the
//! host's tests can drive every limit and hook with one guest built once.
//!
//! | path | behaviour |
//! |---|---|
//! | `/hello` (any other path) | 200 `hello from probe <VERSION>` |
//! | `/loop` | spins for ever (CPU limit) |
//! | `/spin?ms=N` | spins N ms of monotonic time, then 200 |
//! | `/alloc` | allocates 1 MiB blocks until memory runs out (memory limit) |
//! | `/alloc?mb=N` | allocates and touches N MiB, then 200 |
//! | `/big?bytes=N[&declare=1]` | a body of N bytes, with `Content-Length` when `declare` |
//! | `/echo` | reads the whole request body; 200 `read N bytes` or `read error: …` |
//! | `/fetch?n=N&path=P[&backend=B]` | N fetches of P from backend B (default `origin`), one line each |
//! | `/forbidden?host=H` | one fetch to `http://H/`; 200 with the outcome |
//! | `/origin/REST` | fetches `/REST` (and query) from `origin`; passes status, type, body on |
//! | `/backend/NAME/REST` | the same from the backend NAME |
//! | `/trap` | panics before answering |
//! | `/set-then-trap` | sets a 500 response, writes and finishes its body, then panics |
//! | `/hang` | waits for ever without using CPU (wall-clock limit) |
//! | `/log?lines=N&len=L` | N lines of L bytes to stdout and to stderr, then 200 |
//! | `/env` | the environment, `K=V` per line, sorted |
//! | `/headers` | the request headers, `name: value` per line, sorted |

use std::io::{Read as _, Write as _};

use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};

wasi::http::proxy::export!(Probe);

struct Probe;

/// A std binary for wasm32-wasip2 needs a `main`; the host calls the exported handler instead.
fn main() {}

impl wasi::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let full = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = full.split_once('?').unwrap_or((full.as_str(), ""));
        let param = |name: &str| {
            query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let number = |name: &str, default: u64| param(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        match path {
            "/loop" => spin_forever(),
            "/spin" => {
                spin(number("ms", 10));
                respond(out, 200, &[], b"spun\n");
            }
            "/alloc" => match param("mb") {
                Some(_) => {
                    let blocks = allocate(number("mb", 1));
                    respond(out, 200, &[], format!("allocated {blocks} MiB\n").as_bytes());
                }
                None => {
                    // Grows until the host refuses memory: the allocator then aborts (a trap).
                    let mut kept: Vec<Vec<u8>> = Vec::new();
                    loop {
                        kept.push(vec![1; 1 << 20]);
                        std::hint::black_box(&kept);
                    }
                }
            },
            "/big" => big(out, number("bytes", 1 << 20), param("declare").is_some()),
            "/echo" => {
                let text = match read_body(&request) {
                    Ok(body) => format!("read {} bytes\n", body.len()),
                    Err(e) => format!("read error: {e}\n"),
                };
                respond(out, 200, &[], text.as_bytes());
            }
            "/fetch" => {
                let backend = param("backend").unwrap_or_else(|| "origin".to_string());
                let path = param("path").unwrap_or_else(|| "/".to_string());
                let mut report = String::new();
                for i in 0..number("n", 1) {
                    match fetch(&backend, &path, &[]) {
                        Ok(resp) => report.push_str(&format!("{i} {} {} bytes\n", resp.status, resp.body.len())),
                        Err(e) => report.push_str(&format!("{i} error {e}\n")),
                    }
                }
                respond(out, 200, &[], report.as_bytes());
            }
            "/forbidden" => {
                let host = param("host").unwrap_or_else(|| "example.com".to_string());
                let text = match fetch(&host, "/", &[]) {
                    Ok(resp) => format!("allowed {}\n", resp.status),
                    Err(e) => format!("denied {e}\n"),
                };
                respond(out, 200, &[], text.as_bytes());
            }
            "/trap" => panic!("probe: /trap asked for a trap"),
            "/set-then-trap" => {
                respond(out, 500, &[], b"probe set this response, then trapped\n");
                panic!("probe: trapping after the response was set");
            }
            "/hang" => loop {
                wasi::clocks::monotonic_clock::subscribe_duration(u64::MAX).block();
            },
            "/log" => {
                let len = number("len", 16) as usize;
                for i in 0..number("lines", 1) {
                    let line = format!("probe line {i} ");
                    let pad = "x".repeat(len.saturating_sub(line.len()));
                    println!("stdout {line}{pad}");
                    eprintln!("stderr {line}{pad}");
                }
                respond(out, 200, &[], b"logged\n");
            }
            "/env" => {
                let mut vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect();
                vars.sort();
                respond(out, 200, &[], vars.concat().as_bytes());
            }
            "/headers" => {
                let mut lines: Vec<String> = request
                    .headers()
                    .entries()
                    .into_iter()
                    .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(&v)))
                    .collect();
                lines.sort();
                respond(out, 200, &[], lines.concat().as_bytes());
            }
            _ => {
                if let Some(rest) = path.strip_prefix("/origin/") {
                    relay(out, "origin", rest, query, &request);
                } else if let Some((name, rest)) = path.strip_prefix("/backend/").and_then(|r| r.split_once('/')) {
                    relay(out, name, rest, query, &request);
                } else {
                    let version = std::env::var("VERSION").unwrap_or_else(|_| "v0".to_string());
                    respond(out, 200, &[("x-probe-version", &version)], format!("hello from probe {version}\n").as_bytes());
                }
            }
        }
    }
}

/// A backend's answer, read whole.
struct Fetched {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// One GET of `path` from the backend named `authority`; the error is the wasi-http error code.
fn fetch(authority: &str, path: &str, headers: &[(String, Vec<u8>)]) -> Result<Fetched, String> {
    let fields = Fields::from_list(headers).map_err(|e| format!("headers: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let set = request
        .set_method(&Method::Get)
        .and(request.set_scheme(Some(&Scheme::Http)))
        .and(request.set_authority(Some(authority)))
        .and(request.set_path_with_query(Some(path)));
    set.map_err(|()| format!("invalid request for {authority}{path}"))?;
    let body = request.body().map_err(|()| "request body taken twice".to_string())?;
    let future = wasi::http::outgoing_handler::handle(request, None).map_err(|e| code(&e))?;
    OutgoingBody::finish(body, None).map_err(|e| code(&e))?;
    let response = loop {
        match future.get() {
            Some(result) => break result.map_err(|()| "response taken twice".to_string())?.map_err(|e| code(&e))?,
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response.consume().map_err(|()| "response body taken twice".to_string())?;
    let mut stream = incoming.stream().map_err(|()| "response stream taken twice".to_string())?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).map_err(|e| format!("body: {e}"))?;
    Ok(Fetched { status, headers, body })
}

fn code(e: &ErrorCode) -> String {
    format!("{e:?}")
}

/// `/origin/REST`: the backend's status, content type and body, with the client's headers
/// passed on except those a hop may not forward.
fn relay(out: ResponseOutparam, backend: &str, rest: &str, query: &str, request: &IncomingRequest) {
    let path = if query.is_empty() { format!("/{rest}") } else { format!("/{rest}?{query}") };
    let forwarded: Vec<(String, Vec<u8>)> = request
        .headers()
        .entries()
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "host" | "connection" | "content-length" | "transfer-encoding"))
        .collect();
    match fetch(backend, &path, &forwarded) {
        Ok(resp) => {
            let keep = ["content-type", "cache-status", "cache-control", "age", "etag"];
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (format!("x-backend-{k}"), String::from_utf8_lossy(v).into_owned()))
                .collect();
            let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            respond(out, resp.status, &borrowed, &resp.body);
        }
        Err(e) => respond(out, 502, &[], format!("fetch failed: {e}\n").as_bytes()),
    }
}

fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let list: Vec<(String, Vec<u8>)> = headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
    let Ok(fields) = Fields::from_list(&list) else { return };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(status).is_err() {
        return;
    }
    let Ok(outgoing) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        for chunk in body.chunks(4096) {
            if stream.write_all(chunk).is_err() {
                return;
            }
        }
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

/// `bytes` of `x`, streamed 64 KiB at a time; stops when the host closes the stream.
fn big(out: ResponseOutparam, bytes: u64, declare: bool) {
    let length = bytes.to_string();
    let headers: Vec<(String, Vec<u8>)> = match declare {
        true => vec![("content-length".to_string(), length.into_bytes())],
        false => Vec::new(),
    };
    let Ok(fields) = Fields::from_list(&headers) else { return };
    let response = OutgoingResponse::new(fields);
    let Ok(outgoing) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    let Ok(mut stream) = outgoing.write() else { return };
    let chunk = vec![b'x'; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if stream.write_all(&chunk[..n]).is_err() {
            return;
        }
        left -= n as u64;
    }
    let _ = stream.flush();
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let incoming = request.consume().map_err(|()| "body taken twice".to_string())?;
    let mut stream = incoming.stream().map_err(|()| "stream taken twice".to_string())?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}

/// `mb` blocks of 1 MiB, each written to, so the pages are really used.
fn allocate(mb: u64) -> u64 {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for i in 0..mb {
        blocks.push(vec![(i % 251) as u8 + 1; 1 << 20]);
    }
    std::hint::black_box(&blocks);
    blocks.len() as u64
}

fn spin(ms: u64) {
    let start = wasi::clocks::monotonic_clock::now();
    let mut x = 0u64;
    while wasi::clocks::monotonic_clock::now().saturating_sub(start) < ms * 1_000_000 {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn spin_forever() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
