//! The fetch behind a miss or a revalidation: one upstream request, its response classified
//! (revalidated, storable, pass, failed), landed for every waiter, and — when storable — stored.
//!
//! A storable body known to end within `cache.buffer_before_answer` (its `Content-Length`, or a
//! chunked body that ends within it) is read whole before anything lands, then stored, then
//! landed: `Cache-Status: stored` is true when the head goes out (RFC 9211 §2.5), and a body
//! that breaks off lands as [`Landing::Broken`]: every waiter gets a clean 502/504 (or its stale
//! copy), nothing is stored. nginx's `proxy_buffering` reads ahead the same way. A larger body
//! lands at once and streams into the store chunk by chunk while the waiters read it
//! (`detail=storing`); if it breaks off the readers see it cut off. The object entry is written
//! last, so a half-fetched object is never visible; chunks of an abandoned fetch are removed.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, Method, StatusCode, header};
use http_body_util::BodyExt;

use super::Cache;
use super::entry::{BodyLocation, Entry, ObjectMeta, StoredObject, VariantIndex};
use super::flight::{Broken, Landing, Lead, PassBody, PassResponse, Revalidated, SharedResponse, Storage};
use super::key::{CacheKey, StorageKey, chunk_key};
use super::policy;
use super::shared_body::{FetchAborted, SharedBody};
use super::status::Detail;
use crate::body::BoxError;
use crate::error::{EdgeError, ErrorKind};
use crate::http::content_length;
use crate::service::CompiledService;
use crate::upstream::{BetweenBytesTimeout, Outgoing, TimedBody, TotalTimeout};

/// Responses up to this size that are not stored are read whole and shared with every waiter.
const BUFFER_PASS_BODY: u64 = 64 * 1024;
/// How far the slowest reader may fall behind a fetch that is too large to store.
const STREAM_WINDOW: usize = 1 << 20;

pub struct FetchJob {
    pub cache: Arc<Cache>,
    pub svc: Arc<CompiledService>,
    pub key: CacheKey,
    /// The leading client's request headers (for Vary and Authorization decisions).
    pub client_headers: HeaderMap,
    /// The upstream request, conditional when revalidating.
    pub request: Outgoing,
    /// The stored object being revalidated, and its storage key.
    pub stale: Option<(StorageKey, Arc<StoredObject>)>,
    /// The key waiters collapse on (and a pass mark is recorded under); `None` for a fetch
    /// that answers its own request alone.
    pub flight_key: Option<StorageKey>,
    /// A rule's `cache.edge_ttl`, applied to the response head before it is judged.
    pub edge_ttl: Option<super::overrides::EdgeTtl>,
}

/// One upstream exchange: the response head (hop-by-hop fields stripped), its body, and the
/// times RFC 9111 §4.2.3 needs.
struct Exchange {
    parts: http::response::Parts,
    body: TimedBody<crate::upstream::UpstreamBody>,
    times: (SystemTime, SystemTime),
}

impl FetchJob {
    pub async fn run(self, lead: Lead) {
        let FetchJob { cache, svc, key, client_headers, request, stale, flight_key, edge_ttl } = self;
        // Kept before the request goes: a 304 that selects nothing is asked again without it.
        let retry = stale.as_ref().map(|_| unconditional(&request));
        let fetcher = Fetcher { cache, svc, key, client_headers, stale, flight_key, edge_ttl };
        fetcher.run(lead, request, retry).await;
    }
}

/// A fetch job once its request is sent: what the response is judged and stored with.
struct Fetcher {
    cache: Arc<Cache>,
    svc: Arc<CompiledService>,
    key: CacheKey,
    client_headers: HeaderMap,
    stale: Option<(StorageKey, Arc<StoredObject>)>,
    flight_key: Option<StorageKey>,
    edge_ttl: Option<super::overrides::EdgeTtl>,
}

impl Fetcher {
    async fn run(self, mut lead: Lead, request: Outgoing, retry: Option<Outgoing>) {
        let Some(mut ex) = self.exchange(&mut lead, request).await else { return };
        if ex.parts.status == StatusCode::NOT_MODIFIED {
            match self.not_modified(&mut lead, ex, retry).await {
                Some(next) => ex = next,
                None => return,
            }
        }
        self.land_response(lead, ex).await;
    }

