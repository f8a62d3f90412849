//! Shared HTTP plumbing below the phases: what several phases need and none of them owns.
//! Modules here import no phase (`listen`, `route`, `function`, `transform`, `cache`,
//! `upstream`, `respond`), so every phase may import them without a cycle.
//!
//! - [`length`]: `Content-Length` read once, one way (RFC 9110 §8.6).
//! - [`SHIELD_HEALTH_PATH`]: the path edges probe their shields on.

pub mod length;

pub use length::{content_length, declared_length};

/// Edges probe their shields here; a shield answers it itself, without its origin, so a slow
/// origin does not make the shield tier look dead.
pub const SHIELD_HEALTH_PATH: &str = "/.outpost/health";
