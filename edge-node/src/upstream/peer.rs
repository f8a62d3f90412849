//! One upstream server of a service, a shield or an origin, as the request path sees it: where
//! it is, its health (active probes), its circuit breaker (real requests), and its in-flight
//! count. Also the active health-check loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use http::{HeaderValue, Method, Request, header};
use outpost_config::{HealthConfig, OriginUrl, PassiveConfig};
use serde::Serialize;

use super::breaker::{self, Admission, Breaker, BreakerState, Permit, RequestOutcome};
use super::client::HttpsClient;
use super::ejection::Candidate;
use super::health::{self, HealthState, ProbeOutcome};
use super::select::{Member, stable_hash};
use crate::body;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Shield,
    Origin,
}

pub struct Peer {
    pub service: Arc<str>,
    pub url: OriginUrl,
    /// `scheme://host:port`: requests go to `base` + path.
    pub base: String,
    pub role: Role,
    pub pop: Option<String>,
    pub id: u64,
    pub group: u8,
    pub weight: u32,
    health: Mutex<HealthState>,
    breaker: Mutex<Breaker>,
    in_flight: AtomicUsize,
}

/// A peer's state for `/upstreams`.
#[derive(Serialize)]
pub struct PeerSnapshot {
    pub url: String,
    pub role: Role,
    pub pop: Option<String>,
    pub group: u8,
    pub health: &'static str,
    pub breaker: &'static str,
    pub in_flight: usize,
}

