//! The follower's pure core: the control plane's services as of the last applied sequence
//! number, and what each stream message changes. No I/O here: [`Follower::apply`] updates the
//! state and lists the effects (recompile the services, record purges) that the agent then
//! carries out, persists and acknowledges.
//!
//! Rules, beyond the message types' own docs:
//! - Events apply in order, exactly once: one at or below the applied number is a duplicate
//!   (ignored); one beyond the next number is a gap, and the stream is dropped so the next
//!   connection resumes (or takes a snapshot).
//! - A snapshot replaces the services whole. With `resync`, every service in it is soft-purged:
//!   the node cannot know which purges it missed, and soft purges only mark objects stale, so
//!   revalidation (a 304 from the origin) keeps the cost low. A snapshot taken with nothing
//!   applied before counts as a resync too: the node may have a disk cache from before (its
//!   state file lost or set aside while the cache survived), and purges made since were never
//!   seen by it. On a new node it costs a purge record per service and nothing else.
//! - A deleted service is hard-purged on the node: service ids are global and can be taken
//!   again, maybe by another tenant, so objects of the old service must never serve the new
//!   one. A service that a snapshot no longer lists was deleted while the node was away: the
//!   same applies.
//! - ACME challenge answers are kept by token, at most [`MAX_CHALLENGES`]; one that fails its
//!   check (`AcmeChallenge::check`) or comes beyond the bound is not kept (the CA's
//!   validation through this node then fails, and the control plane's order says so). A
//!   snapshot replaces them whole. An event type this build does not know is applied as
//!   nothing: its number counts.
//! - Certificates (chain and names; the key is fetched by the agent) are kept per (service,
//!   name); a deleted service takes its certificates with it. Any change to them, or to the
//!   services (whose hosts decide what a certificate is served for), asks for the node's
//!   certificates to be rebuilt.

use std::collections::BTreeMap;

use outpost_config::{
    AcmeChallenge, CertificateName, CertificateRecord, Change, Event, PurgeTarget, Seq, ServiceId, ServiceRecord,
    Snapshot, StreamMessage,
};

/// Most ACME challenge answers a node keeps: four per order (HTTP-01 and TLS-ALPN-01 for a
/// host and its `www`) for a thousand orders in flight at once. Bounds the node's memory
/// whatever the control plane sends.
pub const MAX_CHALLENGES: usize = 4096;

/// A certificate's identity: its service and name.
pub type CertificateKeyId = (ServiceId, CertificateName);

/// What the node follows: the last applied sequence number and the control plane's services as
/// of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Follower {
    /// The log followed (`Registered::log`); `None` before the first registration, or in a
    /// state saved before logs had one.
    log: Option<String>,
    seq: Seq,
    services: BTreeMap<ServiceId, ServiceRecord>,
    /// ACME challenge answers by token.
    challenges: BTreeMap<String, AcmeChallenge>,
    certificates: BTreeMap<CertificateKeyId, CertificateRecord>,
}

/// What applying messages asks of the node besides the follower's own state.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// The control plane's service set changed: recompile and swap the routing table.
    pub services_changed: bool,
    /// The certificates, or the hosts they may be served for, changed: rebuild the node's
    /// certificate set.
    pub certificates_changed: bool,
    /// Purges to record, in the order they were made.
    pub purges: Vec<Purge>,
    /// The ACME challenge answers changed: rebuild the set the listeners answer from.
    pub challenges_changed: bool,
    /// Challenges not kept (token, why), for the log.
    pub refused_challenges: Vec<(String, String)>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        !self.services_changed && !self.certificates_changed && self.purges.is_empty() && !self.challenges_changed
    }
}

/// One purge target to record for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub service: ServiceId,
    pub target: PurgeTarget,
    pub soft: bool,
    pub cause: Cause,
}

/// Why the node purges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A purge event (its id, for the log).
    Requested(String),
    /// The service was deleted.
    Deleted,
    /// A snapshot with `resync`: purges may have been missed.
    Resync,
}

/// What one message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Snapshot {
        seq: Seq,
        resync: bool,
    },
    Event(Seq),
    /// An event at or below the applied number: ignored.
    Duplicate(Seq),
    Heartbeat {
        head: Seq,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("expected event {expected} after {applied}, got {got}: the stream skipped events")]
    Gap { applied: Seq, expected: Seq, got: Seq },
}

