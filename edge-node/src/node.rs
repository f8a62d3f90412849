//! A running node: opens the cache, compiles the services, binds the listeners, and shuts down
//! gracefully (stop accepting, let requests in flight finish, flush the cache to disk).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper_util::server::graceful::GracefulShutdown;
use outpost_config::NodeConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::{self, Admin};
use crate::agent::Agent;
use crate::cache::{Cache, CacheOpenError};
use crate::handoff::binder::{BindError, Binder};
use crate::handoff::quic::{HandoffUdp, Tag};
use crate::handoff::successor::Takeover;
use crate::handoff::{Held, Listener};
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
    #[error("{0}")]
    Listen(#[from] BindError),
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
    /// Duplicates of the listening sockets, for a binary upgrade ([`crate::handoff`]).
    held: Vec<Held>,
    /// The QUIC socket's datagram routing and this process's connection-ID tag.
    quic_udp: Option<(Arc<HandoffUdp>, Tag)>,
    upgrade_timeout: std::time::Duration,
}

impl RunningNode {
    pub async fn start(cfg: NodeConfig) -> Result<Self, StartError> {
        Self::start_with(cfg, None).await
    }

    /// Like [`RunningNode::start`], on the sockets of the process `takeover` takes over from
    /// (a binary upgrade; the caller has waited for that process's disk cache release).
    pub async fn start_with(cfg: NodeConfig, takeover: Option<&mut Takeover>) -> Result<Self, StartError> {
        let mut binder = Binder::new(takeover);
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
        // The file's certificates, before the agent adds the control plane's (HTTPS only).
        let tls_certs = match cfg.listen.https {
            Some(_) => {
                let sites = tls::load_sites(&cfg.tls.certificates)?;
                // What start-up does not refuse (an expired certificate, names that miss a
                // host) is logged: check-config fails on the first, warns on the second.
                for p in listen::tls_check::inspect(&cfg.tls.certificates, std::time::SystemTime::now()) {
                    tracing::warn!(field = %p.path, "TLS certificate: {}", p.message);
                }
                Some(Arc::new(listen::certs::Certs::new(sites, cfg.tls.default_host.clone())))
            }
            None => None,
        };
        let reloader = Arc::new(Reloader::new(state.clone(), cfg.clone(), tls_certs.clone()));
        // The control plane's services as last saved, in force before the listeners serve.
        let agent = match &cfg.control {
            Some(control) => Some(
                Agent::prepare(
                    &cfg,
                    control,
                    reloader.clone(),
                    state.delivery.cache().clone(),
                    tls_certs.clone(),
                    state.acme.clone(),
                )
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
                let l = binder.tcp(Listener::Http, addr).await?;
                let bound = l.local_addr().map_err(|source| StartError::Bind { field: "http", addr, source })?;
                tasks.spawn(listen::serve(l, None, state.clone(), shutdown_rx.clone(), graceful.clone()));
                Some(bound)
            }
            None => None,
        };
        let mut quic = None;
        let mut quic_udp = None;
        let https = match cfg.listen.https {
            Some(addr) => {
                let certs = tls_certs.clone().unwrap_or_else(|| Arc::new(listen::certs::Certs::new(Vec::new(), None)));
                let mut server = tls::server_config(certs.clone())?;
                crate::acme::answer_tls_alpn(&mut server, state.acme.clone());
                let server = Arc::new(server);
                let l = binder.tcp(Listener::Https, addr).await?;
                let bound = l.local_addr().map_err(|source| StartError::Bind { field: "https", addr, source })?;
                let mut alt_svc = None;
                if cfg.listen.http3 {
                    // Same IP and port number as the TCP listener, on UDP.
                    let options = listen::h3::QuicOptions::from_config(&cfg.listen);
                    let quic_config = listen::h3::server_config(certs.clone(), &cfg.limits, options)?;
                    let predecessor = binder.predecessor_quic();
                    let tag = crate::handoff::quic::new_tag(predecessor.as_ref().map(|(t, _)| *t));
                    let (endpoint, udp) = listen::h3::endpoint(binder.udp(bound)?, quic_config, tag)?;
                    if let Some((their_tag, to)) = predecessor {
                        udp.forward_to_predecessor(their_tag, to).map_err(|source| StartError::Bind {
                            field: "https (UDP)",
                            addr: bound,
                            source,
                        })?;
                    }
                    quic_udp = Some((udp, tag));
                    alt_svc = Some(listen::alt_svc(bound.port(), cfg.listen.alt_svc_max_age));
                    tasks.spawn(listen::h3::serve(
                        endpoint.clone(),
                        certs.clone(),
                        state.clone(),
                        options,
                        shutdown_rx.clone(),
                    ));
                    quic = Some(endpoint);
                }
                let tls = Arc::new(Tls { config: server, certs, alt_svc });
                tasks.spawn(listen::serve(l, Some(tls), state.clone(), shutdown_rx.clone(), graceful.clone()));
                Some(bound)
            }
            None => None,
        };
        let admin_listener = binder.tcp(Listener::Admin, cfg.listen.admin).await?;
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
            held: binder.held,
            quic_udp,
            upgrade_timeout: cfg.limits.upgrade_timeout,
        })
    }

    /// A binary upgrade (SIGUSR2): starts `exe args` and hands this node's sockets and disk
    /// cache to it ([`crate::handoff::upgrade`]). On success the caller stops this node with
    /// [`RunningNode::shutdown_handed_over`]; on failure this node serves on as before.
    pub async fn upgrade(
        &self,
        exe: &std::path::Path,
        args: &[std::ffi::OsString],
    ) -> Result<crate::handoff::upgrade::HandedOver, crate::handoff::upgrade::UpgradeError> {
        let handover = crate::handoff::upgrade::Handover {
            held: &self.held,
            quic: self.quic_udp.clone(),
            cache: self.admin.state.delivery.cache().clone(),
            timeout: self.upgrade_timeout,
        };
        crate::handoff::upgrade::run(exe, args, handover).await
    }

    /// Stop after a handoff: QUIC datagrams are the successor's to read (ours come through
    /// it); HTTP/1.1 connections get `Connection: close` on their next response for a while
    /// before idle ones are closed, so a client never sends a request into a closing
    /// connection; the rest as [`RunningNode::shutdown`], within `limits.drain_timeout`.
    pub async fn shutdown_handed_over(self) {
        if let Some((udp, _)) = &self.quic_udp {
            udp.stop_reading_udp();
        }
        // The admin listener is the successor's too: its /readyz must not meet this process's
        // 503 while it drains.
        let _ = self.admin_shutdown.send(true);
        let linger = crate::handoff::linger(self.drain_timeout);
        self.shutdown_after(linger).await;
    }

    /// Stop accepting, let requests in flight finish (at most `limits.drain_timeout`), flush
    /// the cache to disk.
    pub async fn shutdown(self) {
        self.shutdown_after(std::time::Duration::ZERO).await;
    }

    /// The drain, after `linger` with connections still open (within `limits.drain_timeout`).
    async fn shutdown_after(mut self, linger: std::time::Duration) {
        if let Some(agent) = self.agent.take() {
            agent.abort();
        }
        self.admin.ready.store(false, Ordering::Release);
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        // The accept loops have closed their listeners; closing the duplicates too makes a
        // stopped node refuse new connections at once rather than queue them unanswered
        // (after a handoff the successor holds its own copies).
        self.held.clear();
        let lingered = std::time::Instant::now();
        while self.graceful.count() > 0 && lingered.elapsed() < linger {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let drain = self.drain_timeout.saturating_sub(lingered.elapsed());
        // The accept loops have ended, so this is the last handle.
        let tcp = async {
            if let Ok(graceful) = Arc::try_unwrap(self.graceful)
                && tokio::time::timeout(drain, graceful.shutdown()).await.is_err()
            {
                tracing::warn!(timeout = ?self.drain_timeout, "drain timed out; closing remaining connections");
            }
        };
        let quic = async {
            if let Some(endpoint) = self.quic {
                listen::h3::drain(endpoint, drain).await;
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
