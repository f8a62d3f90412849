//! `control-plane`: run the API server, or check its config file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "control-plane", version, about = "Outpost control plane: the API for service configs and purges")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until SIGTERM or SIGINT.
    Run {
        /// Config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Once listening, write the bound address here as JSON: {"api": "127.0.0.1:PORT"}.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Validate a config file and print every problem with its field path.
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CheckConfig { file } => match control_plane::settings::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, ready_file } => {
            let settings = match control_plane::settings::load(&config) {
                Ok(settings) => settings,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            // Logs go to stderr; RUST_LOG overrides the default level. hickory logs every DNS
            // query at info; ours are at debug (`control_plane::dns`), with the PoP picked.
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn"));
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("control-plane: start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(control_plane::server::run(settings, ready_file.as_deref())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("control-plane: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
