//! A domain record: one host pattern of one service, and where its proof of control stands.
//!
//! JSON (the API's and the stores' form):
//! `{"host": "www.shop.example", "service": "shop", "tenant": "acme", "status": "pending",
//!   "method": null, "token": "3f9c...", "created_at": "...", "verified_at": null,
//!   "checked_at": null, "failures": 0, "last_error": null}`.

use std::fmt;

use outpost_config::{ServiceId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

/// The DNS name whose TXT record proves control: `_outpost-challenge.<host>`, or for
/// `*.suffix`, `_outpost-challenge.<suffix>` (the wildcard's zone).
pub const CHALLENGE_LABEL: &str = "_outpost-challenge";

/// The HTTP path prefix of the token: `http://<host>/.well-known/outpost-challenge/<token>`.
pub const WELL_KNOWN: &str = "/.well-known/outpost-challenge/";

/// Where a domain's proof stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// Added, not proven yet: not served. Checked again every `domains.pending_interval`.
    Pending,
    /// Proven: served. Re-checked every `domains.recheck_interval`.
    Verified,
    /// Proven once, but its last re-checks found the proof gone (fewer than
    /// `domains.lapse_after` in a row): still served, so one bad lookup never takes a site down.
    Failing,
    /// `domains.lapse_after` re-checks in a row found the proof gone: no longer served. A
    /// later check that finds the proof makes it verified again.
    Lapsed,
}

impl DomainStatus {
    /// Every status, for metrics with one sample per status.
    pub const ALL: [DomainStatus; 4] =
        [DomainStatus::Pending, DomainStatus::Verified, DomainStatus::Failing, DomainStatus::Lapsed];

    /// Whether nodes serve a host in this status.
    pub fn served(self) -> bool {
        matches!(self, DomainStatus::Verified | DomainStatus::Failing)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DomainStatus::Pending => "pending",
            DomainStatus::Verified => "verified",
            DomainStatus::Failing => "failing",
            DomainStatus::Lapsed => "lapsed",
        }
    }
}

impl fmt::Display for DomainStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a domain was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainMethod {
    /// A TXT record `_outpost-challenge.<host>` holding the token.
    Dns,
    /// `http://<host>/.well-known/outpost-challenge/<token>` answering the token.
    Http,
    /// The operator's word: by API, or `domains.owned` in the control plane's config. Never
    /// re-checked.
    Operator,
}

impl DomainMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainMethod::Dns => "dns",
            DomainMethod::Http => "http",
            DomainMethod::Operator => "operator",
        }
    }
}

/// One host pattern of one service and its proof of control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// The host pattern as `HostPattern`'s `Display` writes it (`shop.example`, `*.shop.example`).
    pub host: String,
    pub service: ServiceId,
    pub tenant: TenantId,
    pub status: DomainStatus,
    /// How it was last proven; `None` until it is.
    pub method: Option<DomainMethod>,
    /// 32 random lower-case hex digits, made when the domain was added: what the TXT record or
    /// the HTTP answer must hold.
    pub token: String,
    pub created_at: Timestamp,
    /// When the proof was last found (or decreed).
    pub verified_at: Option<Timestamp>,
    /// When it was last checked, whatever the outcome.
    pub checked_at: Option<Timestamp>,
    /// Checks in a row that found the proof gone (reset by a proof).
    pub failures: u32,
    /// What the last check that did not prove it found.
    pub last_error: Option<String>,
}

impl DomainRecord {
    /// A new pending domain with a fresh token.
    pub fn pending(host: String, service: ServiceId, tenant: TenantId, token: String, at: Timestamp) -> Self {
        Self {
            host,
            service,
            tenant,
            status: DomainStatus::Pending,
            method: None,
            token,
            created_at: at,
            verified_at: None,
            checked_at: None,
            failures: 0,
            last_error: None,
        }
    }

    /// A new domain verified by the operator's word.
    pub fn decreed(host: String, service: ServiceId, tenant: TenantId, token: String, at: Timestamp) -> Self {
        Self {
            status: DomainStatus::Verified,
            method: Some(DomainMethod::Operator),
            verified_at: Some(at),
            ..Self::pending(host, service, tenant, token, at)
        }
    }

    /// Whether the host is a wildcard (`*.suffix`): those need the DNS proof.
    pub fn is_wildcard(&self) -> bool {
        self.host.starts_with("*.")
    }

    /// The name whose TXT record proves control.
    pub fn challenge_name(&self) -> String {
        format!("{CHALLENGE_LABEL}.{}", self.host.strip_prefix("*.").unwrap_or(&self.host))
    }

    /// The URL whose body proves control; `None` for a wildcard.
    pub fn challenge_url(&self) -> Option<String> {
        (!self.is_wildcard()).then(|| format!("http://{}{WELL_KNOWN}{}", self.host, self.token))
    }
}

/// A fresh token: 128 random bits as 32 lower-case hex digits.
pub fn new_token() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| "no randomness from the system".to_owned())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str) -> DomainRecord {
        let service = ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}"));
        let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
        DomainRecord::pending(host.to_owned(), service, tenant, "abc".to_owned(), Timestamp(0))
    }

    #[test]
    fn challenges_name_the_host_or_the_wildcards_zone() {
        let exact = record("www.shop.example");
        assert_eq!(exact.challenge_name(), "_outpost-challenge.www.shop.example");
        assert_eq!(exact.challenge_url().as_deref(), Some("http://www.shop.example/.well-known/outpost-challenge/abc"));
        let wildcard = record("*.shop.example");
        assert_eq!(wildcard.challenge_name(), "_outpost-challenge.shop.example");
        assert_eq!(wildcard.challenge_url(), None, "a wildcard needs the DNS proof");
    }

    #[test]
    fn the_json_form_is_flat_and_statuses_are_words() {
        let json = serde_json::to_value(record("shop.example")).unwrap_or_default();
        assert_eq!(json["status"], "pending");
        assert_eq!(json["method"], serde_json::Value::Null);
        assert_eq!(json["created_at"], "1970-01-01T00:00:00.000Z");
        let served: Vec<&str> = DomainStatus::ALL.iter().filter(|s| s.served()).map(|s| s.as_str()).collect();
        assert_eq!(served, ["verified", "failing"]);
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token().unwrap_or_default(), new_token().unwrap_or_default());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
