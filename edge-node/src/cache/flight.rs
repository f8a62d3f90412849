//! Request collapsing: one upstream fetch per key however many clients wait for it. The first
//! request for a key leads (it starts the fetch); the others follow and receive the same
//! [`Landing`]. A flight stays open until its body is complete, so late arrivals can still join
//! the stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::watch;

use super::entry::{ObjectMeta, StoredObject};
use super::key::StorageKey;
use super::shared_body::SharedBody;
use super::status::Detail;
use crate::body::EdgeBody;
use crate::error::EdgeError;

/// What a fetch produced, for every request waiting on it.
pub enum Landing {
    /// A storable response, streaming into the store and to every reader.
    Shared(SharedResponse),
    /// The stored object was revalidated (304).
    Revalidated(Revalidated),
    /// A response that is not stored.
    Pass(PassResponse),
    /// No usable response.
    Failed(EdgeError),
    /// A storable response whose body broke off while it was read ahead (it was small enough
    /// to read whole before answering): nothing is stored, and every waiter gets the same
    /// error (or its stale copy), never a truncated body.
    Broken(Broken),
}

pub struct Broken {
    /// What the upstream answered (`fwd-status`).
    pub status: StatusCode,
    pub error: EdgeError,
    pub detail: Detail,
}

/// Where a [`SharedResponse`] stands with the store when it lands (RFC 9211 §2.5: `stored`
/// is said only when true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Read whole and stored before the head went out.
    Stored,
    /// Streaming into the store; stored once the body completes.
    Storing,
    /// Not stored (over the object size bound).
    NotStored,
}

pub struct Revalidated {
    /// The stored response with the 304's fields merged (RFC 9111 §4.3.4).
    pub object: Arc<StoredObject>,
    /// Whether `object` is what the store now holds. When not (the 304 made it private or
    /// no-store, or changed its Vary), it answers the requesting client only: collapsed waiters
    /// fetch their own.
    pub stored: bool,
    /// Fields of the 304 for the requesting client only (`Set-Cookie`): never stored, never
    /// given to collapsed waiters.
    pub for_requester: HeaderMap,
}

pub struct SharedResponse {
    pub meta: Arc<ObjectMeta>,
    pub body: Arc<SharedBody>,
    /// The Vary secondary key the response was fetched for, if it varies: a follower whose
    /// request gives another key must fetch its own variant.
    pub vary: Option<(Vec<http::HeaderName>, String)>,
    pub storage: Storage,
    pub ttl_secs: i64,
    /// Fields for the client whose request fetched it only (`Set-Cookie` of a response the
    /// service stores anyway, `store_set_cookie`): `meta` holds none.
    pub for_requester: HeaderMap,
}

pub struct PassResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: PassBody,
    /// A 5xx from upstream: waiters holding a stale object may serve it instead (stale-if-error).
    pub server_error: bool,
    /// May collapsed waiters get this response too? Only a 5xx not marked private: a response
    /// that is not stored may be personal, and each waiter must fetch its own; an origin in
    /// trouble, though, should not get one request per waiter.
    pub shareable: bool,
}

pub enum PassBody {
    /// Small bodies are read whole, so every waiter gets a copy.
    Buffered(Bytes),
    /// Larger ones go to the first waiter that takes them; the others fetch on their own.
    Once(Mutex<Option<EdgeBody>>),
}

type Slot = watch::Receiver<Option<Arc<Landing>>>;

/// How long a key whose response was not storable skips collapsing (Varnish's hit-for-miss):
/// later requests go straight upstream instead of queueing behind each other. Default: 30 s.
pub const PASS_MARK_TTL: Duration = Duration::from_secs(30);
/// Bound on remembered pass marks; past it, expired marks are swept and, if still full, the
/// new mark is not recorded (the cost is only some queueing).
const MAX_PASS_MARKS: usize = 100_000;

#[derive(Default)]
pub struct Flights {
    map: Mutex<HashMap<StorageKey, Slot>>,
    pass_marks: Mutex<HashMap<StorageKey, Instant>>,
}

pub enum Join {
    Lead(Lead),
    Follow(Follower),
}

/// The leader's handle: lands the result, and closes the flight when dropped.
pub struct Lead {
    tx: watch::Sender<Option<Arc<Landing>>>,
    rx: Slot,
    key: Option<StorageKey>,
    flights: Arc<Flights>,
}

