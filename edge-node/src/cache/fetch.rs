//! The fetch behind a miss or a revalidation: one upstream request, its response classified
//! (revalidated, storable, pass, failed), landed for every waiter, and — when storable — streamed
//! into the store chunk by chunk while the waiters read it. The object entry is written last, so a
//! half-fetched object is never visible; chunks of an abandoned fetch are removed.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, Method, StatusCode, header};
use http_body_util::BodyExt;

use super::Cache;
use super::entry::{BodyLocation, Entry, ObjectMeta, StoredObject, VariantIndex};
use super::flight::{Landing, Lead, PassBody, PassResponse, Revalidated, SharedResponse};
use super::key::{CacheKey, chunk_key};
use super::policy;
use super::shared_body::{FetchAborted, SharedBody};
use crate::error::{EdgeError, ErrorKind};
use crate::service::CompiledService;
use crate::upstream::{Outgoing, TimedBody};

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
    pub stale: Option<(String, Arc<StoredObject>)>,
    /// The key waiters collapse on (and a pass mark is recorded under).
    pub flight_key: String,
}

/// One upstream exchange: the response head (hop-by-hop fields stripped), its body, and the
/// times RFC 9111 §4.2.3 needs.
struct Exchange {
    parts: http::response::Parts,
    body: TimedBody<hyper::body::Incoming>,
    times: (SystemTime, SystemTime),
}

impl FetchJob {
    pub async fn run(self, lead: Lead) {
        let FetchJob { cache, svc, key, client_headers, request, stale, flight_key } = self;
        // Kept before the request goes: a 304 that selects nothing is asked again without it.
        let retry = stale.as_ref().map(|_| unconditional(&request));
        let fetcher = Fetcher { cache, svc, key, client_headers, stale, flight_key };
        fetcher.run(lead, request, retry).await;
    }
}

/// A fetch job once its request is sent: what the response is judged and stored with.
struct Fetcher {
    cache: Arc<Cache>,
    svc: Arc<CompiledService>,
    key: CacheKey,
    client_headers: HeaderMap,
    stale: Option<(String, Arc<StoredObject>)>,
    flight_key: String,
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
                self.cache.flights.clear_pass(&self.flight_key);
                // With `store_set_cookie` the response is stored, its cookie is not: it goes to
                // the client whose request fetched it, as Cloudflare does for cached responses.
                let for_requester = policy::take_per_request(&mut headers);
                self.ctx().store_streaming(&mut lead, status, headers, for_requester, body, times).await;
            }
            _ => {
                let reason = if too_big { "too_big" } else { storable.err().map_or("", |r| r.as_str()) };
                tracing::debug!(service = %self.svc.name, url = %self.key.url, reason, "not storing");
                if !status.is_server_error() {
                    self.cache.flights.mark_pass(&self.flight_key, std::time::Instant::now());
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
        stale_key: &str,
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
                self.cache.store.insert(stale_key.to_string(), Entry::Object(object.clone()));
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

    async fn store_streaming<B>(
        &self,
        lead: &mut Lead,
        status: StatusCode,
        headers: HeaderMap,
        for_requester: HeaderMap,
        mut body: B,
        (request_time, response_time): (SystemTime, SystemTime),
    ) where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
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
        let meta = ObjectMeta {
            status,
            tags: policy::tags(&headers),
            headers,
            request_time,
            response_time,
            policy: rp,
            body_len: 0,
        };
        let ttl_secs = rp.freshness_lifetime.as_secs() as i64 - rp.corrected_initial_age.as_secs() as i64;
        // Requests arriving while the body streams may join only a response they could have
        // used from the store: one that arrived fresh and needs no revalidation.
        if rp.no_cache || rp.freshness_lifetime <= rp.corrected_initial_age {
            lead.close();
        }
        let shared = SharedBody::new(STREAM_WINDOW);
        lead.land(Landing::Shared(SharedResponse {
            meta: Arc::new(meta.clone()),
            body: shared.clone(),
            vary: vary.clone(),
            stored: true,
            ttl_secs,
            for_requester,
        }));

        let store = &self.cache.store;
        let chunk_size = store.chunk_size();
        let object_id: u64 = rand_id();
        let mut pending = BytesMut::new();
        let mut chunks: u32 = 0;
        let mut total: u64 = 0;
        let mut storing = true;
        // `Ok(Some(last))`: the body ended with `last`, which goes to the readers only once the
        // object is in the store. A client that reads the last byte and asks again at once
        // then finds the object stored, instead of the flight of a fetch that has ended.
        let result = loop {
            let frame = match body.frame().await {
                None => break Ok(None),
                Some(Err(e)) => break Err(FetchAborted(format!("body: {e}"))),
                Some(Ok(f)) => f,
            };
            let Ok(data) = frame.into_data() else { continue };
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
                while pending.len() >= chunk_size {
                    let chunk = pending.split_to(chunk_size).freeze();
                    store.insert(chunk_key(object_id, chunks), Entry::Chunk(chunk));
                    chunks += 1;
                }
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
                let location = if chunks == 0 {
                    BodyLocation::Inline(pending.freeze())
                } else {
                    if !pending.is_empty() {
                        store.insert(chunk_key(object_id, chunks), Entry::Chunk(pending.freeze()));
                        chunks += 1;
                    }
                    BodyLocation::Chunked { object_id, chunk_size: chunk_size as u32, chunks }
                };
                let meta = ObjectMeta { body_len: total, ..meta };
                let obj = Arc::new(StoredObject { meta, body: location });
                if let Some((fields, _)) = &vary {
                    let index = VariantIndex::new(fields.clone(), request_time, obj.meta.tags.clone());
                    store.insert(self.key.primary.clone(), Entry::Variants(Arc::new(index)));
                }
                store.insert(storage_key, Entry::Object(obj));
                metrics::counter!(crate::metrics::STORED_OBJECTS).increment(1);
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
        lead.close();
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
    ctx.store_streaming(&mut lead, StatusCode::OK, headers, HeaderMap::new(), body, (now, now)).await;
}

async fn pass_response(status: StatusCode, headers: HeaderMap, body: TimedBody<hyper::body::Incoming>) -> PassResponse {
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

pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
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
