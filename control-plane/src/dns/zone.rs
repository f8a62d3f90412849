//! The zone the control plane is authoritative for: its apex records (SOA, NS) and what a
//! name in it stands for. Built once from `[dns]`; pure.

use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use outpost_config::ServiceId;

/// The zone, ready to answer from.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: LowerName,
    /// TTL of A/AAAA answers and of the apex records.
    ttl: u32,
    soa: Record,
    ns: Vec<Record>,
}

/// What a query name is, relative to the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// The zone's apex (`cdn.example.`): SOA and NS.
    Apex,
    /// `<label>.<zone>` whose label is a valid service id: the service's edges, if it exists.
    Service(&'a str),
    /// Any other name in the zone: it does not exist.
    Other,
    /// A name outside the zone: not ours to answer.
    Outside,
}

/// The SOA and NS values, already checked (see `dns::settings`).
#[derive(Debug, Clone)]
pub struct ZoneRecords {
    pub origin: Name,
    pub ttl: u32,
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// The negative-caching TTL (RFC 2308 §4: SOA MINIMUM).
    pub minimum: u32,
    pub ns: Vec<Name>,
}

impl Zone {
    pub fn new(records: ZoneRecords) -> Self {
        let origin = records.origin.to_lowercase();
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let soa = SOA::new(
            records.mname,
            records.rname,
            records.serial,
            clamp(records.refresh),
            clamp(records.retry),
            clamp(records.expire),
            records.minimum,
        );
        // RFC 2308 §3: a negative answer is cached for min(SOA TTL, SOA MINIMUM); give the SOA
        // record that TTL so resolvers need not compute it.
        let soa_ttl = records.ttl.min(records.minimum);
        let soa = Record::from_rdata(origin.clone(), soa_ttl, RData::SOA(soa));
        let ns = records
            .ns
            .into_iter()
            .map(|ns| Record::from_rdata(origin.clone(), records.ttl, RData::NS(NS(ns))))
            .collect();
        Zone { origin: LowerName::new(&origin), ttl: records.ttl, soa, ns }
    }

    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    /// What `name` stands for in this zone.
    pub fn classify<'n>(&self, name: &'n LowerName) -> Owner<'n> {
        if !self.origin.zone_of(name) {
            return Owner::Outside;
        }
        let depth = usize::from(name.num_labels()).saturating_sub(usize::from(self.origin.num_labels()));
        match depth {
            0 => Owner::Apex,
            1 => {
                let label = name.iter().next().and_then(|l| std::str::from_utf8(l).ok());
                match label {
                    Some(label) if ServiceId::parse(label).is_ok() => Owner::Service(label),
                    _ => Owner::Other,
                }
            }
            _ => Owner::Other,
        }
    }

    /// The apex SOA record (answers, and the authority section of negative answers).
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// The apex NS records.
    pub fn ns(&self) -> &[Record] {
        &self.ns
    }

    /// An A or AAAA record for `ip` at `name`, with the answer TTL.
    pub fn address(&self, name: &LowerName, ip: IpAddr) -> Record {
        let rdata = match ip.to_canonical() {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        Record::from_rdata(Name::from(name), self.ttl, rdata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        let name = |t: &str| Name::from_ascii(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        Zone::new(ZoneRecords {
            origin: name("cdn.example."),
            ttl: 30,
            mname: name("ns1.cdn.example."),
            rname: name("hostmaster.cdn.example."),
            serial: 7,
            refresh: 3600,
            retry: 600,
            expire: 604_800,
            minimum: 10,
            ns: vec![name("ns1.cdn.example."), name("ns2.cdn.example.")],
        })
    }

    #[test]
    fn names_relative_to_the_zone() {
        let zone = zone();
        let lower = |t: &str| LowerName::new(&Name::from_ascii(t).unwrap_or_else(|e| panic!("{t}: {e}")));
        let long = "a".repeat(63);
        let long_name = format!("{long}.cdn.example.");
        let cases = [
            ("cdn.example.", Owner::Apex),
            ("CDN.Example.", Owner::Apex),
            ("shop.cdn.example.", Owner::Service("shop")),
            ("Shop.CDN.example.", Owner::Service("shop")),
            ("shop_2.cdn.example.", Owner::Service("shop_2")),
            ("www.shop.cdn.example.", Owner::Other),
            ("a.b.c.cdn.example.", Owner::Other),
            // The longest label DNS allows (63) is a valid id; ids of 64 cannot be named.
            (long_name.as_str(), Owner::Service(long.as_str())),
            ("under_score-ok.cdn.example.", Owner::Service("under_score-ok")),
            ("UPPER.cdn.example.", Owner::Service("upper")),
            ("example.", Owner::Outside),
            ("cdn.example.org.", Owner::Outside),
            ("xcdn.example.", Owner::Outside),
            (".", Owner::Outside),
        ];
        for (name, want) in cases {
            let name = lower(name);
            assert_eq!(zone.classify(&name), want, "{name}");
        }
    }

    #[test]
    fn the_soa_carries_the_negative_ttl() {
        let zone = zone();
        assert_eq!(zone.soa().ttl, 10);
        assert_eq!(zone.ns().len(), 2);
        let name = LowerName::new(&Name::from_ascii("shop.cdn.example.").unwrap_or_else(|e| panic!("{e}")));
        let record = zone.address(&name, "::ffff:127.0.1.1".parse().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(&record.data, &RData::A(A([127, 0, 1, 1].into())));
        assert_eq!(record.ttl, 30);
    }
}
