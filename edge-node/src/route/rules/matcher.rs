//! A rule's conditions, compiled: every condition given must hold; within a list, any entry.
//! Matching reads the request in place (query parameters and cookies are split as they are
//! read) and allocates nothing.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, Method};
use outpost_config::{Cidr, FieldMatch, Glob, MatchConfig, SchemeMatch};

/// What conditions look at: the request as the route phase sees it.
pub struct Facts<'a> {
    pub method: &'a Method,
    /// Lower-case, without the port.
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string without `?`, when the target has one.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub client_ip: IpAddr,
    pub tls: bool,
}

/// A field condition: present (and, with a glob, its first value matches), or the opposite.
struct Field<N> {
    name: N,
    value: Option<Glob>,
    not: bool,
}

impl<N> Field<N> {
    fn holds(&self, value: Option<&str>) -> bool {
        let found = match (&self.value, value) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(glob), Some(v)) => glob.matches(v),
        };
        found != self.not
    }
}

pub struct Matcher {
    hosts: Vec<Glob>,
    paths: Vec<Glob>,
    methods: Vec<Method>,
    query: Vec<Field<String>>,
    headers: Vec<Field<HeaderName>>,
    cookies: Vec<Field<String>>,
    client_ips: Vec<Cidr>,
    tls: Option<bool>,
}

impl Matcher {
    /// From a validated `match`; a name that does not parse (validation refused it) never matches.
    pub fn compile(m: &MatchConfig) -> Result<Self, String> {
        let field = |f: &FieldMatch| Field { name: f.name.clone(), value: f.value.clone(), not: f.not };
        let mut headers = Vec::with_capacity(m.headers.len());
        for f in &m.headers {
            let name = HeaderName::from_bytes(f.name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("headers: {:?} is not a field name", f.name))?;
            headers.push(Field { name, value: f.value.clone(), not: f.not });
        }
        let mut methods = Vec::with_capacity(m.methods.len());
        for name in &m.methods {
            methods.push(Method::from_bytes(name.as_bytes()).map_err(|_| format!("methods: {name:?}"))?);
        }
        Ok(Self {
            hosts: m.hosts.iter().map(Glob::to_lowercase).collect(),
            paths: m.paths.clone(),
            methods,
            query: m.query.iter().map(field).collect(),
            headers,
            cookies: m.cookies.iter().map(field).collect(),
            client_ips: m.client_ips.clone(),
            tls: m.scheme.map(|s| s == SchemeMatch::Https),
        })
    }

    pub fn matches(&self, f: &Facts<'_>) -> bool {
        let any = |globs: &[Glob], text: &str| globs.is_empty() || globs.iter().any(|g| g.matches(text));
        self.tls.is_none_or(|tls| tls == f.tls)
            && (self.methods.is_empty() || self.methods.contains(f.method))
            && any(&self.hosts, f.host)
            && any(&self.paths, f.path)
            && (self.client_ips.is_empty() || self.client_ips.iter().any(|n| n.contains(f.client_ip)))
            && self.query.iter().all(|q| q.holds(f.query.and_then(|s| query_param(s, &q.name))))
            && self.headers.iter().all(|h| h.holds(f.headers.get(&h.name).map(|v| v.to_str().unwrap_or("\u{fffd}"))))
            && self.cookies.iter().all(|c| c.holds(cookie(f.headers, &c.name)))
    }
}

/// The first value of parameter `name` in `query` (`a=1&b&c=3`), as sent; `b` alone has the
/// value "".
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (n == name).then_some(v)
    })
}

/// The value of cookie `name` in the request's `Cookie` fields (RFC 6265 §5.4: `a=1; b=2`).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n.trim() == name).then_some(v.trim())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(json: serde_json::Value) -> Matcher {
        let m: MatchConfig = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        Matcher::compile(&m).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_condition_kind_matches_and_refuses() {
        use serde_json::json;
        let mut headers = HeaderMap::new();
        headers.insert("x-device", "mobile-ios".parse().unwrap_or_else(|_| unreachable!()));
        headers.append("cookie", "a=1; session=abc".parse().unwrap_or_else(|_| unreachable!()));
        headers.append("cookie", "currency=eur".parse().unwrap_or_else(|_| unreachable!()));
        let facts = Facts {
            method: &Method::GET,
            host: "img.shop.example",
            path: "/static/app.js",
            query: Some("v=3&utm_source=x&flag"),
            headers: &headers,
            client_ip: "10.1.2.3".parse().unwrap_or_else(|_| unreachable!()),
            tls: true,
        };
        let cases = [
            ("no conditions: every request", json!({}), true),
            ("host glob", json!({"hosts": ["*.shop.example"]}), true),
            ("host glob, upper-case in config", json!({"hosts": ["IMG.shop.example"]}), true),
            ("host elsewhere", json!({"hosts": ["shop.example"]}), false),
            ("path prefix", json!({"paths": ["/static/*"]}), true),
            ("path suffix", json!({"paths": ["/img/*", "*.js"]}), true),
            ("path elsewhere", json!({"paths": ["/api/*"]}), false),
            ("method", json!({"methods": ["POST", "GET"]}), true),
            ("method other", json!({"methods": ["POST"]}), false),
            ("query present", json!({"query": [{"name": "utm_source"}]}), true),
            ("query bare flag: its value is empty", json!({"query": [{"name": "flag", "value": ""}]}), true),
            ("query value, not empty", json!({"query": [{"name": "v", "value": ""}]}), false),
            ("query flag present", json!({"query": [{"name": "flag"}]}), true),
            ("query value glob", json!({"query": [{"name": "v", "value": "[0-9]"}]}), false),
            ("query value", json!({"query": [{"name": "v", "value": "3"}]}), true),
            ("query absent", json!({"query": [{"name": "preview"}]}), false),
            ("query absent, not", json!({"query": [{"name": "preview", "not": true}]}), true),
            ("header glob", json!({"headers": [{"name": "X-Device", "value": "mobile*"}]}), true),
            ("header value other", json!({"headers": [{"name": "x-device", "value": "desktop"}]}), false),
            ("header absent", json!({"headers": [{"name": "x-other"}]}), false),
            ("cookie in the second field", json!({"cookies": [{"name": "currency", "value": "eur"}]}), true),
            ("cookie present", json!({"cookies": [{"name": "session"}]}), true),
            ("cookie absent", json!({"cookies": [{"name": "sess"}]}), false),
            ("client network", json!({"client_ips": ["192.0.2.0/24", "10.0.0.0/8"]}), true),
            ("client elsewhere", json!({"client_ips": ["192.0.2.0/24"]}), false),
            ("scheme", json!({"scheme": "https"}), true),
            ("scheme other", json!({"scheme": "http"}), false),
            ("all must hold", json!({"paths": ["/static/*"], "methods": ["POST"]}), false),
        ];
        for (what, json, want) in cases {
            assert_eq!(matcher(json).matches(&facts), want, "{what}");
        }
    }

    #[test]
    fn query_and_cookie_parsing() {
        assert_eq!(query_param("a=1&b=2&a=3", "a"), Some("1"));
        assert_eq!(query_param("a=1&b", "b"), Some(""));
        assert_eq!(query_param("ab=1", "a"), None);
        assert_eq!(query_param("", "a"), None);
        let mut h = HeaderMap::new();
        h.insert("cookie", "x=1;y=2 ; z = 3".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(cookie(&h, "y"), Some("2"));
        assert_eq!(cookie(&h, "z"), Some("3"));
        assert_eq!(cookie(&h, "w"), None);
    }
}
