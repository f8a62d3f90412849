//! The transform phase around the cache phase: the cache serves the base object (the origin's
//! representation, fetched once per URL), and this phase turns it into what the client asked
//! for (an image resized or converted, a body compressed for its `Accept-Encoding`), storing
//! each variant so the work is done once per object version.
//!
//! The base request is the client's, as a GET for the source URL without `Range` (a range is
//! cut from the representation the client gets) and, when the service compresses, with
//! `Accept-Encoding: identity`, so one base serves every client whatever codings it accepts.
//! Conditionals stay on the base request: a validator the client holds for a variant never
//! matches the base's (variants have their own ETags), and `If-Modified-Since` means the same
//! for every variant.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use outpost_config::{CompressionConfig, Levels};
use tracing::Instrument;

use super::compress::budget::{CodecPermit, Codecs};
use super::compress::{self, Coding, DecodeLimitExceeded, TransformError};
use super::image::{ImageRequest, ResolvedOps, TranscodeError, Transcoder};
use super::{variant, vary};
use crate::body::{self, EdgeBody};
use crate::cache::key::CacheKey;
use crate::cache::serve::{Served, serve as cache_serve};
use crate::cache::variants::{self, Made, VariantBody, VariantFill, VariantMaker};
use crate::cache::{Cache, Found};
use crate::ctx::RequestCtx;
use crate::error::{EdgeError, ErrorKind};
use crate::http::content_length;
use crate::service::CompiledService;
use crate::upstream::ForwardInfo;

/// What the phase works with for one request.
pub struct Transforms<'a> {
    pub cache: &'a Arc<Cache>,
    pub transcoder: &'a Arc<Transcoder>,
    /// The node's codec slots, memory budget and refusals (`limits`).
    pub encodes: &'a Arc<Codecs>,
    pub svc: &'a Arc<CompiledService>,
    pub host: &'a str,
    pub fwd: &'a ForwardInfo<'a>,
}

/// A transform to make from the base response.
#[derive(Debug)]
enum Work {
    /// Decode from the base's coding, encode to the client's, holding one of the node's codec
    /// slots and its memory for as long as the body streams.
    Encode { from: Coding, to: Coding, slot: Option<Grant> },
    /// The operations resolved for this request's `Accept`; `vary_accept` when that mattered.
    Image { ops: ResolvedOps, vary_accept: bool },
}

impl Work {
    fn descriptor(&self) -> String {
        match self {
            Work::Encode { to, .. } => format!("enc={}", to.as_str()),
            Work::Image { ops, .. } => ops.descriptor(),
        }
    }
}

