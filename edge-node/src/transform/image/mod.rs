//! Image resizing and format conversion at the edge (`[services.images]`).
//!
//! How one image request flows, and where each step lives:
//!
//! 1. [`ImageRequest::parse`] (`params`): the URL, in Fastly's query style
//!    (`/a.jpg?width=400&format=auto`) or Cloudflare's path style
//!    (`/cdn-cgi/image/width=400,format=auto/a.jpg`), becomes [`ImageOps`] and the source path
//!    the origin and the base cache key see (`/a.jpg`). A bad parameter is a [`ParamError`]
//!    (400, naming the parameter).
//! 2. [`ImageOps::resolve`] (`resolve`): `Accept` decides `format=auto`, `dpr` is multiplied
//!    in; [`ResolvedOps::descriptor`] is the variant part of the cache key, equal for requests
//!    that mean the same image.
//! 3. [`Transcoder::run`] (`pool`): waits for one of `limits.max_concurrent_transcodes` slots
//!    (or fails at once with `Busy`), then runs [`transcode()`] on the blocking pool.
//! 4. [`transcode()`] (`transcode`): sniff the format (`decode`), read the size from the header
//!    and refuse a decompression bomb before decoding, decode, crop and resize (`geometry`),
//!    encode (`encode`).
//!
//! ```
//! use edge_node::transform::image::{ImageRequest, UrlStyle};
//! use outpost_config::ImagesConfig;
//!
//! let cfg = ImagesConfig { enabled: true, ..ImagesConfig::default() };
//! let uri = "/cdn-cgi/image/w=200,dpr=2,format=auto/img/a.jpg?v=3".parse().unwrap();
//! let request = ImageRequest::parse(&uri, &cfg).unwrap().expect("an image request");
//! assert_eq!(request.style, UrlStyle::Path);
//! assert_eq!(request.source, "/img/a.jpg?v=3");
//!
//! let accept = http::HeaderValue::from_static("image/avif,image/webp,*/*");
//! let ops = request.ops.resolve(Some(&accept));
//! assert_eq!(ops.descriptor(), "img1:w=400,fit=scale-down,f=avif,q=85");
//!
//! // The query style of the same request names the same source and the same variant.
//! let uri = "/img/a.jpg?v=3&width=400&format=auto".parse().unwrap();
//! let request = ImageRequest::parse(&uri, &cfg).unwrap().expect("an image request");
//! assert_eq!(request.source, "/img/a.jpg?v=3");
//! assert_eq!(request.ops.resolve(Some(&accept)).descriptor(), "img1:w=400,fit=scale-down,f=avif,q=85");
//! ```

mod decode;
mod encode;
mod geometry;
mod params;
mod pool;
mod resolve;
mod transcode;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use decode::SourceFormat;
pub use encode::Encoding;
pub use geometry::{Bounds, Plan, Rect, plan};
pub use params::{Dpr, Fit, FormatReq, ImageOps, ImageRequest, ParamError, UrlStyle};
pub use pool::Transcoder;
pub use resolve::{DESCRIPTOR_VERSION, OutputFormat, ResolvedOps};
pub use transcode::{TranscodeError, Transcoded, transcode};
