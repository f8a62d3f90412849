//! Header bookkeeping around the cache: surrogate keys, CDN-only and hop-by-hop fields,
//! Vary secondary keys, invalidation after unsafe requests.

use std::fmt::Write as _;

use http::header::{CONTENT_LOCATION, LOCATION, VARY};
use http::{HeaderMap, HeaderName};

use super::directives::{CDN_CACHE_CONTROL, SURROGATE_CONTROL};
pub use crate::http::hop::strip_hop_by_hop;
pub(super) use crate::http::hop::{connection_named, is_hop_by_hop};
use crate::http::syntax::{split_list, text};

/// `Surrogate-Key` (space-separated tags).
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// `Cache-Tag` (comma-separated tags).
pub const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// Longest tag kept. A longer tag is dropped, not truncated (truncation could merge two tags
/// and purge too much). Default: 256 bytes.
pub const MAX_TAG_LEN: usize = 256;
/// Most tags kept per response; later ones are dropped, so a purge by one of them misses this
/// response. Bounds the tag index per object. Default: 128.
pub const MAX_TAGS: usize = 128;

/// Surrogate keys of a response: `Surrogate-Key` split on whitespace, `Cache-Tag` split on
/// commas; trimmed, deduplicated in order of appearance, at most `MAX_TAGS` of at most
/// `MAX_TAG_LEN` bytes. Tags must be visible ASCII; others are dropped.
pub fn tags(resp: &HeaderMap) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let space = resp.get_all(SURROGATE_KEY).into_iter().flat_map(|v| v.as_bytes().split(|b| b.is_ascii_whitespace()));
    let comma = resp.get_all(CACHE_TAG).into_iter().flat_map(|v| v.as_bytes().split(|b| *b == b','));
    for raw in space.chain(comma) {
        if out.len() >= MAX_TAGS {
            break;
        }
        let tag = raw.trim_ascii();
        let visible = tag.iter().all(|b| b.is_ascii_graphic());
        if tag.is_empty() || tag.len() > MAX_TAG_LEN || !visible {
            continue;
        }
        let tag = String::from_utf8_lossy(tag).into_owned();
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

/// Removes fields meant for this CDN only (RFC 9213 §2.1: a CDN that uses CDN-Cache-Control
/// may remove it): CDN-Cache-Control, Surrogate-Control, Surrogate-Key, Cache-Tag.
pub fn strip_cdn_headers(h: &mut HeaderMap) {
    for name in [CDN_CACHE_CONTROL, SURROGATE_CONTROL, SURROGATE_KEY, CACHE_TAG] {
        h.remove(name);
    }
}

/// The response has `Vary: *` (RFC 9111 §4.1): it matches no request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaryStar;

/// RFC 9111 §4.1: request field names the response varies on, lower-case, sorted,
/// deduplicated. Names that are not valid field names are skipped: no request can carry them.
pub fn vary_fields(resp: &HeaderMap) -> Result<Vec<HeaderName>, VaryStar> {
    let mut out = Vec::new();
    for v in resp.get_all(VARY) {
        for item in split_list(&text(v)) {
            if item == "*" {
                return Err(VaryStar);
            }
            if let Ok(name) = HeaderName::from_bytes(item.as_bytes()) {
                out.push(name);
            }
        }
    }
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out.dedup();
    Ok(out)
}

/// Secondary cache key (RFC 9111 §4.1) for `fields` (from `vary_fields`).
///
/// One line per field: `name:value\n` when present, `name\n` when absent (absent differs from
/// empty). The value is every line of the field joined with ",", whitespace around commas
/// outside quoted strings removed (§4.1 allows normalising what the field's syntax allows).
/// Bytes outside visible ASCII and `%` are written `%XX`, so distinct values never collide.
pub fn vary_key(fields: &[HeaderName], req: &HeaderMap) -> String {
    let mut key = String::new();
    for name in fields {
        key.push_str(name.as_str());
        let mut values = req.get_all(name).iter().peekable();
        if values.peek().is_some() {
            let mut joined: Vec<u8> = Vec::new();
            for (i, v) in values.enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                joined.extend_from_slice(v.as_bytes());
            }
            key.push(':');
            for b in normalize_commas(&joined) {
                if (b.is_ascii_graphic() && b != b'%') || b == b' ' {
                    key.push(char::from(b));
                } else {
                    let _ = write!(key, "%{b:02X}");
                }
            }
        }
        key.push('\n');
    }
    key
}

/// Trims the value and removes spaces and tabs around commas outside quoted strings.
fn normalize_commas(v: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(v.len());
    let (mut in_quotes, mut escaped, mut after_comma) = (false, false, true);
    for &b in v {
        if in_quotes {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b' ' | b'\t' if after_comma => {}
            b',' => {
                while out.last().is_some_and(|c| *c == b' ' || *c == b'\t') {
                    out.pop();
                }
                out.push(b',');
                after_comma = true;
            }
            _ => {
                in_quotes = b == b'"';
                after_comma = false;
                out.push(b);
            }
        }
    }
    if !in_quotes {
        while out.last().is_some_and(|c| *c == b' ' || *c == b'\t') {
            out.pop();
        }
    }
    out
}

