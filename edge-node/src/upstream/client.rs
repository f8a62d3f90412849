//! A service's upstreams and the one way to send to them: a cache miss goes to the shield that
//! is home to its key (rendezvous hashing over the usable shields), else to the origins
//! (balanced within the lowest failover group that has a usable member). A failed try of an
//! idempotent request is retried on the next upstream in that order, after a full-jitter
//! backoff, while the retry budget allows. A try whose reused connection died before any
//! response byte (the origin closed it while idle) is sent once more on a new connection
//! when that is safe (`stale`), and never counts against the upstream. Connect, first-byte
//! and between-bytes timeouts, and TLS verified against the system roots or the service's
//! CA, apply to every upstream.

use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Request, Response, Version, header};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use outpost_config::{Balance, HostHeader, HostPattern, OriginProtocol, Scheme, ServiceConfig, UpstreamConfig};

use super::body::UpstreamBody;
use super::breaker::{Permit, RequestOutcome};
use super::conn;
use super::dial::FixedDial;
use super::ejection;
use super::framing::{Framing, frame};
use super::guard::{Guard, GuardedConnector};
use super::h2::{self as h2c, H2Failed, H2Pool, Route, Stage};
use super::peer::{Peer, PeerSnapshot, Role, spawn_probes};
use super::replay::{self, Replay};
use super::request_body::{BodyWatch, ClientFault, SentBody};
use super::retry::{AttemptOutcome, RetryBudget, backoff, is_retryable};
use super::select::Balancer;
use super::stale::{self, FailedTry, Verdict};
use crate::body::{self, EdgeBody};
use crate::error::{EdgeError, ErrorKind, Side};
use crate::hints::HintRelay;
use crate::http::backoff::jitter;
use crate::http::tls::{ca_roots, system_roots};

type ClientError = hyper_util::client::legacy::Error;
/// How a send failed: in hyper's client (HTTP/1.1 upstreams) or in the node's h2 client.
#[derive(Debug)]
enum SendError {
    Hyper(ClientError),
    H2(H2Failed),
}
/// One send as the client and the first-byte timeout left it.
type Sent = Result<Result<Response<UpstreamBody>, SendError>, tokio::time::error::Elapsed>;
/// How one try counts for the breaker, and what it came to.
type Judged = (RequestOutcome, Result<Response<UpstreamBody>, EdgeError>);
pub(super) type HttpsClient = Client<hyper_rustls::HttpsConnector<GuardedConnector>, EdgeBody>;

/// One request to send upstream; `headers` carry the request's canonical Host (rewritten per
/// upstream as the service's `host_header` says).
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: EdgeBody,
    /// Where the upstream's interim (1xx) responses go: the client's connection, for the
    /// request that leads a fetch; `None` for a background revalidation or a function's fetch.
    pub interim: Option<crate::hints::HintRelay>,
}

/// An [`Outgoing`] without its body.
struct Head {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    interim: Option<crate::hints::HintRelay>,
}

