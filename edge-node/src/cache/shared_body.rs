//! A response body being fetched once and read by many: the first client and every collapsed
//! request stream from it while it arrives, so time to first byte never waits for the whole body.
//!
//! While the object is small enough to store, every chunk is kept (a late joiner reads from the
//! start). Past that (`stop_retaining`), chunks every reader has passed are dropped and the writer
//! waits when the slowest reader is more than `window` bytes behind: memory stays bounded and the
//! upstream is paced by the clients, as in a plain proxy.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::Notify;

use crate::body::{BoxError, EdgeBody};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchAborted(pub String);

pub struct SharedBody {
    state: Mutex<State>,
    readable: Notify,
    writable: Notify,
    window: usize,
}

struct State {
    chunks: VecDeque<Bytes>,
    /// Sequence number of `chunks[0]`.
    base: usize,
    retained_bytes: usize,
    retain_all: bool,
    end: Option<Result<(), FetchAborted>>,
    /// Reader id → sequence number of the next chunk it will read.
    readers: HashMap<u64, usize>,
    next_reader: u64,
    /// Has any reader joined? Until one has, a fetch past the storable size waits for it
    /// (bounded by [`JOIN_GRACE`]) rather than dropping bytes nobody has read yet.
    joined: bool,
}

/// How long a fetch that can no longer retain its body waits for its first reader.
const JOIN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl SharedBody {
    pub fn new(window: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                chunks: VecDeque::new(),
                base: 0,
                retained_bytes: 0,
                retain_all: true,
                end: None,
                readers: HashMap::new(),
                next_reader: 0,
                joined: false,
            }),
            readable: Notify::new(),
            writable: Notify::new(),
            window,
        })
    }

    /// A reader from the first byte; `None` once early chunks have been dropped.
    pub fn reader(self: &Arc<Self>) -> Option<Reader> {
        let mut st = self.state.lock().ok()?;
        if st.base != 0 {
            return None;
        }
        let id = st.next_reader;
        st.next_reader += 1;
        st.readers.insert(id, 0);
        st.joined = true;
        drop(st);
        self.writable.notify_one();
        Some(Reader { shared: self.clone(), id })
    }

    /// Append a chunk. Returns false when nobody will ever read it (no readers and not retaining):
    /// the writer should stop fetching.
    pub async fn push(&self, chunk: Bytes) -> bool {
        loop {
            let mut wait = pin!(self.writable.notified());
            wait.as_mut().enable();
            let first_reader_pending = {
                let Ok(mut st) = self.state.lock() else { return false };
                if st.retain_all {
                    break;
                }
                if st.readers.is_empty() && st.joined {
                    return false;
                }
                trim(&mut st);
                if st.retained_bytes <= self.window && st.joined {
                    break;
                }
                !st.joined
            };
            if first_reader_pending {
                // Backpressure until the first client attaches, not data loss.
                if tokio::time::timeout(JOIN_GRACE, wait).await.is_err() {
                    return false;
                }
            } else {
                wait.await;
            }
        }
        if let Ok(mut st) = self.state.lock() {
            st.retained_bytes += chunk.len();
            st.chunks.push_back(chunk);
        }
        self.readable.notify_waiters();
        true
    }

    /// Past the storable size: stop keeping what every reader has read.
    pub fn stop_retaining(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.retain_all = false;
            trim(&mut st);
        }
    }

    pub fn finish(&self, result: Result<(), FetchAborted>) {
        if let Ok(mut st) = self.state.lock() {
            st.end.get_or_insert(result);
        }
        self.readable.notify_waiters();
    }
}

fn trim(st: &mut State) {
    if !st.joined {
        // The first reader has not attached yet: everything is still to be read.
        return;
    }
    let Some(&slowest) = st.readers.values().min() else {
        st.base += st.chunks.len();
        st.chunks.clear();
        st.retained_bytes = 0;
        return;
    };
    while st.base < slowest {
        let Some(c) = st.chunks.pop_front() else { break };
        st.retained_bytes -= c.len();
        st.base += 1;
    }
}

pub struct Reader {
    shared: Arc<SharedBody>,
    id: u64,
}

enum Next {
    Chunk(Bytes),
    End,
    Failed(FetchAborted),
    Wait,
}

