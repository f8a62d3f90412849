//! The image URL API: both URL styles parsed into one [`ImageOps`], checked against the
//! service's [`ImagesConfig`].
//!
//! - Query style, as Fastly's Image Optimizer: `/img/a.jpg?width=400&height=300&fit=cover`.
//!   The image parameters are taken out; every other query parameter is left for the origin.
//! - Path style, as Cloudflare's: `/cdn-cgi/image/width=400,format=auto/img/a.jpg?v=3`: the
//!   options segment after `path_prefix`, then the source path with its query untouched.
//!
//! | parameter | query style | path style | values |
//! |---|---|---|---|
//! | width | `width` | `width`, `w` | 1 to `max_width` pixels |
//! | height | `height` | `height`, `h` | 1 to `max_height` pixels |
//! | dpr | `dpr` | `dpr` | 1 to 10, up to 3 decimals; multiplies width and height |
//! | fit | `fit` | `fit` | `scale-down` (default), `contain` (also Fastly's `bounds`), `cover`, `crop` |
//! | format | `format` | `format`, `f` | `auto`, `avif`, `webp`, `jpeg` (`jpg`, `bjpg`, `baseline-jpeg`), `png` |
//! | quality | `quality` | `quality`, `q` | 1 to 100; default `default_quality` |
//!
//! The fit modes are Cloudflare's: `scale-down` fits the image inside the box and never
//! enlarges it; `contain` does the same but may enlarge; `cover` fills the box exactly (resizing
//! either way) and crops the overflow around the centre; `crop` is `cover` that never enlarges (an
//! image smaller than the box is only cropped to it). Fastly's `cover` leaves the overflow in
//! place; here it is cropped, as Cloudflare does. With only one of width and height, the box takes
//! the image's aspect ratio: `cover` acts as `contain`, `crop` as `scale-down`.
//!
//! In the path style, an unknown option gets [`ParamError`]; Cloudflare's `anim=false` and
//! `metadata=none` are accepted as no-ops (only the first frame is kept and metadata is always
//! dropped). In the query style an unknown parameter belongs to the origin, except Fastly's own
//! image parameters that this node does not implement (`crop`, `trim`, ...): next to a supported
//! one they get [`ParamError`] rather than a silently different image.

use std::fmt;

use http::Uri;
use http::uri::PathAndQuery;
use outpost_config::ImagesConfig;

/// How the width and height box is applied. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fit {
    Contain,
    Cover,
    Crop,
    #[default]
    ScaleDown,
}

impl Fit {
    pub fn as_str(self) -> &'static str {
        match self {
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Crop => "crop",
            Fit::ScaleDown => "scale-down",
        }
    }

    /// Whether this fit may make the image larger than the source.
    pub fn enlarges(self) -> bool {
        matches!(self, Fit::Contain | Fit::Cover)
    }
}

/// The output format a request asks for; absent means the source's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatReq {
    /// AVIF, else WebP, else the source's format, by the request's `Accept`.
    Auto,
    Webp,
    Avif,
    Jpeg,
    Png,
}

/// A device pixel ratio in thousandths (`Dpr(1500)` is 1.5): exact, so that equal requests
/// compare and hash equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dpr(pub u16);

impl Dpr {
    pub const ONE: Dpr = Dpr(1000);
    pub const MAX: Dpr = Dpr(10_000);

    /// `pixels` × this ratio, rounded to the nearest pixel.
    pub fn apply(self, pixels: u32) -> u32 {
        let scaled = (u64::from(pixels) * u64::from(self.0) + 500) / 1000;
        u32::try_from(scaled).unwrap_or(u32::MAX)
    }
}

impl fmt::Display for Dpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, milli) = (self.0 / 1000, self.0 % 1000);
        if milli == 0 {
            write!(f, "{whole}")
        } else {
            let fraction = format!("{milli:03}");
            write!(f, "{whole}.{}", fraction.trim_end_matches('0'))
        }
    }
}

