//! `[dns]`: the authoritative DNS server (file form), checked and compiled into the runtime
//! [`Zone`] and [`Steering`] once at start.
//!
//! ```toml
//! [dns]
//! listen = "0.0.0.0:53"              # UDP and TCP; port 0 picks one (see --ready-file)
//! zone = "cdn.example."
//! ttl = "30s"
//! ns = ["ns1.cdn.example.", "ns2.cdn.example."]
//! default_pops = ["iad", "fra"]      # clients in no subnet below
//!
//! [dns.soa]
//! rname = "hostmaster.cdn.example."
//!
//! [dns.regions.eu-central]
//! subnets = ["192.0.2.0/24", "2001:db8:1::/48"]
//! pops = ["fra", "ams", "iad"]       # nearest first
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hickory_server::proto::rr::Name;
use outpost_config::is_node_label;
use serde::Deserialize;

use super::cidr::Cidr;
use super::steer::Steering;
use super::zone::{Zone, ZoneRecords};

/// `[dns]`. Without it the control plane answers no DNS (PoP health and drains still work).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    /// Address of the DNS server, UDP and TCP on the same port. Port 0 picks a free one,
    /// reported as `"dns"` in the `--ready-file`. Default: `"127.0.0.1:5353"` (port 53 needs
    /// privileges: grant `CAP_NET_BIND_SERVICE` or map the port).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The zone answered, e.g. `"cdn.example."` (the trailing dot is optional). Every service
    /// is `<service-id>.<zone>`; tenants point their hosts at it with a CNAME. Required.
    pub zone: String,
    /// TTL of A/AAAA answers: how long a resolver keeps sending clients to a PoP after it
    /// failed. Short TTLs cost more queries. Default: `"30s"`; 1s to 1d.
    #[serde(default = "default_ttl", with = "outpost_config::units::duration")]
    pub ttl: Duration,
    /// The zone's name servers (NS records at the apex); their addresses are glue at the
    /// parent zone. Default: `[soa.mname]`.
    #[serde(default)]
    pub ns: Vec<String>,
    /// `[dns.soa]`.
    #[serde(default)]
    pub soa: SoaSettings,
    /// PoPs for clients in none of the regions' subnets, nearest first; also tried after a
    /// region's own list. Default: none (then every PoP with edges, by name).
    #[serde(default)]
    pub default_pops: Vec<String>,
    /// `[dns.regions.NAME]`: client subnets and the PoPs they prefer. Default: none.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionSettings>,
    /// How long a DNS-over-TCP connection may stay idle before it is closed. Bounds the
    /// sockets idle clients hold. Default: `"5s"`; 100ms to 5m.
    #[serde(default = "default_tcp_timeout", with = "outpost_config::units::duration")]
    pub tcp_timeout: Duration,
}

/// `[dns.soa]`: the zone's SOA record. The serial is the control plane's start time (Unix
/// seconds): answers are computed, not transferred, so it only has to move forward.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoaSettings {
    /// The primary name server. Default: `ns1.<zone>`.
    pub mname: Option<String>,
    /// The zone's contact, `@` written as `.`. Default: `hostmaster.<zone>`.
    pub rname: Option<String>,
    /// Default: `"1h"`.
    #[serde(with = "outpost_config::units::duration")]
    pub refresh: Duration,
    /// Default: `"10m"`.
    #[serde(with = "outpost_config::units::duration")]
    pub retry: Duration,
    /// Default: `"7d"`.
    #[serde(with = "outpost_config::units::duration")]
    pub expire: Duration,
    /// How long resolvers cache "no such name" (RFC 2308 negative caching): a service created
    /// after a miss resolves at most this late. Default: the answer `ttl`; at most 1d.
    #[serde(with = "outpost_config::units::option_duration")]
    pub minimum: Option<Duration>,
}

impl Default for SoaSettings {
    fn default() -> Self {
        Self {
            mname: None,
            rname: None,
            refresh: Duration::from_secs(3600),
            retry: Duration::from_secs(600),
            expire: Duration::from_secs(7 * 86_400),
            minimum: None,
        }
    }
}

/// `[dns.regions.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSettings {
    /// Client subnets (`"192.0.2.0/24"`, `"2001:db8::/32"`, or one address) in this region. A
    /// client matching several regions' subnets belongs to the most specific. Default: none.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// PoPs to send these clients to, nearest first. Required, at least one.
    pub pops: Vec<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5353))
}

fn default_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_tcp_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The most regions and subnets in all (bounds the work of placing one client, a scan).
const MAX_SUBNETS: usize = 10_000;

const DAY: Duration = Duration::from_secs(86_400);

impl DnsSettings {
    /// Every PoP the region map names (regions' lists, then `default_pops`), without repeats.
    pub fn named_pops(&self) -> Vec<String> {
        let mut pops: Vec<String> = Vec::new();
        for pop in self.regions.values().flat_map(|r| &r.pops).chain(&self.default_pops) {
            if !pops.contains(pop) {
                pops.push(pop.clone());
            }
        }
        pops
    }

