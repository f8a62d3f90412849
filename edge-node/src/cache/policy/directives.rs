//! Cache-Control directives (RFC 9111 §5.2) and the fields that target a CDN:
//! - `Cache-Control`: a comma list of `name[=token|quoted-string]` (RFC 9111 §5.2), read
//!   leniently and most-restrictively (below);
//! - `CDN-Cache-Control`: a Structured Field Dictionary (RFC 9213 §2.1, RFC 9651 §4.2.2), read
//!   strictly: a field that fails to parse, or whose known directives have values of the wrong
//!   type, is ignored whole and the next field applies;
//! - `Surrogate-Control` (W3C Edge Architecture Specification 1.0, 2001): predates Structured
//!   Fields and is written in the Cache-Control list grammar with its own extensions
//!   (`max-age=60+30`, `;device` targeting, `no-store-remote`), which no SF parser accepts
//!   (`60+30` is not an Integer). It is read with the Cache-Control grammar, as Fastly and
//!   Varnish read it.

use std::time::Duration;

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::sf::{self, Bare, Member};
use crate::http::syntax::{DELTA_SECONDS_CAP, delta_seconds, split_list, text, unquote};

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
    ///   §4.2.1 "caches are encouraged to consider responses that have invalid freshness
    ///   information (e.g., a max-age directive with non-integer content) to be stale".
    ///   Invalid `stale-while-revalidate`, `stale-if-error`, `max-stale` and `min-fresh` values
    ///   are ignored (no stale window).
    /// - A `max-age` or `s-maxage` repeated with another value (on one line or several) makes
    ///   the response stale (0): §4.2.1 "either the first occurrence should be used or the
    ///   response should be considered stale"; stale is the restrictive choice. The same value
    ///   repeated is no conflict. Repeated windows keep the smallest, `min-fresh` the largest;
    ///   flags (no-store, no-cache, private, ...) hold wherever they appear ("if directives
    ///   conflict ... the most restrictive directive should be honored", §4.2.1).
    /// - Whitespace around `=` (`max-age = 60`) is accepted as Varnish does; §5.2's grammar has
    ///   none, but refusing it would turn an origin's `max-age = 60` into no max-age at all
    ///   (heuristic freshness), which is less restrictive than reading it.
    /// - delta-seconds saturate at 2^31 seconds (§1.2.2).
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Directives {
        parse_with(values, false)
    }

    /// All lines of the field `name` in `h`, in the Cache-Control list grammar.
    pub fn from_headers(h: &HeaderMap, name: &HeaderName) -> Directives {
        parse_with(h.get_all(name), *name == SURROGATE_CONTROL)
    }

    /// All lines of a targeted field (RFC 9213 §2.1) such as `CDN-Cache-Control`, combined
    /// into one Dictionary (RFC 9651 §4.2: lines joined with ", ", RFC 9110 §5.3). `None` when
    /// the field is absent or empty, fails to parse, or a known directive's value has the
    /// wrong type: RFC 9213 §2.1 "that field SHOULD be ignored by the cache (i.e., it should
    /// behave as if the field were not present)", and RFC 9651 §2 ignores a field whose
    /// field-specific constraints fail.
    pub fn targeted(h: &HeaderMap, name: &HeaderName) -> Option<Directives> {
        let mut combined = Vec::new();
        for (i, v) in h.get_all(name).iter().enumerate() {
            if i > 0 {
                combined.extend_from_slice(b", ");
            }
            combined.extend_from_slice(v.as_bytes());
        }
        let dict = sf::parse_dictionary(&combined).ok()?;
        if dict.is_empty() {
            return None;
        }
        let mut d = Directives::default();
        for (key, member) in &dict {
            apply_member(&mut d, key, member)?;
        }
        Some(d)
    }
}

/// RFC 9213 §2.1 maps each directive to an SF type: delta-seconds to a (non-negative) Integer,
/// argument-less directives to Boolean true, a field-name list (`no-cache`, `private`) to a
/// String. Any other type for a known directive is `None` (the field is invalid); unknown
/// keys and request-only directives are ignored (RFC 9111 §5.2.3). Parameters were already
/// dropped by the parser ("Parameters received on directives are to be ignored").
fn apply_member(d: &mut Directives, key: &str, member: &Member) -> Option<()> {
    let delta = || match member {
        Member::Item(Bare::Integer(n)) => u64::try_from(*n).ok().map(|n| Duration::from_secs(n.min(DELTA_SECONDS_CAP))),
        _ => None,
    };
    let flag = || matches!(member, Member::Item(Bare::Boolean(true))).then_some(true);
    // A String names fields (§5.2.2.4, §5.2.2.7); treated as unqualified, as for Cache-Control.
    let flag_or_fields = || matches!(member, Member::Item(Bare::Boolean(true) | Bare::String(_))).then_some(true);
    match key {
        "max-age" => d.max_age = Some(delta()?),
        "s-maxage" => d.s_maxage = Some(delta()?),
        "stale-while-revalidate" => d.stale_while_revalidate = Some(delta()?),
        "stale-if-error" => d.stale_if_error = Some(delta()?),
        "no-store" => d.no_store = flag()?,
        "no-cache" => d.no_cache = flag_or_fields()?,
        "private" => d.private = flag_or_fields()?,
        "public" => d.public = flag()?,
        "must-revalidate" => d.must_revalidate = flag()?,
        "proxy-revalidate" => d.proxy_revalidate = flag()?,
        "immutable" => d.immutable = flag()?,
        "no-transform" => d.no_transform = flag()?,
        _ => {}
    }
    Some(())
}