/// What one request asks of the image, as written (before `Accept` and `dpr` are applied:
/// see [`ImageOps::resolve`](super::ImageOps::resolve)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageOps {
    /// Box width in CSS pixels (multiplied by `dpr`).
    pub width: Option<u32>,
    /// Box height in CSS pixels (multiplied by `dpr`).
    pub height: Option<u32>,
    pub dpr: Dpr,
    pub fit: Fit,
    /// `None`: keep the source's format.
    pub format: Option<FormatReq>,
    /// 1 to 100: the request's, or the service's `default_quality`.
    pub quality: u8,
}

/// Which URL style a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlStyle {
    /// `?width=400` (Fastly).
    Query,
    /// `/cdn-cgi/image/width=400/...` (Cloudflare).
    Path,
}

/// An image request: the operations, and the source the origin (and the cache's base key)
/// sees. Both styles of one request name the same source: `/cdn-cgi/image/width=400/a.jpg`
/// and `/a.jpg?width=400` both fetch `/a.jpg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRequest {
    pub ops: ImageOps,
    /// The source image's path and query, image parameters removed.
    pub source: PathAndQuery,
    pub style: UrlStyle,
}

/// A bad image parameter: the client gets 400 with this as the message, which names the
/// parameter, e.g. `width: must be a whole number from 1 to 8192, got "0"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter as the client wrote it (`w`, `width`, `options`, `source`).
    pub param: String,
    pub problem: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.param, self.problem)
    }
}

impl std::error::Error for ParamError {}

fn error(param: &str, problem: impl Into<String>) -> ParamError {
    ParamError { param: shown(param, 32), problem: problem.into() }
}

/// Client text echoed in an error: at most `max` characters, control characters escaped.
fn shown(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).flat_map(char::escape_default).collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}

fn got(value: &str) -> String {
    format!("got \"{}\"", shown(value, 32))
}

impl ImageRequest {
    /// The image request in `uri`, if it is one for this service: `Ok(None)` when images are
    /// off, or the path is not under `path_prefix` and the query (when `query` is on) holds no
    /// image parameter.
    pub fn parse(uri: &Uri, cfg: &ImagesConfig) -> Result<Option<ImageRequest>, ParamError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let path = uri.path();
        if let Some(rest) = path.strip_prefix(cfg.path_prefix.as_str()) {
            return parse_path_style(rest, uri.query(), cfg).map(Some);
        }
        match uri.query() {
            Some(query) if cfg.query => parse_query_style(path, query, cfg),
            _ => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    Width,
    Height,
    Dpr,
    Fit,
    Format,
    Quality,
}

impl Param {
    fn name(self) -> &'static str {
        match self {
            Param::Width => "width",
            Param::Height => "height",
            Param::Dpr => "dpr",
            Param::Fit => "fit",
            Param::Format => "format",
            Param::Quality => "quality",
        }
    }

    fn query_style(name: &str) -> Option<Param> {
        Some(match name {
            "width" => Param::Width,
            "height" => Param::Height,
            "dpr" => Param::Dpr,
            "fit" => Param::Fit,
            "format" => Param::Format,
            "quality" => Param::Quality,
            _ => return None,
        })
    }

    fn path_style(name: &str) -> Option<Param> {
        Some(match name {
            "w" => Param::Width,
            "h" => Param::Height,
            "f" => Param::Format,
            "q" => Param::Quality,
            _ => return Param::query_style(name),
        })
    }
}

/// Fastly Image Optimizer parameters this node does not implement.
const FASTLY_UNSUPPORTED: &[&str] = &[
    "auto",
    "bg-color",
    "blur",
    "brightness",
    "canvas",
    "contrast",
    "crop",
    "disable",
    "enable",
    "frame",
    "level",
    "metadata",
    "optimize",
    "orient",
    "pad",
    "precrop",
    "profile",
    "region",
    "resize-filter",
    "saturation",
    "sharpen",
    "trim",
    "trim-color",
];

const QUERY_SUPPORTED: &str = "width, height, dpr, fit, format, quality";
const PATH_SUPPORTED: &str = "width (w), height (h), dpr, fit, format (f), quality (q)";

