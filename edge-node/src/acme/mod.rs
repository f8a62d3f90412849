//! ACME challenge answers (RFC 8555 §8) for the control plane's orders: whichever edge the
//! CA's validator reaches answers for the host, so every edge holds every live challenge.
//!
//! - [`ChallengeSet`]: the challenges as of the last applied event, built once per change
//!   (TLS-ALPN-01 certificates included), swapped whole in [`Challenges`]; lookups take `now`.
//! - `http01`: `GET /.well-known/acme-challenge/<token>` answered in the accept phase, before
//!   any tenant logic (function, cache, origin).
//! - `alpn`: the RFC 8737 validation certificate, and the certificate resolver that gives it
//!   to a ClientHello offering `acme-tls/1` for a host with a live challenge.
//!
//! The agent (`agent::apply`) keeps the records; this module only answers.

mod alpn;
pub mod http01;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use outpost_config::{AcmeChallenge, ChallengeKind, Timestamp};
use rustls::sign::CertifiedKey;

pub use alpn::{ACME_TLS_ALPN, answer_tls_alpn, validation_certificate, validation_hello};

/// A TLS-ALPN-01 answer: the validation certificate and until when it is served.
struct AlpnAnswer {
    key: Arc<CertifiedKey>,
    expires_at: Timestamp,
}

/// An HTTP-01 answer.
struct HttpAnswer {
    host: String,
    key_authorization: Arc<str>,
    expires_at: Timestamp,
}

/// The live challenges, indexed for the two lookups: by token (HTTP-01) and by host
/// (TLS-ALPN-01).
#[derive(Default)]
pub struct ChallengeSet {
    http: HashMap<String, HttpAnswer>,
    alpn: HashMap<String, AlpnAnswer>,
}

impl ChallengeSet {
    /// Indexes `challenges`, building each TLS-ALPN-01 certificate now (not in a handshake).
    /// A certificate that cannot be built is logged and left out: the CA's validation of that
    /// host fails, and the control plane's order with it.
    pub fn build<'a>(challenges: impl IntoIterator<Item = &'a AcmeChallenge>) -> Self {
        let mut set = Self::default();
        for c in challenges {
            match c.kind {
                ChallengeKind::Http01 => {
                    set.http.insert(
                        c.token.clone(),
                        HttpAnswer {
                            host: c.host.clone(),
                            key_authorization: c.key_authorization.as_str().into(),
                            expires_at: c.expires_at,
                        },
                    );
                }
                ChallengeKind::TlsAlpn01 => match validation_certificate(&c.host, &c.key_authorization) {
                    // One answer per host: the latest put wins (the CA validates one
                    // authorization per identifier at a time).
                    Ok(key) => {
                        set.alpn.insert(c.host.clone(), AlpnAnswer { key, expires_at: c.expires_at });
                    }
                    Err(e) => tracing::error!(host = %c.host, service = %c.service, error = %e,
                        "TLS-ALPN-01 validation certificate not built"),
                },
            }
        }
        set
    }

    /// The key authorization for `token` on `host`, while it is live.
    pub fn http01(&self, host: &str, token: &str, now: Timestamp) -> Option<Arc<str>> {
        let answer = self.http.get(token)?;
        (answer.host == host && now < answer.expires_at).then(|| answer.key_authorization.clone())
    }

    /// The validation certificate for `host`, while it is live.
    pub fn tls_alpn(&self, host: &str, now: Timestamp) -> Option<Arc<CertifiedKey>> {
        let answer = self.alpn.get(host)?;
        (now < answer.expires_at).then(|| answer.key.clone())
    }

    pub fn len(&self) -> usize {
        self.http.len() + self.alpn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The set in force, swapped whole by the agent; read by requests and handshakes.
#[derive(Default)]
pub struct Challenges(RwLock<Arc<ChallengeSet>>);

impl Challenges {
    pub fn current(&self) -> Arc<ChallengeSet> {
        // A poisoned lock still holds a whole set: writers only swap an Arc.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, set: ChallengeSet) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}

/// Now, as challenge expiry counts it.
pub fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use outpost_config::ServiceId;

    use super::*;

    pub(super) fn challenge(token: &str, host: &str, kind: ChallengeKind, expires: u64) -> AcmeChallenge {
        AcmeChallenge {
            token: token.to_owned(),
            host: host.to_owned(),
            kind,
            key_authorization: format!("{token}.thumbprint"),
            service: ServiceId::parse("shop").unwrap(),
            expires_at: Timestamp(expires),
        }
    }

    #[test]
    fn answers_only_its_host_and_only_while_live() {
        let set = ChallengeSet::build(&[
            challenge("t1", "www.example.test", ChallengeKind::Http01, 1_000),
            challenge("t2", "www.example.test", ChallengeKind::TlsAlpn01, 1_000),
        ]);
        let rows: [(&str, &str, u64, bool); 4] = [
            ("www.example.test", "t1", 999, true),
            // RFC 8555 §8.3: the answer is for the identifier's host only.
            ("other.example.test", "t1", 999, false),
            ("www.example.test", "t1", 1_000, false),
            // The TLS-ALPN-01 token is not an HTTP-01 answer.
            ("www.example.test", "t2", 999, false),
        ];
        for (host, token, now, answered) in rows {
            let got = set.http01(host, token, Timestamp(now));
            assert_eq!(got.is_some(), answered, "{host} {token} at {now}");
            if let Some(key_authorization) = got {
                assert_eq!(&*key_authorization, "t1.thumbprint");
            }
        }
        assert!(set.tls_alpn("www.example.test", Timestamp(999)).is_some());
        assert!(set.tls_alpn("www.example.test", Timestamp(1_000)).is_none());
        assert!(set.tls_alpn("other.example.test", Timestamp(0)).is_none());
        assert_eq!(set.len(), 2);
    }
}
