//! `[services.compression]`: compression of responses by the client's `Accept-Encoding` in the
//! transform phase. File form only; the bounds are checked in [`validate`](crate::validate),
//! and the edge node's `transform::compress` does the negotiating and the coding.
//!
//! A cacheable response is compressed once, at `cached_level`, and the encoded variant is
//! stored; an uncacheable one is compressed on every request, so at the faster `pass_level`.

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::units::ByteSize;

/// A content coding the edge node produces and decodes (RFC 9110 §8.4.1): `br` (RFC 7932),
/// `zstd` (RFC 8878) or `gzip` (RFC 1952). In the file, one of those tokens; case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum ContentCoding {
    Br,
    Zstd,
    Gzip,
}

impl ContentCoding {
    /// Every coding, in the default preference order.
    pub const ALL: [ContentCoding; 3] = [ContentCoding::Br, ContentCoding::Zstd, ContentCoding::Gzip];

    /// The `Content-Encoding` token.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentCoding::Br => "br",
            ContentCoding::Zstd => "zstd",
            ContentCoding::Gzip => "gzip",
        }
    }
}

impl fmt::Display for ContentCoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for ContentCoding {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        ContentCoding::ALL
            .into_iter()
            .find(|coding| coding.as_str().eq_ignore_ascii_case(&s))
            .ok_or_else(|| format!("unknown content coding \"{s}\"; use \"br\", \"zstd\" or \"gzip\""))
    }
}

/// A level per coding: `{ br = 6, zstd = 8, gzip = 6 }`. A coding left out keeps its
/// default. Ranges: `br` 0 to 11, `zstd` 1 to 19, `gzip` 1 to 9; higher is smaller and slower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub br: u32,
    pub zstd: u32,
    pub gzip: u32,
}

impl Levels {
    /// Defaults of `cached_level`: the highest level that encodes at 15MB/s or more on one
    /// core on each of three samples (minified JavaScript, HTML, CSS), unless a lower level
    /// is within 0.5% in size. A miss streams to its first client as fast as it is encoded,
    /// so levels that reach only a few MB/s are out: brotli 11 ran at 0.4 to 0.5MB/s (9% to
    /// 13% smaller than 6), brotli 9 at 4 to 8MB/s, zstd 19 at about 1MB/s. Measured
    /// (issue 4 note), ratio and MB/s on the JavaScript sample: brotli 6 4.55x 18MB/s
    /// (brotli 7 fell to 13MB/s on CSS); zstd 8 4.38x 34MB/s (9 is no smaller, 10 fell to
    /// 15MB/s on CSS); gzip 6 4.31x 24MB/s (9 is 0.3% smaller and 17% slower).
    pub const CACHED: Levels = Levels { br: 6, zstd: 8, gzip: 6 };
    /// Defaults of `pass_level`: fast levels for responses compressed on every request, where
    /// the CPU is spent per request. On the JavaScript sample: brotli 4 4.16x 33MB/s, zstd 3
    /// 3.99x 174MB/s, gzip 5 4.27x 38MB/s; each next level costs a third or more in speed.
    pub const PASS: Levels = Levels { br: 4, zstd: 3, gzip: 5 };
    /// Highest `br` level (brotli quality).
    pub const MAX_BR: u32 = 11;
    /// Highest `zstd` level: the levels above use windows larger than RFC 9659's 8MB.
    pub const MAX_ZSTD: u32 = 19;
    /// Highest `gzip` level.
    pub const MAX_GZIP: u32 = 9;

    /// The level for `coding`.
    pub const fn get(&self, coding: ContentCoding) -> u32 {
        match coding {
            ContentCoding::Br => self.br,
            ContentCoding::Zstd => self.zstd,
            ContentCoding::Gzip => self.gzip,
        }
    }
}

/// A compressible media type, matched against a `Content-Type`'s essence (type/subtype, without
/// parameters), case-insensitively. Written `"application/json"` (exact), `"text/*"` (every
/// subtype of a type) or `"*+json"` (every type whose subtype has a structured syntax suffix,
/// RFC 6838 §4.2.8). Stored lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum TypePattern {
    /// `"type/subtype"`.
    Exact(String),
    /// `"type/*"`: holds `type`.
    AnySubtype(String),
    /// `"*+suffix"`: holds `+suffix`.
    Suffix(String),
}

