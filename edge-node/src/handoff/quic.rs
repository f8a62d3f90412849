//! QUIC across a handoff. Both processes hold the same UDP socket, and a datagram goes to
//! whichever reads it first, so the connections of the process that drains would meet the
//! successor, which knows nothing of them (and would answer with a stateless reset). So each
//! process issues connection IDs that start with its own random 4-byte tag ([`TaggedCids`]);
//! once the successor reads the socket, a datagram whose destination connection ID carries the
//! predecessor's tag is passed to it over a Unix datagram socket ([`HandoffUdp`]), with its
//! source address, destination IP and ECN bits in front ([`encode_forward`]). The predecessor
//! sends its answers straight out of the shared UDP socket. A client's first Initial carries a
//! connection ID the client chose, so new connections always land on whichever process reads
//! them: the predecessor until the successor is ready, the successor after.
//!
//! What can be lost: a datagram for the predecessor when the Unix socket's buffer is full
//! (QUIC retransmits it), and, once the predecessor has exited, its connections' datagrams
//! (their clients get a stateless reset or time out; the predecessor closed them first
//! unless the drain timed out). A client's own connection ID (of 8 bytes or more, random)
//! starts with a predecessor's tag once in 2^32 Initials: that Initial goes to the predecessor,
//! which refuses new connections, and the client's retransmission meets the same fate until
//! the predecessor exits. quinn's clients and browsers pick a fresh ID per attempt.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, ConnectionId, ConnectionIdGenerator, UdpPoller};
use ring::rand::{SecureRandom, SystemRandom};

/// The first bytes of every connection ID one process issues.
pub type Tag = [u8; 4];

/// Length of the connection IDs issued: the tag, then 8 random bytes (enough to keep IDs
/// unguessable and unique among a process's connections).
pub const CID_LEN: usize = 12;

/// A fresh random tag, other than `avoid` (the predecessor's).
pub fn new_tag(avoid: Option<Tag>) -> Tag {
    let rng = SystemRandom::new();
    loop {
        let mut tag = [0u8; 4];
        if rng.fill(&mut tag).is_err() {
            // The system's generator does not fail on Linux; a time-based tag still differs.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
            tag = nanos.unwrap_or(1).to_be_bytes();
        }
        if Some(tag) != avoid {
            return tag;
        }
    }
}

/// quinn's connection ID generator, tagging every ID.
pub struct TaggedCids {
    tag: Tag,
    rng: SystemRandom,
    counter: u64,
}

impl TaggedCids {
    pub fn new(tag: Tag) -> Self {
        Self { tag, rng: SystemRandom::new(), counter: 0 }
    }
}

impl ConnectionIdGenerator for TaggedCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; CID_LEN];
        bytes[..4].copy_from_slice(&self.tag);
        if self.rng.fill(&mut bytes[4..]).is_err() {
            // Unique still (quinn also checks), if guessable: never seen on Linux.
            self.counter += 1;
            bytes[4..].copy_from_slice(&self.counter.to_be_bytes());
        }
        ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The destination connection ID of a QUIC packet (RFC 9000 §17.2 long header: its length
/// byte at offset 5; §17.3 short header: [`CID_LEN`] bytes from offset 1, the length every
/// process here issues), or `None` when the datagram is too short to hold one.
pub fn destination_cid(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    if first & 0x80 != 0 {
        let len = *packet.get(5)? as usize;
        packet.get(6..6 + len)
    } else {
        packet.get(1..1 + CID_LEN)
    }
}

/// Whether a datagram belongs to the process whose tag is `tag`.
pub fn belongs_to(packet: &[u8], tag: Tag) -> bool {
    destination_cid(packet).is_some_and(|cid| cid.len() == CID_LEN && cid[..4] == tag)
}

/// Bound on a forwarded datagram's header: family, IPv6 address and port, family and IPv6
/// destination, ECN.
const MAX_HEADER: usize = 1 + 16 + 2 + 1 + 16 + 1;

/// A datagram as passed to the predecessor: where it came from, the address it was sent to
/// (for a socket bound to a wildcard address) and its ECN bits, then the payload.
pub fn encode_forward(from: SocketAddr, dst_ip: Option<IpAddr>, ecn: Option<EcnCodepoint>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEADER + payload.len());
    put_ip(&mut out, Some(from.ip()));
    out.extend_from_slice(&from.port().to_be_bytes());
    put_ip(&mut out, dst_ip);
    out.push(ecn.map_or(0, |e| e as u8));
    out.extend_from_slice(payload);
    out
}

