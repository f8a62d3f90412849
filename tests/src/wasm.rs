//! Guests for the edge-function tests: cargo projects built into WASI 0.2 components.
//!
//! [`build_guest`] runs `cargo build --release --locked --target wasm32-wasip2` on a project
//! (the test guests in `tests/guests/`, the SDK's examples in `wasm-sdk/`) and returns the
//! `.wasm` it produced. The nested cargo uses its own target directory,
//! `<repo>/target/wasm-guests`: the outer `cargo test` holds the lock of `<repo>/target` for as
//! long as it runs, so a nested build there would wait for ever. Each guest is built once per
//! test process; concurrent test processes take turns through a lock file in that directory.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::Context as _;

/// The WASI 0.2 target every guest is built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Which of a project's targets to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuestKind {
    /// `--bin NAME`
    Bin,
    /// `--example NAME`
    Example,
}

/// The repository's root (the directory of the workspace `Cargo.toml`).
pub fn repo_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).context("tests/ has no parent directory")
}

/// The directory the nested guest builds use as `CARGO_TARGET_DIR`.
pub fn guest_target_dir() -> anyhow::Result<PathBuf> {
    Ok(repo_root()?.join("target").join("wasm-guests"))
}

/// Builds the bin or example `name` of the cargo project (a package or a workspace) whose
/// `Cargo.toml` is in `project` for `wasm32-wasip2`, in release, `--locked`, and returns the path
/// of the component it produced.
///
/// The first call per `(project, kind, name)` in a process builds; later calls return the same
/// path (or the same error). The build's diagnostics go to the test's stderr.
///
/// ```no_run
/// use outpost_tests::wasm::{GuestKind, build_guest, repo_root};
/// let hello = build_guest(&repo_root()?.join("wasm-sdk"), GuestKind::Example, "hello")?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn build_guest(project: &Path, kind: GuestKind, name: &str) -> anyhow::Result<PathBuf> {
    type Built = HashMap<(PathBuf, GuestKind, String), Result<PathBuf, String>>;
    static BUILT: Mutex<Option<Built>> = Mutex::new(None);
    // Held for the whole build: tests of one process that need a guest wait for the one build.
    let mut built = BUILT.lock().map_err(|_| anyhow::anyhow!("an earlier guest build panicked"))?;
    let key = (project.to_path_buf(), kind, name.to_string());
    let result = built
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| cargo_build(project, kind, name).map_err(|e| format!("{e:#}")))
        .clone();
    result.map_err(|e| anyhow::anyhow!(e))
}

/// The probe guest of `tests/guests/`: one component whose request path picks its behaviour.
pub fn probe_guest() -> anyhow::Result<PathBuf> {
    build_guest(&repo_root()?.join("tests").join("guests"), GuestKind::Bin, "probe")
}

fn cargo_build(project: &Path, kind: GuestKind, name: &str) -> anyhow::Result<PathBuf> {
    let target_dir = guest_target_dir()?;
    std::fs::create_dir_all(&target_dir).with_context(|| format!("creating {}", target_dir.display()))?;
    // Test processes run in parallel; cargo would serialize them on its own lock too, but this one
    // also keeps their progress output apart. Released when `lock` drops (or the process ends).
    let lock_path = target_dir.join("build.lock");
    let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;

    let manifest = project.join("Cargo.toml");
    let selector = match kind {
        GuestKind::Bin => "--bin",
        GuestKind::Example => "--example",
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--release", "--locked", "--target", GUEST_TARGET, selector, name])
        .arg("--message-format=json-render-diagnostics")
        .env("CARGO_TARGET_DIR", &target_dir)
        // Host-only settings of the outer build must not reach the guest's.
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build {selector} {name} for {}", manifest.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "cargo build {selector} {name} --target {GUEST_TARGET} for {} failed: {} \
         (is the target installed? `rustup target add {GUEST_TARGET}`)",
        manifest.display(),
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| {
            m["filenames"]
                .as_array()?
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
        })
        .with_context(|| format!("cargo reported no {name}.wasm for {}", manifest.display()))
}
