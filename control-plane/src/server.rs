//! Running the control plane: open the store (the redb file, or PostgreSQL with its head
//! follower, which wakes this replica's streams when another appends), bind the API (and the DNS server when `[dns]`
//! is set), start the PoP health checker, serve until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

/// Serves the API from `settings` until SIGTERM or SIGINT, then finishes the requests in
/// flight. Once listening, writes `{"api": "ADDR"}` (plus `"dns": "ADDR"` with `[dns]`) to
/// `ready_file`, whole and renamed into place so a reader never sees half of it.
pub async fn run(settings: Settings, ready_file: Option<&Path>) -> Result<(), RunError> {
    let (store, postgres) = open_store(&settings).await?;
    let app = App::open(store, &settings).await?;
    // Other replicas append too: wake this one's streams (and DNS) when they do.
    let follower = postgres.map(|(store, pg)| {
        let nodes = app.nodes.clone();
        follow_head(store, pg, Arc::new(move |seq| nodes.appended(seq)))
    });
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
    if let Some(path) = ready_file {
        write_ready_file(path, addr, dns_addr)
            .map_err(|source| RunError::ReadyFile { path: path.to_path_buf(), source })?;
    }
    tracing::info!(%addr, store = %store_name(&settings), "control plane listening");
    let checker = crate::pops::spawn_checker(app.pops.clone());
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
    let shutdown = async move {
        shutdown_signal().await;
        // Node streams never end by themselves; end them so the shutdown can finish.
        nodes.shutdown();
        let _ = stop_dns.send(());
    };
    // The patience a stream has with a node that takes nothing: three heartbeats.
    let dead_peer = settings.nodes.heartbeat_interval.saturating_mul(3);
    crate::listen::serve(listener, api::router(app), &settings.limits, dead_peer, shutdown).await;
    checker.abort();
    if let Some(follower) = follower {
        follower.abort();
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

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for signals; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received; finishing requests in flight");
}
