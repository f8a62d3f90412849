//! Transcodes of real images made in code: each fit and format, decoded back and checked.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use outpost_config::ImagesConfig;

use super::fixtures::{self, decode, dimensions, magic};
use super::{Fit, OutputFormat, ResolvedOps, TranscodeError, transcode};

fn cfg() -> ImagesConfig {
    ImagesConfig { enabled: true, ..ImagesConfig::default() }
}

fn ops(width: Option<u32>, height: Option<u32>, fit: Fit, format: OutputFormat) -> ResolvedOps {
    ResolvedOps { width, height, fit, format, quality: 80 }
}

#[test]
fn every_format_from_every_source() {
    let sources = [
        ("jpeg", fixtures::jpeg(600, 450)),
        ("png", fixtures::png_with_alpha(600, 450)),
        ("gif", fixtures::gif_two_frames(600, 450)),
        ("webp", fixtures::webp(600, 450)),
    ];
    let formats = [
        (OutputFormat::Jpeg, "jpeg"),
        (OutputFormat::Png, "png"),
        (OutputFormat::Webp, "webp"),
        (OutputFormat::Avif, "avif"),
    ];
    for (source_name, source) in &sources {
        for (format, want) in formats {
            let got = transcode(source, &ops(Some(120), None, Fit::ScaleDown, format), &cfg())
                .unwrap_or_else(|e| panic!("{source_name} -> {want}: {e}"));
            assert_eq!(magic(&got.body), want, "{source_name} -> {want}");
            assert_eq!(got.content_type, format!("image/{want}"), "{source_name} -> {want}");
            assert_eq!((got.width, got.height), (120, 90), "{source_name} -> {want}");
            assert_eq!(dimensions(&got.body), (120, 90), "{source_name} -> {want}");
        }
        // `Source` keeps the format, except GIF, which becomes PNG.
        let got = transcode(source, &ops(Some(120), None, Fit::ScaleDown, OutputFormat::Source), &cfg()).unwrap();
        let want = if *source_name == "gif" { "png" } else { source_name };
        assert_eq!(magic(&got.body), want, "{source_name} -> source");
    }
}

#[test]
fn each_fit_from_a_2000x1500_jpeg() {
    let source = fixtures::jpeg(2000, 1500);
    let cases = [
        (Some(400), None, Fit::ScaleDown, (400, 300)),
        (Some(400), Some(400), Fit::ScaleDown, (400, 300)),
        (Some(400), Some(400), Fit::Contain, (400, 300)),
        (Some(400), Some(400), Fit::Cover, (400, 400)),
        (Some(400), Some(400), Fit::Crop, (400, 400)),
        (None, Some(150), Fit::ScaleDown, (200, 150)),
        // Enlarging: contain and cover may, scale-down and crop may not.
        (Some(3000), Some(3000), Fit::Contain, (3000, 2250)),
        (Some(3000), Some(3000), Fit::ScaleDown, (2000, 1500)),
        (Some(2500), Some(1000), Fit::Cover, (2500, 1000)),
        (Some(2500), Some(1000), Fit::Crop, (2000, 1000)),
    ];
    for (width, height, fit, want) in cases {
        let got = transcode(&source, &ops(width, height, fit, OutputFormat::Webp), &cfg()).unwrap();
        assert_eq!((got.width, got.height), want, "{width:?}x{height:?} {fit:?}");
        assert_eq!(dimensions(&got.body), want, "{width:?}x{height:?} {fit:?}");
    }
}

