//! Purges as records, not walks: a purge costs O(1) in the size of the cache. Each purge is
//! recorded (service, what, when, hard or soft) and appended to a log file beside the disk cache;
//! a lookup checks the object it found against the records of its service. An object is purged
//! when a record matching it is not older than the moment its fetch began.
//!
//! Bounds: records older than `cache.max_retention` are dropped (objects that old are treated as
//! absent anyway); above `cache.max_purge_records`, the oldest record is folded into a purge of
//! its whole service at its time — that purges more, never less.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_config::PurgeTarget;
use serde::{Deserialize, Serialize};

use super::Cache;

/// What a purge targets, within one service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Target {
    /// A URL key (`host/path?query`), with all its Vary variants.
    Url(String),
    /// A prefix of URL keys (`host/path-prefix`).
    Prefix(String),
    /// A surrogate key / cache tag.
    Tag(String),
    /// Everything the service has stored.
    All,
}

impl Target {
    /// A purge request's target as the log keys it: a URL or prefix becomes a `host/path` key
    /// (scheme and port dropped, host lower-cased), as the cache's URL keys are written.
    pub fn from_request(target: &PurgeTarget) -> Result<Target, TargetError> {
        match target {
            PurgeTarget::Url { url } => url_key(url).map(Target::Url).map_err(TargetError::Url),
            PurgeTarget::Prefix { prefix } => url_key(prefix).map(Target::Prefix).map_err(TargetError::Prefix),
            PurgeTarget::Tag { tag } if tag.is_empty() => Err(TargetError::EmptyTag),
            PurgeTarget::Tag { tag } => Ok(Target::Tag(tag.clone())),
            PurgeTarget::All => Ok(Target::All),
        }
    }

    /// `url`, `prefix`, `tag` or `all`: the metric label and the log field.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Url(_) => "url",
            Target::Prefix(_) => "prefix",
            Target::Tag(_) => "tag",
            Target::All => "all",
        }
    }

    /// The host of a URL or prefix key.
    pub fn host(&self) -> Option<&str> {
        match self {
            Target::Url(key) | Target::Prefix(key) => key.split('/').next(),
            Target::Tag(_) | Target::All => None,
        }
    }
}

/// What is wrong with a purge target's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Url(String),
    #[error("{0}")]
    Prefix(String),
    #[error("tag must not be empty")]
    EmptyTag,
}

impl TargetError {
    /// The admin API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            TargetError::Url(_) => "bad_url",
            TargetError::Prefix(_) => "bad_prefix",
            TargetError::EmptyTag => "bad_tag",
        }
    }
}

/// `http://Shop.Example/a?x` or `shop.example/a?x` → `shop.example/a?x` (the cache's URL key).
fn url_key(raw: &str) -> Result<String, String> {
    let rest = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://")).unwrap_or(raw);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Err(format!("{raw:?}: expected host/path, e.g. \"shop.example/images/\""));
    }
    Ok(format!("{host}{path}"))
}

/// Who asked for a purge: the metric label `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeSource {
    /// The node's admin API (`POST /purge`).
    Admin,
    /// The control plane's event stream.
    Control,
}

impl PurgeSource {
    fn as_str(self) -> &'static str {
        match self {
            PurgeSource::Admin => "admin",
            PurgeSource::Control => "control",
        }
    }
}

