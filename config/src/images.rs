//! `[services.images]`: the image URL API of one service (resize, fit, format, quality), in the
//! two styles users know: query parameters like Fastly's Image Optimizer
//! (`/img/a.jpg?width=400&format=auto`) and a path prefix like Cloudflare's
//! (`/cdn-cgi/image/width=400,format=auto/img/a.jpg`).
//!
//! The node-wide bound on concurrent work is `limits.max_concurrent_transcodes` (and
//! `limits.max_queued_transcodes`): one image burst on one service must not starve the others.

use serde::Deserialize;

use crate::units::ByteSize;

/// Largest output side any encoder here accepts: WebP's format limit (16383 pixels).
pub const MAX_OUTPUT_SIDE: u32 = 16_383;

/// Largest `max_source_pixels` accepted: 256 Mi pixels, 1GiB decoded as RGBA.
pub const MAX_SOURCE_PIXELS_LIMIT: u64 = 1 << 28;

/// `[services.images]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Serve the image URL API for this service. A service opts in, as with Fastly's Image
    /// Optimizer and Cloudflare's image transformations: with it off, `?width=` goes to the
    /// origin untouched and `path_prefix` is an ordinary path. Default: false.
    pub enabled: bool,
    /// Path prefix of the Cloudflare style: `{path_prefix}{options}/{source path}`, e.g.
    /// `/cdn-cgi/image/width=400,format=auto/img/a.jpg` fetches `/img/a.jpg` from the origin.
    /// Must start and end with `/` and hold no `?`, `#`, `%`, `,`, `=` or whitespace.
    /// Default: `"/cdn-cgi/image/"`.
    pub path_prefix: String,
    /// Accept the Fastly style: image parameters (`width`, `height`, `dpr`, `fit`, `format`,
    /// `quality`) in the query string of any path of the service. They are removed from the
    /// request the origin sees; other query parameters are passed on. Default: true.
    pub query: bool,
    /// An origin body that is not a decodable JPEG, PNG, WebP or GIF image gets 415 instead of
    /// the original body. Default: false (the original is served unmodified).
    pub strict: bool,
    /// Largest origin body transcoded; a larger one is served unmodified. The whole body is
    /// held in memory while it is transcoded. Default: 32MiB (a phone camera's JPEG is a few
    /// MB; Fastly stops at 50MB, Cloudflare at 100MB); 1KiB to 256MiB.
    pub max_source_bytes: ByteSize,
    /// Largest source image area, read from the image header before any pixel is decoded, so
    /// that a decompression bomb (a few bytes claiming 100000x100000) costs nothing; the
    /// original is served instead. Decoding may allocate 4 bytes per allowed pixel (so a 16-bit
    /// source above half of this may be refused too): with the default, 50 megapixels (a
    /// 48-megapixel phone photo fits; Cloudflare stops at 100, Fastly at 12000 pixels a side),
    /// up to 200MB per transcode in flight. Also bounds the output area.
    /// Default: 50000000; 1 to 268435456.
    pub max_source_pixels: u64,
    /// Largest `width` a request may ask for (after `dpr`); larger gets 400. Outputs are also
    /// scaled down to fit, e.g. a tall image resized by width only. Default: 8192 (Fastly's
    /// output limit); 1 to 16383 (WebP's).
    pub max_width: u32,
    /// Largest `height` a request may ask for (after `dpr`), as `max_width`. Default: 8192;
    /// 1 to 16383.
    pub max_height: u32,
    /// Quality of JPEG, WebP and AVIF output when the request gives none: the default of both
    /// Fastly (JPEG and WebP) and Cloudflare. Default: 85; 1 to 100.
    pub default_quality: u8,
    /// rav1e speed preset for AVIF output, 1 (slowest, smallest) to 10 (fastest); AVIF is by
    /// far the most expensive output. Measured for a 400x300 encode on two busy cores: 9 took
    /// 0.12s to 0.18s with rav1e's assembly (0.5s without), 8 twice as long for the same size,
    /// and 10 made files a third larger. Default: 9; 1 to 10.
    pub avif_speed: u8,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            path_prefix: "/cdn-cgi/image/".to_owned(),
            query: true,
            strict: false,
            max_source_bytes: ByteSize::mib(32),
            max_source_pixels: 50_000_000,
            max_width: 8192,
            max_height: 8192,
            default_quality: 85,
            avif_speed: 9,
        }
    }
}

