//! Bodies crossing the guest boundary, each with its size bound: the client's request body going
//! in, a backend's response going in, and the guest's response going out to the client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{Error as WasiError, WasiBody};

use super::invoke::Ending;
use crate::body::{BoxError, EdgeBody};
use crate::http::body_limit::{BodyTooLarge, LimitedBody};

/// The client's request body as the guest reads it: past `limit` bytes the read fails with
/// `HTTP-request-body-size` and `over` is set, so the host answers 413 whatever the guest does.
pub(super) fn request_body(inner: EdgeBody, limit: u64, over: Arc<AtomicBool>) -> UnsyncBoxBody<Bytes, WasiError> {
    LimitedBody::new(inner, limit)
        .map_err(move |e| {
            // Also the node-wide `limits.max_request_body`, checked further in: 413 all the same.
            if e.is::<BodyTooLarge>() {
                over.store(true, Ordering::Relaxed);
                WasiError::HttpRequestBodySize(Some(limit))
            } else {
                WasiError::ConnectionTerminated
            }
        })
        .boxed_unsync()
}

/// A backend's response as the guest reads it: past `limit` bytes the read fails with
/// `HTTP-response-body-size`.
pub(super) fn backend_body(inner: EdgeBody, limit: u64) -> WasiBody {
    LimitedBody::new(inner, limit)
        .map_err(move |e| match e.is::<BodyTooLarge>() {
            true => WasiError::HttpResponseBodySize(Some(limit)),
            false => WasiError::InternalError(Some(format!("backend body: {e}"))),
        })
        .boxed_unsync()
}

/// The guest's response body on its way to the client. It ends with an error, not cleanly, when
/// the guest fails before finishing it (trap, CPU, wall clock, memory) or writes past `limit`,
/// so the client never takes a cut-off body for a whole one. It holds `release` until it ends:
/// a failed guest's store (whose body channel would otherwise close as if finished) lives until
/// then.
pub(super) struct GuestBody {
    inner: HyperOutgoingBody,
    ending: Option<oneshot::Receiver<Ending>>,
    release: Option<oneshot::Sender<()>>,
    limit: u64,
    seen: u64,
    on_over: Option<Box<dyn FnOnce() + Send>>,
}

impl GuestBody {
    pub(super) fn new(
        inner: HyperOutgoingBody,
        ending: oneshot::Receiver<Ending>,
        release: oneshot::Sender<()>,
        limit: u64,
        on_over: Box<dyn FnOnce() + Send>,
    ) -> Self {
        Self { inner, ending: Some(ending), release: Some(release), limit, seen: 0, on_over: Some(on_over) }
    }

    fn close(&mut self) {
        self.ending = None;
        self.release = None;
    }

    fn fail(&mut self, why: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.close();
        Poll::Ready(Some(Err(why.into())))
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.release.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if self.seen > self.limit {
                    if let Some(report) = self.on_over.take() {
                        report();
                    }
                    let limit = self.limit;
                    return self.fail(format!("function response body above max_response_body ({limit} bytes)"));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => self.fail(format!("function response body: {e}")),
            Poll::Ready(None) => {
                self.close();
                Poll::Ready(None)
            }
            Poll::Pending => {
                // Nothing to send: has the guest failed meanwhile?
                let Some(ending) = self.ending.as_mut() else { return Poll::Pending };
                match Pin::new(ending).poll(cx) {
                    Poll::Ready(Ok(ending)) if ending.is_failure() => {
                        self.fail(format!("function failed mid-response: {}", ending.reason()))
                    }
                    // Finished: the body ends when the store drops its channel.
                    Poll::Ready(_) => {
                        self.ending = None;
                        Poll::Pending
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
