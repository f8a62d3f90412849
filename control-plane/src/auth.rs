//! Bearer tokens: who is calling, from the request's headers.
//!
//! A token is looked up by its SHA-256 (ring's, already in the tree through rustls), so the
//! config file and memory hold only hashes. Looking a hash up in a map is not constant-time,
//! and need not be: timing can at most reveal bytes of a hash of a secret, not the secret.
//!
//! Accepted headers, first found wins: `Authorization: Bearer TOKEN` (ours, and Cloudflare's
//! API tokens), then `Fastly-Key: TOKEN` (what Fastly's clients send).

use std::collections::HashMap;

use http::HeaderMap;
use outpost_config::{NodeId, ServiceRecord, TenantId};

use crate::settings::{Role, TokenEntry, parse_hex_digest};

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Every tenant's services and the event log.
    Operator,
    /// This tenant's services only.
    Tenant(TenantId),
    /// An edge node or shield: registers, follows the event log, acknowledges; nothing else.
    /// The API's `Auth` extractor refuses it, so no tenant or operator route ever sees it. With
    /// an id, the token acts as that node only.
    Node(Option<NodeId>),
}

impl Principal {
    /// Whether this principal may see and change `service`.
    pub fn may_access(&self, service: &ServiceRecord) -> bool {
        match self {
            Principal::Operator => true,
            Principal::Tenant(tenant) => *tenant == service.tenant,
            Principal::Node(_) => false,
        }
    }

    /// The tenant, for a tenant's token.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Principal::Operator | Principal::Node(_) => None,
            Principal::Tenant(tenant) => Some(tenant),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Operator => f.write_str("operator"),
            Principal::Tenant(tenant) => write!(f, "tenant {tenant}"),
            Principal::Node(None) => f.write_str("node"),
            Principal::Node(Some(id)) => write!(f, "node {id}"),
        }
    }
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token; send Authorization: Bearer TOKEN")]
    Missing,
    #[error("the Authorization header is not \"Bearer TOKEN\"")]
    Malformed,
    #[error("unknown token")]
    Unknown,
}

/// The configured tokens, by the SHA-256 of the token.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Principal>,
}

impl Tokens {
    /// From validated `[[tokens]]` entries; an entry that failed validation is skipped.
    pub fn new(entries: &[TokenEntry]) -> Self {
        let by_hash = entries
            .iter()
            .filter_map(|entry| {
                let principal = match entry.role()? {
                    Role::Operator => Principal::Operator,
                    Role::Node(id) => Principal::Node(id),
                    Role::Tenant(tenant) => Principal::Tenant(tenant),
                };
                Some((parse_hex_digest(&entry.sha256)?, principal))
            })
            .collect();
        Self { by_hash }
    }

    /// Who the request's token acts for.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = presented_token(headers)?;
        self.by_hash.get(&sha256(token.as_bytes())).cloned().ok_or(AuthError::Unknown)
    }
}

/// The token from `Authorization: Bearer` or `Fastly-Key`.
fn presented_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        // RFC 9110 §11.1: the scheme is case-insensitive.
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError::Malformed);
        }
        return Ok(token);
    }
    match headers.get("fastly-key") {
        Some(value) => value.to_str().map(str::trim).ok().filter(|t| !t.is_empty()).ok_or(AuthError::Malformed),
        None => Err(AuthError::Missing),
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn entry(tenant: Option<&str>, token: &str) -> TokenEntry {
        TokenEntry {
            name: None,
            node: false,
            node_id: None,
            operator: tenant.is_none(),
            tenant: tenant.map(str::to_owned),
            sha256: hex(&sha256(token.as_bytes())),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")));
        }
        map
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn tokens_map_to_their_principal() {
        let node = TokenEntry { node: true, operator: false, ..entry(None, "node-secret") };
        let tokens = Tokens::new(&[entry(None, "op-secret"), entry(Some("acme"), "acme-secret"), node]);
        let acme = Principal::Tenant(TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")));
        type Case = (Vec<(&'static str, &'static str)>, Result<Principal, AuthError>);
        let cases: Vec<Case> = vec![
            (vec![("authorization", "Bearer op-secret")], Ok(Principal::Operator)),
            (vec![("authorization", "bearer acme-secret")], Ok(acme.clone())),
            (vec![("authorization", "Bearer node-secret")], Ok(Principal::Node(None))),
            (vec![("authorization", "BEARER  acme-secret ")], Ok(acme.clone())),
            (vec![("fastly-key", "acme-secret")], Ok(acme.clone())),
            // Authorization wins over Fastly-Key.
            (vec![("authorization", "Bearer op-secret"), ("fastly-key", "acme-secret")], Ok(Principal::Operator)),
            (vec![], Err(AuthError::Missing)),
            (vec![("authorization", "Bearer nope")], Err(AuthError::Unknown)),
            (vec![("authorization", "Basic b3A6c2VjcmV0")], Err(AuthError::Malformed)),
            (vec![("authorization", "Bearer")], Err(AuthError::Malformed)),
            (vec![("authorization", "Bearer ")], Err(AuthError::Malformed)),
            (vec![("fastly-key", "")], Err(AuthError::Malformed)),
            (vec![("fastly-key", "nope")], Err(AuthError::Unknown)),
        ];
        for (pairs, expected) in cases {
            assert_eq!(tokens.authenticate(&headers(&pairs)), expected, "{pairs:?}");
        }
    }
}
