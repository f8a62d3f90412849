//! The control plane's records and the event log that nodes follow: written by the control
//! plane, applied by the nodes' agents, so both sides share these types.
//!
//! Every change to what nodes serve is an [`Event`] with the next sequence number ([`Seq`]):
//! a service config put or deleted, a purge. Sequence numbers start at 1, have no gaps and
//! never go back, across restarts of the control plane: a node that has applied every event up
//! to `n` resumes from `n + 1`. A service's `version` is the sequence number of the event that
//! wrote it, so versions only grow, even across a delete and a re-create.
//!
//! JSON: `{"seq": 7, "at": "2026-11-23T14:53:20.123Z", "type": "service_put", "service": {...}}`,
//! `{"seq": 8, ..., "type": "service_deleted", "id": "shop", "tenant": "acme"}`,
//! `{"seq": 9, ..., "type": "purge", "purge": {...}}`,
//! `{"seq": 10, ..., "type": "certificate_put", "certificate": {...}}` ([`CertificateRecord`]),
//! `{"seq": 11, ..., "type": "certificate_deleted", "service": "shop", "tenant": "acme", "name": "www"}`,
//! `{"seq": 12, ..., "type": "acme_challenge_put", "challenge": {...}}`,
//! `{"seq": 13, ..., "type": "acme_challenge_deleted", "token": "...", "service": "shop"}`.
//! A snapshot carries `"certificates": [...]` and `"acme_challenges": [...]` beside
//! `"services"` (each absent when there are none, so older snapshots read as none).
//!
//! Compatibility: a node reads an event of a type it does not know as [`Change::Other`] and
//! applies it as nothing (its number still counts), so a control plane may add event types
//! without breaking nodes built from then on. Fields added later to a snapshot default to
//! empty, so a node reads an older control plane's snapshot; older nodes ignore fields they
//! do not know.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::acme::AcmeChallenge;
pub use crate::certificate::{CertificateKey, CertificateRecord, CertificateSource};
use crate::node::NodeRole;
use crate::purge::PurgeTarget;
use crate::service::is_service_name;
use crate::timestamp::Timestamp;

/// A position in the event log. The first event is 1; 0 means "nothing yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The position after this one.
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `name`: 1 to 64 of `a-z 0-9 _ -`.
            pub fn parse(name: &str) -> Result<Self, String> {
                if is_service_name(name) {
                    Ok($name(name.to_owned()))
                } else {
                    Err(format!(concat!("\"{}\" is not a valid ", $what, "; use 1 to 64 of a-z 0-9 _ -"), name))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(name: String) -> Result<Self, String> {
                Self::parse(&name)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A service's identity: its `name` in the service config, unique across the CDN (nodes
    /// route, log and purge by it), like a host name.
    ServiceId,
    "service id"
);

name_type!(
    /// A tenant: the owner of services, named by the tokens that act for it.
    TenantId,
    "tenant name"
);

name_type!(
    /// A certificate's name within its service (`PUT /v1/services/{id}/certificates/{name}`),
    /// chosen by the tenant (or `acme` for ACME's): one certificate per (service, name).
    CertificateName,
    "certificate name"
);

/// A purge's identity, chosen by the control plane (random, so not guessable).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PurgeId(pub String);

impl fmt::Display for PurgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A service as the control plane stores it and sends it to nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub id: ServiceId,
    pub tenant: TenantId,
    /// The sequence number of the event that wrote this version.
    pub version: Seq,
    pub updated_at: Timestamp,
    /// The service config as JSON, with the fields of a `[[services]]` table, validated with
    /// [`validate_service`](crate::validate_service) before it was stored. Kept as the tenant
    /// wrote it (a node deserializes it into a [`ServiceConfig`](crate::ServiceConfig)).
    pub config: serde_json::Value,
    /// The edge function this version runs, if any: activating or rolling back a function
    /// writes a new version of the record, so a node applies config and function together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionRef>,
    /// The host patterns of `config.hosts` whose domain control is proven (verified by DNS,
    /// HTTP or the operator, as `HostPattern`'s `Display` writes them): a node serves only
    /// these, and a host left out gets what an unknown host gets. The control plane writes a
    /// new version of the record (a `service_put` event) whenever this set changes, so nodes
    /// learn of a verification or a lapse through the log and snapshots like any other change.
    ///
    /// Absent (`None`) in records written before domain verification existed: a node then
    /// serves every host of the config, as it did (old snapshots and saved node state keep
    /// their meaning). Nodes that predate the field ignore it and serve every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_hosts: Option<Vec<String>>,
}

impl ServiceRecord {
    /// Whether a node serves the host pattern `pattern` (written as `HostPattern`'s `Display`
    /// writes it) of this record's config: listed in `verified_hosts`, or any pattern when the
    /// record has no such list.
    pub fn serves(&self, pattern: &str) -> bool {
        self.verified_hosts.as_ref().is_none_or(|verified| verified.iter().any(|v| v == pattern))
    }
}

/// An uploaded function version a service runs: nodes fetch its bytes by `sha256` from
/// `GET /v1/functions/{sha256}` and check them against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRef {
    /// The version number within the service: 1, 2, ... in upload order.
    pub version: u32,
    /// The SHA-256 of the `.wasm`, 64 lower-case hex digits.
    pub sha256: String,
    /// The size of the `.wasm` in bytes.
    pub size: u64,
}

