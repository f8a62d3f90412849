//! The one response body type every phase returns, and small constructors for it.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: a buffer, a cached object's chunks, a shared in-flight fetch, or an upstream stream.
pub type EdgeBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> EdgeBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> EdgeBody {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync()
}