impl ImagesConfig {
    /// Every problem with this section, as (field, message); the caller adds the path of the
    /// section (`services[2].images`).
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Err(why) = check_prefix(&self.path_prefix) {
            problems.push(("path_prefix", why));
        }
        let (min, max) = (ByteSize::kib(1), ByteSize::mib(256));
        if !(min..=max).contains(&self.max_source_bytes) {
            problems
                .push(("max_source_bytes", format!("{} is out of range; use {min} to {max}", self.max_source_bytes)));
        }
        let ranges = [
            ("max_source_pixels", self.max_source_pixels, MAX_SOURCE_PIXELS_LIMIT),
            ("max_width", self.max_width.into(), MAX_OUTPUT_SIDE.into()),
            ("max_height", self.max_height.into(), MAX_OUTPUT_SIDE.into()),
            ("default_quality", self.default_quality.into(), 100),
            ("avif_speed", self.avif_speed.into(), 10),
        ];
        for (field, value, max) in ranges {
            if !(1..=max).contains(&value) {
                problems.push((field, format!("{value} is out of range; use 1 to {max}")));
            }
        }
        problems
    }
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    const VALID: &str = "write a path that starts and ends with \"/\", e.g. \"/cdn-cgi/image/\"";
    if prefix.len() < 3 || !prefix.starts_with('/') || !prefix.ends_with('/') {
        return Err(format!("\"{prefix}\" is not a path prefix; {VALID}"));
    }
    let bad = |c: char| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '%' | ',' | '=');
    if let Some(c) = prefix.chars().find(|c| bad(*c)) {
        return Err(format!("\"{prefix}\" holds {c:?}, which cannot appear in a plain path prefix; {VALID}"));
    }
    if prefix.contains("//") {
        return Err(format!("\"{prefix}\" holds an empty segment (\"//\"); {VALID}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = "[node]\nname = \"edge-1\"\n[listen]\nhttp = \"127.0.0.1:0\"\n\
                        [[services]]\nname = \"shop\"\nhosts = [\"shop.example\"]\norigin = \"http://o\"\n";

    fn problems(images: &str) -> Vec<(String, String)> {
        let text = format!("{BASE}[services.images]\n{images}");
        match crate::parse(&text, Path::new("edge.toml")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    /// The documented defaults, written out, so that changing one changes this test too.
    #[test]
    fn absent_section_takes_the_documented_defaults() {
        let config = crate::parse(BASE, Path::new("edge.toml")).unwrap_or_else(|e| panic!("{e}"));
        let images = &config.services[0].images;
        assert_eq!(images, &ImagesConfig::default());
        assert!(!images.enabled);
        assert_eq!(images.path_prefix, "/cdn-cgi/image/");
        assert!(images.query);
        assert!(!images.strict);
        assert_eq!(images.max_source_bytes, ByteSize(32 << 20));
        assert_eq!(images.max_source_pixels, 50_000_000);
        assert_eq!((images.max_width, images.max_height), (8192, 8192));
        assert_eq!(images.default_quality, 85);
        assert_eq!(images.avif_speed, 9);
    }

    #[test]
    fn fields_parse() {
        let text = format!(
            "{BASE}[services.images]\nenabled = true\npath_prefix = \"/img/\"\nquery = false\nstrict = true\n\
             max_source_bytes = \"8MiB\"\nmax_source_pixels = 1000000\nmax_width = 2000\nmax_height = 1000\n\
             default_quality = 70\navif_speed = 6\n"
        );
        let config = crate::parse(&text, Path::new("edge.toml")).unwrap_or_else(|e| panic!("{e}"));
        let expected = ImagesConfig {
            enabled: true,
            path_prefix: "/img/".to_owned(),
            query: false,
            strict: true,
            max_source_bytes: ByteSize::mib(8),
            max_source_pixels: 1_000_000,
            max_width: 2000,
            max_height: 1000,
            default_quality: 70,
            avif_speed: 6,
        };
        assert_eq!(config.services[0].images, expected);
    }

    #[test]
    fn each_bound_names_its_field() {
        let cases = [
            ("path_prefix = \"cdn-cgi/image/\"", "path_prefix", "is not a path prefix; write a path that starts"),
            ("path_prefix = \"/cdn-cgi/image\"", "path_prefix", "is not a path prefix"),
            ("path_prefix = \"/\"", "path_prefix", "is not a path prefix"),
            ("path_prefix = \"/img?x/\"", "path_prefix", "holds '?'"),
            ("path_prefix = \"/my img/\"", "path_prefix", "holds ' '"),
            ("path_prefix = \"/a//b/\"", "path_prefix", "empty segment"),
            ("max_source_bytes = \"512B\"", "max_source_bytes", "512B is out of range; use 1KiB to 256MiB"),
            ("max_source_bytes = \"1GiB\"", "max_source_bytes", "use 1KiB to 256MiB"),
            ("max_source_pixels = 0", "max_source_pixels", "0 is out of range; use 1 to 268435456"),
            ("max_source_pixels = 268435457", "max_source_pixels", "use 1 to 268435456"),
            ("max_width = 0", "max_width", "0 is out of range; use 1 to 16383"),
            ("max_width = 16384", "max_width", "use 1 to 16383"),
            ("max_height = 20000", "max_height", "use 1 to 16383"),
            ("default_quality = 0", "default_quality", "use 1 to 100"),
            ("default_quality = 101", "default_quality", "use 1 to 100"),
            ("avif_speed = 0", "avif_speed", "use 1 to 10"),
            ("avif_speed = 11", "avif_speed", "use 1 to 10"),
            ("default_quality = 300", "default_quality", "invalid value"),
            ("resize = true", "resize", "unknown field"),
        ];
        for (line, field, fragment) in cases {
            let found = problems(&format!("{line}\n"));
            assert_eq!(found.len(), 1, "{line}: {found:#?}");
            let (path, message) = &found[0];
            assert!(path.starts_with("services[0].images."), "{line}: {path}");
            assert!(path.ends_with(field), "{line}: {path}");
            assert!(message.contains(fragment), "{line}: {message}");
        }
    }

    #[test]
    fn accepts_the_edges_of_each_range() {
        let cases = [
            "path_prefix = \"/i/\"\nmax_source_bytes = \"1KiB\"\nmax_source_pixels = 1\nmax_width = 1\nmax_height = 1\n",
            "max_source_bytes = \"256MiB\"\nmax_source_pixels = 268435456\nmax_width = 16383\nmax_height = 16383\n",
            "default_quality = 1\navif_speed = 1\n",
            "default_quality = 100\navif_speed = 10\npath_prefix = \"/_img/v-1.2~x/\"\n",
        ];
        for images in cases {
            assert_eq!(problems(images), Vec::new(), "{images}");
        }
    }
}
