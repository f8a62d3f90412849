//! Who gets a QUIC handshake: address validation with Retry (RFC 9000 §8.1.2) and the count of
//! handshakes in progress that "under load" is measured by.
//!
//! A Retry costs a new client one round trip but proves it owns its source address before the
//! server spends a TLS handshake (and up to 3x amplification) on it: worth it during a flood of
//! spoofed Initials, not on every connection, so the default validates only under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use outpost_config::QuicRetry;

/// Whether to answer a new connection attempt with a Retry packet instead of a handshake.
/// `validated`: the client already echoed a Retry token (or a NEW_TOKEN), so its address is proven.
pub fn needs_retry(mode: QuicRetry, validated: bool, in_progress: usize, threshold: usize) -> bool {
    if validated {
        return false;
    }
    match mode {
        QuicRetry::Never => false,
        QuicRetry::Always => true,
        QuicRetry::UnderLoad => in_progress >= threshold,
    }
}

/// Handshakes started and not yet finished (completed, failed or timed out).
#[derive(Debug, Default, Clone)]
pub struct Handshakes(Arc<AtomicUsize>);

impl Handshakes {
    pub fn in_progress(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Count one handshake until the guard is dropped.
    pub fn start(&self) -> HandshakeGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        HandshakeGuard(Some(self.0.clone()))
    }
}

/// Counts its handshake as in progress until [`HandshakeGuard::done`] or drop.
#[derive(Debug)]
pub struct HandshakeGuard(Option<Arc<AtomicUsize>>);

impl HandshakeGuard {
    pub fn done(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if let Some(n) = self.0.take() {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use QuicRetry::*;

    #[test]
    fn retry_decisions() {
        // (mode, validated, in progress, threshold, retry?)
        let table = [
            (Never, false, 10_000, 1, false),
            (Always, false, 0, 256, true),
            (Always, true, 0, 256, false), // the Retry token came back: proceed
            (UnderLoad, false, 0, 256, false),
            (UnderLoad, false, 255, 256, false),
            (UnderLoad, false, 256, 256, true),
            (UnderLoad, true, 10_000, 256, false),
            (UnderLoad, false, 1, 1, true),
        ];
        for (mode, validated, in_progress, threshold, want) in table {
            assert_eq!(
                needs_retry(mode, validated, in_progress, threshold),
                want,
                "{mode:?} validated={validated} in_progress={in_progress} threshold={threshold}"
            );
        }
    }

    #[test]
    fn guards_count_handshakes_in_progress() {
        let h = Handshakes::default();
        let a = h.start();
        let b = h.start();
        assert_eq!(h.in_progress(), 2);
        a.done();
        assert_eq!(h.in_progress(), 1);
        drop(b);
        assert_eq!(h.in_progress(), 0);
    }
}
