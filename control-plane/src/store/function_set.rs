//! A service's uploaded function versions and its activation history: a pure value the store
//! reads, changes and writes back in one transaction, so the rules live here and are tested
//! without a store.
//!
//! Versions are numbered 1, 2, ... per service in upload order and never renumbered. Uploading
//! bytes the service already has returns that version (content-addressed: one version per
//! hash). At most `max_versions` are kept; beyond it the oldest that is not active goes.
//! `history` lists activations, oldest first; its last entry is the active version, and a
//! rollback returns to the entry before it.

use outpost_config::{FunctionRef, Timestamp};
use serde::{Deserialize, Serialize};

/// Activations remembered per service; older ones are forgotten (rollback reaches this far).
pub const MAX_HISTORY: usize = 100;

/// One uploaded version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionVersion {
    pub version: u32,
    /// SHA-256 of the bytes, 64 lower-case hex digits.
    pub sha256: String,
    pub size: u64,
    pub uploaded_at: Timestamp,
}

impl FunctionVersion {
    /// What a service record carries to name this version.
    pub fn reference(&self) -> FunctionRef {
        FunctionRef { version: self.version, sha256: self.sha256.clone(), size: self.size }
    }
}

/// A service's versions and activations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSet {
    /// Ascending by version.
    pub versions: Vec<FunctionVersion>,
    /// Activated versions, oldest first; the last is active. No two neighbours are equal.
    pub history: Vec<u32>,
    /// The number the next upload takes (0 before the first, read as 1).
    pub next_version: u32,
}

/// What [`FunctionSet::add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub version: FunctionVersion,
    /// False when the service already had these bytes (`version` is that upload).
    pub created: bool,
    /// Versions deleted to stay within `max_versions`: their bytes lose one reference.
    pub dropped: Vec<FunctionVersion>,
}

impl FunctionSet {
    /// The active version, if any.
    pub fn active(&self) -> Option<&FunctionVersion> {
        self.history.last().and_then(|v| self.version(*v))
    }

    /// The version a rollback returns to: the one active before the current one.
    pub fn previous(&self) -> Option<&FunctionVersion> {
        let at = self.history.len().checked_sub(2)?;
        self.history.get(at).and_then(|v| self.version(*v))
    }

    pub fn version(&self, version: u32) -> Option<&FunctionVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// Adds an upload of `sha256` (or finds the version that already has it), then deletes the
    /// oldest inactive versions beyond `max_versions` (at least 1 is kept: the new one).
    pub fn add(&mut self, sha256: &str, size: u64, at: Timestamp, max_versions: usize) -> Added {
        if let Some(found) = self.versions.iter().find(|v| v.sha256 == sha256) {
            return Added { version: found.clone(), created: false, dropped: Vec::new() };
        }
        let number = self.next_version.max(1);
        self.next_version = number.saturating_add(1);
        let version = FunctionVersion { version: number, sha256: sha256.to_owned(), size, uploaded_at: at };
        self.versions.push(version.clone());
        let dropped = self.prune(max_versions.max(1), number);
        Added { version, created: true, dropped }
    }

    /// Deletes the oldest versions that are neither active nor `keep` until at most `max`
    /// remain, and forgets them in the history.
    fn prune(&mut self, max: usize, keep: u32) -> Vec<FunctionVersion> {
        let active = self.history.last().copied();
        let mut dropped = Vec::new();
        while self.versions.len() > max {
            let Some(at) = self.versions.iter().position(|v| Some(v.version) != active && v.version != keep) else {
                break;
            };
            dropped.push(self.versions.remove(at));
        }
        if !dropped.is_empty() {
            self.history.retain(|v| !dropped.iter().any(|d| d.version == *v));
            self.history.dedup();
        }
        dropped
    }

    /// Makes `version` active; false if there is no such version.
    pub fn activate(&mut self, version: u32) -> bool {
        if self.version(version).is_none() {
            return false;
        }
        if self.history.last() != Some(&version) {
            self.history.push(version);
        }
        if self.history.len() > MAX_HISTORY {
            let excess = self.history.len() - MAX_HISTORY;
            self.history.drain(..excess);
        }
        true
    }

    /// Returns to the version active before the current one; false if there is none.
    pub fn roll_back(&mut self) -> bool {
        if self.previous().is_none() {
            return false;
        }
        self.history.pop();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn set_with(uploads: u8, max: usize) -> FunctionSet {
        let mut set = FunctionSet::default();
        for n in 1..=uploads {
            set.add(&hash(n), 10, Timestamp(0), max);
        }
        set
    }

    fn numbers(set: &FunctionSet) -> Vec<u32> {
        set.versions.iter().map(|v| v.version).collect()
    }

    #[test]
    fn uploads_number_from_one_and_the_same_bytes_are_one_version() {
        let mut set = set_with(2, 20);
        assert_eq!(numbers(&set), [1, 2]);
        let again = set.add(&hash(1), 10, Timestamp(5), 20);
        assert!(!again.created);
        assert_eq!(again.version.version, 1);
        assert_eq!(numbers(&set), [1, 2]);
        assert_eq!(set.add(&hash(3), 10, Timestamp(5), 20).version.version, 3);
    }

    #[test]
    fn beyond_the_bound_the_oldest_inactive_version_goes() {
        let mut set = set_with(2, 3);
        assert!(set.activate(1));
        let added = set.add(&hash(3), 10, Timestamp(0), 3);
        assert!(added.dropped.is_empty());
        let added = set.add(&hash(4), 10, Timestamp(0), 3);
        // Version 1 is active, so 2 goes; numbers are never reused.
        assert_eq!(added.dropped.iter().map(|v| v.version).collect::<Vec<_>>(), [2]);
        assert_eq!(numbers(&set), [1, 3, 4]);
        assert_eq!(set.add(&hash(5), 10, Timestamp(0), 3).version.version, 5);
        assert_eq!(numbers(&set), [1, 4, 5]);
    }

    #[test]
    fn rollback_returns_to_the_version_active_before() {
        let mut set = set_with(3, 20);
        assert!(!set.roll_back(), "nothing active");
        assert!(set.activate(1));
        assert!(!set.roll_back(), "nothing before the first activation");
        assert!(set.activate(3));
        assert!(set.activate(3), "activating the active version changes nothing");
        assert_eq!(set.history, [1, 3]);
        assert!(set.roll_back());
        assert_eq!(set.active().map(|v| v.version), Some(1));
        assert!(!set.roll_back());
        assert!(!set.activate(9), "no such version");
    }

    #[test]
    fn dropped_versions_leave_the_history() {
        let mut set = set_with(2, 2);
        assert!(set.activate(1));
        assert!(set.activate(2));
        assert!(set.activate(1));
        // History [1, 2, 1]: uploading a third drops 2 (oldest inactive), leaving [1].
        let added = set.add(&hash(3), 10, Timestamp(0), 2);
        assert_eq!(added.dropped.len(), 1);
        assert_eq!(set.history, [1]);
        assert!(set.previous().is_none());
    }
}
