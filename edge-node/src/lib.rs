//! The Outpost edge node: Outpost's data plane, as a library and the `edge-node` binary.
//!
//! A request goes through the phases written down in [`pipeline`]:
//!
//! 1. **accept** ([`listen`]): TCP, TLS with a certificate by SNI, ALPN h2 / http/1.1, h2c on
//!    cleartext; header, body and connection limits.
//! 2. **route** ([`route`]): Host → [`service::CompiledService`]; unknown host 404, a Host the
//!    TLS certificate does not cover 421.
//! 3. **function** ([`function`]): a service's WebAssembly function (`wasi:http/proxy`)
//!    answers; its backend fetches come back through the cache.
//! 3. **cache** ([`cache`]): RFC 9111 as a shared cache on a foyer memory/disk store; misses
//!    collapse into one fetch per key.
//! 4. **upstream** ([`upstream`]): pooled HTTP/1.1 and HTTP/2 to the origin, with timeouts.
//! 5. **store**: storable responses stream into the cache while they stream to the clients.
//! 6. **respond** ([`respond`]): `Age`, `Cache-Status`, `Server-Timing`, error pages, the
//!    access log and metrics.
//!
//! It does not own configuration (`outpost-config`), nor the control plane.

pub mod admin;
pub mod agent;
pub mod body;
pub mod cache;
pub mod cli;
pub mod ctx;
pub mod delivery;
pub mod demo;
pub mod error;
pub mod function;
pub mod hints;
pub mod http;
pub mod interim;
pub mod listen;
pub mod metrics;
pub mod node;
pub mod pipeline;
pub mod reload;
pub mod respond;
pub mod route;
pub mod service;
pub mod transform;
pub mod upstream;

pub use node::{BoundAddrs, RunningNode, StartError};