impl FunctionRef {
    /// Whether `hash` is 64 lower-case hex digits: the only form a node puts in a file name.
    pub fn is_sha256(hash: &str) -> bool {
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// `"<version>:<first 12 hex digits>"`, as nodes report what they run.
    pub fn label(&self) -> String {
        format!("{}:{}", self.version, self.sha256.get(..12).unwrap_or(&self.sha256))
    }
}

/// A purge as the control plane stores it and sends it to nodes: every target in it is
/// applied to the one service it names, hard or soft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRecord {
    pub id: PurgeId,
    pub service: ServiceId,
    pub tenant: TenantId,
    /// The sequence number of the purge's event: a node that has applied it has purged.
    pub seq: Seq,
    pub created_at: Timestamp,
    /// Mark stale rather than remove.
    pub soft: bool,
    /// What to purge; never empty.
    pub targets: Vec<PurgeTarget>,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: Seq,
    pub at: Timestamp,
    #[serde(flatten)]
    pub change: Change,
}

/// What an event changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// A service was created or replaced: nodes compile and swap it in.
    ServicePut { service: ServiceRecord },
    /// A service was deleted: nodes stop serving it.
    ServiceDeleted { id: ServiceId, tenant: TenantId },
    /// Purge the service's objects.
    Purge { purge: PurgeRecord },
    /// An ACME challenge answer every edge serves from now until it expires or is deleted
    /// (see [`AcmeChallenge`]). A challenge with the same token replaces it.
    AcmeChallengePut { challenge: AcmeChallenge },
    /// The order a challenge answered ended (valid, invalid, given up): edges stop answering it.
    AcmeChallengeDeleted { token: String, service: ServiceId },
    /// An event type this build does not know (a newer control plane's): applied as nothing.
    /// A certificate was uploaded or renewed (its chain and names; never its private key, which
    /// a node fetches over its authenticated connection): nodes fetch the key and swap it in.
    CertificatePut { certificate: CertificateRecord },
    /// A certificate was deleted: nodes stop serving it. Deleting a service deletes its
    /// certificates without an event of their own (the `service_deleted` event says it).
    CertificateDeleted { service: ServiceId, tenant: TenantId, name: CertificateName },
    /// An event type this build does not know (a newer control plane's): applied as nothing.
    #[serde(other)]
    Other,
}