    /// Sends `request`; on failure lands the error for every waiter and returns `None`.
    async fn exchange(&self, lead: &mut Lead, request: Outgoing) -> Option<Exchange> {
        let request_time = SystemTime::now();
        let started = std::time::Instant::now();
        let resp = match self.svc.upstream.send(self.key.primary.as_bytes(), request).await {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!(crate::metrics::UPSTREAM_ERRORS, "kind" => e.kind.as_str()).increment(1);
                lead.close();
                lead.land(Landing::Failed(e.within(format!("service {}", self.svc.name))));
                return None;
            }
        };
        let response_time = SystemTime::now();
        let (mut parts, incoming) = resp.into_parts();
        policy::strip_hop_by_hop(&mut parts.headers);
        if let Some(ttl) = &self.edge_ttl {
            ttl.apply(parts.status, &mut parts.headers);
        }
        let up = &self.svc.upstream;
        let body = TimedBody::new(incoming, up.between_bytes_timeout, up.total_timeout, started.into());
        Some(Exchange { parts, body, times: (request_time, response_time) })
    }

    /// A 304 (RFC 9111 §4.3.3, §4.3.4). When it selects the stored response, the stored
    /// response is updated and served (`None`: landed). When it does not (its validators name
    /// another representation), nothing stored is updated ("the cache MUST NOT use the new
    /// response to update any stored responses", §4.3.4) and nothing can answer the request
    /// from it, so the request is sent once more without validators (RFC 2616 §10.3.5 spelled
    /// it out: "the cache MUST disregard the response and repeat the request without the
    /// conditional"); that answer is returned. A 304 to a request this cache did not make
    /// conditional (a fill, or that repeat) answers nothing either: a clean 502, never a loop.
    async fn not_modified(&self, lead: &mut Lead, ex: Exchange, retry: Option<Outgoing>) -> Option<Exchange> {
        let (Some((stale_key, stale)), Some(retry)) = (&self.stale, retry) else {
            self.fail(lead, "304 to an unconditional request");
            return None;
        };
        let ctx = self.ctx();
        if policy::not_modified_matches(&stale.meta.headers, &ex.parts.headers) {
            // Store the refreshed object before the flight closes: a request arriving in between
            // would otherwise find the stale copy and no flight, and revalidate again.
            let landing = ctx.revalidated(stale_key, stale, &ex.parts.headers, ex.times.0, ex.times.1);
            lead.close();
            lead.land(landing);
            return None;
        }
        tracing::warn!(service = %self.svc.name, url = %self.key.url, "304 does not match the stored response; asking again unconditionally");
        metrics::counter!(crate::metrics::UPSTREAM_ERRORS, "kind" => "not_modified_mismatch").increment(1);
        drop(ex);
        let again = self.exchange(lead, retry).await?;
        if again.parts.status == StatusCode::NOT_MODIFIED {
            self.fail(lead, "304 to an unconditional request (after a 304 that matched nothing)");
            return None;
        }
        Some(again)
    }

    fn fail(&self, lead: &mut Lead, why: &str) {
        let e = EdgeError::new(ErrorKind::UpstreamProtocol, format!("service {}: {why}", self.svc.name));
        lead.close();
        lead.land(Landing::Failed(e));
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx { cache: &self.cache, svc: &self.svc, key: &self.key, client_headers: &self.client_headers }
    }

    /// A full response: stored while it streams when storable, else passed to the waiters.
    async fn land_response(&self, mut lead: Lead, ex: Exchange) {
        let Exchange { parts, body, times } = ex;
        let (status, mut headers) = (parts.status, parts.headers);
        let storable = policy::storable(&Method::GET, &self.client_headers, status, &headers, &self.svc.policy);
        let too_big = content_length(&headers).is_some_and(|n| n > self.svc.max_object_size);
        match storable {
            Ok(()) if !too_big => {
                if let Some(key) = &self.flight_key {
                    self.cache.flights.clear_pass(key);
                }
                // With `store_set_cookie` the response is stored, its cookie is not: it goes to
                // the client whose request fetched it, as Cloudflare does for cached responses.
                let for_requester = policy::take_per_request(&mut headers);
                let read_ahead = self.cache.buffer_before_answer;
                self.ctx().store_streaming(&mut lead, status, headers, for_requester, body, times, read_ahead).await;
            }
            _ => {
                let reason = if too_big { "too_big" } else { storable.err().map_or("", |r| r.as_str()) };
                tracing::debug!(service = %self.svc.name, url = %self.key.url, reason, "not storing");
                if !status.is_server_error()
                    && let Some(key) = &self.flight_key
                {
                    self.cache.flights.mark_pass(key, std::time::Instant::now());
                }
                lead.close();
                lead.land(Landing::Pass(pass_response(status, headers, body).await));
            }
        }
    }
}

