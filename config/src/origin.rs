//! Origin URLs: where a service's cache misses go.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::host::check_hostname;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Cleartext.
    Http,
    /// TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An origin: scheme, host and port, nothing else. Requests keep their own path and query.
/// Written `"https://origin.shop.example"`, `"http://127.0.0.1:8080"` or `"http://[::1]:80"`;
/// the port defaults to 80 or 443.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct OriginUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Lower-case host name, IPv4 address, or IPv6 address without brackets.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

impl OriginUrl {
    /// `"host:port"`, with an IPv6 host in brackets (`"[::1]:80"`).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::Https
    }
}

impl FromStr for OriginUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const EXAMPLE: &str = "e.g. \"https://origin.shop.example\" or \"http://127.0.0.1:8080\"";
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(format!("\"{s}\" has no scheme; write \"https://{s}\" or \"http://{s}\""));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(format!("unsupported scheme \"{scheme}\"; use http or https")),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if tail.contains('?') {
            return Err(format!("\"{s}\" has a query; an origin URL is scheme, host and port only, {EXAMPLE}"));
        }
        if tail.contains('#') {
            return Err(format!("\"{s}\" has a fragment; an origin URL is scheme, host and port only, {EXAMPLE}"));
        }
        if !tail.is_empty() && tail != "/" {
            return Err(format!(
                "\"{s}\" has a path; requests keep their own path, so write scheme, host and port only, {EXAMPLE}"
            ));
        }
        if authority.contains('@') {
            return Err(format!(
                "\"{s}\" has user information; credentials in the origin URL are not supported, {EXAMPLE}"
            ));
        }
        let (host, port) = parse_authority(authority).map_err(|why| format!("\"{s}\": {why}"))?;
        Ok(OriginUrl { scheme, host, port: port.unwrap_or(scheme.default_port()) })
    }
}

impl TryFrom<String> for OriginUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for OriginUrl {
    /// `"https://origin.shop.example:443"`: the port is always written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority())
    }
}

impl Serialize for OriginUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Splits `host[:port]` (IPv6 in brackets) and checks both parts. The host comes back
/// lower-case and, for IPv6, without brackets.
pub(crate) fn parse_authority(authority: &str) -> Result<(String, Option<u16>), String> {
    if authority.is_empty() {
        return Err("missing host".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((ip, after)) = bracketed.split_once(']') else {
            return Err("unclosed '[' around an IPv6 address".to_owned());
        };
        let ip: Ipv6Addr = ip.parse().map_err(|_| format!("\"{ip}\" is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected \"{after}\" after ']'")),
            },
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err("write an IPv6 address in brackets, as in \"[::1]:8080\"".to_owned());
        }
        let host = host.to_ascii_lowercase();
        if host.parse::<Ipv4Addr>().is_err() {
            check_hostname(&host)?;
        }
        (host, port)
    };
    let port = port.map(parse_port).transpose()?;
    Ok((host, port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port \"{port}\"; expected 1 to 65535")),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(scheme: Scheme, host: &str, port: u16) -> Result<OriginUrl, &'static str> {
        Ok(OriginUrl { scheme, host: host.to_owned(), port })
    }

    #[test]
    fn origin_urls_parse() {
        use Scheme::{Http, Https};
        let cases: &[(&str, Result<OriginUrl, &str>)] = &[
            ("https://origin.shop.example:443", url(Https, "origin.shop.example", 443)),
            ("https://origin.shop.example", url(Https, "origin.shop.example", 443)),
            ("https://origin.shop.example/", url(Https, "origin.shop.example", 443)),
            ("HTTPS://Origin.Shop.Example:8443", url(Https, "origin.shop.example", 8443)),
            ("http://127.0.0.1:8080", url(Http, "127.0.0.1", 8080)),
            ("http://localhost", url(Http, "localhost", 80)),
            ("http://[::1]:80", url(Http, "::1", 80)),
            ("http://[::1]", url(Http, "::1", 80)),
            ("http://[2001:DB8::1]:81", url(Http, "2001:db8::1", 81)),
            ("origin.shop.example", Err("has no scheme; write \"https://origin.shop.example\"")),
            ("ftp://origin.shop.example", Err("unsupported scheme \"ftp\"; use http or https")),
            ("https://origin.shop.example/api", Err("has a path")),
            ("https://origin.shop.example?x=1", Err("has a query")),
            ("https://origin.shop.example/?x=1", Err("has a query")),
            ("https://origin.shop.example#top", Err("has a fragment")),
            ("https://user:pw@origin.shop.example", Err("user information")),
            ("https://", Err("missing host")),
            ("https://:443", Err("empty host name")),
            ("http://origin:0", Err("invalid port \"0\"; expected 1 to 65535")),
            ("http://origin:65536", Err("invalid port")),
            ("http://origin:", Err("invalid port \"\"")),
            ("http://origin:http", Err("invalid port")),
            ("http://::1:80", Err("in brackets")),
            ("http://[::1", Err("unclosed '['")),
            ("http://[::g]:80", Err("not an IPv6 address")),
            ("http://[::1]80", Err("unexpected \"80\" after ']'")),
            ("http://bad_host!:80", Err("invalid character '!'")),
            ("http://999.1.1.1", Err("not a valid IPv4 address")),
        ];
        for (input, expected) in cases {
            match (input.parse::<OriginUrl>(), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input}"),
                (Err(message), Err(fragment)) => {
                    assert!(message.contains(fragment), "{input}: {message}")
                }
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn authority_and_display() {
        let cases = [
            ("https://origin.shop.example", "origin.shop.example:443", "https://origin.shop.example:443"),
            ("http://127.0.0.1:8080/", "127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]", "[::1]:80", "http://[::1]:80"),
        ];
        for (input, authority, display) in cases {
            let origin: OriginUrl = input.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(origin.authority(), authority);
            assert_eq!(origin.to_string(), display);
            assert_eq!(display.parse::<OriginUrl>().as_ref(), Ok(&origin));
        }
    }
}
