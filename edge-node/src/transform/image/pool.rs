//! The bounded transcode pool: at most `limits.max_concurrent_transcodes` transcodes run at
//! once, on tokio's blocking threads (never on the async workers that serve cache hits), and at
//! most `limits.max_queued_transcodes` wait for a slot; one more gets [`TranscodeError::Busy`]
//! at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use outpost_config::{ImagesConfig, LimitsConfig};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::resolve::ResolvedOps;
use super::transcode::{TranscodeError, Transcoded, transcode};
use crate::metrics::{IMAGE_TRANSCODE_DURATION, IMAGE_TRANSCODES, IMAGE_TRANSCODES_WAITING};

/// One per node, shared by every service (cheap to clone).
#[derive(Debug, Clone)]
pub struct Transcoder {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_concurrent: usize,
    max_queued: usize,
}

impl Transcoder {
    /// `max_concurrent` is at least 1.
    pub fn new(max_concurrent: usize, max_queued: usize) -> Self {
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_concurrent,
            max_queued,
        }
    }

    pub fn from_limits(limits: &LimitsConfig) -> Self {
        Self::new(limits.max_concurrent_transcodes, limits.max_queued_transcodes)
    }

    /// Transcodes running now.
    pub fn running(&self) -> usize {
        self.max_concurrent - self.permits.available_permits()
    }

    /// Transcodes waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Transcodes `src` on the blocking pool once a slot is free, or fails at once with `Busy`
    /// when `max_queued` others already wait. Dropping the future while it waits gives up its
    /// place; once started, the transcode runs to the end and holds its slot until then (so
    /// clients that go away cannot push the real work above the bound).
    pub async fn run(
        &self,
        src: Bytes,
        ops: ResolvedOps,
        cfg: Arc<ImagesConfig>,
    ) -> Result<Transcoded, TranscodeError> {
        let format = ops.format.as_str();
        let permit = match self.acquire().await {
            Ok(permit) => permit,
            Err(e) => {
                metrics::counter!(IMAGE_TRANSCODES, "outcome" => e.kind(), "format" => format).increment(1);
                return Err(e);
            }
        };
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = Instant::now();
            let result = transcode(&src, &ops, &cfg);
            (result, started.elapsed())
        });
        let result = match task.await {
            Ok((result, took)) => {
                metrics::histogram!(IMAGE_TRANSCODE_DURATION, "format" => format).record(took.as_secs_f64());
                result
            }
            Err(e) => Err(TranscodeError::Internal(e.to_string())),
        };
        let outcome = result.as_ref().map_or_else(TranscodeError::kind, |_| "ok");
        metrics::counter!(IMAGE_TRANSCODES, "outcome" => outcome, "format" => format).increment(1);
        result
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, TranscodeError> {
        let closed = || TranscodeError::Internal("the transcode pool is closed".to_owned());
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _place = Queued::enter(&self.waiting, self.max_queued)
            .ok_or(TranscodeError::Busy { max_queued: self.max_queued })?;
        self.permits.clone().acquire_owned().await.map_err(|_| closed())
    }
}

/// A place in the queue, given up on drop (also when the waiting future is dropped).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        metrics::gauge!(IMAGE_TRANSCODES_WAITING).increment(1.0);
        Some(Queued(waiting))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(IMAGE_TRANSCODES_WAITING).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::transform::image::fixtures;
    use crate::transform::image::{Fit, OutputFormat};

    fn job() -> (Bytes, ResolvedOps, Arc<ImagesConfig>) {
        let ops =
            ResolvedOps { width: Some(40), height: None, fit: Fit::ScaleDown, format: OutputFormat::Webp, quality: 80 };
        let cfg = ImagesConfig { enabled: true, ..ImagesConfig::default() };
        (Bytes::from(fixtures::jpeg(200, 150)), ops, Arc::new(cfg))
    }

    async fn wait_for_waiting(transcoder: &Transcoder, n: usize) {
        while transcoder.waiting() != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn runs_a_transcode() {
        let transcoder = Transcoder::new(2, 4);
        let (src, ops, cfg) = job();
        let got = transcoder.run(src, ops, cfg).await.unwrap();
        assert_eq!((got.width, got.height, got.content_type), (40, 30, "image/webp"));
        assert_eq!((transcoder.running(), transcoder.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn busy_at_once_when_the_queue_is_full() {
        let transcoder = Transcoder::new(1, 1);
        // Every slot taken, as by a long transcode.
        let slot = transcoder.permits.clone().try_acquire_owned().unwrap();
        assert_eq!(transcoder.running(), 1);

        let (src, ops, cfg) = job();
        let queued = tokio::spawn({
            let transcoder = transcoder.clone();
            let (src, cfg) = (src.clone(), cfg.clone());
            async move { transcoder.run(src, ops, cfg).await }
        });
        wait_for_waiting(&transcoder, 1).await;

        let refused = transcoder.run(src.clone(), ops, cfg.clone()).await;
        assert_eq!(refused, Err(TranscodeError::Busy { max_queued: 1 }));
        assert_eq!(transcoder.waiting(), 1, "the refused one never queued");

        drop(slot);
        let done = queued.await.unwrap().unwrap();
        assert_eq!((done.width, done.height), (40, 30));
        assert_eq!((transcoder.running(), transcoder.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn no_queue_means_busy_whenever_every_slot_is_taken() {
        let transcoder = Transcoder::new(1, 0);
        let slot = transcoder.permits.clone().try_acquire_owned().unwrap();
        let (src, ops, cfg) = job();
        assert_eq!(transcoder.run(src.clone(), ops, cfg.clone()).await, Err(TranscodeError::Busy { max_queued: 0 }));
        drop(slot);
        assert!(transcoder.run(src, ops, cfg).await.is_ok());
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_gives_up_its_place() {
        let transcoder = Transcoder::new(1, 1);
        let slot = transcoder.permits.clone().try_acquire_owned().unwrap();
        let (src, ops, cfg) = job();
        let queued = tokio::spawn({
            let transcoder = transcoder.clone();
            let (src, cfg) = (src.clone(), cfg.clone());
            async move { transcoder.run(src, ops, cfg).await }
        });
        wait_for_waiting(&transcoder, 1).await;
        queued.abort();
        assert!(queued.await.unwrap_err().is_cancelled());
        assert_eq!(transcoder.waiting(), 0);
        drop(slot);
        assert!(transcoder.run(src, ops, cfg).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_max_concurrent_run_at_once() {
        let transcoder = Transcoder::new(2, 16);
        let (src, ops, cfg) = job();
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let (transcoder, src, cfg) = (transcoder.clone(), src.clone(), cfg.clone());
                tokio::spawn(async move { transcoder.run(src, ops, cfg).await })
            })
            .collect();
        let mut most = 0;
        while jobs.iter().any(|j| !j.is_finished()) {
            most = most.max(transcoder.running());
            tokio::task::yield_now().await;
        }
        assert!(most <= 2, "{most} ran at once");
        for job in jobs {
            assert!(job.await.unwrap().is_ok());
        }
    }
}
