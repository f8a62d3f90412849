//! Cache-Control directives (RFC 9111 §5.2), and the same grammar for the targeted fields
//! CDN-Cache-Control (RFC 9213) and Surrogate-Control (Edge Architecture Specification 1.0).

use std::time::Duration;

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::syntax::{delta_seconds, split_list, text, unquote};

/// `CDN-Cache-Control` (RFC 9213 §3).
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// `Surrogate-Control` (Edge Architecture Specification 1.0).
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// The directives of one field. Unknown directives are ignored (RFC 9111 §5.2.3).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    pub max_age: Option<Duration>,
    pub s_maxage: Option<Duration>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub immutable: bool,
    pub no_transform: bool,
    /// RFC 5861 §3.
    pub stale_while_revalidate: Option<Duration>,
    /// RFC 5861 §4 (response and request).
    pub stale_if_error: Option<Duration>,
    /// Request only (§5.2.1.2). `Some(None)`: any staleness is acceptable.
    pub max_stale: Option<Option<Duration>>,
    /// Request only (§5.2.1.3).
    pub min_fresh: Option<Duration>,
    /// Request only (§5.2.1.7).
    pub only_if_cached: bool,
}

/// Which field this cache obeys for a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CdnCacheControl,
    SurrogateControl,
    CacheControl,
}

impl Directives {
    /// Parses every line of one field as a single comma list (RFC 9110 §5.3).
    ///
    /// - Names are case-insensitive (§5.2); values may be tokens or quoted strings (§5.2).
    /// - `no-cache="f"` and `private="f"` count as unqualified: stricter than required, and this
    ///   cache does not strip individual fields.
    /// - An invalid `max-age`/`s-maxage` value ("abc", "-1", "1.5", missing) counts as 0:
    ///   §4.2.1 says invalid freshness information means stale. Invalid `stale-while-revalidate`,
    ///   `stale-if-error`, `max-stale` and `min-fresh` values are ignored (no stale window).
    /// - Repeated directives (§4.2.1 "invalid" for conflicting values): the most conservative
    ///   value wins: the smallest lifetime or window, the largest `min-fresh`.
    /// - delta-seconds saturate at 2^31 seconds (§1.2.2).
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Directives {
        parse_with(values, false)
    }

    /// All lines of the field `name` in `h`.
    pub fn from_headers(h: &HeaderMap, name: &HeaderName) -> Directives {
        parse_with(h.get_all(name), *name == SURROGATE_CONTROL)
    }
}

/// Surrogate-Control writes `max-age=60+30` (lifetime + stale extension); we keep the lifetime.
fn parse_with<'a>(values: impl IntoIterator<Item = &'a HeaderValue>, surrogate: bool) -> Directives {
    let mut d = Directives::default();
    for value in values {
        let value = text(value);
        for item in split_list(&value) {
            let (name, arg) = match item.split_once('=') {
                Some((n, a)) => (n.trim_matches([' ', '\t']), Some(unquote(a.trim_matches([' ', '\t'])))),
                None => (item, None),
            };
            apply(&mut d, &name.to_ascii_lowercase(), arg.as_deref(), surrogate);
        }
    }
    d
}

fn apply(d: &mut Directives, name: &str, arg: Option<&str>, surrogate: bool) {
    let delta = arg.and_then(|a| {
        let a = if surrogate { a.split('+').next().unwrap_or(a) } else { a };
        delta_seconds(a)
    });
    match name {
        // RFC 9111 §4.2.1: invalid freshness value → treat as stale (0).
        "max-age" => min_into(&mut d.max_age, delta.unwrap_or(Duration::ZERO)),
        "s-maxage" => min_into(&mut d.s_maxage, delta.unwrap_or(Duration::ZERO)),
        "stale-while-revalidate" => delta.into_iter().for_each(|v| min_into(&mut d.stale_while_revalidate, v)),
        "stale-if-error" => delta.into_iter().for_each(|v| min_into(&mut d.stale_if_error, v)),
        "min-fresh" => {
            if let Some(v) = delta {
                d.min_fresh = Some(d.min_fresh.map_or(v, |old| old.max(v)));
            }
        }
        "max-stale" => match (arg, delta) {
            (None, _) => d.max_stale = Some(d.max_stale.unwrap_or(None)),
            (Some(_), Some(v)) => {
                let merged = match d.max_stale {
                    Some(Some(old)) => old.min(v),
                    _ => v,
                };
                d.max_stale = Some(Some(merged));
            }
            (Some(_), None) => {}
        },
        "no-store" => d.no_store = true,
        "no-cache" => d.no_cache = true,
        "private" => d.private = true,
        "public" => d.public = true,
        "must-revalidate" => d.must_revalidate = true,
        "proxy-revalidate" => d.proxy_revalidate = true,
        "immutable" => d.immutable = true,
        "no-transform" => d.no_transform = true,
        "only-if-cached" => d.only_if_cached = true,
        _ => {}
    }
}

