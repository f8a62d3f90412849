//! The client's request body on its way upstream: held to the length its framing declares, and
//! watched, so that a request that fails because of the client (a body that breaks off, a bad
//! chunk, a body over the limit, a client too slow to send it) is the client's error and never
//! counts against the upstream's circuit breaker.
//!
//! When the body fails, the upstream client fails the request and closes that connection
//! (hyper never returns a connection to the pool with a message half written), so a broken
//! body cannot leave bytes on a pooled connection for the next request to inherit.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::BoxError;
use crate::error::{EdgeError, ErrorKind};
use crate::http::body_limit::{BodyTooLarge, LengthMismatch};

/// Why a request body failed on the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// The client went away mid-body (EOF, reset, stream cancelled): 499.
    Aborted,
    /// The body broke its own framing (a bad chunk size, more or fewer bytes than its
    /// Content-Length): 400.
    Malformed,
    /// The body grew past `limits.max_request_body`: 413.
    TooLarge,
    /// The client sent the body too slowly for the upstream's first-byte timeout: 408.
    TooSlow,
}

impl ClientFault {
    pub fn kind(self) -> ErrorKind {
        match self {
            ClientFault::Aborted => ErrorKind::ClientAborted,
            ClientFault::Malformed => ErrorKind::BadRequest,
            ClientFault::TooLarge => ErrorKind::BodyTooLarge,
            ClientFault::TooSlow => ErrorKind::RequestTimeout,
        }
    }

    pub fn error(self, detail: impl Into<String>) -> EdgeError {
        EdgeError::new(self.kind(), format!("request body: {}", detail.into()))
    }
}

/// What became of a body that failed, from the cause chain of its error: our own errors and
/// I/O error kinds decide, never message text.
pub fn fault_of(err: &(dyn StdError + 'static)) -> ClientFault {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.is::<BodyTooLarge>() {
            return ClientFault::TooLarge;
        }
        if e.is::<LengthMismatch>() {
            return ClientFault::Malformed;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // hyper's HTTP/1.1 decoder: InvalidInput/InvalidData for a bad chunk, UnexpectedEof
            // when the connection ends before the declared length.
            return match io.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => ClientFault::Malformed,
                std::io::ErrorKind::TimedOut => ClientFault::TooSlow,
                _ => ClientFault::Aborted,
            };
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() {
                return ClientFault::Malformed;
            }
            if h.is_timeout() {
                return ClientFault::TooSlow;
            }
        }
        cause = e.source();
    }
    // An HTTP/2 stream reset, an HTTP/3 stream error: the client stopped sending.
    ClientFault::Aborted
}

const SENDING: u8 = 0;
const WAITING_ON_CLIENT: u8 = 1;
const COMPLETE: u8 = 2;
const FAULT_BASE: u8 = 10;

/// Shared between a [`SentBody`] (inside the upstream client) and the request that sent it.
#[derive(Debug, Clone, Default)]
pub struct BodyWatch(Arc<AtomicU8>);

impl BodyWatch {
    /// The client's fault, when the body failed because of the client.
    pub fn fault(&self) -> Option<ClientFault> {
        match self.0.load(Ordering::Acquire) {
            s if s == FAULT_BASE => Some(ClientFault::Aborted),
            s if s == FAULT_BASE + 1 => Some(ClientFault::Malformed),
            s if s == FAULT_BASE + 2 => Some(ClientFault::TooLarge),
            s if s == FAULT_BASE + 3 => Some(ClientFault::TooSlow),
            _ => None,
        }
    }

    /// Whether the body is unfinished and its last read waited on the client: a timeout now
    /// is the client's slowness, not the upstream's.
    pub fn waiting_on_client(&self) -> bool {
        self.0.load(Ordering::Acquire) == WAITING_ON_CLIENT
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Release);
    }

    fn set_fault(&self, fault: ClientFault) {
        let code = match fault {
            ClientFault::Aborted => FAULT_BASE,
            ClientFault::Malformed => FAULT_BASE + 1,
            ClientFault::TooLarge => FAULT_BASE + 2,
            ClientFault::TooSlow => FAULT_BASE + 3,
        };
        self.set(code);
    }
}

