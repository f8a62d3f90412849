//! The running process's side of a handoff ([`super`]): start the new executable, hand it the
//! sockets and the disk cache, and learn whether it serves. Every step is bounded by
//! `limits.upgrade_timeout`; whatever fails leaves this process serving.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::channel::{Channel, ChannelError};
use super::message::{self, Message, SocketSpec};
use super::quic::{HandoffUdp, Tag};
use super::{Held, SOCKET_ENV};
use crate::cache::Cache;

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("handoff socket {path}: {source}")]
    Socket { path: PathBuf, source: std::io::Error },
    #[error("start {exe}: {source}")]
    Spawn { exe: PathBuf, source: std::io::Error },
    #[error("the new process exited ({0}) before it was ready")]
    Exited(ExitStatus),
    #[error("the new process was not ready within limits.upgrade_timeout ({0:?})")]
    Timeout(Duration),
    #[error("the handoff socket was reached by process {found:?}, not the one started ({started})")]
    Impostor { started: u32, found: Option<u32> },
    #[error("the new process speaks handoff version {0}, this one {v}", v = message::VERSION)]
    Version(u32),
    #[error("unexpected message from the new process: {0:?}")]
    Unexpected(Box<Message>),
    #[error("the new process gave up: {0}")]
    Aborted(String),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("duplicate a listening socket: {0}")]
    Dup(std::io::Error),
    #[error("handoff: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What is handed over: the listening sockets, the QUIC socket's routing, the cache.
pub struct Handover<'a> {
    pub held: &'a [Held],
    pub quic: Option<(Arc<HandoffUdp>, Tag)>,
    pub cache: Arc<Cache>,
    pub timeout: Duration,
}

/// A successful handoff: the new process serves. Keep `channel` open until this process
/// exits; the new one learns from its closing that the drain is over.
pub struct HandedOver {
    pub pid: u32,
    pub channel: Channel,
}

/// Starts `exe args` as the new process and hands over to it.
pub async fn run(exe: &Path, args: &[OsString], handover: Handover<'_>) -> Result<HandedOver, UpgradeError> {
    let deadline = Instant::now() + handover.timeout;
    let dir = private_dir()?;
    let path = dir.join("handoff.sock");
    let result = async {
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::UnixListener::from_std)
            .map_err(|source| UpgradeError::Socket { path: path.clone(), source })?;
        let child = std::process::Command::new(exe)
            .args(args)
            .env(SOCKET_ENV, &path)
            // systemd's WATCHDOG_PID names this process; the new one pings once it is main.
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| UpgradeError::Spawn { exe: exe.to_path_buf(), source })?;
        let pid = child.id();
        tracing::info!(pid, exe = %exe.display(), "upgrade: new process started");
        let mut child = Watched::spawn(child);
        let outcome = tokio::select! {
            o = handoff(listener, pid, &handover, deadline) => o,
            status = &mut child.exited => match status {
                Ok(status) => Err(UpgradeError::Exited(status)),
                Err(_) => Err(UpgradeError::Exited(ExitStatus::default())),
            },
        };
        match &outcome {
            // Whatever it was doing, it must not serve beside this process.
            Err(_) => child.kill(),
            Ok(_) => child.detach(),
        }
        outcome
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    if result.is_err() {
        undo(&handover).await;
    }
    result
}