/// Records a purge: on the blocking pool (the log syncs to disk before this returns), counted
/// in `outpost_purges_total{kind, soft, source}` and logged. The one way in for purges from the
/// admin API and from the control plane.
pub async fn record(
    cache: &Arc<Cache>,
    service: &str,
    target: Target,
    soft: bool,
    source: PurgeSource,
) -> Result<u64, PurgeLogError> {
    let kind = target.kind();
    let (log, svc) = (cache.clone(), service.to_owned());
    let recorded = tokio::task::spawn_blocking(move || log.purges.record(&svc, target, soft, SystemTime::now()))
        .await
        .map_err(|e| PurgeLogError { path: cache.purges.path.display().to_string(), message: e.to_string() })?;
    let id = recorded?;
    let soft_label = if soft { "true" } else { "false" };
    metrics::counter!(crate::metrics::PURGES, "kind" => kind, "soft" => soft_label, "source" => source.as_str())
        .increment(1);
    tracing::info!(id, service, kind, soft, source = source.as_str(), "purge recorded");
    Ok(id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Live,
    /// Marked stale by a soft purge at `at_ms` (ms since the epoch): stale from then on, so
    /// revalidation, stale-while-revalidate and stale-if-error apply with their windows counted
    /// from the purge.
    Soft {
        at_ms: u64,
    },
    Hard,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogLine {
    id: u64,
    at_ms: u64,
    service: String,
    #[serde(flatten)]
    target: Target,
    soft: bool,
}

/// The latest hard and soft purge times (ms since the epoch) for one target.
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    hard: Option<u64>,
    soft: Option<u64>,
}

impl Marks {
    fn add(&mut self, at: u64, soft: bool) {
        let slot = if soft { &mut self.soft } else { &mut self.hard };
        *slot = Some(slot.map_or(at, |t| t.max(at)));
    }

    fn verdict(&self, fetched_ms: u64) -> Verdict {
        if self.hard.is_some_and(|t| t >= fetched_ms) {
            Verdict::Hard
        } else if let Some(at_ms) = self.soft.filter(|&t| t >= fetched_ms) {
            Verdict::Soft { at_ms }
        } else {
            Verdict::Live
        }
    }
}

#[derive(Default)]
struct ServiceMarks {
    all: Marks,
    urls: HashMap<String, Marks>,
    prefixes: HashMap<String, Marks>,
    /// Distinct prefix lengths, so a lookup probes one map entry per length, not per record.
    prefix_lens: BTreeSet<usize>,
    tags: HashMap<String, Marks>,
}

impl ServiceMarks {
    fn apply(&mut self, target: &Target, at: u64, soft: bool) {
        match target {
            Target::All => self.all.add(at, soft),
            Target::Url(u) => self.urls.entry(u.clone()).or_default().add(at, soft),
            Target::Prefix(p) => {
                self.prefix_lens.insert(p.len());
                self.prefixes.entry(p.clone()).or_default().add(at, soft)
            }
            Target::Tag(t) => self.tags.entry(t.clone()).or_default().add(at, soft),
        }
    }

    /// Drop a target's marks once the service-wide marks cover them (after a fold).
    fn forget_covered(&mut self, target: &Target) {
        let all_hard = self.all.hard.unwrap_or(0);
        let all_any = all_hard.max(self.all.soft.unwrap_or(0));
        let covered = |m: &Marks| m.hard.is_none_or(|h| h <= all_hard) && m.soft.is_none_or(|s| s <= all_any);
        let map = match target {
            Target::Url(_) => &mut self.urls,
            Target::Prefix(_) => &mut self.prefixes,
            Target::Tag(_) => &mut self.tags,
            Target::All => return,
        };
        let (Target::Url(k) | Target::Prefix(k) | Target::Tag(k)) = target else { return };
        if map.get(k).is_some_and(covered) {
            map.remove(k);
        }
    }

    fn verdict(&self, url_key: &str, tags: &[String], fetched_ms: u64) -> Verdict {
        let mut worst = self.all.verdict(fetched_ms);
        // Hard wins; among soft purges the earliest counts: the object has been stale since then.
        let mut consider = |v: Verdict| {
            worst = match (worst, v) {
                (Verdict::Hard, _) | (_, Verdict::Hard) => Verdict::Hard,
                (Verdict::Soft { at_ms: a }, Verdict::Soft { at_ms: b }) => Verdict::Soft { at_ms: a.min(b) },
                (Verdict::Live, v) | (v, Verdict::Live) => v,
            };
        };
        if let Some(m) = self.urls.get(url_key) {
            consider(m.verdict(fetched_ms));
        }
        for &len in &self.prefix_lens {
            if len > url_key.len() {
                break;
            }
            if url_key.is_char_boundary(len)
                && let Some(m) = self.prefixes.get(&url_key[..len])
            {
                consider(m.verdict(fetched_ms));
            }
        }
        for tag in tags {
            if let Some(m) = self.tags.get(tag) {
                consider(m.verdict(fetched_ms));
            }
        }
        worst
    }
}

struct State {
    services: HashMap<String, ServiceMarks>,
    /// Records in the order they were made, for folding the oldest and rewriting the log.
    order: VecDeque<LogLine>,
    next_id: u64,
    lines_in_file: usize,
}

pub struct PurgeLog {
    state: RwLock<State>,
    file: Mutex<File>,
    path: PathBuf,
    max_records: usize,
    retention: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("purge log {path}: {message}")]
pub struct PurgeLogError {
    pub path: String,
    pub message: String,
}

impl PurgeLog {
    /// Open (or create) `dir/purges.jsonl`, replay it, drop expired records, and rewrite it compacted.
    pub fn open(dir: &Path, max_records: usize, retention: Duration, now: SystemTime) -> Result<Self, PurgeLogError> {
        let path = dir.join("purges.jsonl");
        let err = |message: String| PurgeLogError { path: path.display().to_string(), message };
        let mut state = State { services: HashMap::new(), order: VecDeque::new(), next_id: 1, lines_in_file: 0 };
        let horizon = ms(now).saturating_sub(retention.as_millis() as u64);
        if path.exists() {
            let file = File::open(&path).map_err(|e| err(format!("read: {e}")))?;
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| err(format!("read: {e}")))?;
                match serde_json::from_str::<LogLine>(&line) {
                    Ok(rec) => {
                        // A hand-edited or foreign log may hold any id: saturate rather than
                        // overflow (tests/fuzz's `purge_log` target reproduces it).
                        state.next_id = state.next_id.max(rec.id.saturating_add(1));
                        if rec.at_ms >= horizon {
                            state.order.push_back(rec);
                        }
                    }
                    // A torn last line after a crash: skip it, say so.
                    Err(e) => {
                        tracing::warn!(path = %path.display(), line = n + 1, error = %e, "skipping unreadable purge record")
                    }
                }
            }
        }
        let log = Self {
            state: RwLock::new(state),
            file: Mutex::new(File::create(path.with_extension("tmp")).map_err(|e| err(format!("create: {e}")))?),
            path: path.clone(),
            max_records,
            retention,
        };
        {
            let mut st = log.state.write().map_err(|_| err("lock poisoned".into()))?;
            let records: Vec<LogLine> = st.order.drain(..).collect();
            for rec in records {
                log.apply(&mut st, rec);
            }
        }
        log.rewrite().map_err(|e| err(format!("rewrite: {e}")))?;
        Ok(log)
    }

    /// Record a purge; returns its id once it is on disk.
    pub fn record(&self, service: &str, target: Target, soft: bool, now: SystemTime) -> Result<u64, PurgeLogError> {
        let err = |message: String| PurgeLogError { path: self.path.display().to_string(), message };
        let (line, rewrite) = {
            let mut st = self.state.write().map_err(|_| err("lock poisoned".into()))?;
            let id = st.next_id;
            // Saturates: past u64::MAX the last id repeats (ids name records in logs only).
            st.next_id = st.next_id.saturating_add(1);
            let rec = LogLine { id, at_ms: ms(now), service: service.to_string(), target, soft };
            let line = serde_json::to_string(&rec).map_err(|e| err(e.to_string()))?;
            self.apply(&mut st, rec);
            st.lines_in_file += 1;
            (line, st.lines_in_file > 2 * self.max_records + 1024)
        };
        if rewrite {
            self.rewrite().map_err(|e| err(format!("rewrite: {e}")))?;
        } else {
            let mut file = self.file.lock().map_err(|_| err("lock poisoned".into()))?;
            writeln!(file, "{line}").and_then(|_| file.sync_data()).map_err(|e| err(format!("append: {e}")))?;
        }
        let id = serde_json::from_str::<LogLine>(&line).map(|l| l.id).unwrap_or(0);
        Ok(id)
    }

    /// Is an object of `service`, stored under `url_key` with `tags`, whose fetch began at
    /// `fetched`, purged?
    pub fn verdict(&self, service: &str, url_key: &str, tags: &[String], fetched: SystemTime) -> Verdict {
        let Ok(st) = self.state.read() else { return Verdict::Hard };
        match st.services.get(service) {
            Some(marks) => marks.verdict(url_key, tags, ms(fetched)),
            None => Verdict::Live,
        }
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Records kept: per-target ones plus each service's service-wide marks.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .map(|s| {
                let alls: usize =
                    s.services.values().map(|m| m.all.hard.is_some() as usize + m.all.soft.is_some() as usize).sum();
                s.order.len() + alls
            })
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&self, st: &mut State, rec: LogLine) {
        st.services.entry(rec.service.clone()).or_default().apply(&rec.target, rec.at_ms, rec.soft);
        if rec.target == Target::All {
            // Kept as the service's `all` marks, and rewritten from there.
            return;
        }
        st.order.push_back(rec);
        while st.order.len() > self.max_records {
            let Some(oldest) = st.order.pop_front() else { break };
            let marks = st.services.entry(oldest.service.clone()).or_default();
            marks.apply(&Target::All, oldest.at_ms, oldest.soft);
            marks.forget_covered(&oldest.target);
        }
    }

    /// Write the live records to a fresh file and swap it in (atomic rename).
    fn rewrite(&self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut out = File::create(&tmp)?;
        let count = {
            let st = self.state.read().map_err(|_| std::io::Error::other("lock poisoned"))?;
            // Service-wide marks first (they carry the latest id, so ids continue after a restart).
            let id = st.next_id.saturating_sub(1);
            let mut lines = 0;
            for (service, marks) in &st.services {
                for (at, soft) in [(marks.all.hard, false), (marks.all.soft, true)] {
                    let Some(at_ms) = at else { continue };
                    let rec = LogLine { id, at_ms, service: service.clone(), target: Target::All, soft };
                    writeln!(out, "{}", serde_json::to_string(&rec).map_err(std::io::Error::other)?)?;
                    lines += 1;
                }
            }
            for rec in &st.order {
                writeln!(out, "{}", serde_json::to_string(rec).map_err(std::io::Error::other)?)?;
            }
            lines + st.order.len()
        };
        out.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        let file = OpenOptions::new().append(true).open(&self.path)?;
        *self.file.lock().map_err(|_| std::io::Error::other("lock poisoned"))? = file;
        if let Ok(mut st) = self.state.write() {
            st.lines_in_file = count;
        }
        Ok(())
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_targets_become_log_keys() {
        let url = |u: &str| PurgeTarget::Url { url: u.to_owned() };
        let cases = [
            (url("http://Shop.Example/a?x=1"), Ok(Target::Url("shop.example/a?x=1".into()))),
            (url("https://shop.example:8443/a"), Ok(Target::Url("shop.example/a".into()))),
            (url("shop.example"), Ok(Target::Url("shop.example/".into()))),
            (
                PurgeTarget::Prefix { prefix: "shop.example/images/".into() },
                Ok(Target::Prefix("shop.example/images/".into())),
            ),
            (PurgeTarget::Tag { tag: "t".into() }, Ok(Target::Tag("t".into()))),
            (PurgeTarget::All, Ok(Target::All)),
            (PurgeTarget::Tag { tag: String::new() }, Err("bad_tag")),
            (url(""), Err("bad_url")),
            (url("/just/a/path"), Err("bad_url")),
            (PurgeTarget::Prefix { prefix: "a b/".into() }, Err("bad_prefix")),
        ];
        for (target, want) in cases {
            assert_eq!(Target::from_request(&target).map_err(|e| e.code()), want, "{target:?}");
        }
        assert_eq!(Target::Url("shop.example/a".into()).host(), Some("shop.example"));
    }

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn open(dir: &Path, max: usize) -> PurgeLog {
        PurgeLog::open(dir, max, Duration::from_secs(86_400), t(0)).unwrap()
    }

    #[test]
    fn purges_match_objects_fetched_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 100);
        let tags = ["product-1".to_string()];
        log.record("shop", Target::Url("a.test/x".into()), false, t(10)).unwrap();
        log.record("shop", Target::Prefix("a.test/img/".into()), true, t(10)).unwrap();
        log.record("shop", Target::Tag("product-1".into()), false, t(20)).unwrap();
        log.record("shop", Target::Tag("banner".into()), true, t(30)).unwrap();
        let soft_tags = ["banner".to_string()];
        let cases = [
            ("url purged", "a.test/x", &[][..], t(9), Verdict::Hard),
            ("fetched after the purge", "a.test/x", &[][..], t(11), Verdict::Live),
            ("url is exact", "a.test/xy", &[][..], t(9), Verdict::Live),
            ("prefix, soft", "a.test/img/1.png", &[][..], t(5), Verdict::Soft { at_ms: ms(t(10)) }),
            (
                "the earliest soft purge counts",
                "a.test/img/3",
                &soft_tags[..],
                t(5),
                Verdict::Soft { at_ms: ms(t(10)) },
            ),
            ("prefix not matching", "a.test/imgs", &[][..], t(5), Verdict::Live),
            ("tag", "a.test/p", &tags[..], t(15), Verdict::Hard),
            ("hard beats soft", "a.test/img/2", &tags[..], t(5), Verdict::Hard),
        ];
        for (name, url, tags, fetched, want) in cases {
            assert_eq!(log.verdict("shop", url, tags, fetched), want, "{name}");
        }
        assert_eq!(log.verdict("other", "a.test/x", &[], t(1)), Verdict::Live);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), 100);
            log.record("shop", Target::All, true, t(10)).unwrap();
            log.record("shop", Target::Url("a.test/x".into()), false, t(10)).unwrap();
        }
        let log = open(dir.path(), 100);
        assert_eq!(log.verdict("shop", "a.test/y", &[], t(5)), Verdict::Soft { at_ms: ms(t(10)) });
        assert_eq!(log.verdict("shop", "a.test/x", &[], t(5)), Verdict::Hard);
        assert_eq!(log.len(), 2);
        let id = log.record("shop", Target::All, false, t(11)).unwrap();
        assert_eq!(id, 3, "ids continue after a restart");
    }

    /// Regression (tests/fuzz `purge_log`): a record with the largest id replays, applies, and
    /// the log goes on recording after it.
    #[test]
    fn a_record_with_the_largest_id_replays() {
        let dir = tempfile::tempdir().unwrap();
        let line = format!(
            "{{\"id\":{},\"at_ms\":{},\"service\":\"shop\",\"kind\":\"url\",\"value\":\"shop.example/a\",\"soft\":false}}\n",
            u64::MAX,
            ms(t(5)),
        );
        std::fs::write(dir.path().join("purges.jsonl"), line).unwrap();
        let log = open(dir.path(), 100);
        assert_eq!(log.verdict("shop", "shop.example/a", &[], t(1)), Verdict::Hard);
        assert_eq!(log.record("shop", Target::All, false, t(10)).unwrap(), u64::MAX);
        assert_eq!(log.record("shop", Target::All, true, t(11)).unwrap(), u64::MAX);
        drop(log);
        assert_eq!(open(dir.path(), 100).verdict("shop", "shop.example/b", &[], t(9)), Verdict::Hard);
    }

    #[test]
    fn expired_records_are_dropped_and_torn_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), 100);
            log.record("shop", Target::All, false, t(10)).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(dir.path().join("purges.jsonl")).unwrap();
        write!(f, "{{\"id\":9,\"at_ms").unwrap();
        let log = PurgeLog::open(dir.path(), 100, Duration::from_secs(5), t(100)).unwrap();
        assert!(log.is_empty());
    }

    #[test]
    fn over_the_bound_the_oldest_folds_into_a_service_purge() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 3);
        for i in 0..10 {
            log.record("shop", Target::Url(format!("a.test/{i}")), false, t(10 + i)).unwrap();
        }
        assert!(log.len() <= 4, "bounded: {}", log.len());
        // Folding purges more, never less: every purged URL is still purged.
        for i in 0..10 {
            assert_eq!(log.verdict("shop", &format!("a.test/{i}"), &[], t(10)), Verdict::Hard, "{i}");
        }
        drop(log);
        let log = open(dir.path(), 3);
        assert_eq!(log.verdict("shop", "a.test/0", &[], t(10)), Verdict::Hard);
    }
}
