//! Upstream phase: a service's shields and origins, and the pooled HTTP/1.1 (hyper) and HTTP/2
//! (the h2 crate, `h2`: it sees 1xx) clients that reach them — selection (rendezvous for shields, balancing over failover groups for
//! origins), active health checks, circuit breakers, retries under a budget, and timeouts.
//! Every request it sends is framed by the body it carries (`framing`), and a body that fails
//! on the client's side is the client's error, not the upstream's (`request_body`).

mod body;
pub mod breaker;
mod client;
mod conn;
mod dial;
pub mod ejection;
mod forward;
mod framing;
mod guard;
mod h2;
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

pub use body::UpstreamBody;
pub use client::{Outgoing, Upstream};
pub use forward::{ForwardInfo, forward_headers};
pub use guard::{ForbiddenUpstream, Guard};
pub use timed_body::{BetweenBytesTimeout, TimedBody, TotalTimeout};
