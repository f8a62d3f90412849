//! Outpost's control plane: the API tenants and operators call, the state behind it, and the
//! numbered event log that nodes will follow.
//!
//! # Map
//! - `settings`: the config file ([`Settings`]): listen address, data file, `[[tokens]]`
//!   (SHA-256 hashes, each for the operator or one tenant), `[limits]`.
//! - `auth`: token → [`Principal`] (operator, or a tenant).
//! - `store`: the [`Store`] trait (services, purges, the event log; one atomic write per
//!   change, event included), [`EmbeddedStore`] (one redb file, the default) and
//!   [`store::PostgresStore`] (any number of replicas on one database, woken by `LISTEN/NOTIFY`).
//! - `api`: the routes ([`api::routes`] is the table), handlers, the error type and its JSON,
//!   the OpenAPI document, and the Fastly / Cloudflare purge shapes.
//! - `nodes`: the node registry (registrations, liveness, acks), the hub that wakes every
//!   node stream when the log grows, each stream's task, and purge progress.
//! - `pops`: PoP health (each edge node's `/healthz` probed, plus its stream's liveness), drains,
//!   and the table of PoPs DNS answers from.
//! - `dns`: the authoritative DNS server for the CDN's zone: `<service>.<zone>` → the edges of
//!   the nearest healthy, undrained PoP for the client (EDNS Client Subnet, else the resolver).
//! - `domains`: domain control before traffic: each host's proof (DNS TXT, HTTP token or the
//!   operator's word), checked on demand and periodically; nodes serve verified hosts only.
//! - `ratelimit`: per-tenant purge token buckets (kept in the store: fleet-wide).
//! - `sync`: this replica in step with the others: the presence sync (holds, acks, drains
//!   from the store) and the replica lease.
//! - `certs`: tenants' certificates: checked, installed ([`certs::install`], for uploads and
//!   ACME alike), their keys re-sealed after a key rotation; `secrets`: AES-256-GCM sealing of
//!   private keys at rest under the `[secrets]` key file.
//! - `server`: open the store, bind, serve until a signal; `listen`: the accept loop (connection
//!   cap, first-request and keep-alive timeouts, longest-idle connection closed first when full).
//!
//! # How a change flows
//! `PUT /v1/services/shop` → token → tenant `acme` → body checked with
//! `outpost_config::validate_service` (errors name the field) → one store transaction writes
//! the service, claims its hosts and appends event `n` (`service_put`); the service's version
//! is `n`; the hub wakes every node stream, which sends the event. Purges are events too.
//! Nodes take a snapshot, then follow events from the sequence number they last applied, and
//! acknowledge each; purge progress (and `wait=true`) is computed from those acks.
//!
//! Not here yet: functions, the CLI.

pub mod acme;
pub mod api;
pub mod auth;
pub mod certs;
pub mod ctl;
pub mod dns;
pub mod domains;
mod listen;
pub mod nodes;
pub mod pops;
pub mod ratelimit;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod store;
pub mod sync;

pub use auth::Principal;
pub use settings::Settings;
pub use store::{EmbeddedStore, Store};