#[test]
fn cover_keeps_the_centre() {
    // 300x100: left third red, middle green, right blue. Cover to 100x100 keeps the green.
    let image = image::RgbImage::from_fn(300, 100, |x, _| match x / 100 {
        0 => image::Rgb([255, 0, 0]),
        1 => image::Rgb([0, 255, 0]),
        _ => image::Rgb([0, 0, 255]),
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let got = transcode(&png, &ops(Some(50), Some(50), Fit::Cover, OutputFormat::Png), &cfg()).unwrap();
    let out = decode(&got.body).to_rgb8();
    assert_eq!((out.width(), out.height()), (50, 50));
    for (x, y) in [(2, 2), (25, 25), (47, 47)] {
        let [r, g, b] = out.get_pixel(x, y).0;
        assert!(g > 200 && r < 40 && b < 40, "({x}, {y}) is {r},{g},{b}");
    }
}

#[test]
fn alpha_is_kept_where_the_format_has_it_and_flattened_on_white_in_jpeg() {
    let source = fixtures::png_with_alpha(200, 100);
    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let got = transcode(&source, &ops(None, None, Fit::ScaleDown, format), &cfg()).unwrap();
        let out = decode(&got.body).to_rgba8();
        assert_eq!(out.get_pixel(10, 50).0[3], 255, "{format:?}");
        assert_eq!(out.get_pixel(190, 50).0[3], 0, "{format:?}");
    }
    let got = transcode(&source, &ops(None, None, Fit::ScaleDown, OutputFormat::Jpeg), &cfg()).unwrap();
    let [r, g, b] = decode(&got.body).to_rgb8().get_pixel(190, 50).0;
    assert!(r > 245 && g > 245 && b > 245, "transparent became {r},{g},{b}");
}

#[test]
fn gif_gives_its_first_frame() {
    let got =
        transcode(&fixtures::gif_two_frames(64, 64), &ops(None, None, Fit::ScaleDown, OutputFormat::Source), &cfg())
            .unwrap();
    let [r, g, b, a] = decode(&got.body).to_rgba8().get_pixel(32, 32).0;
    assert_eq!((r, g, b, a), (255, 0, 0, 255), "the first frame is red");
}

#[test]
fn exif_orientation_is_applied() {
    let source = fixtures::jpeg_rotated(200, 100);
    let got = transcode(&source, &ops(None, None, Fit::ScaleDown, OutputFormat::Png), &cfg()).unwrap();
    assert_eq!((got.width, got.height), (100, 200));
    assert_eq!(dimensions(&got.body), (100, 200));
}

#[test]
fn quality_changes_lossy_output() {
    let source = fixtures::jpeg(160, 120);
    for format in [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Avif] {
        let size = |quality| {
            let ops = ResolvedOps { quality, ..ops(None, None, Fit::ScaleDown, format) };
            transcode(&source, &ops, &cfg()).unwrap().body.len()
        };
        let (low, high) = (size(20), size(95));
        assert!(low < high, "{format:?}: q20 {low} bytes, q95 {high} bytes");
    }
}

#[test]
fn outputs_are_held_to_max_width_and_height() {
    let small = ImagesConfig { max_width: 300, max_height: 300, ..cfg() };
    let got =
        transcode(&fixtures::jpeg(2000, 1500), &ops(None, None, Fit::ScaleDown, OutputFormat::Jpeg), &small).unwrap();
    assert_eq!((got.width, got.height), (300, 225));
}

#[test]
fn pixel_bombs_are_refused_before_decoding() {
    let bomb = fixtures::png_claiming(100_000, 100_000);
    assert!(bomb.len() < 100, "{} bytes", bomb.len());
    let started = Instant::now();
    let got = transcode(&bomb, &ops(Some(100), None, Fit::ScaleDown, OutputFormat::Png), &cfg());
    match got {
        Err(TranscodeError::TooLarge { limit: "max_source_pixels", message }) => {
            assert!(message.contains("100000x100000"), "{message}")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(started.elapsed().as_secs() < 1, "refused from the header, not by decoding");

    // Just above a small limit, and just within it.
    let tight = ImagesConfig { max_source_pixels: 600 * 450 - 1, ..cfg() };
    let got = transcode(&fixtures::jpeg(600, 450), &ops(None, None, Fit::ScaleDown, OutputFormat::Jpeg), &tight);
    assert_eq!(got.as_ref().map_err(TranscodeError::kind).err(), Some("too_large"), "{got:?}");
    let exact = ImagesConfig { max_source_pixels: 600 * 450, ..cfg() };
    assert!(transcode(&fixtures::jpeg(600, 450), &ops(None, None, Fit::ScaleDown, OutputFormat::Jpeg), &exact).is_ok());
}

#[test]
fn sources_above_max_source_bytes_are_refused() {
    let source = fixtures::jpeg(600, 450);
    let tight = ImagesConfig { max_source_bytes: outpost_config::ByteSize(source.len() as u64 - 1), ..cfg() };
    let got = transcode(&source, &ops(None, None, Fit::ScaleDown, OutputFormat::Jpeg), &tight);
    assert!(matches!(got, Err(TranscodeError::TooLarge { limit: "max_source_bytes", .. })), "{got:?}");
}

#[test]
fn bodies_that_are_not_images() {
    let any = ops(Some(100), None, Fit::ScaleDown, OutputFormat::Webp);
    let cases: [(&[u8], &str); 5] = [
        (b"<!doctype html><p>hello</p>", "not_an_image"),
        (b"", "not_an_image"),
        // An AVIF header: an image, but not one this node decodes.
        (b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf", "not_an_image"),
        // The right magic, then nothing: a broken image.
        (b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", "decode"),
        (b"\xFF\xD8\xFF\xE0garbage", "decode"),
    ];
    for (body, kind) in cases {
        let got = transcode(body, &any, &cfg());
        let error = got.err().unwrap_or_else(|| panic!("{body:?} transcoded"));
        assert_eq!(error.kind(), kind, "{body:?}: {error}");
        assert!(error.not_decodable(), "{error}");
    }
    let error = transcode(b"<html>", &any, &cfg()).err().unwrap();
    assert_eq!(
        error.to_string(),
        "not an image this node decodes (no image signature); expected JPEG, PNG, WebP or GIF"
    );
    let error = transcode(b"\0\0\0\x1cftypavif\0\0\0\0", &any, &cfg()).err().unwrap();
    assert!(error.to_string().contains("(avif)"), "{error}");
}

#[test]
fn truncated_images_are_decode_errors() {
    let source = fixtures::jpeg(600, 450);
    let got = transcode(&source[..source.len() / 3], &ops(None, None, Fit::ScaleDown, OutputFormat::Png), &cfg());
    // zune-jpeg fills a truncated scan with grey rather than failing; either is acceptable,
    // never a panic.
    if let Err(e) = got {
        assert_eq!(e.kind(), "decode", "{e}");
    }
    let png = fixtures::png_with_alpha(600, 450);
    let got = transcode(&png[..png.len() / 2], &ops(None, None, Fit::ScaleDown, OutputFormat::Png), &cfg());
    assert_eq!(got.err().map(|e| e.kind()), Some("decode"));
}

/// The benchmark: a 2000x1500 JPEG to 400-pixel WebP and AVIF, stage by stage, beside
/// libvips' `vipsthumbnail` on the same file in the same run when it is installed. Prints
/// figures; asserts nothing about time.
///
/// `cargo test --release -p edge-node --lib transform::image::tests::bench -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench() {
    use std::time::Duration;

    use image::imageops::FilterType;

    const RUNS: usize = 7;
    fn median(mut runs: Vec<Duration>) -> f64 {
        runs.sort();
        runs[runs.len() / 2].as_secs_f64() * 1000.0
    }
    fn time<T>(mut f: impl FnMut() -> T) -> (f64, T) {
        let mut runs = Vec::new();
        let mut last = None;
        for _ in 0..RUNS {
            let started = Instant::now();
            last = Some(f());
            runs.push(started.elapsed());
        }
        (median(runs), last.unwrap())
    }

    let source = fixtures::jpeg(2000, 1500);
    let cfg = cfg();
    println!("source: 2000x1500 JPEG, {} bytes; median of {RUNS} runs", source.len());

    let (ms, decoded) = time(|| super::decode::decode(&source, &cfg).unwrap().image);
    println!("  decode                         {ms:7.1} ms");
    for (name, filter) in
        [("Lanczos3", FilterType::Lanczos3), ("CatmullRom", FilterType::CatmullRom), ("Triangle", FilterType::Triangle)]
    {
        let (ms, _) = time(|| decoded.resize_exact(400, 300, filter));
        println!("  resize to 400x300, {name:<11} {ms:7.1} ms");
    }
    let (ms, _) = time(|| decoded.thumbnail_exact(400, 300));
    println!("  resize to 400x300, thumbnail   {ms:7.1} ms");
    let (ms, halfway) = time(|| decoded.thumbnail_exact(800, 600));
    println!("  box to 800x600                 {ms:7.1} ms");
    for (name, filter) in [("Lanczos3", FilterType::Lanczos3), ("Triangle", FilterType::Triangle)] {
        let (ms, _) = time(|| halfway.resize_exact(400, 300, filter));
        println!("  then {name:<8} to 400x300      {ms:7.1} ms");
    }
    let (ms, _) = time(|| super::transcode::resize(decoded.clone(), 400, 300));
    println!("  resize as transcode does       {ms:7.1} ms");
    let small = decoded.resize_exact(400, 300, FilterType::Lanczos3);
    for encoding in [super::Encoding::Webp, super::Encoding::Avif, super::Encoding::Jpeg] {
        for speed in if encoding == super::Encoding::Avif { vec![6, 8, 9, 10] } else { vec![cfg.avif_speed] } {
            let (ms, body) =
                time(|| super::encode::encode(small.clone(), encoding, cfg.default_quality, speed).unwrap());
            let speed = if encoding == super::Encoding::Avif { format!(" speed {speed:>2}") } else { String::new() };
            println!(
                "  encode {:<4} q{}{speed:<9}      {ms:7.1} ms, {} bytes",
                encoding.as_str(),
                cfg.default_quality,
                body.len()
            );
        }
    }

    let mut ours = Vec::new();
    for (format, name) in [(OutputFormat::Webp, "webp"), (OutputFormat::Avif, "avif")] {
        let ops = ops(Some(400), None, Fit::ScaleDown, format);
        let ops = ResolvedOps { quality: 75, ..ops };
        let (ms, out) = time(|| transcode(&source, &ops, &cfg).unwrap());
        println!(
            "transcode to 400px {name} q75 (avif speed {}): {ms:7.1} ms, {} bytes",
            cfg.avif_speed,
            out.body.len()
        );
        ours.push((name, ms));
    }

    // libvips, on the same file, in the same run.
    let dir = std::env::temp_dir().join(format!("outpost-image-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.jpg");
    std::fs::write(&input, &source).unwrap();
    for (name, ms_ours) in ours {
        let output = dir.join(format!("out.{name}[Q=75]"));
        let run = || {
            std::process::Command::new("vipsthumbnail").arg(&input).arg("-s").arg("400").arg("-o").arg(&output).status()
        };
        match run() {
            Ok(status) if status.success() => {
                let (ms, _) = time(run);
                let size = std::fs::metadata(dir.join(format!("out.{name}"))).map(|m| m.len()).unwrap_or(0);
                println!(
                    "vipsthumbnail -s 400 to {name} Q=75 (process included): {ms:7.1} ms, {size} bytes; ours/vips = {:.2}",
                    ms_ours / ms
                );
            }
            _ => println!("vipsthumbnail not run (not installed?)"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
