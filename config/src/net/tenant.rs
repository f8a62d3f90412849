//! Where a tenant may point the nodes: not at the nodes' own network. ONE list, used twice:
//! the control plane refuses a tenant's upstream written as an address in these networks
//! (`limits.tenant_upstream_allow` there lets some through), and every node refuses to connect
//! a tenant's upstream to an address in them after resolving its name (its own
//! `limits.tenant_upstream_allow`), since a name may resolve to anything, on any node, at any
//! time (DNS rebinding). Without this, `origin = "http://127.0.0.1:9090"` (or a name that
//! resolves to it) reaches the node's admin listener.
//!
//! The networks are the special-purpose ones (RFC 6890) that lead to the node itself or to the
//! network it runs in, plus every IPv6 form that carries an IPv4 address a packet may end up at:
//! IPv4-mapped (`::ffff:0:0/96`, RFC 4291 §2.5.5.2), IPv4-compatible (`::/96`, deprecated by
//! RFC 4291 §2.5.5.1, still routed by some stacks), IPv4-translated (`::ffff:0:0:0/96`,
//! RFC 2765 §2.1), the NAT64 well-known prefix (`64:ff9b::/96`, RFC 6052 §2.1), and 6to4
//! (`2002::/16`, RFC 3056 §2). Their embedded IPv4 address is judged as itself. The local-use
//! NAT64 prefix (`64:ff9b:1::/48`, RFC 8215) and Teredo (`2001::/32`, RFC 4380) are refused
//! whole: what they reach depends on a translator or relay in the node's network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use super::cidr::Cidr;
use crate::OriginUrl;

/// The refused networks and why; the first that holds an address names it (broadcast before
/// the reserved block that contains it).
const REFUSED: [(&str, &str); 19] = [
    ("0.0.0.0/8", "unspecified (\"this network\"): a connection to it reaches the node itself"),
    ("127.0.0.0/8", "loopback: the node itself, where its admin listener is"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("169.254.0.0/16", "link-local (where cloud metadata services answer)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved (RFC 1112 §4)"),
    ("::/128", "unspecified: a connection to it reaches the node itself"),
    ("::1/128", "loopback: the node itself, where its admin listener is"),
    ("fc00::/7", "unique local (private, RFC 4193)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated, RFC 3879; private where still routed)"),
    ("ff00::/8", "multicast"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215): a translator in the node's network"),
    ("2001::/32", "Teredo (RFC 4380): tunnels to an IPv4 address"),
    ("100::/64", "discard-only (RFC 6666)"),
];

/// [`REFUSED`], parsed once (a unit test checks that every entry parses).
static NETWORKS: LazyLock<Vec<(Cidr, &'static str)>> =
    LazyLock::new(|| REFUSED.iter().filter_map(|(net, why)| net.parse().ok().map(|cidr| (cidr, *why))).collect());

/// What `localhost` resolves to on the nodes (RFC 6761 §6.3: loopback, either family).
const LOCALHOST: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];

/// Why an address may not be a tenant's upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// The address judged (as resolved or written).
    pub addr: IpAddr,
    /// The IPv4 address `addr` carries, when it is one of the IPv6 forms that embed one.
    pub embeds: Option<Ipv4Addr>,
    pub network: Cidr,
    pub why: &'static str,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embeds {
            Some(v4) => write!(f, "{} carries {v4}, which is in {}, {}", self.addr, self.network, self.why),
            None => write!(f, "{} is in {}, {}", self.addr, self.network, self.why),
        }
    }
}

impl std::error::Error for Forbidden {}

/// Whether a tenant's upstream may be at `addr`: `Err` names the refused network, unless
/// `allow` holds `addr` (or the IPv4 address it embeds).
pub fn check_address(addr: IpAddr, allow: &[Cidr]) -> Result<(), Forbidden> {
    let embeds = match addr {
        IpAddr::V6(v6) => embedded_ipv4(v6),
        IpAddr::V4(_) => None,
    };
    let allowed = |ip: IpAddr| allow.iter().any(|cidr| cidr.contains(ip));
    if allowed(addr) || embeds.is_some_and(|v4| allowed(IpAddr::V4(v4))) {
        return Ok(());
    }
    // The embedded address first, for the forms that carry one (`::` and `::1` carry none, so
    // they stay themselves rather than 0.0.0.0 and 0.0.0.1); then the address as a whole.
    let judged = [embeds.map(IpAddr::V4), Some(addr)];
    for ip in judged.into_iter().flatten() {
        if let Some((network, why)) = NETWORKS.iter().find(|(cidr, _)| cidr.contains(ip)) {
            let embeds = if ip == addr { None } else { embeds };
            return Err(Forbidden { addr, embeds, network: *network, why });
        }
    }
    Ok(())
}

/// The IPv4 address an IPv6 address carries in one of the forms a packet can reach it through.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    match s {
        // ::ffff:a.b.c.d, IPv4-mapped (RFC 4291 §2.5.5.2).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low32),
        // ::ffff:0:a.b.c.d, IPv4-translated (RFC 2765 §2.1).
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low32),
        // ::a.b.c.d, IPv4-compatible (RFC 4291 §2.5.5.1); `::` and `::1` are themselves.
        [0, 0, 0, 0, 0, 0, _, _] if bits > 1 => Some(low32),
        // 64:ff9b::a.b.c.d, the NAT64 well-known prefix (RFC 6052 §2.1).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low32),
        // 2002:AABB:CCDD::/48, 6to4 (RFC 3056 §2): the IPv4 address in bits 16 to 48.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// Why a tenant may not name `url` as an upstream, judged without a lookup (as the control
/// plane judges what a tenant writes), or `None` when it may: `localhost` (RFC 6761 §6.3)
/// unless both loopback addresses are allowed, and addresses written as addresses in every
/// form the nodes' resolver (`getaddrinfo`) reads as one (`0x7f000001` is 127.0.0.1).
pub fn refusal(url: &OriginUrl, allow: &[Cidr]) -> Option<String> {
    const FIX: &str = "a tenant's upstream must be a public address or a host name \
                       (the operator may allow networks with limits.tenant_upstream_allow)";
    let host = url.host.as_str();
    if host == "localhost" || host.ends_with(".localhost") {
        if LOCALHOST.into_iter().all(|ip| check_address(ip, allow).is_ok()) {
            return None;
        }
        return Some(format!("{url}: \"{host}\" is the node itself (loopback, RFC 6761); {FIX}"));
    }
    let ip = literal_address(host)?;
    let forbidden = check_address(ip, allow).err()?;
    let written = if host == ip.to_string() { String::new() } else { format!(" ({ip})") };
    let detail = forbidden.to_string();
    let detail = detail.strip_prefix(&ip.to_string()).unwrap_or(&detail);
    Some(format!("{url}{written}{detail}; {FIX}"))
}

/// The address `host` stands for without a lookup: an IP literal, or a numeric IPv4 form.
pub fn literal_address(host: &str) -> Option<IpAddr> {
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
mod tests;
