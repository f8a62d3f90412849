//! Config reload: the services a node serves come from two sources, its config file (re-read on
//! SIGHUP) and the control plane (set by the agent). Either change recompiles the whole set and
//! swaps the routing table in one step; requests in flight finish on the table they started with.
//!
//! On reload `[[services]]` and `[tls]` take effect, with what compiling them reads from the
//! other sections ([`applied_on_reload`]: `[upstream]`, the cache's object-size and heuristic
//! bounds, the trusted and tenant-upstream networks). The certificate files are read again (a
//! renewed certificate at the same path is picked up) and swapped in; a file that does not load
//! keeps the certificates in force, with a log line naming the entry and the problem.
//! Listeners, cache sizes and the other limits are bound at start; a reloaded file that changes
//! them is applied for the rest, and each such field is logged as needing a restart
//! ([`restart_only_changes`]). A binary upgrade (SIGUSR2, [`crate::handoff`]) is that restart
//! without dropping a connection.

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

    /// The routing table in force.
    pub fn router(&self) -> Arc<crate::route::Router> {
        self.state.routes.current()
    }

    /// A re-read config file (SIGHUP). On error the table in force stays. The certificates are
    /// reloaded first and on their own: a bad certificate file keeps the ones in force and does
    /// not hold up the services, nor they it.
    pub async fn reload_file(&self, file: NodeConfig) -> Result<usize, ReloadError> {
        self.reload_certificates(&file);
        let mut sources = self.sources.lock().await;
        for field in restart_only_changes(&sources.file, &file) {
            tracing::warn!(
                field,
                "this change takes effect only after a restart (or a binary upgrade, SIGUSR2); the rest of the file is applied now"
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

/// `old` with the fields a reload applies (compiled into the services) taken from `new`, so
/// that what still differs is what needs a restart.
fn applied_on_reload(old: &NodeConfig, new: &NodeConfig) -> NodeConfig {
    let mut merged = old.clone();
    merged.upstream = new.upstream.clone();
    merged.cache.max_object_size = new.cache.max_object_size;
    merged.cache.heuristic_fraction = new.cache.heuristic_fraction;
    merged.cache.max_heuristic_ttl = new.cache.max_heuristic_ttl;
    merged.listen.trusted_networks = new.listen.trusted_networks.clone();
    merged.limits.tenant_upstream_allow = new.limits.tenant_upstream_allow.clone();
    merged.tls = new.tls.clone();
    merged.services = new.services.clone();
    merged
}

/// What differs outside `[[services]]` and what a reload applies: the listeners, sizes and
/// paths bound at start. Named by field where operators change them most (addresses, cache
/// sizes), by section elsewhere.
fn restart_only_changes(old: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    let old = applied_on_reload(old, new);
    let (o, n) = (&old, new);
    let mut changed = Vec::new();
    let mut field = |differs: bool, name: &'static str| {
        if differs {
            changed.push(name);
        }
    };
    field(o.listen.http != n.listen.http, "listen.http");
    field(o.listen.https != n.listen.https, "listen.https");
    field(o.listen.admin != n.listen.admin, "listen.admin");
    field(o.listen.http3 != n.listen.http3, "listen.http3");
    let mut listen = o.listen.clone();
    (listen.http, listen.https, listen.admin, listen.http3) =
        (n.listen.http, n.listen.https, n.listen.admin, n.listen.http3);
    field(listen != n.listen, "listen (other fields)");
    field(o.cache.memory != n.cache.memory, "cache.memory");
    field(o.cache.disk != n.cache.disk, "cache.disk");
    field(o.cache.disk_path != n.cache.disk_path, "cache.disk_path");
    let mut cache = o.cache.clone();
    (cache.memory, cache.disk, cache.disk_path) = (n.cache.memory, n.cache.disk, n.cache.disk_path.clone());
    field(cache != n.cache, "cache (other fields)");
    field(o.node != n.node, "node");
    field(o.limits != n.limits, "limits");
    field(o.log != n.log, "log");
    field(o.functions != n.functions, "functions");
    field(o.control != n.control, "control");
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

    fn node(extra: &str) -> NodeConfig {
        let text = format!("[node]\nname = \"n\"\n[listen]\nhttp = \"127.0.0.1:80\"\n{extra}");
        outpost_config::parse(&text, std::path::Path::new("t.toml")).expect("config")
    }

    #[test]
    fn what_needs_a_restart_is_named_and_what_reload_applies_is_not() {
        let base = node("");
        let rows: &[(&str, &str, &[&str])] = &[
            ("nothing changed", "", &[]),
            ("the cache's memory size", "[cache]\nmemory = \"1MiB\"\n", &["cache.memory"]),
            // The functions' compiled-code cache lives under the disk path by default.
            ("the cache's path", "[cache]\ndisk_path = \"/tmp/elsewhere\"\n", &["cache.disk_path", "functions"]),
            (
                "object size and heuristics are compiled into services",
                "[cache]\nmax_object_size = \"1MiB\"\nheuristic_fraction = 0.2\n",
                &[],
            ),
            ("upstream defaults are compiled into services", "[upstream]\nconnect_timeout = \"3s\"\n", &[]),
            (
                "tenant upstream networks are compiled into services",
                "[limits]\ntenant_upstream_allow = [\"10.0.0.0/8\"]\n",
                &[],
            ),
            ("other limits are read at start", "[limits]\ndrain_timeout = \"3s\"\n", &["limits"]),
            ("log level", "[log]\nlevel = \"debug\"\n", &["log"]),
        ];
        for (name, extra, expected) in rows {
            let new = node(extra);
            assert_eq!(restart_only_changes(&base, &new), *expected, "{name}");
        }
        let moved = {
            let text = "[node]\nname = \"n\"\n[listen]\nhttp = \"127.0.0.1:81\"\nhttp3 = false\n";
            outpost_config::parse(text, std::path::Path::new("t.toml")).expect("config")
        };
        assert_eq!(restart_only_changes(&base, &moved), ["listen.http"]);
    }

    #[test]
    fn a_host_owned_twice_across_sources_is_refused() {
        let merged = merge(&[service("shop", "a.example")], &[service("api", "a.example")]);
        let errors = outpost_config::validate_service_set(&merged).expect_err("clash");
        assert_eq!(errors.0[0].path, "services[1].hosts[0]");
    }
}
