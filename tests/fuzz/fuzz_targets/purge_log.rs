//! The purge log (`cache/purge.rs`, `purges.jsonl` beside the disk cache) as a node reads it at
//! start: after a crash it may end in a torn line, and an operator may have edited it. Opening
//! must replay what it can, skip what it cannot, and leave a log that reopens to the same
//! verdicts. Input: 8 bytes (bounds), then the file's text.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use edge_node::cache::purge::{PurgeLog, Target};
use libfuzzer_sys::fuzz_target;
use outpost_fuzz::take_u64;

fuzz_target!(|data: &[u8]| {
    let (bits, text) = take_u64(data);
    let Ok(dir) = tempfile::tempdir_in(scratch()) else { return };
    if std::fs::write(dir.path().join("purges.jsonl"), text).is_err() {
        return;
    }
    let max = 1 + (bits % 64) as usize;
    let retention = Duration::from_millis((bits >> 8) % 10_000_000_000);
    let now = UNIX_EPOCH + Duration::from_millis(bits >> 20);
    let Ok(log) = PurgeLog::open(dir.path(), max, retention, now) else { return };
    assert!(log.len() <= max + 2 * services_in(text), "bound {max}, kept {}", log.len());
    let probe =
        |log: &PurgeLog| ["a", "svc", "shop"].map(|s| log.verdict(s, "example.com/a", &["t".into()], UNIX_EPOCH));
    let before = probe(&log);
    let _ = log.record("svc", Target::Url("example.com/a".into()), bits & 1 == 0, now);
    drop(log);
    // What was written reopens; purges only ever add up (a verdict never goes back to Live).
    let log = PurgeLog::open(dir.path(), max, retention, now).expect("the log it wrote reopens");
    let after = probe(&log);
    for (b, a) in before.iter().zip(after.iter()) {
        assert!(!(a == &edge_node::cache::purge::Verdict::Live && b != a), "{before:?} -> {after:?}");
    }
});

/// A rough upper bound of the services named in the file: each may keep a hard and a soft
/// service-wide mark besides the bounded per-target records.
fn services_in(text: &[u8]) -> usize {
    text.split(|&b| b == b'\n').count() + 3
}

/// tmpfs when there is one: the target writes a file per input.
fn scratch() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() }
}
