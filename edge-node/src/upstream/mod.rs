//! Upstream phase: a service's shields and origins, and the pooled HTTP/1.1 + HTTP/2 client
//! that reaches them — selection (rendezvous for shields, balancing over failover groups for
//! origins), active health checks, circuit breakers, retries under a budget, and timeouts.
//! Every request it sends is framed by the body it carries (`framing`), and a body that fails
//! on the client's side is the client's error, not the upstream's (`request_body`).

pub mod breaker;
mod client;
mod conn;
mod dial;
pub mod ejection;
mod forward;
mod framing;
mod guard;
pub mod health;
pub mod peer;
mod replay;
mod request_body;
pub mod retry;
pub mod select;
pub mod stale;
mod timed_body;
#[cfg(test)]
mod timed_body_tests;

pub use client::{Outgoing, Upstream};
pub use forward::{ForwardInfo, forward_headers};
pub use guard::{ForbiddenUpstream, Guard};
pub use timed_body::{BetweenBytesTimeout, TimedBody, TotalTimeout};
