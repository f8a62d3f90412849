//! `[health]`: how the control plane checks the PoPs' edge nodes.
//!
//! Each round (every `interval`) probes every registered edge node's admin `GET /healthz`
//! with `timeout`, at most `max_concurrent` at once. A node goes down after
//! `unhealthy_threshold` failed probes in a row and comes back after `healthy_threshold`
//! passing ones; its first probe after the control plane starts decides at once.
//!
//! **Detection time**: a node that stops answering is down at most
//! `unhealthy_threshold × interval + timeout` after its last passing probe (defaults:
//! 3 × 1s + 1s = 4s), and DNS answers move at that moment. A node that comes back is up
//! after `healthy_threshold` passing probes (defaults: about 2s) once its stream is open
//! again.
//!
//! **Credential**: the nodes' admin listeners need `Authorization: Bearer TOKEN` on `/healthz`
//! too (their `listen.admin_token_file`), so the probes send the token read from
//! `node_admin_token_file` (one token for the fleet's admin listeners). Without it they send
//! none, and a node that requires one fails with "status 401: set
//! health.node_admin_token_file" in the log and in `GET /v1/pops`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// A file holding the token the probes send as `Authorization: Bearer TOKEN`: the edge
    /// nodes' `listen.admin_token_file`. Read at start, whitespace around it ignored, 16 to
    /// 4096 visible ASCII characters; the file must not be readable by every user. Relative
    /// paths are resolved against the config file's directory. Default: none (no credential is
    /// sent: nodes with an admin token fail the probe with 401).
    pub node_admin_token_file: Option<PathBuf>,
    /// The token read from `node_admin_token_file` (never logged: `Debug` redacts it).
    #[serde(skip)]
    pub node_admin_token: Option<ProbeToken>,
    /// Time between the starts of two probe rounds. Shorter detects failures sooner and costs
    /// one HTTP request per edge node per round. Default: `"1s"`; 100ms to 5m.
    #[serde(with = "outpost_config::units::duration")]
    pub interval: Duration,
    /// How long one probe (connect, request, response head) may take; past it the probe
    /// fails. Default: `"1s"`; 10ms to 1m.
    #[serde(with = "outpost_config::units::duration")]
    pub timeout: Duration,
    /// Failed probes in a row before a node is down. Default: 3; 1 to 100.
    pub unhealthy_threshold: u32,
    /// Passing probes in a row before a down node is up. Default: 2; 1 to 100.
    pub healthy_threshold: u32,
    /// Probes in flight at once; the others of a round wait their turn, so a round of many
    /// nodes takes longer. Bounds the sockets the checker holds. Default: 32; 1 to 4096.
    pub max_concurrent: usize,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            node_admin_token_file: None,
            node_admin_token: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            max_concurrent: 32,
        }
    }
}

/// The probes' credential. `Debug` shows no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeToken(String);

impl ProbeToken {
    pub fn new(token: &str) -> Result<Self, String> {
        outpost_config::admin_token_problem(token)?;
        Ok(Self(token.to_owned()))
    }

    /// The `Authorization` value (RFC 6750 §2.1), marked sensitive so that HTTP/2 HPACK never
    /// indexes it and debug output hides it.
    pub fn authorization(&self) -> Option<http::HeaderValue> {
        let mut value = http::HeaderValue::try_from(format!("Bearer {}", self.0)).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

impl std::fmt::Debug for ProbeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeToken(<redacted>)")
    }
}

/// Reads the token of `node_admin_token_file` at `path`; the error says what is wrong with the
/// file (never its content).
pub fn read_token(path: &Path) -> Result<ProbeToken, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read \"{shown}\": {e}"))?;
    if !meta.is_file() {
        return Err(format!("\"{shown}\" is not a regular file"));
    }
    world_readable(&meta, path)?;
    // The file check above bounds nothing; a token is at most 4096 characters plus whitespace.
    if meta.len() > 64 * 1024 {
        return Err(format!("\"{shown}\" is {} bytes; a token file holds one token", meta.len()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read \"{shown}\": {e}"))?;
    ProbeToken::new(text.trim()).map_err(|problem| format!("\"{shown}\": {problem}"))
}