/// Parses list-grammar lines. With `surrogate` (Surrogate-Control, Edge Architecture 1.0):
/// - `max-age=60+30` (lifetime + stale extension): the lifetime is kept;
/// - `directive;device` targets the surrogate named `device`; this node has no device name, so
///   a targeted directive is addressed to another surrogate and is ignored;
/// - `no-store-remote` is addressed to surrogates away from the origin, which a CDN is: it
///   counts as `no-store`.
fn parse_with<'a>(values: impl IntoIterator<Item = &'a HeaderValue>, surrogate: bool) -> Directives {
    let mut d = Directives::default();
    for value in values {
        let value = text(value);
        for item in split_list(&value) {
            let item = match item.split_once(';') {
                Some((_, target)) if surrogate && !target.trim_matches([' ', '\t']).is_empty() => continue,
                Some((directive, _)) if surrogate => directive.trim_matches([' ', '\t']),
                _ => item,
            };
            let (name, arg) = match item.split_once('=') {
                Some((n, a)) => (n.trim_matches([' ', '\t']), Some(unquote(a.trim_matches([' ', '\t'])))),
                None => (item, None),
            };
            let name = name.to_ascii_lowercase();
            let name = if surrogate && name == "no-store-remote" { "no-store" } else { name.as_str() };
            apply(&mut d, name, arg.as_deref(), surrogate);
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
        "max-age" => lifetime_into(&mut d.max_age, delta.unwrap_or(Duration::ZERO)),
        "s-maxage" => lifetime_into(&mut d.s_maxage, delta.unwrap_or(Duration::ZERO)),
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

/// RFC 9111 §4.2.1: a lifetime given twice with different values makes the response stale.
fn lifetime_into(slot: &mut Option<Duration>, v: Duration) {
    *slot = Some(match *slot {
        Some(old) if old != v => Duration::ZERO,
        _ => v,
    });
}

fn min_into(slot: &mut Option<Duration>, v: Duration) {
    *slot = Some(slot.map_or(v, |old| old.min(v)));
}

/// The directives this cache obeys for a response and where they came from.
///
/// RFC 9213 §2.2: the first field of the target list (`CDN-Cache-Control`, then
/// `Surrogate-Control`) "with a valid, non-empty value" wins, and `Cache-Control` (and
/// `Expires`, see `freshness`) are then ignored; otherwise `Cache-Control`.
pub fn response_directives(h: &HeaderMap) -> (Directives, Source) {
    if let Some(d) = Directives::targeted(h, &CDN_CACHE_CONTROL) {
        return (d, Source::CdnCacheControl);
    }
    let surrogate = h.get_all(&SURROGATE_CONTROL).iter().any(|v| !split_list(&text(v)).is_empty());
    if surrogate {
        return (Directives::from_headers(h, &SURROGATE_CONTROL), Source::SurrogateControl);
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
                clause: "RFC 9111 §4.2.1 max-age repeated with another value (two lines): stale",
                lines: &["max-age=60", "max-age=10"],
                want: Directives { max_age: secs(0), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 max-age repeated with another value (one line): stale",
                lines: &["max-age=10, public, max-age=60"],
                want: Directives { max_age: secs(0), public: true, ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 stale stays stale after a third value",
                lines: &["max-age=10, max-age=60, max-age=10"],
                want: Directives { max_age: secs(0), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 the same max-age twice is no conflict",
                lines: &["max-age=60", "MAX-AGE=\"60\""],
                want: Directives { max_age: secs(60), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 s-maxage repeated with another value: stale",
                lines: &["s-maxage=5, s-maxage=50"],
                want: Directives { s_maxage: secs(0), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 invalid then valid max-age: stale",
                lines: &["max-age=abc, max-age=60"],
                want: Directives { max_age: secs(0), ..d() },
            },
            Case {
                clause: "RFC 9111 §4.2.1 conflicting directives: every restrictive flag holds",
                lines: &["max-age=60, public", "no-store", "Private"],
                want: Directives { max_age: secs(60), public: true, no_store: true, private: true, ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2 whitespace around = read as meant (Varnish does)",
                lines: &["max-age = 60 , s-maxage\t=\t5"],
                want: Directives { max_age: secs(60), s_maxage: secs(5), ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2 odd case in names",
                lines: &["No-Store, mUsT-rEvAlIdAtE, S-MAXAGE=7"],
                want: Directives { no_store: true, must_revalidate: true, s_maxage: secs(7), ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.2.4 field-name list in no-cache (several names, quoted commas)",
                lines: &[r#"no-cache="set-cookie, authorization", max-age=5"#],
                want: Directives { no_cache: true, max_age: secs(5), ..d() },
            },
            Case {
                clause: "RFC 9111 §5.2.2.7 qualified private (shared cache: private)",
                lines: &[r#"public, private="set-cookie", max-age=5"#],
                want: Directives { public: true, private: true, max_age: secs(5), ..d() },
            },
            Case {
                clause: "RFC 5861 repeated windows keep the smallest",
                lines: &["stale-while-revalidate=30", "stale-while-revalidate=10, stale-if-error=5, stale-if-error=9"],
                want: Directives { stale_while_revalidate: secs(10), stale_if_error: secs(5), ..d() },
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
                clause: "RFC 9213 §2.1 parse error (uppercase key, RFC 9651 §4.2.3.3): Cache-Control",
                headers: &[("cache-control", "max-age=7"), ("cdn-cache-control", "Max-Age=600")],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9213 §2.1 max-age a String, not an Integer: field ignored",
                headers: &[("cache-control", "max-age=7"), ("cdn-cache-control", r#"max-age="600""#)],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9213 §2.1 max-age a Decimal: field ignored",
                headers: &[("cache-control", "max-age=7"), ("cdn-cache-control", "max-age=1.5")],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9213 §2.1 max-age a Token: field ignored",
                headers: &[("cache-control", "max-age=7"), ("cdn-cache-control", "max-age=abc")],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9213 §2.1 negative s-maxage is no delta-seconds: field ignored",
                headers: &[("cache-control", "max-age=7"), ("cdn-cache-control", "s-maxage=-1")],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9213 §2.1 no-store with a value: field ignored",
                headers: &[("cache-control", "max-age=7"), ("cdn-cache-control", "no-store=1, max-age=600")],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9651 §4.2.2 trailing comma: field ignored",
                headers: &[("cache-control", "max-age=7"), ("cdn-cache-control", "max-age=600,")],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9651 §4.2.4 Surrogate-style 60+30 is no Integer: field ignored",
                headers: &[("cache-control", "max-age=7"), ("cdn-cache-control", "max-age=60+30")],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9651 §4.2 lines combine: one bad line spoils the field",
                headers: &[
                    ("cache-control", "max-age=7"),
                    ("cdn-cache-control", "max-age=600"),
                    ("cdn-cache-control", "X"),
                ],
                source: Source::CacheControl,
                max_age: secs(7),
            },
            SCase {
                clause: "RFC 9651 §4.2 lines combine into one Dictionary",
                headers: &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "public"),
                    ("cdn-cache-control", "max-age=600"),
                ],
                source: Source::CdnCacheControl,
                max_age: secs(600),
            },
            SCase {
                clause: "RFC 9651 §4.2.2 repeated key: last value wins",
                headers: &[("cdn-cache-control", "max-age=5, max-age=600")],
                source: Source::CdnCacheControl,
                max_age: secs(600),
            },
            SCase {
                clause: "RFC 9213 §2.1 unknown keys of any type and parameters ignored",
                headers: &[("cdn-cache-control", r#"foo=(1 "a"), bar=:aGk=:, max-age=600;x=?0"#)],
                source: Source::CdnCacheControl,
                max_age: secs(600),
            },
            SCase {
                clause: "RFC 9111 §1.2.2 Integer past 2^31 saturates",
                headers: &[("cdn-cache-control", "max-age=999999999999999")],
                source: Source::CdnCacheControl,
                max_age: secs(1 << 31),
            },
            SCase {
                clause: "RFC 9213 §2.2 invalid CDN-Cache-Control: next in the target list",
                headers: &[("cdn-cache-control", "max-age=x"), ("surrogate-control", "max-age=5")],
                source: Source::SurrogateControl,
                max_age: secs(5),
            },
            SCase {
                clause: "Edge Architecture 1.0: a directive targeted at another device is ignored",
                headers: &[("surrogate-control", "max-age=5;other-cdn, max-age=9")],
                source: Source::SurrogateControl,
                max_age: secs(9),
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
    fn targeted_flags_table() {
        // RFC 9213 §2.1: the type each directive maps to.
        let cases: [(&str, &str, Option<Directives>); 6] = [
            ("no-store is Boolean true", "no-store", Some(Directives { no_store: true, ..Directives::default() })),
            ("?0 is not the value no-store maps to", "no-store=?0", None),
            (
                "no-cache with a String of field names",
                r#"no-cache="set-cookie""#,
                Some(Directives { no_cache: true, ..Directives::default() }),
            ),
            (
                "private with a String (shared cache: private)",
                r#"private="x", max-age=5"#,
                Some(Directives { private: true, max_age: secs(5), ..Directives::default() }),
            ),
            ("private with an Integer is the wrong type", "private=1", None),
            ("empty field: absent", "", None),
        ];
        for (clause, v, want) in cases {
            assert_eq!(Directives::targeted(&map(&[("cdn-cache-control", v)]), &CDN_CACHE_CONTROL), want, "{clause}");
        }
        // Edge Architecture 1.0: no-store-remote addresses surrogates away from the origin.
        let (d, _) = response_directives(&map(&[("surrogate-control", "no-store-remote")]));
        assert!(d.no_store, "no-store-remote");
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