/// The revalidation request without its validators (RFC 9110 §13.1.2, §13.1.3).
fn unconditional(request: &Outgoing) -> Outgoing {
    let mut headers = request.headers.clone();
    headers.remove(header::IF_NONE_MATCH);
    headers.remove(header::IF_MODIFIED_SINCE);
    Outgoing {
        method: request.method.clone(),
        path_and_query: request.path_and_query.clone(),
        headers,
        body: crate::body::empty(),
        interim: request.interim.clone(),
    }
}

struct Ctx<'a> {
    cache: &'a Arc<Cache>,
    svc: &'a Arc<CompiledService>,
    key: &'a CacheKey,
    client_headers: &'a HeaderMap,
}

impl Ctx<'_> {
    /// RFC 9111 §4.3.4: a 304 that selected the stored response updates its headers and freshness,
    /// unless the update makes it unstorable (then the stored copy is removed, §3); the 304's
    /// `Set-Cookie` goes to the requesting client only (§3.2, see [`policy::refresh`]).
    fn revalidated(
        &self,
        stale_key: &StorageKey,
        stale: &Arc<StoredObject>,
        not_modified: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Landing {
        let mut meta = stale.meta.clone();
        policy::merge_not_modified(&mut meta.headers, not_modified);
        meta.policy =
            policy::response_policy(meta.status, &meta.headers, request_time, response_time, &self.svc.policy);
        meta.request_time = request_time;
        meta.response_time = response_time;
        meta.tags = policy::tags(&meta.headers);
        let refresh =
            policy::refresh(&stale.meta.headers, &meta.headers, meta.status, self.client_headers, &self.svc.policy);
        let object = Arc::new(StoredObject { meta, body: stale.body.clone() });
        let for_requester = policy::per_request_fields(not_modified);
        let stored = match refresh {
            policy::Refresh::Update => {
                self.cache.store.insert(stale_key.clone(), Entry::Object(object.clone()));
                true
            }
            policy::Refresh::Remove(reason) => {
                tracing::debug!(service = %self.svc.name, url = %self.key.url, reason, "304 ends the stored response");
                self.cache.store.remove(stale_key);
                false
            }
            policy::Refresh::Keep => false,
        };
        Landing::Revalidated(Revalidated { object, stored, for_requester })
    }

    /// `bound`: read a body known to end within it whole before landing (0: stream at once).
    #[allow(clippy::too_many_arguments)]
    async fn store_streaming<B>(
        &self,
        lead: &mut Lead,
        status: StatusCode,
        headers: HeaderMap,
        for_requester: HeaderMap,
        mut body: B,
        times: (SystemTime, SystemTime),
        bound: u64,
    ) where
        B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        let mut plan = self.plan(status, headers, for_requester, times);
        // Requests arriving while the body streams may join only a response they could have
        // used from the store: one that arrived fresh and needs no revalidation.
        let rp = plan.meta.policy;
        if rp.no_cache || rp.freshness_lifetime <= rp.corrected_initial_age {
            lead.close();
        }
        let mut head = None;
        if read_ahead_applies(bound, content_length(&plan.meta.headers)) {
            match read_ahead(&mut body, bound).await {
                ReadAhead::Whole(whole) => return self.store_whole(lead, plan, whole).await,
                ReadAhead::Partial(read) => head = Some(read.freeze()),
                ReadAhead::Broken { read, error } => {
                    let broken = self.broken(status, read, content_length(&plan.meta.headers), error);
                    tracing::warn!(service = %self.svc.name, url = %self.key.url, error = %broken.error, "upstream body broke off before the answer; nothing stored");
                    lead.land(Landing::Broken(broken));
                    return;
                }
            }
        }
        let shared = SharedBody::new(STREAM_WINDOW);
        lead.land(Landing::Shared(plan.landing(shared.clone(), Storage::Storing)));
        self.stream_into_store(lead, plan, shared, head, body).await;
        lead.close();
    }

    /// What the landing and the stored object share: the storage key, the metadata, the TTL.
    fn plan(
        &self,
        status: StatusCode,
        headers: HeaderMap,
        for_requester: HeaderMap,
        (request_time, response_time): (SystemTime, SystemTime),
    ) -> Plan {
        let vary = match policy::vary_fields(&headers) {
            Ok(fields) if fields.is_empty() => None,
            Ok(fields) => {
                let vk = policy::vary_key(&fields, self.client_headers);
                Some((fields, vk))
            }
            // storable() refuses Vary: *; keep the compiler honest anyway.
            Err(_) => None,
        };
        let storage_key = match &vary {
            Some((_, vk)) => self.key.variant(vk),
            None => self.key.primary.clone(),
        };
        let rp = policy::response_policy(status, &headers, request_time, response_time, &self.svc.policy);
        let ttl_secs = rp.freshness_lifetime.as_secs() as i64 - rp.corrected_initial_age.as_secs() as i64;
        let meta = ObjectMeta {
            status,
            tags: policy::tags(&headers),
            headers,
            request_time,
            response_time,
            policy: rp,
            body_len: 0,
        };
        Plan { vary, storage_key, meta, ttl_secs, for_requester }
    }

    /// A body read whole: stored before the head goes out, so `stored` is true when said.
    async fn store_whole(&self, lead: &mut Lead, mut plan: Plan, whole: Bytes) {
        let storage = if whole.len() as u64 > self.svc.max_object_size {
            tracing::debug!(service = %self.svc.name, url = %self.key.url, "object over max_object_size; not stored");
            Storage::NotStored
        } else {
            let store = &self.cache.store;
            let object_id = rand_id();
            let mut pending = BytesMut::from(&whole[..]);
            let mut chunks = 0;
            put_chunks(store, object_id, &mut chunks, &mut pending);
            self.put_object(&plan, object_id, chunks, pending, whole.len() as u64);
            Storage::Stored
        };
        let shared = SharedBody::new(STREAM_WINDOW);
        if !whole.is_empty() {
            // Retained whole (nothing read yet): never waits.
            shared.push(whole).await;
        }
        shared.finish(Ok(()));
        lead.land(Landing::Shared(plan.landing(shared, storage)));
        lead.close();
    }

    /// The error every waiter gets for a body that broke off while read ahead.
    fn broken(&self, status: StatusCode, read: u64, declared: Option<u64>, error: BoxError) -> Broken {
        let (kind, detail) = body_failure(&error);
        let of = declared.map_or(String::new(), |n| format!(" of {n}"));
        let mut edge = EdgeError::new(
            kind,
            format!("service {}: {status} body broke off after {read}{of} bytes: {error}", self.svc.name),
        );
        edge.cause = Some(Arc::from(error));
        Broken { status, error: edge, detail }
    }

    /// A body larger than the read-ahead: streams to the readers while its chunks go to the
    /// store; the object entry is written once the body is complete.
    async fn stream_into_store<B>(
        &self,
        lead: &mut Lead,
        plan: Plan,
        shared: Arc<SharedBody>,
        mut head: Option<Bytes>,
        mut body: B,
    ) where
        B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        let store = &self.cache.store;
        let object_id: u64 = rand_id();
        let mut pending = BytesMut::new();
        let mut chunks: u32 = 0;
        let mut total: u64 = 0;
        let mut storing = true;
        // `Ok(Some(last))`: the body ended with `last`, which goes to the readers only once the
        // object is in the store. A client that reads the last byte and asks again at once
        // then finds the object stored, instead of the flight of a fetch that has ended.
        let result = loop {
            let data = match head.take() {
                Some(data) => data,
                None => match body.frame().await {
                    None => break Ok(None),
                    Some(Err(e)) => break Err(FetchAborted(format!("body: {e}"))),
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                },
            };
            total += data.len() as u64;
            if storing && total > self.svc.max_object_size {
                // Unknown length and over the bound: stream on, store nothing.
                storing = false;
                lead.close();
                shared.stop_retaining();
                remove_chunks(store, object_id, chunks);
                tracing::debug!(service = %self.svc.name, url = %self.key.url, "object over max_object_size; not stored");
            }
            if storing {
                pending.extend_from_slice(&data);
                put_chunks(store, object_id, &mut chunks, &mut pending);
                if body.is_end_stream() {
                    break Ok(Some(data));
                }
            }
            if !shared.push(data).await {
                break Err(FetchAborted("every reader left".into()));
            }
        };
        match result {
            Ok(last) if storing => {
                self.put_object(&plan, object_id, chunks, pending, total);
                // From here requests find the object in the store.
                lead.close();
                // The readers still take the last bytes; the object is stored whether they do
                // or not.
                if let Some(last) = last {
                    shared.push(last).await;
                }
                shared.finish(Ok(()));
            }
            Ok(_) => shared.finish(Ok(())),
            Err(e) => {
                tracing::warn!(service = %self.svc.name, url = %self.key.url, error = %e, "fetch aborted; nothing stored");
                remove_chunks(store, object_id, chunks);
                shared.finish(Err(e));
            }
        }
    }

    /// Writes the object entry (and the Vary index) once every chunk is in: from here the
    /// object is visible, never half of it.
    fn put_object(&self, plan: &Plan, object_id: u64, mut chunks: u32, pending: BytesMut, total: u64) {
        let store = &self.cache.store;
        let location = if chunks == 0 {
            BodyLocation::Inline(pending.freeze())
        } else {
            if !pending.is_empty() {
                store.insert(chunk_key(object_id, chunks), Entry::Chunk(pending.freeze()));
                chunks += 1;
            }
            BodyLocation::Chunked { object_id, chunk_size: store.chunk_size() as u32, chunks }
        };
        let meta = ObjectMeta { body_len: total, ..plan.meta.clone() };
        let obj = Arc::new(StoredObject { meta, body: location });
        if let Some((fields, _)) = &plan.vary {
            let index = VariantIndex::new(fields.clone(), plan.meta.request_time, plan.meta.tags.clone());
            store.insert(self.key.primary.clone(), Entry::Variants(Arc::new(index)));
        }
        store.insert(plan.storage_key.clone(), Entry::Object(obj));
        metrics::counter!(crate::metrics::STORED_OBJECTS).increment(1);
    }
}

