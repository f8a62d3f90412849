//! Deployed edge functions: the `.wasm` files a service record's `function` names, kept in
//! `<state_dir>/functions/<sha256>.wasm`, and the records as the node runs them.
//!
//! A record with a function gets its config's `function.wasm` set to that file (the
//! `function` table is created with its defaults when the config has none); a record without
//! one loses any `function` table (settings for a function not deployed yet). A file missing
//! here is fetched from `GET /v1/functions/{sha256}` with the node token, its hash checked,
//! and written beside its final name, then renamed, so a half-written file is never used. The
//! files stay on disk while a record names them or a service runs them: a node restarted while
//! the control plane is down still has them. Files nothing names any more are removed after
//! each apply, so the directory holds at most a few versions per service.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use http::StatusCode;
use outpost_config::{FunctionRef, ServiceRecord};
use serde_json::Value;

use super::client::ControlClient;
use super::error::AgentError;

/// A record as the node runs it: its function file bound into its config, or why the file
/// cannot be had (the service then keeps the version it ran, as when one does not compile).
pub struct Bound {
    pub record: ServiceRecord,
    pub unavailable: Option<String>,
}

/// Why a function file is not here.
enum Unavailable {
    /// Retrying will not help.
    Gone(String),
    /// It may come on a later try.
    Retry(AgentError),
}

/// The directory of fetched functions.
pub struct FunctionFiles {
    dir: PathBuf,
}

impl FunctionFiles {
    /// `<state_dir>/functions`, made absolute (a service config's relative paths would be
    /// read against the node's config file instead).
    pub fn new(state_dir: &Path) -> Self {
        let dir = state_dir.join("functions");
        Self { dir: std::path::absolute(&dir).unwrap_or(dir) }
    }

    /// The file of `function`. Its name is the hash, checked to be hex first: nothing from the
    /// wire becomes a path unchecked.
    pub fn path(&self, function: &FunctionRef) -> Result<PathBuf, AgentError> {
        if !FunctionRef::is_sha256(&function.sha256) {
            return Err(protocol(format!("function hash {:?} is not 64 lower-case hex digits", function.sha256)));
        }
        Ok(self.dir.join(format!("{}.wasm", function.sha256)))
    }

    /// `records` as the node runs them: each function file present (fetched if missing) and
    /// bound into its config. A file that cannot be had marks its record unavailable (the
    /// service keeps the version it ran) when the cause will not go away by retrying: the
    /// control plane no longer has it (a version pruned or a service deleted since the record
    /// was sent), it is larger than this node takes, or it arrived with another hash. Other
    /// causes (the control plane unreachable, a write error) fail the whole set, to be retried,
    /// unless `offline`: a node starting from its saved state runs what it has.
    pub async fn bind(
        &self,
        client: &ControlClient,
        records: impl Iterator<Item = &ServiceRecord>,
        offline: bool,
    ) -> Result<Vec<Bound>, AgentError> {
        let mut bound = Vec::new();
        for record in records {
            let mut record = record.clone();
            let mut unavailable = None;
            let wasm = match &record.function {
                Some(function) => match self.ensure(client, function).await {
                    Ok(path) => Some(path),
                    Err(Unavailable::Retry(e)) if !offline => return Err(e),
                    Err(Unavailable::Retry(e)) => {
                        unavailable = Some(format!("function {}: {e}", function.label()));
                        None
                    }
                    Err(Unavailable::Gone(why)) => {
                        unavailable = Some(format!("function {}: {why}", function.label()));
                        None
                    }
                },
                None => None,
            };
            bind_config(&mut record.config, wasm.as_deref());
            bound.push(Bound { record, unavailable });
        }
        Ok(bound)
    }