impl Transforms<'_> {
    pub async fn serve(&self, req: Request<EdgeBody>, ctx: &mut RequestCtx) -> Result<Served, EdgeError> {
        let svc = self.svc;
        let method = req.method().clone();
        if method != Method::GET && method != Method::HEAD {
            return self.cache_phase(req, ctx).await;
        }
        let image = match svc.images.enabled {
            true => ImageRequest::parse(req.uri(), &svc.images)
                .map_err(|e| EdgeError::told(ErrorKind::BadRequest, format!("image parameter {e}")))?,
            false => None,
        };
        if image.is_none() && !svc.compression.enabled {
            return self.cache_phase(req, ctx).await;
        }
        if image.is_none() && compress::choose(req.headers(), &svc.compression_prefer) == Coding::Identity {
            return self.serve_identity(req, ctx).await;
        }
        let (client, _) = req.into_parts();
        let base_parts = self.base_request(&client, image.as_ref());
        let base_path = base_parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let base_key = CacheKey::new(&svc.name, self.host, &base_path).with_extra(&client.extensions);
        let base_req = Request::from_parts(base_parts, body::empty());
        let Served { response, status } = self.cache_phase(base_req, ctx).await?;
        // A base still streaming into the store (`detail=storing`) is stored as soon as it
        // completes: its variants are made once, as for a stored one.
        let storing = status.detail == Some(crate::cache::status::Detail::Storing);
        let cacheable = status.hit || status.stored || storing;
        if response.status() != StatusCode::OK {
            return Ok(Served { response: self.as_is(response, &client, image.is_some()).await, status });
        }
        let (head, base_body) = response.into_parts();
        let refusal = refusal_key(&base_key.primary, &head.headers);
        let work = match &image {
            // RFC 9110 §7.7: the origin forbade transforming this response; it goes as it is.
            Some(_) if vary::no_transform(&head.headers) => None,
            Some(img) => Some(Work::Image {
                ops: img.ops.resolve(client.headers.get(header::ACCEPT)),
                vary_accept: img.ops.varies_on_accept(),
            }),
            None => plan_encoding(&svc.compression, &svc.compression_prefer, &client.headers, &head.headers)
                .and_then(|work| self.with_codec_slot(work, &refusal)),
        };
        let Some(work) = work else {
            if client.headers.contains_key(header::RANGE) && cacheable {
                // Served from the store again with the client's range: no read from the start.
                drop(base_body);
                let again =
                    Request::from_parts(self.base_request_keeping_range(&client, image.as_ref()), body::empty());
                let Served { response, status } = self.cache_phase(again, ctx).await?;
                return Ok(Served { response: self.as_is(response, &client, false).await, status });
            }
            // The base response already answered the client's conditionals; only HEAD and Vary remain.
            let response = Response::from_parts(head, base_body);
            return Ok(Served { response: self.as_is(response, &client, image.is_some()).await, status });
        };
        let headers = variant_headers(&head.headers, &work);
        let version = variants::version(&head.headers).filter(|_| cacheable);
        let Some(version) = version else {
            // Not stored (the base is not, or cannot be told apart from its next version):
            // transformed for this request only, at the cheaper level.
            return self.inline(work, headers, base_body, &client, status, image.as_ref(), ctx).await;
        };
        let vkey = variants::key(&base_key, &work.descriptor(), &version);
        if let Some(stored) = self.cache.variant(&vkey).await {
            drop(base_body);
            metrics::counter!(crate::metrics::TRANSFORM_VARIANTS, "outcome" => "hit").increment(1);
            let response = respond_stored(self.cache, headers, stored, &client).await?;
            return Ok(Served { response, status });
        }
        metrics::counter!(crate::metrics::TRANSFORM_VARIANTS, "outcome" => "miss").increment(1);
        let mut base_body = Some(base_body);
        let mut work = Some(work);
        let wait = match self.cache.fill_variant(vkey) {
            VariantFill::Make(maker, wait) => {
                let body = base_body.take().unwrap_or_else(body::empty);
                if let Some(work) = work.take() {
                    let job = make_variant(self.job(), maker, work, headers.clone(), body);
                    tokio::spawn(job.in_current_span());
                }
                wait
            }
            VariantFill::Wait(wait) => {
                // A follower reads the leader's output: its own codec slot goes back now.
                if let Some(Work::Encode { slot, .. }) = work.as_mut() {
                    slot.take();
                }
                wait
            }
        };
        match wait.wait().await {
            Made::Streaming { content_type, body } => {
                drop(base_body);
                // The job knows what the base did not: an image's type and length.
                let mut headers = headers;
                if let Some(ct) = content_type {
                    headers.insert(header::CONTENT_TYPE, ct);
                }
                let response = respond(self.cache, headers, body, &client).await?;
                Ok(Served { response, status })
            }
            Made::TooLate => {
                // Joined too late to read from the start: make this one alone.
                let work = work.and_then(|w| match w {
                    Work::Encode { from, to, .. } => {
                        self.with_codec_slot(Work::Encode { from, to, slot: None }, &refusal)
                    }
                    image => Some(image),
                });
                match (base_body, work) {
                    (Some(b), Some(work)) => self.inline(work, headers, b, &client, status, image.as_ref(), ctx).await,
                    _ => self.original(&client, image.as_ref(), ctx).await,
                }
            }
            Made::Failed(e) if e.kind == ErrorKind::UnsupportedMedia && self.svc.images.strict => Err(e),
            Made::Failed(_) | Made::Gone => self.original(&client, image.as_ref(), ctx).await,
        }
    }

    /// An encode holds a codec slot and its memory while it runs; with none free, or when the
    /// base is known to decode past `max_decoded_size`, the base goes as it is.
    fn with_codec_slot(&self, work: Work, refusal: &str) -> Option<Work> {
        let Work::Encode { from, to, .. } = work else { return Some(work) };
        let outcome = if from != Coding::Identity && self.encodes.is_refused(refusal, Instant::now()) {
            "refused"
        } else {
            let cfg = &self.svc.compression;
            let level = level(&cfg.cached_level, to).max(level(&cfg.pass_level, to));
            match self.encodes.try_start(from, to, level) {
                Ok(permit) => {
                    let grant = Grant { _permit: permit, codecs: self.encodes.clone(), refusal: refusal.to_string() };
                    return Some(Work::Encode { from, to, slot: Some(grant) });
                }
                Err(busy) => busy.as_str(),
            }
        };
        metrics::counter!(crate::metrics::TRANSFORM_VARIANTS, "outcome" => outcome).increment(1);
        tracing::debug!(service = %self.svc.name, outcome, "no codec for this response; sent as the base is");
        None
    }

    /// A client that takes no coding (most often: sent no `Accept-Encoding`): the cache serves
    /// its request as it is, against the one base per URL. A base the origin encoded anyway is
    /// decoded for it, per request (rare: the base is fetched with `Accept-Encoding: identity`).
    async fn serve_identity(&self, mut req: Request<EdgeBody>, ctx: &mut RequestCtx) -> Result<Served, EdgeError> {
        let head_only = req.method() == Method::HEAD;
        let base_key = CacheKey::new(&self.svc.name, self.host, req.uri().path_and_query().map_or("/", |p| p.as_str()))
            .with_extra(req.extensions());
        req.headers_mut().insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        // Only a conditional request can be answered 304, whose Vary is read from the store.
        let conditional =
            [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE].iter().any(|h| req.headers().contains_key(h));
        let for_304 = if conditional { req.headers().clone() } else { HeaderMap::new() };
        let Served { mut response, status } = self.cache_phase(req, ctx).await?;
        let cfg = &self.svc.compression;
        let varies = match self.vary_of_message(&response) {
            Some(varies) => varies,
            None => self.vary_of_stored(&base_key, &for_304).await,
        };
        if varies {
            vary::add(response.headers_mut(), "Accept-Encoding");
        }
        let encoded = Coding::of_response(response.headers()).filter(|c| *c != Coding::Identity);
        let Some(from) = encoded.filter(|_| response.status() == StatusCode::OK) else {
            return Ok(Served { response, status });
        };
        let refusal = refusal_key(&base_key.primary, response.headers());
        let Some(Work::Encode { slot, .. }) =
            self.with_codec_slot(Work::Encode { from, to: Coding::Identity, slot: None }, &refusal)
        else {
            return Ok(Served { response, status });
        };
        let (mut parts, body) = response.into_parts();
        let identity = Work::Encode { from, to: Coding::Identity, slot: None };
        parts.headers = variant_headers(&parts.headers, &identity);
        let body = match head_only {
            true => body::empty(),
            false => {
                let decoded = transcode_body(body, from, Coding::Identity, 0, cfg.max_decoded_size.as_u64());
                SlotBody { inner: decoded, grant: slot }.boxed_unsync()
            }
        };
        Ok(Served { response: Response::from_parts(parts, body), status })
    }

    /// The cache phase (and, on a miss, upstream and store) for a request this phase made: the
    /// client's own, its base, or the original after a failed transform.
    async fn cache_phase(&self, req: Request<EdgeBody>, ctx: &mut RequestCtx) -> Result<Served, EdgeError> {
        cache_serve(self.cache, self.svc, self.host, req, self.fwd, ctx).await
    }

    fn job(&self) -> Job {
        Job { svc: self.svc.clone(), transcoder: self.transcoder.clone() }
    }

    /// The request the cache phase serves the base object for.
    fn base_request(&self, client: &Parts, image: Option<&ImageRequest>) -> Parts {
        let mut parts = self.base_request_keeping_range(client, image);
        parts.headers.remove(header::RANGE);
        parts.headers.remove(header::IF_RANGE);
        parts
    }

    fn base_request_keeping_range(&self, client: &Parts, image: Option<&ImageRequest>) -> Parts {
        let mut builder = Request::builder().method(Method::GET).version(client.version);
        builder = match image {
            Some(img) => builder.uri(img.source.as_str()),
            None => builder.uri(client.uri.clone()),
        };
        let (mut parts, ()) = builder.body(()).unwrap_or_default().into_parts();
        parts.headers = client.headers.clone();
        parts.extensions = client.extensions.clone();
        if self.svc.compression.enabled {
            parts.headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        parts
    }

    /// A base response passed on untransformed (a non-200, or a range served from the store).
    async fn as_is(&self, mut response: Response<EdgeBody>, client: &Parts, image: bool) -> Response<EdgeBody> {
        if !image {
            let varies = match self.vary_of_message(&response) {
                Some(varies) => varies,
                None => {
                    let base = self.base_request(client, None);
                    let path = base.uri.path_and_query().map_or("/", |p| p.as_str());
                    self.vary_of_stored(
                        &CacheKey::new(&self.svc.name, self.host, path).with_extra(&base.extensions),
                        &base.headers,
                    )
                    .await
                }
            };
            if varies {
                vary::add(response.headers_mut(), "Accept-Encoding");
            }
        }
        if client.method == Method::HEAD {
            *response.body_mut() = body::empty();
        }
        response
    }

    /// Whether `response`, the cache's answer to a base request, lists `Accept-Encoding` in
    /// `Vary`, read from the representation it carries. `None` for a 304, which carries neither
    /// its type nor its length (RFC 9110 §15.4.5) yet must name the 200's `Vary`: see
    /// [`Self::vary_of_stored`].
    fn vary_of_message(&self, response: &Response<EdgeBody>) -> Option<bool> {
        let headers = response.headers();
        (response.status() != StatusCode::NOT_MODIFIED)
            .then(|| vary::on_accept_encoding(&self.svc.compression, headers, vary::representation_length(headers)))
    }

    /// The same decision from the stored base a 304 validated (found by its key and the base
    /// request's headers, for the origin's own `Vary`). Not found (purged since): `false`, and
    /// the 304 keeps the `Vary` the cache gave it.
    async fn vary_of_stored(&self, base_key: &CacheKey, headers: &HeaderMap) -> bool {
        match self.cache.lookup(base_key, headers, SystemTime::now()).await {
            Found::Object { object, .. } => {
                vary::on_accept_encoding(&self.svc.compression, &object.meta.headers, Some(object.meta.body_len))
            }
            Found::Miss { .. } => false,
        }
    }

    /// The original for a request whose transform failed (or a follower that could not read
    /// the variant): the base as the cache serves it, with the client's range; 415 instead
    /// when the service is strict about images.
    async fn original(
        &self,
        client: &Parts,
        image: Option<&ImageRequest>,
        ctx: &mut RequestCtx,
    ) -> Result<Served, EdgeError> {
        let mut parts = self.base_request_keeping_range(client, image);
        parts.method = client.method.clone();
        let Served { response, status } = self.cache_phase(Request::from_parts(parts, body::empty()), ctx).await?;
        Ok(Served { response: self.as_is(response, client, image.is_some()).await, status })
    }

    /// Transform for this request only: compression at `pass_level`, an image on the pool.
    #[allow(clippy::too_many_arguments)]
    async fn inline(
        &self,
        work: Work,
        headers: HeaderMap,
        base: EdgeBody,
        client: &Parts,
        status: crate::cache::status::CacheStatus,
        image: Option<&ImageRequest>,
        ctx: &mut RequestCtx,
    ) -> Result<Served, EdgeError> {
        match work {
            Work::Encode { from, to, slot } => {
                let cfg = &self.svc.compression;
                let body = transcode_body(base, from, to, level(&cfg.pass_level, to), cfg.max_decoded_size.as_u64());
                let body = SlotBody { inner: body, grant: slot }.boxed_unsync();
                let response = respond(self.cache, headers, VariantBody::Streaming { body, len: None }, client).await?;
                Ok(Served { response, status })
            }
            Work::Image { ops, .. } => match self.job().transcode(base, ops).await {
                Ok((headers_with_type, bytes)) => {
                    let mut headers = headers;
                    headers.extend(headers_with_type);
                    let len = Some(bytes.len() as u64);
                    let body = VariantBody::Streaming { body: body::full(bytes), len };
                    let response = respond(self.cache, headers, body, client).await?;
                    Ok(Served { response, status })
                }
                Err(e) if e.kind == ErrorKind::UnsupportedMedia && self.svc.images.strict => Err(e),
                Err(_) => self.original(client, image, ctx).await,
            },
        }
    }
}

