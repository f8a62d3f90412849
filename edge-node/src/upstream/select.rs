//! Which upstream gets a request: weighted rendezvous (highest random weight) hashing, and the
//! [`Balancer`] policies over one service's origins or shields.
//!
//! Decides: given a key and the members with their group, weight, in-flight count and
//! eligibility, which member index to use. Does not decide eligibility (health checks, the
//! circuit breaker and "already tried by this request" do, in the caller) and does no I/O.
//!
//! Hashing is seedless and stable ([`stable_hash`]): the same key picks the same member in
//! every process, on every node, across restarts, so each object has one home shield.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use outpost_config::Balance;

/// A stable 64-bit hash: FNV-1a over the bytes, then the MurmurHash3 finalizer so that every
/// input bit reaches every output bit. Identical across processes, platforms and restarts.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = bytes.iter().fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    mix(fnv)
}

/// MurmurHash3's 64-bit finalizer (fmix64).
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Weighted rendezvous score of candidate `id` for a key hashed to `key_hash`:
/// `-weight / ln(u)` with `u` uniform in (0, 1) (Schindelhauer and Schomaker, "Weighted
/// distributed hash tables", 2005). Each candidate wins a share of keys proportional to its
/// weight, and removing a candidate moves only the keys it won.
fn score(key_hash: u64, id: u64, weight: u32) -> f64 {
    // The top 53 bits as a float in (0, 1): never 0 (ln would be -inf) nor 1 (ln would be 0).
    let unit = ((mix(key_hash ^ id) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / unit.ln()
}

/// The candidate with the highest rendezvous score for `key`; ties go to the higher id. Each
/// candidate is `(item, stable id, weight)`, where the item is whatever the caller wants back
/// (a reference, an index). Weight 0 never wins. `None` when no candidate has weight above 0.
pub fn rendezvous<I>(key: &[u8], candidates: impl IntoIterator<Item = (I, u64, u32)>) -> Option<I> {
    let key_hash = stable_hash(key);
    candidates
        .into_iter()
        .filter(|(_, _, weight)| *weight > 0)
        .map(|(item, id, weight)| (item, id, score(key_hash, id, weight)))
        .max_by(|a, b| a.2.total_cmp(&b.2).then(a.1.cmp(&b.1)))
        .map(|(item, _, _)| item)
}

/// What a balancer needs to know about one origin or shield, as of this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Stable identity: [`stable_hash`] of the upstream's URL.
    pub id: u64,
    /// Failover group (0 = primary); shields are all group 0.
    pub group: u8,
    /// Share within its group; 0 never chosen.
    pub weight: u32,
    /// Requests in flight from this node (for `least_outstanding`).
    pub in_flight: usize,
    /// Healthy, its breaker closed or offering a probe, and not yet tried by this request.
    pub eligible: bool,
}

/// A balancing policy over one list of members, built once per config version.
#[derive(Debug)]
pub enum Balancer {
    /// Each member in turn, `weight` consecutive turns each, per cycle of the group's total
    /// weight. The counter is shared by all requests of the service.
    RoundRobin(AtomicUsize),
    /// Fewest in-flight requests per unit of weight; ties by rendezvous on the key.
    LeastOutstanding,
    /// Rendezvous on the key: one home member per object while it is eligible.
    ConsistentHash,
}

impl Balancer {
    pub fn new(policy: Balance) -> Self {
        match policy {
            Balance::RoundRobin => Balancer::RoundRobin(AtomicUsize::new(0)),
            Balance::LeastOutstanding => Balancer::LeastOutstanding,
            Balance::ConsistentHash => Balancer::ConsistentHash,
        }
    }

    /// Index into `members` of the one to use for `key`, among the eligible members of weight
    /// above 0 in the lowest-numbered group that has any (primary first, then backups, as
    /// CloudFront origin groups). `None` when no member is eligible.
    pub fn pick(&self, key: &[u8], members: &[Member]) -> Option<usize> {
        let usable = |m: &Member| m.eligible && m.weight > 0;
        let group = members.iter().filter(|m| usable(m)).map(|m| m.group).min()?;
        let mut pool = members.iter().enumerate().filter(|(_, m)| usable(m) && m.group == group);
        match self {
            Balancer::RoundRobin(counter) => {
                let total: u64 = pool.clone().map(|(_, m)| u64::from(m.weight)).sum();
                let turn = counter.fetch_add(1, AtomicOrdering::Relaxed) as u64 % total.max(1);
                let mut start = 0u64;
                pool.find(|(_, m)| {
                    start += u64::from(m.weight);
                    turn < start
                })
                .map(|(i, _)| i)
            }
            Balancer::LeastOutstanding => {
                let least = pool.clone().map(|(_, m)| m).min_by(|a, b| load_cmp(a, b))?;
                let tied = pool.filter(|(_, m)| load_cmp(m, least) == Ordering::Equal);
                rendezvous(key, tied.map(|(i, m)| (i, m.id, m.weight)))
            }
            Balancer::ConsistentHash => rendezvous(key, pool.map(|(i, m)| (i, m.id, m.weight))),
        }
    }
}

/// Compares `in_flight / weight` without division: `a.in_flight * b.weight` against
/// `b.in_flight * a.weight`, in u128 so that nothing overflows.
fn load_cmp(a: &Member, b: &Member) -> Ordering {
    let left = a.in_flight as u128 * u128::from(b.weight);
    let right = b.in_flight as u128 * u128::from(a.weight);
    left.cmp(&right)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, group: u8, weight: u32) -> Member {
        Member { id, group, weight, in_flight: 0, eligible: true }
    }

    fn key(i: u32) -> Vec<u8> {
        format!("shop.example/objects/{i}").into_bytes()
    }

    /// The shield hashing: which of `ids` (all weight 1) is the home of each of `keys` keys.
    fn homes(ids: &[u64], keys: u32) -> Vec<u64> {
        (0..keys).map(|i| rendezvous(&key(i), ids.iter().map(|id| (*id, *id, 1))).unwrap_or(0)).collect()
    }

    #[test]
    fn stable_hash_is_fixed_across_processes() {
        // Pinned values: a change here moves every object to another shield.
        // Computed independently: fmix64(FNV-1a-64(input)).
        let cases: [(&[u8], u64); 3] = [
            (b"", 0xefd0_1f60_ba99_2926),
            (b"a", 0x82a2_a958_a9be_ce5b),
            (b"https://shield-1.cdn.example:443", 0xe08e_7c08_7d4e_77e2),
        ];
        for (input, expected) in cases {
            assert_eq!(stable_hash(input), expected, "{input:?}");
        }
        assert_ne!(stable_hash(b"ab"), stable_hash(b"ba"));
    }

    #[test]
    fn rendezvous_edge_cases() {
        let none: [(u64, u64, u32); 0] = [];
        assert_eq!(rendezvous(b"k", none), None, "no candidates");
        assert_eq!(rendezvous(b"k", [(1, 1, 0), (2, 2, 0)]), None, "all of weight 0");
        assert_eq!(rendezvous(b"k", [(1, 1, 0), (2, 2, 1)]), Some(2), "weight 0 never wins");
        assert_eq!(rendezvous(b"k", [(7, 7, 1)]), Some(7), "one candidate");
        let a = rendezvous(b"k", [(1, 1, 1), (2, 2, 1), (3, 3, 1)]);
        let b = rendezvous(b"k", [(3, 3, 1), (1, 1, 1), (2, 2, 1)]);
        assert_eq!(a, b, "order of candidates does not matter");
        let names = ["a", "b"];
        let by_ref = rendezvous(b"k", names.iter().map(|n| (n, stable_hash(n.as_bytes()), 1)));
        assert!(by_ref.is_some(), "items may be references");
    }

    #[test]
    fn removing_a_candidate_moves_only_its_keys() {
        let ids: Vec<u64> = (0..5).map(|i| stable_hash(format!("https://shield-{i}:443").as_bytes())).collect();
        let before = homes(&ids, 10_000);
        for share in ids.iter().map(|id| before.iter().filter(|h| *h == id).count()) {
            assert!((1700..=2300).contains(&share), "5 shields share 10000 keys about evenly: {share}");
        }
        let removed = ids[2];
        let after = homes(&[ids[0], ids[1], ids[3], ids[4]], 10_000);
        for (old, new) in before.iter().zip(&after) {
            if *old != removed {
                assert_eq!(old, new, "a key not on the removed shield moved");
            }
        }
        assert_eq!(homes(&ids, 10_000), before, "deterministic");
    }

    #[test]
    fn weights_skew_shares_proportionally() {
        let wins = |weights: &[u32]| {
            let mut count = vec![0u32; weights.len()];
            for i in 0..20_000 {
                let candidates = weights.iter().enumerate().map(|(j, w)| (j, j as u64 * 7919, *w));
                if let Some(j) = rendezvous(&key(i), candidates) {
                    count[j] += 1;
                }
            }
            count
        };
        let cases: [(&[u32], &[f64]); 3] =
            [(&[1, 1], &[0.5, 0.5]), (&[1, 3], &[0.25, 0.75]), (&[1, 2, 5], &[0.125, 0.25, 0.625])];
        for (weights, expected) in cases {
            for (got, want) in wins(weights).iter().zip(expected) {
                let share = f64::from(*got) / 20_000.0;
                assert!((share - want).abs() < 0.03, "weights {weights:?}: share {share}, expected {want}");
            }
        }
    }

    #[test]
    fn balancers_use_the_lowest_group_with_an_eligible_member() {
        let down = |mut m: Member| {
            m.eligible = false;
            m
        };
        let cases: [(&str, Vec<Member>, Option<usize>); 5] = [
            ("primary healthy", vec![member(1, 1, 1), member(2, 0, 1)], Some(1)),
            ("primary down: backup", vec![down(member(1, 0, 1)), member(2, 1, 1)], Some(1)),
            ("skips an empty group", vec![member(1, 2, 1), down(member(2, 0, 1))], Some(0)),
            ("weight 0 does not count", vec![member(1, 0, 0), member(2, 1, 1)], Some(1)),
            ("all down", vec![down(member(1, 0, 1)), down(member(2, 1, 1))], None),
        ];
        for policy in [Balance::RoundRobin, Balance::LeastOutstanding, Balance::ConsistentHash] {
            let balancer = Balancer::new(policy);
            for (name, members, expected) in &cases {
                assert_eq!(balancer.pick(b"k", members), *expected, "{policy:?}: {name}");
            }
        }
    }

    #[test]
    fn round_robin_takes_turns_by_weight() {
        let balancer = Balancer::new(Balance::RoundRobin);
        let members = [member(1, 0, 2), member(2, 0, 1), member(3, 1, 5)];
        let picks: Vec<Option<usize>> = (0..6).map(|_| balancer.pick(b"k", &members)).collect();
        assert_eq!(picks, [Some(0), Some(0), Some(1), Some(0), Some(0), Some(1)]);
    }

    #[test]
    fn least_outstanding_prefers_the_least_loaded_per_weight() {
        let load = |id, in_flight, weight| Member { in_flight, ..member(id, 0, weight) };
        let cases: [(&str, Vec<Member>, Option<usize>); 3] = [
            ("fewest in flight", vec![load(1, 3, 1), load(2, 1, 1), load(3, 2, 1)], Some(1)),
            ("per unit of weight", vec![load(1, 3, 4), load(2, 1, 1)], Some(0)),
            ("huge counts do not overflow", vec![load(1, usize::MAX, 1000), load(2, usize::MAX, 1)], Some(0)),
        ];
        let balancer = Balancer::new(Balance::LeastOutstanding);
        for (name, members, expected) in cases {
            assert_eq!(balancer.pick(b"k", &members), expected, "{name}");
        }
        // Ties are broken by the key, like consistent_hash.
        let tied = [load(1, 2, 1), load(2, 2, 1), load(3, 2, 1)];
        let hashed = Balancer::new(Balance::ConsistentHash);
        for i in 0..50 {
            assert_eq!(balancer.pick(&key(i), &tied), hashed.pick(&key(i), &tied));
        }
    }

    #[test]
    fn consistent_hash_keeps_a_key_on_its_member() {
        let balancer = Balancer::new(Balance::ConsistentHash);
        let members: Vec<Member> = (0..4).map(|i| member(stable_hash(&[i]), 0, 1)).collect();
        for i in 0..100 {
            let first = balancer.pick(&key(i), &members);
            assert!(first.is_some());
            assert_eq!(balancer.pick(&key(i), &members), first);
        }
    }
}
