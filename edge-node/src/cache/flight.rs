//! Request collapsing: one upstream fetch per key however many clients wait for it. The first
//! request for a key leads (it starts the fetch); the others follow and receive the same
//! [`Landing`]. A flight stays open until its body is complete, so late arrivals can still join
//! the stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::watch;

use super::entry::{ObjectMeta, StoredObject};
use super::shared_body::SharedBody;
use crate::body::EdgeBody;
use crate::error::EdgeError;

/// What a fetch produced, for every request waiting on it.
pub enum Landing {
    /// A storable response, streaming into the store and to every reader.
    Shared(SharedResponse),
    /// The stored object was revalidated (304) and updated.
    Revalidated(Arc<StoredObject>),
    /// A response that is not stored.
    Pass(PassResponse),
    /// No usable response.
    Failed(EdgeError),
}

pub struct SharedResponse {
    pub meta: Arc<ObjectMeta>,
    pub body: Arc<SharedBody>,
    /// The Vary secondary key the response was fetched for, if it varies: a follower whose
    /// request gives another key must fetch its own variant.
    pub vary: Option<(Vec<http::HeaderName>, String)>,
    pub stored: bool,
    pub ttl_secs: i64,
}

pub struct PassResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: PassBody,
    /// A 5xx from upstream: waiters holding a stale object may serve it instead (stale-if-error).
    pub server_error: bool,
}

pub enum PassBody {
    /// Small bodies are read whole, so every waiter gets a copy.
    Buffered(Bytes),
    /// Larger ones go to the first waiter that takes them; the others fetch on their own.
    Once(Mutex<Option<EdgeBody>>),
}

type Slot = watch::Receiver<Option<Arc<Landing>>>;

#[derive(Default)]
pub struct Flights {
    map: Mutex<HashMap<String, Slot>>,
}

pub enum Join {
    Lead(Lead),
    Follow(Follower),
}

/// The leader's handle: lands the result, and closes the flight when dropped.
pub struct Lead {
    tx: watch::Sender<Option<Arc<Landing>>>,
    rx: Slot,
    key: Option<String>,
    flights: Arc<Flights>,
}

pub struct Follower {
    rx: Slot,
}

impl Flights {
    pub fn join(self: &Arc<Self>, key: &str) -> Join {
        let Ok(mut map) = self.map.lock() else { return Join::Lead(self.solo()) };
        if let Some(rx) = map.get(key) {
            return Join::Follow(Follower { rx: rx.clone() });
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_string(), rx.clone());
        Join::Lead(Lead { tx, rx, key: Some(key.to_string()), flights: self.clone() })
    }

    /// A flight nobody else can join (requests that must not share, e.g. with Authorization).
    pub fn solo(self: &Arc<Self>) -> Lead {
        let (tx, rx) = watch::channel(None);
        Lead { tx, rx, key: None, flights: self.clone() }
    }

    pub fn in_flight(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Lead {
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

    #[tokio::test]
    async fn followers_get_the_leaders_landing() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(lead) = flights.join("k") else { panic!("first must lead") };
        let Join::Follow(f1) = flights.join("k") else { panic!("second must follow") };
        let Join::Lead(_other) = flights.join("other") else { panic!() };
        let waiting = tokio::spawn(f1.wait());
        lead.land(Landing::Failed(EdgeError::new(ErrorKind::UpstreamConnect, "x")));
        let got = waiting.await.unwrap().unwrap();
        assert!(matches!(&*got, Landing::Failed(_)));
        // Still open until the leader is dropped (late joiners may read the stream).
        assert!(matches!(flights.join("k"), Join::Follow(_)));
        drop(lead);
        assert!(matches!(flights.join("k"), Join::Lead(_)));
    }

    #[tokio::test]
    async fn a_vanished_leader_releases_followers() {
        let flights = Arc::new(Flights::default());
        let lead = flights.join("k");
        let Join::Follow(f) = flights.join("k") else { panic!() };
        drop(lead);
        assert!(f.wait().await.is_none());
    }
}