/// What a background variant job needs, owned.
struct Job {
    svc: Arc<CompiledService>,
    transcoder: Arc<Transcoder>,
}

impl Job {
    /// The whole source (bounded by `max_source_bytes`), transcoded on the pool. Errors are
    /// logged here; `UnsupportedMedia` means the source is not an image this node decodes.
    async fn transcode(&self, base: EdgeBody, ops: ResolvedOps) -> Result<(HeaderMap, Bytes), EdgeError> {
        let cfg = &self.svc.images;
        let limit = cfg.max_source_bytes.as_u64();
        let source = match collect_limited(base, limit).await {
            Ok(bytes) => bytes,
            Err(e) => {
                let msg = format!("service {}: image source: {e}", self.svc.name);
                tracing::warn!("{msg}");
                return Err(EdgeError::new(ErrorKind::UnsupportedMedia, msg));
            }
        };
        match self.transcoder.run(source, ops, cfg.clone()).await {
            Ok(t) => {
                let mut headers = HeaderMap::new();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(t.content_type));
                Ok((headers, t.body))
            }
            Err(e) => {
                let kind = match e {
                    TranscodeError::Busy { .. } | TranscodeError::Internal(_) | TranscodeError::Encode { .. } => {
                        ErrorKind::Internal
                    }
                    _ => ErrorKind::UnsupportedMedia,
                };
                tracing::warn!(service = %self.svc.name, error = %e, "image transform failed; serving the original");
                Err(EdgeError::new(kind, format!("service {}: image: {e}", self.svc.name)))
            }
        }
    }
}

