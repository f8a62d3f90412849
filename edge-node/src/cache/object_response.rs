//! Responses built from what the cache holds (a stored object, or a fetch streaming into the
//! store): `Age`, the client's preconditions (304/412, RFC 9110 §13), HEAD, and a single byte
//! range (206/416, RFC 9110 §14), with CDN-only headers removed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};

use super::entry::{BodyLocation, Entry, ObjectMeta, StoredObject};
use super::key::chunk_key;
use super::policy::{self, Precondition, RangeDecision};
use super::store::Store;
use crate::body::{self, BoxError, EdgeBody};

/// The body a response can be cut from.
pub enum Source {
    Stored { store: Store, object: Arc<StoredObject> },
    Streaming { body: EdgeBody, len: Option<u64> },
}

/// Build the client's response from a cached or streaming response. `None` when the stored body
/// cannot be read (its first chunk is gone): the caller treats that as a miss.
pub async fn respond(
    meta: &ObjectMeta,
    source: Source,
    method: &Method,
    req: &HeaderMap,
    age: Option<Duration>,
) -> Option<Response<EdgeBody>> {
    respond_as(meta.status, &meta.headers, source, method, req, age).await
}

/// [`respond`] for a representation described by its status and header section alone (a
/// transform's output, whose headers are the base's as served now).
pub async fn respond_as(
    status: StatusCode,
    stored_headers: &HeaderMap,
    source: Source,
    method: &Method,
    req: &HeaderMap,
    age: Option<Duration>,
) -> Option<Response<EdgeBody>> {
    let mut headers = stored_headers.clone();
    if let Some(age) = age {
        headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
    }
    // RFC 9110 §5.6.7: two-digit years in the client's dates are read against the clock.
    let now = std::time::SystemTime::now();
    let total = match &source {
        Source::Stored { object, .. } => Some(object.meta.body_len),
        Source::Streaming { len, .. } => *len,
    };
    if status.is_success() {
        match policy::evaluate_preconditions(method, req, status, stored_headers, now) {
            Precondition::NotModified => {
                let mut h = policy::not_modified_headers(stored_headers);
                if let Some(age) = age {
                    h.insert(header::AGE, HeaderValue::from(age.as_secs()));
                }
                return Some(build(StatusCode::NOT_MODIFIED, h, body::empty()));
            }
            Precondition::Failed => {
                return Some(build(StatusCode::PRECONDITION_FAILED, HeaderMap::new(), body::empty()));
            }
            Precondition::Proceed => {}
        }
    }
    let range = match total {
        Some(len) if status == StatusCode::OK => policy::decide_range(method, req, stored_headers, len, now),
        _ => RangeDecision::Full,
    };
    let (status, start, len) = match (range, total) {
        (RangeDecision::Partial { start, end_inclusive }, Some(total)) => {
            let len = end_inclusive - start + 1;
            set(&mut headers, header::CONTENT_RANGE, &format!("bytes {start}-{end_inclusive}/{total}"));
            (StatusCode::PARTIAL_CONTENT, start, Some(len))
        }
        (RangeDecision::Unsatisfiable, Some(total)) => {
            set(&mut headers, header::CONTENT_RANGE, &format!("bytes */{total}"));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return Some(build(StatusCode::RANGE_NOT_SATISFIABLE, headers, body::empty()));
        }
        _ => (status, 0, total),
    };
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if *method == Method::HEAD {
        return Some(build(status, headers, body::empty()));
    }
    let body = match source {
        Source::Stored { store, object } => stored_body(store, &object, start, len.unwrap_or(0)).await?,
        Source::Streaming { body, .. } if status == StatusCode::PARTIAL_CONTENT => {
            SliceBody { inner: body, skip: start, remaining: len.unwrap_or(0) }.boxed_unsync()
        }
        Source::Streaming { body, .. } => body,
    };
    Some(build(status, headers, body))
}

fn build(status: StatusCode, headers: HeaderMap, body: EdgeBody) -> Response<EdgeBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The stored body from `start`, `len` bytes. Chunks are read one at a time as the client
/// consumes them; the first is read before answering, so a lost object is a miss, not an error.
async fn stored_body(store: Store, object: &StoredObject, start: u64, len: u64) -> Option<EdgeBody> {
    match &object.body {
        BodyLocation::Inline(bytes) => {
            let end = (start + len).min(bytes.len() as u64) as usize;
            Some(body::full(bytes.slice((start as usize).min(end)..end)))
        }
        BodyLocation::Chunked { object_id, chunk_size, chunks } => {
            let chunk_size = u64::from(*chunk_size).max(1);
            let first = (start / chunk_size) as u32;
            if len == 0 || first >= *chunks {
                return Some(body::empty());
            }
            let Some(Entry::Chunk(first_bytes)) = store.get(&chunk_key(*object_id, first)).await else {
                tracing::warn!(object_id, chunk = first, "stored chunk missing; treated as a miss");
                return None;
            };
            let state = ChunkCursor {
                store,
                object_id: *object_id,
                next: first + 1,
                chunks: *chunks,
                ready: Some(first_bytes),
            };
            let stream = futures_util::stream::unfold(state, |mut st| async move {
                if let Some(b) = st.ready.take() {
                    return Some((Ok::<_, BoxError>(Frame::data(b)), st));
                }
                if st.next >= st.chunks {
                    return None;
                }
                let idx = st.next;
                st.next += 1;
                match st.store.get(&chunk_key(st.object_id, idx)).await {
                    Some(Entry::Chunk(b)) => Some((Ok(Frame::data(b)), st)),
                    _ => {
                        tracing::warn!(
                            object_id = st.object_id,
                            chunk = idx,
                            "stored chunk missing mid-body; aborting response"
                        );
                        st.next = st.chunks;
                        Some((Err(BoxError::from("stored chunk missing")), st))
                    }
                }
            });
            let skip = start - u64::from(first) * chunk_size;
            Some(SliceBody { inner: StreamBody::new(stream).boxed_unsync(), skip, remaining: len }.boxed_unsync())
        }
    }
}

struct ChunkCursor {
    store: Store,
    object_id: u64,
    next: u32,
    chunks: u32,
    ready: Option<Bytes>,
}

/// Skips `skip` bytes of `inner`, then yields `remaining` bytes and ends.
struct SliceBody {
    inner: EdgeBody,
    skip: u64,
    remaining: u64,
}

impl Body for SliceBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.remaining == 0 {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => f,
                other => return other,
            };
            let Ok(mut data) = frame.into_data() else { continue };
            if this.skip >= data.len() as u64 {
                this.skip -= data.len() as u64;
                continue;
            }
            data = data.slice(this.skip as usize..);
            this.skip = 0;
            if data.len() as u64 > this.remaining {
                data.truncate(this.remaining as usize);
            }
            this.remaining -= data.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn collect(b: EdgeBody) -> Vec<u8> {
        b.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn slices_across_frames() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            ["abc", "defg", "hij"].iter().map(|s| Ok(Frame::data(Bytes::from_static(s.as_bytes())))).collect();
        let inner = StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
        let sliced = SliceBody { inner, skip: 2, remaining: 6 }.boxed_unsync();
        assert_eq!(collect(sliced).await, b"cdefgh");
    }
}