pub struct Upstream {
    client: HttpsClient,
    /// The same client without a pool: every request on a new connection. A request whose
    /// pooled connection turned out stale is sent again through it.
    fresh_client: HttpsClient,
    service: Arc<str>,
    shields: Vec<Arc<Peer>>,
    /// One HTTP/2 pool per shield, same order (h2c with prior knowledge, or ALPN h2 over TLS).
    shield_h2: Vec<H2Pool>,
    origins: Vec<Arc<Peer>>,
    /// Per origin, same order: its HTTP/2 pool, when it speaks only HTTP/2, or is `https` under
    /// `origin_protocol = "auto"` (the pool learns by ALPN whether it speaks h2).
    origin_h2: Vec<Option<H2Pool>>,
    shield_balancer: Balancer,
    origin_balancer: Balancer,
    shield_ejection: Ejection,
    origin_ejection: Ejection,
    origin_when_shields_down: bool,
    host_header: HostHeader,
    retry: outpost_config::RetryConfig,
    budget: Mutex<RetryBudget>,
    replay_body_max: u64,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
    pub total_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UpstreamBuildError(pub String);

impl Upstream {
    /// The upstreams of `svc`; `guard` says whose they are (a tenant's may not connect into
    /// the node's own networks).
    pub fn new(svc: &ServiceConfig, defaults: &UpstreamConfig, guard: &Guard) -> Result<Self, UpstreamBuildError> {
        let service: Arc<str> = svc.name.as_str().into();
        let client = build_client(svc, defaults, guard, true)?;
        let fresh_client = build_client(svc, defaults, guard, false)?;
        let shields: Vec<Arc<Peer>> = svc
            .shields
            .iter()
            .map(|s| {
                let p = Peer::new(&service, &s.url, Role::Shield, Some(s.pop.clone()), 0, 1, &svc.health, &svc.passive);
                Arc::new(p)
            })
            .collect();
        let origins: Vec<Arc<Peer>> = svc
            .origin_list()
            .iter()
            .map(|o| {
                Arc::new(Peer::new(&service, &o.url, Role::Origin, None, o.group, o.weight, &svc.health, &svc.passive))
            })
            .collect();
        if origins.is_empty() {
            return Err(UpstreamBuildError("no origin".into()));
        }
        let shield_h2 = shields.iter().map(|s| shield_pool(svc, defaults, guard, &s.url)).collect::<Result<_, _>>()?;
        let origin_h2 = origins.iter().map(|o| origin_pool(svc, defaults, guard, &o.url)).collect::<Result<_, _>>()?;
        if svc.active_health_checks() {
            // Probes carry a Host the upstream serves: a shield routes by it.
            let exact = svc.hosts.iter().find_map(|h| match h {
                HostPattern::Exact(h) => Some(h.clone()),
                HostPattern::Wildcard(_) => None,
            });
            let host =
                exact.or_else(|| svc.hosts.first().map(|h| h.to_string().replacen('*', "www", 1))).unwrap_or_default();
            // With a shield tier, the shields watch the origins: N edges probing them too
            // would be the load the tier exists to absorb.
            let probed_origins: &[Arc<Peer>] = if shields.is_empty() { &origins } else { &[] };
            for peer in shields.iter().chain(probed_origins) {
                let mut health = svc.health.clone();
                let probe_host = match (peer.role, &svc.host_header) {
                    (Role::Shield, _) => {
                        health.path = crate::http::SHIELD_HEALTH_PATH.to_string();
                        host.clone()
                    }
                    (Role::Origin, HostHeader::Origin) => peer.url.authority(),
                    (Role::Origin, HostHeader::Literal(h)) => h.clone(),
                    (Role::Origin, HostHeader::Keep) => host.clone(),
                };
                spawn_probes(peer, client.clone(), health, probe_host);
            }
        }
        // With the origins behind them, every shield may be ejected: the origins are the last
        // resort, not a shield readmitted past its breaker.
        let shield_percent = if svc.origin_when_shields_down { Some(100) } else { svc.passive.max_ejection_percent };
        let shield_health_panic = !svc.origin_when_shields_down;
        let shield_ejection =
            Ejection::new("shields", shield_percent, svc.passive.eject_on_5xx, shields.len(), shield_health_panic);
        let origin_ejection =
            Ejection::new("origins", svc.passive.max_ejection_percent, svc.passive.eject_on_5xx, origins.len(), true);
        Ok(Self {
            client,
            fresh_client,
            service,
            shields,
            shield_h2,
            origins,
            origin_h2,
            shield_balancer: Balancer::new(Balance::ConsistentHash),
            origin_balancer: Balancer::new(svc.balance),
            shield_ejection,
            origin_ejection,
            origin_when_shields_down: svc.origin_when_shields_down,
            host_header: svc.host_header.clone(),
            budget: Mutex::new(RetryBudget::new(&svc.retry, Instant::now())),
            retry: svc.retry.clone(),
            replay_body_max: defaults.replay_body_max.0,
            first_byte_timeout: svc.first_byte_timeout.unwrap_or(defaults.first_byte_timeout),
            between_bytes_timeout: svc.between_bytes_timeout.unwrap_or(defaults.between_bytes_timeout),
            total_timeout: svc.total_timeout.unwrap_or(defaults.total_timeout),
        })
    }

    pub fn snapshot(&self) -> Vec<PeerSnapshot> {
        self.shields.iter().chain(&self.origins).map(|p| p.snapshot()).collect()
    }

