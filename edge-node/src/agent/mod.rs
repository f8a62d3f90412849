//! The agent: follows the control plane (`[control]`), so the node serves the control plane's
//! services beside its file's and applies its purges.
//!
//! # Lifecycle
//! `Connecting` (register with `PUT /v1/nodes/{id}`, open `GET /v1/nodes/{id}/stream?after=N`,
//! N the last number applied and saved) → `Syncing` (a snapshot, or the events missed, up to
//! the head the registration reported) → `Following` (each new event as it comes; heartbeats)
//! → on any failure `Backoff` → `Connecting`, to the next of `control.urls` (see `failover`:
//! the next replica after a short jittered pause; a round of failures backs off, full-jitter
//! exponential from `control.backoff_min` up to `control.backoff_max`). Silence longer than
//! `control.heartbeat_timeout` is a failure. Whichever replica it reaches, the node resumes
//! from the last sequence number it applied and saved.
//!
//! # One run of lines
//! Every complete line that has arrived is applied in order to the [`Follower`] (pure, in
//! `apply`); what that asks of the node is carried out (the service set recompiled and swapped
//! through the [`Reloader`], purges recorded in the node's purge log); then
//! `control-state.json` is written (in `state_file`), and only then is the new number
//! acknowledged (`POST /v1/nodes/{id}/ack`, by a separate task, so the stream is never held up
//! by an ack). If carrying out fails, the state goes back to the one saved and the stream is
//! dropped: the next connection resumes from there.
//!
//! # Static stability
//! [`Agent::prepare`] loads the state file and puts its services in force before the node's
//! listeners serve: a node restarted while the control plane is down serves its last state.

mod apply;
mod certs;
mod client;
mod error;
mod failover;
mod functions;
mod services;
mod state_file;
mod stream;

use std::convert::Infallible;
use std::sync::Arc;

use std::collections::BTreeMap;

use outpost_config::{
    Ack, Advertise, ControlConfig, NodeAddresses, NodeConfig, NodeId, NodeRegistration, NodeRole, Seq, ServiceRecord,
    StreamMessage,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use apply::{Applied, Cause, Effects, Follower, ProtocolError, Purge};
pub use error::AgentError;
pub use state_file::{Saved, StateFile, StateFileError};

/// The stream's line reader and a record's config check, reachable by the fuzz targets in
/// `tests/fuzz` (they reach parsers through the public API only). Not for other use.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::services::parse as service_config;
    pub use super::stream::LineReader;
}

use self::certs::CertificateFiles;
use self::client::ControlClient;
use self::failover::Failover;
use self::functions::FunctionFiles;
use self::services::ServiceApplier;
use self::stream::LineReader;
use crate::cache::Cache;
use crate::cache::purge::{self, PurgeSource, Target};
use crate::http::backoff::{backoff, jitter};
use crate::listen::BoundAddrs;
use crate::metrics::{CONTROL_ACKED_SEQ, CONTROL_APPLIED_SEQ, CONTROL_CONNECTED, CONTROL_RECONNECTS};
use crate::reload::Reloader;

/// Where the agent is in its lifecycle (logged on each change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Registering and opening the stream.
    Connecting,
    /// Applying the snapshot or the events missed, up to the head at registration.
    Syncing,
    /// Caught up; applying events as they come.
    Following,
    /// Waiting before the next attempt.
    Backoff,
}

pub struct Agent {
    cfg: ControlConfig,
    node: NodeConfig,
    client: Arc<ControlClient>,
    reloader: Arc<Reloader>,
    cache: Arc<Cache>,
    follower: Follower,
    services: ServiceApplier,
    state_file: Arc<StateFile>,
    /// Deployed functions' files, fetched by hash.
    functions: FunctionFiles,
    /// What the node runs (service id → `"<version>:<sha256 first 12>"`), sent with each ack.
    running: BTreeMap<String, String>,
    /// The HTTPS listener's certificate set (none without `listen.https`): the control
    /// plane's certificates go in there.
    certs: Option<Arc<crate::listen::certs::Certs>>,
    /// The control plane's certificates' keys, on disk and loaded.
    certificate_files: CertificateFiles,
    /// The ACME challenge answers the listeners serve, rebuilt from the follower's.
    challenges: Arc<crate::acme::Challenges>,
}

