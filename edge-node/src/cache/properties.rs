//! Round trips of what the cache writes to disk and reads back after a restart: the entry
//! codec (`entry.rs`) and the purge log (`purge.rs`). Generated in every test run; the fuzz
//! targets `entry_codec` and `purge_log` in `tests/fuzz` feed them arbitrary bytes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use foyer::Code;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;

use super::entry::{BodyLocation, Entry, ObjectMeta, StoredObject, VariantIndex};
use super::policy::ResponsePolicy;
use super::purge::{PurgeLog, Target, Verdict};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec(("[a-z][a-z0-9-]{0,15}", "[ -~]{0,32}"), 0..8).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(&v)) {
                h.append(n, v);
            }
        }
        h
    })
}

/// Times and durations at millisecond precision: what the codec stores.
fn millis() -> impl Strategy<Value = Duration> {
    (0u64..(1 << 45)).prop_map(Duration::from_millis)
}

fn policy() -> impl Strategy<Value = ResponsePolicy> {
    (millis(), millis(), millis(), millis(), any::<[bool; 4]>()).prop_map(|(f, a, w, e, b)| ResponsePolicy {
        freshness_lifetime: f,
        corrected_initial_age: a,
        stale_while_revalidate: w,
        stale_if_error: e,
        must_revalidate: b[0],
        no_cache: b[1],
        serve_with_authorization: b[2],
        immutable: b[3],
    })
}

fn body() -> impl Strategy<Value = BodyLocation> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| BodyLocation::Inline(Bytes::from(b))),
        (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(object_id, chunk_size, chunks)| BodyLocation::Chunked {
            object_id,
            chunk_size,
            chunks
        }),
    ]
}

fn object() -> impl Strategy<Value = StoredObject> {
    let status = (100u16..1000).prop_map(|s| StatusCode::from_u16(s).unwrap_or(StatusCode::OK));
    let tags = prop::collection::vec("[!-~]{1,16}", 0..4);
    (status, headers(), millis(), millis(), policy(), tags, any::<u64>(), body()).prop_map(
        |(status, headers, req, resp, policy, tags, body_len, body)| StoredObject {
            meta: ObjectMeta {
                status,
                headers,
                request_time: UNIX_EPOCH + req,
                response_time: UNIX_EPOCH + resp,
                policy,
                tags,
                body_len,
            },
            body,
        },
    )
}

fn decode(bytes: &[u8]) -> Entry {
    Entry::decode(&mut &bytes[..]).unwrap_or_else(|e| panic!("decode: {e}"))
}

fn encode(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::new();
    entry.encode(&mut out).unwrap_or_else(|e| panic!("encode: {e}"));
    out
}

proptest! {
    #![proptest_config(config(128))]

    /// decode(encode(x)) == x for every kind of entry, and a truncated encoding is an error
    /// (a torn write reads as a miss), never a panic or a different entry.
    #[test]
    fn entries_round_trip(o in object(), fields in prop::collection::vec("[a-z-]{1,12}", 0..6), cut in any::<prop::sample::Index>()) {
        let names = fields.iter().filter_map(|f| HeaderName::from_bytes(f.as_bytes()).ok()).collect();
        let chunk = Bytes::from(fields.concat());
        for entry in [Entry::Object(Arc::new(o.clone())), Entry::Variants(Arc::new(VariantIndex::new(names, UNIX_EPOCH, Vec::new()))), Entry::Chunk(chunk)] {
            let bytes = encode(&entry);
            let back = decode(&bytes);
            prop_assert_eq!(&encode(&back), &bytes);
            match (&entry, &back) {
                (Entry::Object(a), Entry::Object(b)) => {
                    prop_assert_eq!(&a.meta.headers, &b.meta.headers);
                    prop_assert_eq!(a.meta.status, b.meta.status);
                    prop_assert_eq!(a.meta.request_time, b.meta.request_time);
                    prop_assert_eq!(a.meta.response_time, b.meta.response_time);
                    prop_assert_eq!(a.meta.policy, b.meta.policy);
                    prop_assert_eq!(&a.meta.tags, &b.meta.tags);
                    prop_assert_eq!(a.meta.body_len, b.meta.body_len);
                    prop_assert_eq!(&a.body, &b.body);
                }
                (Entry::Variants(a), Entry::Variants(b)) => prop_assert_eq!(a, b),
                (Entry::Chunk(a), Entry::Chunk(b)) => prop_assert_eq!(a, b),
                _ => prop_assert!(false, "kind changed"),
            }
            let torn = &bytes[..cut.index(bytes.len())];
            prop_assert!(Entry::decode(&mut &torn[..]).is_err());
        }
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        "[a-z]{1,4}\\.example/[a-z/]{0,6}".prop_map(Target::Url),
        "[a-z]{1,4}\\.example/[a-z/]{0,3}".prop_map(Target::Prefix),
        "[!-~]{1,8}".prop_map(Target::Tag),
        Just(Target::All),
    ]
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

proptest! {
    // Each case writes and reopens a log file: few cases.
    #![proptest_config(config(24))]

    /// A purge log reopened after a restart gives every lookup the verdict it gave before
    /// (the records are written, read and compacted without loss), with the bound applied.
    #[test]
    fn purge_logs_reopen_to_the_same_verdicts(
        purges in prop::collection::vec(("[ab]", target(), any::<bool>(), 1u64..10_000), 1..12),
        max in 1usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let now = at(20_000);
        let retention = Duration::from_secs(3600);
        let log = PurgeLog::open(dir.path(), max, retention, now).unwrap_or_else(|e| panic!("{e}"));
        for (service, target, soft, ms) in &purges {
            log.record(service, target.clone(), *soft, at(*ms)).unwrap_or_else(|e| panic!("{e}"));
        }
        let probes: Vec<(String, String, Vec<String>, u64)> = purges
            .iter()
            .flat_map(|(s, t, _, ms)| {
                let key = match t { Target::Url(k) | Target::Prefix(k) => k.clone(), _ => "x.example/".into() };
                let tags = match t { Target::Tag(tag) => vec![tag.clone()], _ => Vec::new() };
                [(s.clone(), key.clone(), tags.clone(), ms - 1), (s.clone(), key, tags, ms + 1)]
            })
            .collect();
        let verdicts = |log: &PurgeLog| -> Vec<Verdict> {
            probes.iter().map(|(s, k, t, ms)| log.verdict(s, k, t, at(*ms))).collect()
        };
        let before = verdicts(&log);
        // Every purge covers an object fetched before it (RFC-free invariant of purge.rs).
        for ((s, t, _, ms), v) in purges.iter().zip(before.chunks(2)) {
            prop_assert_ne!(v[0], Verdict::Live, "{} {:?} at {}", s, t, ms);
        }
        drop(log);
        let log = PurgeLog::open(dir.path(), max, retention, now).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(verdicts(&log), before);
    }
}
