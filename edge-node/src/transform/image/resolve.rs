//! From what a request wrote to what the transcoder does: `format=auto` decided by `Accept`,
//! `dpr` multiplied in, fit modes that cannot differ folded together. Two requests that mean
//! the same image get the same [`ResolvedOps`] and so the same [`ResolvedOps::descriptor`],
//! the variant part of the cache key: variants stay few whatever clients send.

use http::HeaderValue;

use super::params::{Fit, FormatReq, ImageOps};

/// Output format after negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// The source's format (GIF sources become PNG: see [`transcode`](super::transcode())).
    Source,
    Webp,
    Avif,
    Jpeg,
    Png,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Source => "source",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
        }
    }
}

/// The canonical operations: what the transcoder does and what the cache key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResolvedOps {
    /// Box width in device pixels (`dpr` applied).
    pub width: Option<u32>,
    /// Box height in device pixels (`dpr` applied).
    pub height: Option<u32>,
    /// [`Fit::ScaleDown`] when no side is given (it has no effect then); with one side,
    /// `contain` or `scale-down` only.
    pub fit: Fit,
    pub format: OutputFormat,
    /// 1 to 100. Unused for PNG output.
    pub quality: u8,
}

/// Bumped when the transcoder's output for the same operations changes (a new resampling
/// filter, a new encoder), so that variants made the old way are not served as the new.
pub const DESCRIPTOR_VERSION: u32 = 1;

impl ImageOps {
    /// The canonical operations for a request whose `Accept` header is `accept`.
    /// `format=auto`: AVIF when `Accept` lists `image/avif`, else WebP when it lists
    /// `image/webp` (with q > 0; wildcards such as `image/*` do not count, as browsers that
    /// decode AVIF or WebP name them), else the source's format.
    pub fn resolve(&self, accept: Option<&HeaderValue>) -> ResolvedOps {
        let format = match self.format {
            None => OutputFormat::Source,
            Some(FormatReq::Webp) => OutputFormat::Webp,
            Some(FormatReq::Avif) => OutputFormat::Avif,
            Some(FormatReq::Jpeg) => OutputFormat::Jpeg,
            Some(FormatReq::Png) => OutputFormat::Png,
            Some(FormatReq::Auto) => match accept {
                Some(accept) if accepts(accept, "image/avif") => OutputFormat::Avif,
                Some(accept) if accepts(accept, "image/webp") => OutputFormat::Webp,
                _ => OutputFormat::Source,
            },
        };
        let width = self.width.map(|w| self.dpr.apply(w));
        let height = self.height.map(|h| self.dpr.apply(h));
        let fit = match (width, height, self.fit) {
            (None, None, _) => Fit::ScaleDown,
            (Some(_), Some(_), fit) => fit,
            // One side: the box has the image's aspect ratio, so nothing overflows to crop.
            (_, _, Fit::Contain | Fit::Cover) => Fit::Contain,
            (_, _, Fit::ScaleDown | Fit::Crop) => Fit::ScaleDown,
        };
        ResolvedOps { width, height, fit, format, quality: self.quality }
    }

    /// Whether the response depends on `Accept` (`format=auto`): the client's response then
    /// needs `Vary: Accept`.
    pub fn varies_on_accept(&self) -> bool {
        self.format == Some(FormatReq::Auto)
    }
}

impl ResolvedOps {
    /// The variant part of the cache key, in a fixed order with absent fields left out:
    /// `img1:w=400,h=300,fit=cover,f=webp,q=85`. `fit` only with a width or height; `q` not
    /// for PNG.
    pub fn descriptor(&self) -> String {
        let mut out = format!("img{DESCRIPTOR_VERSION}:");
        if let Some(w) = self.width {
            out.push_str(&format!("w={w},"));
        }
        if let Some(h) = self.height {
            out.push_str(&format!("h={h},"));
        }
        if self.width.is_some() || self.height.is_some() {
            out.push_str(&format!("fit={},", self.fit.as_str()));
        }
        out.push_str(&format!("f={}", self.format.as_str()));
        if self.format != OutputFormat::Png {
            out.push_str(&format!(",q={}", self.quality));
        }
        out
    }
}

/// Whether `accept` lists `media` with a q-value above 0 (RFC 9110 §12.5.1: q=0 means "not
/// acceptable"). An `Accept` that is not visible ASCII counts as not listing it.
fn accepts(accept: &HeaderValue, media: &str) -> bool {
    let Ok(accept) = accept.to_str() else { return false };
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let listed = parts.next().is_some_and(|m| m.trim().eq_ignore_ascii_case(media));
        let weight = parts.find_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim().eq_ignore_ascii_case("q").then(|| value.trim())
        });
        listed && weight.is_none_or(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0))
    })
}

