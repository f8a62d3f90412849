//! `CompiledService`: a service's runtime form, built once per config version from its
//! `ServiceConfig` — host patterns, the upstream client, the cache policy — so the request path
//! parses nothing.

use std::sync::Arc;

use outpost_config::{HostHeader, HostPattern, NodeConfig, NodeRole, ServiceConfig};

use crate::cache::policy::ServicePolicy;
use crate::function::{Function, FunctionHost};
use crate::upstream::{Guard, Upstream};

pub struct CompiledService {
    pub name: Arc<str>,
    pub hosts: Vec<HostPattern>,
    pub upstream: Upstream,
    pub host_header: HostHeader,
    pub policy: ServicePolicy,
    pub max_object_size: u64,
    pub max_stale_on_error: Option<std::time::Duration>,
    /// `[services.compression]` and `[services.images]`, for the transform phase.
    pub compression: outpost_config::CompressionConfig,
    /// `compression.prefer` as the codings the transform phase negotiates with.
    pub compression_prefer: Arc<[crate::transform::compress::Coding]>,
    pub images: Arc<outpost_config::ImagesConfig>,
    /// `[services.function]`, compiled with the service: a reload swaps it with the table, and
    /// requests in flight keep the old one.
    pub function: Option<Arc<crate::function::Function>>,
    /// `listen.trusted_networks` and the service's own: peers whose forwarding fields reach
    /// the upstream (see `upstream::forward_headers`).
    pub trusted_networks: Arc<[outpost_config::Cidr]>,
    /// Interim responses: early hints from cache, and the bound on forwarded 1xx.
    pub hints: crate::hints::HintsPolicy,
    /// Cache key, rules, HTTP→HTTPS, HSTS and error pages, for the route and respond phases.
    pub rules: crate::route::rules::Rules,
}

#[derive(Debug, thiserror::Error)]
#[error("services[{index}] ({name}): {message}")]
pub struct CompileError {
    pub index: usize,
    pub name: String,
    pub message: String,
}

impl CompiledService {
    pub fn compile(
        index: usize,
        svc: &ServiceConfig,
        node: &NodeConfig,
        functions: &Arc<FunctionHost>,
        guard: &Guard,
    ) -> Result<Self, CompileError> {
        let upstream = Upstream::new(svc, &node.upstream, guard).map_err(|e| CompileError {
            index,
            name: svc.name.clone(),
            message: e.to_string(),
        })?;
        let rules = crate::route::rules::Rules::compile(svc).map_err(|message| CompileError {
            index,
            name: svc.name.clone(),
            message,
        })?;
        let function = match &svc.function {
            // Functions run on the edge that takes the client's request; what reaches a shield
            // is already the function's fetch, so running it again there would be wrong.
            Some(_) if node.node.role == NodeRole::Shield => {
                tracing::debug!(service = %svc.name, "function not run on a shield (edges run it)");
                None
            }
            Some(f) => Some(Arc::new(Function::compile(functions, index, svc, f, node, guard)?)),
            None => None,
        };
        Ok(Self {
            name: svc.name.as_str().into(),
            hosts: svc.hosts.clone(),
            upstream,
            host_header: svc.host_header.clone(),
            policy: ServicePolicy {
                default_ttl: svc.default_ttl,
                heuristic_fraction: node.cache.heuristic_fraction,
                max_heuristic_ttl: node.cache.max_heuristic_ttl,
                store_set_cookie: svc.store_set_cookie,
                honor_client_cache_control: svc.honor_client_cache_control,
            },
            max_object_size: svc.max_object_size.unwrap_or(node.cache.max_object_size).as_u64(),
            max_stale_on_error: svc.max_stale_on_error,
            compression: svc.compression.clone(),
            compression_prefer: svc.compression.prefer.iter().map(|&c| c.into()).collect(),
            images: Arc::new(svc.images.clone()),
            function,
            trusted_networks: node.listen.trusted_networks.iter().chain(&svc.trusted_networks).copied().collect(),
            hints: crate::hints::HintsPolicy::from_config(svc),
            rules,
        })
    }

    /// Whether a request from `peer` may pass its forwarding fields on to this service's
    /// upstream.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.trusted_networks.iter().any(|n| n.contains(peer))
    }
}

/// Every service of `node`; their functions compile on `functions` (machine code from its cache
/// directory when unchanged). The services `tenant` names came from the control plane: their
/// upstreams (origins, shields, function backends, health probes) connect only outside the
/// node's own networks (`limits.tenant_upstream_allow`). Compiling a function takes up to
/// seconds: call this off the request threads.
pub fn compile_all(
    node: &NodeConfig,
    functions: &Arc<FunctionHost>,
    tenant: &dyn Fn(&ServiceConfig) -> bool,
) -> Result<Vec<Arc<CompiledService>>, CompileError> {
    let tenant_guard = Guard::Tenant { allow: node.limits.tenant_upstream_networks().into() };
    node.services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let guard = if tenant(s) { &tenant_guard } else { &Guard::Operator };
            CompiledService::compile(i, s, node, functions, guard).map(Arc::new)
        })
        .collect()
}
