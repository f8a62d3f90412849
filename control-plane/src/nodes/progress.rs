//! A purge's progress on the nodes, a pure function of the purge and what each node acked:
//! `nodes` (per node: acked, and the ms from the purge's creation to the ack that covered
//! it), `pops` (per PoP: nodes, acked, slowest), `pending` (expected nodes not yet acked:
//! live, or seen within `nodes.offline_after`, restarts of the control plane included),
//! `offline` (registered nodes gone longer, not acked: they resync before serving again) and
//! `complete` (no expected node pending).

use std::collections::{BTreeMap, VecDeque};

use outpost_config::{Seq, Timestamp};
use serde::Serialize;

/// What the progress needs to know about one node.
#[derive(Debug, Clone, Copy)]
pub struct NodeAcks<'a> {
    pub id: &'a str,
    pub pop: Option<&'a str>,
    pub live: bool,
    /// Live, or seen within `nodes.offline_after`: the purge waits for it.
    pub expected: bool,
    pub acked: Seq,
    /// Recent acks, ascending: each `(seq, when)`.
    pub history: &'a AckHistory,
}

/// A node's recent acknowledgements, bounded (`nodes.ack_history`), oldest first. `floor` is
/// what the node had acked before the oldest entry, so an entry is known to be the first to
/// cover a seq only when the one before it (or the floor) was below that seq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckHistory {
    floor: Seq,
    entries: VecDeque<(Seq, Timestamp)>,
}

impl AckHistory {
    /// An empty history after `acked` (what the store held at start-up).
    pub fn after(acked: Seq) -> Self {
        Self { floor: acked, entries: VecDeque::new() }
    }

    /// Records an ack that advanced the node to `seq`, keeping at most `max` entries.
    pub fn push(&mut self, seq: Seq, at: Timestamp, max: usize) {
        self.entries.push_back((seq, at));
        while self.entries.len() > max.max(1) {
            if let Some((seq, _)) = self.entries.pop_front() {
                self.floor = seq;
            }
        }
    }

    /// When the node first acked a seq at or above `seq`; `None` when it has not, or did so
    /// before the history begins.
    pub fn first_covering(&self, seq: Seq) -> Option<Timestamp> {
        if self.floor >= seq {
            return None;
        }
        self.entries.iter().find(|(acked, _)| *acked >= seq).map(|(_, at)| *at)
    }
}

/// One node's part in a purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeProgress {
    pub pop: Option<String>,
    pub live: bool,
    pub acked: bool,
    /// From the purge's creation to this node's ack; `null` until it acks, or when the ack is
    /// older than the node's remembered history.
    pub ms: Option<u64>,
}

/// One PoP's part: its nodes in `nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PopProgress {
    pub nodes: usize,
    pub acked: usize,
    /// The slowest known `ms` among its acked nodes.
    pub max_ms: Option<u64>,
}

/// The whole progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeProgress {
    /// Every expected node, and every other node that acked the purge, by id.
    pub nodes: BTreeMap<String, NodeProgress>,
    /// The nodes above, by PoP (nodes without a PoP are left out).
    pub pops: BTreeMap<String, PopProgress>,
    /// Expected nodes (live, or seen within `nodes.offline_after`) that have not acked, by id.
    pub pending: Vec<String>,
    /// Registered nodes gone longer than `nodes.offline_after` that have not acked, by id:
    /// not waited for (they resync before they serve again).
    pub offline: Vec<String>,
    /// Every expected node has acked (true when none is expected).
    pub complete: bool,
}

