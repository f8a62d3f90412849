//! [`IpNetwork`]: an address block in CIDR notation (`"10.0.0.0/8"`, `"2001:db8::/32"`, or a
//! bare address for one host), the form `trusted_networks` lists take.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

/// Most entries one `trusted_networks` list may hold: the check runs per request.
pub const MAX_TRUSTED_NETWORKS: usize = 256;

/// An IPv4 or IPv6 network: its first address and prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a
    /// dual-stack listener reports for an IPv4 peer) counts as the IPv4 address it maps.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

/// The first `prefix` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

impl TryFrom<String> for IpNetwork {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let hint = "write an address or a network such as \"10.0.0.0/8\" or \"2001:db8::/32\"";
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.as_str(), None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| format!("\"{s}\": not an IP address; {hint}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("\"{s}\": the prefix length must be 0 to {max}; {hint}")),
            },
        };
        let network = Self { addr, prefix };
        // Host bits set usually mean a typo (10.0.0.1/8 for 10.0.0.0/8 or 10.0.0.1/32): say so.
        if network.first() != addr {
            return Err(format!("\"{s}\": host bits are set; write \"{}/{prefix}\"", network.first()));
        }
        Ok(network)
    }
}

impl IpNetwork {
    /// The network's first address (`addr` with the host bits cleared).
    fn first(&self) -> IpAddr {
        fn clear(bytes: &mut [u8], prefix: u8) {
            for (i, b) in bytes.iter_mut().enumerate() {
                let bits = usize::from(prefix).saturating_sub(i * 8).min(8);
                *b &= if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
            }
        }
        match self.addr {
            IpAddr::V4(a) => {
                let mut o = a.octets();
                clear(&mut o, self.prefix);
                IpAddr::from(o)
            }
            IpAddr::V6(a) => {
                let mut o = a.octets();
                clear(&mut o, self.prefix);
                IpAddr::from(o)
            }
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        IpNetwork::try_from(s.to_string()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_networks_and_says_what_is_wrong() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("10.0.0.0/8", Ok("10.0.0.0/8")),
            ("127.0.0.1", Ok("127.0.0.1/32")),
            ("0.0.0.0/0", Ok("0.0.0.0/0")),
            ("2001:db8::/32", Ok("2001:db8::/32")),
            ("::1", Ok("::1/128")),
            ("10.0.0.1/8", Err("host bits are set; write \"10.0.0.0/8\"")),
            ("10.0.0.0/33", Err("prefix length must be 0 to 32")),
            ("10.0.0.0/+8", Err("prefix length must be 0 to 32")),
            ("::/129", Err("prefix length must be 0 to 128")),
            ("10.0.0/8", Err("not an IP address")),
            ("edge.example", Err("not an IP address")),
        ];
        for (input, expected) in cases {
            match (IpNetwork::try_from(input.to_string()), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got.to_string(), *want, "{input}"),
                (Err(message), Err(fragment)) => assert!(message.contains(fragment), "{input}: {message}"),
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn membership() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.4.0/22", "192.168.7.255", true),
            ("192.168.4.0/22", "192.168.8.0", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6 addresses.
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "10.0.0.1", false),
        ];
        for (network, ip, inside) in cases {
            let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert_eq!(net(network).contains(ip), *inside, "{ip} in {network}");
        }
    }
}
