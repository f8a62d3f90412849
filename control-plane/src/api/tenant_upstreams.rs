//! Where a tenant may point the nodes: not at the nodes' own network. Each upstream address a
//! tenant sets (`origin`, `origins[i].url`, `shields[i].url`, `function.backends.NAME`) is
//! refused when it is an IP literal in a loopback, private, link-local, unspecified, CGNAT,
//! multicast or broadcast network, or the name `localhost` (RFC 6761 §6.3), unless the
//! operator allows the network (`limits.tenant_upstream_allow`). Without this, a tenant's
//! `origin = "http://127.0.0.1:9901"` would reach a node's admin listener, which takes purges
//! for every tenant without a token. The operator's own configs are not checked.
//!
//! Host names are not resolved here: a name is resolved on each node when it connects, and may
//! resolve to something else there or later. Only addresses written as addresses are judged,
//! in every form the nodes' resolver (`getaddrinfo`) reads as one: `0x7f000001` is 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use outpost_config::{OriginUrl, ServiceConfig};

use super::error::{ApiError, ErrorKind, FieldError};
use crate::dns::cidr::Cidr;

/// Networks a tenant's upstream may not be in, and why: the special-purpose networks (RFC 6890)
/// that lead to the node itself or to the network it runs in.
const REFUSED: [(&str, &str); 14] = [
    ("0.0.0.0/8", "unspecified (\"this network\"): a connection to it reaches the node itself"),
    ("127.0.0.0/8", "loopback: the node itself, where its admin listener is"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("169.254.0.0/16", "link-local (where cloud metadata services answer)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified: a connection to it reaches the node itself"),
    ("::1/128", "loopback: the node itself, where its admin listener is"),
    ("fc00::/7", "unique local (private, RFC 4193)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// [`REFUSED`], parsed once (a unit test checks that every entry parses).
static NETWORKS: LazyLock<Vec<(Cidr, &'static str)>> =
    LazyLock::new(|| REFUSED.iter().filter_map(|(net, why)| net.parse().ok().map(|cidr| (cidr, *why))).collect());

/// What `localhost` resolves to on the nodes (RFC 6761 §6.3: loopback, either family).
const LOCALHOST: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];

/// Checks every upstream address of a tenant's `config`; one field error per refused address.
pub fn check(config: &ServiceConfig, allow: &[Cidr]) -> Result<(), ApiError> {
    let fields: Vec<FieldError> = upstreams(config)
        .into_iter()
        .filter_map(|(path, url)| refusal(url, allow).map(|message| FieldError { path, message }))
        .collect();
    if fields.is_empty() { Ok(()) } else { Err(ApiError::fields(ErrorKind::InvalidConfig, fields)) }
}

/// Every address a node connects to for this service, with its field path.
fn upstreams(config: &ServiceConfig) -> Vec<(String, &OriginUrl)> {
    let mut list: Vec<(String, &OriginUrl)> = Vec::new();
    list.extend(config.origin.iter().map(|url| ("origin".to_owned(), url)));
    list.extend(config.origins.iter().enumerate().map(|(i, o)| (format!("origins[{i}].url"), &o.url)));
    list.extend(config.shields.iter().enumerate().map(|(i, s)| (format!("shields[{i}].url"), &s.url)));
    if let Some(function) = &config.function {
        list.extend(function.backends.iter().map(|(name, url)| (format!("function.backends.{name}"), url)));
    }
    list
}

/// Why a tenant may not use `url`, or `None` when it may.
fn refusal(url: &OriginUrl, allow: &[Cidr]) -> Option<String> {
    const FIX: &str = "a tenant's upstream must be a public address or a host name \
                       (the operator may allow networks with limits.tenant_upstream_allow)";
    let allowed = |ip: IpAddr| allow.iter().any(|cidr| cidr.contains(ip));
    let host = url.host.as_str();
    if host == "localhost" || host.ends_with(".localhost") {
        if LOCALHOST.into_iter().all(allowed) {
            return None;
        }
        return Some(format!("{url}: \"{host}\" is the node itself (loopback, RFC 6761); {FIX}"));
    }
    let ip = address(host)?;
    if allowed(ip) {
        return None;
    }
    let (network, why) = NETWORKS.iter().find(|(cidr, _)| cidr.contains(ip))?;
    let written = if host == ip.to_string() { String::new() } else { format!(" ({ip})") };
    Some(format!("{url}{written} is in {network}, {why}; {FIX}"))
}

/// The address `host` stands for without a lookup: an IP literal, or a numeric IPv4 form.
fn address(host: &str) -> Option<IpAddr> {
    host.parse::<IpAddr>().ok().or_else(|| numeric_ipv4(host).map(IpAddr::V4))
}

/// `host` read as `inet_aton` reads it, which `getaddrinfo` does before any lookup: one to four
/// dot-separated parts, each decimal, octal (a leading `0`) or hex (`0x`); the last part fills
/// the bytes left. `0x7f000001`, `127.1` and `0x7f.0.0.0x1` are all 127.0.0.1.
fn numeric_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = host.split('.').map(numeric_part).collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|part| *part > 0xff) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1 << last_bits {
        return None;
    }
    let high = leading.iter().fold(0u64, |value, part| value << 8 | part);
    u32::try_from(high << last_bits | last).ok().map(Ipv4Addr::from)
}

fn numeric_part(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None if text.len() > 1 && text.starts_with('0') => (&text[1..], 8),
        None => (text, 10),
    };
    if digits.is_empty() {
        // glibc reads a bare "0x" as 0.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().filter(|value| *value <= u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(json: serde_json::Value) -> ServiceConfig {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap_or_else(|e| panic!("{e}"))).collect()
    }

    fn origin(url: &str) -> OriginUrl {
        url.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn every_refused_network_parses() {
        assert_eq!(NETWORKS.len(), REFUSED.len());
    }

    #[test]
    fn addresses_of_the_nodes_own_network_are_refused() {
        // (origin, the network named in the refusal, or None when allowed)
        let cases = [
            ("http://127.0.0.1:9901", Some("127.0.0.0/8")),
            ("http://127.8.9.10", Some("127.0.0.0/8")),
            ("http://0.0.0.0:9901", Some("0.0.0.0/8")),
            ("http://10.1.2.3", Some("10.0.0.0/8")),
            ("http://172.16.0.1", Some("172.16.0.0/12")),
            ("http://172.31.255.255", Some("172.16.0.0/12")),
            ("http://172.32.0.1", None),
            ("http://192.168.1.1", Some("192.168.0.0/16")),
            ("http://100.64.0.1", Some("100.64.0.0/10")),
            ("http://100.127.255.254", Some("100.64.0.0/10")),
            ("http://100.128.0.1", None),
            ("http://169.254.169.254", Some("169.254.0.0/16")),
            ("http://224.0.0.1", Some("224.0.0.0/4")),
            ("http://239.255.255.250", Some("224.0.0.0/4")),
            ("http://255.255.255.255", Some("255.255.255.255/32")),
            ("http://[::1]:9901", Some("::1/128")),
            ("http://[::]", Some("::/128")),
            ("http://[::ffff:127.0.0.1]", Some("127.0.0.0/8")),
            ("http://[::ffff:10.0.0.1]", Some("10.0.0.0/8")),
            ("http://[fd00::1]", Some("fc00::/7")),
            ("http://[fc00::1]", Some("fc00::/7")),
            ("http://[fe80::1]", Some("fe80::/10")),
            ("http://[ff02::1]", Some("ff00::/8")),
            // Numeric forms getaddrinfo reads as IPv4 addresses.
            ("http://0x7f000001", Some("127.0.0.0/8")),
            ("http://0x7f.0.0.0x1", Some("127.0.0.0/8")),
            ("http://0xa.0x1.0x2.0x3", Some("10.0.0.0/8")),
            // Public addresses and names.
            ("https://203.0.113.7", None),
            ("https://8.8.8.8", None),
            ("http://[2001:db8::1]", None),
            ("https://origin.shop.example", None),
            ("https://0xcafe.example", None),
            ("https://localhost.example", None),
        ];
        for (url, network) in cases {
            let refused = refusal(&origin(url), &[]);
            match (network, refused) {
                (None, None) => {}
                (Some(network), Some(message)) => {
                    assert!(message.contains(&format!(" is in {network}, ")), "{url}: {message}");
                    assert!(message.contains("limits.tenant_upstream_allow"), "{url}: {message}");
                }
                (network, refused) => panic!("{url}: expected {network:?}, got {refused:?}"),
            }
        }
    }

    #[test]
    fn localhost_is_the_node_itself() {
        for url in ["http://localhost:9901", "http://admin.localhost"] {
            let refused = refusal(&origin(url), &[]).unwrap_or_default();
            assert!(refused.contains("is the node itself"), "{url}: {refused}");
        }
        let loopback = cidrs(&["127.0.0.0/8", "::1/128"]);
        assert_eq!(refusal(&origin("http://localhost:9901"), &loopback), None);
        // It may resolve to either family: both must be allowed.
        assert!(refusal(&origin("http://localhost:9901"), &cidrs(&["127.0.0.0/8"])).is_some());
    }

    #[test]
    fn the_allow_list_lets_its_networks_through() {
        let allow = cidrs(&["127.0.0.0/8", "10.20.0.0/16", "fd00:1::/32"]);
        let cases = [
            ("http://127.0.0.1:8080", true),
            ("http://[::ffff:127.0.0.1]:8080", true),
            ("http://0x7f000001", true),
            ("http://10.20.30.40", true),
            ("http://10.21.0.1", false),
            ("http://[fd00:1::5]", true),
            ("http://[fd00:2::5]", false),
            ("http://[::1]", false),
        ];
        for (url, allowed) in cases {
            assert_eq!(refusal(&origin(url), &allow).is_none(), allowed, "{url}");
        }
    }

    #[test]
    fn numeric_hosts_read_as_inet_aton_does() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().ok();
        let cases = [
            ("0x7f000001", ip("127.0.0.1")),
            ("2130706433", ip("127.0.0.1")),
            ("127.1", ip("127.0.0.1")),
            ("127.0.1", ip("127.0.0.1")),
            ("0177.0.0.1", ip("127.0.0.1")),
            ("0x7f.1", ip("127.0.0.1")),
            ("10.0x10203", ip("10.1.2.3")),
            ("0x", ip("0.0.0.0")),
            ("0", ip("0.0.0.0")),
            ("255.255.255.255", ip("255.255.255.255")),
            ("4294967295", ip("255.255.255.255")),
            ("4294967296", None),
            ("256.0.0.1", None),
            ("1.2.3.256", None),
            ("1.2.65536", None),
            ("1.2.3.4.5", None),
            ("08", None),
            ("0xg", None),
            ("1..2", None),
            ("", None),
            ("shop.example", None),
            ("0xcafe.example", None),
        ];
        for (host, want) in cases {
            assert_eq!(numeric_ipv4(host), want, "{host}");
        }
    }

    #[test]
    fn every_upstream_field_is_checked_and_named() {
        let service = config(json!({
            "name": "shop",
            "hosts": ["shop.example"],
            "origins": [{"url": "https://origin.shop.example"}, {"url": "http://10.0.0.2", "group": 1}],
            "shields": [{"url": "http://127.0.0.1:8081", "pop": "fra"}],
            "function": {"wasm": "f.wasm", "backends": {"api": "http://[::1]:9901", "cdn": "https://cdn.example"}},
        }));
        let error = check(&service, &[]).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(error.kind, ErrorKind::InvalidConfig);
        let paths: Vec<&str> = error.fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["origins[1].url", "shields[0].url", "function.backends.api"]);
        let single = config(json!({"name": "shop", "hosts": ["shop.example"], "origin": "http://127.0.0.1:9901"}));
        let error = check(&single, &[]).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(error.fields[0].path, "origin");
        assert!(
            error.message.starts_with("origin: http://127.0.0.1:9901 is in 127.0.0.0/8, loopback"),
            "{}",
            error.message
        );
        assert!(check(&single, &cidrs(&["127.0.0.1"])).is_ok());
    }
}
