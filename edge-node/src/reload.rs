//! Config reload: the services a node serves come from two sources, its config file (re-read on
//! SIGHUP) and the control plane (set by the agent). Either change recompiles the whole set and
//! swaps the routing table in one step; requests in flight finish on the table they started with.
//!
//! `[[services]]` and `[tls]` take effect on reload: the certificate files are read again (a
//! renewed certificate at the same path is picked up) and swapped in; a file that does not
//! load keeps the certificates in force, with a log line naming the entry and the problem.
//! Listeners, cache sizes and limits are bound at start; a reloaded file that changes them is
//! applied for its services and the rest is logged as needing a restart.

use std::sync::Arc;

use outpost_config::{ConfigErrors, NodeConfig, ServiceConfig};
use tokio::sync::Mutex;

use crate::pipeline::NodeState;
use crate::route::Router;
use crate::service::{CompileError, compile_all};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The merged set breaks a rule across services (a name or host used twice).
    #[error("services: {0}")]
    Invalid(ConfigErrors),
    #[error("{0}")]
    Compile(#[from] CompileError),
    #[error("compiling services: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What the table in force was built from.
struct Sources {
    /// The config file as last loaded.
    file: NodeConfig,
    /// The control plane's services, when the node follows one.
    remote: Vec<ServiceConfig>,
}

pub struct Reloader {
    state: Arc<NodeState>,
    /// The HTTPS listener's certificates (none without `listen.https`).
    certs: Option<Arc<crate::listen::certs::Certs>>,
    /// Held across a recompile, so two reloads never interleave (the later one wins whole).
    sources: Mutex<Sources>,
}

impl Reloader {
    /// `file` is the config the node was started with; its services are already in force.
    pub fn new(state: Arc<NodeState>, file: NodeConfig, certs: Option<Arc<crate::listen::certs::Certs>>) -> Self {
        Self { state, certs, sources: Mutex::new(Sources { file, remote: Vec::new() }) }
    }

    /// A re-read config file (SIGHUP). On error the table in force stays. The certificates are
    /// reloaded first and on their own: a bad certificate file keeps the ones in force and does
    /// not hold up the services, nor they it.
    pub async fn reload_file(&self, file: NodeConfig) -> Result<usize, ReloadError> {
        self.reload_certificates(&file);
        let mut sources = self.sources.lock().await;
        for section in restart_only_changes(&sources.file, &file) {
            tracing::warn!(
                section,
                "this section's change takes effect only after a restart; the rest of the file is applied now"
            );
        }
        let count = self.apply(&file, &sources.remote).await?;
        sources.file = file;
        Ok(count)
    }

    /// Reads `[[tls.certificates]]` again and swaps them in; on a problem keeps those in force.
    fn reload_certificates(&self, file: &NodeConfig) {
        let Some(certs) = &self.certs else { return };
        match crate::listen::tls::load_sites(&file.tls.certificates) {
            Ok(sites) => {
                for p in crate::listen::tls_check::inspect(&file.tls.certificates, std::time::SystemTime::now()) {
                    tracing::warn!(field = %p.path, "TLS certificate: {}", p.message);
                }
                let count = sites.len();
                certs.set_file(sites, file.tls.default_host.clone());
                tracing::info!(certificates = count, "TLS certificates reloaded from the config file");
            }
            Err(error) => tracing::error!(
                field = %format!("tls.certificates[{}]", error.index),
                "TLS certificates not reloaded, the ones in force stay: {error}"
            ),
        }
    }

    /// The control plane's services, replacing the previous set from it. On error the table in
    /// force stays.
    pub async fn set_remote(&self, remote: Vec<ServiceConfig>) -> Result<usize, ReloadError> {
        let mut sources = self.sources.lock().await;
        let count = self.apply(&sources.file, &remote).await?;
        sources.remote = remote;
        Ok(count)
    }

    /// SIGHUP's other half: every buffered access-log line goes to the file in use, then the
    /// file is opened again by its path. logrotate's default (rename, then HUP) thus loses no
    /// line: the old file holds everything logged before the signal, the new one the rest.
    /// Done before the config is read, so a broken file still rotates the log.
    pub async fn reopen_logs(&self) {
        // A stuck disk must not hold up the reload: the writer answers within this or is left.
        const BOUND: std::time::Duration = std::time::Duration::from_secs(10);
        match self.state.access_log.reopen(BOUND).await {
            Ok(()) => tracing::info!("access log reopened"),
            Err(error) => tracing::warn!(%error, "access log: reopen failed"),
        }
    }

    /// The control plane's services as last set.
    pub async fn remote(&self) -> Vec<ServiceConfig> {
        self.sources.lock().await.remote.clone()
    }

    async fn apply(&self, file: &NodeConfig, remote: &[ServiceConfig]) -> Result<usize, ReloadError> {
        let mut cfg = file.clone();
        cfg.services = merge(&file.services, remote);
        outpost_config::validate_service_set(&cfg.services).map_err(ReloadError::Invalid)?;
        let count = cfg.services.len();
        // Compiling may load and compile edge functions: keep it off the request threads.
        let functions = self.state.functions.clone();
        let tenant: Vec<String> = remote.iter().map(|r| r.name.clone()).collect();
        let is_tenant = move |s: &ServiceConfig| tenant.contains(&s.name);
        let services = tokio::task::spawn_blocking(move || compile_all(&cfg, &functions, &is_tenant)).await??;
        self.state.routes.replace(Router::new(&services));
        tracing::info!(services = count, "services reloaded");
        Ok(count)
    }
}

/// The file's services, except those the control plane also defines (by name: the control
/// plane's version wins), then the control plane's.
fn merge(file: &[ServiceConfig], remote: &[ServiceConfig]) -> Vec<ServiceConfig> {
    file.iter().filter(|f| !remote.iter().any(|r| r.name == f.name)).chain(remote).cloned().collect()
}

/// The sections outside `[[services]]` that differ: reload does not rebind or resize them.
fn restart_only_changes(old: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.node != new.node {
        changed.push("node");
    }
    if old.listen != new.listen {
        changed.push("listen");
    }
    // `[tls]` is reloaded (`reload_certificates`).
    if old.cache != new.cache {
        changed.push("cache");
    }
    if old.limits != new.limits {
        changed.push("limits");
    }
    if old.upstream != new.upstream {
        changed.push("upstream");
    }
    if old.log != new.log {
        changed.push("log");
    }
    if old.functions != new.functions {
        changed.push("functions");
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, host: &str) -> ServiceConfig {
        let text = format!(
            "[node]\nname = \"n\"\n[listen]\nhttp = \"127.0.0.1:0\"\n\
             [[services]]\nname = \"{name}\"\nhosts = [\"{host}\"]\norigin = \"http://127.0.0.1:1\"\n"
        );
        let mut cfg = outpost_config::parse(&text, std::path::Path::new("t.toml")).expect("config");
        cfg.services.remove(0)
    }

    #[test]
    fn control_plane_services_replace_file_services_of_the_same_name() {
        let file = [service("shop", "a.example"), service("blog", "b.example")];
        let remote = [service("shop", "c.example"), service("api", "d.example")];
        let merged = merge(&file, &remote);
        let names: Vec<_> = merged.iter().map(|s| (s.name.as_str(), s.hosts[0].to_string())).collect();
        assert_eq!(names, [("blog", "b.example".into()), ("shop", "c.example".into()), ("api", "d.example".into())]);
    }

    #[test]
    fn a_host_owned_twice_across_sources_is_refused() {
        let merged = merge(&[service("shop", "a.example")], &[service("api", "a.example")]);
        let errors = outpost_config::validate_service_set(&merged).expect_err("clash");
        assert_eq!(errors.0[0].path, "services[1].hosts[0]");
    }
}
