//! Bodies: what a request or response carries, read or written as a stream, with a size cap.
//!
//! A [`Body`] is one of: nothing, bytes in memory, a stream the host delivers (the client's
//! request body, or a backend's response body), or a reader of the function's own. Incoming
//! streams are opened lazily, so a handler that never reads the request body never pays for it,
//! and a backend response returned as-is is spliced to the client by the host without passing
//! through guest memory.
//!
//! Every body carries a cap ([`Body::with_limit`], default [`DEFAULT_BODY_LIMIT`]): reading past
//! it fails with [`Error::BodyTooLarge`], so a hostile client or backend cannot make the function
//! buffer more than it meant to.

use std::io::{self, Read};

use wasi::http::types::{IncomingBody, IncomingRequest, IncomingResponse};
use wasi::io::streams::{InputStream, StreamError};

use crate::error::{BodySource, Error};

/// The cap a body gets unless [`Body::with_limit`] says otherwise: reading more than this fails
/// with [`Error::BodyTooLarge`] (a 413 for the client's body, a 502 for a backend's).
/// Default: 8 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 8 << 20;

/// Largest read asked of the host at once: bounds the buffer one read allocates.
const READ_CHUNK: u64 = 64 << 10;

/// A request or response body. See the [module docs](self).
pub struct Body {
    kind: Kind,
    limit: u64,
    read: u64,
}

enum Kind {
    Empty,
    Full { data: Vec<u8>, pos: usize },
    Incoming(Incoming),
    Reader(Box<dyn Read>),
}

/// A stream the host delivers. Fields drop in declaration order, children before parents: the
/// host refuses to drop a resource whose child (body of a request, stream of a body) is alive.
pub(crate) struct Incoming {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    parent: Parent,
    source: BodySource,
    done: bool,
}

pub(crate) enum Parent {
    Request(IncomingRequest),
    Response(IncomingResponse),
}

impl Body {
    /// No body.
    pub fn empty() -> Self {
        Self::from_kind(Kind::Empty)
    }

    /// A body produced by `reader` as it is sent; nothing is buffered beyond one chunk.
    pub fn from_reader(reader: impl Read + 'static) -> Self {
        Self::from_kind(Kind::Reader(Box::new(reader)))
    }

    pub(crate) fn incoming(parent: Parent) -> Self {
        let source = match parent {
            Parent::Request(_) => BodySource::Client,
            Parent::Response(_) => BodySource::Backend,
        };
        Self::from_kind(Kind::Incoming(Incoming { stream: None, body: None, parent, source, done: false }))
    }

    fn from_kind(kind: Kind) -> Self {
        Self { kind, limit: DEFAULT_BODY_LIMIT, read: 0 }
    }

    /// Sets the cap: reading more than `limit` bytes fails with [`Error::BodyTooLarge`].
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// The cap in force.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The length, when it is known without reading (bytes in memory).
    pub fn known_len(&self) -> Option<u64> {
        match &self.kind {
            Kind::Empty => Some(0),
            Kind::Full { data, pos } => Some((data.len() - pos) as u64),
            Kind::Incoming(_) | Kind::Reader(_) => None,
        }
    }

    /// The bytes left, when the body is in memory.
    pub(crate) fn in_memory(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Empty => Some(&[]),
            Kind::Full { data, pos } => data.get(*pos..),
            Kind::Incoming(_) | Kind::Reader(_) => None,
        }
    }

    /// Bytes that may still be read before the cap is exceeded.
    pub(crate) fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.read)
    }

    /// Reads the whole body into memory, within the cap.
    pub fn into_bytes(mut self) -> Result<Vec<u8>, Error> {
        if let Kind::Full { data, pos } = &mut self.kind {
            let data = std::mem::take(data).split_off(*pos);
            return self.check_len(data.len() as u64).map(|()| data);
        }
        let mut out = Vec::new();
        self.read_to_end(&mut out).map_err(|e| self.error_from(e))?;
        Ok(out)
    }

    /// Reads the whole body as UTF-8 text, within the cap.
    pub fn into_string(self) -> Result<String, Error> {
        let source = self.source();
        String::from_utf8(self.into_bytes()?).map_err(|_| Error::InvalidBody { source, reason: "not UTF-8" })
    }

    /// Who sent the body: decides the status a failure to read it maps to.
    pub(crate) fn source(&self) -> BodySource {
        match &self.kind {
            Kind::Incoming(i) => i.source,
            _ => BodySource::Function,
        }
    }

    fn check_len(&self, len: u64) -> Result<(), Error> {
        if len > self.limit { Err(Error::BodyTooLarge { source: self.source(), limit: self.limit }) } else { Ok(()) }
    }

    /// Turns an I/O error from [`Read`] back into the typed error it carries, if it does.
    pub(crate) fn error_from(&self, e: io::Error) -> Error {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            Some(typed) => typed.clone(),
            None => Error::Io { source: self.source(), message: e.to_string() },
        }
    }

    /// Takes the host stream out of an incoming body, for the host to splice to the client.
    /// `None` for bodies that live in the guest.
    pub(crate) fn take_incoming(&mut self) -> Option<Result<(InputStream, Incoming), Error>> {
        let kind = std::mem::replace(&mut self.kind, Kind::Empty);
        match kind {
            Kind::Incoming(mut incoming) => Some(incoming.open().map(|stream| (stream, incoming))),
            other => {
                self.kind = other;
                None
            }
        }
    }

    /// Counts `n` more bytes against the cap (used when the host splices a stream).
    pub(crate) fn account(&mut self, n: u64) -> Result<(), Error> {
        self.read = self.read.saturating_add(n);
        self.check_len(self.read)
    }
}

