//! What the `edge-node` and `origin-shield` binaries share: validate a config file, run a node
//! from one until SIGTERM/SIGINT, and set up logging. Each binary only parses its arguments.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use outpost_config::{ConfigErrors, NodeRole};
use tracing_subscriber::EnvFilter;

use crate::listen::tls_check::{self, Severity};
use crate::{RunningNode, StartError};

/// The arguments that run a node, the same for both binaries.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Node config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Once every listener is bound, write their addresses here as JSON (for tests and scripts).
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("ready file {path}: {source}")]
    ReadyFile { path: PathBuf, source: std::io::Error },
    #[error("signals: {0}")]
    Signal(std::io::Error),
}

/// `check-config FILE`: every problem, one line each on stderr (`FILE: PATH: message`, a
/// warning as `FILE: PATH: warning: message`), then `FILE: ok` on stdout when there is no
/// error. Exit 0: no error (warnings allowed); 1: at least one error; 2: bad arguments.
/// Beyond the file itself it checks `[[tls.certificates]]` as start-up would load them
/// ([`crate::listen::tls_check`]).
pub fn check_config(file: &Path, role: Option<NodeRole>) -> ExitCode {
    let cfg = match outpost_config::load_as(file, role) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let problems = tls_check::inspect(&cfg.tls.certificates, SystemTime::now());
    for p in &problems {
        let label = if p.severity == Severity::Warning { "warning: " } else { "" };
        eprintln!("{}: {}: {label}{}", file.display(), p.path, p.message);
    }
    if problems.iter().any(|p| p.severity == Severity::Error) {
        return ExitCode::FAILURE;
    }
    println!("{}: ok", file.display());
    ExitCode::SUCCESS
}

/// Run `fut` on a multi-threaded runtime; an error is printed as `program: error`.
pub fn run_async<E: std::fmt::Display>(program: &str, fut: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{program}: start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run a node from `config` (in `role`, if given, whatever the file says) until SIGTERM or
/// SIGINT, then drain. Once listening, the bound addresses go to `ready_file` as JSON, written
/// whole and renamed so a reader never sees half a file.
pub async fn run_node(config: &Path, ready_file: Option<&Path>, role: Option<NodeRole>) -> Result<(), RunError> {
    let cfg = outpost_config::load_as(config, role)?;
    init_tracing(&cfg.log.level);
    let node = RunningNode::start(cfg).await?;
    if let Some(ready) = ready_file {
        let err = |source| RunError::ReadyFile { path: ready.to_path_buf(), source };
        let tmp = ready.with_extension("tmp");
        let json = serde_json::to_vec(&node.addrs).map_err(|e| err(e.into()))?;
        std::fs::write(&tmp, json).map_err(err)?;
        std::fs::rename(&tmp, ready).map_err(err)?;
    }
    wait_for_stop(&node, config, role).await.map_err(RunError::Signal)?;
    tracing::info!("signal received; draining");
    node.shutdown().await;
    Ok(())
}

/// Until SIGTERM or SIGINT; each SIGHUP reopens the access log file, re-reads `config` and
/// reloads its services. A file that does not load or compile is logged and the services in
/// force stay.
async fn wait_for_stop(node: &RunningNode, config: &Path, role: Option<NodeRole>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                node.reloader.reopen_logs().await;
                tracing::info!(file = %config.display(), "SIGHUP: reloading services");
                let loaded = outpost_config::load_as(config, role);
                let result = match loaded {
                    Ok(cfg) => node.reloader.reload_file(cfg).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(error) = result {
                    tracing::error!(%error, "reload failed; the services in force stay");
                }
            }
        }
    }
}

/// Logs go to stderr (stdout carries the access log). `RUST_LOG` overrides `level`; foyer's
/// start-up chatter is kept at warn unless asked for.
pub fn init_tracing(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("foyer=warn,foyer_storage=warn,{level}")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
