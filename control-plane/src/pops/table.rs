//! [`PopTable`]: what DNS answers from. Every PoP with at least one edge node, whether it is
//! healthy and drained, and its edges' addresses, as of the last health round (or drain).
//! Built by [`super::Pops`], read by every DNS query through a `watch` (an `Arc` clone, no lock
//! held while answering).

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Every PoP DNS can send clients to, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopTable {
    pub pops: BTreeMap<String, PopEntry>,
}

/// One PoP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopEntry {
    /// At least one of its edges is healthy (probe passing and stream live).
    pub healthy: bool,
    /// An operator drained it (`POST /v1/pops/{pop}/drain`).
    pub drained: bool,
    /// Its edges' client-facing IPs (`addresses.https`, else `addresses.http`).
    pub targets: Vec<Target>,
}

/// One edge node's address as DNS gives it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub ip: IpAddr,
    pub healthy: bool,
}

impl PopEntry {
    /// The addresses to answer with: the healthy edges' when the PoP is healthy, otherwise
    /// every edge's (the PoP is answered only when nothing better exists: see
    /// `dns::steer::choose`), without repeats, in the order the edges are listed.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            if (target.healthy || !self.healthy) && !ips.contains(&target.ip) {
                ips.push(target.ip);
            }
        }
        ips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ip: &str, healthy: bool) -> Target {
        Target { ip: ip.parse().unwrap_or_else(|e| panic!("{e}")), healthy }
    }

    #[test]
    fn a_healthy_pop_gives_its_healthy_edges_a_down_one_all() {
        let targets = vec![target("127.0.1.1", true), target("127.0.1.2", false), target("127.0.1.1", true)];
        let healthy = PopEntry { healthy: true, drained: false, targets: targets.clone() };
        assert_eq!(healthy.addresses(), vec![target("127.0.1.1", true).ip]);
        let down = PopEntry { healthy: false, drained: false, targets };
        assert_eq!(down.addresses(), vec![target("127.0.1.1", true).ip, target("127.0.1.2", true).ip]);
    }
}
