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

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edge_node::cli;
use outpost_config::NodeRole;

#[derive(Parser)]
#[command(
    name = "origin-shield",
    version,
    about = "Outpost origin shield: the cache tier between edge nodes and origins",
    long_about = cli::long_about("origin-shield"),
    after_long_help = cli::after_long_help("origin-shield"),
    after_help = "Run with --help for examples, signals, exit status and files."
)]
struct Cli {
    /// `--config` takes the edge-node format; `node.role` is forced to "shield".
    #[command(flatten)]
    run: cli::RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and print every problem with its field path.
    ///
    /// One line per problem on stderr, then `FILE: ok` on stdout when there is no error.
    /// Exit 0: no error (warnings allowed); 1: at least one error; 2: bad arguments.
    CheckConfig {
        /// The config file (TOML, the edge-node format).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match args.command {
        Some(Command::CheckConfig { file }) => cli::check_config(&file, Some(NodeRole::Shield)),
        None => {
            let Some(path) = args.run.config else {
                eprintln!("origin-shield: --config FILE is required (or: origin-shield check-config FILE)");
                return ExitCode::from(2);
            };
            cli::run_async(
                "origin-shield",
                cli::run_node(&path, args.run.ready_file.as_deref(), Some(NodeRole::Shield)),
            )
        }
    }
}
