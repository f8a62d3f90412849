//! Steering: which PoP a client is sent to. Pure functions of the region map, the client's
//! address and the [`PopTable`].
//!
//! 1. The client's address (its EDNS Client Subnet, else the resolver's source address) is
//!    matched against every region's subnets; the most specific subnet wins.
//! 2. The PoP order is that region's `pops` (nearest first), then `default_pops`, then every
//!    other PoP with edges, by name; a client in no subnet starts at `default_pops`.
//! 3. The first PoP in that order that is healthy and not drained is answered. When there is
//!    none, the first undrained PoP is answered anyway (every PoP is down: its edges may still
//!    serve some clients, and an empty answer serves none); when every PoP is drained, the
//!    first healthy one, else the first.

use std::net::IpAddr;

use super::cidr::Cidr;
use crate::pops::table::{PopEntry, PopTable};

/// The region map, compiled from `[dns.regions]` and `[dns] default_pops`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steering {
    /// Every region's subnets, most specific first, each with its region's index.
    subnets: Vec<(Cidr, usize)>,
    regions: Vec<Region>,
    default_pops: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Region {
    name: String,
    pops: Vec<String>,
}

/// Where a client is, as the region map sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement<'a> {
    /// The region of the most specific matching subnet; `None` for a client in none.
    pub region: Option<&'a str>,
    /// The prefix length of that subnet: with the ECS source prefix, it sets the scope the
    /// answer holds for ([`super::answer::ecs_scope`]).
    pub prefix: Option<u8>,
}

/// Why the PoP answered is not a healthy, undrained one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The nearest healthy, undrained PoP.
    Healthy,
    /// Every undrained PoP is down: the nearest of them.
    AllDown,
    /// Every PoP is drained: the nearest healthy one, else the nearest.
    AllDrained,
}

impl Pick {
    pub fn name(self) -> &'static str {
        match self {
            Pick::Healthy => "healthy",
            Pick::AllDown => "all_down",
            Pick::AllDrained => "all_drained",
        }
    }
}

/// The PoP a client gets and the addresses to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<'a> {
    pub pop: &'a str,
    pub pick: Pick,
    pub addresses: Vec<IpAddr>,
}

impl Steering {
    /// `regions`: `(name, subnets, pops)`. A subnet listed twice belongs to the first region
    /// that lists it (settings refuse duplicates).
    pub fn new(regions: Vec<(String, Vec<Cidr>, Vec<String>)>, default_pops: Vec<String>) -> Self {
        let mut subnets = Vec::new();
        let mut compiled = Vec::with_capacity(regions.len());
        for (index, (name, cidrs, pops)) in regions.into_iter().enumerate() {
            subnets.extend(cidrs.into_iter().map(|cidr| (cidr, index)));
            compiled.push(Region { name, pops });
        }
        // Stable: among equal prefixes, the order of the file.
        subnets.sort_by_key(|(cidr, _)| std::cmp::Reverse(cidr.prefix()));
        Steering { subnets, regions: compiled, default_pops }
    }

    /// The region of `client`: the most specific subnet containing it.
    pub fn place(&self, client: IpAddr) -> Placement<'_> {
        let found = self.subnets.iter().find(|(cidr, _)| cidr.contains(client));
        match found.and_then(|(cidr, index)| self.regions.get(*index).map(|r| (cidr, r))) {
            Some((cidr, region)) => Placement { region: Some(&region.name), prefix: Some(cidr.prefix()) },
            None => Placement { region: None, prefix: None },
        }
    }

    /// The PoPs to try for a client placed in `region`, nearest first, ending with every other
    /// PoP of `table` by name. No PoP twice.
    pub fn order<'a>(&'a self, region: Option<&str>, table: &'a PopTable) -> Vec<&'a str> {
        let preferred = self.regions.iter().find(|r| Some(r.name.as_str()) == region).map(|r| r.pops.as_slice());
        let named = preferred.unwrap_or_default().iter().chain(&self.default_pops).map(String::as_str);
        let mut order: Vec<&str> = Vec::with_capacity(table.pops.len());
        for pop in named.chain(table.pops.keys().map(String::as_str)) {
            if !order.contains(&pop) {
                order.push(pop);
            }
        }
        order
    }

    /// Whether a PoP is named anywhere in the map.
    pub fn names(&self, pop: &str) -> bool {
        self.default_pops.iter().chain(self.regions.iter().flat_map(|r| &r.pops)).any(|p| p == pop)
    }

    /// Every PoP the map names, without repeats.
    pub fn pops(&self) -> Vec<&str> {
        let mut pops: Vec<&str> = Vec::new();
        for pop in self.regions.iter().flat_map(|r| &r.pops).chain(&self.default_pops) {
            if !pops.contains(&pop.as_str()) {
                pops.push(pop);
            }
        }
        pops
    }
}

/// The PoP to answer from `order` (see the module docs); `None` when no PoP has an edge.
pub fn choose<'a>(order: &[&'a str], table: &'a PopTable) -> Option<Choice<'a>> {
    let candidates = order
        .iter()
        .enumerate()
        .filter_map(|(rank, pop)| table.pops.get_key_value(*pop).map(|(name, entry)| (rank, name.as_str(), entry)))
        .filter(|(_, _, entry)| !entry.targets.is_empty());
    // Undrained before drained, healthy before down, then nearest.
    let (_, pop, entry) = candidates.min_by_key(|(rank, _, entry)| (entry.drained, !entry.healthy, *rank))?;
    Some(Choice { pop, pick: pick(entry), addresses: entry.addresses() })
}