impl TypePattern {
    /// Whether a media type essence (`text/html`, any case, no parameters) matches.
    pub fn matches(&self, essence: &str) -> bool {
        let Some((top, sub)) = essence.split_once('/') else { return false };
        match self {
            TypePattern::Exact(exact) => exact.eq_ignore_ascii_case(essence),
            TypePattern::AnySubtype(want) => !sub.is_empty() && want.eq_ignore_ascii_case(top),
            TypePattern::Suffix(suffix) => {
                !top.is_empty()
                    && sub.len() > suffix.len()
                    && sub.get(sub.len() - suffix.len()..).is_some_and(|end| end.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypePattern::Exact(exact) => f.write_str(exact),
            TypePattern::AnySubtype(top) => write!(f, "{top}/*"),
            TypePattern::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl TryFrom<String> for TypePattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        const VALID: &str = "write a media type such as \"application/json\", \"text/*\" or \"*+json\"";
        // RFC 9110 §5.6.2 token characters.
        let token =
            |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+`|~".contains(&b));
        let lower = s.to_ascii_lowercase();
        if lower.contains(';') {
            return Err(format!("\"{s}\" has parameters, which matching ignores; {VALID} without them"));
        }
        if let Some(suffix) = lower.strip_prefix("*+") {
            return if token(suffix) && !suffix.contains('+') {
                Ok(TypePattern::Suffix(format!("+{suffix}")))
            } else {
                Err(format!("\"{s}\" is not a valid suffix pattern; {VALID}"))
            };
        }
        match lower.split_once('/') {
            Some(("*", _)) => Err(format!("\"{s}\": a wildcard type would compress images and video too; {VALID}")),
            Some((top, "*")) if token(top) => Ok(TypePattern::AnySubtype(top.to_owned())),
            Some((top, sub)) if token(top) && token(sub) => Ok(TypePattern::Exact(lower)),
            _ => Err(format!("\"{s}\" is not a media type; {VALID}")),
        }
    }
}

/// `[services.compression]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Whether responses are compressed for clients that accept it. When false, responses go
    /// out as stored or as the origin sent them (a stored encoded object is still decoded for
    /// a client that does not accept its coding). Default: true.
    pub enabled: bool,
    /// Codings the node produces, most preferred first; among the codings the client accepts
    /// with the same q-value, the first listed wins. A coding left out is never produced.
    /// Default: `["br", "zstd", "gzip"]`; each of `"br"`, `"zstd"`, `"gzip"` at most once, at
    /// least one when `enabled`.
    pub prefer: Vec<ContentCoding>,
    /// `{ br, zstd, gzip }`: levels for cacheable responses, compressed once per object
    /// version while they stream to the first client, and stored. Default:
    /// `{ br = 6, zstd = 8, gzip = 6 }` (see [`Levels::CACHED`] for the measurements);
    /// `br` 0 to 11, `zstd` 1 to 19, `gzip` 1 to 9. Higher levels cost the first client
    /// time (the miss streams no faster than it is encoded: brotli 11 runs at about 0.5MB/s)
    /// and memory per encode in progress (about 14MiB at brotli 6, 30MiB at 11, 85MiB at
    /// zstd 19).
    #[serde(deserialize_with = "cached_levels")]
    pub cached_level: Levels,
    /// `{ br, zstd, gzip }`: levels for responses that are not stored, compressed on every
    /// request. Default: `{ br = 4, zstd = 3, gzip = 5 }` (see [`Levels::PASS`]); same ranges
    /// as `cached_level`.
    #[serde(deserialize_with = "pass_levels")]
    pub pass_level: Levels,
    /// A response whose length is known and below this is sent uncompressed (the coding's
    /// framing and the extra variant cost more than they save). Default: 1KiB.
    pub min_size: ByteSize,
    /// Media types that are compressed; others (images, video, archives, woff2 fonts) are
    /// already compressed and go out as they are. A response without `Content-Type` is not
    /// compressed. Setting this replaces the whole default list. Default: text, JSON,
    /// JavaScript, XML, SVG, wasm and uncompressed fonts (see
    /// [`CompressionConfig::default_types`]); at least one when `enabled`.
    pub types: Vec<TypePattern>,
    /// Bound on the decoded size of one response when a stored `br`, `zstd` or `gzip` object
    /// is decoded for a client that does not accept its coding. Decoding streams and holds
    /// at most one 64KiB chunk, so this bounds CPU time and bytes sent for a decompression
    /// bomb; a client whose response reaches it gets a truncated body (the connection or
    /// stream is reset). Default: 64MiB; 1MiB to 16GiB.
    pub max_decoded_size: ByteSize,
}

impl CompressionConfig {
    /// The default `types`.
    pub fn default_types() -> Vec<TypePattern> {
        let exact = |s: &str| TypePattern::Exact(s.to_owned());
        vec![
            TypePattern::AnySubtype("text".to_owned()),
            exact("application/json"),
            exact("application/javascript"),
            exact("application/x-javascript"),
            exact("application/ecmascript"),
            exact("application/xml"),
            TypePattern::Suffix("+json".to_owned()),
            TypePattern::Suffix("+xml".to_owned()),
            exact("image/svg+xml"),
            exact("application/wasm"),
            exact("font/ttf"),
            exact("font/otf"),
            exact("font/eot"),
            exact("font/collection"),
            exact("application/vnd.ms-fontobject"),
            exact("application/x-font-ttf"),
            exact("application/x-font-otf"),
            exact("application/font-sfnt"),
            exact("image/x-icon"),
            exact("image/vnd.microsoft.icon"),
            exact("image/bmp"),
        ]
    }
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            prefer: ContentCoding::ALL.to_vec(),
            cached_level: Levels::CACHED,
            pass_level: Levels::PASS,
            min_size: ByteSize::kib(1),
            types: Self::default_types(),
            max_decoded_size: ByteSize::mib(64),
        }
    }
}

/// A `{ br, zstd, gzip }` table as written: codings left out keep their defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialLevels {
    br: Option<u32>,
    zstd: Option<u32>,
    gzip: Option<u32>,
}

impl PartialLevels {
    fn or(self, defaults: Levels) -> Levels {
        Levels {
            br: self.br.unwrap_or(defaults.br),
            zstd: self.zstd.unwrap_or(defaults.zstd),
            gzip: self.gzip.unwrap_or(defaults.gzip),
        }
    }
}

fn cached_levels<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Levels, D::Error> {
    Ok(PartialLevels::deserialize(deserializer)?.or(Levels::CACHED))
}

fn pass_levels<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Levels, D::Error> {
    Ok(PartialLevels::deserialize(deserializer)?.or(Levels::PASS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codings_parse_case_insensitively() {
        let cases: &[(&str, Option<ContentCoding>)] = &[
            ("br", Some(ContentCoding::Br)),
            ("BR", Some(ContentCoding::Br)),
            ("zstd", Some(ContentCoding::Zstd)),
            ("Gzip", Some(ContentCoding::Gzip)),
            ("x-gzip", None),
            ("deflate", None),
            ("identity", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(ContentCoding::try_from(input.to_string()).ok(), *expected, "{input}");
        }
    }

    #[test]
    fn type_patterns_parse() {
        let cases: &[(&str, Result<TypePattern, &str>)] = &[
            ("text/*", Ok(TypePattern::AnySubtype("text".to_owned()))),
            ("Application/JSON", Ok(TypePattern::Exact("application/json".to_owned()))),
            ("image/svg+xml", Ok(TypePattern::Exact("image/svg+xml".to_owned()))),
            ("*+json", Ok(TypePattern::Suffix("+json".to_owned()))),
            ("*+XML", Ok(TypePattern::Suffix("+xml".to_owned()))),
            ("*/*", Err("a wildcard type would compress images")),
            ("*", Err("not a media type")),
            ("text", Err("not a media type")),
            ("text/", Err("not a media type")),
            ("/html", Err("not a media type")),
            ("text/html; charset=utf-8", Err("has parameters")),
            ("text/ html", Err("not a media type")),
            ("*+", Err("not a valid suffix pattern")),
            ("*+a+b", Err("not a valid suffix pattern")),
        ];
        for (input, expected) in cases {
            match (TypePattern::try_from(input.to_string()), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input}"),
                (Err(message), Err(fragment)) => assert!(message.contains(fragment), "{input}: {message}"),
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn type_patterns_match_essences() {
        let pattern = |s: &str| TypePattern::try_from(s.to_owned()).unwrap_or_else(|e| panic!("{s}: {e}"));
        let cases = [
            ("text/*", "text/html", true),
            ("text/*", "TEXT/CSS", true),
            ("text/*", "text/", false),
            ("text/*", "textual/html", false),
            ("text/*", "application/text", false),
            ("application/json", "application/json", true),
            ("application/json", "Application/Json", true),
            ("application/json", "application/jsonp", false),
            ("application/json", "application/json5", false),
            ("*+json", "application/ld+json", true),
            ("*+json", "application/LD+JSON", true),
            ("*+json", "application/+json", false),
            ("*+json", "/x+json", false),
            ("*+json", "application/json", false),
            ("*+json", "application/ld+jsonx", false),
            ("*+xml", "image/svg+xml", true),
            ("*+xml", "nonsense", false),
        ];
        for (p, essence, expected) in cases {
            assert_eq!(pattern(p).matches(essence), expected, "{p} ~ {essence}");
        }
    }

    #[test]
    fn defaults_and_partial_tables() {
        #[derive(Deserialize)]
        struct Wrapper {
            #[serde(default)]
            compression: CompressionConfig,
        }
        let parse = |text: &str| toml::from_str::<Wrapper>(text).map(|w| w.compression);
        let defaults = parse("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(defaults, CompressionConfig::default());
        assert!(defaults.enabled);
        assert_eq!(defaults.prefer, [ContentCoding::Br, ContentCoding::Zstd, ContentCoding::Gzip]);

        let text = "[compression]\nprefer = [\"gzip\", \"BR\"]\ncached_level = { br = 11 }\n\
                    pass_level = { gzip = 1 }\nmin_size = \"4KiB\"\ntypes = [\"text/html\"]\n\
                    max_decoded_size = \"1GiB\"\nenabled = false\n";
        let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.enabled);
        assert_eq!(config.prefer, [ContentCoding::Gzip, ContentCoding::Br]);
        assert_eq!(config.cached_level, Levels { br: 11, ..Levels::CACHED });
        assert_eq!(config.pass_level, Levels { gzip: 1, ..Levels::PASS });
        assert_eq!(config.min_size, ByteSize::kib(4));
        assert_eq!(config.types, [TypePattern::Exact("text/html".to_owned())]);
        assert_eq!(config.max_decoded_size, ByteSize::gib(1));
    }

    #[test]
    fn default_types_cover_the_usual_text_formats_and_not_compressed_ones() {
        let types = CompressionConfig::default_types();
        let compressible = |essence: &str| types.iter().any(|t| t.matches(essence));
        for essence in [
            "text/html",
            "text/css",
            "text/javascript",
            "application/javascript",
            "application/json",
            "application/manifest+json",
            "application/xml",
            "application/rss+xml",
            "image/svg+xml",
            "application/wasm",
            "font/ttf",
            "font/otf",
            "application/vnd.ms-fontobject",
        ] {
            assert!(compressible(essence), "{essence}");
        }
        for essence in
            ["image/png", "image/jpeg", "image/webp", "font/woff2", "font/woff", "application/zip", "video/mp4"]
        {
            assert!(!compressible(essence), "{essence}");
        }
        for pattern in &types {
            assert_eq!(TypePattern::try_from(pattern.to_string()).as_ref(), Ok(pattern));
        }
    }
}
