//! Function phase: a service's edge function answers its requests. A function is a WASI 0.2
//! component exporting the standard `wasi:http/proxy` world, so a component built by any
//! toolchain that targets it (Rust for `wasm32-wasip2`, componentize-js, componentize-py) runs
//! unmodified.
//!
//! How a request flows: the pipeline routes it to a service with a function → [`Function::serve`]
//! makes a fresh store and instance from the function's pre-instantiated template (nothing is
//! shared between requests or tenants), adds the host's request headers (`Outpost-Client-IP`,
//! `Outpost-PoP`, `Outpost-Node`, `Outpost-Request-Id`) and calls the guest's
//! `incoming-handler`. The guest's outgoing requests to `origin` or a named backend come back
//! into the transform and cache phases (`outgoing`); anything else is denied. Its response goes to
//! the respond phase; its stdout and stderr to the node's log (`logs`).
//!
//! Limits, each from `[services.function]`: CPU time (epoch interruption; only time inside the
//! guest counts, `limits`), wall-clock time, memory (summed over the component's memories),
//! request and response body sizes (`bodies`), outgoing request count and response size, log
//! bytes. A guest that traps, runs out of time or memory, or never answers fails its own request
//! with a 5xx and a log line naming the service, the function version and the reason.
//!
//! Modules: `host` ([`FunctionHost`], the engine, made on first use), `compile` ([`Function`],
//! one version), `invoke` (one request), `state` (the store's data), `limits`, `bodies`,
//! `outgoing`, `logs`, `meters`.

mod bodies;
mod compile;
mod host;
mod invoke;
mod limits;
mod logs;
mod meters;
mod outgoing;
mod state;
#[cfg(test)]
mod tests;

pub use compile::Function;
pub(crate) use compile::sha256_hex;
pub use host::{CodeSource, FunctionHost};
pub use invoke::{CLIENT_IP, NODE, POP, REQUEST_ID};
pub use state::HostState;
