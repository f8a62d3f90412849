//! The request's one canonical authority: the host it is routed by, cached under and forwarded
//! with. Every protocol's ways of naming the host (HTTP/1.1 `Host` and absolute-form, HTTP/2
//! and HTTP/3 `:authority` beside `Host`) are reduced here to one value, so no later phase can
//! be handed a different one (the cache-poisoning shape: keyed on one host, forwarded with
//! another, the origin's answer naming the other stored for everyone).

use std::net::Ipv6Addr;

use http::Version;

/// A validated `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): the host lower-cased,
/// without a trailing dot; an IPv6 literal keeps its brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub host: String,
    pub port: Option<u16>,
}

/// Why a request has no usable authority. Every one is the client's error (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityError {
    /// No `Host` (HTTP/1.1 requires one) and no authority in the target.
    Missing,
    /// More than one `Host` field line.
    Duplicate,
    /// `Host` is not a valid `uri-host [":" port]`.
    InvalidHost(&'static str),
    /// The request target's authority (absolute-form, `:authority`) is not valid.
    InvalidTarget(&'static str),
    /// The target's authority has userinfo (`user@host`).
    UserInfo,
    /// An absolute-form target whose scheme is not `http` or `https`.
    Scheme,
    /// HTTP/2 or HTTP/3 `:authority` and `Host` name different hosts.
    Contradicted,
}

impl AuthorityError {
    /// The `reason` label of `outpost_host_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Duplicate => "duplicate",
            Self::InvalidHost(_) => "invalid_host",
            Self::InvalidTarget(_) => "invalid_target",
            Self::UserInfo => "userinfo",
            Self::Scheme => "scheme",
            Self::Contradicted => "contradicted",
        }
    }

    pub fn message(self) -> String {
        match self {
            Self::Missing => "no Host header".into(),
            Self::Duplicate => "more than one Host header".into(),
            Self::InvalidHost(why) => format!("invalid Host: {why}"),
            Self::InvalidTarget(why) => format!("invalid authority in the request target: {why}"),
            Self::UserInfo => "userinfo in the request target's authority".into(),
            Self::Scheme => "request target scheme is not http or https".into(),
            Self::Contradicted => ":authority and Host differ".into(),
        }
    }
}

/// The one authority of a request made with `version`. `target` is the request target's
/// authority (HTTP/1.1 absolute-form, HTTP/2 and HTTP/3 `:authority`) with its `scheme`;
/// `hosts` are the values of its `Host` field lines.
pub fn resolve(
    version: Version,
    scheme: Option<&str>,
    target: Option<&str>,
    hosts: &[&[u8]],
) -> Result<Authority, AuthorityError> {
    // RFC 9112 §3.2 / RFC 9110 §5.5: Host is a singleton field; two field lines are 400.
    if hosts.len() > 1 {
        return Err(AuthorityError::Duplicate);
    }
    // RFC 9112 §3.2: a Host with an invalid value is 400, even where the target's authority
    // would win: a value such as `a:@b` is read as `a` by some parsers and `b` by others.
    let host = hosts.first().map(|h| parse(h)).transpose().map_err(AuthorityError::InvalidHost)?;
    let target = match target {
        None => None,
        Some(t) => {
            if !scheme.is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https")) {
                return Err(AuthorityError::Scheme);
            }
            // RFC 9110 §4.2.4: userinfo in an http(s) URI is an error; it hides the real host.
            if t.contains('@') {
                return Err(AuthorityError::UserInfo);
            }
            Some(parse(t.as_bytes()).map_err(AuthorityError::InvalidTarget)?)
        }
    };
    match version {
        // RFC 9113 §8.3.1, RFC 9114 §4.3.1: `:authority` names the target; a Host that
        // identifies another entity makes the request malformed.
        Version::HTTP_2 | Version::HTTP_3 => match (target, host) {
            (Some(t), Some(h)) if !same_origin(&t, &h, scheme) => Err(AuthorityError::Contradicted),
            (Some(t), _) => Ok(t),
            (None, Some(h)) => Ok(h),
            (None, None) => Err(AuthorityError::Missing),
        },
        // RFC 9112 §3.2: HTTP/1.1 requires Host. §3.2.2: with an absolute-form target, the
        // target's authority wins and the received Host is ignored (and replaced when forwarded).
        _ => {
            if version == Version::HTTP_11 && host.is_none() {
                return Err(AuthorityError::Missing);
            }
            target.or(host).ok_or(AuthorityError::Missing)
        }
    }
}

