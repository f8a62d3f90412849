//! `origin-shield`: the second cache tier, between edge nodes and origins.
//!
//! This binary owns no pipeline of its own. It loads the same config format as `edge-node`,
//! sets `[node] role = "shield"` whatever the file says, and runs `edge_node::RunningNode`: the
//! same accept · route · cache · upstream · store · respond phases, so misses from many edges
//! collapse into one origin fetch and `Cache-Status` gains this tier's entry. Edges reach it over
//! HTTP/1.1 or HTTP/2 (h2c) on its `listen.http` address; its services name the real origins.
//!
//! ```text
//! origin-shield --config FILE [--ready-file PATH]   run; SIGTERM/SIGINT drain and stop
//! origin-shield check-config FILE                   validate; every problem with its field path
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edge_node::RunningNode;
use outpost_config::NodeRole;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "origin-shield",
    version,
    about = "Outpost origin shield: the cache tier between edge nodes and origins"
)]
struct Cli {
    /// Node config file (TOML), the same format as edge-node's; `node.role` is forced to "shield".
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Once every listener is bound, write their addresses here as JSON (for tests and scripts).
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and print every problem with its field path.
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        None => {
            let Some(path) = cli.config else {
                eprintln!("origin-shield: --config FILE is required (or: origin-shield check-config FILE)");
                return ExitCode::from(2);
            };
            run_async(run(path, cli.ready_file))
        }
    }
}

fn check_config(file: &Path) -> ExitCode {
    match outpost_config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("origin-shield: start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("origin-shield: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(path: PathBuf, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let mut cfg = outpost_config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.node.role = NodeRole::Shield;
    init_tracing(&cfg.log.level);
    let node = RunningNode::start(cfg).await?;
    if let Some(ready) = ready_file {
        // Written whole, then renamed, so a reader never sees half a file.
        let tmp = ready.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&node.addrs)?)?;
        std::fs::rename(&tmp, &ready)?;
    }
    wait_for_signal().await?;
    tracing::info!("signal received; draining");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Logs go to stderr (stdout carries the access log). `RUST_LOG` overrides `log.level`.
/// foyer's start-up chatter is kept at warn unless asked for.
fn init_tracing(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("foyer=warn,foyer_storage=warn,{level}")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
