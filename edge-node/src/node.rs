//! A running node: opens the cache, compiles the services, binds the listeners, and shuts down
//! gracefully (stop accepting, let requests in flight finish, flush the cache to disk).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper_util::server::graceful::GracefulShutdown;
use outpost_config::NodeConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::{self, Admin};
use crate::agent::Agent;
use crate::cache::{Cache, CacheOpenError};
use crate::listen::{self, ConnBuilders, Tls, tls};
use crate::pipeline::NodeState;
use crate::reload::Reloader;
use crate::respond::AccessLog;
use crate::route::{RouteTable, Router};
use crate::service::{CompileError, compile_all};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cache: {0}")]
    Cache(#[from] CacheOpenError),
    #[error("{0}")]
    Service(#[from] CompileError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("TLS config: {0}")]
    TlsConfig(#[from] rustls::Error),
    #[error("listen.{field} {addr}: {source}")]
    Bind { field: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("HTTP/3: {0}")]
    H3(#[from] listen::h3::H3Error),
    #[error("log.access: {0}")]
    AccessLog(std::io::Error),
    #[error("control: {0}")]
    Control(String),
    #[error("{0}")]
    AdminToken(#[from] admin::TokenError),
}

pub use crate::listen::BoundAddrs;

pub struct RunningNode {
    pub addrs: BoundAddrs,
    /// Swaps the services in force (SIGHUP, the control plane's agent).
    pub reloader: Arc<Reloader>,
    /// The agent following the control plane (`[control]`), stopped first on shutdown.
    agent: Option<tokio::task::JoinHandle<()>>,
    admin: Arc<Admin>,
    shutdown: watch::Sender<bool>,
    /// The admin listener stops last, so `/readyz` answers 503 while requests drain.
    admin_shutdown: watch::Sender<bool>,
    admin_task: tokio::task::JoinHandle<()>,
    graceful: Arc<GracefulShutdown>,
    tasks: JoinSet<()>,
    /// The QUIC endpoint, drained beside the TCP connections on shutdown.
    quic: Option<quinn::Endpoint>,
    drain_timeout: std::time::Duration,
}

impl RunningNode {
    pub async fn start(cfg: NodeConfig) -> Result<Self, StartError> {
        let metrics = crate::metrics::install();
        let cache = Cache::open(&cfg.cache).await?;
        let functions = Arc::new(crate::function::FunctionHost::new(&cfg.functions, &cfg.node));
        // The file's services are the operator's; the control plane's come later (the agent).
        let services = compile_all(&cfg, &functions, &|_| false)?;
        let state = Arc::new(NodeState {
            name: cfg.node.name.as_str().into(),
            role: cfg.node.role,
            via: http::HeaderValue::from_str(&format!("1.1 {}", cfg.node.name))
                .unwrap_or(http::HeaderValue::from_static("1.1 outpost")),
            routes: RouteTable::new(Router::new(&services)),
            delivery: Arc::new(crate::delivery::Delivery::new(
                cfg.node.name.as_str().into(),
                cache,
                Arc::new(crate::transform::image::Transcoder::from_limits(&cfg.limits)),
                Arc::new(crate::transform::compress::budget::Codecs::new(
                    cfg.limits.max_concurrent_encodes,
                    cfg.limits.max_codec_memory.as_u64(),
                )),
            )),
            limits: cfg.limits.clone(),
            builders: ConnBuilders::new(&cfg.limits),
            access_log: AccessLog::start(&cfg.log).map_err(StartError::AccessLog)?,
            functions,
            acme: Arc::new(crate::acme::Challenges::default()),
        });
        let reloader = Arc::new(Reloader::new(state.clone(), cfg.clone()));
        // The control plane's services as last saved, in force before the listeners serve.
        let agent = match &cfg.control {
            Some(control) => Some(
                Agent::prepare(&cfg, control, reloader.clone(), state.delivery.cache().clone(), state.acme.clone())
                    .await
                    .map_err(StartError::Control)?,
            ),
            None => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let mut tasks = JoinSet::new();

        let http = match cfg.listen.http {
            Some(addr) => {
                let l = bind("http", addr).await?;
                let bound = l.local_addr().map_err(|source| StartError::Bind { field: "http", addr, source })?;
                tasks.spawn(listen::serve(l, None, state.clone(), shutdown_rx.clone(), graceful.clone()));
                Some(bound)
            }
            None => None,
        };
        let mut quic = None;
        let https = match cfg.listen.https {
            Some(addr) => {
                let resolver = Arc::new(tls::CertResolver::load(&cfg.tls.certificates)?);
                // What start-up does not refuse (an expired certificate, names that miss a
                // host) is logged: check-config fails on the first, warns on the second.
                for p in listen::tls_check::inspect(&cfg.tls.certificates, std::time::SystemTime::now()) {
                    tracing::warn!(field = %p.path, "TLS certificate: {}", p.message);
                }
                let mut server = tls::server_config(resolver.clone())?;
                crate::acme::answer_tls_alpn(&mut server, state.acme.clone());
                let l = bind("https", addr).await?;
                let bound = l.local_addr().map_err(|source| StartError::Bind { field: "https", addr, source })?;
                let mut alt_svc = None;
                if cfg.listen.http3 {
                    // Same IP and port number as the TCP listener, on UDP.
                    let options = listen::h3::QuicOptions::from_config(&cfg.listen);
                    let quic_config = listen::h3::server_config(resolver.clone(), &cfg.limits, options)?;
                    let endpoint = listen::h3::bind(bound, quic_config)?;
                    alt_svc = Some(listen::alt_svc(bound.port(), cfg.listen.alt_svc_max_age));
                    tasks.spawn(listen::h3::serve(
                        endpoint.clone(),
                        resolver.clone(),
                        state.clone(),
                        options,
                        shutdown_rx.clone(),
                    ));
                    quic = Some(endpoint);
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
                let tls = Arc::new(Tls { acceptor, resolver, alt_svc });
                tasks.spawn(listen::serve(l, Some(tls), state.clone(), shutdown_rx.clone(), graceful.clone()));
                Some(bound)
            }
            None => None,
        };
        let admin_listener = bind("admin", cfg.listen.admin).await?;
        let admin_addr = admin_listener.local_addr().map_err(|source| StartError::Bind {
            field: "admin",
            addr: cfg.listen.admin,
            source,
        })?;
        let token = admin::AdminToken::from_config(&cfg.listen)?;
        if token.is_none() {
            tracing::warn!(
                "no listen.admin_token_file: the admin listener serves only /healthz, to anyone \
                 (401 elsewhere); set a token to reach /metrics, /purge and /upstreams"
            );
        }
        let admin = Arc::new(Admin {
            state: state.clone(),
            metrics,
            ready: true.into(),
            token,
            open_healthz: cfg.listen.admin_open_healthz,
            max_connections: cfg.listen.admin_max_connections,
        });
        let (admin_shutdown, admin_shutdown_rx) = watch::channel(false);
        let admin_task = tokio::spawn(admin::serve(admin_listener, admin.clone(), admin_shutdown_rx));
        let addrs = BoundAddrs { http, https, admin: admin_addr };
        tracing::info!(node = %cfg.node.name, ?addrs, services = services.len(), "edge node ready");
        let drain_timeout = cfg.limits.drain_timeout;
        Ok(Self {
            addrs,
            reloader,
            agent: agent.map(|agent| agent.spawn(addrs)),
            admin,
            shutdown,
            admin_shutdown,
            admin_task,
            graceful,
            tasks,
            quic,
            drain_timeout,
        })
    }

    /// Stop accepting, let requests in flight finish (at most `limits.drain_timeout`), flush
    /// the cache to disk.
    pub async fn shutdown(mut self) {
        if let Some(agent) = self.agent.take() {
            agent.abort();
        }
        self.admin.ready.store(false, Ordering::Release);
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        // The accept loops have ended, so this is the last handle.
        let tcp = async {
            if let Ok(graceful) = Arc::try_unwrap(self.graceful)
                && tokio::time::timeout(self.drain_timeout, graceful.shutdown()).await.is_err()
            {
                tracing::warn!(timeout = ?self.drain_timeout, "drain timed out; closing remaining connections");
            }
        };
        let quic = async {
            if let Some(endpoint) = self.quic {
                listen::h3::drain(endpoint, self.drain_timeout).await;
            }
        };
        tokio::join!(tcp, quic);
        self.admin.state.delivery.cache().close().await;
        // Every buffered access-log line is written before the process exits, within the same
        // bound as the drain: a stuck disk must not hold the exit up forever.
        if !self.admin.state.access_log.flush(self.drain_timeout.max(std::time::Duration::from_secs(1))).await {
            tracing::warn!("access log: not every line was written before exit (the disk did not keep up)");
        }
        let _ = self.admin_shutdown.send(true);
        let _ = self.admin_task.await;
        tracing::info!("edge node stopped");
    }
}

async fn bind(field: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { field, addr, source })
}
