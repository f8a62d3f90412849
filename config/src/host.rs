//! Host patterns that route requests to services and select certificates.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

/// A host a service answers for or a certificate covers: `"shop.example"` or
/// `"*.shop.example"`. Lower-cased when parsed; no port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub enum HostPattern {
    /// Matches this host only.
    Exact(String),
    /// `*.shop.example`: holds the suffix with its leading dot (`".shop.example"`) and matches
    /// any host that ends with it and has at least one more label in front (`a.shop.example`,
    /// `a.b.shop.example`), but not `shop.example` itself.
    Wildcard(String),
}

impl HostPattern {
    /// Whether `host` (lower-case, without a port) matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const EXAMPLE: &str = "e.g. \"shop.example\" or \"*.shop.example\"";
        if s.is_empty() {
            return Err(format!("empty host pattern; write a host name, {EXAMPLE}"));
        }
        let lower = s.to_ascii_lowercase();
        if lower == "*" {
            return Err(format!("\"*\" alone is not a host pattern; name the domain, {EXAMPLE}"));
        }
        if lower.starts_with('[') {
            return Err(format!("\"{s}\": IPv6 literals are not supported as host patterns; {EXAMPLE}"));
        }
        if lower.contains(':') {
            return Err(format!("\"{s}\": a host pattern takes no port; write the host alone, {EXAMPLE}"));
        }
        if let Some(domain) = lower.strip_prefix("*.").filter(|d| !d.contains('*')) {
            check_hostname(domain).map_err(|why| format!("\"{s}\": {why}"))?;
            return Ok(HostPattern::Wildcard(format!(".{domain}")));
        }
        if lower.contains('*') {
            return Err(format!("\"{s}\": a wildcard must be the whole leftmost label, as in \"*.shop.example\""));
        }
        check_hostname(&lower).map_err(|why| format!("\"{s}\": {why}"))?;
        Ok(HostPattern::Exact(lower))
    }
}

impl TryFrom<String> for HostPattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Checks a lower-case DNS host name: dot-separated labels of 1 to 63 letters, digits, `-`
/// (not at either end of a label) or `_`, 253 characters at most. An all-numeric name must be
/// an IPv4 address. Returns what is wrong.
pub(crate) fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".to_owned());
    }
    if name.len() > 253 {
        return Err("host name longer than 253 characters".to_owned());
    }
    if name.ends_with('.') {
        return Err("remove the trailing dot".to_owned());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (\"..\" or a leading dot)".to_owned());
        }
        if label.len() > 63 {
            return Err(format!("label \"{label}\" is longer than 63 characters"));
        }
        if let Some(c) =
            label.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(if c.is_ascii() {
                format!("invalid character {c:?}; host names hold letters, digits, '-', '_' and '.'")
            } else {
                format!("non-ASCII character {c:?}; write internationalised names in punycode (xn--...)")
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label \"{label}\" starts or ends with '-'"));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.bytes().all(|b| b.is_ascii_digit()) && name.parse::<std::net::Ipv4Addr>().is_err() {
        return Err("not a valid IPv4 address, and a host name cannot end in a numeric label".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> Result<HostPattern, &'static str> {
        Ok(HostPattern::Exact(s.to_owned()))
    }

    fn wildcard(s: &str) -> Result<HostPattern, &'static str> {
        Ok(HostPattern::Wildcard(s.to_owned()))
    }

    #[test]
    fn patterns_parse() {
        let cases: &[(&str, Result<HostPattern, &str>)] = &[
            ("shop.example", exact("shop.example")),
            ("Shop.EXAMPLE", exact("shop.example")),
            ("localhost", exact("localhost")),
            ("127.0.0.1", exact("127.0.0.1")),
            ("a-b_c.example", exact("a-b_c.example")),
            ("xn--bcher-kva.example", exact("xn--bcher-kva.example")),
            ("*.shop.example", wildcard(".shop.example")),
            ("*.EXAMPLE", wildcard(".example")),
            ("", Err("empty host pattern")),
            ("*", Err("\"*\" alone")),
            ("*.", Err("empty host name")),
            ("shop.example:443", Err("takes no port")),
            ("[::1]", Err("IPv6 literals")),
            ("a.*.example", Err("whole leftmost label")),
            ("*shop.example", Err("whole leftmost label")),
            ("*.*.example", Err("whole leftmost label")),
            ("shop*.example", Err("whole leftmost label")),
            ("shop.example.", Err("trailing dot")),
            (".shop.example", Err("empty label")),
            ("shop..example", Err("empty label")),
            ("shop example", Err("invalid character ' '")),
            ("shop/example", Err("invalid character '/'")),
            ("b\u{fc}cher.example", Err("punycode")),
            ("-shop.example", Err("starts or ends with '-'")),
            ("shop-.example", Err("starts or ends with '-'")),
            ("256.0.0.1", Err("not a valid IPv4 address")),
            ("example.123", Err("numeric label")),
        ];
        for (input, expected) in cases {
            match (input.parse::<HostPattern>(), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input}"),
                (Err(message), Err(fragment)) => {
                    assert!(message.contains(fragment), "{input}: {message}")
                }
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn long_names_are_rejected() {
        let label = "a".repeat(64);
        assert!(format!("{label}.example").parse::<HostPattern>().is_err());
        let name = vec!["a".repeat(50); 6].join(".");
        let message = name.parse::<HostPattern>().err().unwrap_or_default();
        assert!(message.contains("253"), "{message}");
    }

    #[test]
    fn patterns_match() {
        let cases = [
            ("shop.example", "shop.example", true),
            ("shop.example", "a.shop.example", false),
            ("shop.example", "shop.example.evil", false),
            ("*.shop.example", "a.shop.example", true),
            ("*.shop.example", "a.b.shop.example", true),
            ("*.shop.example", "shop.example", false),
            ("*.shop.example", "ashop.example", false),
            ("*.shop.example", ".shop.example", false),
            ("*.shop.example", "a.shop.example.evil", false),
        ];
        for (pattern, host, expected) in cases {
            let pattern: HostPattern = pattern.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(pattern.matches(host), expected, "{pattern} vs {host}");
        }
    }

    #[test]
    fn patterns_display_as_written_in_lower_case() {
        for (input, shown) in [("shop.example", "shop.example"), ("*.Shop.Example", "*.shop.example")] {
            let pattern: HostPattern = input.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(pattern.to_string(), shown);
        }
    }
}
