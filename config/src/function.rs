//! Edge functions: `[services.function]` binds a WebAssembly component (the `wasi:http/proxy`
//! world) to a service, with its environment, its named backends and its limits; the node-level
//! `[functions]` section sizes the engine every function shares.
//!
//! The limits follow what Fastly Compute and Cloudflare Workers document, so a function written
//! for one of them fits here: 50ms of CPU and 128MB of memory per request (both), 32 backend
//! requests per request (Fastly), 64 environment variables of at most 5KB (Cloudflare).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::origin::OriginUrl;
use crate::units::{ByteSize, duration};

/// The backend name that always means the service's own upstream (its origins, through its
/// shields): the name a function's outgoing request uses as its authority, `http://origin/path`.
pub const ORIGIN_BACKEND: &str = "origin";
/// Most entries in `env`.
pub const MAX_ENV_VARS: usize = 64;
/// Longest value in `env` (Cloudflare's limit per variable).
pub const MAX_ENV_VALUE: usize = 5 << 10;
/// Most entries in `backends`.
pub const MAX_BACKENDS: usize = 32;

/// `[services.function]`: the function that answers this service's requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// The WebAssembly component: a `wasi:http/proxy` world component, such as `cargo build
    /// --target wasm32-wasip2` emits, or componentize-js / componentize-py. Relative paths are
    /// resolved against the config file's directory. Required; a missing file or a core module
    /// (not a component) is a config error at load.
    pub wasm: PathBuf,
    /// Environment variables the function sees (`wasi:cli/environment`), e.g. an API base URL
    /// or a key id. Names are 1 to 128 of `A-Z a-z 0-9 _`, not starting with a digit; at most 64
    /// variables, each value at most 5KiB. Default: none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Named backends besides the implicit `origin` (the service's own upstream), like Fastly's
    /// named backends: `backends = { api = "https://api.shop.example" }`. A function's outgoing
    /// request names its backend as the URL's authority (`http://api/v1/items`; the scheme is
    /// ignored); a request to any other authority fails with `HTTP-request-denied`. Responses
    /// are cached by the same rules as the service's. Names are 1 to 64 of `a-z 0-9 _ -`, not
    /// `origin`; at most 32. Default: none (only `origin`).
    #[serde(default)]
    pub backends: BTreeMap<String, OriginUrl>,
    /// CPU time the function may use per request: time spent running guest code, not time
    /// waiting for backends or for the client. Past it the instance is stopped and the client
    /// gets 503 (the response, if one was already sent, is cut off). Checked every
    /// `functions.epoch_tick`, so a loop stops within one tick of the limit. Measured by the
    /// thread's CPU clock from the guest's first tick on (before it, by the monotonic clock: a
    /// short guest costs no system call).
    /// Default: 50ms (Fastly's and Cloudflare's free-tier limit); 1ms to 60s.
    #[serde(default = "default_cpu_time", deserialize_with = "duration::deserialize")]
    pub cpu_time: Duration,
    /// Wall-clock time per request, from instantiation until the response body is complete,
    /// waits included. Past it: 504 (or the body is cut off). Default: 60s; at least `cpu_time`,
    /// at most 10m.
    #[serde(default = "default_wall_time", deserialize_with = "duration::deserialize")]
    pub wall_time: Duration,
    /// Linear memory per instance (the sum of the component's memories); a guest that asks for
    /// more sees its allocation fail (Rust aborts: a trap), and the client gets 503.
    /// Default: 128MiB (Fastly's heap, Cloudflare's isolate); 1MiB to `functions.max_memory`.
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// Request body the function may read. A request declaring more gets 413 before the function
    /// runs; a streamed body that grows past it fails the guest's read, and the client gets 413.
    /// Default: 16MiB; 0 to 1GiB (`limits.max_request_body` applies too).
    #[serde(default = "default_max_request_body")]
    pub max_request_body: ByteSize,
    /// Response body the function may send. A larger declared `Content-Length` gets 502; a
    /// streamed body that grows past it is cut off (the client sees an incomplete response).
    /// Default: 64MiB; 0 to 4GiB.
    #[serde(default = "default_max_response_body")]
    pub max_response_body: ByteSize,
    /// Outgoing requests (to `origin` or a named backend) per incoming request; one more fails
    /// with `HTTP-request-denied` (the function decides what the client sees).
    /// Default: 32 (Fastly); 0 to 1000.
    #[serde(default = "default_max_backend_requests")]
    pub max_backend_requests: u32,
    /// Body size of one backend response read by the function; past it the read fails with
    /// `HTTP-response-body-size`. Default: 64MiB; 1KiB to 4GiB.
    #[serde(default = "default_max_backend_response")]
    pub max_backend_response: ByteSize,
    /// stdout and stderr the function may write per request. Each line goes to the node's log
    /// (target `outpost::function`, with the request id and service); past the bound the rest
    /// is dropped and one line says how much. Default: 16KiB; 0 to 1MiB.
    #[serde(default = "default_max_log_bytes")]
    pub max_log_bytes: ByteSize,
}