/// RFC 9113 §8.3.1: compared after scheme-based normalization (RFC 3986 §6.2.3): case, and an
/// absent port equal to the scheme's default.
fn same_origin(a: &Authority, b: &Authority, scheme: Option<&str>) -> bool {
    let default = match scheme {
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
        _ => None,
    };
    a.host == b.host && a.port.or(default) == b.port.or(default)
}

/// Parse `uri-host [":" port]`. A stricter grammar than RFC 3986's reg-name: DNS labels of
/// letters, digits, `-` and `_` (what a service's hosts can match), or an IPv6 literal; no
/// percent-encoding, no sub-delims, no userinfo.
pub fn parse(value: &[u8]) -> Result<Authority, &'static str> {
    let text = std::str::from_utf8(value).map_err(|_| "not ASCII")?;
    if text.is_empty() {
        return Err("empty");
    }
    let (host, port) = if let Some(literal) = text.strip_prefix('[') {
        let (inner, rest) = literal.split_once(']').ok_or("unclosed IPv6 literal")?;
        inner.parse::<Ipv6Addr>().map_err(|_| "invalid IPv6 literal")?;
        let port = match rest {
            "" => None,
            r => Some(r.strip_prefix(':').ok_or("junk after the IPv6 literal")?),
        };
        (format!("[{}]", inner.to_ascii_lowercase()), port)
    } else {
        let (name, port) = match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        };
        (reg_name(name)?, port)
    };
    Ok(Authority { host, port: port.map(parse_port).transpose()?.flatten() })
}

/// RFC 3986 §3.2.3: `port = *DIGIT`; an empty port means none (§6.2.3).
fn parse_port(text: &str) -> Result<Option<u16>, &'static str> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid port");
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err("invalid port"),
        Ok(port) => Ok(Some(port)),
    }
}