    /// Send `out` for the object `key`, trying upstreams in preference order until one answers
    /// below 500, retries run out, or none is usable. The last 5xx answer is returned as is.
    pub async fn send(&self, key: &[u8], out: Outgoing) -> Result<Response<UpstreamBody>, EdgeError> {
        let Outgoing { method, path_and_query, headers, body, interim } = out;
        // The head alone crosses awaits: a body is not `Sync`.
        let out = Head { method, path_and_query, headers, interim };
        // Only a request whose body is already complete (empty) goes to another upstream; a
        // small body is kept to be sent again on a new connection when a stale one dies.
        let resendable = http_body::Body::is_end_stream(&body);
        let (first, replay) = replay::keep(body, self.replay_body_max);
        let mut body = Some(first);
        if let Ok(mut b) = self.budget.lock() {
            b.record_request(Instant::now());
        }
        let mut tried: Vec<u64> = Vec::new();
        let mut last: Option<Result<Response<UpstreamBody>, EdgeError>> = None;
        for attempt in 0..=self.retry.max_retries {
            if attempt > 0 {
                let outcome = AttemptOutcome::FailedBeforeResponse;
                let budget_ok = self.budget.lock().map(|mut b| b.can_retry(Instant::now())).unwrap_or(false);
                if !resendable || !is_retryable(&out.method, outcome) || !budget_ok {
                    break;
                }
                let wait = backoff(attempt, self.retry.base_backoff, self.retry.max_backoff, jitter());
                tokio::time::sleep(wait).await;
                metrics::counter!(crate::metrics::UPSTREAM_RETRIES, "service" => self.service.to_string()).increment(1);
            }
            let Some((peer, permit)) = self.choose(key, &tried) else {
                if last.is_none() {
                    last = Some(Err(self.nothing_usable()));
                }
                break;
            };
            tried.push(peer.id);
            let sending = body.take().unwrap_or_else(body::empty);
            let (outcome, result) = self.exchange(&peer, &out, sending, &replay).await?;
            peer.record(permit, outcome, Instant::now());
            match result {
                Ok(resp) if !resp.status().is_server_error() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    last = Some(Ok(resp));
                    // 502/503/504 say the upstream (or the one behind it) is in trouble: try
                    // another. Other 5xx are the application's answer.
                    if !matches!(status.as_u16(), 502..=504) {
                        break;
                    }
                }
                // The client's own fault: no other upstream would do better.
                Err(e) if e.side() == Side::Client => return Err(e),
                Err(e) => last = Some(Err(e)),
            }
        }
        last.unwrap_or_else(|| Err(self.nothing_usable()))
    }

    /// One try at `peer`: on a pooled connection, and when that connection turns out stale (it
    /// died before any response byte: the origin closed it while idle), once more on a new
    /// connection, at once and outside the retry budget (`stale`). The stale death never
    /// reaches the breaker.
    async fn exchange(&self, peer: &Peer, out: &Head, body: EdgeBody, replay: &Replay) -> Result<Judged, EdgeError> {
        let watch = BodyWatch::default();
        let req = self.build(peer, out, body, &watch)?;
        let sent = self.dispatch(peer, req, false, out.interim.as_ref()).await;
        let verdict = self.staleness(&out.method, &sent, &watch, replay);
        let (outcome, result) = self.judge(peer, sent, &watch);
        let Some(verdict) = verdict else { return Ok((outcome, result)) };
        let replayed = verdict == Verdict::Replay;
        let error = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
        tracing::debug!(service = %self.service, upstream = %peer.base, replayed, %error, "stale upstream connection");
        metrics::counter!(crate::metrics::UPSTREAM_STALE_CONNECTIONS, "service" => self.service.to_string(),
            "replayed" => if replayed { "true" } else { "false" })
        .increment(1);
        let Some(again) = replay.body().filter(|_| replayed) else {
            return Ok((RequestOutcome::StaleConnection, result));
        };
        let watch = BodyWatch::default();
        let req = self.build(peer, out, again, &watch)?;
        let sent = self.dispatch(peer, req, true, out.interim.as_ref()).await;
        Ok(self.judge(peer, sent, &watch))
    }

