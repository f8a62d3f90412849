//! Upstream phase: the pooled HTTP/1.1 + HTTP/2 client to a service's origin, with connect,
//! first-byte and between-bytes timeouts, and TLS verified against the system roots or the
//! service's CA.

mod client;
mod forward;
mod timed_body;

pub mod breaker;
pub mod health;
pub mod retry;
pub mod select;

pub use client::Upstream;
pub use forward::{ForwardInfo, forward_headers};
pub use timed_body::TimedBody;
