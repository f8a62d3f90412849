//! The cache phase's decisions for one request: look up, judge freshness, and serve, revalidate
//! or fetch. Each branch names its RFC 9111 section.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::request::Parts;
use http::{Method, Request, Response, header};
use http_body_util::BodyExt;
use tracing::Instrument;

use super::entry::StoredObject;
use super::fetch::{FetchJob, strip_for_fill};
use super::flight::{Join, Landing, PassBody, Storage};
use super::key::{CacheKey, StorageKey};
use super::object_response::{self, Source};
use super::overrides::{EdgeTtl, Overrides};
use super::policy::{self, Directives, Usability};
use super::status::{CacheStatus, Detail, Fwd};
use super::{Cache, Found};
use crate::body::{self, EdgeBody};
use crate::ctx::{Phase, RequestCtx};
use crate::error::{EdgeError, ErrorKind};
use crate::hints::HintRelay;
use crate::http::content_length;
use crate::service::CompiledService;
use crate::upstream::{ForwardInfo, Outgoing, TimedBody, forward_headers};

pub struct Served {
    pub response: Response<EdgeBody>,
    pub status: CacheStatus,
}

/// Everything one request's cache phase works with.
struct Turn<'a> {
    cache: &'a Arc<Cache>,
    svc: &'a Arc<CompiledService>,
    key: CacheKey,
    parts: Parts,
    directives: Directives,
    fwd: &'a ForwardInfo<'a>,
    /// A rule's `cache.edge_ttl`, for the fetch to apply to the upstream's response.
    edge_ttl: Option<EdgeTtl>,
}

pub async fn serve(
    cache: &Arc<Cache>,
    svc: &Arc<CompiledService>,
    host: &str,
    req: Request<EdgeBody>,
    fwd: &ForwardInfo<'_>,
    ctx: &mut RequestCtx,
) -> Result<Served, EdgeError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return pass(cache, svc, host, &path, parts, body, fwd, ctx).await;
    }
    let overrides = parts.extensions.get::<Overrides>();
    // A rule's `cache.bypass`: neither looked up nor stored (RFC 9211 `fwd=bypass`).
    if overrides.is_some_and(|o| o.bypass) {
        drop(body);
        return pass(cache, svc, host, &path, parts, body::empty(), fwd, ctx).await;
    }
    let edge_ttl = overrides.and_then(|o| o.edge_ttl.clone());
    let key = CacheKey::new(&svc.name, host, &path).with_extra(&parts.extensions);
    // RFC 9110 §9.3.1/§9.3.2: content in a GET or HEAD has no defined semantics and cannot
    // change the response, which is shared through the cache: it is not forwarded, and the
    // upstream client drops its framing fields with it (see upstream::framing). The listener
    // discards what is left of it, within limits.max_request_body.
    drop(body);
    let honor = svc.policy.honor_client_cache_control;
    let directives = policy::obeyed_request_directives(&parts.headers, honor);
    let turn = Turn { cache, svc, key, parts, directives, fwd, edge_ttl };
    let now = SystemTime::now();
    let started = Instant::now();
    let found = cache.lookup(&turn.key, &turn.parts.headers, now).await;
    ctx.record(Phase::Cache, started.elapsed());
    // RFC 9111 §3.5: a request with Authorization shares nothing unless the response allows it.
    let authorized = turn.parts.headers.contains_key(header::AUTHORIZATION);
    match found {
        Found::Object { storage_key, object, .. } => {
            if authorized && !object.meta.policy.serve_with_authorization {
                return turn.fetch(Some(storage_key), None, Fwd::Bypass, true, ctx).await;
            }
            let age = policy::current_age(&object.meta.policy, object.meta.response_time, now);
            let usability = policy::usability(&object.meta.policy, age, &turn.directives, honor);
            match usability {
                Usability::Fresh { .. } => {
                    let status = CacheStatus::hit(ttl(&object, age));
                    if let Some(served) = turn.serve_stored(&object, status).await {
                        return Ok(served);
                    }
                    // The head is known, its body is gone (evicted): hint while refetching.
                    turn.hint_from_cache(&object);
                    turn.fetch(Some(storage_key), None, Fwd::UriMiss, authorized, ctx).await
                }
                // RFC 5861 §3: serve stale now, revalidate once in the background.
                Usability::Stale { while_revalidate: true, .. } => {
                    turn.revalidate_in_background(storage_key, object.clone());
                    let status = CacheStatus {
                        detail: Some(Detail::StaleWhileRevalidate),
                        ..CacheStatus::hit(ttl(&object, age))
                    };
                    match turn.serve_stored(&object, status).await {
                        Some(served) => Ok(served),
                        None => Err(EdgeError::new(ErrorKind::Internal, "stale object unreadable")),
                    }
                }
                // RFC 9111 §4.3: validate before use.
                _ => {
                    if turn.directives.only_if_cached {
                        return Err(EdgeError::new(ErrorKind::NotCached, "only-if-cached: stored response is stale"));
                    }
                    let client_forced =
                        honor && (turn.directives.no_cache || turn.directives.max_age.is_some_and(|a| a.is_zero()));
                    let fwd = if client_forced { Fwd::Request } else { Fwd::Stale };
                    turn.hint_from_cache(&object);
                    turn.fetch(Some(storage_key.clone()), Some((storage_key, object)), fwd, authorized, ctx).await
                }
            }
        }
        Found::Miss { flight_key, vary_miss } => {
            if turn.directives.only_if_cached {
                // RFC 9111 §5.2.1.7
                return Err(EdgeError::new(ErrorKind::NotCached, "only-if-cached: nothing stored"));
            }
            let fwd = if vary_miss { Fwd::VaryMiss } else { Fwd::UriMiss };
            turn.fetch(Some(flight_key), None, fwd, authorized, ctx).await
        }
    }
}

