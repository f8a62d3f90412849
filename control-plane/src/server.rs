//! Running the control plane: open the store, bind, serve until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::{self, App};
use crate::settings::Settings;
use crate::store::{EmbeddedStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("ready file {path}: {source}")]
    ReadyFile { path: PathBuf, source: std::io::Error },
    #[error("serve: {0}")]
    Serve(std::io::Error),
}

/// Serves the API from `settings` until SIGTERM or SIGINT, then finishes the requests in
/// flight. Once listening, writes `{"api": "ADDR"}` to `ready_file`, whole and renamed into
/// place so a reader never sees half of it.
pub async fn run(settings: Settings, ready_file: Option<&Path>) -> Result<(), RunError> {
    let store = EmbeddedStore::open(&settings.data)?;
    let app = App::new(Arc::new(store), &settings);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| RunError::Bind { addr: settings.listen, source })?;
    let addr = listener.local_addr().map_err(|source| RunError::Bind { addr: settings.listen, source })?;
    if let Some(path) = ready_file {
        write_ready_file(path, addr).map_err(|source| RunError::ReadyFile { path: path.to_path_buf(), source })?;
    }
    tracing::info!(%addr, data = %settings.data.display(), "control plane listening");
    axum::serve(listener, api::router(app)).with_graceful_shutdown(shutdown_signal()).await.map_err(RunError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

fn write_ready_file(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::json!({"api": addr.to_string()}).to_string())?;
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
