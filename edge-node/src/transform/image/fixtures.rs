//! Test images, made in code: no binary files in the repository.

#![allow(clippy::unwrap_used)]

use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{Delay, Frame, ImageEncoder, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// A smooth colour gradient with a diagonal stripe: photo-like enough for a lossy encoder.
pub fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let r = (x * 255 / width.max(1)) as u8;
        let g = (y * 255 / height.max(1)) as u8;
        let b = if (x + y) % 64 < 32 { 200 } else { 60 };
        Rgb([r, g, b])
    })
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = gradient(width, height);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(image.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// Left half opaque gradient, right half fully transparent.
pub fn png_with_alpha(width: u32, height: u32) -> Vec<u8> {
    let base = gradient(width, height);
    let image = RgbaImage::from_fn(width, height, |x, y| {
        let Rgb([r, g, b]) = *base.get_pixel(x, y);
        Rgba([r, g, b, if x < width / 2 { 255 } else { 0 }])
    });
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(image.as_raw(), width, height, image::ExtendedColorType::Rgba8).unwrap();
    out
}

/// Two frames: solid red, then solid blue.
pub fn gif_two_frames(width: u32, height: u32) -> Vec<u8> {
    let frame = |colour: [u8; 4]| {
        Frame::from_parts(RgbaImage::from_pixel(width, height, Rgba(colour)), 0, 0, Delay::from_numer_denom_ms(100, 1))
    };
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.encode_frames([frame([255, 0, 0, 255]), frame([0, 0, 255, 255])]).unwrap();
    }
    out
}

pub fn webp(width: u32, height: u32) -> Vec<u8> {
    let image = gradient(width, height);
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(image.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6).
pub fn jpeg_rotated(width: u32, height: u32) -> Vec<u8> {
    let plain = jpeg(width, height);
    // TIFF, big-endian: one IFD entry, tag 0x0112 (Orientation), SHORT, count 1, value 6.
    let tiff: &[u8] = &[
        b'M', b'M', 0, 42, 0, 0, 0, 8, // header, IFD at offset 8
        0, 1, // one entry
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, // orientation = 6
        0, 0, 0, 0, // no next IFD
    ];
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(tiff);
    let length = u16::try_from(app1.len() + 2).unwrap().to_be_bytes();
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1, length[0], length[1]];
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]); // the rest, after SOI
    out
}

/// A valid PNG header claiming `width` x `height` RGBA pixels, with almost no data: a
/// decompression bomb's shape, without the bomb.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, adaptive filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The format of `bytes` by its magic number, checked by hand (not by the code under test).
pub fn magic(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => "jpeg",
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => "png",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "webp",
        [_, _, _, _, b'f', b't', b'y', b'p', b'a', b'v', b'i', b'f', ..] => "avif",
        [b'G', b'I', b'F', b'8', ..] => "gif",
        _ => "unknown",
    }
}

/// Dimensions of an encoded image: decoded by `image`, except AVIF (no decoder in this
/// build), read from its `ispe` (image spatial extent) property.
pub fn dimensions(bytes: &[u8]) -> (u32, u32) {
    if magic(bytes) == "avif" {
        let at = bytes.windows(4).position(|w| w == b"ispe").unwrap();
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        return (be(at + 8), be(at + 12)); // after "ispe": version/flags, width, height
    }
    let format = image::guess_format(bytes).unwrap();
    let image = image::load(Cursor::new(bytes), format).unwrap();
    (image.width(), image.height())
}

pub fn decode(bytes: &[u8]) -> image::DynamicImage {
    let format: ImageFormat = image::guess_format(bytes).unwrap();
    image::load(Cursor::new(bytes), format).unwrap()
}
