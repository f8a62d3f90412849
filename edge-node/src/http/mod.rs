//! Shared HTTP plumbing below the phases: what several phases need and none of them owns.
//! Modules here import no phase (`listen`, `route`, `function`, `transform`, `cache`,
//! `upstream`, `respond`), so every phase may import them without a cycle.
//!
//! - [`length`]: `Content-Length` read in one place (RFC 9110 §8.6).
//! - [`body_limit`]: a body that cannot grow past its bound, or past its declared length.
//! - [`hop`]: hop-by-hop fields (RFC 9110 §7.6.1), stripped in both directions.
//! - [`syntax`]: list and parameter syntax of field values (RFC 9110 §5.6).
//! - [`backoff`], [`tls`]: retry backoff and trust roots, shared by the upstream client and
//!   the agent.
//! - [`cache_status`]: the `Cache-Status` field (RFC 9211), which errors carry too.
//! - [`SHIELD_HEALTH_PATH`]: the path edges probe their shields on.

pub mod backoff;
pub mod body_limit;
pub mod cache_status;
pub mod hop;
pub mod length;
pub mod syntax;
pub mod tls;

pub use length::{content_length, declared_length};

/// Edges probe their shields here; a shield answers it itself, without its origin, so a slow
/// origin does not make the shield tier look dead.
pub const SHIELD_HEALTH_PATH: &str = "/.outpost/health";