fn min_into(slot: &mut Option<Duration>, v: Duration) {
    *slot = Some(slot.map_or(v, |old| old.min(v)));
}

/// The directives this cache obeys for a response and where they came from.
///
/// RFC 9213 §2.1: the first targeted field in the target list (`CDN-Cache-Control`, then
/// `Surrogate-Control`) with a non-empty value wins, and `Cache-Control` (and `Expires`, see
/// `freshness`) are then ignored; otherwise `Cache-Control`.
pub fn response_directives(h: &HeaderMap) -> (Directives, Source) {
    for (name, source) in [(CDN_CACHE_CONTROL, Source::CdnCacheControl), (SURROGATE_CONTROL, Source::SurrogateControl)]
    {
        let non_empty = h.get_all(&name).iter().any(|v| !split_list(&text(v)).is_empty());
        if non_empty {
            return (Directives::from_headers(h, &name), source);
        }
    }
    (Directives::from_headers(h, &CACHE_CONTROL), Source::CacheControl)
}

/// Request directives: `Cache-Control`; when the request has no Cache-Control field,
/// `Pragma: no-cache` counts as `no-cache` (RFC 7234 §5.4; RFC 9111 §5.4 deprecates Pragma
/// but keeps it for HTTP/1.0 clients).
pub fn request_directives(h: &HeaderMap) -> Directives {
    if h.contains_key(CACHE_CONTROL) {
        return Directives::from_headers(h, &CACHE_CONTROL);
    }
    let pragma_no_cache =
        h.get_all(PRAGMA).iter().any(|v| split_list(&text(v)).iter().any(|i| i.eq_ignore_ascii_case("no-cache")));
    Directives { no_cache: pragma_no_cache, ..Directives::default() }
}