/// The exchange, once the new process is running: `Hello` → `Offer` (+ descriptors) →
/// release the disk tier → `Released` → `Ready`.
async fn handoff(
    listener: tokio::net::UnixListener,
    pid: u32,
    handover: &Handover<'_>,
    deadline: Instant,
) -> Result<HandedOver, UpgradeError> {
    let timeout = handover.timeout;
    let (stream, _) = tokio::time::timeout_at(deadline, listener.accept())
        .await
        .map_err(|_| UpgradeError::Timeout(timeout))?
        .map_err(|e| UpgradeError::Channel(ChannelError::Io(e)))?;
    let stream = stream.into_std().map_err(ChannelError::Io)?;
    let mut channel = Channel::new(stream, left(deadline)).map_err(ChannelError::Io)?;
    let found = channel.peer_pid();
    if found != Some(pid) {
        return Err(UpgradeError::Impostor { started: pid, found });
    }
    // The descriptors move into the blocking task as duplicates; ours keep serving.
    let mut fds = Vec::with_capacity(handover.held.len() + 1);
    for held in handover.held {
        fds.push(held.fd.as_fd().try_clone_to_owned().map_err(UpgradeError::Dup)?);
    }
    let sockets: Vec<SocketSpec> = handover.held.iter().map(|h| h.spec).collect();
    let quic_tag = handover.quic.as_ref().map(|(_, tag)| *tag);
    if let Some((udp, _)) = &handover.quic {
        let (inbox, forward) = UnixDatagram::pair().map_err(UpgradeError::Dup)?;
        udp.take_forwarded(inbox).map_err(UpgradeError::Dup)?;
        fds.push(forward.into());
    }
    let mut channel = tokio::task::spawn_blocking(move || -> Result<Channel, UpgradeError> {
        match channel.recv()? {
            Message::Hello { version, .. } if version == message::VERSION => {}
            Message::Hello { version, .. } => {
                let _ = channel
                    .send(&Message::Abort { reason: format!("handoff version {version} is not {}", message::VERSION) });
                return Err(UpgradeError::Version(version));
            }
            Message::Abort { reason } => return Err(UpgradeError::Aborted(reason)),
            other => return Err(UpgradeError::Unexpected(Box::new(other))),
        }
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        channel.send_with_fds(&Message::Offer { sockets, quic_tag }, &borrowed)?;
        Ok(channel)
    })
    .await??;
    tracing::info!(pid, "upgrade: sockets handed over; releasing the disk cache");
    handover.cache.release_disk().await;
    channel.set_read_timeout(left(deadline)).map_err(ChannelError::Io)?;
    let channel = tokio::task::spawn_blocking(move || -> Result<Channel, UpgradeError> {
        channel.send(&Message::Released)?;
        match channel.recv()? {
            Message::Ready { .. } => Ok(channel),
            Message::Abort { reason } => Err(UpgradeError::Aborted(reason)),
            other => Err(UpgradeError::Unexpected(Box::new(other))),
        }
    })
    .await?
    .map_err(|e| match e {
        UpgradeError::Channel(ChannelError::Io(io)) if io.kind() == std::io::ErrorKind::WouldBlock => {
            UpgradeError::Timeout(timeout)
        }
        e => e,
    })?;
    Ok(HandedOver { pid, channel })
}

/// After a failed upgrade: the disk tier back, QUIC datagrams read here alone.
async fn undo(handover: &Handover<'_>) {
    if let Some((udp, _)) = &handover.quic {
        udp.reset();
    }
    match handover.cache.reattach_disk().await {
        Ok(()) => {}
        Err(e) => {
            tracing::error!(error = %e, "upgrade failed and the disk cache could not be opened again; serving from memory")
        }
    }
}

/// The new process, watched from a thread (tokio's process support is not built here): its
/// exit status once it exits, or a kill on request.
struct Watched {
    exited: tokio::sync::oneshot::Receiver<ExitStatus>,
    /// 1: kill it; 2: stop watching (it serves, and outlives this process).
    order: Arc<std::sync::atomic::AtomicU8>,
}

impl Watched {
    fn spawn(mut child: std::process::Child) -> Self {
        use std::sync::atomic::Ordering;
        let (tx, exited) = tokio::sync::oneshot::channel();
        let order = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let seen = order.clone();
        std::thread::spawn(move || {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        let _ = tx.send(status);
                        return;
                    }
                    Ok(None) => {}
                    Err(_) => return,
                }
                match seen.load(Ordering::Acquire) {
                    1 => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                    2 => return,
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { exited, order }
    }

    fn kill(&self) {
        self.order.store(1, std::sync::atomic::Ordering::Release);
    }

    fn detach(&self) {
        self.order.store(2, std::sync::atomic::Ordering::Release);
    }
}

/// What is left of the time to `deadline` (at least a millisecond: a zero timeout means none).
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
}

/// A fresh directory only this user can enter, for the handoff socket: under
/// `$RUNTIME_DIRECTORY` when systemd gives one, else the temporary directory.
fn private_dir() -> Result<PathBuf, UpgradeError> {
    let base = std::env::var_os("RUNTIME_DIRECTORY")
        .map(|v| PathBuf::from(v.to_string_lossy().split(':').next().unwrap_or_default()))
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = base.join(format!("outpost-upgrade-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| UpgradeError::Socket { path: dir.clone(), source })?;
    Ok(dir)
}
