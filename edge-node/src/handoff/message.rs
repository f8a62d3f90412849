//! What the running process and its successor say to each other over the handoff socket: one
//! frame per message, a 4-byte big-endian length then that many bytes of JSON. The sockets
//! themselves travel beside the `Offer` frame as SCM_RIGHTS ancillary data ([`super::channel`]),
//! in the order `Offer::sockets` lists them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Bound on one frame's body: the largest message is an `Offer` of a few listeners.
pub const MAX_FRAME: usize = 64 * 1024;

/// The protocol's version: a successor speaking another one is refused before any socket moves.
pub const VERSION: u32 = 1;

/// Which listener a socket is: the `[listen]` field it was bound for, and its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listener {
    /// `listen.http` (TCP).
    Http,
    /// `listen.https` (TCP).
    Https,
    /// `listen.https`'s UDP port, for HTTP/3 (`listen.http3`).
    Quic,
    /// `listen.admin` (TCP).
    Admin,
}

impl Listener {
    /// The config field the listener comes from, for log lines and errors.
    pub fn field(self) -> &'static str {
        match self {
            Listener::Http => "listen.http",
            Listener::Https => "listen.https",
            Listener::Quic => "listen.https (UDP, HTTP/3)",
            Listener::Admin => "listen.admin",
        }
    }
}

/// One socket handed over: what it is and the address it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketSpec {
    pub listener: Listener,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Successor → running: its config loaded and its services compiled; it asks for the
    /// sockets.
    Hello { version: u32, pid: u32 },
    /// Running → successor, with one descriptor per entry of `sockets`, in order. `quic_tag`
    /// is the first bytes of every QUIC connection ID the running process issued: datagrams
    /// for those connections are passed back to it while it drains.
    Offer { sockets: Vec<SocketSpec>, quic_tag: Option<[u8; 4]> },
    /// Running → successor: the disk tier is flushed and no longer written by the running
    /// process; the successor may open it.
    Released,
    /// Successor → running: it accepts on every socket; the running process stops accepting
    /// and drains.
    Ready { pid: u32 },
    /// Either way: the upgrade is abandoned, with why (logged by the other side).
    Abort { reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte bound")]
    TooLarge(usize),
    #[error("frame does not parse: {0}")]
    Parse(String),
}

/// The frame for `msg`: length, then JSON.
pub fn encode(msg: &Message) -> Vec<u8> {
    // Serializing a plain enum of strings, numbers and addresses cannot fail.
    let body = serde_json::to_vec(msg).unwrap_or_default();
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// The length a frame header announces, checked against [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// A frame's body.
pub fn decode(body: &[u8]) -> Result<Message, FrameError> {
    serde_json::from_slice(body).map_err(|e| FrameError::Parse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(msg: Message) {
        let frame = encode(&msg);
        let len = frame_len(frame[..4].try_into().expect("header")).expect("len");
        assert_eq!(len, frame.len() - 4);
        assert_eq!(decode(&frame[4..]).expect("decode"), msg);
    }

    #[test]
    fn every_message_survives_a_round_trip() {
        round_trip(Message::Hello { version: VERSION, pid: 42 });
        round_trip(Message::Offer {
            sockets: vec![
                SocketSpec { listener: Listener::Http, addr: "127.0.0.1:80".parse().expect("addr") },
                SocketSpec { listener: Listener::Quic, addr: "[::1]:443".parse().expect("addr") },
            ],
            quic_tag: Some([1, 2, 3, 4]),
        });
        round_trip(Message::Offer { sockets: vec![], quic_tag: None });
        round_trip(Message::Released);
        round_trip(Message::Ready { pid: 7 });
        round_trip(Message::Abort { reason: "cache: no space".into() });
    }

    #[test]
    fn the_wire_form_is_tagged_json() {
        let frame = encode(&Message::Ready { pid: 9 });
        assert_eq!(&frame[..4], &[0, 0, 0, 24]);
        assert_eq!(&frame[4..], br#"{"type":"ready","pid":9}"#);
    }

    #[test]
    fn a_frame_over_the_bound_is_refused_before_it_is_read() {
        assert_eq!(frame_len((MAX_FRAME as u32).to_be_bytes()), Ok(MAX_FRAME));
        assert_eq!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()), Err(FrameError::TooLarge(MAX_FRAME + 1)));
        assert_eq!(frame_len([0xff; 4]), Err(FrameError::TooLarge(u32::MAX as usize)));
    }

    #[test]
    fn unknown_or_broken_messages_are_errors() {
        for body in [&br#"{"type":"launch"}"#[..], b"{", b"", br#"{"type":"ready"}"#] {
            assert!(matches!(decode(body), Err(FrameError::Parse(_))), "{:?}", String::from_utf8_lossy(body));
        }
    }
}
