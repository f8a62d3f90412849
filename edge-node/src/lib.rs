//! The Outpost edge node: Outpost's data plane, as a library and the `edge-node` binary.
//!
//! A request goes through the phases [`pipeline::handle`] lists, in this order (the same names
//! in modules, tracing spans, `Server-Timing` and README):
//!
//! 1. **accept** ([`listen`]): TCP, TLS with a certificate by SNI, ALPN h2 / http/1.1, h2c on
//!    cleartext, QUIC; header, body and connection limits.
//! 2. **route** ([`route`]): Host → [`service::CompiledService`]; unknown host 404, a Host the
//!    TLS certificate does not cover 421.
//! 3. **function** ([`function`]): a service's WebAssembly function (`wasi:http/proxy`)
//!    answers; its backend fetches come back through [`delivery`], as a client's request does.
//! 4. **transform** ([`transform`]): around the cache, for GET and HEAD: the base request the
//!    cache serves, then compression or an image transcode of the base, each variant stored once.
//! 5. **cache** ([`cache`]): RFC 9111 as a shared cache on a foyer memory/disk store; misses
//!    collapse into one fetch per key, inside the cache.
//! 6. **upstream** ([`upstream`]): pooled HTTP/1.1 and HTTP/2 to shields and origins, with
//!    timeouts, retries, health and circuit breaking.
//! 7. **store** (in [`cache`]): storable responses stream into the store while they stream to
//!    the clients.
//! 8. **respond** ([`respond`]): `Age`, `Cache-Status`, `Server-Timing`, error pages, the
//!    access log and metrics.
//!
//! Phases 4 to 7 are entered through one door, [`delivery::Delivery::serve`]. Below the phases:
//! [`http`] (shared HTTP plumbing), [`body`], [`ctx`] (the request's context and timings),
//! [`error`], [`hints`] and [`interim`] (1xx), [`metrics`]. Around them: [`node`] (start and
//! stop), [`handoff`] (zero-downtime binary upgrade), [`reload`], [`agent`] (follows the control plane), [`admin`], [`cli`], [`demo`].
//!
//! It does not own configuration (`outpost-config`), nor the control plane.

pub mod acme;
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
pub mod handoff;
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
