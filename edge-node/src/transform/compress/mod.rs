//! Compression in the transform phase: which coding a client gets, whether a response is
//! worth compressing, and the streaming codecs.
//!
//! - [`negotiate::choose`]: `Accept-Encoding` (RFC 9110 §12.5.3) and the service's `prefer`
//!   order → a [`Coding`].
//! - [`types::compressible`]: `Content-Type` against the service's `types`.
//! - [`codec`]: synchronous streaming [`Encoder`] and bounded [`Decoder`] for br, zstd, gzip.
//! - [`stream`]: [`encode_body`] and [`decode_body`], the codecs applied to an
//!   [`EdgeBody`](crate::body::EdgeBody) as it streams, with the work on the blocking pool.
//!
//! The pipeline decides when (cacheable or not, the origin's own `Content-Encoding`, sizes);
//! this module holds no policy beyond the codings' rules.

pub mod budget;
pub mod codec;
pub mod coding;
pub mod negotiate;
pub mod stream;
pub mod types;

pub use codec::{CHUNK, DecodeLimitExceeded, Decoder, Encoder};
pub use coding::Coding;
pub use negotiate::choose;
pub use stream::{Op, TransformError, decode_body, encode_body};
pub use types::compressible;

#[cfg(test)]
mod test_data;