    /// The file of `function`, fetched first if it is not here.
    async fn ensure(&self, client: &ControlClient, function: &FunctionRef) -> Result<PathBuf, Unavailable> {
        let path = self.path(function).map_err(|e| Unavailable::Gone(e.to_string()))?;
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.len() == function.size) {
            return Ok(path);
        }
        if function.size > client.max_function() {
            return Err(Unavailable::Gone(format!(
                "{} bytes, more than this node fetches (control.max_message_size = {})",
                function.size,
                client.max_function()
            )));
        }
        let bytes = client.function(&function.sha256).await.map_err(|e| match e {
            AgentError::Refused { status, .. } if status == StatusCode::NOT_FOUND || status == StatusCode::GONE => {
                Unavailable::Gone(format!("the control plane no longer has it ({e})"))
            }
            e => Unavailable::Retry(e),
        })?;
        let got = crate::function::sha256_hex(&bytes);
        if got != function.sha256 {
            return Err(Unavailable::Gone(format!("arrived with hash {got}; not used")));
        }
        let (dir, tmp) = (self.dir.clone(), path.with_extension("wasm.tmp"));
        let final_path = path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &final_path)
        })
        .await;
        match written {
            Ok(Ok(())) => {
                tracing::info!(sha256 = %function.sha256, version = function.version, size = function.size, "function fetched");
                Ok(path)
            }
            Ok(Err(e)) => Err(Unavailable::Retry(protocol(format!("writing {}: {e}", path.display())))),
            Err(e) => Err(Unavailable::Retry(protocol(format!("writing {}: {e}", path.display())))),
        }
    }

    /// Removes the function files (and leftover temporary files) that none of `used` names.
    /// Failures are logged: a file left behind costs only disk.
    pub async fn remove_unused<'a>(&self, used: impl Iterator<Item = &'a FunctionRef>) {
        let keep: HashSet<String> = used.map(|f| format!("{}.wasm", f.sha256)).collect();
        let dir = self.dir.clone();
        let removed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut removed = Vec::new();
            for entry in entries {
                let name = entry?.file_name().to_string_lossy().into_owned();
                let ours = name.ends_with(".wasm") || name.ends_with(".wasm.tmp");
                if ours && !keep.contains(&name) {
                    std::fs::remove_file(dir.join(&name))?;
                    removed.push(name);
                }
            }
            Ok(removed)
        })
        .await;
        match removed {
            Ok(Ok(removed)) if removed.is_empty() => {}
            Ok(Ok(removed)) => tracing::info!(files = ?removed, "function files no service uses removed"),
            Ok(Err(e)) => tracing::warn!(dir = %self.dir.display(), error = %e, "removing unused function files"),
            Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e, "removing unused function files"),
        }
    }
}

/// Sets `config.function.wasm` to `wasm`, or drops the `function` table when there is none.
pub fn bind_config(config: &mut Value, wasm: Option<&Path>) {
    let Some(object) = config.as_object_mut() else { return };
    match wasm {
        Some(wasm) => {
            let function = object.entry("function").or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(function) = function.as_object_mut() {
                function.insert("wasm".to_owned(), Value::String(wasm.to_string_lossy().into_owned()));
            }
        }
        None => {
            object.remove("function");
        }
    }
}

fn protocol(message: String) -> AgentError {
    AgentError::Protocol { step: "function", message }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_deployed_function_is_bound_into_the_config() {
        let mut with_settings = json!({"name": "shop", "function": {"env": {"A": "1"}}});
        bind_config(&mut with_settings, Some(Path::new("/state/functions/ab.wasm")));
        assert_eq!(with_settings["function"], json!({"env": {"A": "1"}, "wasm": "/state/functions/ab.wasm"}));
        let mut bare = json!({"name": "shop"});
        bind_config(&mut bare, Some(Path::new("/f.wasm")));
        assert_eq!(bare["function"], json!({"wasm": "/f.wasm"}));
        let mut undeployed = json!({"name": "shop", "function": {"env": {"A": "1"}}});
        bind_config(&mut undeployed, None);
        assert_eq!(undeployed, json!({"name": "shop"}));
    }

    #[test]
    fn only_hex_hashes_become_file_names() {
        let files = FunctionFiles::new(Path::new("/state"));
        let bad = FunctionRef { version: 1, sha256: "../../etc/passwd".to_owned(), size: 1 };
        assert!(files.path(&bad).is_err());
        let good = FunctionRef { version: 1, sha256: "a".repeat(64), size: 1 };
        assert_eq!(files.path(&good).unwrap(), Path::new("/state/functions").join(format!("{}.wasm", "a".repeat(64))));
        // FIPS 180-2 test vector.
        assert_eq!(
            crate::function::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn files_no_record_names_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let files = FunctionFiles::new(dir.path());
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let functions = dir.path().join("functions");
        std::fs::create_dir_all(&functions).unwrap();
        for name in [format!("{a}.wasm"), format!("{b}.wasm"), format!("{b}.wasm.tmp"), "notes.txt".to_owned()] {
            std::fs::write(functions.join(name), b"x").unwrap();
        }
        let used = FunctionRef { version: 1, sha256: a.clone(), size: 1 };
        files.remove_unused(std::iter::once(&used)).await;
        let mut left: Vec<_> =
            std::fs::read_dir(&functions).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [format!("{a}.wasm"), "notes.txt".to_owned()]);
        // No directory yet: nothing to do, no error.
        FunctionFiles::new(&dir.path().join("none")).remove_unused(std::iter::empty()).await;
    }
}
