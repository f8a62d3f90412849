//! The control plane's authoritative DNS server for the CDN's zone (`[dns]`): it sends each
//! client to the edges of the nearest healthy, undrained PoP.
//!
//! - `settings`: `[dns]` (file form), compiled once into a [`zone::Zone`] (apex SOA and NS,
//!   what a name stands for) and a [`steer::Steering`] (client subnets → region → PoP order).
//! - `answer`: one query → one reply (the table of answers is there); `steer` picks the PoP
//!   from the [`crate::pops::PopTable`] the health checker keeps current.
//! - `services`: which service ids exist, cached as of the event log's head.
//! - `stats`: answer counters, reported by `GET /v1/pops`.
//! - This module: bind UDP and TCP on one port, and glue [`answer::Answerer`] to hickory's
//!   server loop, which owns the sockets, parses queries and writes responses (truncating
//!   over UDP, TC set, when an answer does not fit the client's payload size).
//!
//! A query flows: hickory parses it → `Handler` → `Answerer::answer` (zone rules; for
//! `<service>.<zone>`: does the service exist, where is the client, which PoP) → response with
//! the AA bit, the ECS option echoed → counters and a debug log line.

pub mod answer;
pub mod cidr;
pub mod services;
pub mod settings;
pub mod stats;
pub mod steer;
pub mod zone;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::opt::EdnsOption;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use outpost_config::Seq;
use tokio::sync::watch;

pub use settings::DnsSettings;
pub use stats::{Stats, StatsView};

use self::answer::Answerer;
use self::services::ServiceIndex;
use crate::pops::Pops;
use crate::store::Store;

/// Responses queued per TCP connection before the server waits on the client.
const TCP_RESPONSE_BUFFER: usize = 64;

/// Attempts at finding a port free for both UDP and TCP when `dns.listen` has port 0.
const PORT_ATTEMPTS: usize = 16;

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns: {0}")]
    Config(String),
    #[error("dns: listen on {addr} ({protocol}): {source}")]
    Bind { addr: SocketAddr, protocol: &'static str, source: std::io::Error },
}

/// A bound DNS server, not yet serving.
pub struct DnsServer {
    addr: SocketAddr,
    server: Server<Handler>,
}

/// What the server answers from, besides its settings.
pub struct Sources {
    pub pops: Arc<Pops>,
    pub store: Arc<dyn Store>,
    /// The event log's head (services created or deleted move it).
    pub head: watch::Receiver<Seq>,
    pub stats: Arc<Stats>,
}

impl DnsServer {
    /// Binds UDP and TCP on `settings.listen` (one port for both; with port 0, the first port
    /// free for both).
    pub async fn bind(settings: &DnsSettings, sources: Sources) -> Result<Self, DnsError> {
        let (zone, steering) = settings.compile().map_err(|problems| {
            let list: Vec<String> = problems.into_iter().map(|(path, message)| format!("{path}: {message}")).collect();
            DnsError::Config(list.join("; "))
        })?;
        let (udp, tcp) = bind_pair(settings.listen).await?;
        let addr =
            udp.local_addr().map_err(|source| DnsError::Bind { addr: settings.listen, protocol: "udp", source })?;
        let answerer = Answerer {
            zone,
            steering,
            pops: sources.pops,
            services: ServiceIndex::new(sources.store, sources.head),
            stats: sources.stats,
        };
        let mut server = Server::new(Handler(Arc::new(answerer)));
        server.register_socket(udp);
        server.register_listener(tcp, settings.tcp_timeout, TCP_RESPONSE_BUFFER);
        Ok(DnsServer { addr, server })
    }

    /// The bound address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` resolves, then stops accepting and waits for queries in flight.
    pub async fn run(mut self, stop: impl Future<Output = ()> + Send + 'static) {
        let token = self.server.shutdown_token().clone();
        tokio::spawn(async move {
            stop.await;
            token.cancel();
        });
        if let Err(error) = self.server.block_until_done().await {
            tracing::error!(%error, addr = %self.addr, "dns server stopped");
        }
    }
}

async fn bind_pair(listen: SocketAddr) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), DnsError> {
    let bind_error = |protocol, source| DnsError::Bind { addr: listen, protocol, source };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let udp = tokio::net::UdpSocket::bind(listen).await.map_err(|e| bind_error("udp", e))?;
        let port = udp.local_addr().map_err(|e| bind_error("udp", e))?.port();
        match tokio::net::TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // Port 0 gave a UDP port whose TCP twin is taken: try another.
            Err(e) if listen.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && attempts < PORT_ATTEMPTS => {}
            Err(e) => return Err(bind_error("tcp", e)),
        }
    }
}

/// hickory's request handler: the answerer's reply, as a DNS message.
pub struct Handler(pub Arc<Answerer>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let reply = self.0.answer(request).await;
        self.0.stats.count(reply.outcome);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = reply.authoritative;
        metadata.response_code = reply.rcode;
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns.set_version(0);
            if let Some(subnet) = reply.ecs {
                edns.options_mut().insert(EdnsOption::Subnet(subnet));
            }
            edns
        });
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            reply.answers.iter(),
            reply.authority.iter(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "dns: the response could not be sent");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}