/// A response on its way to the store.
struct Plan {
    vary: Option<(Vec<HeaderName>, String)>,
    storage_key: StorageKey,
    meta: ObjectMeta,
    ttl_secs: i64,
    for_requester: HeaderMap,
}

impl Plan {
    fn landing(&mut self, body: Arc<SharedBody>, storage: Storage) -> SharedResponse {
        SharedResponse {
            meta: Arc::new(self.meta.clone()),
            body,
            vary: self.vary.clone(),
            storage,
            ttl_secs: self.ttl_secs,
            for_requester: std::mem::take(&mut self.for_requester),
        }
    }
}

/// Moves every whole chunk of `pending` into the store.
fn put_chunks(store: &super::store::Store, object_id: u64, chunks: &mut u32, pending: &mut BytesMut) {
    let chunk_size = store.chunk_size();
    while pending.len() >= chunk_size {
        let chunk = pending.split_to(chunk_size).freeze();
        store.insert(chunk_key(object_id, *chunks), Entry::Chunk(chunk));
        *chunks += 1;
    }
}

/// What a body that broke off is to the client: a timeout of ours is a 504
/// (`between_bytes_timeout`, `total_timeout`), anything else (a reset, a close short of
/// `Content-Length`, malformed chunking: RFC 9112 §8) a 502. Told by the error's type, never
/// its text.
fn body_failure(error: &BoxError) -> (ErrorKind, Detail) {
    if error.is::<BetweenBytesTimeout>() || error.is::<TotalTimeout>() {
        (ErrorKind::UpstreamTimeout, Detail::BodyTimeout)
    } else {
        (ErrorKind::UpstreamProtocol, Detail::BodyIncomplete)
    }
}