fn parse_query_style(path: &str, query: &str, cfg: &ImagesConfig) -> Result<Option<ImageRequest>, ParamError> {
    let mut ops = Collector::new(cfg);
    let mut unsupported = None;
    let mut rest: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(raw_name);
        match Param::query_style(&name) {
            Some(param) => ops.set(&name, param, &percent_decode(raw_value))?,
            None => {
                if unsupported.is_none() && FASTLY_UNSUPPORTED.contains(&name.as_str()) {
                    unsupported = Some(name);
                }
                rest.push(pair);
            }
        }
    }
    if ops.is_empty() {
        return Ok(None);
    }
    if let Some(name) = unsupported {
        let hint = if name == "auto" { "; for WebP or AVIF by Accept use format=auto" } else { "" };
        return Err(error(&name, format!("not supported; image parameters here are {QUERY_SUPPORTED}{hint}")));
    }
    let source = if rest.is_empty() { path.to_owned() } else { format!("{path}?{}", rest.join("&")) };
    Ok(Some(ImageRequest { ops: ops.finish()?, source: path_and_query(source)?, style: UrlStyle::Query }))
}

fn parse_path_style(rest: &str, query: Option<&str>, cfg: &ImagesConfig) -> Result<ImageRequest, ParamError> {
    let Some((options, source)) = rest.split_once('/') else {
        return Err(error("source", "missing; write the image's path after the options, e.g. width=400/img/a.jpg"));
    };
    let mut ops = Collector::new(cfg);
    for option in percent_decode(options).split(',') {
        if option.is_empty() {
            continue;
        }
        let Some((name, value)) = option.split_once('=') else {
            return Err(error("options", format!("\"{}\" has no value; write name=value", shown(option, 32))));
        };
        match (Param::path_style(name), name, value) {
            (Some(param), ..) => ops.set(name, param, value)?,
            (None, "anim", "false") | (None, "metadata", "none") => {}
            (None, ..) => return Err(error(name, format!("unsupported option; use {PATH_SUPPORTED}"))),
        }
    }
    if ops.is_empty() {
        return Err(error("options", format!("none given; use at least one of {PATH_SUPPORTED}")));
    }
    if source.is_empty() {
        return Err(error("source", "missing; write the image's path after the options, e.g. width=400/img/a.jpg"));
    }
    let lower = source.to_ascii_lowercase();
    if lower.starts_with("http:") || lower.starts_with("https:") || source.starts_with('/') {
        return Err(error("source", "must be a path on this service's origin, not a URL"));
    }
    let source = format!("/{source}");
    if source.starts_with(cfg.path_prefix.as_str()) {
        return Err(error("source", "is itself an image URL; give the original image's path"));
    }
    let source = match query {
        Some(query) => format!("{source}?{query}"),
        None => source,
    };
    Ok(ImageRequest { ops: ops.finish()?, source: path_and_query(source)?, style: UrlStyle::Path })
}

fn path_and_query(source: String) -> Result<PathAndQuery, ParamError> {
    // Cut from a valid request target, so this holds; the error keeps it a 400, not a panic.
    PathAndQuery::try_from(source).map_err(|e| error("source", format!("not a valid path: {e}")))
}

/// Collects parameters, each at most once, and checks them against the service's limits.
struct Collector<'a> {
    cfg: &'a ImagesConfig,
    seen: Vec<(Param, String)>,
    ops: ImageOps,
}

impl<'a> Collector<'a> {
    fn new(cfg: &'a ImagesConfig) -> Self {
        let ops = ImageOps {
            width: None,
            height: None,
            dpr: Dpr::ONE,
            fit: Fit::default(),
            format: None,
            quality: cfg.default_quality,
        };
        Self { cfg, seen: Vec::new(), ops }
    }

    fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn set(&mut self, name: &str, param: Param, value: &str) -> Result<(), ParamError> {
        if let Some((_, first)) = self.seen.iter().find(|(p, _)| *p == param) {
            let also = if first == name { "given twice".to_owned() } else { format!("repeats {first}") };
            return Err(error(name, also));
        }
        self.seen.push((param, name.to_owned()));
        let fail = |problem: String| error(name, problem);
        match param {
            Param::Width => self.ops.width = Some(pixels(value, self.cfg.max_width).map_err(fail)?),
            Param::Height => self.ops.height = Some(pixels(value, self.cfg.max_height).map_err(fail)?),
            Param::Dpr => self.ops.dpr = dpr(value).map_err(fail)?,
            Param::Fit => self.ops.fit = fit(value).map_err(fail)?,
            Param::Format => self.ops.format = Some(format(value).map_err(fail)?),
            Param::Quality => self.ops.quality = quality(value).map_err(fail)?,
        }
        Ok(())
    }

    /// Checks what needs more than one parameter: the box after `dpr` within the limits.
    fn finish(self) -> Result<ImageOps, ParamError> {
        let ops = self.ops;
        let dpr_name = self.seen.iter().find(|(p, _)| *p == Param::Dpr).map_or("dpr", |(_, n)| n.as_str());
        let sides = [(Param::Width, ops.width, self.cfg.max_width), (Param::Height, ops.height, self.cfg.max_height)];
        for (param, side, max) in sides {
            let Some(side) = side else { continue };
            let scaled = ops.dpr.apply(side);
            if scaled > max {
                return Err(error(
                    dpr_name,
                    format!("{} {side} at dpr {} is {scaled} pixels, more than {max}", param.name(), ops.dpr),
                ));
            }
        }
        Ok(ops)
    }
}

fn whole(value: &str, min: u32, max: u32) -> Result<u32, String> {
    let digits = !value.is_empty() && value.len() <= 9 && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u32>() {
        Ok(n) if digits && (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from {min} to {max}, {}", got(value))),
    }
}

fn pixels(value: &str, max: u32) -> Result<u32, String> {
    whole(value, 1, max)
}

fn quality(value: &str) -> Result<u8, String> {
    whole(value, 1, 100).map(|q| u8::try_from(q).unwrap_or(100))
}

fn dpr(value: &str) -> Result<Dpr, String> {
    let invalid = || format!("must be a number from 1 to 10 with at most 3 decimals, {}", got(value));
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 2 || fraction.len() > 3 || !digits(whole) || !digits(fraction) {
        return Err(invalid());
    }
    if value.ends_with('.') {
        return Err(invalid());
    }
    let whole: u16 = whole.parse().map_err(|_| invalid())?;
    let milli: u16 = format!("{fraction:0<3}").parse().map_err(|_| invalid())?;
    // In u32: 99 * 1000 overflows a u16 (found by tests/fuzz's `image_params`; a release
    // build wrapped `dpr=66.6` to 1.064 and served it).
    let milli = u32::from(whole) * 1000 + u32::from(milli);
    if milli < u32::from(Dpr::ONE.0) || milli > u32::from(Dpr::MAX.0) {
        return Err(invalid());
    }
    u16::try_from(milli).map(Dpr).map_err(|_| invalid())
}

fn fit(value: &str) -> Result<Fit, String> {
    match value.to_ascii_lowercase().as_str() {
        "scale-down" => Ok(Fit::ScaleDown),
        "contain" | "bounds" => Ok(Fit::Contain),
        "cover" => Ok(Fit::Cover),
        "crop" => Ok(Fit::Crop),
        _ => Err(format!("use scale-down, contain (or bounds), cover or crop, {}", got(value))),
    }
}

fn format(value: &str) -> Result<FormatReq, String> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(FormatReq::Auto),
        "avif" => Ok(FormatReq::Avif),
        "webp" => Ok(FormatReq::Webp),
        "jpeg" | "jpg" | "bjpg" | "baseline-jpeg" => Ok(FormatReq::Jpeg),
        "png" => Ok(FormatReq::Png),
        _ => Err(format!("use auto, avif, webp, jpeg or png, {}", got(value))),
    }
}

