//! One node's stream: a task that writes NDJSON lines into a bounded channel the response
//! body reads from.
//!
//! Start: a snapshot when the node has nothing (`after` = 0), asks for more than the log has
//! (`after` > head), or resumes from before the oldest event kept (compacted); `resync` is
//! set when it asked to resume. Otherwise the events after `after`. Then, on every wake of the
//! hub and every heartbeat tick, the events after the cursor, read from the store in order
//! (a tick re-reads too, so an event whose writer never woke the hub still goes out within a
//! heartbeat), and on a tick `{"heartbeat": {"head": cursor}}`.
//!
//! A second claimant for the node's id pokes the stream: it sends a heartbeat at once, so a
//! holder whose connection is gone (a node restarted on the same id) fails its write and
//! frees the id for the claimant's next try.
//!
//! While the store does not answer, the stream stays open with heartbeats and resumes sending
//! events from its cursor once it does.
//!
//! End: the node goes away (the body is dropped, or a write fails), the node is deregistered,
//! the server stops, the node does not take a message for 3 heartbeats (a full buffer:
//! it stopped reading), or the events it needs next were compacted away while it lagged (it
//! reconnects and gets a snapshot). A stream never ends on its own otherwise.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use outpost_config::{NodeId, Seq, Snapshot, StreamMessage};
use tokio::sync::mpsc;

use super::{Connection, Nodes};
use crate::store::{Store, StoreError};

/// Events read from the store per query.
const PAGE: usize = 256;

/// Why a stream ended.
#[derive(Debug)]
enum End {
    NodeGone,
    /// Deregistered, or the server stops.
    Stopped,
    TooSlow,
    Compacted {
        needed: Seq,
    },
    Store(StoreError),
}

/// Starts the stream for `id` after `after` and returns the response body that carries it.
pub fn open(store: Arc<dyn Store>, nodes: Arc<Nodes>, id: NodeId, connection: Connection, after: Seq) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(nodes.settings().stream_buffer);
    tokio::spawn(async move {
        let generation = connection.generation;
        let end = follow(&*store, &nodes, &tx, connection, after).await;
        nodes.disconnect(&id, generation);
        match end {
            End::NodeGone | End::Stopped => tracing::debug!(node = %id, ?end, "stream closed"),
            End::TooSlow => {
                tracing::warn!(node = %id, "stream closed: the node took no message for 3 heartbeats")
            }
            End::Compacted { needed } => tracing::warn!(
                node = %id,
                %needed,
                "stream closed: the events it needs next were compacted away; it gets a snapshot on reconnect"
            ),
            End::Store(error) => tracing::error!(node = %id, "stream closed: {error}"),
        }
    });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    Body::from_stream(lines)
}

async fn follow(store: &dyn Store, nodes: &Nodes, tx: &mpsc::Sender<Bytes>, connection: Connection, after: Seq) -> End {
    let heartbeat = nodes.settings().heartbeat_interval;
    let out = Out { tx, patience: heartbeat.saturating_mul(3) };
    // Subscribe before the first read: a write after it wakes us, one before it is read.
    let mut head = nodes.head();
    let Connection { mut stop, poke, .. } = connection;
    let mut cursor = match start(store, &out, after).await {
        Ok(cursor) => cursor,
        Err(end) => return end,
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        let beat = tokio::select! {
            biased;
            _ = &mut stop => return End::Stopped,
            _ = tx.closed() => return End::NodeGone,
            changed = head.changed() => {
                if changed.is_err() {
                    return End::Stopped;
                }
                false
            }
            _ = ticks.tick() => true,
            () = poke.notified() => true,
        };
        cursor = match send_after(store, &out, cursor).await {
            Ok(cursor) => {
                failing = false;
                cursor
            }
            // The store is away: keep the stream (and the node's place in DNS) and try again
            // at the next wake or heartbeat; events resume from the cursor once it answers.
            Err(End::Store(error)) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, cursor = %cursor, "stream: cannot read the log; heartbeats go on, retrying");
                }
                cursor
            }
            Err(end) => return end,
        };
        if beat && let Err(end) = out.send(&StreamMessage::Heartbeat { head: cursor }).await {
            return end;
        }
    }
}

/// The first messages: a snapshot or the events after `after`. Returns the cursor.
async fn start(store: &dyn Store, out: &Out<'_>, after: Seq) -> Result<Seq, End> {
    let head = store.last_seq().await.map_err(End::Store)?;
    if after.0 > 0 && after <= head {
        let first = store.events(after.next(), PAGE).await.map_err(End::Store)?;
        match first.first() {
            // Nothing after it: the node is up to date.
            None if after == head => return Ok(after),
            Some(event) if event.seq == after.next() => {
                let mut cursor = after;
                for event in first {
                    cursor = event.seq;
                    out.send(&StreamMessage::Event(event)).await?;
                }
                return send_after(store, out, cursor).await;
            }
            // Compacted: fall through to a snapshot.
            _ => {}
        }
    }
    let snapshot = store.snapshot().await.map_err(End::Store)?;
    let cursor = snapshot.seq;
    let resync = after.0 > 0;
    let message = Snapshot {
        seq: snapshot.seq,
        services: snapshot.services,
        resync,
        certificates: snapshot.certificates,
        acme_challenges: snapshot.challenges,
    };
    out.send(&StreamMessage::Snapshot(message)).await?;
    send_after(store, out, cursor).await
}

/// Sends every event after `cursor`, in pages; returns the new cursor.
async fn send_after(store: &dyn Store, out: &Out<'_>, mut cursor: Seq) -> Result<Seq, End> {
    loop {
        let events = store.events(cursor.next(), PAGE).await.map_err(End::Store)?;
        let full = events.len() == PAGE;
        for event in events {
            if event.seq != cursor.next() {
                return Err(End::Compacted { needed: cursor.next() });
            }
            cursor = event.seq;
            out.send(&StreamMessage::Event(event)).await?;
        }
        if !full {
            return Ok(cursor);
        }
    }
}

/// The sending half, with how long a send may wait for room.
struct Out<'a> {
    tx: &'a mpsc::Sender<Bytes>,
    patience: Duration,
}

impl Out<'_> {
    async fn send(&self, message: &StreamMessage) -> Result<(), End> {
        let mut line =
            serde_json::to_vec(message).map_err(|e| End::Store(StoreError::Backend(format!("encode: {e}"))))?;
        line.push(b'\n');
        match tokio::time::timeout(self.patience, self.tx.send(Bytes::from(line))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::NodeGone),
            Err(_) => Err(End::TooSlow),
        }
    }
}