/// The progress of the purge of event `seq`, created at `created_at`.
pub fn progress<'a>(seq: Seq, created_at: Timestamp, nodes: impl IntoIterator<Item = NodeAcks<'a>>) -> PurgeProgress {
    let mut out = PurgeProgress::default();
    for node in nodes {
        let acked = node.acked >= seq;
        if !node.expected && !acked {
            out.offline.push(node.id.to_owned());
            continue;
        }
        let ms = if acked {
            node.history.first_covering(seq).map(|at| at.as_millis().saturating_sub(created_at.as_millis()))
        } else {
            None
        };
        if !acked {
            out.pending.push(node.id.to_owned());
        }
        if let Some(pop) = node.pop {
            let entry = out.pops.entry(pop.to_owned()).or_default();
            entry.nodes += 1;
            if acked {
                entry.acked += 1;
                entry.max_ms = entry.max_ms.max(ms);
            }
        }
        let pop = node.pop.map(str::to_owned);
        out.nodes.insert(node.id.to_owned(), NodeProgress { pop, live: node.live, acked, ms });
    }
    out.pending.sort();
    out.offline.sort();
    out.complete = out.pending.is_empty();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(floor: u64, entries: &[(u64, u64)]) -> AckHistory {
        let mut history = AckHistory::after(Seq(floor));
        for (seq, at) in entries {
            history.push(Seq(*seq), Timestamp(*at), 100);
        }
        history
    }

    #[test]
    fn the_first_ack_covering_a_seq_dates_it() {
        let h = history(2, &[(4, 1000), (9, 2000)]);
        let cases =
            [(1, None), (2, None), (3, Some(1000)), (4, Some(1000)), (5, Some(2000)), (9, Some(2000)), (10, None)];
        for (seq, at) in cases {
            assert_eq!(h.first_covering(Seq(seq)), at.map(Timestamp), "seq {seq}");
        }
    }

    #[test]
    fn a_trimmed_history_forgets_its_oldest_acks() {
        let mut h = AckHistory::after(Seq(0));
        for seq in 1..=5 {
            h.push(Seq(seq), Timestamp(seq * 10), 2);
        }
        // Kept: 4 and 5; 3 is the floor, so purges up to 3 are acked at an unknown time.
        assert_eq!(h.first_covering(Seq(3)), None);
        assert_eq!(h.first_covering(Seq(4)), Some(Timestamp(40)));
        assert_eq!(h.first_covering(Seq(5)), Some(Timestamp(50)));
    }

    #[test]
    fn progress_counts_live_nodes_and_those_that_acked() {
        let (fast, slow, behind, gone, old) = (
            history(0, &[(7, 1012)]),
            history(0, &[(6, 1005), (8, 1030)]),
            history(0, &[(6, 1001)]),
            history(0, &[(7, 1020)]),
            history(9, &[]),
        );
        let node = |id, pop, live, acked, history| NodeAcks { id, pop, live, expected: live, acked, history };
        let nodes = [
            node("edge-2", Some("fra"), true, Seq(8), &slow),
            node("edge-1", Some("fra"), true, Seq(7), &fast),
            node("edge-3", Some("ams"), true, Seq(6), &behind),
            node("edge-4", Some("ams"), false, Seq(7), &gone),
            node("edge-5", Some("ams"), false, Seq(6), &behind),
            node("shield", None, true, Seq(9), &old),
        ];
        let p = progress(Seq(7), Timestamp(1000), nodes);
        assert_eq!(p.nodes.keys().collect::<Vec<_>>(), ["edge-1", "edge-2", "edge-3", "edge-4", "shield"]);
        assert_eq!(p.nodes["edge-1"], NodeProgress { pop: Some("fra".into()), live: true, acked: true, ms: Some(12) });
        assert_eq!(p.nodes["edge-2"].ms, Some(30));
        assert_eq!(p.nodes["edge-3"], NodeProgress { pop: Some("ams".into()), live: true, acked: false, ms: None });
        assert_eq!(p.nodes["edge-4"].ms, Some(20));
        assert_eq!(p.nodes["shield"], NodeProgress { pop: None, live: true, acked: true, ms: None });
        assert_eq!(p.pops["fra"], PopProgress { nodes: 2, acked: 2, max_ms: Some(30) });
        assert_eq!(p.pops["ams"], PopProgress { nodes: 2, acked: 1, max_ms: Some(20) });
        assert_eq!(p.pending, ["edge-3"]);
        assert_eq!(p.offline, ["edge-5"]);
        assert!(!p.complete);
    }

    fn names(list: &[String]) -> Vec<&str> {
        list.iter().map(String::as_str).collect()
    }

    #[test]
    fn complete_when_no_expected_node_is_pending() {
        let h = history(0, &[(3, 5)]);
        let acked = NodeAcks { id: "a", pop: None, live: true, expected: true, acked: Seq(3), history: &h };
        let gone = NodeAcks { id: "b", pop: None, live: false, expected: false, acked: Seq(1), history: &h };
        // Not connected (the control plane restarted, or its stream dropped past the grace) but
        // seen within `offline_after`: the purge is not complete without it.
        let away = NodeAcks { id: "c", pop: None, live: false, expected: true, acked: Seq(1), history: &h };
        // (nodes, purge seq, complete, pending, offline)
        type Case<'a> = (&'a [NodeAcks<'a>], u64, bool, &'a [&'a str], &'a [&'a str]);
        let cases: [Case<'_>; 5] = [
            (&[acked, gone], 3, true, &[], &["b"]),
            (&[], 3, true, &[], &[]),
            (&[acked], 4, false, &["a"], &[]),
            (&[acked, away], 3, false, &["c"], &[]),
            (&[acked, away, gone], 1, true, &[], &[]),
        ];
        for (nodes, seq, complete, pending, offline) in cases {
            let p = progress(Seq(seq), Timestamp(0), nodes.iter().copied());
            let got = (p.complete, names(&p.pending), names(&p.offline));
            assert_eq!(got, (complete, pending.to_vec(), offline.to_vec()), "{seq}");
        }
        let p = progress(Seq(3), Timestamp(0), [away]);
        assert_eq!(p.nodes["c"], NodeProgress { pop: None, live: false, acked: false, ms: None });
    }
}