impl Change {
    /// The service the change is about; `None` for [`Change::Other`].
    pub fn service(&self) -> Option<&ServiceId> {
        match self {
            Change::ServicePut { service } => Some(&service.id),
            Change::ServiceDeleted { id, .. } => Some(id),
            Change::Purge { purge } => Some(&purge.service),
            Change::AcmeChallengePut { challenge } => Some(&challenge.service),
            Change::AcmeChallengeDeleted { service, .. } => Some(service),
            Change::CertificatePut { certificate } => Some(&certificate.service),
            Change::CertificateDeleted { service, .. } => Some(service),
            Change::Other => None,
        }
    }
}

/// A node's identity: its `node.name`, 1 to 64 of `A-Z a-z 0-9 . _ -`. Nodes register under it
/// (`PUT /v1/nodes/{id}`), and purge progress reports by it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// Checks `name` against the `node.name` rule: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub fn parse(name: &str) -> Result<Self, String> {
        if is_node_label(name) {
            Ok(NodeId(name.to_owned()))
        } else {
            Err(format!("\"{name}\" is not a valid node id; use 1 to 64 of A-Z a-z 0-9 . _ -"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Self::parse(&name)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rule for node ids, PoP and region names: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn is_node_label(name: &str) -> bool {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !name.is_empty() && name.len() <= 64 && name.chars().all(valid)
}

/// The body of `PUT /v1/nodes/{id}`: who a node is and where it listens. A node sends it each
/// time it (re)connects; the control plane replaces what it held.
///
/// JSON: `{"pop": "fra", "region": "eu-central", "role": "edge",
/// "addresses": {"http": "127.0.0.1:8080", "admin": "127.0.0.1:9901"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRegistration {
    /// The node's PoP (`[node] pop`); `null` or absent when it has none. 1 to 64 of
    /// `A-Z a-z 0-9 . _ -` (see [`NodeRegistration::check`]).
    #[serde(default)]
    pub pop: Option<String>,
    /// The PoP's region (`[node] region`); `null` or absent when it has none. Same rule as `pop`.
    #[serde(default)]
    pub region: Option<String>,
    /// `"edge"` or `"shield"`.
    pub role: NodeRole,
    pub addresses: NodeAddresses,
}

impl NodeRegistration {
    /// Checks the names in it; the error names the field (`pop`, `region`).
    pub fn check(&self) -> Result<(), String> {
        for (field, value) in [("pop", &self.pop), ("region", &self.region)] {
            if let Some(value) = value
                && !is_node_label(value)
            {
                return Err(format!("{field}: \"{value}\" is not valid; use 1 to 64 of A-Z a-z 0-9 . _ -"));
            }
        }
        Ok(())
    }
}

/// Where a node listens: its client listeners (either may be absent) and its admin API (the
/// control plane health-checks `/healthz` there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddresses {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
}

/// A registered node as the control plane stores it: the registration plus its id and when it
/// (last) registered. `PUT /v1/nodes/{id}` answers `{"node": NodeRecord, "head": Seq}`
/// ([`Registered`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    #[serde(flatten)]
    pub registration: NodeRegistration,
    pub registered_at: Timestamp,
}

/// The answer to `PUT /v1/nodes/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    pub node: NodeRecord,
    /// The latest sequence number in the event log (0 when it is empty).
    pub head: Seq,
    /// The event log's identity (16 hex digits), made when the control plane's store was
    /// created and never changed. Sequence numbers mean something only within one log: a node
    /// that followed another (the store was lost and made anew) starts over from a snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// One line of `GET /v1/nodes/{id}/stream?after=N` (NDJSON): `{"snapshot": {...}}`,
/// `{"event": {...}}` or `{"heartbeat": {"head": H}}`.
///
/// Order: a [`Snapshot`] first when the node must start over (N = 0, N compacted away, or
/// N beyond the head); otherwise the events after N. Then every new event as it is appended,
/// in order and without gaps, with heartbeats between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamMessage {
    Snapshot(Snapshot),
    Event(Event),
    /// Sent every `heartbeat_interval` (control-plane setting, default 5 s). A node that hears
    /// nothing for 3 intervals drops the stream and reconnects.
    Heartbeat {
        head: Seq,
    },
}

