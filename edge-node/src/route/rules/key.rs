//! The cache key a request is stored under, as `[services.cache_key]` (or a rule's
//! `cache.key`) shapes it: the query kept, ignored, sorted or filtered, and header and cookie
//! values added. Pure functions of the request's parts.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};
use outpost_config::{CacheKeyConfig, Glob, QueryMode};

use super::matcher::cookie;

/// Longest header or cookie value that goes into a key; a request with a longer one is not
/// cached (it could not share an object without a collision, nor be keyed within bounds).
pub const MAX_KEY_VALUE: usize = 256;

/// Between the URL and the added fields, and between fields: a byte no URL or field value
/// holds, so two different requests never write the same key.
pub const FIELD_SEP: char = '\u{1c}';

#[derive(Debug)]
pub struct KeySpec {
    mode: QueryMode,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
    headers: Vec<HeaderName>,
    cookies: Vec<String>,
}

/// The fields a request adds to its key.
#[derive(Debug, PartialEq, Eq)]
pub enum Extra {
    None,
    Fields(String),
    /// A value longer than [`MAX_KEY_VALUE`]: the request bypasses the cache.
    TooLong,
}

impl KeySpec {
    pub fn compile(c: &CacheKeyConfig) -> Result<Self, String> {
        let mut headers = Vec::with_capacity(c.headers.len());
        for name in &c.headers {
            headers.push(
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("cache_key.headers: {name:?} is not a field name"))?,
            );
        }
        Ok(Self {
            mode: c.query,
            include: c.query_include.clone(),
            exclude: c.query_exclude.clone(),
            headers,
            cookies: c.cookies.clone(),
        })
    }

    /// Whether the key is the plain URL: nothing to do per request.
    pub fn is_plain(&self) -> bool {
        self.mode == QueryMode::Keep
            && self.include.is_empty()
            && self.exclude.is_empty()
            && self.headers.is_empty()
            && self.cookies.is_empty()
    }

    /// The query as the key (and the upstream) has it; borrowed when unchanged. Empty: none.
    pub fn query<'q>(&self, query: &'q str) -> Cow<'q, str> {
        let filtered = !self.include.is_empty() || !self.exclude.is_empty();
        match self.mode {
            QueryMode::Keep if !filtered => Cow::Borrowed(query),
            QueryMode::Ignore => Cow::Borrowed(""),
            mode => {
                let keep = |pair: &&str| {
                    let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
                    (self.include.is_empty() || self.include.iter().any(|g| g.matches(name)))
                        && !self.exclude.iter().any(|g| g.matches(name))
                };
                let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).filter(keep).collect();
                if mode == QueryMode::Sort {
                    // By name, then value: `a=2&a=1` and `a=1&a=2` are one object.
                    pairs.sort_by(|a, b| split(a).cmp(&split(b)));
                }
                let joined = pairs.join("&");
                if joined == query { Cow::Borrowed(query) } else { Cow::Owned(joined) }
            }
        }
    }

    /// The header and cookie values this key adds, in the order configured: `h.NAME=value`
    /// (absent: `h.NAME` alone, so "absent" and "empty" differ), `c.NAME=value`, each after
    /// [`FIELD_SEP`]; bytes outside printable ASCII are percent-encoded.
    pub fn extra(&self, headers: &HeaderMap) -> Extra {
        if self.headers.is_empty() && self.cookies.is_empty() {
            return Extra::None;
        }
        let mut out = String::new();
        for name in &self.headers {
            // Several lines of one field count as their list (RFC 9110 §5.3), joined by ", ".
            let mut values = headers.get_all(name).iter();
            out.push(FIELD_SEP);
            out.push_str("h.");
            out.push_str(name.as_str());
            if let Some(first) = values.next() {
                out.push('=');
                let mut len = first.len();
                push_encoded(&mut out, first.as_bytes());
                for more in values {
                    len += more.len() + 2;
                    out.push_str(", ");
                    push_encoded(&mut out, more.as_bytes());
                }
                if len > MAX_KEY_VALUE {
                    return Extra::TooLong;
                }
            }
        }
        for name in &self.cookies {
            out.push(FIELD_SEP);
            out.push_str("c.");
            out.push_str(name);
            if let Some(value) = cookie(headers, name) {
                if value.len() > MAX_KEY_VALUE {
                    return Extra::TooLong;
                }
                out.push('=');
                push_encoded(&mut out, value.as_bytes());
            }
        }
        Extra::Fields(out)
    }
}

