//! [`Function`]: one service's function as one config version runs it, built when the services
//! are compiled: the component's machine code (compiled, or loaded from the cache directory), a
//! pre-instantiated template (imports resolved once), its environment, named backends and
//! limits. A reload builds a new one; requests in flight keep the `Arc` of the old.

use std::sync::Arc;
use std::time::Duration;

use outpost_config::{FunctionConfig, HostHeader, NodeConfig, OriginUrl, ServiceConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::host::{CodeSource, FunctionHost};
use super::meters::Meters;
use super::outgoing::Backend;
use super::state::HostState;
use crate::service::{CompileError, CompiledService};

pub struct Function {
    /// The first 12 hex digits of the component's SHA-256: the version in logs.
    pub version: Arc<str>,
    /// Whether the machine code was compiled now or loaded from the cache directory.
    pub source: CodeSource,
    pub(super) host: Arc<FunctionHost>,
    pub(super) pre: ProxyPre<HostState>,
    pub(super) env: Arc<[(String, String)]>,
    pub(super) backends: Arc<[(Box<str>, Backend)]>,
    pub(super) limits: Limits,
    pub(super) meters: Meters,
}

/// `[services.function]`'s bounds, in the units the host uses.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) cpu_time: Duration,
    pub(super) wall_time: Duration,
    pub(super) memory: usize,
    pub(super) max_request_body: u64,
    pub(super) max_response_body: u64,
    pub(super) max_backend_requests: u32,
    pub(super) max_backend_response: u64,
    pub(super) max_log_bytes: usize,
}

impl Limits {
    fn from_config(f: &FunctionConfig) -> Self {
        Self {
            cpu_time: f.cpu_time,
            wall_time: f.wall_time,
            memory: f.memory.as_usize(),
            max_request_body: f.max_request_body.as_u64(),
            max_response_body: f.max_response_body.as_u64(),
            max_backend_requests: f.max_backend_requests,
            max_backend_response: f.max_backend_response.as_u64(),
            max_log_bytes: f.max_log_bytes.as_usize(),
        }
    }
}

impl Function {
    /// Reads, compiles (or loads) and pre-instantiates `services[index]`'s function.
    pub fn compile(
        host: &Arc<FunctionHost>,
        index: usize,
        svc: &ServiceConfig,
        config: &FunctionConfig,
        node: &NodeConfig,
        guard: &crate::upstream::Guard,
    ) -> Result<Self, CompileError> {
        let fail = |message: String| CompileError { index, name: svc.name.clone(), message };
        let path = config.wasm.display();
        let wasm = std::fs::read(&config.wasm).map_err(|e| fail(format!("function.wasm \"{path}\": {e}")))?;
        let version: Arc<str> = sha256_hex(&wasm)[..12].into();
        let (component, source) =
            host.compile(&wasm).map_err(|e| fail(format!("function.wasm \"{path}\": compiling: {e}")))?;
        let runtime = host.runtime().map_err(|e| fail(format!("function engine: {e}")))?;
        // Resolves every import once; fails here, not per request, for a component that imports
        // what the host does not offer or does not export wasi:http/incoming-handler.
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .and_then(ProxyPre::new)
            .map_err(|e| fail(format!("function.wasm \"{path}\": not a wasi:http/proxy component: {e:#}")))?;
        let backends = config
            .backends
            .iter()
            .map(|(name, url)| {
                backend(host, index, svc, name, url, node, guard).map(|b| (name.to_ascii_lowercase().into(), b))
            })
            .collect::<Result<Vec<_>, _>>()?;
        metrics::counter!(crate::metrics::FUNCTION_LOADS, "source" => source.as_str()).increment(1);
        let how = match source {
            CodeSource::Cache => "function loaded from cache",
            CodeSource::Compiled => "function compiled",
        };
        tracing::info!(service = %svc.name, function = %version, wasm = %path, "{how}");
        Ok(Self {
            version,
            source,
            host: host.clone(),
            pre,
            env: config.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            backends: backends.into(),
            limits: Limits::from_config(config),
            meters: Meters::new(&svc.name),
        })
    }
}

/// A named backend is served like a service of its own: the function's service with the
/// backend's URL as its one origin, no shields (a shield routes by the client's host, which
/// names the function's service, not the backend) and no function. Its cache keys carry the
/// service name and the backend's, so they never meet another service's.
fn backend(
    host: &Arc<FunctionHost>,
    index: usize,
    svc: &ServiceConfig,
    name: &str,
    url: &OriginUrl,
    node: &NodeConfig,
    guard: &crate::upstream::Guard,
) -> Result<Backend, CompileError> {
    let mut config = svc.clone();
    config.name = format!("{}~{name}", svc.name);
    config.origin = Some(url.clone());
    config.origins = Vec::new();
    config.shields = Vec::new();
    config.host_header = HostHeader::Origin;
    config.function = None;
    let service = CompiledService::compile(index, &config, node, host, guard)?;
    let backend_host = url.authority();
    let backend_host = backend_host.rsplit_once(':').map_or(backend_host.as_str(), |(h, _)| h).to_string();
    Ok(Backend { service: Arc::new(service), host: Some(backend_host.into()) })
}

/// SHA-256 of `bytes` as 64 lower-case hex digits: a function version's name, and the file name
/// of a deployed `.wasm` (checked against it after a download).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
