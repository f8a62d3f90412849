//! The new process's side of a handoff ([`super`]): connect to the running process, take its
//! sockets, wait until its disk cache is released, then report ready.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::channel::{Channel, ChannelError};
use super::fds::{self, Source};
use super::message::{self, Listener, Message, SocketSpec};
use super::quic::Tag;

#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error("connect to {path}: {source}")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("the running process aborted the upgrade: {0}")]
    Aborted(String),
    #[error("unexpected message from the running process: {0:?}")]
    Unexpected(Box<Message>),
    #[error("{0}")]
    Descriptors(String),
    #[error("{field} {addr}: {source}")]
    Socket { field: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("handoff: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The sockets the running process offered, until the listeners take them.
pub struct Takeover {
    channel: Channel,
    offered: Vec<Option<(SocketSpec, OwnedFd)>>,
    /// The predecessor's QUIC tag and the socket to pass its datagrams to.
    pub quic: Option<(Tag, UnixDatagram)>,
}

impl Takeover {
    /// Connects, says `Hello`, receives the offer, and waits for the disk cache's release
    /// (`timeout` bounds each step).
    pub async fn begin(path: PathBuf, timeout: Duration) -> Result<Self, TakeoverError> {
        tokio::task::spawn_blocking(move || Self::begin_blocking(&path, timeout)).await?
    }

    fn begin_blocking(path: &Path, timeout: Duration) -> Result<Self, TakeoverError> {
        let stream =
            UnixStream::connect(path).map_err(|source| TakeoverError::Connect { path: path.to_path_buf(), source })?;
        let mut channel = Channel::new(stream, timeout).map_err(ChannelError::Io)?;
        channel.send(&Message::Hello { version: message::VERSION, pid: std::process::id() })?;
        let (msg, mut received) = channel.recv_with_fds()?;
        let (sockets, quic_tag) = match msg {
            Message::Offer { sockets, quic_tag } => (sockets, quic_tag),
            Message::Abort { reason } => return Err(TakeoverError::Aborted(reason)),
            other => return Err(TakeoverError::Unexpected(Box::new(other))),
        };
        // The forwarding socket for QUIC comes after the listeners.
        let forward = if quic_tag.is_some() && received.len() == sockets.len() + 1 { received.pop() } else { None };
        fds::check_count(&sockets, received.len()).map_err(TakeoverError::Descriptors)?;
        let quic = quic_tag.zip(forward).map(|(tag, fd)| (tag, UnixDatagram::from(fd)));
        let offered = sockets.into_iter().zip(received).map(Some).collect();
        match channel.recv()? {
            Message::Released => {}
            Message::Abort { reason } => return Err(TakeoverError::Aborted(reason)),
            other => return Err(TakeoverError::Unexpected(Box::new(other))),
        }
        Ok(Self { channel, offered, quic })
    }

    /// The socket for `listener` at its configured `addr`: the offered one when it matches
    /// ([`fds::plan`]), else `None` (bind it afresh).
    pub fn take(&mut self, listener: Listener, addr: SocketAddr) -> Option<OwnedFd> {
        let specs: Vec<SocketSpec> = self
            .offered
            .iter()
            .map(|o| o.as_ref().map_or(SocketSpec { listener: Listener::Admin, addr: unmatchable() }, |(s, _)| *s))
            .collect();
        let plan = fds::plan(&[(listener, addr)], &specs);
        match plan.sources.first() {
            Some((_, Source::Reuse(i))) => self.offered.get_mut(*i).and_then(Option::take).map(|(_, fd)| fd),
            _ => {
                tracing::warn!(field = listener.field(), %addr, "listener address changed: bound afresh, not handed over");
                None
            }
        }
    }

    /// Says `Ready`: the running process stops accepting and drains. Offered sockets nobody
    /// took are closed here (their queued connections are lost, so logged). The channel stays
    /// open until the old process exits ([`Channel::wait_closed`]).
    pub async fn ready(self) -> Result<Channel, TakeoverError> {
        let Self { mut channel, offered, quic: _ } = self;
        for (spec, _) in offered.iter().flatten() {
            tracing::warn!(field = spec.listener.field(), addr = %spec.addr, "a handed-over socket is not used by this config; closed");
        }
        drop(offered);
        let channel = tokio::task::spawn_blocking(move || {
            channel.send(&Message::Ready { pid: std::process::id() }).map(|()| channel)
        })
        .await??;
        Ok(channel)
    }
}

/// An address no configured listener has (port 0 is configured, never bound).
fn unmatchable() -> SocketAddr {
    SocketAddr::from(([255, 255, 255, 255], 0))
}

/// The tokio listener for a received descriptor.
pub fn tcp_listener(fd: OwnedFd) -> std::io::Result<tokio::net::TcpListener> {
    let std = std::net::TcpListener::from(fd);
    std.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std)
}