impl Follower {
    /// The state as saved: the log, `seq` and the service records as of it.
    pub fn restore(
        log: Option<String>,
        seq: Seq,
        services: Vec<ServiceRecord>,
        certificates: Vec<CertificateRecord>,
    ) -> Self {
        Self {
            log,
            seq,
            services: services.into_iter().map(|r| (r.id.clone(), r)).collect(),
            certificates: certificates.into_iter().map(|c| ((c.service.clone(), c.name.clone()), c)).collect(),
            challenges: BTreeMap::new(),
        }
    }

    /// The ACME challenges as saved beside the state (checked again, as if received).
    pub fn with_challenges(mut self, challenges: Vec<AcmeChallenge>) -> Self {
        let mut ignored = Effects::default();
        for c in challenges {
            self.put_challenge(c, &mut ignored);
        }
        self
    }

    /// The ACME challenge answers, in token order.
    pub fn challenges(&self) -> impl Iterator<Item = &AcmeChallenge> {
        self.challenges.values()
    }

    fn put_challenge(&mut self, challenge: AcmeChallenge, effects: &mut Effects) {
        if let Err(e) = challenge.check() {
            effects.refused_challenges.push((challenge.token, e));
            return;
        }
        if self.challenges.len() >= MAX_CHALLENGES && !self.challenges.contains_key(&challenge.token) {
            effects.refused_challenges.push((challenge.token, format!("more than {MAX_CHALLENGES} challenges")));
            return;
        }
        if self.challenges.get(&challenge.token) != Some(&challenge) {
            effects.challenges_changed = true;
            self.challenges.insert(challenge.token.clone(), challenge);
        }
    }

    /// The control plane's certificates, in (service, name) order.
    pub fn certificates(&self) -> impl Iterator<Item = &CertificateRecord> {
        self.certificates.values()
    }

    /// One service's record.
    pub fn service(&self, id: &ServiceId) -> Option<&ServiceRecord> {
        self.services.get(id)
    }

    /// The log followed.
    pub fn log(&self) -> Option<&str> {
        self.log.as_deref()
    }

    /// Follows `log` from now on. When it is not the log followed so far, the numbers applied
    /// mean nothing in it: the follower starts over (number 0, services kept until the
    /// snapshot replaces them, which then counts as a resync) and this returns true.
    pub fn follow_log(&mut self, log: &str) -> bool {
        let other = self.log.as_deref().is_some_and(|followed| followed != log);
        if other {
            self.seq = Seq(0);
        }
        self.log = Some(log.to_owned());
        other
    }

    /// The last applied sequence number (0: nothing yet).
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The control plane's services, in id order.
    pub fn records(&self) -> impl Iterator<Item = &ServiceRecord> {
        self.services.values()
    }

    /// Applies one message, adding what it asks of the node to `effects`.
    pub fn apply(&mut self, message: StreamMessage, effects: &mut Effects) -> Result<Applied, ProtocolError> {
        match message {
            StreamMessage::Snapshot(snapshot) => Ok(self.apply_snapshot(snapshot, effects)),
            StreamMessage::Event(event) => self.apply_event(event, effects),
            StreamMessage::Heartbeat { head } => Ok(Applied::Heartbeat { head }),
        }
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot, effects: &mut Effects) -> Applied {
        let services: BTreeMap<ServiceId, ServiceRecord> =
            snapshot.services.into_iter().map(|r| (r.id.clone(), r)).collect();
        for gone in self.services.keys().filter(|id| !services.contains_key(*id)) {
            effects.purges.push(Purge {
                service: gone.clone(),
                target: PurgeTarget::All,
                soft: false,
                cause: Cause::Deleted,
            });
        }
        let resync = snapshot.resync || self.seq == Seq(0);
        if resync {
            for id in services.keys() {
                effects.purges.push(Purge {
                    service: id.clone(),
                    target: PurgeTarget::All,
                    soft: true,
                    cause: Cause::Resync,
                });
            }
        }
        effects.services_changed |= services != self.services;
        let certificates: BTreeMap<CertificateKeyId, CertificateRecord> =
            snapshot.certificates.into_iter().map(|c| ((c.service.clone(), c.name.clone()), c)).collect();
        effects.certificates_changed |= effects.services_changed || certificates != self.certificates;
        self.services = services;
        // Rebuilt from nothing: changed only if the result differs from what was held.
        let before = std::mem::take(&mut self.challenges);
        let mut rebuilt = Effects::default();
        for c in snapshot.acme_challenges {
            self.put_challenge(c, &mut rebuilt);
        }
        effects.refused_challenges.append(&mut rebuilt.refused_challenges);
        effects.challenges_changed |= before != self.challenges;
        self.certificates = certificates;
        self.seq = snapshot.seq;
        Applied::Snapshot { seq: snapshot.seq, resync }
    }

