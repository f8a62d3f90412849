//! ACME challenge answers (RFC 8555 §8) as the control plane sends them to every edge: the
//! control plane drives one order per host set for the whole fleet, and whichever edge the
//! CA's validator reaches must answer for the host.
//!
//! - HTTP-01 (RFC 8555 §8.3): `GET /.well-known/acme-challenge/<token>` on port 80 for the
//!   host answers the key authorization, before any tenant logic.
//! - TLS-ALPN-01 (RFC 8737): a ClientHello for the host offering only ALPN `acme-tls/1` gets a
//!   self-signed certificate for the host carrying the critical `id-pe-acmeIdentifier`
//!   extension, the SHA-256 of the key authorization. Each edge builds that certificate itself
//!   from the record, so no private key travels.
//!
//! A key authorization is `token || '.' || base64url(JWK thumbprint of the account key)`
//! (RFC 8555 §8.1): public, by design (the CA fetches it over plain HTTP).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::control::ServiceId;
use crate::timestamp::Timestamp;

/// The longest token accepted. RFC 8555 §8.3 asks for at least 128 bits of entropy in
/// base64url (22 characters); CAs send 43. Bounds what a node holds per challenge.
pub const MAX_TOKEN_LEN: usize = 128;

/// The longest key authorization accepted: the token, a dot, a SHA-256 thumbprint (43).
pub const MAX_KEY_AUTHORIZATION_LEN: usize = MAX_TOKEN_LEN + 1 + 64;

/// Which validation method a challenge answer serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChallengeKind {
    /// RFC 8555 §8.3.
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8737.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        })
    }
}

/// One challenge answer every edge serves until `expires_at` or until the control plane
/// deletes it (the order ended). Identified by its `token` (the CA makes it random; the
/// control plane refuses a token already published).
///
/// JSON: `{"token": "LoqXcYV8...", "host": "www.example.test", "kind": "http-01",
/// "key_authorization": "LoqXcYV8....9jg46WB3...", "service": "shop",
/// "expires_at": "2026-12-07T23:00:00.000Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeChallenge {
    /// The CA's token: base64url (`A-Z a-z 0-9 - _`), 1 to [`MAX_TOKEN_LEN`] characters.
    pub token: String,
    /// The identifier validated: a DNS name, lower-case, no wildcard (RFC 8555 §7.1.4: a
    /// wildcard is validated by DNS-01 only).
    pub host: String,
    pub kind: ChallengeKind,
    /// `token.thumbprint`, at most [`MAX_KEY_AUTHORIZATION_LEN`] characters.
    pub key_authorization: String,
    /// The service whose order it is (logs; deleted with the service).
    pub service: ServiceId,
    /// After this a node no longer answers it, deleted or not: a control plane that died
    /// mid-order leaves nothing served for long.
    pub expires_at: Timestamp,
}

impl AcmeChallenge {
    /// Checks what a node relies on: the token's alphabet and length (it is matched against a
    /// URL path segment), the key authorization's form, the host's.
    pub fn check(&self) -> Result<(), String> {
        if !is_token(&self.token) {
            return Err(format!(
                "token: {:?} is not 1 to {MAX_TOKEN_LEN} base64url characters (A-Z a-z 0-9 - _)",
                self.token
            ));
        }
        let thumbprint = self.key_authorization.strip_prefix(self.token.as_str()).and_then(|r| r.strip_prefix('.'));
        if self.key_authorization.len() > MAX_KEY_AUTHORIZATION_LEN || !thumbprint.is_some_and(is_token) {
            return Err("key_authorization: not \"<token>.<base64url thumbprint>\" (RFC 8555 §8.1)".to_owned());
        }
        let host_ok = !self.host.is_empty()
            && self.host.len() <= 253
            && self.host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !host_ok {
            return Err(format!("host: {:?} is not a lower-case DNS name without a wildcard", self.host));
        }
        Ok(())
    }

    /// Whether a node still answers it at `now`.
    pub fn live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

/// base64url without padding, 1 to [`MAX_TOKEN_LEN`] characters.
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_TOKEN_LEN
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(token: &str, key_authorization: &str, host: &str) -> AcmeChallenge {
        AcmeChallenge {
            token: token.to_owned(),
            host: host.to_owned(),
            kind: ChallengeKind::Http01,
            key_authorization: key_authorization.to_owned(),
            service: ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}")),
            expires_at: Timestamp(1_000),
        }
    }

    #[test]
    fn checks_what_a_node_relies_on() {
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let rows: [(&str, &str, &str, Option<&str>); 8] = [
            ("tok-_1", "tok-_1.thumb_-9", "www.example.test", None),
            ("", ".thumb", "www.example.test", Some("token: ")),
            ("a/b", "a/b.thumb", "www.example.test", Some("token: ")),
            (&long, "x.y", "www.example.test", Some("token: ")),
            ("tok", "other.thumb", "www.example.test", Some("key_authorization")),
            ("tok", "tok.", "www.example.test", Some("key_authorization")),
            ("tok", "tok.thumb", "*.example.test", Some("host: ")),
            ("tok", "tok.thumb", "WWW.example.test", Some("host: ")),
        ];
        for (token, key_authorization, host, error) in rows {
            let result = challenge(token, key_authorization, host).check();
            match error {
                None => assert_eq!(result, Ok(()), "{token}"),
                Some(prefix) => assert!(result.as_ref().is_err_and(|e| e.starts_with(prefix)), "{token}: {result:?}"),
            }
        }
    }

    #[test]
    fn expires_at_its_time() {
        let c = challenge("t", "t.x", "a.test");
        assert!(c.live(Timestamp(999)));
        assert!(!c.live(Timestamp(1_000)));
    }

    #[test]
    fn has_the_documented_json() {
        let c = challenge("t", "t.x", "a.test");
        let json = serde_json::to_string(&c).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"token":"t","host":"a.test","kind":"http-01","key_authorization":"t.x","service":"shop","expires_at":"1970-01-01T00:00:01.000Z"}"#
        );
        let back: AcmeChallenge = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, c);
    }
}