impl Reader {
    pub async fn next(&mut self) -> Option<Result<Bytes, FetchAborted>> {
        loop {
            let shared = self.shared.clone();
            let mut wait = pin!(shared.readable.notified());
            wait.as_mut().enable();
            match self.poll_state() {
                Next::Chunk(c) => return Some(Ok(c)),
                Next::End => return None,
                Next::Failed(e) => return Some(Err(e)),
                Next::Wait => wait.await,
            }
        }
    }

    fn poll_state(&mut self) -> Next {
        let Ok(mut st) = self.shared.state.lock() else {
            return Next::Failed(FetchAborted("shared body lock poisoned".into()));
        };
        let Some(&pos) = st.readers.get(&self.id) else { return Next::End };
        if let Some(chunk) = pos.checked_sub(st.base).and_then(|i| st.chunks.get(i)).cloned() {
            st.readers.insert(self.id, pos + 1);
            drop(st);
            self.shared.writable.notify_one();
            return Next::Chunk(chunk);
        }
        match &st.end {
            Some(Ok(())) => Next::End,
            Some(Err(e)) => Next::Failed(e.clone()),
            None => Next::Wait,
        }
    }

    pub fn into_body(self) -> EdgeBody {
        let stream = futures_util::stream::unfold(self, |mut r| async move {
            match r.next().await {
                Some(Ok(c)) => Some((Ok::<_, BoxError>(Frame::data(c)), r)),
                Some(Err(e)) => Some((Err(Box::new(e) as BoxError), r)),
                None => None,
            }
        });
        StreamBody::new(stream).boxed_unsync()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.readers.remove(&self.id);
        }
        self.shared.writable.notify_one();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn read_all(mut r: Reader) -> Result<Vec<u8>, FetchAborted> {
        let mut out = Vec::new();
        while let Some(c) = r.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn every_reader_sees_every_byte_even_joining_late() {
        let body = SharedBody::new(1024);
        let early = body.reader().unwrap();
        assert!(body.push(Bytes::from_static(b"hello ")).await);
        let late = body.reader().unwrap();
        let task = tokio::spawn(read_all(early));
        assert!(body.push(Bytes::from_static(b"world")).await);
        body.finish(Ok(()));
        assert_eq!(task.await.unwrap().unwrap(), b"hello world");
        assert_eq!(read_all(late).await.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn an_aborted_fetch_fails_its_readers() {
        let body = SharedBody::new(1024);
        let r = body.reader().unwrap();
        body.push(Bytes::from_static(b"part")).await;
        body.finish(Err(FetchAborted("upstream reset".into())));
        assert!(read_all(r).await.is_err());
    }

    #[tokio::test]
    async fn past_the_window_memory_is_bounded_and_late_joiners_refused() {
        let body = SharedBody::new(8);
        let mut r = body.reader().unwrap();
        body.stop_retaining();
        assert!(body.push(Bytes::from_static(b"12345678")).await);
        // The reader consumes; the writer may continue.
        assert_eq!(&r.next().await.unwrap().unwrap()[..], b"12345678");
        assert!(body.push(Bytes::from_static(b"abcdefgh")).await);
        assert!(body.reader().is_none(), "chunk 0 was dropped");
        drop(r);
        assert!(!body.push(Bytes::from_static(b"x")).await, "nobody reads: stop");
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_storable_size_the_writer_waits_for_its_first_reader() {
        let body = SharedBody::new(64);
        // Data that arrived while the body was still retained survives the switch.
        assert!(body.push(Bytes::from_static(b"early ")).await);
        body.stop_retaining();
        let writer = {
            let body = body.clone();
            tokio::spawn(async move { body.push(Bytes::from_static(b"first")).await })
        };
        tokio::task::yield_now().await;
        let r = body.reader().expect("the first reader can still start at byte 0");
        assert!(writer.await.unwrap(), "the push waited for the reader instead of failing");
        body.finish(Ok(()));
        assert_eq!(read_all(r).await.unwrap(), b"early first");
        // Nobody ever comes: the writer gives up after the grace period.
        let lonely = SharedBody::new(4);
        lonely.stop_retaining();
        assert!(!lonely.push(Bytes::from_static(b"x")).await);
    }
}