    fn apply_event(&mut self, event: Event, effects: &mut Effects) -> Result<Applied, ProtocolError> {
        if event.seq <= self.seq {
            return Ok(Applied::Duplicate(event.seq));
        }
        let expected = self.seq.next();
        if event.seq != expected {
            return Err(ProtocolError::Gap { applied: self.seq, expected, got: event.seq });
        }
        match event.change {
            Change::ServicePut { service } => {
                if self.services.get(&service.id) != Some(&service) {
                    effects.services_changed = true;
                    effects.certificates_changed = true;
                    self.services.insert(service.id.clone(), service);
                }
            }
            Change::ServiceDeleted { id, .. } => {
                self.certificates.retain(|(service, _), _| *service != id);
                if self.services.remove(&id).is_some() {
                    effects.services_changed = true;
                    effects.certificates_changed = true;
                    effects.purges.push(Purge {
                        service: id,
                        target: PurgeTarget::All,
                        soft: false,
                        cause: Cause::Deleted,
                    });
                }
            }
            Change::Purge { purge } => {
                for target in purge.targets {
                    effects.purges.push(Purge {
                        service: purge.service.clone(),
                        target,
                        soft: purge.soft,
                        cause: Cause::Requested(purge.id.0.clone()),
                    });
                }
            }
            Change::AcmeChallengePut { challenge } => self.put_challenge(challenge, effects),
            Change::AcmeChallengeDeleted { token, .. } => {
                effects.challenges_changed |= self.challenges.remove(&token).is_some();
            }
            Change::Other => {}
            Change::CertificatePut { certificate } => {
                let key = (certificate.service.clone(), certificate.name.clone());
                effects.certificates_changed = true;
                self.certificates.insert(key, certificate);
            }
            Change::CertificateDeleted { service, name, .. } => {
                effects.certificates_changed |= self.certificates.remove(&(service, name)).is_some();
            }
        }
        self.seq = event.seq;
        Ok(Applied::Event(event.seq))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use outpost_config::{PurgeId, PurgeRecord, TenantId, Timestamp};

    use super::*;

    fn id(name: &str) -> ServiceId {
        ServiceId::parse(name).unwrap()
    }

    fn record(name: &str, version: u64) -> ServiceRecord {
        ServiceRecord {
            id: id(name),
            tenant: TenantId::parse("acme").unwrap(),
            version: Seq(version),
            updated_at: Timestamp(0),
            config: serde_json::json!({"name": name, "hosts": [format!("{name}.test")], "origin": "http://o"}),
            function: None,
            verified_hosts: None,
        }
    }

    fn event(seq: u64, change: Change) -> StreamMessage {
        StreamMessage::Event(Event { seq: Seq(seq), at: Timestamp(0), change })
    }

    fn put(seq: u64, name: &str) -> StreamMessage {
        event(seq, Change::ServicePut { service: record(name, seq) })
    }

    fn purge(seq: u64, name: &str, soft: bool, targets: Vec<PurgeTarget>) -> StreamMessage {
        let purge = PurgeRecord {
            id: PurgeId(format!("p{seq}")),
            service: id(name),
            tenant: TenantId::parse("acme").unwrap(),
            seq: Seq(seq),
            created_at: Timestamp(0),
            soft,
            targets,
        };
        event(seq, Change::Purge { purge })
    }

    fn snapshot(seq: u64, names: &[&str], resync: bool) -> StreamMessage {
        StreamMessage::Snapshot(Snapshot {
            acme_challenges: Vec::new(),
            seq: Seq(seq),
            services: names.iter().map(|n| record(n, 1)).collect(),
            resync,
            certificates: vec![],
        })
    }

    fn cert(service: &str, name: &str, version: u64) -> CertificateRecord {
        CertificateRecord {
            service: id(service),
            tenant: TenantId::parse("acme").unwrap(),
            name: CertificateName::parse(name).unwrap(),
            version: Seq(version),
            updated_at: Timestamp(0),
            chain_pem: String::new(),
            names: vec![format!("{service}.test")],
            issuer: "CA".into(),
            not_before: Timestamp(0),
            not_after: Timestamp(0),
            sha256: String::new(),
            source: outpost_config::CertificateSource::Upload,
        }
    }

    /// Each row: messages applied to an empty follower; the certificates held after, as
    /// `service/name@version`; whether the last run asked for a rebuild.
    #[test]
    fn certificates_follow_their_events_and_their_services() {
        let put_cert = |seq, service: &str, name: &str| {
            event(seq, Change::CertificatePut { certificate: cert(service, name, seq) })
        };
        let delete_cert = |seq, service: &str, name: &str| {
            event(
                seq,
                Change::CertificateDeleted {
                    service: id(service),
                    tenant: TenantId::parse("acme").unwrap(),
                    name: CertificateName::parse(name).unwrap(),
                },
            )
        };
        let delete_service =
            |seq| event(seq, Change::ServiceDeleted { id: id("shop"), tenant: TenantId::parse("acme").unwrap() });
        let with_certs = |seq: u64, certs: Vec<CertificateRecord>| {
            StreamMessage::Snapshot(Snapshot {
                seq: Seq(seq),
                services: vec![record("shop", 1)],
                resync: false,
                certificates: certs,
                acme_challenges: vec![],
            })
        };
        type Row = (&'static str, Vec<StreamMessage>, Vec<&'static str>, bool);
        let rows: Vec<Row> = vec![
            ("a put adds", vec![put(1, "shop"), put_cert(2, "shop", "www")], vec!["shop/www@2"], true),
            (
                "a put replaces",
                vec![put(1, "shop"), put_cert(2, "shop", "www"), put_cert(3, "shop", "www")],
                vec!["shop/www@3"],
                true,
            ),
            (
                "a delete removes",
                vec![put(1, "shop"), put_cert(2, "shop", "www"), delete_cert(3, "shop", "www")],
                vec![],
                true,
            ),
            ("deleting none changes nothing", vec![delete_cert(1, "shop", "www")], vec![], false),
            (
                "a deleted service takes its certificates",
                vec![
                    put(1, "shop"),
                    put(2, "blog"),
                    put_cert(3, "shop", "www"),
                    put_cert(4, "blog", "www"),
                    delete_service(5),
                ],
                vec!["blog/www@4"],
                true,
            ),
            (
                "a snapshot replaces them whole",
                vec![put_cert(1, "blog", "x"), with_certs(5, vec![cert("shop", "www", 4)])],
                vec!["shop/www@4"],
                true,
            ),
            ("a service change rebuilds (its hosts decide)", vec![put(1, "shop")], vec![], true),
        ];
        for (name, messages, held, rebuild) in rows {
            let mut follower = Follower::default();
            let mut effects = Effects::default();
            for message in messages {
                effects = Effects::default();
                follower.apply(message, &mut effects).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            let got: Vec<String> =
                follower.certificates().map(|c| format!("{}/{}@{}", c.service, c.name, c.version)).collect();
            assert_eq!(got, held, "{name}");
            assert_eq!(effects.certificates_changed, rebuild, "{name}");
        }
    }

    fn all(name: &str, soft: bool, cause: Cause) -> Purge {
        Purge { service: id(name), target: PurgeTarget::All, soft, cause }
    }

    /// Each row: the messages applied to an empty follower, then the applied number, the
    /// services held, whether they changed, and the purges asked for.
    #[test]
    fn messages_change_the_state_and_ask_for_effects() {
        let tag = PurgeTarget::Tag { tag: "t".into() };
        let url = PurgeTarget::Url { url: "shop.test/a".into() };
        let deleted =
            |seq| event(seq, Change::ServiceDeleted { id: id("shop"), tenant: TenantId::parse("acme").unwrap() });
        let requested = |seq: u64, target: &PurgeTarget, soft| Purge {
            service: id("shop"),
            target: target.clone(),
            soft,
            cause: Cause::Requested(format!("p{seq}")),
        };
        type Row = (&'static str, Vec<StreamMessage>, u64, Vec<&'static str>, bool, Vec<Purge>);
        let rows: Vec<Row> = vec![
            (
                "a first snapshot is a resync: the cache may predate the state",
                vec![snapshot(5, &["shop", "blog"], false)],
                5,
                vec!["blog", "shop"],
                true,
                vec![all("blog", true, Cause::Resync), all("shop", true, Cause::Resync)],
            ),
            (
                "a snapshot after applied events is not",
                vec![put(1, "shop"), snapshot(5, &["shop", "blog"], false)],
                5,
                vec!["blog", "shop"],
                true,
                vec![],
            ),
            (
                "a resync soft-purges every service",
                vec![snapshot(5, &["shop", "blog"], true)],
                5,
                vec!["blog", "shop"],
                true,
                vec![all("blog", true, Cause::Resync), all("shop", true, Cause::Resync)],
            ),
            ("events in order", vec![put(1, "shop"), put(2, "blog")], 2, vec!["blog", "shop"], true, vec![]),
            (
                "a purge with two targets",
                vec![put(1, "shop"), purge(2, "shop", true, vec![tag.clone(), url.clone()])],
                2,
                vec!["shop"],
                true,
                vec![requested(2, &tag, true), requested(2, &url, true)],
            ),
            (
                "a delete hard-purges the service",
                vec![put(1, "shop"), deleted(2)],
                2,
                vec![],
                true,
                vec![all("shop", false, Cause::Deleted)],
            ),
            ("a delete of an unknown service does nothing", vec![deleted(1)], 1, vec![], false, vec![]),
            ("a duplicate is ignored", vec![put(1, "shop"), put(1, "blog")], 1, vec!["shop"], true, vec![]),
            (
                "events the snapshot covers are ignored",
                vec![put(1, "shop"), snapshot(3, &["shop"], false), purge(3, "shop", false, vec![tag.clone()])],
                3,
                vec!["shop"],
                true,
                vec![],
            ),
            (
                "a snapshot without a service deleted it",
                vec![put(1, "shop"), put(2, "blog"), snapshot(9, &["blog"], false)],
                9,
                vec!["blog"],
                true,
                vec![all("shop", false, Cause::Deleted)],
            ),
            ("heartbeats change nothing", vec![StreamMessage::Heartbeat { head: Seq(7) }], 0, vec![], false, vec![]),
        ];
        for (name, messages, seq, services, changed, purges) in rows {
            let mut follower = Follower::default();
            let mut effects = Effects::default();
            for message in messages {
                follower.apply(message, &mut effects).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            assert_eq!(follower.seq(), Seq(seq), "{name}");
            let held: Vec<&str> = follower.records().map(|r| r.id.as_str()).collect();
            assert_eq!(held, services, "{name}");
            assert_eq!(effects.services_changed, changed, "{name}");
            assert_eq!(effects.purges, purges, "{name}");
        }
    }

    #[test]
    fn the_same_snapshot_again_changes_nothing() {
        let mut follower = Follower::default();
        follower.apply(snapshot(5, &["shop"], false), &mut Effects::default()).unwrap();
        let mut effects = Effects::default();
        assert_eq!(
            follower.apply(snapshot(6, &["shop"], false), &mut effects),
            Ok(Applied::Snapshot { seq: Seq(6), resync: false })
        );
        assert!(effects.is_empty());
        assert_eq!(follower.seq(), Seq(6));
    }

    #[test]
    fn a_gap_is_refused_and_leaves_the_state_alone() {
        let mut follower = Follower::restore(None, Seq(4), vec![record("shop", 2)], vec![]);
        let before = follower.clone();
        let mut effects = Effects::default();
        let error = follower.apply(put(6, "blog"), &mut effects).err();
        assert_eq!(error, Some(ProtocolError::Gap { applied: Seq(4), expected: Seq(5), got: Seq(6) }));
        assert_eq!(follower, before);
        assert!(effects.is_empty());
        assert_eq!(
            error.map(|e| e.to_string()).unwrap_or_default(),
            "expected event 5 after 4, got 6: the stream skipped events"
        );
    }

    #[test]
    fn another_log_starts_the_follower_over_with_a_resync() {
        let mut follower = Follower::restore(Some("aaaa".into()), Seq(9), vec![record("shop", 2)], vec![]);
        assert!(!follower.follow_log("aaaa"), "the same log");
        assert_eq!(follower.seq(), Seq(9));
        assert!(follower.follow_log("bbbb"), "another log");
        assert_eq!((follower.seq(), follower.log()), (Seq(0), Some("bbbb")));
        let mut effects = Effects::default();
        let applied = follower.apply(snapshot(3, &["shop"], false), &mut effects);
        assert_eq!(applied, Ok(Applied::Snapshot { seq: Seq(3), resync: true }));
        assert_eq!(effects.purges, vec![all("shop", true, Cause::Resync)]);
        // A state saved before logs had an identity adopts the first one it is given.
        let mut old = Follower::restore(None, Seq(9), vec![], vec![]);
        assert!(!old.follow_log("cccc"));
        assert_eq!(old.seq(), Seq(9));
    }

    fn challenge(token: &str, host: &str) -> outpost_config::AcmeChallenge {
        outpost_config::AcmeChallenge {
            token: token.to_owned(),
            host: host.to_owned(),
            kind: outpost_config::ChallengeKind::Http01,
            key_authorization: format!("{token}.thumb"),
            service: id("shop"),
            expires_at: Timestamp(1),
        }
    }

    #[test]
    fn challenges_are_put_replaced_deleted_and_checked() {
        let mut follower = Follower::default();
        let rows: Vec<(StreamMessage, bool, &[&str], usize)> = vec![
            (event(1, Change::AcmeChallengePut { challenge: challenge("t1", "a.test") }), true, &["t1"], 0),
            // The same again changes nothing.
            (event(2, Change::AcmeChallengePut { challenge: challenge("t1", "a.test") }), false, &["t1"], 0),
            (event(3, Change::AcmeChallengePut { challenge: challenge("t2", "b.test") }), true, &["t1", "t2"], 0),
            // A token that could not be a path segment is refused, nothing else changes.
            (event(4, Change::AcmeChallengePut { challenge: challenge("../x", "b.test") }), false, &["t1", "t2"], 1),
            (event(5, Change::AcmeChallengeDeleted { token: "t1".into(), service: id("shop") }), true, &["t2"], 0),
            (event(6, Change::AcmeChallengeDeleted { token: "t1".into(), service: id("shop") }), false, &["t2"], 0),
            // A newer control plane's event type: applied as nothing, its number counts.
            (event(7, Change::Other), false, &["t2"], 0),
            (
                StreamMessage::Snapshot(Snapshot {
                    seq: Seq(9),
                    services: vec![],
                    resync: false,
                    acme_challenges: vec![challenge("t3", "c.test")],
                    certificates: vec![],
                }),
                true,
                &["t3"],
                0,
            ),
        ];
        for (message, changed, tokens, refused) in rows {
            let mut effects = Effects::default();
            follower.apply(message, &mut effects).unwrap();
            assert_eq!(effects.challenges_changed, changed, "{tokens:?}");
            assert_eq!(effects.refused_challenges.len(), refused, "{tokens:?}");
            let held: Vec<&str> = follower.challenges().map(|c| c.token.as_str()).collect();
            assert_eq!(held, tokens);
        }
        assert_eq!(follower.seq(), Seq(9));
    }

    #[test]
    fn challenges_beyond_the_bound_are_refused() {
        let saved = (0..MAX_CHALLENGES).map(|n| challenge(&format!("t{n}"), "a.test")).collect();
        let mut follower = Follower::default().with_challenges(saved);
        let mut effects = Effects::default();
        let one_more = event(1, Change::AcmeChallengePut { challenge: challenge("extra", "a.test") });
        follower.apply(one_more, &mut effects).unwrap();
        assert_eq!(effects.refused_challenges.len(), 1);
        assert_eq!(follower.challenges().count(), MAX_CHALLENGES);
    }
}
