//! One ACME order, RFC 8555 §7.4 from creation to the certificate: publish each pending
//! authorization's challenge answer to every edge (an event), wait for the live edges to apply
//! it, tell the CA it is ready, wait for the order to be ready, finalize with a CSR made here
//! (the private key never leaves the control plane unsealed), download the chain.
//!
//! Resuming: the order's URL is kept in the service's state as soon as the CA gives it, so a
//! replica that takes the lease over (the previous holder died, or restarted) continues the
//! same order while it is pending or ready; past that (the key made for its CSR died with the
//! holder) a new order is made.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use instant_acme::{Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy};
use outpost_config::{AcmeChallenge, ChallengeKind, NodeRole, Seq, ServiceId, Timestamp};

use super::AcmeSettings;
use super::lease::Held;
use crate::nodes::Nodes;
use crate::store::{AcmeFailure, Store};

/// A certificate obtained: the chain (leaf first) and its private key, both PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Why an order failed: a stable code (see [`AcmeFailure::code`]) and what was said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub code: &'static str,
    pub message: String,
}

impl Failed {
    pub fn new(code: &'static str, message: impl std::fmt::Display) -> Self {
        Self { code, message: message.to_string() }
    }

    pub fn at(&self, at: Timestamp) -> AcmeFailure {
        AcmeFailure { at, code: self.code.to_owned(), message: self.message.clone() }
    }
}

/// What an order needs besides its lease.
pub struct OrderCtx<'a> {
    pub settings: &'a AcmeSettings,
    pub store: &'a Arc<dyn Store>,
    pub nodes: &'a Arc<Nodes>,
    pub service: &'a ServiceId,
}

/// How long to wait for the live edges to apply a published challenge before telling the CA:
/// a quarter of the order's time, at most 10 s (an edge that lags that long is left out, and
/// the CA may still reach another).
fn publish_wait(settings: &AcmeSettings) -> Duration {
    (settings.order_timeout / 4).min(Duration::from_secs(10))
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// Runs the order for `held.state.hosts` to its certificate.
pub async fn run(ctx: &OrderCtx<'_>, account: &Account, held: &mut Held) -> Result<Issued, Failed> {
    let retries = RetryPolicy::new().initial_delay(Duration::from_millis(250)).timeout(ctx.settings.order_timeout);
    let mut order = open(account, held).await?;
    held.save(ctx.store, |s| s.order_url = Some(order.url().to_owned())).await?;
    let kind = match ctx.settings.challenge.as_str() {
        "tls-alpn-01" => (ChallengeType::TlsAlpn01, ChallengeKind::TlsAlpn01),
        _ => (ChallengeType::Http01, ChallengeKind::Http01),
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| Failed::new("order", format!("reading an authorization: {e}")))?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let host = authz.identifier().to_string();
        let Some(mut challenge) = authz.challenge(kind.0.clone()) else {
            return Err(Failed::new("order", format!("the CA offers no {} challenge for {host}", kind.1)));
        };
        let answer = AcmeChallenge {
            token: challenge.token.clone(),
            host: host.clone(),
            kind: kind.1,
            key_authorization: challenge.key_authorization().as_str().to_owned(),
            service: ctx.service.clone(),
            expires_at: Timestamp(now().as_millis() + millis(ctx.settings.order_timeout)),
        };
        answer.check().map_err(|e| Failed::new("order", format!("the CA's challenge for {host}: {e}")))?;
        let token = answer.token.clone();
        held.save(ctx.store, |s| {
            if !s.tokens.contains(&token) {
                s.tokens.push(token.clone());
            }
        })
        .await?;
        let event = ctx.store.put_challenge(answer, now()).await.map_err(|e| Failed::new("store", e))?;
        ctx.nodes.appended(event.seq);
        if !applied_by_live_edges(ctx.nodes, event.seq, publish_wait(ctx.settings)).await {
            tracing::warn!(service = %ctx.service, %host, seq = %event.seq,
                "not every live edge applied the challenge in time; asking the CA anyway");
        }
        challenge.set_ready().await.map_err(|e| Failed::new("validation", format!("{host}: {e}")))?;
        tracing::info!(service = %ctx.service, %host, kind = %kind.1, "ACME challenge published and ready");
    }
    match order.poll_ready(&retries).await {
        Ok(OrderStatus::Ready) => {}
        Ok(status) => return Err(Failed::new("validation", format!("the order is {status:?}"))),
        Err(e) => return Err(Failed::new("validation", e)),
    }
    let key = rcgen::KeyPair::generate().map_err(|e| Failed::new("finalize", e))?;
    let mut params = rcgen::CertificateParams::new(held.state.hosts.clone()).map_err(|e| Failed::new("finalize", e))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(|e| Failed::new("finalize", e))?;
    order.finalize_csr(csr.der()).await.map_err(|e| Failed::new("finalize", e))?;
    let chain_pem = order.poll_certificate(&retries).await.map_err(|e| Failed::new("finalize", e))?;
    Ok(Issued { chain_pem, key_pem: key.serialize_pem() })
}

/// The order to work on: the one in flight when it can still be finished, else a new one.
async fn open(account: &Account, held: &Held) -> Result<instant_acme::Order, Failed> {
    if let Some(url) = &held.state.order_url {
        match account.order(url.clone()).await {
            Ok(mut order) => {
                let status = order.state().status;
                if matches!(status, OrderStatus::Pending | OrderStatus::Ready) {
                    tracing::info!(service = %held.state.service, %url, "resuming the ACME order in flight");
                    return Ok(order);
                }
                tracing::info!(service = %held.state.service, %url, ?status,
                    "the order in flight cannot be finished here; ordering anew");
            }
            Err(e) => tracing::warn!(service = %held.state.service, %url, error = %e,
                "the order in flight is gone; ordering anew"),
        }
    }
    let identifiers: Vec<Identifier> = held.state.hosts.iter().map(|h| Identifier::Dns(h.clone())).collect();
    account.new_order(&NewOrder::new(&identifiers)).await.map_err(|e| match &e {
        instant_acme::Error::Api(problem) if problem.r#type.as_deref() == Some(ACCOUNT_GONE) => {
            Failed::new(ACCOUNT_GONE_CODE, format!("the CA no longer knows the account ({e}); a new one is made next"))
        }
        _ => Failed::new("order", e),
    })
}

/// RFC 8555 §6.7: the CA does not know the account (a test CA restarted, a directory reset).
const ACCOUNT_GONE: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// The failure code of an order refused for [`ACCOUNT_GONE`]: the driver forgets the account.
pub const ACCOUNT_GONE_CODE: &str = "account_gone";

/// Waits until every live edge acknowledged `seq` (it serves the challenge), at most `limit`.
pub async fn applied_by_live_edges(nodes: &Nodes, seq: Seq, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut changes = nodes.changes();
    loop {
        let lagging = nodes
            .list(Instant::now())
            .iter()
            .filter(|n| n.live && n.node.registration.role == NodeRole::Edge && n.acked < seq)
            .count();
        if lagging == 0 {
            return true;
        }
        // Woken by each ack (and registration); the timeout also re-checks liveness.
        let wake = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        let _ = tokio::time::timeout_at(wake, changes.changed()).await;
    }
}

pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
