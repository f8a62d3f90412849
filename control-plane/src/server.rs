//! Running the control plane: open the store (the redb file, or PostgreSQL with its head
//! follower, which wakes this replica's streams when another appends), bind the API (and the DNS server when `[dns]`
//! is set), start the PoP health checker, serve until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use outpost_sd_notify::Notifier;

use crate::api::{self, App};
use crate::dns::{DnsError, DnsServer, Sources};
use crate::settings::Settings;
use crate::store::postgres::{PostgresStore, follow_head};
use crate::store::{EmbeddedStore, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("ready file {path}: {source}")]
    ReadyFile { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Dns(#[from] DnsError),
    #[error("{0}")]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// Serves the API from `settings` until SIGTERM or SIGINT, then finishes the requests in
/// flight. Once listening, writes `{"api": "ADDR"}` (plus `"dns": "ADDR"` with `[dns]`) to
/// `ready_file`, whole and renamed into place so a reader never sees half of it.
/// systemd hears `READY=1` once the listeners are bound and `STOPPING=1` when a stop signal
/// arrives; `notifier` also pings the unit's watchdog while the API serves.
pub async fn run(settings: Settings, ready_file: Option<&Path>, notifier: Arc<Notifier>) -> Result<(), RunError> {
    // The key first: a missing or bad key file stops the start before anything is served.
    let keyring = Arc::new(crate::secrets::Keyring::load(&settings.secrets, &settings.data)?);
    let (store, postgres) = open_store(&settings).await?;
    let app = App::open(store, &settings, keyring).await?;
    // Other replicas append and change presence too: wake this one's streams (and DNS) when
    // they append, and its presence sync when they announce a change.
    let wake_sync = Arc::new(tokio::sync::Notify::new());
    let follower = postgres.map(|(store, pg)| {
        let nodes = app.nodes.clone();
        let wake = wake_sync.clone();
        follow_head(store, pg, Arc::new(move |seq| nodes.appended(seq)), Arc::new(move || wake.notify_one()))
    });
    crate::sync::first(&app.nodes, &app.pops).await;
    let syncer = crate::sync::spawn(app.nodes.clone(), app.pops.clone(), wake_sync);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| RunError::Bind { addr: settings.listen, source })?;
    let addr = listener.local_addr().map_err(|source| RunError::Bind { addr: settings.listen, source })?;
    let dns = match &settings.dns {
        Some(dns) => {
            let sources = Sources {
                pops: app.pops.clone(),
                store: app.store.clone(),
                head: app.nodes.head(),
                stats: app.dns_stats.clone(),
            };
            Some(DnsServer::bind(dns, sources).await?)
        }
        None => None,
    };
    let dns_addr = dns.as_ref().map(DnsServer::addr);
    let signals = StopSignals::new();
    if let Some(path) = ready_file {
        write_ready_file(path, addr, dns_addr)
            .map_err(|source| RunError::ReadyFile { path: path.to_path_buf(), source })?;
    }
    tracing::info!(%addr, store = %store_name(&settings), "control plane listening");
    tell(notifier.ready("serving"), "READY=1");
    let watchdog = notifier.spawn_watchdog();
    let checker = crate::pops::spawn_checker(app.pops.clone());
    let rechecker = crate::domains::recheck::spawn(app.store.clone(), app.domains.clone(), app.nodes.clone());
    // Certificates for tls = "auto" services: one round per acme.interval.
    let acme = crate::acme::Driver::new(app.clone(), settings.acme.clone()).spawn();
    let (stop_dns, dns_stopped) = tokio::sync::oneshot::channel::<()>();
    let dns = dns.map(|dns| {
        let zone = settings.dns.as_ref().map_or("", |d| d.zone.as_str());
        tracing::info!(addr = %dns.addr(), %zone, "dns listening (udp, tcp)");
        // Stops when told, or when the API stops without telling (`stop_dns` dropped).
        tokio::spawn(dns.run(async move {
            let _ = dns_stopped.await;
        }))
    });
    let nodes = app.nodes.clone();
    let nodes_at_stop = app.nodes.clone();
    let stopping = notifier.clone();
    let shutdown = async move {
        signals.wait().await;
        tell(stopping.stopping(None), "STOPPING=1");
        // Node streams never end by themselves; end them so the shutdown can finish.
        nodes.shutdown();
        let _ = stop_dns.send(());
    };
    // The patience a stream has with a node that takes nothing: three heartbeats.
    let dead_peer = settings.nodes.heartbeat_interval.saturating_mul(3);
    crate::listen::serve(listener, api::router(app), &settings.limits, dead_peer, shutdown).await;
    checker.abort();
    rechecker.abort();
    syncer.abort();
    crate::sync::end_lease(&nodes_at_stop, std::time::Duration::from_secs(2)).await;
    acme.abort();
    if let Some(follower) = follower {
        follower.abort();
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    if let Some(dns) = dns {
        let _ = dns.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The store `settings` choose: PostgreSQL (with what its follower needs) when `store.postgres`
/// is set, else the embedded file.
async fn open_store(
    settings: &Settings,
) -> Result<(Arc<dyn Store>, Option<(PostgresStore, crate::store::postgres::PostgresSettings)>), RunError> {
    let max_events = settings.limits.max_events;
    match &settings.postgres {
        Some(pg) => {
            tracing::info!(target = %pg.redacted(), "postgres: connecting");
            let store = PostgresStore::connect_with_retry(pg).await?.with_max_events(max_events);
            Ok((Arc::new(store.clone()), Some((store, pg.clone()))))
        }
        None => Ok((Arc::new(EmbeddedStore::open(&settings.data)?.with_max_events(max_events)), None)),
    }
}

fn store_name(settings: &Settings) -> String {
    match &settings.postgres {
        Some(pg) => format!("postgres {}", pg.redacted()),
        None => format!("redb {}", settings.data.display()),
    }
}

fn write_ready_file(path: &Path, addr: SocketAddr, dns: Option<SocketAddr>) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut ready = serde_json::json!({"api": addr.to_string()});
    if let Some(dns) = dns {
        ready["dns"] = serde_json::Value::String(dns.to_string());
    }
    std::fs::write(&tmp, ready.to_string())?;
    std::fs::rename(&tmp, path)
}

/// Logs a notification the service manager did not take (the API serves regardless).
fn tell(result: std::io::Result<()>, what: &str) {
    if let Err(error) = result {
        tracing::warn!(%error, "sd_notify: {what} not sent");
    }
}

/// SIGTERM and SIGINT stop the control plane. SIGHUP is taken too, so that one sent by habit
/// (`systemctl kill -s HUP`, a log rotation script) does not end the process, its default
/// action: nothing here is reloaded, which the log says.
struct StopSignals(Option<[tokio::signal::unix::Signal; 3]>);

impl StopSignals {
    /// Registered before READY=1, so no signal arrives while the default actions hold.
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::hangup()];
        match kinds.map(signal) {
            [Ok(term), Ok(int), Ok(hup)] => Self(Some([term, int, hup])),
            _ => {
                tracing::error!("cannot listen for signals; stop with SIGKILL");
                Self(None)
            }
        }
    }

    async fn wait(self) {
        let Some([mut term, mut int, mut hup]) = self.0 else {
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => tracing::warn!(
                    "SIGHUP: the control plane reloads nothing; restart it to apply a changed config file"
                ),
            }
        }
        tracing::info!("signal received; finishing requests in flight");
    }
}
