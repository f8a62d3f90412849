//! Answering one query: the zone's rules, then steering for service names.
//!
//! | query | answer |
//! |---|---|
//! | `<service>.<zone>` A / AAAA / ANY, service exists | the edges of the PoP [`steer::choose`] picks for the client, `ttl` |
//! | `<service>.<zone>`, another type, or no edge of that family | NOERROR, no records, SOA in authority |
//! | `<service>.<zone>`, no such service | NXDOMAIN, SOA in authority |
//! | `<zone>` SOA / NS / ANY | the SOA / the NS records / both |
//! | `<zone>`, another type | NOERROR, no records, SOA in authority |
//! | any other name in the zone | NXDOMAIN, SOA in authority |
//! | a name outside the zone, or a class other than IN | REFUSED (not authoritative) |
//! | not one question; an opcode other than QUERY; EDNS version above 0 | FORMERR / NOTIMP / BADVERS |
//!
//! The client is the EDNS Client Subnet (RFC 7871) when the query carries one with a source
//! prefix above 0, else the address the query came from (the resolver's). A query with ECS
//! gets it back: for a steered answer the scope is the longer of the source prefix and the
//! prefix of the region subnet that placed the client ([`ecs_scope`]: the answer holds for that
//! network, no wider), 0 for every other answer (it holds for everyone).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::proto::op::{OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::{DNSClass, LowerName, Record, RecordType};
use hickory_server::server::Request;
use outpost_config::ServiceId;

use super::cidr::mask;
use super::services::ServiceIndex;
use super::stats::{Outcome, Stats};
use super::steer::{self, Steering};
use super::zone::{Owner, Zone};
use crate::pops::Pops;

/// Everything a query is answered from.
pub struct Answerer {
    pub zone: Zone,
    pub steering: Steering,
    pub pops: Arc<Pops>,
    pub services: ServiceIndex,
    pub stats: Arc<Stats>,
}

/// The response to send.
#[derive(Debug, Clone)]
pub struct Reply {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    /// The ECS option to echo, when the query had one.
    pub ecs: Option<ClientSubnet>,
    pub outcome: Outcome,
}

impl Reply {
    fn error(rcode: ResponseCode, outcome: Outcome) -> Self {
        Reply { rcode, authoritative: false, answers: Vec::new(), authority: Vec::new(), ecs: None, outcome }
    }
}

/// The question, once the message is known to hold exactly one.
struct Question<'a> {
    name: &'a LowerName,
    kind: RecordType,
    class: DNSClass,
    src: IpAddr,
    ecs: Option<ClientSubnet>,
}