fn pick(entry: &PopEntry) -> Pick {
    match (entry.drained, entry.healthy) {
        (false, true) => Pick::Healthy,
        (false, false) => Pick::AllDown,
        (true, _) => Pick::AllDrained,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pops::table::Target;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn map() -> Steering {
        Steering::new(
            vec![
                ("eu".into(), vec![cidr("127.0.1.0/24"), cidr("2001:db8:1::/48")], names(&["fra", "ams"])),
                ("us".into(), vec![cidr("127.0.2.0/24"), cidr("127.0.0.0/8")], names(&["iad", "fra"])),
                ("eu-west".into(), vec![cidr("127.0.1.128/25")], names(&["ams", "fra"])),
            ],
            names(&["iad"]),
        )
    }

    /// A table of `(pop, healthy, drained, edges)`; every edge healthy when its PoP is.
    fn table(pops: Pops<'_>) -> PopTable {
        let mut table = PopTable::default();
        for (pop, healthy, drained, edges) in pops {
            let targets = edges.iter().map(|e| Target { ip: ip(e), healthy: *healthy }).collect();
            table.pops.insert((*pop).to_owned(), PopEntry { healthy: *healthy, drained: *drained, targets });
        }
        table
    }

    #[test]
    fn the_most_specific_subnet_places_the_client() {
        let map = map();
        let cases = [
            ("127.0.1.9", Some("eu"), Some(24)),
            ("127.0.1.200", Some("eu-west"), Some(25)),
            ("127.0.2.1", Some("us"), Some(24)),
            ("127.0.9.1", Some("us"), Some(8)),
            ("::ffff:127.0.1.9", Some("eu"), Some(24)),
            ("2001:db8:1::7", Some("eu"), Some(48)),
            ("2001:db8:2::7", None, None),
            ("203.0.113.1", None, None),
        ];
        for (client, region, prefix) in cases {
            assert_eq!(map.place(ip(client)), Placement { region, prefix }, "{client}");
        }
    }

    #[test]
    fn order_is_the_region_then_the_default_then_the_rest_by_name() {
        let map = map();
        let table = table(&[
            ("ams", true, false, &["127.0.3.1"]),
            ("sin", true, false, &["127.0.4.1"]),
            ("fra", true, false, &["127.0.1.1"]),
        ]);
        assert_eq!(map.order(Some("eu"), &table), vec!["fra", "ams", "iad", "sin"]);
        assert_eq!(map.order(Some("us"), &table), vec!["iad", "fra", "ams", "sin"]);
        assert_eq!(map.order(None, &table), vec!["iad", "ams", "fra", "sin"]);
        assert_eq!(map.pops(), vec!["fra", "ams", "iad"]);
        assert!(map.names("ams") && !map.names("sin"));
    }

    /// `(pop, healthy, drained, edges)` of each PoP in a table.
    type Pops<'a> = &'a [(&'a str, bool, bool, &'a [&'a str])];
    /// The pop, pick and addresses expected.
    type Expected<'a> = Option<(&'a str, Pick, &'a [&'a str])>;

    #[test]
    fn choose_the_nearest_healthy_undrained_pop() {
        let order = ["fra", "ams", "iad"];
        // (pops, expected pop, pick, addresses)
        let cases: [(Pops, Expected); 8] = [
            (
                &[("fra", true, false, &["127.0.1.1", "127.0.1.2"]), ("ams", true, false, &["127.0.2.1"])],
                Some(("fra", Pick::Healthy, &["127.0.1.1", "127.0.1.2"])),
            ),
            // fra down: the next nearest.
            (
                &[("fra", false, false, &["127.0.1.1"]), ("ams", true, false, &["127.0.2.1"])],
                Some(("ams", Pick::Healthy, &["127.0.2.1"])),
            ),
            // fra drained: the next nearest, even though fra is healthy.
            (
                &[("fra", true, true, &["127.0.1.1"]), ("ams", true, false, &["127.0.2.1"])],
                Some(("ams", Pick::Healthy, &["127.0.2.1"])),
            ),
            // Every PoP down: the nearest anyway, with all its edges.
            (
                &[("fra", false, false, &["127.0.1.1"]), ("ams", false, false, &["127.0.2.1"])],
                Some(("fra", Pick::AllDown, &["127.0.1.1"])),
            ),
            // Every undrained PoP down: the nearest undrained one.
            (
                &[("fra", true, true, &["127.0.1.1"]), ("ams", false, false, &["127.0.2.1"])],
                Some(("ams", Pick::AllDown, &["127.0.2.1"])),
            ),
            // Every PoP drained: the nearest healthy one.
            (
                &[("fra", false, true, &["127.0.1.1"]), ("ams", true, true, &["127.0.2.1"])],
                Some(("ams", Pick::AllDrained, &["127.0.2.1"])),
            ),
            // A PoP with no edge is skipped.
            (
                &[("fra", true, false, &[]), ("iad", true, false, &["127.0.5.1"])],
                Some(("iad", Pick::Healthy, &["127.0.5.1"])),
            ),
            (&[("fra", true, false, &[])], None),
        ];
        for (pops, want) in cases {
            let table = table(pops);
            let got = choose(&order, &table);
            let want =
                want.map(|(pop, pick, ips)| Choice { pop, pick, addresses: ips.iter().map(|i| ip(i)).collect() });
            assert_eq!(got, want, "{pops:?}");
        }
    }

    #[test]
    fn a_healthy_pop_answers_only_its_healthy_edges() {
        let mut table = table(&[("fra", true, false, &["127.0.1.1", "127.0.1.2"])]);
        if let Some(entry) = table.pops.get_mut("fra") {
            entry.targets[1].healthy = false;
        }
        let choice = choose(&["fra"], &table);
        assert_eq!(choice.map(|c| c.addresses), Some(vec![ip("127.0.1.1")]));
    }
}