impl Agent {
    /// Loads `control-state.json` and puts its services in force: call before the listeners
    /// serve. A missing file starts from nothing; an unreadable one is logged, set aside, and
    /// the node starts from nothing (the control plane sends a snapshot). Fails only when the
    /// client cannot be built (e.g. `control.ca` holds no certificate).
    pub async fn prepare(
        node: &NodeConfig,
        cfg: &ControlConfig,
        reloader: Arc<Reloader>,
        cache: Arc<Cache>,
        certs: Option<Arc<crate::listen::certs::Certs>>,
        challenges: Arc<crate::acme::Challenges>,
    ) -> Result<Self, String> {
        let id = NodeId::parse(&node.node.name)?;
        let client = Arc::new(ControlClient::new(cfg, id)?);
        let state_file = Arc::new(StateFile::new(cfg.state_file(&node.cache.disk_path)));
        let functions = FunctionFiles::new(cfg.state_dir(&node.cache.disk_path));
        let certificate_files = CertificateFiles::new(cfg.state_dir(&node.cache.disk_path));
        let mut agent = Self {
            cfg: cfg.clone(),
            node: node.clone(),
            client,
            reloader,
            cache,
            follower: Follower::default(),
            services: ServiceApplier::new(node.node.role),
            state_file,
            functions,
            running: BTreeMap::new(),
            certs,
            certificate_files,
            challenges,
        };
        let saved = agent.load_saved();
        agent.services = ServiceApplier::restore(node.node.role, saved.kept);
        agent.follower = saved.follower;
        agent.apply_challenges();
        let seq = agent.follower.seq();
        metrics::gauge!(CONTROL_APPLIED_SEQ).set(seq.0 as f64);
        metrics::gauge!(CONTROL_CONNECTED).set(0.0);
        if seq > Seq(0) {
            match agent.apply_services(true).await {
                Ok(count) => {
                    tracing::info!(seq = %seq, services = count, "serving the control plane's services as saved")
                }
                Err(e) => tracing::error!(error = %e, "putting the saved control-plane services in force"),
            }
            match agent.apply_certificates(true).await {
                Ok(count) => tracing::info!(certificates = count, "serving the control plane's certificates as saved"),
                Err(e) => tracing::error!(error = %e, "putting the saved control-plane certificates in force"),
            }
        }
        Ok(agent)
    }

    /// Starts following; the node's bound addresses (or those `[control.advertise]` sets) go
    /// into its registration. Abort the handle to stop.
    pub fn spawn(self, addrs: BoundAddrs) -> tokio::task::JoinHandle<()> {
        let registration = NodeRegistration {
            pop: self.node.node.pop.clone(),
            region: self.node.node.region.clone(),
            role: self.node.node.role,
            addresses: advertised(&self.cfg.advertise, &addrs),
        };
        tokio::spawn(self.run(registration))
    }

    fn load_saved(&self) -> Saved {
        match self.state_file.load() {
            Ok(Some(saved)) => saved,
            Ok(None) => Saved::default(),
            Err(e) => {
                tracing::error!(error = %e, "control state unreadable; starting over from a snapshot");
                if let Err(e) = self.state_file.set_aside() {
                    tracing::error!(error = %e, "setting the unreadable control state aside");
                }
                Saved::default()
            }
        }
    }