#[cfg(test)]
mod tests {
    use http::Uri;
    use outpost_config::ImagesConfig;

    use super::*;
    use crate::transform::image::ImageRequest;

    fn descriptor(uri: &str, accept: Option<&str>) -> String {
        let cfg = ImagesConfig { enabled: true, ..ImagesConfig::default() };
        let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"));
        let request = ImageRequest::parse(&uri, &cfg).ok().flatten().unwrap_or_else(|| panic!("{uri}"));
        let accept = accept.map(HeaderValue::from_str).transpose().unwrap_or_else(|e| panic!("{e}"));
        request.ops.resolve(accept.as_ref()).descriptor()
    }

    const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    const OLD_SAFARI: &str = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";

    #[test]
    fn format_auto_follows_accept() {
        let cases = [
            (Some(CHROME), "avif"),
            (Some(OLD_SAFARI), "webp"),
            (Some("image/avif;q=0, image/webp"), "webp"),
            (Some("IMAGE/AVIF ; Q=0.5"), "avif"),
            (Some("image/avif;q=0.000,image/webp;q=0"), "source"),
            (Some("image/*,*/*"), "source"),
            (Some("image/avif-x, text/image/avif"), "source"),
            (None, "source"),
        ];
        for (accept, format) in cases {
            let got = descriptor("/a.jpg?format=auto", accept);
            assert_eq!(got, format!("img1:f={format},q=85"), "{accept:?}");
        }
        // An explicit format ignores Accept.
        assert_eq!(descriptor("/a.jpg?format=webp", Some(CHROME)), "img1:f=webp,q=85");
    }

    #[test]
    fn requests_that_mean_the_same_get_the_same_descriptor() {
        let groups: &[&[&str]] = &[
            &[
                "/a.jpg?width=400",
                "/cdn-cgi/image/w=400/a.jpg",
                "/cdn-cgi/image/width=200,dpr=2/a.jpg",
                "/a.jpg?dpr=2.000&width=200&fit=scale-down",
                "/a.jpg?width=400&fit=crop",
                "/a.jpg?width=400&quality=85",
            ],
            &["/a.jpg?width=400&fit=contain", "/a.jpg?width=400&fit=bounds", "/a.jpg?width=400&fit=cover"],
            &["/a.jpg?height=300&width=400&fit=cover", "/cdn-cgi/image/fit=cover,h=150,w=200,dpr=2/a.jpg"],
            &["/a.jpg?format=png", "/a.jpg?format=png&quality=10", "/a.jpg?format=png&fit=cover"],
            &["/a.jpg?quality=85", "/a.jpg?fit=cover", "/a.jpg?dpr=3", "/cdn-cgi/image/q=85/a.jpg"],
            &["/a.jpg?format=jpeg", "/a.jpg?format=jpg", "/a.jpg?format=JPEG", "/cdn-cgi/image/f=baseline-jpeg/a.jpg"],
        ];
        let mut seen: Vec<String> = Vec::new();
        for group in groups {
            let first = descriptor(group[0], Some(CHROME));
            for uri in &group[1..] {
                assert_eq!(descriptor(uri, Some(CHROME)), first, "{uri} vs {}", group[0]);
            }
            assert!(!seen.contains(&first), "{first} is shared by two groups");
            seen.push(first);
        }
        assert_eq!(
            seen,
            [
                "img1:w=400,fit=scale-down,f=source,q=85",
                "img1:w=400,fit=contain,f=source,q=85",
                "img1:w=400,h=300,fit=cover,f=source,q=85",
                "img1:f=png",
                "img1:f=source,q=85",
                "img1:f=jpeg,q=85",
            ]
        );
    }

    #[test]
    fn only_format_auto_varies_on_accept() {
        let cfg = ImagesConfig { enabled: true, ..ImagesConfig::default() };
        for (uri, varies) in [("/a.jpg?format=auto", true), ("/a.jpg?format=webp", false), ("/a.jpg?width=1", false)] {
            let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{e}"));
            let ops = ImageRequest::parse(&uri, &cfg).ok().flatten().map(|r| r.ops);
            assert_eq!(ops.map(|o| o.varies_on_accept()), Some(varies), "{uri}");
        }
    }
}