/// A secret readable by every user on the host is no secret (as ssh refuses such keys).
#[cfg(unix)]
fn world_readable(meta: &std::fs::Metadata, path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(format!("\"{}\" is readable by every user (mode {mode:03o}); `chmod 600` it", path.display()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn world_readable(_: &std::fs::Metadata, _: &Path) -> Result<(), String> {
    Ok(())
}

impl HealthSettings {
    /// The longest a dead node stays up: `unhealthy_threshold × interval + timeout`.
    pub fn detection_time(&self) -> Duration {
        self.interval.saturating_mul(self.unhealthy_threshold).saturating_add(self.timeout)
    }

    /// Reports each problem as `(field path, message)`.
    pub fn check(&self, report: &mut dyn FnMut(&str, String)) {
        let ranges = [
            ("health.interval", self.interval, Duration::from_millis(100), Duration::from_secs(300), "100ms to 5m"),
            ("health.timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60), "10ms to 1m"),
        ];
        for (path, value, min, max, range) in ranges {
            if value < min || value > max {
                report(path, format!("{value:?} is out of range; use {range}"));
            }
        }
        let counts = [
            ("health.unhealthy_threshold", usize::try_from(self.unhealthy_threshold).unwrap_or(usize::MAX), 100),
            ("health.healthy_threshold", usize::try_from(self.healthy_threshold).unwrap_or(usize::MAX), 100),
            ("health.max_concurrent", self.max_concurrent, 4096),
        ];
        for (path, value, max) in counts {
            if !(1..=max).contains(&value) {
                report(path, format!("{value} is out of range; use 1 to {max}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_detect_a_dead_node_in_four_seconds() {
        assert_eq!(HealthSettings::default().detection_time(), Duration::from_secs(4));
        let mut problems = Vec::new();
        HealthSettings::default().check(&mut |path, message| problems.push(format!("{path}: {message}")));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn the_token_file_is_read_trimmed_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
            path
        };
        let good = write("good", "  0123456789abcdef0123\n", 0o600);
        let token = read_token(&good).unwrap_or_else(|e| panic!("{e}"));
        let value = token.authorization().unwrap_or_else(|| panic!("a header value"));
        // RFC 6750 §2.1: `Bearer` SP token; sensitive, so HPACK never indexes it (RFC 7541 §7.1.3).
        assert_eq!(value.as_bytes(), b"Bearer 0123456789abcdef0123");
        assert!(value.is_sensitive());
        assert_eq!(format!("{token:?}"), "ProbeToken(<redacted>)", "Debug never shows it");
        // (case, file, what the error says)
        let cases = [
            ("a file every user may read", write("open", "0123456789abcdef0123", 0o644), "readable by every user"),
            ("too short to be a secret", write("short", "abc\n", 0o600), "3 characters"),
            ("two words", write("spaced", "0123456789 abcdef0123", 0o600), "visible ASCII"),
            ("a directory", dir.path().to_path_buf(), "not a regular file"),
            ("missing", dir.path().join("missing"), "cannot read"),
        ];
        for (case, path, want) in cases {
            let problem = read_token(&path).err().unwrap_or_default();
            assert!(problem.contains(want), "{case}: {problem}");
            assert!(!problem.contains("0123456789"), "{case}: the content is never shown: {problem}");
        }
    }

    #[test]
    fn each_bound_names_its_field() {
        let cases = [
            (HealthSettings { interval: Duration::from_millis(10), ..Default::default() }, "health.interval"),
            (HealthSettings { timeout: Duration::from_secs(61), ..Default::default() }, "health.timeout"),
            (HealthSettings { unhealthy_threshold: 0, ..Default::default() }, "health.unhealthy_threshold"),
            (HealthSettings { healthy_threshold: 101, ..Default::default() }, "health.healthy_threshold"),
            (HealthSettings { max_concurrent: 0, ..Default::default() }, "health.max_concurrent"),
        ];
        for (settings, field) in cases {
            let mut problems = Vec::new();
            settings.check(&mut |path, message| problems.push((path.to_owned(), message)));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].0, field);
            assert!(problems[0].1.contains("out of range"), "{problems:?}");
        }
    }
}
