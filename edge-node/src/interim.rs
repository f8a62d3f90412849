//! Interim (1xx) responses sent ahead of a request's final response (RFC 9110 §15.2): a
//! `103 Early Hints` (RFC 8297) forwarded from the origin or made from the cache.
//!
//! The accept phase gives each request an [`InterimSender`] in its extensions when the
//! client's protocol can carry interim responses (HTTP/1.1 from a 1.1 client, h2, h3), and
//! drains the matching [`InterimReceiver`] onto the wire until the final response head goes
//! out. The phases that learn of a hint (upstream, cache) call [`InterimSender::send`] and
//! never wait: the channel is small, and a hint that does not fit is dropped, which RFC 8297
//! §2 allows ("a client ... MAY ignore"; an intermediary may drop 103 since it is only
//! advisory). `100 Continue` is not sent through here: each protocol's server answers
//! `Expect: 100-continue` itself when the body is first read (RFC 9110 §10.1.1).
//!
//! Why a channel and not a callback: the final response and the interim ones are written by
//! the connection's task, in order; a phase must never write to the connection itself.

use http::{HeaderMap, StatusCode};
use tokio::sync::mpsc;

/// Interim responses one request may send; more are dropped (and counted by the caller).
pub const MAX_INTERIM_PER_REQUEST: usize = 4;

/// One interim response head: a 1xx status other than 101, and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterimHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// Why a hint was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InterimRefused {
    #[error("{0} is not an interim status that may be forwarded (1xx other than 100 and 101)")]
    NotInterim(StatusCode),
    #[error("the request's interim response budget is spent or its final response has begun")]
    Closed,
}

/// The phases' end: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct InterimSender {
    tx: mpsc::Sender<Box<InterimHead>>,
}

/// The connection's end: read until the final response head is written, then dropped.
///
/// Every request gets a channel, and tokio's channel allocates its first block of slots at
/// once: the heads travel boxed, so that block holds pointers (a few hundred bytes) rather than
/// header maps (kilobytes) on every request, hit or not. A hint is rare; its box is cheap.
#[derive(Debug)]
pub struct InterimReceiver(mpsc::Receiver<Box<InterimHead>>);

impl InterimReceiver {
    /// The next head; `None` once every sender is gone (or after `close`, when drained).
    pub async fn recv(&mut self) -> Option<InterimHead> {
        self.0.recv().await.map(|head| *head)
    }

    pub fn try_recv(&mut self) -> Result<InterimHead, mpsc::error::TryRecvError> {
        self.0.try_recv().map(|head| *head)
    }

    /// No more heads are taken; those queued can still be read.
    pub fn close(&mut self) {
        self.0.close();
    }
}

/// A sender for one request and the receiver its connection drains.
pub fn channel() -> (InterimSender, InterimReceiver) {
    let (tx, rx) = mpsc::channel(MAX_INTERIM_PER_REQUEST);
    (InterimSender { tx }, InterimReceiver(rx))
}

impl InterimSender {
    /// Queues an interim response. 100 is refused (each server sends its own, §10.1.1) and
    /// so is 101 (a protocol switch is never forwarded: RFC 9110 §7.8, RFC 9113 §8.6).
    pub fn send(&self, head: InterimHead) -> Result<(), InterimRefused> {
        let status = head.status;
        if !status.is_informational() || status == StatusCode::CONTINUE || status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(InterimRefused::NotInterim(status));
        }
        self.tx.try_send(Box::new(head)).map_err(|_| InterimRefused::Closed)
    }

    /// Whether the connection still takes interim responses for this request.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16) -> InterimHead {
        InterimHead { status: StatusCode::from_u16(status).expect("status"), headers: HeaderMap::new() }
    }

    #[test]
    fn only_forwardable_interim_statuses_are_queued() {
        let (tx, mut rx) = channel();
        // RFC 8297 §2: 103 carries hints; RFC 9110 §15.2: other 1xx are forwarded too.
        assert_eq!(tx.send(head(103)), Ok(()));
        assert_eq!(tx.send(head(102)), Ok(()));
        // RFC 9110 §10.1.1: each hop answers Expect itself; §7.8: 101 is hop-by-hop.
        assert_eq!(tx.send(head(100)), Err(InterimRefused::NotInterim(StatusCode::CONTINUE)));
        assert_eq!(tx.send(head(101)), Err(InterimRefused::NotInterim(StatusCode::SWITCHING_PROTOCOLS)));
        assert_eq!(tx.send(head(200)), Err(InterimRefused::NotInterim(StatusCode::OK)));
        assert_eq!(rx.try_recv().map(|h| h.status), Ok(StatusCode::EARLY_HINTS));
        assert_eq!(rx.try_recv().map(|h| h.status), Ok(StatusCode::PROCESSING));
    }

    #[test]
    fn a_full_or_closed_channel_drops_the_hint() {
        let (tx, rx) = channel();
        for _ in 0..MAX_INTERIM_PER_REQUEST {
            assert_eq!(tx.send(head(103)), Ok(()));
        }
        assert_eq!(tx.send(head(103)), Err(InterimRefused::Closed));
        drop(rx);
        assert!(!tx.is_open());
        assert_eq!(tx.send(head(103)), Err(InterimRefused::Closed));
    }
}