fn split(pair: &str) -> (&str, &str) {
    pair.split_once('=').unwrap_or((pair, ""))
}

fn push_encoded(out: &mut String, bytes: &[u8]) {
    use std::fmt::Write as _;
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The key's added fields as the `Outpost-Cache-Key` debug header shows them: `; ` between.
pub fn display_extra(extra: &str) -> String {
    extra.split(FIELD_SEP).filter(|f| !f.is_empty()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(json: serde_json::Value) -> KeySpec {
        let c: CacheKeyConfig = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        KeySpec::compile(&c).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn query_modes_and_filters() {
        let cases = [
            ("keep: as sent", json!({}), "b=1&a=2", "b=1&a=2"),
            ("ignore: none", json!({"query": "ignore"}), "b=1&a=2", ""),
            ("sort by name", json!({"query": "sort"}), "b=1&a=2", "a=2&b=1"),
            ("sort by name then value", json!({"query": "sort"}), "a=2&a=1&a", "a&a=1&a=2"),
            ("sort: a name before its longer sibling", json!({"query": "sort"}), "ab=1&a=2", "a=2&ab=1"),
            (
                "exclude globs",
                json!({"query_exclude": ["utm_*", "fbclid"]}),
                "utm_source=a&id=7&fbclid=x&utm_medium=b",
                "id=7",
            ),
            ("exclude everything", json!({"query_exclude": ["utm_*"]}), "utm_source=a", ""),
            ("include only", json!({"query_include": ["id", "page"]}), "x=1&page=2&id=3", "page=2&id=3"),
            (
                "include and sort",
                json!({"query": "sort", "query_include": ["id", "page"]}),
                "x=1&page=2&id=3",
                "id=3&page=2",
            ),
            ("empty pairs dropped when filtering", json!({"query_exclude": ["z"]}), "a=1&&b=2", "a=1&b=2"),
        ];
        for (what, json, query, want) in cases {
            assert_eq!(spec(json).query(query), want, "{what}");
        }
        assert!(matches!(spec(json!({"query": "sort"})).query("a=1&b=2"), Cow::Borrowed(_)), "unchanged: no copy");
        assert!(spec(json!({})).is_plain());
        assert!(!spec(json!({"cookies": ["c"]})).is_plain());
    }

    #[test]
    fn header_and_cookie_values_in_the_key() {
        let s = spec(json!({"headers": ["Accept-Language"], "cookies": ["currency"]}));
        let mut h = HeaderMap::new();
        assert_eq!(s.extra(&h), Extra::Fields("\u{1c}h.accept-language\u{1c}c.currency".into()));
        h.insert("accept-language", "en".parse().unwrap_or_else(|_| unreachable!()));
        h.insert("cookie", "a=1; currency=eur".parse().unwrap_or_else(|_| unreachable!()));
        let Extra::Fields(en) = s.extra(&h) else { panic!("fields") };
        assert_eq!(en, "\u{1c}h.accept-language=en\u{1c}c.currency=eur");
        assert_eq!(display_extra(&en), "h.accept-language=en; c.currency=eur");
        h.insert("accept-language", "".parse().unwrap_or_else(|_| unreachable!()));
        assert_ne!(s.extra(&h), Extra::Fields(en), "empty differs from en");
        h.insert("accept-language", "x".repeat(MAX_KEY_VALUE + 1).parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(s.extra(&h), Extra::TooLong);
        let mut bytes = HeaderMap::new();
        bytes.insert("accept-language", http::HeaderValue::from_bytes(b"\xe9%").unwrap_or_else(|_| unreachable!()));
        assert_eq!(s.extra(&bytes), Extra::Fields("\u{1c}h.accept-language=%E9%25\u{1c}c.currency".into()));
        assert_eq!(spec(json!({})).extra(&h), Extra::None);
    }
}
