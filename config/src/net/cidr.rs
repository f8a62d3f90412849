//! Networks: `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a host route). The control
//! plane's region map (client subnets), and the networks a tenant's upstream may or may not be
//! in ([`super::tenant`]), judged by the control plane and again by each node when it connects.
//! Pure: parsing, containment, and the most specific match.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network: its address with the bits past `prefix` cleared, and the prefix length. In config
/// files a string (`trusted_networks`), parsed as [`FromStr`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` bits (at most 32 for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = max_prefix(addr);
        (prefix <= max).then(|| Cidr { network: mask(addr, prefix), prefix })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a
    /// dual-stack socket reports for an IPv4 client) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        std::mem::discriminant(&ip) == std::mem::discriminant(&self.network) && mask(ip, self.prefix) == self.network
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("\"{text}\" is not a subnet; write ADDRESS/PREFIX, e.g. \"192.0.2.0/24\" or \"2001:db8::/32\"");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let prefix = match prefix {
            None => max_prefix(addr),
            Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
        };
        let cidr = Cidr::new(addr, prefix)
            .ok_or_else(|| format!("\"{text}\": the prefix is longer than {} bits", max_prefix(addr)))?;
        if cidr.network != addr {
            // Likely a typo (192.0.2.1/16 meant 192.0.0.0/16?): say what it means rather than
            // guess.
            return Err(format!("\"{text}\" has host bits set; the network is {cidr}"));
        }
        Ok(cidr)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` with every bit past the first `prefix` cleared.
pub fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_networks_and_host_routes() {
        let cases = [
            ("192.0.2.0/24", Ok("192.0.2.0/24")),
            ("10.0.0.0/8", Ok("10.0.0.0/8")),
            ("0.0.0.0/0", Ok("0.0.0.0/0")),
            ("192.0.2.7", Ok("192.0.2.7/32")),
            ("2001:db8::/32", Ok("2001:db8::/32")),
            ("::/0", Ok("::/0")),
            ("2001:db8::1", Ok("2001:db8::1/128")),
            ("192.0.2.1/24", Err("host bits set; the network is 192.0.2.0/24")),
            ("192.0.2.0/33", Err("longer than 32 bits")),
            ("2001:db8::/129", Err("longer than 128 bits")),
            ("192.0.2.0/", Err("is not a subnet")),
            ("192.0.2.0/-1", Err("is not a subnet")),
            ("example.com/24", Err("is not a subnet")),
            ("", Err("is not a subnet")),
        ];
        for (text, want) in cases {
            let got = text.parse::<Cidr>().map(|c| c.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(fragment)) => assert!(got.contains(fragment), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn containment() {
        let net = |t: &str| t.parse::<Cidr>().unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            ("127.0.1.0/24", "127.0.1.9", true),
            ("127.0.1.0/24", "127.0.2.9", false),
            ("127.0.1.0/24", "::ffff:127.0.1.9", true),
            ("0.0.0.0/0", "203.0.113.5", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "127.0.0.1", false),
            ("198.51.100.7", "198.51.100.7", true),
            ("198.51.100.7", "198.51.100.8", false),
        ];
        for (network, addr, inside) in cases {
            assert_eq!(net(network).contains(ip(addr)), inside, "{addr} in {network}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(mask(ip("192.0.2.255"), 25), ip("192.0.2.128"));
        assert_eq!(mask(ip("192.0.2.255"), 0), ip("0.0.0.0"));
        assert_eq!(mask(ip("192.0.2.255"), 32), ip("192.0.2.255"));
        assert_eq!(mask(ip("2001:db8::ff"), 120), ip("2001:db8::"));
    }
}
