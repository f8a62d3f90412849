//! What the ACME driver keeps in the store: each `tls = "auto"` service's state (its order, its
//! certificate's dates, failures, the lease that lets one replica drive its order), the
//! challenge answers every edge serves (events, see [`outpost_config::AcmeChallenge`]), and the
//! ACME account per directory URL.

use outpost_config::{ServiceId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

/// Where a service's ACME order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcmeStatus {
    /// Nothing ordered yet (no verified host, or not due).
    Idle,
    /// An order is in flight: challenges published, waiting for the CA.
    Ordering,
    /// The last order succeeded; the certificate is in force.
    Valid,
    /// The last order failed; `last_error` says why, `failures` how often in a row.
    Failed,
}

/// Who drives a service's order until when: one replica at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The replica (its random id, made at start).
    pub holder: String,
    pub until: Timestamp,
}

/// The dates of the certificate the last order obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedDates {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub issued_at: Timestamp,
}

/// An ACME error as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeFailure {
    pub at: Timestamp,
    /// A stable code: `directory` (the CA did not answer), `account`, `order`,
    /// `validation` (a challenge failed), `finalize`, `install`, `timeout`.
    pub code: String,
    /// What the CA or the network said (RFC 8555 §6.7 problem detail when there is one).
    pub message: String,
}

/// A `tls = "auto"` service's ACME state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcmeState {
    pub service: ServiceId,
    pub tenant: TenantId,
    pub status: AcmeStatus,
    /// The hosts of the order in flight or last obtained, sorted.
    pub hosts: Vec<String>,
    /// The CA's URL of the order in flight: a replica that takes the lease over resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_url: Option<String>,
    /// The challenge tokens published for the order in flight (deleted when it ends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IssuedDates>,
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<AcmeFailure>,
    /// Drawn once per certificate and per failure (see `acme::schedule::Jitter`).
    pub renew_jitter: f64,
    pub retry_jitter: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Bumped by every write: the compare of [`Store::put_acme_state`](super::Store::put_acme_state).
    pub revision: u64,
    pub updated_at: Timestamp,
}

impl AcmeState {
    /// A service's state before its first order.
    pub fn new(service: ServiceId, tenant: TenantId, at: Timestamp) -> Self {
        Self {
            service,
            tenant,
            status: AcmeStatus::Idle,
            hosts: Vec::new(),
            order_url: None,
            tokens: Vec::new(),
            certificate: None,
            failures: 0,
            last_error: None,
            renew_jitter: 0.0,
            retry_jitter: 0.0,
            lease: None,
            revision: 0,
            updated_at: at,
        }
    }

    /// Whether `holder` may drive the order at `now`: nobody holds the lease, it lapsed, or
    /// `holder` has it.
    pub fn leasable(&self, holder: &str, now: Timestamp) -> bool {
        self.lease.as_ref().is_none_or(|l| l.holder == holder || l.until <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_its_holders_until_it_lapses() {
        let service = ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}"));
        let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
        let mut state = AcmeState::new(service, tenant, Timestamp(0));
        assert!(state.leasable("a", Timestamp(0)));
        state.lease = Some(Lease { holder: "a".to_owned(), until: Timestamp(100) });
        let rows = [("a", 50, true), ("b", 50, false), ("b", 100, true), ("a", 200, true)];
        for (holder, now, expected) in rows {
            assert_eq!(state.leasable(holder, Timestamp(now)), expected, "{holder} at {now}");
        }
    }
}
