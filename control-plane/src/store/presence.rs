//! Node presence shared by every replica: which replica holds each node's live stream, and the
//! leases that make a dead replica's holds lapse. Pure types and rules here; both stores keep
//! them (the embedded one in its node records and in memory, PostgreSQL in `nodes.hold` and a
//! `replicas` table) and apply [`may_take`] in the claim's transaction.
//!
//! - A **replica** is one control-plane process, named by a random id at start. It renews its
//!   lease ([`super::Store::renew_replica`]) every third of `nodes.replica_lease`; a replica that
//!   dies stops renewing, and its lease runs out within one `replica_lease`.
//! - A **hold** is a replica's claim on one node's stream: set when the stream opens
//!   ([`super::Store::claim_node`]), cleared when it ends ([`super::Store::release_node`]). It
//!   stands while its replica's lease runs. The lease is per replica, not per node, so a
//!   replica with 1,000 streams writes one row a second, not 1,000.
//! - A claim by another replica is refused while the hold stands; once the lease has run out
//!   it takes the node over. A claim by the holding replica itself always succeeds: that
//!   replica's own registry decides between its streams.
//!
//! Times are the replicas' wall clocks (milliseconds since the Unix epoch), passed in: the
//! replicas' clocks must agree to well within `replica_lease` (NTP does).

use outpost_config::{NodeId, Seq, Timestamp};
use serde::{Deserialize, Serialize};

/// One replica's claim on a node's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The holding replica's id.
    pub replica: String,
    /// Which of that replica's streams for the node: a release by an older stream of the same
    /// replica leaves a newer stream's hold alone.
    pub generation: u64,
    /// The node's connection as the holder saw it (`IP:port`), for the 409 and the node list.
    pub peer: Option<String>,
    pub since: Timestamp,
}

/// A node's presence as the store holds it: what every replica merges into its registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePresence {
    pub id: NodeId,
    /// Tells a re-registration apart (its addresses may have changed: read the record again).
    pub registered_at: Timestamp,
    pub acked: Seq,
    pub acked_at: Option<Timestamp>,
    pub seen_at: Option<Timestamp>,
    pub drained_at: Option<Timestamp>,
    pub hold: Option<Hold>,
    /// Until when the holder's replica lease runs; `None` without a hold, or when the replica
    /// is unknown (gone long ago).
    pub held_until: Option<Timestamp>,
}

/// What [`super::Store::claim_node`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The hold is the claimant's now.
    Claimed,
    /// Another replica holds the node while its lease runs (until `until`).
    Held { hold: Hold, until: Timestamp },
    /// The node is not registered.
    Unknown,
}

/// Whether `replica` may take a node currently held as `current` (with its replica's lease
/// until `until`) at `now`: when nobody holds it, when `replica` holds it itself, or when the
/// holder's lease has run out (its replica died or lost the database).
pub fn may_take(current: Option<&Hold>, until: Option<Timestamp>, replica: &str, now: Timestamp) -> bool {
    match current {
        None => true,
        Some(hold) if hold.replica == replica => true,
        Some(_) => !holds(until, now),
    }
}

/// Whether a hold whose replica's lease runs until `until` still stands at `now`.
pub fn holds(until: Option<Timestamp>, now: Timestamp) -> bool {
    until.is_some_and(|until| now < until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(replica: &str) -> Hold {
        Hold { replica: replica.to_owned(), generation: 1, peer: None, since: Timestamp(0) }
    }

    #[test]
    fn a_hold_stands_while_its_replicas_lease_runs() {
        let (a, b) = (hold("a"), hold("b"));
        // (current hold, its lease until, claimant, now, may take)
        let cases = [
            (None, None, "a", 100, true),
            (Some(&a), Some(200), "a", 100, true),
            (Some(&a), Some(200), "b", 100, false),
            (Some(&a), Some(200), "b", 199, false),
            (Some(&a), Some(200), "b", 200, true),
            (Some(&a), None, "b", 100, true),
            (Some(&b), Some(50), "a", 100, true),
        ];
        for (current, until, claimant, now, want) in cases {
            let got = may_take(current, until.map(Timestamp), claimant, Timestamp(now));
            assert_eq!(got, want, "{current:?} until {until:?}, {claimant} at {now}");
        }
    }
}
