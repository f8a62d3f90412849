//! [`TimedBody`] on tokio's paused clock: the between-bytes and total timeouts are judged in
//! virtual time, so the tests take no real seconds and do not depend on the machine's load.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{BetweenBytesTimeout, TimedBody, TotalTimeout};

/// A body whose frames a test sends, each when it chooses.
struct Chan(mpsc::Receiver<Bytes>);

impl Body for Chan {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(|b| Ok(Frame::data(b))))
    }
}

/// A body sending `frames` chunks, `gap` apart, and what reading it through a [`TimedBody`]
/// gave: the bytes read and the error that ended it, if any.
async fn drip(frames: usize, gap: Duration, between: Duration, total: Duration) -> (usize, Option<String>, Duration) {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for _ in 0..frames {
            tokio::time::sleep(gap).await;
            if tx.send(Bytes::from_static(b"drip ")).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut body = TimedBody::new(Chan(rx), between, total, started);
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => read += f.into_data().map_or(0, |d| d.len()),
            Err(e) => {
                let kind = if e.is::<BetweenBytesTimeout>() {
                    "between-bytes"
                } else if e.is::<TotalTimeout>() {
                    "total"
                } else {
                    "other"
                };
                return (read, Some(kind.to_string()), started.elapsed());
            }
        }
    }
    (read, None, started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn timed_bodies_in_virtual_time() {
    let ms = Duration::from_millis;
    // (what, frames, gap, between_bytes_timeout, total_timeout, bytes read, error, when it ended)
    type Case = (&'static str, usize, Duration, Duration, Duration, usize, Option<&'static str>, Duration);
    let cases: &[Case] = &[
        ("every gap within both bounds: the whole body", 4, ms(100), ms(1000), ms(10_000), 20, None, ms(400)),
        (
            "a gap longer than between_bytes_timeout",
            2,
            ms(3000),
            ms(1000),
            ms(10_000),
            0,
            Some("between-bytes"),
            ms(1000),
        ),
        ("each gap within, the whole over total_timeout", 8, ms(200), ms(1000), ms(700), 15, Some("total"), ms(700)),
    ];
    for (what, frames, gap, between, total, want_read, want_err, want_at) in cases {
        let (read, err, at) = drip(*frames, *gap, *between, *total).await;
        assert_eq!(read, *want_read, "{what}: bytes read");
        assert_eq!(err.as_deref(), *want_err, "{what}: error");
        assert_eq!(at, *want_at, "{what}: virtual time it ended");
    }
}