    /// The runtime form; every problem as `(field path, message)`.
    pub fn compile(&self) -> Result<(Zone, Steering), Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut report = |path: &str, message: String| problems.push((path.to_owned(), message));
        let origin = match name(&self.zone) {
            Ok(origin) if origin.is_root() => {
                report("dns.zone", "the root zone cannot be the CDN's; give a zone such as \"cdn.example.\"".into());
                None
            }
            Ok(origin) => Some(origin),
            Err(message) => {
                report("dns.zone", message);
                None
            }
        };
        let ttl = seconds(self.ttl, Duration::from_secs(1), DAY, "1s to 1d", "dns.ttl", &mut report);
        if self.tcp_timeout < Duration::from_millis(100) || self.tcp_timeout > Duration::from_secs(300) {
            report("dns.tcp_timeout", format!("{:?} is out of range; use 100ms to 5m", self.tcp_timeout));
        }
        let soa = &self.soa;
        let mut durations = Vec::new();
        for (path, value) in
            [("dns.soa.refresh", soa.refresh), ("dns.soa.retry", soa.retry), ("dns.soa.expire", soa.expire)]
        {
            durations.push(seconds(
                value,
                Duration::from_secs(1),
                Duration::from_secs(i32::MAX as u64),
                "1s to 68 years",
                path,
                &mut report,
            ));
        }
        let minimum = match soa.minimum {
            Some(minimum) => seconds(minimum, Duration::ZERO, DAY, "0s to 1d", "dns.soa.minimum", &mut report),
            None => ttl,
        };
        let mut named = |path: &str, value: Option<&String>, default: &str| -> Option<Name> {
            let origin = origin.as_ref()?;
            let result = match value {
                Some(text) => name(text),
                None => Name::from_ascii(default).and_then(|n| n.append_domain(origin)).map_err(|e| format!("{e}")),
            };
            result.map_err(|message| report(path, message)).ok()
        };
        let mname = named("dns.soa.mname", soa.mname.as_ref(), "ns1");
        let rname = named("dns.soa.rname", soa.rname.as_ref(), "hostmaster");
        let mut ns = Vec::new();
        for (i, text) in self.ns.iter().enumerate() {
            ns.extend(named(&format!("dns.ns[{i}]"), Some(text), ""));
        }
        let steering = self.steering(&mut report);
        let (
            Some(origin),
            Some(mname),
            Some(rname),
            Some(ttl),
            [Some(refresh), Some(retry), Some(expire)],
            Some(minimum),
        ) = (origin, mname, rname, ttl, durations.as_slice(), minimum)
        else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        if ns.is_empty() {
            ns.push(mname.clone());
        }
        let serial = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        let records = ZoneRecords {
            origin,
            ttl,
            mname,
            rname,
            serial,
            refresh: *refresh,
            retry: *retry,
            expire: *expire,
            minimum,
            ns,
        };
        Ok((Zone::new(records), steering))
    }

    fn steering(&self, report: &mut dyn FnMut(&str, String)) -> Steering {
        check_pops("dns.default_pops", &self.default_pops, report);
        let mut regions = Vec::with_capacity(self.regions.len());
        let mut seen: HashMap<Cidr, String> = HashMap::new();
        for (region, settings) in &self.regions {
            let at = format!("dns.regions.{region}");
            if !is_node_label(region) {
                report(&at, format!("\"{region}\" is not a region name; use 1 to 64 of A-Z a-z 0-9 . _ -"));
            }
            if settings.pops.is_empty() {
                report(&format!("{at}.pops"), "empty; list the PoPs these clients go to, nearest first".into());
            }
            check_pops(&format!("{at}.pops"), &settings.pops, report);
            let mut subnets = Vec::with_capacity(settings.subnets.len());
            for (i, text) in settings.subnets.iter().enumerate() {
                let path = format!("{at}.subnets[{i}]");
                match text.parse::<Cidr>() {
                    Err(message) => report(&path, message),
                    Ok(cidr) => match seen.insert(cidr, path.clone()) {
                        Some(first) => report(&path, format!("{cidr} is also {first}; a subnet belongs to one region")),
                        None => subnets.push(cidr),
                    },
                }
            }
            regions.push((region.clone(), subnets, settings.pops.clone()));
        }
        if seen.len() > MAX_SUBNETS {
            report("dns.regions", format!("{} subnets in all; use at most {MAX_SUBNETS}", seen.len()));
        }
        Steering::new(regions, self.default_pops.clone())
    }
}

/// Each name valid, none twice.
fn check_pops(path: &str, pops: &[String], report: &mut dyn FnMut(&str, String)) {
    for (i, pop) in pops.iter().enumerate() {
        if !is_node_label(pop) {
            report(&format!("{path}[{i}]"), format!("\"{pop}\" is not a PoP name; use 1 to 64 of A-Z a-z 0-9 . _ -"));
        } else if pops[..i].contains(pop) {
            report(&format!("{path}[{i}]"), format!("\"{pop}\" is listed twice"));
        }
    }
}