    /// Sends `req` to `peer` on a pooled connection, or a new one when `fresh`: through the
    /// peer's HTTP/2 pool when it speaks HTTP/2 (its 1xx go to `interim` there), else through
    /// hyper's client (which calls the request's informational callback itself).
    async fn dispatch(&self, peer: &Peer, req: Request<EdgeBody>, fresh: bool, interim: Option<&HintRelay>) -> Sent {
        let _in_flight = peer.begin();
        if let Some(pool) = self.h2_pool(peer) {
            match pool.route(req.uri()).await {
                Route::H2 => {
                    let sending = pool.send(req, interim, fresh);
                    return tokio::time::timeout(self.first_byte_timeout, sending)
                        .await
                        .map(|r| r.map_err(SendError::H2));
                }
                Route::Failed(e) => return Ok(Err(SendError::H2(e))),
                Route::Http1 => {}
            }
        }
        let sending = if fresh { self.fresh_client.request(req) } else { self.client.request(req) };
        let sent = tokio::time::timeout(self.first_byte_timeout, sending).await;
        if let Ok(Ok(resp)) = &sent {
            conn::note_response(resp.extensions());
        }
        sent.map(|r| r.map(|resp| resp.map(UpstreamBody::Hyper)).map_err(SendError::Hyper))
    }

    /// The HTTP/2 pool of `peer`, when it is reached over HTTP/2.
    fn h2_pool(&self, peer: &Peer) -> Option<&H2Pool> {
        match peer.role {
            Role::Shield => self.shields.iter().position(|s| s.id == peer.id).and_then(|i| self.shield_h2.get(i)),
            Role::Origin => {
                self.origins.iter().position(|o| o.id == peer.id).and_then(|i| self.origin_h2.get(i)?.as_ref())
            }
        }
    }

    /// The stale-connection verdict on a failed send; `None` when the failure is not a
    /// connection's death (or is the client's fault).
    fn staleness(&self, method: &Method, sent: &Sent, watch: &BodyWatch, replay: &Replay) -> Option<Verdict> {
        let Ok(Err(e)) = sent else { return None };
        if watch.fault().is_some() {
            return None;
        }
        let failed = match e {
            SendError::Hyper(e) if e.is_connect() => return None,
            SendError::Hyper(e) => {
                let death = stale::death_of(e)?;
                let connected = e.connect_info();
                let conn = conn::facts_of(connected)?;
                let h2 = connected.is_some_and(|c| c.is_negotiated_h2());
                FailedTry { death, conn, http1: !h2, body_held: replay.held() }
            }
            SendError::H2(e) => {
                let death = match e.stage {
                    Stage::Connect => return None,
                    // The stream never opened: nothing of the request left (RFC 9110 §9.2.2).
                    Stage::Open => stale::Death::Unsent,
                    Stage::Response => stale::death_of(e)?,
                };
                // A stream's bytes are not countable on a multiplexed connection.
                let conn = conn::ConnFacts { reused: e.reused, written: 0, read: 0 };
                FailedTry { death, conn, http1: false, body_held: replay.held() }
            }
        };
        match stale::verdict(method, &failed) {
            Verdict::Failure => None,
            verdict => Some(verdict),
        }
    }

    /// What one try came to, and how it counts for `peer`'s breaker. A request whose body
    /// failed on the client's side, or which timed out while waiting for the client's body, is
    /// the client's error and says nothing about the upstream.
    fn judge(&self, peer: &Peer, result: Sent, watch: &BodyWatch) -> Judged {
        let at = format!("upstream {}", peer.base);
        match result {
            Ok(Ok(resp)) => {
                let count_5xx = match peer.role {
                    Role::Shield => self.shield_ejection.count_5xx,
                    Role::Origin => self.origin_ejection.count_5xx,
                };
                (RequestOutcome::of_status(resp.status(), count_5xx), Ok(resp))
            }
            Ok(Err(e)) => match watch.fault() {
                Some(fault) => (RequestOutcome::ClientFault, Err(e.cause_of(fault.error("failed while sent")))),
                None => (RequestOutcome::Failure, Err(classify(e).within(at))),
            },
            Err(_) if watch.waiting_on_client() => {
                let msg = format!("not received within the first-byte timeout {:?}", self.first_byte_timeout);
                (RequestOutcome::ClientFault, Err(ClientFault::TooSlow.error(msg)))
            }
            Err(_) => {
                let msg = format!("no response head within {:?}", self.first_byte_timeout);
                (RequestOutcome::Failure, Err(EdgeError::new(ErrorKind::UpstreamTimeout, msg).within(at)))
            }
        }
    }

