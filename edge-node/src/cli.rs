//! What the `edge-node` and `origin-shield` binaries share: validate a config file, run a node
//! from one until SIGTERM/SIGINT, and set up logging. Each binary only parses its arguments.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use outpost_config::{ConfigErrors, NodeRole};
use outpost_sd_notify::Notifier;
use tracing_subscriber::EnvFilter;

use crate::handoff::successor::{Takeover, TakeoverError};
use crate::handoff::upgrade::HandedOver;
use crate::listen::tls_check::{self, Severity};
use crate::{RunningNode, StartError};

/// `--help`'s description of a node binary (`edge-node`, `origin-shield`), as a man page's
/// DESCRIPTION.
pub fn long_about(program: &str) -> String {
    let role = if program == "origin-shield" {
        "Outpost origin shield: the cache tier between edge nodes and origins. It runs the edge \
         node's pipeline in the shield role (`node.role` is \"shield\" whatever the file says): \
         misses from many edges collapse into one origin fetch."
    } else {
        "Outpost edge node: a caching reverse proxy for a CDN's points of presence. It accepts \
         HTTP/1.1, HTTP/2 and HTTP/3 (TLS by SNI), routes by Host to the configured services, \
         serves from a memory and disk cache under RFC 9111, and fetches misses from the \
         service's shields or origin."
    };
    format!(
        "{role}\n\nWith --config it runs until SIGTERM or SIGINT. Logs go to stderr (level: \
         log.level, or RUST_LOG); the access log (one JSON object per request) to stdout, a \
         file, or nowhere (log.access). Every config field is in README.md's configuration \
         reference and in /usr/share/doc/outpost-edge-node/examples/edge.toml."
    )
}

