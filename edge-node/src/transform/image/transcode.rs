//! One transcode: sniff, check the header against the limits, decode, crop and resize per the
//! fit, encode. Synchronous and CPU-bound: run it through [`Transcoder`](super::Transcoder),
//! never on an async task.

use bytes::Bytes;
use image::DynamicImage;
use image::imageops::FilterType;
use outpost_config::{ImagesConfig, MAX_OUTPUT_SIDE};

use super::decode::decode;
use super::encode::{Encoding, encode};
use super::geometry::{Bounds, Plan, plan};
use super::resolve::ResolvedOps;

/// A transcoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcoded {
    pub body: Bytes,
    /// `image/jpeg`, `image/png`, `image/webp` or `image/avif`.
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Why a transcode did not happen. See [`TranscodeError::kind`] for what the client should see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    /// The body is not a JPEG, PNG, WebP or GIF image (by its first bytes).
    #[error("not an image this node decodes ({found}); expected JPEG, PNG, WebP or GIF")]
    NotAnImage { found: &'static str },
    /// Above `images.{limit}`, found before decoding any pixel where the header tells.
    #[error("too large for images.{limit}: {message}")]
    TooLarge { limit: &'static str, message: String },
    /// The image's own data is broken or unsupported (e.g. a truncated JPEG).
    #[error("decode {format}: {message}")]
    Decode { format: &'static str, message: String },
    #[error("encode {format}: {message}")]
    Encode { format: &'static str, message: String },
    /// `limits.max_queued_transcodes` transcodes are already waiting for a slot.
    #[error("busy: {max_queued} transcodes already waiting (limits.max_queued_transcodes)")]
    Busy { max_queued: usize },
    /// The transcode task died (a codec panicked); our bug or a codec's, not the client's.
    #[error("transcode task failed: {0}")]
    Internal(String),
}

impl TranscodeError {
    /// Bounded label for metrics and logs.
    ///
    /// What the client sees is the pipeline's choice; the intended mapping: `not_an_image`
    /// and `decode` are a body that is not a decodable image, served unmodified (415 when the
    /// service is `strict`); `too_large`, `encode`, `busy` and `internal` serve the original
    /// too (logged; never stored as the variant).
    pub fn kind(&self) -> &'static str {
        match self {
            TranscodeError::NotAnImage { .. } => "not_an_image",
            TranscodeError::TooLarge { .. } => "too_large",
            TranscodeError::Decode { .. } => "decode",
            TranscodeError::Encode { .. } => "encode",
            TranscodeError::Busy { .. } => "busy",
            TranscodeError::Internal(_) => "internal",
        }
    }

    /// Whether the origin's body is not a decodable image (what `strict` answers with 415).
    pub fn not_decodable(&self) -> bool {
        matches!(self, TranscodeError::NotAnImage { .. } | TranscodeError::Decode { .. })
    }
}

/// Transcodes `src` per `ops` within `cfg`'s limits. `Source` output keeps the source's format;
/// a GIF source (first frame) becomes PNG.
pub fn transcode(src: &[u8], ops: &ResolvedOps, cfg: &ImagesConfig) -> Result<Transcoded, TranscodeError> {
    let decoded = decode(src, cfg)?;
    let bounds = Bounds {
        max_width: cfg.max_width.min(MAX_OUTPUT_SIDE),
        max_height: cfg.max_height.min(MAX_OUTPUT_SIDE),
        max_pixels: cfg.max_source_pixels,
    };
    let image = decoded.image;
    let plan = plan(image.width(), image.height(), ops.width, ops.height, ops.fit, bounds);
    let image = apply(image, &plan);
    let encoding = Encoding::for_output(ops.format, decoded.format);
    let (width, height) = (image.width(), image.height());
    let body = encode(image, encoding, ops.quality, cfg.avif_speed)?;
    Ok(Transcoded { body: Bytes::from(body), content_type: encoding.content_type(), width, height })
}

fn apply(image: DynamicImage, plan: &Plan) -> DynamicImage {
    let image = match plan.crop {
        Some(r) => image.crop_imm(r.x, r.y, r.width, r.height),
        None => image,
    };
    if (image.width(), image.height()) == (plan.width, plan.height) {
        return image;
    }
    // 16-bit and float sources resize as 8-bit: every output format here is 8-bit.
    let image = match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.into_rgba8()),
        other => DynamicImage::ImageRgb8(other.into_rgb8()),
    };
    resize(image, plan.width, plan.height)
}

/// Lanczos3, as libvips and Fastly use by default. A reduction by 4 or more first averages
/// blocks down to twice the target (free of aliasing), so that Lanczos3 only makes the last
/// step, as libvips does: for 2000x1500 to 400x300 about a fifth faster than Lanczos3 alone
/// (the `bench` test prints both).
pub(super) fn resize(image: DynamicImage, width: u32, height: u32) -> DynamicImage {
    let image = if image.width() >= width.saturating_mul(4) && image.height() >= height.saturating_mul(4) {
        image.thumbnail_exact(2 * width, 2 * height)
    } else {
        image
    };
    image.resize_exact(width, height, FilterType::Lanczos3)
}
