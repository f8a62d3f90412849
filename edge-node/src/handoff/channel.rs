//! The handoff socket's I/O: [`super::message`] frames over a Unix stream socket, the
//! listening sockets beside the `Offer` as SCM_RIGHTS. Blocking calls with a timeout on every
//! read and write: the callers run them on the blocking pool.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

use super::message::{self, FrameError, Message};

/// Bound on descriptors taken from one frame (the offer has at most four).
const MAX_FDS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("handoff socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("handoff socket: {0}")]
    Frame(#[from] FrameError),
    #[error("handoff socket closed by the other process")]
    Closed,
    #[error("handoff socket: {0}")]
    Protocol(String),
}

/// One end of the handoff socket.
pub struct Channel {
    stream: UnixStream,
}

impl Channel {
    /// `timeout` bounds each read and write (not the whole exchange).
    pub fn new(stream: UnixStream, timeout: Duration) -> std::io::Result<Self> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Self { stream })
    }

    pub fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Blocks until the other process closes its end (it exited), whatever it sends before.
    pub fn wait_closed(self) {
        let mut channel = self;
        if channel.stream.set_read_timeout(None).is_err() {
            return;
        }
        while channel.recv().is_ok() {}
    }

    pub fn send(&mut self, msg: &Message) -> Result<(), ChannelError> {
        self.stream.write_all(&message::encode(msg))?;
        Ok(())
    }

    /// Sends `msg` with `fds` attached to its first byte.
    pub fn send_with_fds(&mut self, msg: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), ChannelError> {
        let frame = message::encode(msg);
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(ChannelError::Protocol("descriptors do not fit the control buffer".into()));
        }
        let sent =
            rustix::net::sendmsg(self.stream.as_fd(), &[IoSlice::new(&frame)], &mut control, SendFlags::NOSIGNAL)
                .map_err(std::io::Error::from)?;
        // The descriptors went with the first byte; the rest of the frame is plain data.
        self.stream.write_all(&frame[sent..])?;
        Ok(())
    }

    pub fn recv(&mut self) -> Result<Message, ChannelError> {
        let (msg, fds) = self.recv_with_fds()?;
        if !fds.is_empty() {
            return Err(ChannelError::Protocol(format!("{} unexpected descriptors", fds.len())));
        }
        Ok(msg)
    }

    /// The next message and the descriptors that came with it (closed on drop if unused).
    pub fn recv_with_fds(&mut self) -> Result<(Message, Vec<OwnedFd>), ChannelError> {
        let mut header = [0u8; 4];
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            self.stream.as_fd(),
            &mut [IoSliceMut::new(&mut header)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let mut fds = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = msg {
                fds.extend(received);
            }
        }
        if got.bytes == 0 {
            return Err(ChannelError::Closed);
        }
        if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
            return Err(ChannelError::Protocol(format!("more than {MAX_FDS} descriptors sent")));
        }
        self.stream.read_exact(&mut header[got.bytes..]).map_err(eof_is_closed)?;
        let mut body = vec![0u8; message::frame_len(header)?];
        self.stream.read_exact(&mut body).map_err(eof_is_closed)?;
        Ok((message::decode(&body)?, fds))
    }

    /// The process at the other end (SO_PEERCRED), to check it is the one we started.
    pub fn peer_pid(&self) -> Option<u32> {
        let cred = rustix::net::sockopt::socket_peercred(self.stream.as_fd()).ok()?;
        u32::try_from(cred.pid.as_raw_nonzero().get()).ok()
    }
}

fn eof_is_closed(e: std::io::Error) -> ChannelError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof { ChannelError::Closed } else { ChannelError::Io(e) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::message::{Listener, SocketSpec};

    #[test]
    fn messages_and_descriptors_cross_a_socket_pair() {
        let (a, b) = UnixStream::pair().expect("pair");
        let (mut a, mut b) =
            (Channel::new(a, Duration::from_secs(5)).expect("a"), Channel::new(b, Duration::from_secs(5)).expect("b"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let offer = Message::Offer { sockets: vec![SocketSpec { listener: Listener::Http, addr }], quic_tag: None };
        a.send(&Message::Released).expect("send");
        a.send_with_fds(&offer, &[listener.as_fd()]).expect("send fds");
        assert_eq!(b.recv().expect("recv"), Message::Released);
        let (msg, fds) = b.recv_with_fds().expect("recv fds");
        assert_eq!(msg, offer);
        assert_eq!(fds.len(), 1);
        // The descriptor received is the same listening socket: a connection to it is accepted
        // through either copy.
        let received = std::net::TcpListener::from(fds.into_iter().next().expect("fd"));
        assert_eq!(received.local_addr().expect("addr"), addr);
        drop(listener);
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        received.accept().expect("accept on the received copy");
        assert_eq!(b.peer_pid(), Some(std::process::id()));
        drop(a);
        assert!(matches!(b.recv(), Err(ChannelError::Closed)));
    }

    #[test]
    fn a_frame_over_the_bound_is_refused() {
        let (mut raw, b) = UnixStream::pair().expect("pair");
        let mut b = Channel::new(b, Duration::from_secs(5)).expect("b");
        raw.write_all(&u32::MAX.to_be_bytes()).expect("write");
        assert!(matches!(b.recv(), Err(ChannelError::Frame(FrameError::TooLarge(_)))));
    }
}