    fn nothing_usable(&self) -> EdgeError {
        EdgeError::new(ErrorKind::NoUpstream, "no healthy upstream with a closed circuit breaker")
    }

    /// The next upstream for `key` not yet tried: the home shield, else (if allowed) an origin.
    fn choose(&self, key: &[u8], tried: &[u64]) -> Option<(Arc<Peer>, Permit)> {
        let now = Instant::now();
        if let Some(found) = pick(&self.shield_balancer, &self.shields, &self.shield_ejection, key, tried, now) {
            return Some(found);
        }
        if !self.shields.is_empty() && !self.origin_when_shields_down {
            return None;
        }
        pick(&self.origin_balancer, &self.origins, &self.origin_ejection, key, tried, now)
    }

    fn build(
        &self,
        peer: &Peer,
        out: &Head,
        body: EdgeBody,
        watch: &BodyWatch,
    ) -> Result<Request<EdgeBody>, EdgeError> {
        // A shield's URI names the client's host (its connector dials the shield itself).
        let client_host = out.headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let base = match (peer.role, client_host) {
            (Role::Shield, Some(host)) => format!("{}://{host}", peer.url.scheme.as_str()),
            _ => peer.base.clone(),
        };
        let uri = format!("{base}{}", out.path_and_query)
            .parse::<http::Uri>()
            .map_err(|e| EdgeError::new(ErrorKind::BadRequest, format!("request target: {e}")))?;
        let mut headers = out.headers.clone();
        // The framing fields describe the body sent, never the client's claim (issue 18).
        let body = match frame(&out.method, &mut headers, body.is_end_stream(), &body.size_hint()) {
            Framing::Empty => body::empty(),
            Framing::Length(n) => SentBody::new(body, Some(n), watch.clone()).boxed_unsync(),
            Framing::Streamed => SentBody::new(body, None, watch.clone()).boxed_unsync(),
        };
        let mut req = Request::new(body);
        *req.method_mut() = out.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        // A shield routes by the client's Host; an origin gets what the service says.
        let host = match (peer.role, &self.host_header) {
            (Role::Shield, _) | (Role::Origin, HostHeader::Keep) => None,
            (Role::Origin, HostHeader::Origin) => HeaderValue::from_str(&peer.url.authority()).ok(),
            (Role::Origin, HostHeader::Literal(h)) => HeaderValue::from_str(h).ok(),
        };
        if let Some(h) = host {
            req.headers_mut().insert(header::HOST, h);
        }
        // RFC 9110 §15.2: a proxy forwards 1xx it receives. hyper's client calls this for an
        // HTTP/1.1 upstream; HTTP/2 upstreams go through the node's h2 client (`super::h2`),
        // which passes their 1xx to the same relay.
        if let Some(relay) = out.interim.clone() {
            hyper::ext::on_informational(&mut req, move |res| relay.from_upstream(res.status(), res.headers()));
        }
        Ok(req)
    }
}

/// How one list of upstreams (a service's shields, or its origins) treats its breakers and
/// health checks: the ejection cap, whether a 5xx counts, whether health may be ignored when
/// nobody is healthy, and whether the list is in panic now (logged and counted once per
/// episode).
struct Ejection {
    list: &'static str,
    percent: Option<u8>,
    count_5xx: bool,
    health_panic: bool,
    panic: AtomicBool,
}

impl Ejection {
    fn new(
        list: &'static str,
        percent: Option<u8>,
        eject_on_5xx: Option<bool>,
        len: usize,
        health_panic: bool,
    ) -> Self {
        // Only where another upstream could answer does a 5xx say "ask someone else".
        let count_5xx = eject_on_5xx.unwrap_or(len > 1);
        Self { list, percent, count_5xx, health_panic, panic: AtomicBool::new(false) }
    }