    async fn run(mut self, registration: NodeRegistration) {
        let (acks, acks_rx) = watch::channel(self.ack());
        // Dropped with this future (the node stops the agent by aborting it): stops the acks too.
        let mut tasks = JoinSet::new();
        tasks.spawn(acknowledge(self.client.clone(), acks_rx, self.cfg.clone()));
        let mut failover = Failover::new(self.client.url_count());
        loop {
            let Err(error) = self.session(&registration, &acks, &mut failover).await;
            metrics::gauge!(CONTROL_CONNECTED).set(0.0);
            metrics::counter!(CONTROL_RECONNECTS).increment(1);
            let failed = self.client.url().to_owned();
            let wait = failover.failed(self.cfg.backoff_min, self.cfg.backoff_max, jitter());
            self.client.use_url(failover.current());
            let next = self.client.url();
            if error.is_auth() {
                tracing::error!(url = %failed, %next, %error, ?wait, phase = ?Phase::Backoff, "control plane refused the node; check its token");
            } else {
                tracing::warn!(url = %failed, %next, %error, ?wait, phase = ?Phase::Backoff, "disconnected from the control plane");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One connection: register, open the stream, apply what comes. Ends only with an error.
    async fn session(
        &mut self,
        registration: &NodeRegistration,
        acks: &watch::Sender<Ack>,
        failover: &mut Failover,
    ) -> Result<Infallible, AgentError> {
        tracing::debug!(url = %self.client.url(), phase = ?Phase::Connecting, "connecting to the control plane");
        let registered = self.client.register(registration).await?;
        let head = registered.head;
        if let Some(log) = &registered.log
            && self.follower.follow_log(log)
        {
            tracing::warn!(url = %self.client.url(), %log, "the control plane's log is not the one this node followed (its \
                store was made anew): starting over from a snapshot, which soft-purges every service");
        }
        let after = self.follower.seq();
        let body = self.client.stream(after).await?;
        metrics::gauge!(CONTROL_CONNECTED).set(1.0);
        let mut phase = if after >= head { Phase::Following } else { Phase::Syncing };
        tracing::info!(url = %self.client.url(), after = %after, head = %head, ?phase, "connected to the control plane");
        // Function files that could not be had (at start, from the saved state, with the control
        // plane away): try again now that it answers, not only at the next change.
        if self.services.has_unavailable() {
            let count = self.apply_services(false).await?;
            tracing::info!(services = count, "control-plane services applied again with the functions fetched");
        }
        // Keys that could not be had (at start, offline): fetch them now that it answers.
        if self.follower.certificates().next().is_some() {
            let count = self.apply_certificates(false).await?;
            tracing::debug!(certificates = count, "control-plane certificates applied again");
        }
        // An acknowledgement may have been lost while the control plane was away: repeat it.
        if after > Seq(0) {
            acks.send_replace(self.ack());
        }
        let max_line = usize::try_from(self.cfg.max_message_size.as_u64()).unwrap_or(usize::MAX);
        let mut reader = LineReader::new(body, max_line, self.cfg.heartbeat_timeout);
        loop {
            let run = reader.next_run().await?;
            failover.streamed();
            self.apply_run(run).await?;
            if self.follower.seq() > acks.borrow().seq {
                acks.send_replace(self.ack());
            }
            if phase == Phase::Syncing && self.follower.seq() >= head {
                phase = Phase::Following;
                tracing::info!(seq = %self.follower.seq(), ?phase, "caught up with the control plane");
            }
        }
    }

    /// Applies a run of messages, carries out their effects, saves the state. On a failure to
    /// carry out, the state goes back to the one saved.
    async fn apply_run(&mut self, run: Vec<StreamMessage>) -> Result<(), AgentError> {
        let before = self.follower.seq();
        let mut effects = Effects::default();
        let mut order = Ok(());
        for message in run {
            match self.follower.apply(message, &mut effects) {
                Ok(Applied::Snapshot { seq, resync }) => {
                    tracing::info!(seq = %seq, resync, "snapshot from the control plane")
                }
                Ok(Applied::Duplicate(seq)) => tracing::debug!(seq = %seq, "event already applied; skipped"),
                Ok(Applied::Event(_) | Applied::Heartbeat { .. }) => {}
                Err(e) => {
                    // Apply what came before the gap, then drop the stream.
                    order = Err(e);
                    break;
                }
            }
        }
        if effects.is_empty() && self.follower.seq() == before {
            return order.map_err(AgentError::from);
        }
        if let Err(e) = self.carry_out(effects).await {
            self.follower = self.load_saved().follower;
            return Err(e);
        }
        let (file, follower, kept) = (self.state_file.clone(), self.follower.clone(), self.services.kept());
        let saved = tokio::task::spawn_blocking(move || file.save(&follower, kept)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.follower = self.load_saved().follower;
                return Err(e.into());
            }
            Err(e) => {
                self.follower = self.load_saved().follower;
                return Err(AgentError::Protocol { step: "apply", message: format!("saving the state: {e}") });
            }
        }
        metrics::gauge!(CONTROL_APPLIED_SEQ).set(self.follower.seq().0 as f64);
        order.map_err(AgentError::from)
    }

    /// Purges first, then services: a service that goes live (a snapshot's, after a resync)
    /// must never serve, even for a moment, what a purge in the same run removes. A purge of a
    /// service the node does not run yet is a record and nothing more.
    async fn carry_out(&mut self, effects: Effects) -> Result<(), AgentError> {
        for p in effects.purges {
            let target = match Target::from_request(&p.target) {
                Ok(target) => target,
                Err(e) => {
                    // The control plane checked it; a node cannot do better than say so.
                    tracing::error!(service = %p.service, cause = ?p.cause, error = %e, "purge target not applied");
                    continue;
                }
            };
            // A URL as the service's cache key shapes it (its query filtered or sorted).
            let target = self.reloader.router().purge_target(p.service.as_str(), target);
            purge::record(&self.cache, p.service.as_str(), target, p.soft, PurgeSource::Control).await?;
        }
        if effects.services_changed {
            let count = self.apply_services(false).await?;
            tracing::info!(seq = %self.follower.seq(), services = count, "control-plane services applied");
        }
        if effects.certificates_changed {
            let count = self.apply_certificates(false).await?;
            tracing::info!(seq = %self.follower.seq(), certificates = count, "control-plane certificates applied");
        }
        for (token, reason) in &effects.refused_challenges {
            tracing::error!(%token, %reason, "ACME challenge from the control plane not kept");
        }
        if effects.challenges_changed {
            self.apply_challenges();
        }
        Ok(())
    }

    /// Swaps the follower's certificates into the HTTPS listener's set, their keys fetched
    /// (or read from disk). Nothing to do on a node without `listen.https`.
    async fn apply_certificates(&mut self, offline: bool) -> Result<usize, AgentError> {
        let Some(certs) = &self.certs else { return Ok(0) };
        let follower = &self.follower;
        self.certificate_files
            .apply(&self.client, follower.certificates(), |id| follower.service(id), certs, offline)
            .await
    }

    /// Rebuilds the challenge answers the listeners serve from the follower's records
    /// (TLS-ALPN-01 certificates are made here, not in handshakes).
    fn apply_challenges(&self) {
        let set = crate::acme::ChallengeSet::build(self.follower.challenges());
        tracing::info!(seq = %self.follower.seq(), challenges = set.len(), "ACME challenge answers applied");
        self.challenges.replace(set);
    }
}

impl Agent {
    /// Puts the follower's records in force, their functions fetched and bound, notes which
    /// functions run, and removes the function files nothing runs any more. `offline`: from the
    /// saved state at start, before the control plane answers (see [`FunctionFiles::bind`]).
    async fn apply_services(&mut self, offline: bool) -> Result<usize, AgentError> {
        // Edge functions run on edges: a shield fetches none and reports none.
        let records = self.follower.records().cloned().map(|mut record| {
            if self.node.node.role == NodeRole::Shield {
                record.function = None;
            }
            record
        });
        let records: Vec<ServiceRecord> = records.collect();
        let bound = self.functions.bind(&self.client, records.iter(), offline).await?;
        let count = self.services.apply(&self.reloader, bound.iter()).await?;
        self.running = self.services.running();
        let present = bound.iter().filter(|b| b.unavailable.is_none()).map(|b| &b.record);
        let used = present.chain(self.services.in_force()).filter_map(|r| r.function.as_ref());
        self.functions.remove_unused(used).await;
        Ok(count)
    }

    /// The acknowledgement of what is applied and saved.
    fn ack(&self) -> Ack {
        Ack { seq: self.follower.seq(), functions: Some(self.running.clone()) }
    }
}

/// The addresses a node registers: each advertised one, else the bound one. A public listener
/// bound to an unspecified address (`0.0.0.0`, `[::]`) with nothing advertised cannot go into
/// DNS answers: said once at start.
fn advertised(advertise: &Advertise, bound: &BoundAddrs) -> NodeAddresses {
    let addresses = NodeAddresses {
        http: advertise.http.or(bound.http),
        https: advertise.https.or(bound.https),
        admin: advertise.admin.unwrap_or(bound.admin),
    };
    let public = addresses.https.or(addresses.http);
    if public.is_some_and(|a| a.ip().is_unspecified()) {
        tracing::warn!(address = ?public, "the public listener is bound to an unspecified address and \
            control.advertise gives none: the control plane's DNS answers leave this node out");
    }
    addresses
}

/// Acknowledges the latest saved number whenever it moves (or is repeated after a reconnect),
/// retrying with backoff; a newer number replaces one not yet acknowledged.
async fn acknowledge(client: Arc<ControlClient>, mut saved: watch::Receiver<Ack>, cfg: ControlConfig) {
    let mut failures: u32 = 0;
    while saved.changed().await.is_ok() {
        loop {
            let ack = saved.borrow_and_update().clone();
            let seq = ack.seq;
            match client.ack(&ack).await {
                Ok(()) => {
                    failures = 0;
                    metrics::gauge!(CONTROL_ACKED_SEQ).set(seq.0 as f64);
                    tracing::debug!(seq = %seq, "acknowledged");
                    break;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures, cfg.backoff_min, cfg.backoff_max, jitter());
                    tracing::warn!(seq = %seq, %error, ?wait, "acknowledgement failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn advertised_addresses_replace_the_bound_ones() {
        let bound = BoundAddrs {
            http: "0.0.0.0:80".parse().ok(),
            https: "0.0.0.0:443".parse().ok(),
            admin: "127.0.0.1:9901".parse().unwrap(),
        };
        let none = advertised(&Advertise::default(), &bound);
        assert_eq!((none.http, none.https, none.admin), (bound.http, bound.https, bound.admin));
        let advertise =
            Advertise { http: None, https: "203.0.113.7:443".parse().ok(), admin: "10.0.0.7:9901".parse().ok() };
        let set = advertised(&advertise, &bound);
        assert_eq!(set.http, bound.http, "not advertised: as bound");
        assert_eq!(set.https, advertise.https);
        assert_eq!(set.admin, "10.0.0.7:9901".parse().unwrap());
    }
}