impl Incoming {
    /// Opens the host stream on first use: `consume` the body, then its stream.
    fn open(&mut self) -> Result<InputStream, Error> {
        if let Some(stream) = self.stream.take() {
            return Ok(stream);
        }
        let body = match &self.parent {
            Parent::Request(r) => r.consume(),
            Parent::Response(r) => r.consume(),
        }
        .map_err(|()| Error::Io { source: self.source, message: "body already consumed".into() })?;
        let stream =
            body.stream().map_err(|()| Error::Io { source: self.source, message: "body stream taken".into() })?;
        self.body = Some(body);
        Ok(stream)
    }

    /// Puts the stream back after a splice, so it drops before its body.
    pub(crate) fn restore(&mut self, stream: InputStream) {
        self.stream = Some(stream);
    }

    fn read_chunk(&mut self, max: u64) -> io::Result<Vec<u8>> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.stream.is_none() {
            let stream = self.open().map_err(io::Error::other)?;
            self.stream = Some(stream);
        }
        let Some(stream) = &self.stream else { return Ok(Vec::new()) };
        match stream.blocking_read(max) {
            Ok(chunk) => Ok(chunk),
            Err(StreamError::Closed) => {
                self.done = true;
                Ok(Vec::new())
            }
            Err(StreamError::LastOperationFailed(e)) => Err(io::Error::other(stream_error(self.source, &e))),
        }
    }
}

/// A failed stream operation, named by its wasi:http error code when the host gave one (e.g.
/// `HttpResponseBodySize` when a backend body passed the node's `max_backend_response`).
pub(crate) fn stream_error(source: BodySource, e: &wasi::io::error::Error) -> Error {
    let message = match wasi::http::types::http_error_code(e) {
        Some(code) => format!("{code:?}"),
        None => e.to_debug_string(),
    };
    Error::Io { source, message }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the cap tells "exactly at the cap" from "over it".
        let room = self.remaining().saturating_add(1);
        let want = (buf.len() as u64).min(room).min(READ_CHUNK);
        let n = match &mut self.kind {
            Kind::Empty => 0,
            Kind::Full { data, pos } => {
                let n = (data.len() - *pos).min(want as usize);
                buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                *pos += n;
                n
            }
            Kind::Incoming(incoming) => {
                let chunk = incoming.read_chunk(want)?;
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                n
            }
            Kind::Reader(reader) => reader.read(&mut buf[..want as usize])?,
        };
        self.account(n as u64).map_err(io::Error::other)?;
        Ok(n)
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full { .. } => "bytes",
            Kind::Incoming(_) => "incoming",
            Kind::Reader(_) => "reader",
        };
        f.debug_struct("Body").field("kind", &kind).field("limit", &self.limit).finish()
    }
}

impl From<Vec<u8>> for Body {
    fn from(data: Vec<u8>) -> Self {
        if data.is_empty() { Self::empty() } else { Self::from_kind(Kind::Full { data, pos: 0 }) }
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::from(s.into_bytes())
    }
}

impl From<&str> for Body {
    fn from(s: &str) -> Self {
        Self::from(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Body {
    fn from(s: &[u8]) -> Self {
        Self::from(s.to_vec())
    }
}

impl From<()> for Body {
    fn from((): ()) -> Self {
        Self::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_within_the_cap_read_back_whole() {
        let body = Body::from("hello").with_limit(5);
        assert_eq!(body.into_bytes().ok(), Some(b"hello".to_vec()));
    }

    #[test]
    fn bytes_over_the_cap_fail_with_the_cap() {
        let err = Body::from("hello!").with_limit(5).into_bytes().err();
        assert!(matches!(err, Some(Error::BodyTooLarge { limit: 5, source: BodySource::Function })), "{err:?}");
    }

    #[test]
    fn a_reader_over_the_cap_fails_while_streaming() {
        let body = Body::from_reader(io::repeat(b'x').take(10_000)).with_limit(4096);
        let err = body.into_bytes().err();
        assert!(matches!(err, Some(Error::BodyTooLarge { limit: 4096, .. })), "{err:?}");
    }

    #[test]
    fn a_reader_exactly_at_the_cap_is_fine() {
        let body = Body::from_reader(io::repeat(b'x').take(4096)).with_limit(4096);
        assert_eq!(body.into_bytes().map(|b| b.len()).ok(), Some(4096));
    }

    #[test]
    fn known_len_counts_what_is_left() {
        let mut body = Body::from("abcdef");
        let mut two = [0u8; 2];
        assert_eq!(body.read(&mut two).ok(), Some(2));
        assert_eq!(body.known_len(), Some(4));
        assert_eq!(body.into_string().ok().as_deref(), Some("cdef"));
        assert_eq!(Body::empty().known_len(), Some(0));
    }

    #[test]
    fn invalid_utf8_is_a_typed_error() {
        let err = Body::from(vec![0xff, 0xfe]).into_string().err();
        assert!(matches!(err, Some(Error::InvalidBody { .. })), "{err:?}");
    }
}
