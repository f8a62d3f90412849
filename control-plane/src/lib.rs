//! Outpost's control plane: the API tenants and operators call, the state behind it, and the
//! numbered event log that nodes will follow.
//!
//! # Map
//! - `settings`: the config file ([`Settings`]): listen address, data file, `[[tokens]]`
//!   (SHA-256 hashes, each for the operator or one tenant), `[limits]`.
//! - `auth`: token → [`Principal`] (operator, or a tenant).
//! - `store`: the [`Store`] trait (services, purges, the event log; one atomic write per
//!   change, event included) and [`EmbeddedStore`], its one-file redb implementation.
//! - `api`: the routes ([`api::routes`] is the table), handlers, the error type and its JSON,
//!   the OpenAPI document, and the Fastly / Cloudflare purge shapes.
//! - `ratelimit`: per-tenant purge token buckets.
//! - `server`: open the store, bind, serve until a signal.
//!
//! # How a change flows
//! `PUT /v1/services/shop` → token → tenant `acme` → body checked with
//! `outpost_config::validate_service` (errors name the field) → one store transaction writes
//! the service, claims its hosts and appends event `n` (`service_put`); the service's version
//! is `n`. Purges are events too. Nodes (next milestone) take a snapshot, then follow events
//! from the sequence number they last applied.
//!
//! Not here yet: the node stream and registry, purge acknowledgements, functions, DNS, the CLI.

pub mod api;
pub mod auth;
pub mod ratelimit;
pub mod server;
pub mod settings;
pub mod store;

pub use auth::Principal;
pub use settings::Settings;
pub use store::{EmbeddedStore, Store};