/// `--help`'s closing sections for a node binary: examples, signals, exit status, files and
/// environment, as a man page has them.
pub fn after_long_help(program: &str) -> String {
    let (file, demo) = match program {
        "origin-shield" => ("shield.toml", ""),
        _ => ("edge.toml", "\n  edge-node demo    # a local origin and node: a miss, then a hit"),
    };
    let config = format!("/etc/outpost/{file}");
    format!(
        "Examples:
  {program} --config /etc/outpost/{file}
  {program} --config {file} --ready-file /run/outpost/ready.json
  {program} check-config /etc/outpost/{file}{demo}

Signals:
  SIGTERM, SIGINT  Stop accepting, let requests in flight finish (at most limits.drain_timeout),
                   flush the cache index to disk, exit.
  SIGHUP           Re-read --config and swap the services it lists, whole; requests in flight
                   finish on the old ones. A file that does not load or compile is logged and
                   the services in force stay. Fields a reload cannot apply (listen
                   addresses, cache sizes, ...) are logged, each, as needing a restart.
  SIGUSR2          Binary upgrade, no connection dropped: start {program} again (same path and
                   arguments), hand it the listening sockets and the disk cache; once it is
                   ready (it sends systemd MAINPID= and READY=1), stop accepting, drain (at most
                   limits.drain_timeout) and exit 0. If it fails to start or is not ready within
                   limits.upgrade_timeout, it is killed and this process serves on. Under
                   systemd: systemctl kill --kill-who=main --signal=SIGUSR2 {program}

Exit status:
  0  stopped by a signal after draining; check-config: no error (warnings allowed)
  1  the config was refused, a listener or the cache could not be opened, or a runtime error;
     check-config: at least one error (one line each on stderr, with its field path)
  2  bad arguments

Files:
  {config:<26}the config the packaged unit ({program}.service) runs with
  /var/cache/outpost*       the disk tier (cache.disk_path; the unit's CacheDirectory=)
  /var/log/outpost          the access log when log.access names a file there (logrotate
                            reloads the unit after rotating: SIGHUP reopens it)

Environment:
  RUST_LOG            log filter, overrides log.level (e.g. info,edge_node::upstream=debug)
  NOTIFY_SOCKET       set by systemd (Type=notify): READY=1 once the listeners serve, RELOADING=1
                      and READY=1 around SIGHUP, STOPPING=1 when the drain begins
  OUTPOST_UPGRADE_SOCKET
                      set by a running node for the new process of a SIGUSR2 upgrade (the Unix
                      socket the listening sockets come through); not for operators
  WATCHDOG_USEC       set by systemd (WatchdogSec=): WATCHDOG=1 every half of it"
    )
}

/// The arguments that run a node, the same for both binaries.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Node config file (TOML). Required to run; relative paths inside it are resolved against
    /// its directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Once every listener is bound, write their addresses and the process id here as JSON,
    /// e.g. {"http":"127.0.0.1:8080","https":null,"admin":"127.0.0.1:9090","pid":4242} (for
    /// tests and scripts; under systemd, READY=1 says the same). A binary upgrade's new
    /// process writes it again.
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
    #[error("upgrade: {0}")]
    Takeover(#[from] TakeoverError),
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
/// whole and renamed so a reader never sees half a file, and systemd hears `READY=1`
/// ([`outpost_sd_notify`]; `STOPPING=1` when the drain begins, `RELOADING=1` around SIGHUP).
pub async fn run_node(config: &Path, ready_file: Option<&Path>, role: Option<NodeRole>) -> Result<(), RunError> {
    // The executable as it was named at start: once a package upgrade has replaced the file,
    // the same path starts the new binary (/proc/self/exe would name the deleted one).
    let upgrade = Upgrade {
        exe: std::env::current_exe().map_err(RunError::Signal)?,
        args: std::env::args_os().skip(1).collect(),
        predecessor_draining: Arc::new(AtomicBool::new(false)),
    };
    let cfg = outpost_config::load_as(config, role)?;
    init_tracing(&cfg.log.level);
    let notifier = Arc::new(Notifier::from_env());
    let drain_timeout = cfg.limits.drain_timeout;
    // Started by a running node's SIGUSR2: take its sockets, once its disk cache is released.
    let mut takeover = match std::env::var_os(crate::handoff::SOCKET_ENV) {
        Some(path) => {
            tracing::info!("upgrade: taking over from the running process");
            Some(Takeover::begin(path.into(), cfg.limits.upgrade_timeout).await?)
        }
        None => None,
    };
    let node = RunningNode::start_with(cfg, takeover.as_mut()).await?;
    // The handlers are in place before anyone learns the node is ready (the ready file, then
    // READY=1: systemd sends `systemctl reload`'s SIGHUP only to a ready unit): SIGHUP's
    // default action would end the process.
    let signals = Signals::new().map_err(RunError::Signal)?;
    if let Some(ready) = ready_file {
        let err = |source| RunError::ReadyFile { path: ready.to_path_buf(), source };
        let tmp = ready.with_extension("tmp");
        // With the process id: after a binary upgrade the file names the new process.
        let mut ready_json = serde_json::to_value(node.addrs).map_err(|e| err(e.into()))?;
        if let Some(map) = ready_json.as_object_mut() {
            map.insert("pid".into(), std::process::id().into());
        }
        let json = serde_json::to_vec(&ready_json).map_err(|e| err(e.into()))?;
        std::fs::write(&tmp, json).map_err(err)?;
        std::fs::rename(&tmp, ready).map_err(err)?;
    }
    match takeover {
        Some(takeover) => {
            let channel = takeover.ready().await?;
            tracing::info!("upgrade: serving; the previous process drains");
            // systemd follows this process from here (the unit has NotifyAccess=all).
            tell(notifier.ready_as_main("serving"), "MAINPID, READY=1");
            let draining = upgrade.predecessor_draining.clone();
            draining.store(true, Ordering::Release);
            // A plain thread: a blocked read must not hold up this process's own exit.
            std::thread::spawn(move || {
                channel.wait_closed();
                draining.store(false, Ordering::Release);
                tracing::info!("upgrade: the previous process has exited");
            });
        }
        None => tell(notifier.ready("serving"), "READY=1"),
    }
    let watchdog = notifier.spawn_watchdog();
    let stop = wait_for_stop(signals, &node, config, role, &notifier, &upgrade).await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    match stop {
        Stop::Signal => {
            tracing::info!("signal received; draining");
            // A drain may outlast the unit's TimeoutStopSec: ask for what limits.drain_timeout
            // allows.
            tell(notifier.stopping(Some(drain_timeout + STOP_MARGIN)), "STOPPING=1");
            node.shutdown().await;
        }
        Stop::HandedOver(handed) => {
            // Nothing more to systemd: the service is the new process's now.
            tracing::info!(pid = handed.pid, "upgrade: the new process serves; draining");
            node.shutdown_handed_over().await;
            // Closing the channel tells the new process the drain is over.
            drop(handed.channel);
        }
    }
    Ok(())
}

/// What a binary upgrade (SIGUSR2) starts, and whether the previous one still drains.
struct Upgrade {
    exe: PathBuf,
    args: Vec<OsString>,
    /// This process took over from one that has not exited yet: a further upgrade waits.
    predecessor_draining: Arc<AtomicBool>,
}

/// How [`wait_for_stop`] ended.
enum Stop {
    /// SIGTERM or SIGINT.
    Signal,
    /// SIGUSR2, and the new process serves.
    HandedOver(HandedOver),
}

/// Beyond `limits.drain_timeout`, the time a stop takes to flush the cache and end the admin
/// listener.
const STOP_MARGIN: Duration = Duration::from_secs(15);

/// Logs a notification the service manager did not take (the node serves regardless).
fn tell(result: std::io::Result<()>, what: &str) {
    if let Err(error) = result {
        tracing::warn!(%error, "sd_notify: {what} not sent");
    }
}

/// The signals a running node answers: SIGTERM and SIGINT stop it, SIGHUP reloads, SIGUSR2
/// upgrades the binary.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }
}

/// Until SIGTERM or SIGINT; each SIGHUP reopens the access log file, re-reads `config` and
/// reloads its services. A file
/// that does not load or compile is logged and the services in force stay.
async fn wait_for_stop(
    mut signals: Signals,
    node: &RunningNode,
    config: &Path,
    role: Option<NodeRole>,
    notifier: &Notifier,
    upgrade: &Upgrade,
) -> Stop {
    loop {
        tokio::select! {
            _ = signals.term.recv() => return Stop::Signal,
            _ = signals.int.recv() => return Stop::Signal,
            _ = signals.usr2.recv() => {
                if upgrade.predecessor_draining.load(Ordering::Acquire) {
                    tracing::warn!("SIGUSR2: upgrade refused: the previous process is still draining (at most limits.drain_timeout)");
                    continue;
                }
                tracing::info!(exe = %upgrade.exe.display(), "SIGUSR2: upgrading to a new process");
                // A stop signal meanwhile abandons the upgrade (the new process sees the
                // handoff socket close and exits) and stops this node.
                let outcome = tokio::select! {
                    o = node.upgrade(&upgrade.exe, &upgrade.args) => o,
                    _ = signals.term.recv() => return Stop::Signal,
                    _ = signals.int.recv() => return Stop::Signal,
                };
                match outcome {
                    Ok(handed) => return Stop::HandedOver(handed),
                    Err(error) => tracing::error!(%error, "upgrade failed; this process serves on"),
                }
            }
            _ = signals.hup.recv() => {
                tell(notifier.reloading(), "RELOADING=1");
                node.reloader.reopen_logs().await;
                tracing::info!(file = %config.display(), "SIGHUP: reloading services");
                let loaded = outpost_config::load_as(config, role);
                let result = match loaded {
                    Ok(cfg) => node.reloader.reload_file(cfg).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                // READY=1 ends the reload either way: the node serves, with the old services
                // when the new file was refused (the journal holds why).
                let status = match &result {
                    Ok(_) => "serving".to_string(),
                    Err(error) => format!("serving; last reload failed: {error}"),
                };
                if let Err(error) = result {
                    tracing::error!(%error, "reload failed; the services in force stay");
                }
                tell(notifier.ready(&status), "READY=1");
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
