//! `edge-node`: run a node, check a config file, or run the local demo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edge_node::cli;

// Per request the node allocates and frees many small objects (headers, futures, a function's
// store and resource table); mimalloc's thread-local free lists serve them with less work than
// glibc's malloc (bench/functions.sh measures the difference).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "edge-node",
    version,
    about = "Outpost edge node: a caching reverse proxy for a CDN's points of presence",
    long_about = cli::long_about("edge-node"),
    after_long_help = cli::after_long_help("edge-node"),
    after_help = "Run with --help for examples, signals, exit status and files."
)]
struct Cli {
    #[command(flatten)]
    run: cli::RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and print every problem with its field path.
    ///
    /// One line per problem on stderr (`FILE: PATH: message`, or `FILE: PATH: warning:
    /// message`), then `FILE: ok` on stdout when there is no error. Beyond the file itself it
    /// loads `[[tls.certificates]]` as start-up would. Exit 0: no error (warnings allowed);
    /// 1: at least one error; 2: bad arguments.
    CheckConfig {
        /// The config file (TOML).
        file: PathBuf,
    },
    /// A sample origin and an edge node on loopback, with a self-signed certificate.
    ///
    /// Fetches one object twice over HTTP/1.1 and another twice over HTTP/2 with TLS, each
    /// showing a miss then a hit, prints curl lines to try and runs until Ctrl-C or SIGTERM.
    /// Writes its certificate, admin token and cache under $TMPDIR/outpost-demo-PID, removed
    /// when it stops.
    Demo(edge_node::demo::DemoArgs),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match args.command {
        Some(Command::CheckConfig { file }) => cli::check_config(&file, None),
        Some(Command::Demo(demo)) => cli::run_async("edge-node", async {
            cli::init_tracing("warn");
            edge_node::demo::run(demo).await.map_err(|e| format!("{e:#}"))
        }),
        None => {
            let Some(path) = args.run.config else {
                eprintln!("edge-node: --config FILE is required (or: edge-node check-config FILE, edge-node demo)");
                return ExitCode::from(2);
            };
            cli::run_async("edge-node", cli::run_node(&path, args.run.ready_file.as_deref(), None))
        }
    }
}