/// RFC 9111 §4.4: after a non-error response to an unsafe request, invalidate the target URI
/// and the Location / Content-Location URIs whose host equals the request's host (compared
/// case-insensitively, ports ignored). Relative references are resolved against the request
/// path (RFC 3986 §5.2). Returns path-and-query strings, request path first, deduplicated.
/// The caller checks the method and the status.
pub fn invalidation_targets(request_host: &str, request_path_and_query: &str, resp: &HeaderMap) -> Vec<String> {
    let mut out = vec![request_path_and_query.to_string()];
    let base_path = request_path_and_query.split('?').next().unwrap_or("/");
    let host = host_part(request_host);
    for name in [LOCATION, CONTENT_LOCATION] {
        for v in resp.get_all(name) {
            let Ok(s) = v.to_str() else { continue };
            if let Some(target) = resolve_same_host(s.trim(), &host, base_path)
                && !out.contains(&target)
            {
                out.push(target);
            }
        }
    }
    out
}

/// Host of an authority, lower-case, without userinfo and port.
fn host_part(authority: &str) -> String {
    let a = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = a.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        a.split(':').next().unwrap_or(a)
    };
    host.to_ascii_lowercase()
}

fn resolve_same_host(reference: &str, host: &str, base_path: &str) -> Option<String> {
    let reference = reference.split('#').next().unwrap_or(reference);
    let scheme_len = reference.find(':').filter(|&i| {
        let scheme = &reference[..i];
        scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let rest = match scheme_len {
        Some(i) => {
            let scheme = &reference[..i];
            if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
                return None;
            }
            reference.get(i + 1..)?.strip_prefix("//")?
        }
        None => match reference.strip_prefix("//") {
            Some(r) => r,
            None => return Some(resolve_relative(reference, base_path)),
        },
    };
    // rest = authority path-abempty [ "?" query ]
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if host_part(authority) != host {
        return None;
    }
    let (p, q) = split_query(path);
    let p = if p.is_empty() { "/".to_string() } else { remove_dot_segments(p) };
    Some(format!("{p}{q}"))
}

fn split_query(s: &str) -> (&str, &str) {
    match s.find('?') {
        Some(i) => s.split_at(i),
        None => (s, ""),
    }
}

/// RFC 3986 §5.2.2 for a reference without scheme and authority.
fn resolve_relative(reference: &str, base_path: &str) -> String {
    let (p, q) = split_query(reference);
    let path = if p.is_empty() {
        base_path.to_string()
    } else if p.starts_with('/') {
        p.to_string()
    } else {
        // §5.2.3 merge: base path up to its last "/", then the reference.
        let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
        format!("{dir}{p}")
    };
    let path = remove_dot_segments(&path);
    let path = if path.is_empty() { "/".to_string() } else { path };
    format!("{path}{q}")
}

/// RFC 3986 §5.2.4, for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type H = &'static [(&'static str, &'static str)];
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tags_table() {
        let long = "x".repeat(MAX_TAG_LEN + 1);
        let many: String = (0..MAX_TAGS + 10).map(|i| format!("t{i} ")).collect();
        let cases: Vec<(&str, HeaderMap, Vec<String>)> = vec![
            (
                "Surrogate-Key is space-separated",
                map(&[("surrogate-key", " a  b\tc ")]),
                vec!["a".into(), "b".into(), "c".into()],
            ),
            (
                "Cache-Tag is comma-separated",
                map(&[("cache-tag", "a, b ,,c")]),
                vec!["a".into(), "b".into(), "c".into()],
            ),
            (
                "both fields, all lines, deduplicated",
                map(&[("surrogate-key", "a b"), ("cache-tag", "b,c"), ("cache-tag", "a")]),
                vec!["a".into(), "b".into(), "c".into()],
            ),
            ("tag over MAX_TAG_LEN dropped", map(&[("surrogate-key", &format!("{long} ok"))]), vec!["ok".into()]),
            (
                "non-ASCII tag dropped",
                {
                    let mut h = HeaderMap::new();
                    h.insert(SURROGATE_KEY, HeaderValue::from_bytes(b"caf\xc3\xa9 ok").unwrap());
                    h
                },
                vec!["ok".into()],
            ),
            ("no tag fields", map(&[]), vec![]),
        ];
        for (clause, h, want) in cases {
            assert_eq!(tags(&h), want, "{clause}");
        }
        let got = tags(&map(&[("surrogate-key", &many)]));
        assert_eq!((got.len(), got.last().map(String::as_str)), (MAX_TAGS, Some("t127")), "at most MAX_TAGS");
    }

    #[test]
    fn strip_table() {
        let mut h = map(&[
            ("cdn-cache-control", "max-age=60"),
            ("surrogate-control", "max-age=60"),
            ("surrogate-key", "a"),
            ("cache-tag", "a"),
            ("cache-control", "max-age=5"),
        ]);
        strip_cdn_headers(&mut h);
        assert_eq!(
            h.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["cache-control"],
            "RFC 9213 §2.1 CDN-only fields"
        );
    }

    #[test]
    fn vary_table() {
        let n = |s: &'static str| HeaderName::from_static(s);
        type Want = Result<Vec<HeaderName>, VaryStar>;
        let cases: [(&str, H, Want); 5] = [
            (
                "RFC 9111 §4.1 lower-case, sorted, deduplicated, all lines",
                &[("vary", "Accept-Encoding, accept"), ("vary", "ACCEPT")],
                Ok(vec![n("accept"), n("accept-encoding")]),
            ),
            ("RFC 9111 §4.1 Vary: * never matches", &[("vary", "accept, *")], Err(VaryStar)),
            ("RFC 9111 §4.1 no Vary", &[], Ok(vec![])),
            ("RFC 9110 §5.6.1 empty elements ignored", &[("vary", " , accept ,")], Ok(vec![n("accept")])),
            ("RFC 9110 §5.1 invalid field names skipped", &[("vary", "bad name, accept")], Ok(vec![n("accept")])),
        ];
        for (clause, h, want) in cases {
            assert_eq!(vary_fields(&map(h)), want, "{clause}");
        }
    }

    #[test]
    fn vary_key_table() {
        let fields = [HeaderName::from_static("accept"), HeaderName::from_static("accept-encoding")];
        let key = |h: &[(&str, &str)]| vary_key(&fields, &map(h));
        let cases: [(&str, String, &str); 5] = [
            (
                "RFC 9111 §4.1 values joined, whitespace around commas removed",
                key(&[("accept", "a , b"), ("accept", "c"), ("accept-encoding", "gzip")]),
                "accept:a,b,c\naccept-encoding:gzip\n",
            ),
            ("RFC 9111 §4.1 absent differs from empty", key(&[("accept", "")]), "accept:\naccept-encoding\n"),
            ("RFC 9111 §4.1 absent", key(&[]), "accept\naccept-encoding\n"),
            (
                "RFC 9110 §5.6.4 quoted strings kept verbatim",
                key(&[("accept", "a;q=\"x , y\" , b")]),
                "accept:a;q=\"x , y\",b\naccept-encoding\n",
            ),
            (
                "RFC 9111 §4.1 '%' escaped so distinct values stay distinct",
                key(&[("accept", "%41")]),
                "accept:%2541\naccept-encoding\n",
            ),
        ];
        for (clause, got, want) in cases {
            assert_eq!(got, want, "{clause}");
        }
        let obs = {
            let mut h = HeaderMap::new();
            h.insert("accept", HeaderValue::from_bytes(b"\xff").unwrap());
            vary_key(&fields, &h)
        };
        assert_eq!(obs, "accept:%FF\naccept-encoding\n", "obs-text escaped");
    }

    #[test]
    fn invalidation_table() {
        let cases: [(&str, H, &[&str]); 9] = [
            ("RFC 9111 §4.4 target URI", &[], &["/a/b?x=1"]),
            ("RFC 9111 §4.4 Location, same host", &[("location", "http://Shop.Example/c")], &["/a/b?x=1", "/c"]),
            (
                "RFC 9111 §4.4 Content-Location, same host with port",
                &[("content-location", "https://shop.example:8443/d?y=2#f")],
                &["/a/b?x=1", "/d?y=2"],
            ),
            (
                "RFC 9111 §4.4 other host ignored",
                &[("location", "http://evil.example/c"), ("content-location", "//other.example/d")],
                &["/a/b?x=1"],
            ),
            ("RFC 3986 §5.2 absolute path", &[("location", "/e")], &["/a/b?x=1", "/e"]),
            (
                "RFC 3986 §5.2.3 relative path merged with the request path",
                &[("location", "c/../d?z")],
                &["/a/b?x=1", "/a/d?z"],
            ),
            ("RFC 3986 §5.2.4 dot segments above root", &[("content-location", "../../../x")], &["/a/b?x=1", "/x"]),
            ("RFC 9111 §4.4 non-http scheme ignored", &[("location", "mailto:a@shop.example")], &["/a/b?x=1"]),
            (
                "RFC 9111 §4.4 duplicates removed",
                &[("location", "/a/b?x=1"), ("content-location", "//shop.example/a/b?x=1")],
                &["/a/b?x=1"],
            ),
        ];
        for (clause, h, want) in cases {
            assert_eq!(invalidation_targets("shop.example", "/a/b?x=1", &map(h)), want, "{clause}");
        }
    }
}