/// Whether a body to be stored is read whole before the answer: the read-ahead is on and the
/// body is not declared larger than it (a chunked body is read up to the bound, and streams
/// on if it goes past it).
fn read_ahead_applies(bound: u64, declared: Option<u64>) -> bool {
    bound > 0 && declared.is_none_or(|n| n <= bound)
}

/// How a read-ahead ended.
enum ReadAhead {
    /// The body ended: all of it.
    Whole(Bytes),
    /// Past the bound and not ended: what was read so far; the rest streams.
    Partial(BytesMut),
    /// The body broke off after `read` bytes.
    Broken { read: u64, error: BoxError },
}

/// Reads `body` until it ends or more than `bound` bytes have come.
async fn read_ahead<B>(body: &mut B, bound: u64) -> ReadAhead
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut read = BytesMut::new();
    loop {
        match body.frame().await {
            None => return ReadAhead::Whole(read.freeze()),
            Some(Err(error)) => return ReadAhead::Broken { read: read.len() as u64, error },
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
                if body.is_end_stream() {
                    return ReadAhead::Whole(read.freeze());
                }
                if read.len() as u64 > bound {
                    return ReadAhead::Partial(read);
                }
            }
        }
    }
}

/// Store a representation derived from a cached one (a transform's output: an encoded or
/// transcoded variant) under `key.primary` while it streams to the waiters of `lead`, as a
/// fetch stores an upstream response. `headers` must carry no `Vary`: a variant's key already
/// names what it varies on.
pub async fn store_derived(
    cache: &Arc<Cache>,
    svc: &Arc<CompiledService>,
    key: &CacheKey,
    mut lead: Lead,
    headers: HeaderMap,
    body: crate::body::EdgeBody,
) {
    let now = SystemTime::now();
    let no_client_headers = HeaderMap::new();
    let ctx = Ctx { cache, svc, key, client_headers: &no_client_headers };
    // A variant is made here from a stored base, not read from an upstream that can break off:
    // it streams as it is made (time to first byte of a large encode), never read ahead.
    ctx.store_streaming(&mut lead, StatusCode::OK, headers, HeaderMap::new(), body, (now, now), 0).await;
}