/// Adds every line of `extra` to `headers`, keeping the lines already there.
fn append_all(headers: &mut http::HeaderMap, extra: &http::HeaderMap) {
    for (name, value) in extra {
        headers.append(name.clone(), value.clone());
    }
}

fn ttl(object: &StoredObject, age: std::time::Duration) -> i64 {
    object.meta.policy.freshness_lifetime.as_secs() as i64 - age.as_secs() as i64
}

impl Turn<'_> {
    async fn serve_stored(&self, object: &Arc<StoredObject>, status: CacheStatus) -> Option<Served> {
        let age = policy::current_age(&object.meta.policy, object.meta.response_time, SystemTime::now());
        let source = Source::Stored { store: self.cache.store.clone(), object: object.clone() };
        let response =
            object_response::respond(&object.meta, source, &self.parts.method, &self.parts.headers, Some(age)).await?;
        Some(Served { response, status })
    }

    async fn fresh_in_store(&self) -> Option<Served> {
        let now = SystemTime::now();
        let Found::Object { object, soft_purged: false, .. } =
            self.cache.lookup(&self.key, &self.parts.headers, now).await
        else {
            return None;
        };
        let age = policy::current_age(&object.meta.policy, object.meta.response_time, now);
        let honor = self.svc.policy.honor_client_cache_control;
        let Usability::Fresh { .. } = policy::usability(&object.meta.policy, age, &self.directives, honor) else {
            return None;
        };
        self.serve_stored(&object, CacheStatus::hit(ttl(&object, age))).await
    }

    /// RFC 8297: the stored page's preload and preconnect links, sent as a `103` now, while
    /// the origin is asked (a miss's fetch or a revalidation); only for the client's own GET.
    fn hint_from_cache(&self, object: &StoredObject) {
        let Some(relay) = self.parts.extensions.get::<HintRelay>() else { return };
        if self.parts.method != Method::GET {
            return;
        }
        relay.from_cache(crate::hints::cached_links(&self.svc.hints, object.meta.status, &object.meta.headers));
    }

    /// `for_client`: the fetch answers this request's client, which then gets the upstream's
    /// 1xx; a background revalidation's client already has its response.
    fn fill_request(&self, stale: Option<&StoredObject>, for_client: bool) -> Outgoing {
        let mut headers = forward_headers(self.parts.headers.clone(), self.fwd);
        strip_for_fill(&mut headers);
        if let Some(stale) = stale {
            headers.extend(policy::revalidation_headers(&stale.meta.headers));
        }
        let path = self.parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let interim = if for_client { self.parts.extensions.get::<HintRelay>().cloned() } else { None };
        Outgoing { method: Method::GET, path_and_query: path.to_string(), headers, body: body::empty(), interim }
    }

    fn job(
        &self,
        flight_key: Option<&StorageKey>,
        stale: Option<(StorageKey, Arc<StoredObject>)>,
        for_client: bool,
    ) -> Result<FetchJob, EdgeError> {
        Ok(FetchJob {
            flight_key: flight_key.cloned(),
            cache: self.cache.clone(),
            svc: self.svc.clone(),
            key: self.key.clone(),
            client_headers: self.parts.headers.clone(),
            request: self.fill_request(stale.as_ref().map(|(_, o)| o.as_ref()), for_client),
            stale,
            edge_ttl: self.edge_ttl.clone(),
        })
    }

    fn revalidate_in_background(&self, storage_key: StorageKey, object: Arc<StoredObject>) {
        // Joining the flight makes the revalidation happen once however many requests see it stale.
        if let Join::Lead(lead) = self.cache.flights.join(&storage_key) {
            match self.job(Some(&storage_key), Some((storage_key.clone(), object)), false) {
                Ok(job) => {
                    tokio::spawn(job.run(lead).in_current_span());
                }
                Err(e) => tracing::warn!(error = %e, "background revalidation not started"),
            }
        }
    }

    /// Fetch (or revalidate) through the flight for `flight_key`, and answer from what lands.
    /// No key: this request fetches alone (another variant, or a body it could not share).
    async fn fetch(
        &self,
        flight_key: Option<StorageKey>,
        stale: Option<(StorageKey, Arc<StoredObject>)>,
        fwd: Fwd,
        solo: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Served, EdgeError> {
        // A key that recently answered with something not storable is not collapsed on.
        let now = Instant::now();
        let join = match &flight_key {
            Some(key) if !solo && !self.cache.flights.is_pass(key, now) => self.cache.flights.join(key),
            _ => Join::Lead(self.cache.flights.solo()),
        };
        let solo = matches!(&join, Join::Lead(lead) if lead.is_solo());
        let (follower, collapsed) = match join {
            Join::Lead(lead) => {
                // The fetch we missed may have stored the object and closed its flight between
                // our lookup and this join: look once more before going upstream.
                if stale.is_none()
                    && !solo
                    && let Some(served) = self.fresh_in_store().await
                {
                    return Ok(served);
                }
                let follower = lead.follower();
                tokio::spawn(self.job(flight_key.as_ref(), stale.clone(), true)?.run(lead).in_current_span());
                (follower, false)
            }
            Join::Follow(f) => (f, true),
        };
        let started = Instant::now();
        let landing = follower.wait().await;
        ctx.record(Phase::Upstream, started.elapsed());
        let Some(landing) = landing else {
            return Err(EdgeError::new(ErrorKind::Internal, "fetch ended without a response"));
        };
        let stale_object = stale.map(|(_, o)| o);
        self.answer(&landing, stale_object, fwd, collapsed, ctx).await
    }

    async fn answer(
        &self,
        landing: &Landing,
        stale: Option<Arc<StoredObject>>,
        fwd: Fwd,
        collapsed: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Served, EdgeError> {
        let method = &self.parts.method;
        match landing {
            Landing::Shared(shared) => {
                let vary_mismatch = shared
                    .vary
                    .as_ref()
                    .is_some_and(|(fields, vk)| policy::vary_key(fields, &self.parts.headers) != *vk);
                let reader = if vary_mismatch { None } else { shared.body.reader() };
                let Some(reader) = reader else {
                    // Another variant, or joined too late to read from the start: fetch alone.
                    return Box::pin(self.fetch(None, None, Fwd::VaryMiss, true, ctx)).await;
                };
                let status = CacheStatus {
                    fwd: Some(fwd),
                    fwd_status: Some(shared.meta.status.as_u16()),
                    // RFC 9211 §2.5: `stored` only when it is; a body still streaming in says
                    // `detail=storing`.
                    stored: shared.storage == Storage::Stored,
                    collapsed,
                    ttl: Some(shared.ttl_secs),
                    detail: (shared.storage == Storage::Storing).then_some(Detail::Storing),
                    ..CacheStatus::default()
                };
                let source = Source::Streaming { body: reader.into_body(), len: content_length(&shared.meta.headers) };
                let age = Some(shared.meta.policy.corrected_initial_age);
                let mut response = object_response::respond(&shared.meta, source, method, &self.parts.headers, age)
                    .await
                    .ok_or_else(|| EdgeError::new(ErrorKind::Internal, "streaming response unreadable"))?;
                if !collapsed {
                    append_all(response.headers_mut(), &shared.for_requester);
                }
                Ok(Served { response, status })
            }
            Landing::Revalidated(revalidated) => {
                if collapsed && !revalidated.stored {
                    // The update answers the leader's request only (it is private now, or
                    // varies otherwise): this waiter fetches its own.
                    return Box::pin(self.fetch(Some(self.key.primary.clone()), None, fwd, true, ctx)).await;
                }
                let object = &revalidated.object;
                let age = policy::current_age(&object.meta.policy, object.meta.response_time, SystemTime::now());
                let status = CacheStatus {
                    fwd: Some(fwd),
                    fwd_status: Some(304),
                    stored: revalidated.stored,
                    collapsed,
                    ttl: Some(ttl(object, age)),
                    ..CacheStatus::default()
                };
                let mut served = self
                    .serve_stored(object, status)
                    .await
                    .ok_or_else(|| EdgeError::new(ErrorKind::Internal, "revalidated object unreadable"))?;
                // RFC 9111 §3.2: the 304's Set-Cookie is this client's, whatever it is answered
                // with (a 200 from the store, or its own 304).
                if !collapsed {
                    append_all(served.response.headers_mut(), &revalidated.for_requester);
                }
                Ok(served)
            }
            Landing::Pass(pass) => {
                if collapsed && !pass.shareable {
                    // Not storable, so possibly personal: this waiter fetches its own.
                    return Box::pin(self.fetch(Some(self.key.primary.clone()), None, fwd, true, ctx)).await;
                }
                if pass.server_error
                    && let Some(served) = self.stale_on_error(stale.as_ref(), Some(pass.status.as_u16())).await
                {
                    return Ok(served);
                }
                let body = match &pass.body {
                    PassBody::Buffered(b) => body::full(b.clone()),
                    PassBody::Once(slot) => match slot.lock().ok().and_then(|mut s| s.take()) {
                        Some(b) => b,
                        // Taken by the first waiter: this one fetches its own copy.
                        None => return Box::pin(self.fetch(None, None, fwd, true, ctx)).await,
                    },
                };
                let headers = pass.headers.clone();
                let mut response = Response::new(if *method == Method::HEAD { body::empty() } else { body });
                *response.status_mut() = pass.status;
                *response.headers_mut() = headers;
                let status = CacheStatus {
                    fwd: Some(fwd),
                    fwd_status: Some(pass.status.as_u16()),
                    collapsed,
                    ..CacheStatus::default()
                };
                Ok(Served { response, status })
            }
            Landing::Failed(e) => match self.stale_on_error(stale.as_ref(), None).await {
                Some(served) => Ok(served),
                None => Err(e.clone()),
            },
            // The body broke off before the answer: the same error for every waiter (or the
            // stale copy, RFC 5861 §4), saying what the origin answered and what happened.
            Landing::Broken(broken) => {
                let fwd_status = Some(broken.status.as_u16());
                if let Some(served) = self.stale_on_error(stale.as_ref(), fwd_status).await {
                    return Ok(served);
                }
                let status = CacheStatus {
                    fwd: Some(fwd),
                    fwd_status,
                    collapsed,
                    detail: Some(broken.detail),
                    ..CacheStatus::default()
                };
                Err(broken.error.clone().with_cache_status(status))
            }
        }
    }

    /// RFC 5861 §4 / RFC 9111 §4.2.4: a stale response may stand in for an error when allowed.
    async fn stale_on_error(&self, stale: Option<&Arc<StoredObject>>, fwd_status: Option<u16>) -> Option<Served> {
        let object = stale?;
        let age = policy::current_age(&object.meta.policy, object.meta.response_time, SystemTime::now());
        let honor = self.svc.policy.honor_client_cache_control;
        let rp = &object.meta.policy;
        let by_service = self.svc.max_stale_on_error.is_some_and(|max| {
            let staleness = age.saturating_sub(rp.freshness_lifetime);
            !rp.must_revalidate && !rp.no_cache && staleness <= max
        });
        if !by_service && !policy::stale_on_error_ok(rp, age, &self.directives, honor) {
            return None;
        }
        let status = CacheStatus {
            fwd: Some(Fwd::Stale),
            fwd_status,
            ttl: Some(ttl(object, age)),
            detail: Some(Detail::StaleIfError),
            ..CacheStatus::default()
        };
        self.serve_stored(object, status).await
    }
}

/// Methods the cache does not serve go straight upstream with their body; a successful unsafe
/// one invalidates what it names (RFC 9111 §4.4).
#[allow(clippy::too_many_arguments)]
async fn pass(
    cache: &Arc<Cache>,
    svc: &Arc<CompiledService>,
    host: &str,
    path: &str,
    parts: Parts,
    body: EdgeBody,
    fwd: &ForwardInfo<'_>,
    ctx: &mut RequestCtx,
) -> Result<Served, EdgeError> {
    let interim = parts.extensions.get::<HintRelay>().cloned();
    let headers = forward_headers(parts.headers, fwd);
    let out = Outgoing { method: parts.method.clone(), path_and_query: path.to_string(), headers, body, interim };
    let key = CacheKey::new(&svc.name, host, path);
    let started = Instant::now();
    let result = svc.upstream.send(key.primary.as_bytes(), out).await;
    ctx.record(Phase::Upstream, started.elapsed());
    let resp = result.map_err(|e| {
        // A body the client broke off is not an upstream error.
        if e.side() != crate::error::Side::Client {
            metrics::counter!(crate::metrics::UPSTREAM_ERRORS, "kind" => e.kind.as_str()).increment(1);
        }
        e.within(format!("service {}", svc.name))
    })?;
    let (mut resp_parts, incoming) = resp.into_parts();
    // RFC 9111 §4.4: unsafe methods invalidate; a bypassed GET or HEAD (safe) does not.
    let unsafe_method = !parts.method.is_safe();
    if unsafe_method && (resp_parts.status.is_success() || resp_parts.status.is_redirection()) {
        let targets = policy::invalidation_targets(host, path, &resp_parts.headers);
        cache.invalidate(&svc.name, host, &targets);
    }
    policy::strip_hop_by_hop(&mut resp_parts.headers);
    let why = if unsafe_method || parts.method == Method::OPTIONS || parts.method == Method::TRACE {
        Fwd::Method
    } else {
        Fwd::Bypass
    };
    let status = CacheStatus { fwd_status: Some(resp_parts.status.as_u16()), ..CacheStatus::forward(why) };
    let up = &svc.upstream;
    let body = TimedBody::new(incoming, up.between_bytes_timeout, up.total_timeout, started.into()).boxed_unsync();
    Ok(Served { response: Response::from_parts(resp_parts, body), status })
}
