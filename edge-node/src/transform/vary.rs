//! `Vary` on what the transform phase sends: whether the node's choice of coding makes a
//! response depend on `Accept-Encoding`, and how a member joins the origin's own `Vary`.
//!
//! RFC 9110 §12.5.5: a response lists in `Vary` the request fields that chose it. The node
//! chooses a coding only where compression could change the response, so only those responses
//! say `Accept-Encoding`: a small, non-compressible or `no-transform` response is the same for
//! every client, and a `Vary` it does not need would split downstream caches' entries for
//! nothing. A 304 or HEAD names the same members as the 200 it stands for (RFC 9110 §15.4.5,
//! §9.3.2), so the decision reads the representation's type and length, never the message's.

use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue};
use outpost_config::CompressionConfig;

use super::compress::{self, Coding};

/// Whether the response for a base with these headers (and representation length `len`, when
/// known) depends on the client's `Accept-Encoding`.
pub fn on_accept_encoding(cfg: &CompressionConfig, base: &HeaderMap, len: Option<u64>) -> bool {
    if !cfg.enabled {
        return false;
    }
    match Coding::of_response(base) {
        // A coding the node cannot undo: every client gets the same bytes.
        None => false,
        // Compressed only when the type is listed, the origin allows it (RFC 9110 §7.7) and the
        // length is not known to be below `min_size`.
        Some(Coding::Identity) => {
            compress::compressible(base.get(CONTENT_TYPE), &cfg.types)
                && !no_transform(base)
                && len.is_none_or(|n| n >= cfg.min_size.as_u64())
        }
        // The origin's coding: as it is for a client that takes it, decoded (or re-encoded) for
        // one that does not (RFC 9110 §12.5.3).
        Some(_) => true,
    }
}

/// The length of the representation a response carries (RFC 9110 §8.6, §14.4): a 206's or
/// 416's complete length from `Content-Range`, else `Content-Length`. `None` when unknown.
pub fn representation_length(headers: &HeaderMap) -> Option<u64> {
    if let Some(range) = headers.get(CONTENT_RANGE) {
        let complete = range.to_str().ok()?.rsplit_once('/')?.1.trim();
        return complete.parse().ok();
    }
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// RFC 9110 §7.7 / RFC 9111 §5.2.2.6: `Cache-Control: no-transform` forbids changing the content.
pub fn no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
}

/// Adds `field` to the response's `Vary` (see [`merged`]).
pub fn add(headers: &mut HeaderMap, field: &str) {
    match merged(headers.get_all(VARY), field) {
        Merge::Keep => {}
        Merge::Replace(line) => {
            headers.insert(VARY, line);
        }
        Merge::Append => {
            if let Ok(v) = HeaderValue::from_str(field) {
                headers.append(VARY, v);
            }
        }
    }
}

/// What [`add`] does to the `Vary` lines.
#[derive(Debug, PartialEq, Eq)]
pub enum Merge {
    /// Already right: `Vary: *`, or one line that lists each member once with `field` among them.
    Keep,
    /// One line instead of those there: the members in their order, each once, then `field`.
    Replace(HeaderValue),
    /// A line that is not visible ASCII is not ours to rewrite: `field` goes on a line of its own.
    Append,
}