/// A domain name, absolute whether or not it ends in a dot, lower-cased.
fn name(text: &str) -> Result<Name, String> {
    let mut parsed = Name::from_ascii(text).map_err(|e| format!("\"{text}\" is not a domain name: {e}"))?;
    parsed.set_fqdn(true);
    Ok(parsed.to_lowercase())
}

/// `value` in whole seconds, when within `min..=max`.
fn seconds(
    value: Duration,
    min: Duration,
    max: Duration,
    range: &str,
    path: &str,
    report: &mut dyn FnMut(&str, String),
) -> Option<u32> {
    if value < min || value > max {
        report(path, format!("{value:?} is out of range; use {range}"));
        return None;
    }
    u32::try_from(value.as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DnsSettings {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}\n{e}"))
    }

    #[test]
    fn a_zone_alone_gets_the_defaults() {
        let settings = parse("zone = \"CDN.example\"");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:5353");
        assert_eq!(settings.ttl, Duration::from_secs(30));
        let (zone, steering) = settings.compile().unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(zone.origin().to_string(), "cdn.example.");
        assert_eq!(zone.soa().ttl, 30);
        assert_eq!(zone.ns().len(), 1);
        let rdata = zone.soa().data.to_string();
        assert!(rdata.starts_with("ns1.cdn.example. hostmaster.cdn.example. "), "{rdata}");
        assert_eq!(steering, Steering::default());
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases = [
            ("zone = \".\"", "dns.zone", "root zone"),
            ("zone = \"a..b\"", "dns.zone", "not a domain name"),
            ("zone = \"cdn.example\"\nttl = \"0s\"", "dns.ttl", "use 1s to 1d"),
            ("zone = \"cdn.example\"\ntcp_timeout = \"1h\"", "dns.tcp_timeout", "use 100ms to 5m"),
            ("zone = \"cdn.example\"\n[soa]\nminimum = \"2d\"", "dns.soa.minimum", "use 0s to 1d"),
            ("zone = \"cdn.example\"\n[soa]\nretry = \"0s\"", "dns.soa.retry", "out of range"),
            ("zone = \"cdn.example\"\nns = [\"a..b\"]", "dns.ns[0]", "not a domain name"),
            ("zone = \"cdn.example\"\ndefault_pops = [\"fra\", \"fra\"]", "dns.default_pops[1]", "listed twice"),
            ("zone = \"cdn.example\"\ndefault_pops = [\"fr a\"]", "dns.default_pops[0]", "not a PoP name"),
            ("zone = \"cdn.example\"\n[regions.eu]\npops = []", "dns.regions.eu.pops", "empty"),
            ("zone = \"cdn.example\"\n[regions.\"e u\"]\npops = [\"fra\"]", "dns.regions.e u", "not a region name"),
            (
                "zone = \"cdn.example\"\n[regions.eu]\npops = [\"fra\"]\nsubnets = [\"10.0.0.1/8\"]",
                "dns.regions.eu.subnets[0]",
                "host bits set",
            ),
            (
                "zone = \"cdn.example\"\n[regions.eu]\npops = [\"fra\"]\nsubnets = [\"10.0.0.0/8\"]\n[regions.us]\npops = [\"iad\"]\nsubnets = [\"10.0.0.0/8\"]",
                "dns.regions.us.subnets[0]",
                "also dns.regions.eu.subnets[0]",
            ),
        ];
        for (text, path, fragment) in cases {
            let problems = parse(text).compile().err().unwrap_or_else(|| panic!("{text}: accepted"));
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].0, path, "{text}");
            assert!(problems[0].1.contains(fragment), "{text}: {}", problems[0].1);
        }
    }

    #[test]
    fn regions_compile_into_the_steering_map() {
        let settings = parse(
            "zone = \"cdn.example.\"\ndefault_pops = [\"b\"]\n[regions.ra]\nsubnets = [\"127.0.1.0/24\"]\npops = [\"a\", \"b\"]\n[regions.rb]\nsubnets = [\"127.0.2.0/24\", \"::1\"]\npops = [\"b\", \"a\"]",
        );
        let (_, steering) = settings.compile().unwrap_or_else(|e| panic!("{e:?}"));
        let place = |ip: &str| steering.place(ip.parse().unwrap_or_else(|e| panic!("{e}"))).region.map(str::to_owned);
        assert_eq!(place("127.0.1.5").as_deref(), Some("ra"));
        assert_eq!(place("127.0.2.5").as_deref(), Some("rb"));
        assert_eq!(place("::1").as_deref(), Some("rb"));
        assert_eq!(place("127.0.0.1"), None);
        assert_eq!(steering.pops(), vec!["a", "b"]);
    }
}
