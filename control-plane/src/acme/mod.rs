//! Certificates by ACME (RFC 8555) for `tls = "auto"` services: one order per host set for
//! the whole fleet, driven by one control-plane replica at a time.
//!
//! - `settings`: `[acme]` (directory, extra roots, challenge type, intervals, bounds).
//! - `schedule`: when to order, renew (two-thirds of the lifetime, with jitter) or retry
//!   (full-jitter exponential backoff): pure functions of the stored state and `now`.
//! - `driver`: the rounds, leases and outcomes; `order`: one order, RFC 8555 §7.4; `lease`:
//!   compare-and-set writes while holding an order; `client`: the HTTP client (system roots and
//!   `acme.ca_file`) and the account, its credentials sealed with `[secrets]`' keyring.
//! - What an order obtains goes in through `certs::install` as the service's certificate
//!   named `acme` (source `acme`): sealed, an event, swapped in on every node.
//!
//! The store keeps each service's [`crate::store::AcmeState`] (compare-and-set on its
//! revision, which is how a replica takes the lease on an order), the challenge answers every
//! edge serves (events: `acme_challenge_put` / `acme_challenge_deleted`), and the account per
//! directory URL.

mod client;
pub mod driver;
mod lease;
pub mod order;
pub mod schedule;
pub mod settings;

pub use driver::{CERTIFICATE_NAME, Driver};
pub use order::{Failed, Issued};
pub use settings::AcmeSettings;

/// A number in 0..1 for renewal and retry jitter, from the system's random generator (ring,
/// already the control plane's); 0.5 if it has none.
pub fn jitter() -> f64 {
    (random_id() >> 11) as f64 / (1u64 << 53) as f64
}

/// 64 random bits (a replica's name on leases).
pub fn random_id() -> u64 {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => 1 << 63,
    }
}
