//! Persisting acknowledgements with a group commit: every ack that arrives while a write is
//! in flight goes into the next one, so 20 nodes acking one purge cost a couple of fsyncs,
//! not 20 in a row. An ack's `204` waits for its write, so an acknowledged ack survives a
//! restart of the control plane.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{NodeAck, Store};

/// Acks queued for the writer before `persist` waits for room. Default and only value: 4096
/// (the fleet's acks for a burst of events; each entry is a few dozen bytes).
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<(), String>>;

/// The handle the ack route uses; the writer task ends when it is dropped.
#[derive(Clone)]
pub struct AckWriter {
    queue: mpsc::Sender<(NodeAck, Reply)>,
}

impl AckWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, rx));
        Self { queue }
    }

    /// Writes `ack` (with whatever else is queued); the error says why the store refused.
    pub async fn persist(&self, ack: NodeAck) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((ack, reply)).await.map_err(|_| "the ack writer has stopped".to_owned())?;
        answer.await.map_err(|_| "the ack writer has stopped".to_owned())?
    }
}

async fn write_batches(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(NodeAck, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        let (acks, replies): (Vec<NodeAck>, Vec<Reply>) = batch.into_iter().unzip();
        let count = acks.len();
        let result = store.record_acks(acks).await.map_err(|e| e.to_string());
        if let Err(error) = &result {
            tracing::error!(count, "persist acks: {error}");
        }
        for reply in replies {
            // The request may have gone away; its ack is written either way.
            let _ = reply.send(result.clone());
        }
    }
}