/// A DNS name (RFC 1035 §2.3.4 lengths; `_` allowed as in service names), lower-cased, one
/// trailing dot removed (`shop.example.` is `shop.example`).
fn reg_name(name: &str) -> Result<String, &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("host name empty or longer than 253 bytes");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("empty label or label longer than 63 bytes");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("invalid character");
        }
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(host: &str, port: Option<u16>) -> Authority {
        Authority { host: host.into(), port }
    }

    #[test]
    fn host_values() {
        let cases: &[(&str, Result<Authority, &str>)] = &[
            // RFC 9110 §7.2: Host = uri-host [ ":" port ]
            ("Shop.Example", Ok(a("shop.example", None))),
            ("shop.example:8080", Ok(a("shop.example", Some(8080)))),
            // RFC 3986 §6.2.3: an empty port is the same as none.
            ("shop.example:", Ok(a("shop.example", None))),
            // RFC 1034 §3.1: a trailing dot names the same absolute name.
            ("shop.example.", Ok(a("shop.example", None))),
            ("192.0.2.1:80", Ok(a("192.0.2.1", Some(80)))),
            // RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]"
            ("[::1]:443", Ok(a("[::1]", Some(443)))),
            ("[2001:DB8::1]", Ok(a("[2001:db8::1]", None))),
            ("_dmarc.shop.example", Ok(a("_dmarc.shop.example", None))),
            // The attack of issue 18: `shop.test` to one parser, `evil.example` to another.
            ("shop.test:@evil.example", Err("invalid port")),
            ("user@shop.test", Err("invalid character")),
            ("shop.test:80:80", Err("invalid port")),
            ("shop.test:65536", Err("invalid port")),
            ("shop.test:0", Err("invalid port")),
            ("shop.test:+80", Err("invalid port")),
            ("shop test", Err("invalid character")),
            ("shop.test/x", Err("invalid character")),
            ("shop%2etest", Err("invalid character")),
            ("shop..test", Err("empty label")),
            (".shop.test", Err("empty label")),
            ("", Err("empty")),
            ("[::1", Err("unclosed IPv6 literal")),
            ("[::1]x", Err("junk after the IPv6 literal")),
            ("[v1.x]", Err("invalid IPv6 literal")),
            ("[fe80::1%25eth0]", Err("invalid IPv6 literal")),
        ];
        for (input, expected) in cases {
            match (parse(input.as_bytes()), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input}: {got}"),
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(parse(long.as_bytes()).is_err(), "a 64-byte label");
        assert!(parse(&[0xff]).is_err());
    }

    #[test]
    fn one_authority_per_request() {
        use AuthorityError as E;
        use Version as V;
        let h1 = V::HTTP_11;
        /// (version, scheme, target authority, Host values, expected)
        type Case<'a> = (Version, Option<&'a str>, Option<&'a str>, &'a [&'a str], Result<Authority, AuthorityError>);
        let cases: &[Case<'_>] = &[
            // RFC 9112 §3.2: origin-form takes Host.
            (h1, None, None, &["shop.test"], Ok(a("shop.test", None))),
            // RFC 9112 §3.2: an HTTP/1.1 request without Host is 400...
            (h1, None, None, &[], Err(E::Missing)),
            (h1, Some("http"), Some("shop.test"), &[], Err(E::Missing)),
            // ...as is one with two Host field lines.
            (h1, None, None, &["shop.test", "evil.example"], Err(E::Duplicate)),
            // RFC 9112 §3.2.2: the absolute-form's authority wins over Host.
            (h1, Some("http"), Some("shop.test"), &["evil.example"], Ok(a("shop.test", None))),
            // RFC 9112 §3.2: an invalid Host is 400 even then.
            (h1, Some("http"), Some("shop.test"), &["shop.test:@evil.example"], Err(E::InvalidHost("invalid port"))),
            // RFC 9110 §4.2.4: userinfo is an error.
            (h1, Some("http"), Some("shop.test:@evil.example"), &["shop.test"], Err(E::UserInfo)),
            (h1, Some("ftp"), Some("shop.test"), &["shop.test"], Err(E::Scheme)),
            // HTTP/1.0 does not require Host.
            (V::HTTP_10, Some("http"), Some("shop.test"), &[], Ok(a("shop.test", None))),
            (V::HTTP_10, None, None, &[], Err(E::Missing)),
            // RFC 9113 §8.3.1: :authority names the target...
            (V::HTTP_2, Some("https"), Some("shop.test"), &[], Ok(a("shop.test", None))),
            (V::HTTP_2, Some("https"), None, &["shop.test"], Ok(a("shop.test", None))),
            (V::HTTP_2, Some("https"), None, &[], Err(E::Missing)),
            // ...a Host for another entity makes the request malformed...
            (V::HTTP_2, Some("https"), Some("shop.test"), &["evil.example"], Err(E::Contradicted)),
            (V::HTTP_2, Some("https"), Some("shop.test"), &["shop.test:8443"], Err(E::Contradicted)),
            // ...compared after scheme-based normalization (RFC 3986 §6.2.3).
            (V::HTTP_2, Some("https"), Some("shop.test"), &["Shop.Test:443"], Ok(a("shop.test", None))),
            (V::HTTP_2, Some("http"), Some("shop.test:80"), &["shop.test"], Ok(a("shop.test", Some(80)))),
            (V::HTTP_2, Some("https"), Some("shop.test"), &["shop.test", "evil.example"], Err(E::Duplicate)),
            // RFC 9114 §4.3.1: the same for HTTP/3.
            (V::HTTP_3, Some("https"), Some("shop.test"), &["evil.example"], Err(E::Contradicted)),
            (V::HTTP_3, Some("https"), Some("shop.test"), &["shop.test", "evil.example"], Err(E::Duplicate)),
        ];
        for (version, scheme, target, hosts, expected) in cases {
            let hosts: Vec<&[u8]> = hosts.iter().map(|h| h.as_bytes()).collect();
            let got = resolve(*version, *scheme, *target, &hosts);
            assert_eq!(&got, expected, "{version:?} {scheme:?} {target:?} {hosts:?}");
        }
    }
}