fn put_ip(out: &mut Vec<u8>, ip: Option<IpAddr>) {
    match ip {
        None => out.push(0),
        Some(IpAddr::V4(v4)) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

/// A forwarded datagram's header: source, destination IP, ECN, and where the payload starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Forwarded {
    pub from: SocketAddr,
    pub dst_ip: Option<IpAddr>,
    pub ecn: Option<EcnCodepoint>,
    pub payload_at: usize,
}

pub fn decode_forward(buf: &[u8]) -> Option<Forwarded> {
    let (ip, mut at) = get_ip(buf, 0)?;
    let port = u16::from_be_bytes(buf.get(at..at + 2)?.try_into().ok()?);
    at += 2;
    let (dst_ip, next) = get_ip(buf, at)?;
    at = next;
    let ecn = EcnCodepoint::from_bits(*buf.get(at)?);
    Some(Forwarded { from: SocketAddr::new(ip?, port), dst_ip, ecn, payload_at: at + 1 })
}

fn get_ip(buf: &[u8], at: usize) -> Option<(Option<IpAddr>, usize)> {
    match *buf.get(at)? {
        0 => Some((None, at + 1)),
        4 => {
            let o: [u8; 4] = buf.get(at + 1..at + 5)?.try_into().ok()?;
            Some((Some(IpAddr::from(o)), at + 5))
        }
        6 => {
            let o: [u8; 16] = buf.get(at + 1..at + 17)?.try_into().ok()?;
            Some((Some(IpAddr::from(o)), at + 17))
        }
        _ => None,
    }
}

/// Splits a received batch (`len` bytes of datagrams of `stride` bytes each, the last maybe
/// shorter: GRO) into those `keep` accepts, compacted to the front in order, and the others,
/// given to `away`. Returns the kept length. Kept datagrams stay `stride` apart, since only
/// the batch's last one can be short.
pub fn split_batch(
    buf: &mut [u8],
    len: usize,
    stride: usize,
    keep: impl Fn(&[u8]) -> bool,
    mut away: impl FnMut(&[u8]),
) -> usize {
    let stride = stride.max(1);
    let mut kept = 0;
    let mut at = 0;
    while at < len {
        let end = (at + stride).min(len);
        if keep(&buf[at..end]) {
            if kept != at {
                buf.copy_within(at..end, kept);
            }
            kept += end - at;
        } else {
            away(&buf[at..end]);
        }
        at = end;
    }
    kept
}

/// Where datagrams go besides quinn, changed as a handoff proceeds.
#[derive(Debug, Default)]
struct Routes {
    /// A predecessor still draining: datagrams for its connections are passed to it here.
    predecessor: Option<(Tag, Arc<UnixDatagram>)>,
    /// Handed off: the successor passes datagrams for our connections here.
    inbox: Option<Arc<tokio::net::UnixDatagram>>,
    /// Whether we read the UDP socket ourselves (false once the successor reads it).
    read_udp: bool,
}

/// The QUIC endpoint's socket: the UDP socket quinn would use, plus the routing above.
#[derive(Debug)]
pub struct HandoffUdp {
    udp: Arc<dyn AsyncUdpSocket>,
    routes: Mutex<Routes>,
}

impl HandoffUdp {
    pub fn new(udp: Arc<dyn AsyncUdpSocket>) -> Self {
        Self { udp, routes: Mutex::new(Routes { read_udp: true, ..Routes::default() }) }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The successor's side: pass datagrams for `tag`'s connections to `to`.
    pub fn forward_to_predecessor(&self, tag: Tag, to: UnixDatagram) -> io::Result<()> {
        to.set_nonblocking(true)?;
        self.routes().predecessor = Some((tag, Arc::new(to)));
        Ok(())
    }

    /// The predecessor's side, once the sockets are offered: also take datagrams from `inbox`.
    pub fn take_forwarded(&self, inbox: UnixDatagram) -> io::Result<()> {
        inbox.set_nonblocking(true)?;
        self.routes().inbox = Some(Arc::new(tokio::net::UnixDatagram::from_std(inbox)?));
        Ok(())
    }

    /// The predecessor's side once the successor is ready: leave the UDP socket to it.
    pub fn stop_reading_udp(&self) {
        self.routes().read_udp = false;
    }

    /// The predecessor's side when an upgrade fails: read the UDP socket alone again.
    pub fn reset(&self) {
        let mut routes = self.routes();
        routes.inbox = None;
        routes.read_udp = true;
    }

    /// One datagram from the inbox into `buf`/`meta`, or `None` when it is empty (the waker is
    /// then registered with it).
    fn poll_inbox(
        &self,
        inbox: &tokio::net::UnixDatagram,
        cx: &mut Context,
        buf: &mut [u8],
        meta: &mut RecvMeta,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut read = tokio::io::ReadBuf::new(buf);
            std::task::ready!(inbox.poll_recv(cx, &mut read))?;
            let n = read.filled().len();
            let Some(fwd) = decode_forward(&buf[..n]) else {
                tracing::debug!(bytes = n, "QUIC handoff: a forwarded datagram without a valid header; dropped");
                continue;
            };
            buf.copy_within(fwd.payload_at..n, 0);
            let len = n - fwd.payload_at;
            *meta = RecvMeta { addr: fwd.from, len, stride: len, ecn: fwd.ecn, dst_ip: fwd.dst_ip };
            return Poll::Ready(Ok(()));
        }
    }

    /// Passes the datagrams of `meta`'s batch meant for the predecessor to it; what is left is
    /// ours. A predecessor gone (its socket closed) is forgotten, and its datagrams reach quinn.
    fn route_batch(&self, buf: &mut [u8], meta: &mut RecvMeta) {
        let Some((tag, to)) = self.routes().predecessor.clone() else { return };
        let gone = std::cell::Cell::new(false);
        let (from, dst_ip, ecn) = (meta.addr, meta.dst_ip, meta.ecn);
        meta.len = split_batch(
            buf,
            meta.len,
            meta.stride,
            |d| gone.get() || !belongs_to(d, tag),
            |d| match to.send(&encode_forward(from, dst_ip, ecn, d)) {
                Ok(_) => {}
                // Full: dropped like any datagram on a full path; QUIC retransmits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!(error = %e, "QUIC handoff: the previous process is gone; its datagrams stay here");
                    gone.set(true);
                }
            },
        );
        if gone.get() {
            self.routes().predecessor = None;
        }
    }
}