/// The request directives this cache obeys. With `honor` (`honor_client_cache_control`) off,
/// only `only-if-cached` (RFC 9111 §5.2.1.7), which can only spare the origin: `no-cache`,
/// `max-age=0`, `min-fresh` and `Pragma: no-cache` (§5.2.1, §5.4) would let any client send
/// every request through to the origin, and a shared cache may ignore them (Fastly, Cloudflare
/// and nginx's `proxy_cache` do).
pub fn obeyed_request_directives(h: &HeaderMap, honor: bool) -> Directives {
    let all = request_directives(h);
    if honor { all } else { Directives { only_if_cached: all.only_if_cached, ..Directives::default() } }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn client_directives_obeyed_by_default_and_when_honoured() {
        let cases: &[(&str, &str, bool, Directives)] = &[
            // RFC 9111 §5.2.1.4: honoured, no-cache asks for validation...
            ("cache-control", "no-cache", true, Directives { no_cache: true, ..Directives::default() }),
            // ...which a shared cache ignoring client directives does not do.
            ("cache-control", "no-cache", false, Directives::default()),
            ("cache-control", "max-age=0", false, Directives::default()),
            ("cache-control", "min-fresh=600", false, Directives::default()),
            // RFC 9111 §5.4: Pragma: no-cache is no-cache for HTTP/1.0 caches.
            ("pragma", "no-cache", true, Directives { no_cache: true, ..Directives::default() }),
            ("pragma", "no-cache", false, Directives::default()),
            // RFC 9111 §5.2.1.7: only-if-cached spares the origin, so it always counts.
            ("cache-control", "only-if-cached", false, Directives { only_if_cached: true, ..Directives::default() }),
        ];
        for (name, value, honor, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(*name, HeaderValue::from_static(value));
            assert_eq!(&obeyed_request_directives(&h, *honor), want, "{name}: {value} honor={honor}");
        }
    }

    type H = &'static [(&'static str, &'static str)];

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    struct Case {
        clause: &'static str,
        lines: &'static [&'static str],
        want: Directives,
    }

    #[test]
    fn parse_table() {
        let d = Directives::default;
        let cases = [
            Case {
                clause: "RFC 9111 §5.2.2.1 max-age",
                lines: &["max-age=60"],
                want: Directives { max_age: secs(60), ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2 names are case-insensitive",
                lines: &["Max-Age=60, PUBLIC"],
                want: Directives { max_age: secs(60), public: true, ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2 quoted-string argument accepted",
                lines: &[r#"max-age="60""#],
                want: Directives { max_age: secs(60), ..d() },
            },
            Case {
                clause: "RFC 9110 §5.3 list split across lines",
                lines: &["public", "s-maxage=10, must-revalidate"],
                want: Directives { public: true, s_maxage: secs(10), must_revalidate: true, ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.3 unknown directives ignored",
                lines: &["foo, bar=\"a,b\", max-age=5"],
                want: Directives { max_age: secs(5), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 invalid max-age (abc) is stale",
                lines: &["max-age=abc"],
                want: Directives { max_age: secs(0), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 invalid max-age (-1) is stale",
                lines: &["max-age=-1"],
                want: Directives { max_age: secs(0), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 invalid max-age (1.5) is stale",
                lines: &["max-age=1.5"],
                want: Directives { max_age: secs(0), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 missing max-age argument is stale",
                lines: &["max-age"],
                want: Directives { max_age: secs(0), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 conflicting max-age: most conservative",
                lines: &["max-age=60", "max-age=10"],
                want: Directives { max_age: secs(10), ..d() },
            },
            Case {
                clause: "RFC 9111 §1.2.2 delta-seconds saturate at 2^31",
                lines: &["max-age=99999999999999999999"],
                want: Directives { max_age: secs(1 << 31), ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.2.4 qualified no-cache treated as unqualified",
                lines: &[r#"no-cache="set-cookie, x""#],
                want: Directives { no_cache: true, ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.2.7 qualified private treated as unqualified",
                lines: &[r#"private="x""#],
                want: Directives { private: true, ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.2.5 no-store; §5.2.2.6 no-transform",
                lines: &["no-store, no-transform"],
                want: Directives { no_store: true, no_transform: true, ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.2.8 proxy-revalidate; RFC 8246 immutable",
                lines: &["proxy-revalidate, immutable"],
                want: Directives { proxy_revalidate: true, immutable: true, ..d() },
            },
            Case {
                clause: "RFC 5861 §3/§4 stale-while-revalidate, stale-if-error",
                lines: &["stale-while-revalidate=30, stale-if-error=600"],
                want: Directives { stale_while_revalidate: secs(30), stale_if_error: secs(600), ..d() },
            },
            Case {
                clause: "RFC 5861 invalid window ignored (no stale serving)",
                lines: &["stale-while-revalidate=x"],
                want: d(),
            },
            Case {
                clause: "RFC 9111 §5.2.1.2 max-stale without value: any staleness",
                lines: &["max-stale"],
                want: Directives { max_stale: Some(None), ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.1.2 max-stale with value",
                lines: &["max-stale=5, max-stale"],
                want: Directives { max_stale: Some(secs(5)), ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.1.3 min-fresh; duplicates keep the largest",
                lines: &["min-fresh=5, min-fresh=9"],
                want: Directives { min_fresh: secs(9), ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.1.7 only-if-cached",
                lines: &["only-if-cached"],
                want: Directives { only_if_cached: true, ..d() },
            },
            Case {
                clause: "RFC 9110 §5.6.1 empty list elements ignored",
                lines: &[" , ,max-age=1,,"],
                want: Directives { max_age: secs(1), ..d() },
            },
        ];
        for c in cases {
            let values: Vec<HeaderValue> = c.lines.iter().map(|l| HeaderValue::from_str(l).unwrap()).collect();
            assert_eq!(Directives::parse_all(&values), c.want, "{}", c.clause);
        }
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let v = HeaderValue::from_bytes(b"max-age=\xff\xfe, \"unterminated, private").unwrap();
        let d = Directives::parse_all([&v]);
        assert_eq!(d.max_age, secs(0));
        assert!(!d.private, "inside an unterminated quoted string");
    }

    #[test]
    fn source_table() {
        struct SCase {
            clause: &'static str,
            headers: &'static [(&'static str, &'static str)],
            source: Source,
            max_age: Option<Duration>,
        }
        let cases = [
            SCase {
                clause: "RFC 9213 §2.1 CDN-Cache-Control beats Cache-Control",
                headers: &[("cache-control", "no-store"), ("cdn-cache-control", "max-age=60")],
                source: Source::CdnCacheControl,
                max_age: secs(60),
            },
            SCase {
                clause: "RFC 9213 §2.1 CDN-Cache-Control beats Surrogate-Control",
                headers: &[("surrogate-control", "max-age=5"), ("cdn-cache-control", "max-age=60")],
                source: Source::CdnCacheControl,
                max_age: secs(60),
            },
            SCase {
                clause: "RFC 9213 §2.1 empty targeted field is skipped",
                headers: &[("cdn-cache-control", " "), ("surrogate-control", "max-age=5+30")],
                source: Source::SurrogateControl,
                max_age: secs(5),
            },
            SCase {
                clause: "RFC 9213 §2.1 no targeted field: Cache-Control",
                headers: &[("cache-control", "max-age=7")],
                source: Source::CacheControl,
                max_age: secs(7),
            },
        ];
        for c in cases {
            let (d, s) = response_directives(&map(c.headers));
            assert_eq!((s, d.max_age), (c.source, c.max_age), "{}", c.clause);
        }
    }

    #[test]
    fn request_pragma_table() {
        let cases: [(&str, H, bool); 3] = [
            ("RFC 7234 §5.4 Pragma: no-cache without Cache-Control", &[("pragma", "no-cache")], true),
            (
                "RFC 7234 §5.4 Cache-Control present: Pragma ignored",
                &[("pragma", "no-cache"), ("cache-control", "max-age=5")],
                false,
            ),
            ("RFC 9111 §5.2.1.4 request no-cache", &[("cache-control", "no-cache")], true),
        ];
        for (clause, h, want) in cases {
            assert_eq!(request_directives(&map(h)).no_cache, want, "{clause}");
        }
    }
}