    /// Logs and counts the start and the end of a panic episode, once each.
    fn note(&self, service: &str, panic: Option<ejection::Panic>) {
        if self.panic.swap(panic.is_some(), AtomicOrdering::Relaxed) == panic.is_some() {
            return;
        }
        match panic {
            Some(why) => {
                let why = match why {
                    ejection::Panic::Unhealthy => "every upstream fails its health checks",
                    ejection::Panic::Ejected => "every upstream ejected",
                };
                tracing::warn!(service, list = self.list, "{why}: panic mode, sending to them anyway");
                metrics::counter!(crate::metrics::UPSTREAM_PANICS, "service" => service.to_string(), "list" => self.list)
                    .increment(1);
            }
            None => tracing::info!(service, list = self.list, "panic mode over"),
        }
    }
}

/// Pick among `peers` for `key` with `balancer`, then take a breaker permit; a peer whose
/// breaker refuses is set aside and the pick made again. Ejected peers the cap readmits are
/// eligible and get a permit whatever their breaker says; when no peer passes its health
/// checks, health is ignored (panic).
fn pick(
    balancer: &Balancer,
    peers: &[Arc<Peer>],
    ejection: &Ejection,
    key: &[u8],
    tried: &[u64],
    now: Instant,
) -> Option<(Arc<Peer>, Permit)> {
    let healthy: Vec<bool> = peers.iter().map(|p| p.is_healthy()).collect();
    let unhealthy_panic = ejection::health_panic(&healthy, ejection.health_panic);
    let (mut members, candidates): (Vec<_>, Vec<_>) =
        peers.iter().zip(&healthy).map(|(p, h)| p.member(tried, *h || unhealthy_panic, now)).unzip();
    let plan = ejection::plan(&candidates, ejection.percent);
    if let Some(first) = peers.first() {
        let panic = match (unhealthy_panic, plan.panic) {
            (true, _) => Some(ejection::Panic::Unhealthy),
            (false, true) => Some(ejection::Panic::Ejected),
            (false, false) => None,
        };
        ejection.note(&first.service, panic);
    }
    for i in &plan.readmitted {
        members[*i].eligible = !tried.contains(&members[*i].id);
    }
    for _ in 0..peers.len() {
        let i = balancer.pick(key, &members)?;
        let permit = if plan.readmitted.contains(&i) { peers[i].admit_anyway(now) } else { peers[i].acquire(now) };
        if let Some(permit) = permit {
            return Some((peers[i].clone(), permit));
        }
        members[i].eligible = false;
    }
    None
}

fn tls_config(svc: &ServiceConfig) -> Result<rustls::ClientConfig, UpstreamBuildError> {
    let roots = match &svc.origin_ca {
        Some(path) => ca_roots("origin_ca", path).map_err(|e| UpstreamBuildError(e.to_string()))?,
        None => system_roots(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamBuildError(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn http_connector(svc: &ServiceConfig, defaults: &UpstreamConfig, guard: &Guard) -> GuardedConnector {
    GuardedConnector::new(guard.clone(), |http| {
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(svc.connect_timeout.unwrap_or(defaults.connect_timeout)));
    })
}

/// The HTTP/2 pool of one shield: its connections dial the shield whatever host the request
/// names (the URI carries the client's host, for `:authority` and TLS SNI).
fn shield_pool(
    svc: &ServiceConfig,
    defaults: &UpstreamConfig,
    guard: &Guard,
    shield: &outpost_config::OriginUrl,
) -> Result<H2Pool, UpstreamBuildError> {
    let target: http::Uri = format!("http://{}", shield.authority())
        .parse()
        .map_err(|e| UpstreamBuildError(format!("shield {shield}: {e}")))?;
    let dial = FixedDial::new(http_connector(svc, defaults, guard), target);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(svc)?)
        .https_or_http()
        .enable_http2()
        .wrap_connector(dial);
    Ok(H2Pool::new(pool_config(svc, defaults, h2c::Dialer::Shield(connector))))
}

/// The HTTP/2 pool of one origin: every origin of `origin_protocol = "http2"` (h2 over TLS, or
/// h2c); an `https` origin of `"auto"`, learning by ALPN (h2 or http/1.1, RFC 7301) whether
/// it speaks h2, so that its 1xx are seen; none for the rest (hyper's HTTP/1.1 client).
fn origin_pool(
    svc: &ServiceConfig,
    defaults: &UpstreamConfig,
    guard: &Guard,
    url: &outpost_config::OriginUrl,
) -> Result<Option<H2Pool>, UpstreamBuildError> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config(svc)?).https_or_http();
    let dialer = match (svc.origin_protocol, url.scheme) {
        (OriginProtocol::Http2, _) => {
            h2c::Dialer::Origin(builder.enable_http2().wrap_connector(http_connector(svc, defaults, guard)))
        }
        (OriginProtocol::Auto, Scheme::Https) => h2c::Dialer::OriginAlpn(
            builder.enable_http1().enable_http2().wrap_connector(http_connector(svc, defaults, guard)),
        ),
        (OriginProtocol::Auto, Scheme::Http) | (OriginProtocol::Http1, _) => return Ok(None),
    };
    Ok(Some(H2Pool::new(pool_config(svc, defaults, dialer))))
}