pub struct Follower {
    rx: Slot,
}

impl Flights {
    pub fn join(self: &Arc<Self>, key: &StorageKey) -> Join {
        let Ok(mut map) = self.map.lock() else { return Join::Lead(self.solo()) };
        if let Some(rx) = map.get(key) {
            return Join::Follow(Follower { rx: rx.clone() });
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.clone(), rx.clone());
        Join::Lead(Lead { tx, rx, key: Some(key.clone()), flights: self.clone() })
    }

    /// A flight nobody else can join (requests that must not share, e.g. with Authorization).
    pub fn solo(self: &Arc<Self>) -> Lead {
        let (tx, rx) = watch::channel(None);
        Lead { tx, rx, key: None, flights: self.clone() }
    }

    /// Remember that `key` answered with something not storable, until `now + PASS_MARK_TTL`.
    pub fn mark_pass(&self, key: &StorageKey, now: Instant) {
        let Ok(mut marks) = self.pass_marks.lock() else { return };
        if marks.len() >= MAX_PASS_MARKS {
            marks.retain(|_, until| *until > now);
            if marks.len() >= MAX_PASS_MARKS {
                return;
            }
        }
        marks.insert(key.clone(), now + PASS_MARK_TTL);
    }

    /// Forget a pass mark (the key turned storable).
    pub fn clear_pass(&self, key: &StorageKey) {
        if let Ok(mut marks) = self.pass_marks.lock() {
            marks.remove(key);
        }
    }

    pub fn is_pass(&self, key: &StorageKey, now: Instant) -> bool {
        self.pass_marks.lock().ok().and_then(|m| m.get(key).copied()).is_some_and(|until| until > now)
    }
}

impl Lead {
    /// A flight nobody else can join ([`Flights::solo`]).
    pub fn is_solo(&self) -> bool {
        self.key.is_none()
    }

    pub fn land(&self, landing: Landing) {
        self.tx.send_replace(Some(Arc::new(landing)));
    }

    /// Stop new requests joining (the response is not shareable, or too large to retain).
    pub fn close(&mut self) {
        if let Some(key) = self.key.take()
            && let Ok(mut map) = self.flights.map.lock()
        {
            map.remove(&key);
        }
    }

    pub fn follower(&self) -> Follower {
        Follower { rx: self.rx.clone() }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        self.close();
    }
}

impl Follower {
    /// Wait for the landing; `None` if the leader vanished without landing.
    pub async fn wait(mut self) -> Option<Arc<Landing>> {
        match self.rx.wait_for(|v| v.is_some()).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn k(key: &str) -> StorageKey {
        StorageKey::new(key.to_string())
    }

    #[tokio::test]
    async fn followers_get_the_leaders_landing() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(lead) = flights.join(&k("k")) else { panic!("first must lead") };
        let Join::Follow(f1) = flights.join(&k("k")) else { panic!("second must follow") };
        let Join::Lead(_other) = flights.join(&k("other")) else { panic!() };
        let waiting = tokio::spawn(f1.wait());
        lead.land(Landing::Failed(EdgeError::new(ErrorKind::UpstreamConnect, "x")));
        let got = waiting.await.unwrap().unwrap();
        assert!(matches!(&*got, Landing::Failed(_)));
        // Still open until the leader is dropped (late joiners may read the stream).
        assert!(matches!(flights.join(&k("k")), Join::Follow(_)));
        drop(lead);
        assert!(matches!(flights.join(&k("k")), Join::Lead(_)));
    }

    #[test]
    fn pass_marks_expire() {
        let flights = Flights::default();
        let t0 = Instant::now();
        flights.mark_pass(&k("k"), t0);
        assert!(flights.is_pass(&k("k"), t0 + Duration::from_secs(1)));
        assert!(!flights.is_pass(&k("k"), t0 + PASS_MARK_TTL + Duration::from_secs(1)));
        assert!(!flights.is_pass(&k("other"), t0));
        flights.clear_pass(&k("k"));
        assert!(!flights.is_pass(&k("k"), t0));
    }

    #[tokio::test]
    async fn a_vanished_leader_releases_followers() {
        let flights = Arc::new(Flights::default());
        let lead = flights.join(&k("k"));
        let Join::Follow(f) = flights.join(&k("k")) else { panic!() };
        drop(lead);
        assert!(f.wait().await.is_none());
    }
}
