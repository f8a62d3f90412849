//! Source bytes to pixels, refusing what is too large before any pixel is decoded.
//!
//! Order matters for decompression bombs: the format is sniffed from the magic bytes, the
//! header alone gives the dimensions, and only a source within `max_source_pixels` is decoded,
//! under an allocation budget (`image::Limits::max_alloc`) of 4 bytes per allowed pixel.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use outpost_config::ImagesConfig;

use super::transcode::TranscodeError;

/// The source formats decoded here. GIF: the first frame only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::Webp => "webp",
            SourceFormat::Gif => "gif",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            SourceFormat::Jpeg => ImageFormat::Jpeg,
            SourceFormat::Png => ImageFormat::Png,
            SourceFormat::Webp => ImageFormat::WebP,
            SourceFormat::Gif => ImageFormat::Gif,
        }
    }
}

/// A decoded source, EXIF orientation applied (the re-encoded output carries no metadata, so an
/// upright picture needs its pixels turned).
pub struct Decoded {
    pub image: DynamicImage,
    pub format: SourceFormat,
}

/// Allocation headroom beyond 4 bytes per pixel, for decoders' own buffers on small images.
const DECODE_SLACK: u64 = 16 << 20;

/// The format of `src`, from its first bytes.
pub fn sniff(src: &[u8]) -> Result<SourceFormat, TranscodeError> {
    match image::guess_format(src) {
        Ok(ImageFormat::Jpeg) => Ok(SourceFormat::Jpeg),
        Ok(ImageFormat::Png) => Ok(SourceFormat::Png),
        Ok(ImageFormat::WebP) => Ok(SourceFormat::Webp),
        Ok(ImageFormat::Gif) => Ok(SourceFormat::Gif),
        Ok(other) => {
            let found = other.extensions_str().first().copied().unwrap_or("another image format");
            Err(TranscodeError::NotAnImage { found })
        }
        Err(_) => Err(TranscodeError::NotAnImage { found: "no image signature" }),
    }
}

pub fn decode(src: &[u8], cfg: &ImagesConfig) -> Result<Decoded, TranscodeError> {
    let max_bytes = cfg.max_source_bytes.as_u64();
    if src.len() as u64 > max_bytes {
        return Err(TranscodeError::TooLarge {
            limit: "max_source_bytes",
            message: format!("source is {} bytes, more than {max_bytes}", src.len()),
        });
    }
    let format = sniff(src)?;
    let budget = cfg.max_source_pixels.saturating_mul(4).saturating_add(DECODE_SLACK);
    let mut limits = Limits::default();
    limits.max_alloc = Some(budget);
    let mut reader = ImageReader::with_format(Cursor::new(src), format.image_format());
    reader.limits(limits);
    let fail = |e| from_image_error(e, format);
    // Header only: no pixel is decoded before the checks below.
    let mut decoder = reader.into_decoder().map_err(fail)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > cfg.max_source_pixels {
        return Err(TranscodeError::TooLarge {
            limit: "max_source_pixels",
            message: format!("source is {width}x{height} = {pixels} pixels, more than {}", cfg.max_source_pixels),
        });
    }
    if pixels == 0 {
        return Err(TranscodeError::Decode { format: format.as_str(), message: "the image is empty".to_owned() });
    }
    if decoder.total_bytes() > budget {
        return Err(TranscodeError::TooLarge {
            limit: "max_source_pixels",
            message: format!(
                "source decodes to {} bytes ({width}x{height}, {:?}), more than 4 bytes per allowed pixel",
                decoder.total_bytes(),
                decoder.color_type()
            ),
        });
    }
    // A broken orientation tag is not worth refusing the image for.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    image.apply_orientation(orientation);
    Ok(Decoded { image, format })
}

fn from_image_error(error: ImageError, format: SourceFormat) -> TranscodeError {
    match error {
        ImageError::Limits(limit) => TranscodeError::TooLarge {
            limit: "max_source_pixels",
            message: format!("decoding the {} source: {limit}", format.as_str()),
        },
        other => TranscodeError::Decode { format: format.as_str(), message: other.to_string() },
    }
}