/// Make a variant and store it while it streams to the fill's waiters. A failure lands as
/// `Failed`, and each waiter falls back to the original: nothing half-made is stored.
async fn make_variant(job: Job, maker: VariantMaker, work: Work, mut headers: HeaderMap, base: EdgeBody) {
    let body = match work {
        Work::Encode { from, to, slot } => {
            let cfg = &job.svc.compression;
            let body = transcode_body(base, from, to, level(&cfg.cached_level, to), cfg.max_decoded_size.as_u64());
            SlotBody { inner: body, grant: slot }.boxed_unsync()
        }
        Work::Image { ops, .. } => match job.transcode(base, ops).await {
            Ok((extra, bytes)) => {
                headers.extend(extra);
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                body::full(bytes)
            }
            Err(e) => return maker.fail(e),
        },
    };
    maker.store(&job.svc, headers, body).await;
}

/// Why an image's source was not read whole.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("unreadable: {0}")]
    Unreadable(crate::body::BoxError),
    #[error("over max_source_bytes ({0} bytes)")]
    TooLarge(u64),
}

/// The whole body, or an error once it passes `limit` bytes.
async fn collect_limited(mut body: EdgeBody, limit: u64) -> Result<Bytes, SourceError> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(SourceError::Unreadable)?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > limit {
                return Err(SourceError::TooLarge(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// A codec's share of the node's bounds, and where to record that its base decoded past
/// `max_decoded_size`.
#[derive(Debug)]
struct Grant {
    _permit: CodecPermit,
    codecs: Arc<Codecs>,
    refusal: String,
}

/// What a base's refusal is remembered under: its key and version (its validator, length and
/// coding), so a new version is tried. Not `Date`, which a response without validators changes
/// every second (the refusal of such a base holds for the URL, `REFUSAL_TTL` long).
fn refusal_key(base_primary: &str, base_headers: &HeaderMap) -> String {
    let get = |name: header::HeaderName| base_headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let validator = match get(header::ETAG) {
        "" => get(header::LAST_MODIFIED),
        etag => etag,
    };
    let (len, coding) = (get(header::CONTENT_LENGTH), get(header::CONTENT_ENCODING));
    format!("{base_primary}\u{1c}{validator};l={len};c={coding}")
}

/// A body that holds a codec grant until it is dropped (finished, failed or abandoned), and
/// records a decode that went past its bound so that the next request serves the base as it is.
struct SlotBody {
    inner: EdgeBody,
    grant: Option<Grant>,
}

impl http_body::Body for SlotBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Err(e))) = &polled
            && let Some(grant) = &self.grant
            && e.downcast_ref::<TransformError>().is_some_and(|t| DecodeLimitExceeded::is(&t.source))
        {
            grant.codecs.refuse(&grant.refusal, Instant::now());
            tracing::warn!(base = %grant.refusal, "decoded past max_decoded_size; served as it is from now on");
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `base` decoded from `from` and encoded to `to` as it streams.
fn transcode_body(base: EdgeBody, from: Coding, to: Coding, level: u32, max_decoded: u64) -> EdgeBody {
    let decoded = compress::decode_body(base, from, max_decoded);
    compress::encode_body(decoded, to, level)
}

/// Whether responses of this type are compressed by the service (and so vary on `Accept-Encoding`).
fn compressible(cfg: &CompressionConfig, headers: &HeaderMap) -> bool {
    cfg.enabled && compress::compressible(headers.get(header::CONTENT_TYPE), &cfg.types)
}

/// Which coding the client gets, if it is not the base's. `None`: the base as it is (not a
/// compressible type, `no-transform`, below `min_size`, a coding the node cannot undo, or the
/// base's coding is the one negotiated).
fn plan_encoding(cfg: &CompressionConfig, prefer: &[Coding], client: &HeaderMap, base: &HeaderMap) -> Option<Work> {
    if !compressible(cfg, base) || vary::no_transform(base) {
        return None;
    }
    let from = Coding::of_response(base)?;
    if from != Coding::Identity {
        // Stored encoded (the origin compressed it anyway): as is for a client that takes it.
        if compress::choose(client, &[from]) == from {
            return None;
        }
        let to = compress::choose(client, prefer);
        return Some(Work::Encode { from, to, slot: None });
    }
    if content_length(base).is_some_and(|n| n < cfg.min_size.as_u64()) {
        return None;
    }
    match compress::choose(client, prefer) {
        Coding::Identity => None,
        to => Some(Work::Encode { from, to, slot: None }),
    }
}

/// The variant's header section, from the base response's: its coding or type, its own ETag,
/// no length (the stored variant's is set when served), and `Vary` for what chose it.
fn variant_headers(base: &HeaderMap, work: &Work) -> HeaderMap {
    let mut headers = base.clone();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_RANGE);
    let suffix = match work {
        Work::Encode { to, .. } => {
            headers.remove(header::CONTENT_ENCODING);
            if let Some(v) = to.header_value() {
                headers.insert(header::CONTENT_ENCODING, v);
            }
            vary::add(&mut headers, "Accept-Encoding");
            to.as_str().to_string()
        }
        Work::Image { ops, vary_accept } => {
            headers.remove(header::CONTENT_ENCODING);
            if *vary_accept {
                vary::add(&mut headers, "Accept");
            }
            format!("{:08x}", fnv1a(ops.descriptor().as_bytes()))
        }
    };
    if let Some(tag) = base.get(header::ETAG).and_then(|t| variant::etag(t, &suffix)) {
        headers.insert(header::ETAG, tag);
    }
    headers
}

/// A short stable hash for ETag suffixes (not for security).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The client's response from a representation: its conditionals, range and HEAD applied.
async fn respond(
    cache: &Cache,
    headers: HeaderMap,
    body: VariantBody,
    client: &Parts,
) -> Result<Response<EdgeBody>, EdgeError> {
    cache
        .respond_variant(&headers, body, &client.method, &client.headers)
        .await
        .ok_or_else(|| EdgeError::new(ErrorKind::Internal, "transformed response unreadable"))
}

/// A stored variant, under the headers of the base as served now (its Age, its freshness).
async fn respond_stored(
    cache: &Cache,
    mut headers: HeaderMap,
    stored: Arc<crate::cache::entry::StoredObject>,
    client: &Parts,
) -> Result<Response<EdgeBody>, EdgeError> {
    // An image variant's type is its own, not the base's.
    if let Some(ct) = stored.meta.headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    respond(cache, headers, VariantBody::Stored(stored), client).await
}

/// The level for `to` from a service's levels (identity needs none).
fn level(levels: &Levels, to: Coding) -> u32 {
    match to {
        Coding::Br => levels.br,
        Coding::Zstd => levels.zstd,
        Coding::Gzip => levels.gzip,
        Coding::Identity => 0,
    }
}
