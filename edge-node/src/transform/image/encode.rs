//! Pixels to bytes in the output format. Metadata is never carried over.

use image::codecs::avif::AvifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ExtendedColorType, ImageEncoder, RgbImage, RgbaImage};

use super::decode::SourceFormat;
use super::resolve::OutputFormat;
use super::transcode::TranscodeError;

/// A concrete output encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Jpeg,
    Png,
    Webp,
    Avif,
}

impl Encoding {
    /// `Source` keeps the source's format, except GIF: only its first frame is kept, and PNG
    /// holds that frame (palette, transparency) without loss, where re-quantising to GIF would not.
    pub fn for_output(format: OutputFormat, source: SourceFormat) -> Encoding {
        match (format, source) {
            (OutputFormat::Jpeg, _) | (OutputFormat::Source, SourceFormat::Jpeg) => Encoding::Jpeg,
            (OutputFormat::Png, _) | (OutputFormat::Source, SourceFormat::Png | SourceFormat::Gif) => Encoding::Png,
            (OutputFormat::Webp, _) | (OutputFormat::Source, SourceFormat::Webp) => Encoding::Webp,
            (OutputFormat::Avif, _) => Encoding::Avif,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Jpeg => "image/jpeg",
            Encoding::Png => "image/png",
            Encoding::Webp => "image/webp",
            Encoding::Avif => "image/avif",
        }
    }

    /// Bounded label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Jpeg => "jpeg",
            Encoding::Png => "png",
            Encoding::Webp => "webp",
            Encoding::Avif => "avif",
        }
    }
}

/// Largest side libwebp encodes.
const WEBP_MAX_SIDE: u32 = 16_383;

/// Encodes `image`; `quality` (1 to 100) applies to JPEG, WebP and AVIF, `avif_speed` (1 to 10)
/// to AVIF.
pub fn encode(image: DynamicImage, encoding: Encoding, quality: u8, avif_speed: u8) -> Result<Vec<u8>, TranscodeError> {
    let fail = |message: String| TranscodeError::Encode { format: encoding.as_str(), message };
    let (width, height) = (image.width(), image.height());
    let mut out = Vec::new();
    match (encoding, pixels(image)) {
        (Encoding::Jpeg, pixels) => {
            // JPEG has no alpha: transparent pixels are composed over white.
            let rgb = match pixels {
                Pixels::Rgb(rgb) => rgb,
                Pixels::Rgba(rgba) => over_white(&rgba),
            };
            JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
                .write_image(rgb.as_raw(), width, height, ExtendedColorType::Rgb8)
                .map_err(|e| fail(e.to_string()))?;
        }
        (Encoding::Png, pixels) => {
            let (raw, color) = pixels.raw();
            PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
                .write_image(raw, width, height, color)
                .map_err(|e| fail(e.to_string()))?;
        }
        (Encoding::Webp, pixels) => {
            if width > WEBP_MAX_SIDE || height > WEBP_MAX_SIDE {
                return Err(fail(format!("{width}x{height} is above WebP's {WEBP_MAX_SIDE} pixels a side")));
            }
            let encoder = match &pixels {
                Pixels::Rgb(rgb) => webp::Encoder::from_rgb(rgb.as_raw(), width, height),
                Pixels::Rgba(rgba) => webp::Encoder::from_rgba(rgba.as_raw(), width, height),
            };
            let encoded =
                encoder.encode_simple(false, f32::from(quality.clamp(1, 100))).map_err(|e| fail(format!("{e:?}")))?;
            out.extend_from_slice(&encoded);
        }
        (Encoding::Avif, pixels) => {
            let (raw, color) = pixels.raw();
            // Threads: rav1e's work goes to rayon's global pool (one thread per core), shared by
            // every AVIF encode in flight, not a pool per encode.
            AvifEncoder::new_with_speed_quality(&mut out, avif_speed.clamp(1, 10), quality.clamp(1, 100))
                .write_image(raw, width, height, color)
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    Ok(out)
}

/// 8-bit RGB or RGBA: what every encoder here takes. An alpha channel that is opaque everywhere
/// is dropped (smaller files; AVIF would otherwise encode a second, alpha image).
enum Pixels {
    Rgb(RgbImage),
    Rgba(RgbaImage),
}

impl Pixels {
    fn raw(&self) -> (&[u8], ExtendedColorType) {
        match self {
            Pixels::Rgb(rgb) => (rgb.as_raw(), ExtendedColorType::Rgb8),
            Pixels::Rgba(rgba) => (rgba.as_raw(), ExtendedColorType::Rgba8),
        }
    }
}

fn pixels(image: DynamicImage) -> Pixels {
    if !image.color().has_alpha() {
        return Pixels::Rgb(image.into_rgb8());
    }
    let rgba = image.into_rgba8();
    if rgba.as_raw().chunks_exact(4).all(|p| p[3] == u8::MAX) {
        Pixels::Rgb(DynamicImage::ImageRgba8(rgba).into_rgb8())
    } else {
        Pixels::Rgba(rgba)
    }
}

fn over_white(rgba: &RgbaImage) -> RgbImage {
    let mut raw = Vec::with_capacity(rgba.as_raw().len() / 4 * 3);
    for p in rgba.as_raw().chunks_exact(4) {
        let alpha = u32::from(p[3]);
        for &channel in &p[..3] {
            let blended = (u32::from(channel) * alpha + 255 * (255 - alpha) + 127) / 255;
            raw.push(u8::try_from(blended).unwrap_or(u8::MAX));
        }
    }
    // Same dimensions, 3 bytes a pixel: the buffer always fits.
    RgbImage::from_raw(rgba.width(), rgba.height(), raw).unwrap_or_default()
}