/// RFC 9110 §12.5.5 `Vary = #( "*" / field-name )`. The origin's members keep their order and
/// spelling; field names are case-insensitive (RFC 9110 §5.1), so a member listed twice, in any
/// case, is kept once, and `field` is added only when not listed; several lines are one list
/// (RFC 9110 §5.3) and become one line. `*` already varies on everything (RFC 9111 §4.1).
pub fn merged<'a>(lines: impl IntoIterator<Item = &'a HeaderValue>, field: &str) -> Merge {
    let mut members: Vec<&str> = Vec::new();
    let (mut count, mut readable, mut duplicates) = (0, true, false);
    for line in lines {
        count += 1;
        let Ok(text) = line.to_str() else {
            readable = false;
            continue;
        };
        // RFC 9110 §5.6.1: empty list elements and optional whitespace are not members.
        for member in text.split(',').map(|m| m.trim_matches([' ', '\t'])).filter(|m| !m.is_empty()) {
            if member == "*" {
                return Merge::Keep;
            }
            match members.iter().any(|m| m.eq_ignore_ascii_case(member)) {
                true => duplicates = true,
                false => members.push(member),
            }
        }
    }
    let listed = members.iter().any(|m| m.eq_ignore_ascii_case(field));
    if !readable {
        return if listed { Merge::Keep } else { Merge::Append };
    }
    if listed && count == 1 && !duplicates {
        return Merge::Keep;
    }
    if !listed {
        members.push(field);
    }
    match HeaderValue::from_str(&members.join(", ")) {
        Ok(line) => Merge::Replace(line),
        Err(_) => Merge::Append,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use outpost_config::ByteSize;

    use super::*;

    fn values(lines: &[&[u8]]) -> Vec<HeaderValue> {
        lines.iter().map(|l| HeaderValue::from_bytes(l).unwrap()).collect()
    }

    #[test]
    fn merging_accept_encoding_into_the_origins_vary() {
        let replace = |s: &'static str| Merge::Replace(HeaderValue::from_static(s));
        let cases: &[(&str, &[&[u8]], Merge)] = &[
            ("RFC 9110 §12.5.5 no Vary: the node's member alone", &[], replace("Accept-Encoding")),
            (
                "RFC 9110 §12.5.5 the origin's members keep their order; ours goes last",
                &[b"Origin, Accept-Language"],
                replace("Origin, Accept-Language, Accept-Encoding"),
            ),
            (
                "RFC 9110 §5.3 several lines are one list, and become one line",
                &[b"Origin", b"Accept-Language"],
                replace("Origin, Accept-Language, Accept-Encoding"),
            ),
            (
                "RFC 9110 §5.1 already listed, in another case: kept once, as spelt",
                &[b"Origin, accept-encoding"],
                Merge::Keep,
            ),
            (
                "RFC 9110 §5.1 a member listed twice in any case is kept once",
                &[b"Origin, ORIGIN", b"ACCEPT-ENCODING"],
                replace("Origin, ACCEPT-ENCODING"),
            ),
            (
                "RFC 9110 §5.6.1 empty elements and whitespace are no members",
                &[b" , Origin ,\t"],
                replace("Origin, Accept-Encoding"),
            ),
            ("RFC 9111 §4.1 Vary: * already varies on everything", &[b"*"], Merge::Keep),
            ("RFC 9110 §12.5.5 * within a list", &[b"Origin", b"*"], Merge::Keep),
            ("RFC 9110 §5.5 obs-text is not ours to rewrite", &[b"Origin, X-\xe9"], Merge::Append),
            ("RFC 9110 §5.5 obs-text, but the member is there", &[b"X-\xe9", b"accept-encoding"], Merge::Keep),
        ];
        for (clause, lines, want) in cases {
            assert_eq!(&merged(values(lines).iter(), "Accept-Encoding"), want, "{clause}");
        }
    }

    #[test]
    fn add_leaves_one_line() {
        let mut h = HeaderMap::new();
        h.append(VARY, HeaderValue::from_static("Origin"));
        h.append(VARY, HeaderValue::from_static("Accept-Language"));
        add(&mut h, "Accept-Encoding");
        add(&mut h, "accept-encoding");
        let lines: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(lines, ["Origin, Accept-Language, Accept-Encoding"]);
    }

    #[test]
    fn which_responses_vary_on_accept_encoding() {
        let cfg = CompressionConfig { min_size: ByteSize::kib(1), ..CompressionConfig::default() };
        let off = CompressionConfig { enabled: false, ..cfg.clone() };
        let h = |fields: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (n, v) in fields {
                map.append(*n, HeaderValue::from_static(v));
            }
            map
        };
        let html = [("content-type", "text/html")];
        let cases: &[(&str, &CompressionConfig, HeaderMap, Option<u64>, bool)] = &[
            ("RFC 9110 §12.5.5 compressible and large enough: the coding is chosen", &cfg, h(&html), Some(4096), true),
            ("RFC 9110 §12.5.5 length unknown (streamed): compressed", &cfg, h(&html), None, true),
            ("RFC 9110 §12.5.5 below min_size: the same for every client", &cfg, h(&html), Some(100), false),
            ("RFC 9110 §12.5.5 at min_size: compressed", &cfg, h(&html), Some(1024), true),
            (
                "RFC 9110 §12.5.5 a type not compressed (image/png)",
                &cfg,
                h(&[("content-type", "image/png")]),
                Some(4096),
                false,
            ),
            ("RFC 9110 §8.3 no Content-Type: not compressed", &cfg, h(&[]), Some(4096), false),
            (
                "RFC 9110 §7.7 no-transform: sent as it is",
                &cfg,
                h(&[("content-type", "text/html"), ("cache-control", "max-age=60, No-Transform")]),
                Some(4096),
                false,
            ),
            (
                "RFC 9110 §12.5.3 the origin's gzip: decoded for a client that does not take it",
                &cfg,
                h(&[("content-type", "image/png"), ("content-encoding", "gzip")]),
                Some(10),
                true,
            ),
            (
                "RFC 9110 §8.4 a coding the node cannot undo goes as it is",
                &cfg,
                h(&[("content-type", "text/html"), ("content-encoding", "compress")]),
                Some(4096),
                false,
            ),
            ("compression off: nothing is chosen", &off, h(&html), Some(4096), false),
        ];
        for (clause, cfg, headers, len, want) in cases {
            assert_eq!(on_accept_encoding(cfg, headers, *len), *want, "{clause}");
        }
    }

    #[test]
    fn representation_lengths() {
        let h = |n: &'static str, v: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(n, HeaderValue::from_static(v));
            map
        };
        let cases = [
            ("RFC 9110 §8.6 Content-Length", h("content-length", "2048"), Some(2048)),
            ("RFC 9110 §14.4 a 206's complete length", h("content-range", "bytes 0-9/5000"), Some(5000)),
            ("RFC 9110 §14.4 a 416's complete length", h("content-range", "bytes */5000"), Some(5000)),
            ("RFC 9110 §14.4 complete length unknown", h("content-range", "bytes 0-9/*"), None),
            ("no length", HeaderMap::new(), None),
        ];
        for (clause, headers, want) in cases {
            assert_eq!(representation_length(&headers), want, "{clause}");
        }
    }
}