impl AsyncUdpSocket for HandoffUdp {
    fn create_io_poller(self: Arc<Self>) -> std::pin::Pin<Box<dyn UdpPoller>> {
        self.udp.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.udp.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (inbox, read_udp) = {
            let routes = self.routes();
            (routes.inbox.clone(), routes.read_udp)
        };
        if let (Some(inbox), Some(buf), Some(m)) = (&inbox, bufs.first_mut(), meta.first_mut()) {
            match self.poll_inbox(inbox, cx, buf, m) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(1)),
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "QUIC handoff: the successor's socket failed; reading the UDP socket");
                    self.reset();
                }
                Poll::Pending => {}
            }
        }
        if !read_udp && inbox.is_some() {
            return Poll::Pending;
        }
        let n = std::task::ready!(self.udp.poll_recv(cx, bufs, meta))?;
        for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()).take(n) {
            // A batch all passed on is left with length 0, which quinn skips.
            self.route_batch(buf, m);
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.udp.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.udp.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.udp.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: Tag = [0xa1, 0xb2, 0xc3, 0xd4];

    fn short(cid: &[u8]) -> Vec<u8> {
        let mut p = vec![0x40];
        p.extend_from_slice(cid);
        p.extend_from_slice(&[0u8; 20]);
        p
    }

    fn long(cid: &[u8]) -> Vec<u8> {
        let mut p = vec![0xc0, 0, 0, 0, 1, cid.len() as u8];
        p.extend_from_slice(cid);
        p.extend_from_slice(&[8, 1, 2, 3, 4, 5, 6, 7, 8]);
        p
    }

    fn tagged(tag: Tag) -> Vec<u8> {
        let mut cid = tag.to_vec();
        cid.extend_from_slice(&[9; CID_LEN - 4]);
        cid
    }

    #[test]
    fn datagrams_are_told_apart_by_their_destination_connection_id() {
        let other: Tag = [1, 2, 3, 4];
        let rows: &[(&str, Vec<u8>, bool)] = &[
            ("RFC 9000 §17.3: short header with our tag", short(&tagged(TAG)), true),
            ("short header with another process's tag", short(&tagged(other)), false),
            ("RFC 9000 §17.2: long header (Handshake) to our ID", long(&tagged(TAG)), true),
            ("a client's first Initial: an ID it chose, 8 bytes", long(&[0xa1, 0xb2, 0xc3, 0xd4, 5, 6, 7, 8]), false),
            (
                "a client's first Initial: 20 bytes starting with the tag",
                long(&[0xa1, 0xb2, 0xc3, 0xd4].repeat(5)),
                false,
            ),
            ("too short to hold an ID", vec![0x40, 0xa1, 0xb2], false),
            ("a long header cut before its ID", vec![0xc0, 0, 0, 0, 1, 12, 0xa1], false),
            ("empty", vec![], false),
        ];
        for (name, packet, ours) in rows {
            assert_eq!(belongs_to(packet, TAG), *ours, "{name}");
        }
    }

    #[test]
    fn generated_ids_carry_the_tag_and_differ() {
        let mut cids = TaggedCids::new(TAG);
        let (a, b) = (cids.generate_cid(), cids.generate_cid());
        assert_eq!(a.len(), CID_LEN);
        assert_eq!(&a[..4], &TAG);
        assert_ne!(a, b);
        assert!(belongs_to(&short(&a), TAG));
        assert_ne!(new_tag(Some(TAG)), TAG);
    }

    #[test]
    fn the_forward_header_round_trips() {
        let rows: &[(SocketAddr, Option<IpAddr>, Option<EcnCodepoint>)] = &[
            ("192.0.2.1:4433".parse().expect("addr"), None, None),
            (
                "[2001:db8::1]:443".parse().expect("addr"),
                Some("2001:db8::2".parse().expect("ip")),
                Some(EcnCodepoint::Ce),
            ),
            ("10.0.0.1:1".parse().expect("addr"), Some("10.0.0.2".parse().expect("ip")), Some(EcnCodepoint::Ect0)),
        ];
        for &(from, dst_ip, ecn) in rows {
            let wire = encode_forward(from, dst_ip, ecn, b"quic");
            let got = decode_forward(&wire).expect("decode");
            assert_eq!((got.from, got.dst_ip, got.ecn), (from, dst_ip, ecn));
            assert_eq!(&wire[got.payload_at..], b"quic");
            assert!(got.payload_at <= MAX_HEADER);
        }
        assert_eq!(decode_forward(&[7, 1, 2]), None, "unknown family");
        assert_eq!(decode_forward(&[4, 1, 2, 3]), None, "cut address");
        assert_eq!(decode_forward(&[0, 0, 1, 0, 0]), None, "no source address");
    }

    #[test]
    fn a_gro_batch_is_split_and_compacted() {
        // Five datagrams of stride 4, the last one short; odd-numbered first bytes go away.
        let mut buf = vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4];
        let mut away = Vec::new();
        let kept = split_batch(&mut buf, 18, 4, |d| d[0] % 2 == 0, |d| away.push(d.to_vec()));
        assert_eq!(kept, 10);
        assert_eq!(&buf[..kept], &[0, 0, 0, 0, 2, 2, 2, 2, 4, 4]);
        assert_eq!(away, vec![vec![1, 1, 1, 1], vec![3, 3, 3, 3]]);
        let mut one = vec![5, 5, 5];
        assert_eq!(split_batch(&mut one, 3, 3, |_| false, |_| {}), 0, "all passed on");
        assert_eq!(split_batch(&mut one, 3, 3, |_| true, |_| {}), 3, "all kept");
    }
}
