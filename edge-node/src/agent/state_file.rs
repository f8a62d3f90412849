//! `control-state.json`: what the node last applied from the control plane (the sequence number
//! and every service record as of it), so that a node restarted while the control plane is down
//! serves what it served before (static stability), and resumes the stream after that number.
//!
//! Beside them, the earlier versions a service still runs because its newest version cannot
//! run on this node (see `services`), so a restarted node keeps running them.
//!
//! Written whole to a temporary file, synced, renamed over the old one and the directory
//! synced: a crash leaves the old state or the new, never half of one. Written before the
//! node acknowledges, so an acknowledged number is always on disk.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use outpost_config::{AcmeChallenge, CertificateRecord, Seq, ServiceRecord};
use serde::{Deserialize, Serialize};

use super::apply::Follower;

/// The file's format version, so a later format can tell an old file apart.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    format: u32,
    /// The control plane's log the number belongs to (absent from files written before logs
    /// had an identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    seq: Seq,
    services: Vec<ServiceRecord>,
    /// Earlier versions kept in force (absent from files written before there were any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kept: Vec<ServiceRecord>,
    /// ACME challenge answers in force: short-lived, but the stream resumes after them, so a
    /// node restarted mid-order must still answer (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    acme_challenges: Vec<AcmeChallenge>,
    /// The control plane's certificates (chains and names; their keys are files of their own,
    /// see `agent::certs`). Absent from files written before there were any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    certificates: Vec<CertificateRecord>,
}

/// The state as saved.
#[derive(Default)]
pub struct Saved {
    pub follower: Follower,
    /// Earlier versions kept in force in place of newer ones that cannot run here.
    pub kept: Vec<ServiceRecord>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StateFileError {
    pub path: String,
    pub message: String,
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state last saved; `None` when there is no file (a node that never followed).
    pub fn load(&self) -> Result<Option<Saved>, StateFileError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("read: {e}"))),
        };
        let disk: OnDisk = serde_json::from_slice(&text).map_err(|e| self.error(format!("parse: {e}")))?;
        if disk.format != FORMAT {
            return Err(self.error(format!("format {} is not {FORMAT}, the one this node reads", disk.format)));
        }
        let follower = Follower::restore(disk.log, disk.seq, disk.services, disk.certificates)
            .with_challenges(disk.acme_challenges);
        Ok(Some(Saved { follower, kept: disk.kept }))
    }

    /// Moves an unreadable file aside (`control-state.json.bad`), keeping it for inspection, so
    /// the node starts over with a snapshot instead of refusing to start.
    pub fn set_aside(&self) -> Result<PathBuf, StateFileError> {
        let aside = self.path.with_extension("json.bad");
        std::fs::rename(&self.path, &aside).map_err(|e| self.error(format!("rename to {}: {e}", aside.display())))?;
        Ok(aside)
    }

    /// Writes `follower` and the versions `kept` atomically and durably. Blocking: call it off
    /// the async threads.
    pub fn save(&self, follower: &Follower, kept: Vec<ServiceRecord>) -> Result<(), StateFileError> {
        let disk = OnDisk {
            format: FORMAT,
            log: follower.log().map(str::to_owned),
            seq: follower.seq(),
            services: follower.records().cloned().collect(),
            kept,
            acme_challenges: follower.challenges().cloned().collect(),
            certificates: follower.certificates().cloned().collect(),
        };
        let json = serde_json::to_vec(&disk).map_err(|e| self.error(format!("serialize: {e}")))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.error(format!("create {}: {e}", dir.display())))?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename is durable once the directory entry is.
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| self.error(format!("write: {e}")))
    }

    fn error(&self, message: String) -> StateFileError {
        StateFileError { path: self.path.display().to_string(), message }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use outpost_config::{ServiceId, TenantId, Timestamp};

    use super::*;

    fn record(id: &str, version: u64) -> ServiceRecord {
        ServiceRecord {
            id: ServiceId::parse(id).unwrap(),
            tenant: TenantId::parse("acme").unwrap(),
            version: Seq(version),
            updated_at: Timestamp(0),
            config: serde_json::json!({"name": id, "hosts": [format!("{id}.test")], "origin": "http://127.0.0.1:1"}),
            function: None,
            verified_hosts: None,
        }
    }

    #[test]
    fn saves_and_loads_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("sub").join("control-state.json"));
        assert!(file.load().unwrap().is_none(), "no file yet");
        let follower = Follower::restore(
            Some("00112233aabbccdd".into()),
            Seq(9),
            vec![record("shop", 3), record("blog", 9)],
            vec![],
        );
        file.save(&follower, vec![record("shop", 2)]).unwrap();
        let saved = file.load().unwrap().unwrap();
        assert_eq!(saved.kept.len(), 1);
        assert_eq!(saved.kept[0].version, Seq(2));
        let back = saved.follower;
        assert_eq!((back.log(), back.seq()), (Some("00112233aabbccdd"), Seq(9)));
        let ids: Vec<_> = back.records().map(|r| (r.id.as_str().to_owned(), r.version)).collect();
        assert_eq!(ids, [("blog".to_owned(), Seq(9)), ("shop".to_owned(), Seq(3))]);
        assert!(!dir.path().join("sub").join("control-state.json.tmp").exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_and_can_be_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control-state.json");
        std::fs::write(&path, b"{\"format\": 1, \"seq\": 4, \"serv").unwrap();
        let file = StateFile::new(path.clone());
        let error = file.load().err().unwrap();
        assert!(error.to_string().contains("control-state.json: parse:"), "{error}");
        let aside = file.set_aside().unwrap();
        assert!(aside.ends_with("control-state.json.bad") && aside.exists() && !path.exists());
        assert!(file.load().unwrap().is_none());

        std::fs::write(&path, b"{\"format\": 2, \"seq\": 4, \"services\": []}").unwrap();
        let error = file.load().err().unwrap();
        assert!(error.to_string().contains("format 2 is not 1"), "{error}");
    }
}