impl Answerer {
    pub async fn answer(&self, request: &Request) -> Reply {
        if request.metadata.op_code != OpCode::Query {
            return Reply::error(ResponseCode::NotImp, Outcome::Malformed);
        }
        if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
            // RFC 6891 §6.1.3: we speak EDNS version 0 only.
            return Reply::error(ResponseCode::BADVERS, Outcome::Malformed);
        }
        let [query] = request.queries.queries() else {
            return Reply::error(ResponseCode::FormErr, Outcome::Malformed);
        };
        let ecs = request.edns.as_ref().and_then(|edns| match edns.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(subnet)) => Some(*subnet),
            _ => None,
        });
        let question = Question {
            name: query.name(),
            kind: query.query_type(),
            class: query.query_class(),
            src: request.src().ip(),
            ecs,
        };
        let mut reply = self.lookup(&question).await;
        // RFC 7871 §7.2.1: echo the option; the scope is set where the answer depends on it.
        if let (Some(subnet), None) = (question.ecs, reply.ecs) {
            reply.ecs = Some(ClientSubnet::new(subnet.addr(), subnet.source_prefix(), 0));
        }
        reply
    }

    async fn lookup(&self, question: &Question<'_>) -> Reply {
        if question.class != DNSClass::IN {
            return Reply::error(ResponseCode::Refused, Outcome::Refused);
        }
        match self.zone.classify(question.name) {
            Owner::Outside => Reply::error(ResponseCode::Refused, Outcome::Refused),
            Owner::Other => self.negative(ResponseCode::NXDomain),
            Owner::Apex => {
                let soa = || std::iter::once(self.zone.soa().clone());
                let answers: Vec<Record> = match question.kind {
                    RecordType::SOA => soa().collect(),
                    RecordType::NS => self.zone.ns().to_vec(),
                    RecordType::ANY => soa().chain(self.zone.ns().iter().cloned()).collect(),
                    _ => Vec::new(),
                };
                if answers.is_empty() { self.negative(ResponseCode::NoError) } else { self.positive(answers) }
            }
            Owner::Service(label) => {
                let Ok(id) = ServiceId::parse(label) else { return self.negative(ResponseCode::NXDomain) };
                match self.services.contains(&id).await {
                    Err(error) => {
                        tracing::warn!(service = %id, %error, "dns: cannot tell whether the service exists");
                        Reply::error(ResponseCode::ServFail, Outcome::ServFail)
                    }
                    Ok(false) => self.negative(ResponseCode::NXDomain),
                    Ok(true) => self.steer(question, &id),
                }
            }
        }
    }

    /// The edges of the PoP picked for the client, of the family asked for.
    fn steer(&self, question: &Question<'_>, id: &ServiceId) -> Reply {
        let wants = |ip: &IpAddr| match question.kind {
            RecordType::A => ip.to_canonical().is_ipv4(),
            RecordType::AAAA => ip.to_canonical().is_ipv6(),
            RecordType::ANY => true,
            _ => false,
        };
        if !matches!(question.kind, RecordType::A | RecordType::AAAA | RecordType::ANY) {
            return self.negative(ResponseCode::NoError);
        }
        let ecs = question.ecs.filter(|subnet| subnet.source_prefix() > 0);
        let client = match ecs {
            Some(subnet) => mask(subnet.addr(), subnet.source_prefix()),
            None => question.src,
        };
        let placement = self.steering.place(client);
        let table = self.pops.table();
        let order = self.steering.order(placement.region, &table);
        let mut reply = match steer::choose(&order, &table) {
            None => {
                tracing::debug!(service = %id, %client, "dns: no PoP has an edge node; empty answer");
                self.negative(ResponseCode::NoError)
            }
            Some(choice) => {
                self.stats.picked(choice.pop, choice.pick);
                let answers: Vec<Record> = choice
                    .addresses
                    .iter()
                    .filter(|ip| wants(ip))
                    .map(|ip| self.zone.address(question.name, *ip))
                    .collect();
                tracing::debug!(
                    service = %id, %client, region = placement.region.unwrap_or("-"), pop = choice.pop,
                    pick = choice.pick.name(), answers = answers.len(), "dns: answer"
                );
                if answers.is_empty() { self.negative(ResponseCode::NoError) } else { self.positive(answers) }
            }
        };
        reply.ecs = question
            .ecs
            .map(|s| ClientSubnet::new(s.addr(), s.source_prefix(), ecs_scope(s.source_prefix(), placement.prefix)));
        reply
    }

    fn positive(&self, answers: Vec<Record>) -> Reply {
        Reply {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers,
            authority: Vec::new(),
            ecs: None,
            outcome: Outcome::Answer,
        }
    }

    /// NXDOMAIN, or NOERROR without records (NODATA): the SOA in authority, so resolvers cache
    /// the negative answer (RFC 2308 §3).
    fn negative(&self, rcode: ResponseCode) -> Reply {
        let outcome = if rcode == ResponseCode::NXDomain { Outcome::NxDomain } else { Outcome::NoData };
        Reply {
            rcode,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![self.zone.soa().clone()],
            ecs: None,
            outcome,
        }
    }
}

/// The ECS scope prefix of a steered answer for a query with `source` bits of client subnet,
/// placed by the region subnet of `matched` bits (`None`: no subnet matched).
///
/// RFC 7871 §7.2.1: the scope must not claim the answer for a wider network than the one that
/// decided it. A client's `/24` placed by a `/25` rule holds for that `/25` only (the other half
/// may be another region), so the scope is 25; placed by a `/16` rule it holds for the whole
/// `/24` asked about, so 24. With no rule matched the default order answers, and it holds for
/// the source network. A source of 0 means the client's address was not used (the resolver's
/// was), so the answer holds for every client of that resolver: scope 0.
pub fn ecs_scope(source: u8, matched: Option<u8>) -> u8 {
    match (source, matched) {
        (0, _) => 0,
        (source, Some(rule)) => source.max(rule),
        (source, None) => source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_is_never_wider_than_the_network_that_decided() {
        // (source prefix, matched rule's prefix, scope); RFC 7871 §7.2.1 each row.
        let cases = [
            // The rule is wider than the source: the answer holds for the whole source network.
            (24, Some(16), 24),
            (24, Some(8), 24),
            (56, Some(48), 56),
            // The rule is narrower: the answer holds only for the rule's network.
            (24, Some(25), 25),
            (16, Some(24), 24),
            (48, Some(64), 64),
            (32, Some(32), 32),
            // No rule matched: the default order, for the source network.
            (24, None, 24),
            (56, None, 56),
            // Source 0: placed by the resolver's address, the same for all its clients.
            (0, Some(24), 0),
            (0, None, 0),
        ];
        for (source, matched, scope) in cases {
            assert_eq!(ecs_scope(source, matched), scope, "source /{source}, rule {matched:?}");
        }
    }
}
