use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use outpost_config::{AccessFormat, AccessLog as Target, LogConfig};

use super::{AccessLog, AccessRecord};

fn config(path: &Path, buffer: u64, flush: Duration) -> LogConfig {
    LogConfig {
        access: Target::File(path.to_path_buf()),
        access_format: AccessFormat::Json,
        access_buffer: outpost_config::ByteSize(buffer),
        access_flush: flush,
        ..LogConfig::default()
    }
}

fn log_one(log: &AccessLog, id: &str) {
    log.write(&AccessRecord {
        ts: SystemTime::now(),
        request_id: id,
        client: "127.0.0.1:1".parse().expect("addr"),
        protocol: "http/1.1",
        tls: false,
        method: "GET",
        host: "shop.test",
        path: "/",
        service: Some("shop"),
        status: 200,
        cache: "hit",
        cache_status: None,
        bytes: Some(1),
        duration: Duration::from_micros(5),
        error: None,
    });
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

/// Waits (bounded) until the file holds at least `n` lines.
fn wait_lines(path: &Path, n: usize) -> usize {
    let start = Instant::now();
    while lines(path) < n && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    lines(path)
}

#[tokio::test]
async fn a_line_waits_at_most_the_flush_interval() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("access.log");
    // A buffer far larger than one line: only the time-based sweep can write it.
    let log = AccessLog::start(&config(&path, 1 << 20, Duration::from_millis(20))).expect("start");
    log_one(&log, "a");
    assert_eq!(wait_lines(&path, 1), 1);
}

#[tokio::test]
async fn a_full_buffer_is_written_without_waiting_for_the_sweep() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("access.log");
    // An hour between sweeps: what reaches the file went by size.
    let log = AccessLog::start(&config(&path, 1024, Duration::from_secs(3600))).expect("start");
    let mut written = 0;
    // All on this thread, so one buffer: about 300 bytes a line, a handover every 4 lines.
    for i in 0..8 {
        log_one(&log, &i.to_string());
        written += 1;
    }
    assert!(wait_lines(&path, 4) >= 4, "a filled buffer reaches the file");
    assert!(lines(&path) < written, "the last, unfilled buffer waits for its sweep");
}

#[tokio::test]
async fn flush_writes_every_line_logged_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("access.log");
    let log = AccessLog::start(&config(&path, 1 << 20, Duration::from_secs(3600))).expect("start");
    for i in 0..3 {
        log_one(&log, &i.to_string());
    }
    assert!(log.flush(Duration::from_secs(20)).await);
    assert_eq!(lines(&path), 3);
}

#[tokio::test]
async fn reopen_moves_later_lines_to_a_new_file_and_keeps_earlier_ones_in_the_old() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let log = AccessLog::start(&config(&path, 1 << 20, Duration::from_secs(3600))).expect("start");
    log_one(&log, "before");
    std::fs::rename(&path, &rotated).expect("rename");
    log.reopen(Duration::from_secs(20)).await.expect("reopen");
    log_one(&log, "after");
    assert!(log.flush(Duration::from_secs(20)).await);
    let old = std::fs::read_to_string(&rotated).expect("old file");
    let new = std::fs::read_to_string(&path).expect("new file");
    assert!(old.contains("\"before\"") && !old.contains("\"after\""), "{old}");
    assert!(new.contains("\"after\"") && !new.contains("\"before\""), "{new}");
}