async fn pass_response(
    status: StatusCode,
    headers: HeaderMap,
    body: TimedBody<crate::upstream::UpstreamBody>,
) -> PassResponse {
    let server_error = status.is_server_error();
    let private = policy::response_directives(&headers).0.private;
    let small = content_length(&headers).is_some_and(|n| n <= BUFFER_PASS_BODY);
    let body = if small {
        match body.collect().await {
            Ok(b) => PassBody::Buffered(b.to_bytes()),
            Err(e) => {
                tracing::warn!(error = %e, "upstream body failed");
                PassBody::Buffered(Bytes::new())
            }
        }
    } else {
        PassBody::Once(Mutex::new(Some(body.boxed_unsync())))
    };
    PassResponse { status, headers, body, server_error, shareable: server_error && !private }
}

fn remove_chunks(store: &super::store::Store, object_id: u64, chunks: u32) {
    for i in 0..chunks {
        store.remove(&chunk_key(object_id, i));
    }
}

/// An object id that is unique across restarts: chunks of an old version are never read as a new one's.
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

/// Headers removed from a client request before a cache fill: the cache fetches the whole,
/// unconditional object and answers the client's conditionals and ranges itself. Method
/// overrides go too: a fill is a GET whose answer is stored for everyone under the GET's key,
/// and frameworks (Symfony, Laravel, Express's method-override) would run it as the
/// overriding method (a DELETE's or POST's answer stored as the page).
pub fn strip_for_fill(headers: &mut HeaderMap) {
    const FILL_STRIP: [HeaderName; 9] = [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
        header::RANGE,
        HeaderName::from_static("x-http-method-override"),
        HeaderName::from_static("x-http-method"),
        HeaderName::from_static("x-method-override"),
    ];
    for name in FILL_STRIP {
        headers.remove(name);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod read_ahead_tests {
    use std::time::Duration;

    use http_body::Frame;
    use http_body_util::StreamBody;

    use super::*;

    #[test]
    fn which_bodies_are_read_whole_before_the_answer() {
        // (case, buffer_before_answer, Content-Length, read ahead)
        let cases = [
            ("RFC 9112 §6.3: a declared length within the bound", 64, Some(64), true),
            ("a declared length past the bound streams at once (time to first byte)", 64, Some(65), false),
            ("RFC 9112 §7.1: chunked, length unknown: read up to the bound", 64, None, true),
            ("0 turns it off", 0, Some(1), false),
            ("0 turns it off for chunked bodies too", 0, None, false),
            ("an empty body", 64, Some(0), true),
        ];
        for (case, bound, declared, want) in cases {
            assert_eq!(read_ahead_applies(bound, declared), want, "{case}");
        }
    }

    fn body(frames: Vec<Result<&'static [u8], BoxError>>) -> crate::body::EdgeBody {
        let frames = frames.into_iter().map(|f| f.map(|b| Frame::data(Bytes::from_static(b))));
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn a_read_ahead_ends_whole_partial_or_broken() {
        let mut whole = body(vec![Ok(b"0123"), Ok(b"4567")]);
        assert!(matches!(read_ahead(&mut whole, 8).await, ReadAhead::Whole(b) if &b[..] == b"01234567"));
        let mut past = body(vec![Ok(b"0123"), Ok(b"45678"), Ok(b"9")]);
        assert!(matches!(read_ahead(&mut past, 8).await, ReadAhead::Partial(b) if &b[..] == b"012345678"));
        // What is left streams on from where the read-ahead stopped.
        assert_eq!(&past.frame().await.unwrap().unwrap().into_data().unwrap()[..], b"9");
        let reset: BoxError = "connection reset".into();
        let mut broken = body(vec![Ok(b"0123"), Err(reset)]);
        assert!(matches!(read_ahead(&mut broken, 8).await, ReadAhead::Broken { read: 4, .. }));
    }

    #[test]
    fn a_timeout_is_told_apart_from_a_reset() {
        // (case, body error, status the client gets, Cache-Status detail)
        let cases: [(&str, BoxError, u16, Detail); 3] = [
            (
                "RFC 9110 §15.6.5: no byte within between_bytes_timeout",
                Box::new(BetweenBytesTimeout(Duration::from_secs(1))),
                504,
                Detail::BodyTimeout,
            ),
            ("past total_timeout", Box::new(TotalTimeout(Duration::from_secs(1))), 504, Detail::BodyTimeout),
            (
                "RFC 9110 §15.6.3: reset or closed short of Content-Length (RFC 9112 §8)",
                "connection reset".into(),
                502,
                Detail::BodyIncomplete,
            ),
        ];
        for (case, error, status, detail) in cases {
            let (kind, got) = body_failure(&error);
            assert_eq!((kind.status().as_u16(), got), (status, detail), "{case}");
        }
    }
}

#[cfg(test)]
mod fill_tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_fill_is_an_unconditional_whole_get() {
        let mut h = HeaderMap::new();
        for name in [
            // RFC 9110 §13.1: the cache answers the client's preconditions itself.
            "if-none-match",
            "if-modified-since",
            "if-match",
            "if-unmodified-since",
            "if-range",
            // RFC 9110 §14.2: and its ranges, from the whole object.
            "range",
            // Not HTTP at all: method overrides would make the stored GET answer another method's.
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
        ] {
            h.insert(name, HeaderValue::from_static("x"));
        }
        h.insert("accept", HeaderValue::from_static("text/html"));
        strip_for_fill(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }
}
