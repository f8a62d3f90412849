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
//! `{"seq": 9, ..., "type": "purge", "purge": {...}}`.

use std::fmt;

use serde::{Deserialize, Serialize};

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
}

impl Change {
    /// The service the change is about.
    pub fn service(&self) -> &ServiceId {
        match self {
            Change::ServicePut { service } => &service.id,
            Change::ServiceDeleted { id, .. } => id,
            Change::Purge { purge } => &purge.service,
        }
    }
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
                },
            },
        };
        let json = serde_json::to_value(&event).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["type"], "service_put");
        assert_eq!(json["service"]["version"], 7);
        assert_eq!(json["service"]["config"]["hosts"][0], "shop.example");
        let back: Event = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.change.service().as_str(), "shop");
    }
}