/// `%XX` decoded (and `+` as a space, as in forms); invalid escapes and non-UTF-8 results are
/// kept as written, so they fail the value checks with the text the client sent.
fn percent_decode(text: &str) -> String {
    if !text.contains(['%', '+']) {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ImagesConfig {
        ImagesConfig { enabled: true, ..ImagesConfig::default() }
    }

    fn parse(uri: &str) -> Result<Option<ImageRequest>, ParamError> {
        parse_with(uri, &cfg())
    }

    fn parse_with(uri: &str, cfg: &ImagesConfig) -> Result<Option<ImageRequest>, ParamError> {
        let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"));
        ImageRequest::parse(&uri, cfg)
    }

    fn ops(width: Option<u32>, height: Option<u32>, dpr: u16, fit: Fit, format: Option<FormatReq>, q: u8) -> ImageOps {
        ImageOps { width, height, dpr: Dpr(dpr), fit, format, quality: q }
    }

    #[test]
    fn both_styles_parse_to_ops_and_a_source() {
        use FormatReq::*;
        let plain = ops(None, None, 1000, Fit::ScaleDown, None, 85);
        let cases: Vec<(&str, ImageOps, &str, UrlStyle)> = vec![
            // Fastly's example from the issue.
            (
                "/img/a.jpg?width=400&height=300&fit=cover&format=auto&quality=75&dpr=2",
                ops(Some(400), Some(300), 2000, Fit::Cover, Some(Auto), 75),
                "/img/a.jpg",
                UrlStyle::Query,
            ),
            // Other query parameters stay, in order, for the origin.
            (
                "/img/a.jpg?v=3&width=400&x=a%20b&&format=webp",
                ImageOps { width: Some(400), format: Some(Webp), ..plain },
                "/img/a.jpg?v=3&x=a%20b",
                UrlStyle::Query,
            ),
            (
                "/a.png?fit=bounds&width=10",
                ImageOps { width: Some(10), fit: Fit::Contain, ..plain },
                "/a.png",
                UrlStyle::Query,
            ),
            (
                "/a.png?fit=crop&height=10",
                ImageOps { height: Some(10), fit: Fit::Crop, ..plain },
                "/a.png",
                UrlStyle::Query,
            ),
            ("/a.png?format=JPG", ImageOps { format: Some(Jpeg), ..plain }, "/a.png", UrlStyle::Query),
            ("/a.png?format=bjpg", ImageOps { format: Some(Jpeg), ..plain }, "/a.png", UrlStyle::Query),
            ("/a.png?quality=1", ImageOps { quality: 1, ..plain }, "/a.png", UrlStyle::Query),
            (
                "/a.png?dpr=1.5&width=100",
                ImageOps { width: Some(100), dpr: Dpr(1500), ..plain },
                "/a.png",
                UrlStyle::Query,
            ),
            ("/a.png?fit=scale%2Ddown&width=1", ImageOps { width: Some(1), ..plain }, "/a.png", UrlStyle::Query),
            // Cloudflare's example from the issue, and its short names.
            (
                "/cdn-cgi/image/width=400,format=auto/path/to/img.jpg",
                ImageOps { width: Some(400), format: Some(Auto), ..plain },
                "/path/to/img.jpg",
                UrlStyle::Path,
            ),
            (
                "/cdn-cgi/image/w=400,h=300,q=60,f=avif,fit=scale-down,dpr=3/img.jpg?v=3&width=9",
                ops(Some(400), Some(300), 3000, Fit::ScaleDown, Some(Avif), 60),
                "/img.jpg?v=3&width=9",
                UrlStyle::Path,
            ),
            (
                "/cdn-cgi/image/fit=contain,width=8192,format=baseline-jpeg,anim=false,metadata=none/a%20b.jpg",
                ImageOps { width: Some(8192), fit: Fit::Contain, format: Some(Jpeg), ..plain },
                "/a%20b.jpg",
                UrlStyle::Path,
            ),
            (
                "/cdn-cgi/image/width%3D400%2Cformat%3Dpng/a.gif",
                ImageOps { width: Some(400), format: Some(Png), ..plain },
                "/a.gif",
                UrlStyle::Path,
            ),
            (
                "/cdn-cgi/image/fit=cover,,h=5/a.gif",
                ImageOps { height: Some(5), fit: Fit::Cover, ..plain },
                "/a.gif",
                UrlStyle::Path,
            ),
        ];
        for (uri, want_ops, want_source, want_style) in cases {
            let request = parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}")).unwrap_or_else(|| panic!("{uri}: none"));
            assert_eq!(request.ops, want_ops, "{uri}");
            assert_eq!(request.source, want_source, "{uri}");
            assert_eq!(request.style, want_style, "{uri}");
        }
    }

    #[test]
    fn requests_that_are_not_image_requests() {
        let off = ImagesConfig::default();
        let no_query = ImagesConfig { query: false, ..cfg() };
        let cases: [(&str, &ImagesConfig); 7] = [
            ("/img/a.jpg", &cfg()),
            ("/img/a.jpg?v=3&w=400&crop=1", &cfg()),
            ("/cdn-cgi/images/width=400/a.jpg", &cfg()),
            ("/img/a.jpg?width=400", &off),
            ("/cdn-cgi/image/width=400/a.jpg", &off),
            ("/img/a.jpg?width=400", &no_query),
            ("/search?q=cats", &cfg()),
        ];
        for (uri, cfg) in cases {
            assert_eq!(parse_with(uri, cfg), Ok(None), "{uri}");
        }
        // The path style works without the query style.
        assert!(matches!(parse_with("/cdn-cgi/image/width=4/a.jpg", &no_query), Ok(Some(_))));
        // Another prefix.
        let custom = ImagesConfig { path_prefix: "/_img/".to_owned(), ..cfg() };
        let request = parse_with("/_img/w=4/a.jpg", &custom).ok().flatten().map(|r| r.source);
        assert_eq!(request.as_ref().map(|s| s.as_str()), Some("/a.jpg"));
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let small = ImagesConfig { max_width: 1000, max_height: 500, ..cfg() };
        let cases: Vec<(&str, &str)> = vec![
            ("/a.jpg?width=0", "width: must be a whole number from 1 to 8192, got \"0\""),
            ("/a.jpg?width=8193", "width: must be a whole number from 1 to 8192, got \"8193\""),
            ("/a.jpg?width=40.5", "width: must be a whole number from 1 to 8192, got \"40.5\""),
            ("/a.jpg?width=+40", "width: must be a whole number from 1 to 8192, got \" 40\""),
            ("/a.jpg?width=", "width: must be a whole number from 1 to 8192, got \"\""),
            ("/a.jpg?width", "width: must be a whole number from 1 to 8192, got \"\""),
            ("/a.jpg?height=99999999999", "height: must be a whole number from 1 to 8192, got \"99999999999\""),
            ("/a.jpg?quality=0", "quality: must be a whole number from 1 to 100, got \"0\""),
            ("/a.jpg?quality=85,75", "quality: must be a whole number from 1 to 100, got \"85,75\""),
            ("/a.jpg?dpr=0.5", "dpr: must be a number from 1 to 10 with at most 3 decimals, got \"0.5\""),
            ("/a.jpg?dpr=11", "dpr: must be a number from 1 to 10"),
            ("/a.jpg?dpr=1.2345", "dpr: must be a number from 1 to 10"),
            ("/a.jpg?dpr=2.", "dpr: must be a number from 1 to 10"),
            ("/a.jpg?dpr=nan", "dpr: must be a number from 1 to 10"),
            ("/a.jpg?dpr=3&width=3000", "dpr: width 3000 at dpr 3 is 9000 pixels, more than 8192"),
            ("/a.jpg?fit=pad", "fit: use scale-down, contain (or bounds), cover or crop, got \"pad\""),
            ("/a.jpg?format=gif", "format: use auto, avif, webp, jpeg or png, got \"gif\""),
            ("/a.jpg?width=1&width=2", "width: given twice"),
            ("/a.jpg?width=1&trim=1", "trim: not supported; image parameters here are width, height"),
            (
                "/a.jpg?width=1&auto=webp",
                "auto: not supported; image parameters here are width, height, dpr, fit, format, quality; for WebP or AVIF by Accept use format=auto",
            ),
            ("/cdn-cgi/image/w=1,width=2/a.jpg", "width: repeats w"),
            (
                "/cdn-cgi/image/width=1,gravity=auto/a.jpg",
                "gravity: unsupported option; use width (w), height (h), dpr, fit, format (f), quality (q)",
            ),
            ("/cdn-cgi/image/anim=true/a.jpg", "anim: unsupported option"),
            ("/cdn-cgi/image/width/a.jpg", "options: \"width\" has no value; write name=value"),
            ("/cdn-cgi/image//a.jpg", "options: none given"),
            ("/cdn-cgi/image/width=1", "source: missing"),
            ("/cdn-cgi/image/width=1/", "source: missing"),
            (
                "/cdn-cgi/image/width=1/https://evil.example/a.jpg",
                "source: must be a path on this service's origin, not a URL",
            ),
            ("/cdn-cgi/image/width=1//evil.example/a.jpg", "source: must be a path"),
            ("/cdn-cgi/image/width=1/cdn-cgi/image/w=2/a.jpg", "source: is itself an image URL"),
            ("/cdn-cgi/image/q=101/a.jpg", "q: must be a whole number from 1 to 100, got \"101\""),
            ("/cdn-cgi/image/f=tiff/a.jpg", "f: use auto, avif, webp, jpeg or png, got \"tiff\""),
        ];
        for (uri, want) in cases {
            match parse(uri) {
                Err(e) => assert!(e.to_string().starts_with(want), "{uri}\n got: {e}\nwant: {want}"),
                Ok(got) => panic!("{uri}: expected an error, got {got:?}"),
            }
        }
        let limited: [(&str, &str); 3] = [
            ("/a.jpg?width=1001", "width: must be a whole number from 1 to 1000, got \"1001\""),
            ("/a.jpg?height=501", "height: must be a whole number from 1 to 500"),
            ("/cdn-cgi/image/h=300,dpr=2/a.jpg", "dpr: height 300 at dpr 2 is 600 pixels, more than 500"),
        ];
        for (uri, want) in limited {
            let got = parse_with(uri, &small).map(|_| ()).map_err(|e| e.to_string());
            assert!(got.as_ref().is_err_and(|e| e.starts_with(want)), "{uri}: {got:?}");
        }
    }

    #[test]
    fn echoed_input_is_bounded_and_escaped() {
        let long = "9".repeat(100);
        let e = parse(&format!("/a.jpg?width={long}")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.ends_with("...\""), "{e}");
        assert!(e.len() < 120, "{e}");
        let e = parse("/a.jpg?fit=%0A%1B").err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, "fit: use scale-down, contain (or bounds), cover or crop, got \"\\n\\u{1b}\"");
    }

    /// Regression (tests/fuzz `image_params`): whole parts above 65 overflowed a u16.
    #[test]
    fn a_dpr_above_the_range_is_refused_not_wrapped() {
        for value in ["66.6", "99", "65.536", "99.999", "11", "10.001"] {
            assert!(dpr(value).is_err(), "{value}");
        }
        assert_eq!(dpr("10"), Ok(Dpr::MAX));
        assert_eq!(dpr("1"), Ok(Dpr::ONE));
    }

    #[test]
    fn dpr_displays_and_applies_exactly() {
        let cases = [(1000, "1", 400, 400), (1500, "1.5", 333, 500), (2000, "2", 400, 800), (1250, "1.25", 3, 4)];
        for (milli, shown, pixels, scaled) in cases {
            assert_eq!(Dpr(milli).to_string(), shown);
            assert_eq!(Dpr(milli).apply(pixels), scaled, "{shown} x {pixels}");
        }
    }

    #[test]
    fn percent_decoding() {
        let cases = [
            ("abc", "abc"),
            ("a%20b", "a b"),
            ("a+b", "a b"),
            ("%2", "%2"),
            ("%zz", "%zz"),
            ("%ff", "%ff"),
            ("50%", "50%"),
        ];
        for (raw, want) in cases {
            assert_eq!(percent_decode(raw), want, "{raw}");
        }
    }
}
