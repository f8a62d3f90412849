//! Where a starting node gets its listening sockets: from the process it takes over from when
//! there is one and the address still matches ([`super::fds`]), else bound afresh. Either way a
//! duplicate of each is kept ([`Held`]) for the next upgrade.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use super::Held;
use super::message::{Listener, SocketSpec};
use super::successor::{self, Takeover};

#[derive(Debug, thiserror::Error)]
#[error("{field} {addr}: {source}")]
pub struct BindError {
    pub field: &'static str,
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

pub struct Binder<'a> {
    takeover: Option<&'a mut Takeover>,
    pub held: Vec<Held>,
}

impl<'a> Binder<'a> {
    pub fn new(takeover: Option<&'a mut Takeover>) -> Self {
        Self { takeover, held: Vec::new() }
    }

    fn inherited(&mut self, listener: Listener, addr: SocketAddr) -> Option<OwnedFd> {
        self.takeover.as_deref_mut().and_then(|t| t.take(listener, addr))
    }

    fn hold(&mut self, listener: Listener, fd: std::os::fd::BorrowedFd<'_>, addr: SocketAddr) -> Result<(), BindError> {
        let err = |source| BindError { field: listener.field(), addr, source };
        let fd = fd.try_clone_to_owned().map_err(err)?;
        self.held.push(Held { spec: SocketSpec { listener, addr }, fd });
        Ok(())
    }

    /// A TCP listener for `listener` at its configured `addr`.
    pub async fn tcp(&mut self, listener: Listener, addr: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
        let err = |source| BindError { field: listener.field(), addr, source };
        let l = match self.inherited(listener, addr) {
            Some(fd) => successor::tcp_listener(fd).map_err(err)?,
            None => tokio::net::TcpListener::bind(addr).await.map_err(err)?,
        };
        let bound = l.local_addr().map_err(err)?;
        self.hold(listener, l.as_fd(), bound)?;
        Ok(l)
    }

    /// The UDP socket for HTTP/3 at `addr` (the bound HTTPS address).
    pub fn udp(&mut self, addr: SocketAddr) -> Result<std::net::UdpSocket, BindError> {
        let listener = Listener::Quic;
        let err = |source| BindError { field: listener.field(), addr, source };
        let socket = match self.inherited(listener, addr) {
            Some(fd) => std::net::UdpSocket::from(fd),
            None => std::net::UdpSocket::bind(addr).map_err(err)?,
        };
        let bound = socket.local_addr().map_err(err)?;
        self.hold(listener, socket.as_fd(), bound)?;
        Ok(socket)
    }

    /// The predecessor's QUIC tag and forwarding socket, when it had HTTP/3.
    pub fn predecessor_quic(&mut self) -> Option<(super::quic::Tag, std::os::unix::net::UnixDatagram)> {
        self.takeover.as_deref_mut().and_then(|t| t.quic.take())
    }
}