/// The whole current state, replacing whatever the node held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The state is that after applying every event up to `seq`; the stream continues after it.
    pub seq: Seq,
    /// Every service, in id order.
    pub services: Vec<ServiceRecord>,
    /// True when the node asked to resume (N > 0) but could not: it cannot know which purges it
    /// missed, so it soft-purges every service it serves from the control plane.
    pub resync: bool,
    /// The ACME challenge answers published as of `seq`, in token order (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acme_challenges: Vec<AcmeChallenge>,
    /// Every certificate (chain and names, no private key), in (service, name) order. Absent
    /// from control planes that had none (and from older ones): `[]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateRecord>,
}

/// The body of `POST /v1/nodes/{id}/ack`: the node has applied and persisted every event up to
/// `seq`. Acks never go back: a lower `seq` than the last is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub seq: Seq,
    /// The edge functions the node runs as of `seq`: service id → `"<version>:<sha256 first
    /// 12>"` ([`FunctionRef::label`]). Absent from nodes that do not report them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<std::collections::BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> ServiceId {
        ServiceId::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn names_follow_the_service_name_rule() {
        assert!(ServiceId::parse("shop-2_b").is_ok());
        for bad in ["", "Shop", "shop.example", "a b", &"a".repeat(65)] {
            let error = ServiceId::parse(bad).err().unwrap_or_default();
            assert!(error.contains("is not a valid service id; use 1 to 64 of a-z 0-9 _ -"), "{bad:?}: {error}");
        }
        let error = serde_json::from_str::<TenantId>("\"ACME\"").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("\"ACME\" is not a valid tenant name"), "{error}");
    }

    #[test]
    fn events_have_a_flat_json_form() {
        let at = Timestamp(1_795_445_600_123);
        let cases = [
            (
                Event { seq: Seq(8), at, change: Change::ServiceDeleted { id: id("shop"), tenant: tenant() } },
                r#"{"seq":8,"at":"2026-11-23T14:53:20.123Z","type":"service_deleted","id":"shop","tenant":"acme"}"#,
            ),
            (
                Event {
                    seq: Seq(9),
                    at,
                    change: Change::Purge {
                        purge: PurgeRecord {
                            id: PurgeId("p1".to_owned()),
                            service: id("shop"),
                            tenant: tenant(),
                            seq: Seq(9),
                            created_at: at,
                            soft: true,
                            targets: vec![PurgeTarget::Tag { tag: "t".to_owned() }, PurgeTarget::All],
                        },
                    },
                },
                concat!(
                    r#"{"seq":9,"at":"2026-11-23T14:53:20.123Z","type":"purge","purge":{"id":"p1","#,
                    r#""service":"shop","tenant":"acme","seq":9,"created_at":"2026-11-23T14:53:20.123Z","#,
                    r#""soft":true,"targets":[{"kind":"tag","tag":"t"},{"kind":"all"}]}}"#
                ),
            ),
        ];
        for (event, json) in cases {
            assert_eq!(serde_json::to_string(&event).ok().as_deref(), Some(json));
            let back: Event = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back, event);
        }
    }

    #[test]
    fn a_put_event_carries_the_whole_service() {
        let event = Event {
            seq: Seq(7),
            at: Timestamp(0),
            change: Change::ServicePut {
                service: ServiceRecord {
                    id: id("shop"),
                    tenant: tenant(),
                    version: Seq(7),
                    updated_at: Timestamp(0),
                    config: serde_json::json!({"name": "shop", "hosts": ["shop.example"], "origin": "http://o"}),
                    function: None,
                    verified_hosts: Some(vec!["shop.example".to_owned()]),
                },
            },
        };
        let json = serde_json::to_value(&event).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["type"], "service_put");
        assert_eq!(json["service"]["version"], 7);
        assert_eq!(json["service"]["config"]["hosts"][0], "shop.example");
        assert_eq!(json["service"]["verified_hosts"][0], "shop.example");
        let back: Event = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.change.service().map(ServiceId::as_str), Some("shop"));
        let Change::ServicePut { service } = back.change else { panic!("not a put") };
        assert!(service.serves("shop.example"));
        assert!(!service.serves("www.shop.example"), "a host not verified is not served");
    }

    #[test]
    fn a_record_from_before_verification_serves_every_host() {
        // What an old control plane wrote, and what old snapshots and node state files hold.
        let old = r#"{"id":"shop","tenant":"acme","version":3,"updated_at":"1970-01-01T00:00:00.000Z",
            "config":{"name":"shop","hosts":["shop.example","*.shop.example"],"origin":"http://o"}}"#;
        let record: ServiceRecord = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(record.verified_hosts, None);
        assert!(record.serves("shop.example") && record.serves("*.shop.example"));
        let written = serde_json::to_value(&record).unwrap_or_else(|e| panic!("{e}"));
        assert!(written.get("verified_hosts").is_none(), "absent stays absent: {written}");
        let none_verified = ServiceRecord { verified_hosts: Some(Vec::new()), ..record };
        assert!(!none_verified.serves("shop.example"));
    }

    #[test]
    fn challenge_events_have_a_flat_json_form_and_unknown_types_read_as_other() {
        let challenge = AcmeChallenge {
            token: "tok".to_owned(),
            host: "www.example.test".to_owned(),
            kind: crate::acme::ChallengeKind::TlsAlpn01,
            key_authorization: "tok.thumb".to_owned(),
            service: id("shop"),
            expires_at: Timestamp(0),
        };
        let cases = [
            (
                Change::AcmeChallengePut { challenge },
                concat!(
                    r#"{"seq":1,"at":"1970-01-01T00:00:00.000Z","type":"acme_challenge_put","challenge":{"token":"tok","#,
                    r#""host":"www.example.test","kind":"tls-alpn-01","key_authorization":"tok.thumb","service":"shop","#,
                    r#""expires_at":"1970-01-01T00:00:00.000Z"}}"#
                ),
            ),
            (
                Change::AcmeChallengeDeleted { token: "tok".to_owned(), service: id("shop") },
                r#"{"seq":1,"at":"1970-01-01T00:00:00.000Z","type":"acme_challenge_deleted","token":"tok","service":"shop"}"#,
            ),
        ];
        for (change, json) in cases {
            let event = Event { seq: Seq(1), at: Timestamp(0), change };
            assert_eq!(serde_json::to_string(&event).ok().as_deref(), Some(json));
            let back: Event = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back, event);
        }
        // A newer control plane's event: its number counts, its content is skipped.
        let newer = r#"{"seq":2,"at":"1970-01-01T00:00:00.000Z","type":"route_rules_put","rules":{"name":"x"}}"#;
        let event: Event = serde_json::from_str(newer).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((event.seq, event.change), (Seq(2), Change::Other));
        // An older control plane's snapshot has no challenges.
        let old = r#"{"snapshot":{"seq":3,"services":[],"resync":false}}"#;
        let StreamMessage::Snapshot(snapshot) = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}")) else {
            panic!("not a snapshot")
        };
        assert!(snapshot.acme_challenges.is_empty());
    }

    #[test]
    fn node_ids_follow_the_node_name_rule() {
        for good in ["edge-1", "FRA.edge_2", &"a".repeat(64)] {
            assert!(NodeId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "edge 1", "edge/1", &"a".repeat(65)] {
            let error = NodeId::parse(bad).err().unwrap_or_default();
            assert!(error.contains("is not a valid node id; use 1 to 64 of A-Z a-z 0-9 . _ -"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_registration_reads_the_documented_json() {
        let json = r#"{"pop": "fra", "region": "eu-central", "role": "shield",
            "addresses": {"http": "127.0.0.1:8080", "admin": "127.0.0.1:9901"}}"#;
        let registration: NodeRegistration = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(registration.pop.as_deref(), Some("fra"));
        assert_eq!(registration.role, NodeRole::Shield);
        assert_eq!(registration.addresses.https, None);
        assert_eq!(registration.addresses.admin.to_string(), "127.0.0.1:9901");
        assert_eq!(registration.check(), Ok(()));
        let record = NodeRecord {
            id: NodeId::parse("edge-1").unwrap_or_else(|e| panic!("{e}")),
            registration,
            registered_at: Timestamp(0),
        };
        assert_eq!(
            serde_json::to_string(&record).ok().as_deref(),
            Some(concat!(
                r#"{"id":"edge-1","pop":"fra","region":"eu-central","role":"shield","#,
                r#""addresses":{"http":"127.0.0.1:8080","admin":"127.0.0.1:9901"},"#,
                r#""registered_at":"1970-01-01T00:00:00.000Z"}"#
            ))
        );
        let back: NodeRecord = serde_json::to_string(&record)
            .and_then(|json| serde_json::from_str(&json))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, record);
    }

    #[test]
    fn bad_registrations_are_refused_with_the_field_named() {
        let cases = [
            (r#"{"role": "edge", "addresses": {"admin": "127.0.0.1:1"}, "colour": 1}"#, "unknown field `colour`"),
            (r#"{"role": "origin", "addresses": {"admin": "127.0.0.1:1"}}"#, "unknown variant `origin`"),
            (r#"{"role": "edge", "addresses": {}}"#, "missing field `admin`"),
            (r#"{"role": "edge", "addresses": {"admin": "localhost"}}"#, "invalid socket address"),
        ];
        for (json, expected) in cases {
            let error = serde_json::from_str::<NodeRegistration>(json).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(expected), "{json}: {error}");
        }
        let registration: NodeRegistration =
            serde_json::from_str(r#"{"pop": "f r a", "role": "edge", "addresses": {"admin": "127.0.0.1:1"}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            registration.check(),
            Err("pop: \"f r a\" is not valid; use 1 to 64 of A-Z a-z 0-9 . _ -".to_owned())
        );
    }

    #[test]
    fn stream_messages_are_one_keyed_object_each() {
        let at = Timestamp(0);
        let cases = [
            (StreamMessage::Heartbeat { head: Seq(5) }, r#"{"heartbeat":{"head":5}}"#.to_owned()),
            (
                StreamMessage::Snapshot(Snapshot {
                    seq: Seq(3),
                    services: vec![],
                    resync: true,
                    acme_challenges: vec![],
                    certificates: vec![],
                }),
                r#"{"snapshot":{"seq":3,"services":[],"resync":true}}"#.to_owned(),
            ),
            (
                StreamMessage::Event(Event {
                    seq: Seq(4),
                    at,
                    change: Change::ServiceDeleted { id: id("shop"), tenant: tenant() },
                }),
                concat!(
                    r#"{"event":{"seq":4,"at":"1970-01-01T00:00:00.000Z","#,
                    r#""type":"service_deleted","id":"shop","tenant":"acme"}}"#
                )
                .to_owned(),
            ),
        ];
        for (message, json) in cases {
            assert_eq!(serde_json::to_string(&message).ok().as_deref(), Some(json.as_str()));
            let back: StreamMessage = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back, message);
        }
    }

    #[test]
    fn an_ack_is_a_seq_and_maybe_the_functions_run() {
        assert_eq!(serde_json::from_str::<Ack>(r#"{"seq": 12}"#).ok(), Some(Ack { seq: Seq(12), functions: None }));
        let running = r#"{"seq":3,"functions":{"shop":"2:0123456789ab"}}"#;
        let ack = serde_json::from_str::<Ack>(running).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ack.functions.as_ref().and_then(|f| f.get("shop")).map(String::as_str), Some("2:0123456789ab"));
        assert_eq!(serde_json::to_string(&ack).ok().as_deref(), Some(running));
        assert!(serde_json::from_str::<Ack>(r#"{"seq": -1}"#).is_err());
        assert!(serde_json::from_str::<Ack>(r#"{}"#).is_err());
    }
}
