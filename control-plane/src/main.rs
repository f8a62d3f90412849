//! `control-plane`: run the API server, check its config file, or back up its store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "control-plane",
    version,
    about = "Outpost control plane: the API for service configs and purges",
    long_about = "Outpost control plane: the API tenants and operators call (services, purges, \
        edge functions), its store (one redb file), the numbered event log the edge nodes \
        follow and acknowledge, PoP health checks and, with [dns], the authoritative DNS server \
        that steers clients to healthy PoPs. Logs go to stderr (RUST_LOG sets the level). The \
        config file is described in README.md's \"Control plane\" section.",
    after_long_help = AFTER_LONG_HELP,
    after_help = "Run with --help for examples, signals, exit status and files."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--help`'s closing sections, as a man page has them.
const AFTER_LONG_HELP: &str = "Examples:
  control-plane run --config /etc/outpost/control-plane.toml
  control-plane run --config cp.toml --ready-file /run/outpost/cp-ready.json
  control-plane check-config /etc/outpost/control-plane.toml
  printf '%s' \"$TOKEN\" | sha256sum      # a [[tokens]] entry's sha256

Signals:
  SIGTERM, SIGINT  Stop accepting, end the node streams, finish the requests in flight, exit.
  SIGHUP           Logged and ignored: the file is read at start only; restart to apply it.

Exit status:
  0  stopped by a signal; check-config: the file is valid
  1  the config was refused, the store could not be opened, a listener could not be bound;
     check-config: at least one problem (one line each on stderr, with its field path)
  2  bad arguments

Files:
  /etc/outpost/control-plane.toml                     the config the packaged unit runs with
  /var/lib/outpost-control-plane/control-plane.redb  the store (data): back it up

Environment:
  RUST_LOG       log filter (default info,hickory_server=warn)
  NOTIFY_SOCKET  set by systemd (Type=notify): READY=1 once listening, STOPPING=1 on stop
  WATCHDOG_USEC  set by systemd (WatchdogSec=): WATCHDOG=1 every half of it";

#[derive(Subcommand)]
enum Command {
    /// Serve the API (and DNS, with [dns]) until SIGTERM or SIGINT.
    Run {
        /// Config file (TOML). Relative paths inside it are resolved against its directory.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Once listening, write the bound address here as JSON: {"api": "127.0.0.1:PORT"}.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Validate a config file and print every problem with its field path.
    ///
    /// One line per problem on stderr (`FILE: PATH: message`, type errors with their line and
    /// column), then `FILE: ok` on stdout when there is none. Exit 0: ok; 1: problems; 2: bad
    /// arguments.
    CheckConfig {
        /// The config file (TOML).
        file: PathBuf,
    },
    /// Write a consistent copy of the store to FILE (a new file). While the control plane
    /// runs, it makes the copy itself (POST /v1/backup, with an operator token); when it is
    /// stopped, the data file is copied directly. Restore: stop the control plane, replace
    /// the data file with the copy, start it. The PostgreSQL store is backed up with pg_dump.
    Backup {
        /// The control plane's config file (for `data` and `listen`).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The running control plane's API, when `listen` in the config is not how to reach it.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// An operator token, for a running control plane.
        #[arg(long, env = "OUTPOST_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The copy to write; must not exist.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Backup { config, url, token, file } => backup::command(&config, url, token, &file),
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
            let notifier = std::sync::Arc::new(outpost_sd_notify::Notifier::from_env());
            match runtime.block_on(control_plane::server::run(settings, ready_file.as_deref(), notifier)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("control-plane: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

mod backup {
    //! `control-plane backup`: directly from the data file when no control plane holds it,
    //! else through the running one's API (redb lets one process open the file).

    use std::path::Path;
    use std::process::ExitCode;
    use std::time::Duration;

    use control_plane::settings::Settings;
    use control_plane::store::{EmbeddedStore, Store};

    /// `control-plane backup`: prints what it wrote, or why not.
    pub fn command(config: &Path, url: Option<String>, token: Option<String>, file: &Path) -> ExitCode {
        let settings = match control_plane::settings::load(config) {
            Ok(settings) => settings,
            Err(errors) => {
                eprintln!("{errors}");
                return ExitCode::FAILURE;
            }
        };
        match run(&settings, url, token, file) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("control-plane backup: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn run(settings: &Settings, url: Option<String>, token: Option<String>, file: &Path) -> Result<String, String> {
        if settings.postgres.is_some() {
            return Err(
                "the store is PostgreSQL: back it up with pg_dump (a consistent copy while it serves)".to_owned()
            );
        }
        let file = std::path::absolute(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("start the runtime: {e}"))?;
        runtime.block_on(async {
            match EmbeddedStore::open(&settings.data) {
                Ok(store) => {
                    let records = store.backup(file.clone()).await.map_err(|e| e.to_string())?;
                    Ok(format!("{}: {records} records (from {}, not running)", file.display(), settings.data.display()))
                }
                // Held by the running control plane: it makes the copy.
                Err(held) => through_api(settings, url, token, &file)
                    .await
                    .map_err(|e| format!("{e} (opening the data file directly: {held})")),
            }
        })
    }

    async fn through_api(
        settings: &Settings,
        url: Option<String>,
        token: Option<String>,
        file: &Path,
    ) -> Result<String, String> {
        let url = url.unwrap_or_else(|| {
            let mut addr = settings.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        });
        let token = token.ok_or("the control plane runs: give an operator token (--token or OUTPOST_TOKEN)")?;
        let client =
            control_plane::ctl::Client::new(&url, Some(token), Duration::from_secs(600)).map_err(|e| e.to_string())?;
        let body = serde_json::json!({"path": file});
        let answer = client.send(http::Method::POST, "/v1/backup", Some(&body)).await.map_err(|e| e.to_string())?;
        Ok(format!("{}: {} records (from the control plane at {url})", file.display(), answer.body["records"]))
    }
}