impl Peer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        service: &Arc<str>,
        url: &OriginUrl,
        role: Role,
        pop: Option<String>,
        group: u8,
        weight: u32,
        health: &HealthConfig,
        passive: &PassiveConfig,
    ) -> Self {
        let base = format!("{}://{}", url.scheme.as_str(), url.authority());
        Self {
            service: service.clone(),
            id: stable_hash(base.as_bytes()),
            base,
            url: url.clone(),
            role,
            pop,
            group,
            weight,
            health: Mutex::new(HealthState::new(health)),
            breaker: Mutex::new(Breaker::new(passive)),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.health.lock().map(|h| h.is_healthy()).unwrap_or(false)
    }

    /// Since when this peer's breaker keeps it out at `now` (`None`: it admits requests).
    fn ejected_since(&self, now: Instant) -> Option<Instant> {
        // A poisoned lock (a panic elsewhere) counts as ejected since now.
        self.breaker.lock().map(|b| b.ejected_since(now)).unwrap_or(Some(now))
    }

    /// This peer as a balancer member for one request (eligible when `healthy`, not yet tried
    /// and not ejected), and as a candidate for the ejection cap. `healthy` is the active
    /// checks' verdict, or true when the list is in health panic.
    pub fn member(&self, tried: &[u64], healthy: bool, now: Instant) -> (Member, Candidate) {
        let ejected_since = self.ejected_since(now);
        let member = Member {
            id: self.id,
            group: self.group,
            weight: self.weight,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            eligible: !tried.contains(&self.id) && healthy && ejected_since.is_none(),
        };
        (member, Candidate { usable: healthy && self.weight > 0, ejected_since })
    }

    pub fn acquire(&self, now: Instant) -> Option<Permit> {
        let (admission, transition) = self.breaker.lock().ok()?.try_acquire(now);
        if let Some(t) = transition {
            self.breaker_transition(t);
        }
        match admission {
            Admission::Permit(p) => Some(p),
            Admission::Rejected => None,
        }
    }

    /// A permit for a peer the ejection cap readmitted, whatever its breaker says.
    pub fn admit_anyway(&self, now: Instant) -> Option<Permit> {
        let (permit, transition) = self.breaker.lock().ok()?.admit_anyway(now);
        if let Some(t) = transition {
            self.breaker_transition(t);
        }
        Some(permit)
    }

    pub fn record(&self, permit: Permit, outcome: RequestOutcome, now: Instant) {
        let transition = self.breaker.lock().ok().and_then(|mut b| b.record(permit, outcome, now));
        if let Some(t) = transition {
            self.breaker_transition(t);
        }
        let result = match outcome {
            RequestOutcome::Success => "success",
            RequestOutcome::Failure => "failure",
            RequestOutcome::ClientFault => "client_fault",
            RequestOutcome::StaleConnection => "stale_connection",
        };
        metrics::counter!(crate::metrics::UPSTREAM_REQUESTS, "service" => self.service.to_string(),
            "upstream" => self.base.clone(), "result" => result)
        .increment(1);
    }

    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    fn breaker_transition(&self, t: breaker::Transition) {
        let to = match t {
            breaker::Transition::Opened { .. } => "open",
            breaker::Transition::HalfOpened => "half_open",
            breaker::Transition::Closed => "closed",
        };
        tracing::warn!(service = %self.service, upstream = %self.base, ?t, "circuit breaker {to}");
        metrics::counter!(crate::metrics::UPSTREAM_BREAKER_TRANSITIONS, "service" => self.service.to_string(),
            "upstream" => self.base.clone(), "to" => to)
        .increment(1);
    }

    fn observe_probe(&self, outcome: ProbeOutcome, now: Instant) {
        let transition = self.health.lock().ok().and_then(|mut h| h.observe(outcome, now));
        match transition {
            Some(health::Transition::WentDown { failures }) => {
                tracing::warn!(service = %self.service, upstream = %self.base, failures, "upstream unhealthy")
            }
            Some(health::Transition::CameUp { down_for }) => {
                tracing::info!(service = %self.service, upstream = %self.base, ?down_for, "upstream healthy again")
            }
            None => {}
        }
        metrics::gauge!(crate::metrics::UPSTREAM_HEALTHY, "service" => self.service.to_string(),
            "upstream" => self.base.clone())
        .set(if self.is_healthy() { 1.0 } else { 0.0 });
    }

    pub fn snapshot(&self) -> PeerSnapshot {
        let breaker = match self.breaker.lock().map(|b| b.state()) {
            Ok(BreakerState::Closed { .. }) => "closed",
            Ok(BreakerState::Open { .. }) => "open",
            Ok(BreakerState::HalfOpen { .. }) => "half_open",
            Err(_) => "unknown",
        };
        PeerSnapshot {
            url: self.base.clone(),
            role: self.role,
            pop: self.pop.clone(),
            group: self.group,
            health: if self.is_healthy() { "healthy" } else { "unhealthy" },
            breaker,
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// Counts a request in flight to a peer for as long as it lives.
pub struct InFlight<'a>(&'a Peer);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Probe `peer` every `cfg.interval` with `GET cfg.path` (Host `host`) until the peer is dropped.
/// A 2xx or 3xx within `cfg.timeout` is a success.
pub fn spawn_probes(peer: &Arc<Peer>, client: HttpsClient, cfg: HealthConfig, host: String) {
    let weak: Weak<Peer> = Arc::downgrade(peer);
    let Ok(host) = HeaderValue::from_str(&host) else { return };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(peer) = weak.upgrade() else { return };
            let uri = format!("{}{}", peer.base, cfg.path);
            let Ok(mut req) = Request::builder().method(Method::GET).uri(uri).body(body::empty()) else { return };
            req.headers_mut().insert(header::HOST, host.clone());
            req.headers_mut().insert(header::USER_AGENT, HeaderValue::from_static("outpost-health-check"));
            let outcome = match tokio::time::timeout(cfg.timeout, client.request(req)).await {
                Ok(Ok(resp)) => {
                    // The connection answered: the next request on it is a reused one.
                    super::conn::note_response(resp.extensions());
                    let status = resp.status();
                    if status.is_success() || status.is_redirection() {
                        ProbeOutcome::Success
                    } else {
                        ProbeOutcome::Failure
                    }
                }
                _ => ProbeOutcome::Failure,
            };
            peer.observe_probe(outcome, Instant::now());
            drop(peer);
        }
    });
}