fn pool_config(svc: &ServiceConfig, defaults: &UpstreamConfig, dialer: h2c::Dialer) -> h2c::PoolConfig {
    h2c::PoolConfig {
        dialer,
        max_connections: defaults.h2_max_connections,
        connect_timeout: svc.connect_timeout.unwrap_or(defaults.connect_timeout),
        idle_timeout: defaults.pool_idle_timeout,
    }
}

fn build_client(
    svc: &ServiceConfig,
    defaults: &UpstreamConfig,
    guard: &Guard,
    pooled: bool,
) -> Result<HttpsClient, UpstreamBuildError> {
    let tls = tls_config(svc)?;
    let http = http_connector(svc, defaults, guard);
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
    let connector = match svc.origin_protocol {
        OriginProtocol::Auto => builder.enable_http1().enable_http2().wrap_connector(http),
        OriginProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        OriginProtocol::Http2 => builder.enable_http2().wrap_connector(http),
    };
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(defaults.pool_idle_timeout)
        .pool_max_idle_per_host(if pooled { defaults.pool_max_idle_per_host } else { 0 })
        .http2_only(svc.origin_protocol == OriginProtocol::Http2)
        .build(connector))
}

impl SendError {
    /// The try failed while making its connection.
    fn is_connect(&self) -> bool {
        match self {
            SendError::Hyper(e) => e.is_connect(),
            SendError::H2(e) => e.stage == Stage::Connect,
        }
    }

    /// `error`, caused by this failure.
    fn cause_of(self, error: EdgeError) -> EdgeError {
        match self {
            SendError::Hyper(e) => error.caused_by(e),
            SendError::H2(e) => error.caused_by(e),
        }
    }

    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            SendError::Hyper(e) => e,
            SendError::H2(e) => e,
        }
    }
}

/// Map a client error to a kind by the error types in its cause chain (never by message text),
/// with the innermost cause as the message and the error itself kept as the source.
fn classify(e: SendError) -> EdgeError {
    let connect = e.is_connect();
    let mut cause: &(dyn std::error::Error + 'static) = e.as_error();
    let (mut tls, mut timed_out, mut forbidden) = (false, false, false);
    loop {
        tls |= cause.is::<rustls::Error>();
        forbidden |= cause.is::<super::ForbiddenUpstream>();
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            // tokio-rustls reports a failed handshake as an I/O error wrapping rustls' error.
            tls |= io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
            forbidden |= io.get_ref().is_some_and(|inner| inner.is::<super::ForbiddenUpstream>());
        }
        if let Some(h) = cause.downcast_ref::<hyper::Error>() {
            timed_out |= h.is_timeout();
        }
        match cause.source() {
            Some(next) => cause = next,
            None => break,
        }
    }
    let msg = cause.to_string();
    let kind = if forbidden {
        ErrorKind::UpstreamForbidden
    } else if tls {
        ErrorKind::UpstreamTls
    } else if timed_out {
        ErrorKind::UpstreamTimeout
    } else if connect {
        ErrorKind::UpstreamConnect
    } else {
        ErrorKind::UpstreamProtocol
    };
    let what = if connect { "connect" } else { "request" };
    e.cause_of(EdgeError::new(kind, format!("{what}: {msg}")))
}