/// A request body as sent upstream: at most, and at the end exactly, `declared` bytes when its
/// framing declared a length; every failure recorded in its [`BodyWatch`].
pub struct SentBody<B> {
    inner: B,
    declared: Option<u64>,
    sent: u64,
    watch: BodyWatch,
}

impl<B> SentBody<B> {
    pub fn new(inner: B, declared: Option<u64>, watch: BodyWatch) -> Self {
        Self { inner, declared, sent: 0, watch }
    }

    fn fail(&mut self, err: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.watch.set_fault(fault_of(err.as_ref()));
        Poll::Ready(Some(Err(err)))
    }
}

impl<B> Body for SentBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                this.watch.set(WAITING_ON_CLIENT);
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                this.sent = this.sent.saturating_add(len);
                if let Some(declared) = this.declared
                    && this.sent > declared
                {
                    return this.fail(Box::new(LengthMismatch { declared, got: this.sent }));
                }
                this.watch.set(SENDING);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(e),
            Poll::Ready(None) => match this.declared {
                Some(declared) if declared != this.sent => {
                    this.fail(Box::new(LengthMismatch { declared, got: this.sent }))
                }
                _ => {
                    this.watch.set(COMPLETE);
                    Poll::Ready(None)
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            Some(n) => SizeHint::with_exact(n),
            None => self.inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn io(kind: std::io::ErrorKind) -> BoxError {
        Box::new(std::io::Error::new(kind, "x"))
    }

    #[test]
    fn faults_by_cause() {
        use std::io::ErrorKind as K;
        let table: Vec<(&str, BoxError, ClientFault)> = vec![
            // RFC 9112 §7.1: a chunk-size line that does not parse is a framing error.
            ("bad chunk", io(K::InvalidInput), ClientFault::Malformed),
            ("bad data", io(K::InvalidData), ClientFault::Malformed),
            // RFC 9112 §8: a connection closed before the declared length is incomplete.
            ("eof mid-body", io(K::UnexpectedEof), ClientFault::Aborted),
            ("reset", io(K::ConnectionReset), ClientFault::Aborted),
            ("slow", io(K::TimedOut), ClientFault::TooSlow),
            ("over the limit", Box::new(BodyTooLarge(10)), ClientFault::TooLarge),
            // RFC 9114 §4.1.2: DATA that disagrees with Content-Length is malformed.
            ("length mismatch", Box::new(LengthMismatch { declared: 1, got: 2 }), ClientFault::Malformed),
            ("unknown", "stream reset".into(), ClientFault::Aborted),
        ];
        for (case, err, want) in table {
            assert_eq!(fault_of(err.as_ref()), want, "{case}");
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> crate::body::EdgeBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            parts.iter().map(|p| Ok(Frame::data(Bytes::from_static(p)))).collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    /// (case, chunks, declared length, whole?)
    type Row = (&'static str, &'static [&'static [u8]], Option<u64>, bool);

    #[tokio::test]
    async fn length_is_held_to_the_declared_one() {
        let table: [Row; 5] = [
            ("exact", &[b"ab", b"cde"], Some(5), true),
            ("short", &[b"ab"], Some(5), false),
            ("long", &[b"abc", b"def"], Some(5), false),
            ("undeclared", &[b"abc", b"def"], None, true),
            ("empty, declared 0", &[], Some(0), true),
        ];
        for (case, parts, declared, ok) in table {
            let watch = BodyWatch::default();
            let body = SentBody::new(chunks(parts), declared, watch.clone());
            let result = body.collect().await;
            assert_eq!(result.is_ok(), ok, "{case}");
            let want = (!ok).then_some(ClientFault::Malformed);
            assert_eq!(watch.fault(), want, "{case}");
        }
    }

    #[tokio::test]
    async fn a_client_error_is_recorded() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            vec![Ok(Frame::data(Bytes::from_static(b"ab"))), Err(io(std::io::ErrorKind::UnexpectedEof))];
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
        let watch = BodyWatch::default();
        assert!(SentBody::new(inner, Some(10), watch.clone()).collect().await.is_err());
        assert_eq!(watch.fault(), Some(ClientFault::Aborted));
        assert!(!watch.waiting_on_client());
    }
}