fn default_cpu_time() -> Duration {
    Duration::from_millis(50)
}
fn default_wall_time() -> Duration {
    Duration::from_secs(60)
}
fn default_memory() -> ByteSize {
    ByteSize::mib(128)
}
fn default_max_request_body() -> ByteSize {
    ByteSize::mib(16)
}
fn default_max_response_body() -> ByteSize {
    ByteSize::mib(64)
}
fn default_max_backend_requests() -> u32 {
    32
}
fn default_max_backend_response() -> ByteSize {
    ByteSize::mib(64)
}
fn default_max_log_bytes() -> ByteSize {
    ByteSize::kib(16)
}

/// `[functions]`: the engine every service's function runs on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionsConfig {
    /// Directory of compiled functions, keyed by a SHA-256 of the component and of the engine's
    /// settings, so a restart or a reload loads machine code instead of compiling again (about
    /// a second per megabyte of wasm). Created if missing; safe to delete. Relative paths are
    /// resolved against the config file's directory.
    /// Default: `functions` beside `cache.disk_path` (`/var/cache/outpost-functions`).
    pub cache_dir: Option<PathBuf>,
    /// Function instances alive at once on the node (one per request a function is handling),
    /// the size of the pooling allocator. A request beyond it gets 503. Each slot reserves
    /// address space (not memory) for `max_memory`. Default: 1000; 1 to 100000.
    pub max_instances: u32,
    /// Ceiling on a function's `memory`: the pooling allocator's slot size. Default: 128MiB;
    /// 1MiB to 4GiB.
    pub max_memory: ByteSize,
    /// How often the engine checks running functions' CPU time. Smaller is a tighter `cpu_time`
    /// at the cost of more checks (each a few nanoseconds per running function).
    /// Default: 10ms; 1ms to 1s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub epoch_tick: Duration,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_instances: 1000,
            max_memory: ByteSize::mib(128),
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// A WebAssembly binary's header: the magic, then version and layer. Components are version
/// 0x0d, layer 1; core modules are version 1, layer 0.
const MAGIC: [u8; 4] = *b"\0asm";
const COMPONENT_HEADER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
const MODULE_HEADER: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// Why a file cannot be a function, or `None` when it starts like a component. Reads 8 bytes.
pub(crate) fn component_problem(file: &std::path::Path) -> Option<String> {
    use std::io::Read as _;
    const VALID: &str = "expected a WebAssembly component (`cargo build --target wasm32-wasip2`, \
                         componentize-js or componentize-py build one); relative paths are \
                         resolved against the config file's directory";
    let meta = match std::fs::metadata(file) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("cannot read \"{}\": {e}; {VALID}", file.display())),
    };
    if !meta.is_file() {
        return Some(format!("\"{}\" is not a regular file; {VALID}", file.display()));
    }
    let mut header = [0u8; 8];
    let read = std::fs::File::open(file).and_then(|mut f| f.read_exact(&mut header));
    if let Err(e) = read {
        return Some(format!("cannot read \"{}\": {e}; {VALID}", file.display()));
    }
    match (header[..4] == MAGIC, &header[4..]) {
        (true, h) if h == COMPONENT_HEADER => None,
        (true, h) if h == MODULE_HEADER => Some(format!(
            "\"{}\" is a core WebAssembly module, not a component; {VALID}, or wrap it with \
             `wasm-tools component new`",
            file.display()
        )),
        _ => Some(format!("\"{}\" is not a WebAssembly component; {VALID}", file.display())),
    }
}

/// Whether `name` may be an environment variable's name.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && name.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
