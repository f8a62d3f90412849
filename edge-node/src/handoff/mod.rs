//! Zero-downtime binary upgrade: a new process takes the listening sockets over from the one
//! running, which then drains and exits.
//!
//! **Why socket handoff and not `SO_REUSEPORT`.** With `SO_REUSEPORT` each process has its own
//! accept queue: connections the kernel has already put in the old process's queue are reset
//! when it closes its socket, and UDP datagrams are spread over both processes by a hash of
//! their addresses, so QUIC connections break. Handing over the very same sockets (SCM_RIGHTS
//! over a Unix socket, as Pingora and Envoy do) keeps one accept queue: whatever the old process
//! does not accept, the new one does, and nothing is refused. It also needs no socket option
//! set in advance, and works with a `listen` address whatever its port.
//!
//! **The sequence** (SIGUSR2 to the running process, [`upgrade`]):
//! 1. The running process makes a private directory (mode 0700) with a Unix socket in it, and
//!    starts its own executable again, as it was named at start (so a package upgrade that
//!    replaced the file starts the new binary), with the same arguments and
//!    `OUTPOST_UPGRADE_SOCKET` naming the socket.
//! 2. The new process loads its config (a bad file ends it here; nothing changed), connects,
//!    and says `Hello`. The running process checks the peer is the process it started
//!    (SO_PEERCRED), offers its sockets (`Offer`, [`message`]), flushes its disk cache and
//!    writes to it no more (`Released`, [`crate::cache::Cache::release_disk`]). It keeps
//!    accepting all along.
//! 3. The new process opens the cache, compiles its services, serves on the sockets it received
//!    ([`fds`] says which is which; a listener whose address changed is bound afresh), writes
//!    the ready file, says `Ready`, and tells systemd `MAINPID=` itself and `READY=1`.
//! 4. The old process stops accepting, drains (HTTP/1.1 connections get `Connection: close` on
//!    their next response, HTTP/2 and HTTP/3 a GOAWAY), within `limits.drain_timeout`, writes
//!    its access log out and exits. QUIC datagrams for its connections reach it through the
//!    new process ([`quic`]).
//!
//! An upgrade fails, and the old process keeps serving as before, when the new process exits,
//! breaks the protocol or is not ready within `limits.upgrade_timeout` (then it is killed); the
//! old process takes its disk tier back ([`crate::cache::Cache::reattach_disk`]).

pub mod binder;
pub mod channel;
pub mod fds;
pub mod message;
pub mod quic;
pub mod successor;
pub mod upgrade;

use std::os::fd::OwnedFd;

pub use message::{Listener, SocketSpec};

/// The variable naming the handoff socket in the new process's environment.
pub const SOCKET_ENV: &str = "OUTPOST_UPGRADE_SOCKET";

/// How long a process that handed over keeps its connections open before closing idle ones:
/// HTTP/1.1 clients meanwhile get `Connection: close` on their next response and reconnect to
/// the successor. Half the drain, at most 2 s (a busy client sends within that; an idle one is
/// closed as at a keep-alive timeout).
pub fn linger(drain_timeout: std::time::Duration) -> std::time::Duration {
    (drain_timeout / 2).min(std::time::Duration::from_secs(2))
}

/// A listening socket as a process holds it for a later handoff: a duplicate of the descriptor
/// its listener uses.
#[derive(Debug)]
pub struct Held {
    pub spec: SocketSpec,
    pub fd: OwnedFd,
}
