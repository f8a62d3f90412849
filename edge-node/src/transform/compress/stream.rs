//! Response bodies encoded or decoded as they stream, with the codec work off the async
//! runtime.
//!
//! Each step moves the codec into `tokio::task::spawn_blocking`, does at most one [`CHUNK`]
//! of work (64KiB of input to encode, or 64KiB of output decoded) and moves it back. A
//! dedicated blocking task per response fed through a channel was the alternative; it holds
//! a blocking-pool thread for as long as the slowest client takes to read, so a few hundred
//! slow downloads would use up the pool. Here a thread is held only while it computes, and
//! the body's backpressure is the client's: no step runs until the previous output was taken.
//!
//! Input frames that are ready at once are gathered up to [`CHUNK`], so small frames do not
//! cost one task each. When the input stalls (the next frame is not ready), the encoder is
//! flushed first, so the client gets all that arrived so far (server-sent events, slow
//! origins); a body read from memory never stalls and is not flushed. The encoder is also
//! flushed after [`FLUSH_AFTER`] of input without output: brotli at quality 4 and above
//! otherwise holds up to its window (4MiB) before the first byte.
//!
//! Memory per body: the codec's state (window) plus one chunk in and one out; never the
//! whole body. An input error ends the output with that error; a codec error ends it with a
//! [`TransformError`].

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use http::HeaderMap;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::codec::{CHUNK, Decoder, Encoder};
use super::coding::Coding;
use crate::body::{BoxError, EdgeBody};

/// Input an encoder may take without giving output before it is flushed. A brotli
/// meta-block boundary this often costs well under 0.1% in size.
pub const FLUSH_AFTER: usize = 1 << 20;

/// A codec failure while transforming a body. The source is an `io::Error`: `InvalidData`
/// for corrupt input (with [`DecodeLimitExceeded`](super::codec::DecodeLimitExceeded) inside
/// when the decoded size passed its bound), `UnexpectedEof` for a truncated stream.
#[derive(Debug, thiserror::Error)]
#[error("{op} {coding}: {source}")]
pub struct TransformError {
    pub op: Op,
    pub coding: Coding,
    #[source]
    pub source: std::io::Error,
}

/// Which way a [`TransformError`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Encode,
    Decode,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Encode => "encode",
            Op::Decode => "decode",
        })
    }
}

/// `body` encoded with `coding` at `level` (see [`Encoder::new`]), as it streams. Trailers
/// are passed on after the encoded data. Identity gives `body` back.
pub fn encode_body(body: EdgeBody, coding: Coding, level: u32) -> EdgeBody {
    if coding == Coding::Identity {
        return body;
    }
    drive(body, Encoder::new(coding, level).map(Codec::Encode), coding, Op::Encode)
}

/// `body`, encoded with `coding`, decoded as it streams, failing once the output would pass
/// `max_out` bytes (see [`Decoder::new`]). Identity gives `body` back.
pub fn decode_body(body: EdgeBody, coding: Coding, max_out: u64) -> EdgeBody {
    if coding == Coding::Identity {
        return body;
    }
    drive(body, Decoder::new(coding, max_out).map(Codec::Decode), coding, Op::Decode)
}

enum Codec {
    Encode(Encoder),
    Decode(Decoder),
}

struct Driver {
    input: EdgeBody,
    /// `None` once finished or failed.
    codec: Option<Codec>,
    coding: Coding,
    op: Op,
    /// Input taken from the body and not yet given to the codec.
    pending: Bytes,
    input_ended: bool,
    /// Input that went into the encoder since it last gave output.
    unflushed: usize,
    /// The decoder's last step filled its output: more may come without more input.
    more_output: bool,
    trailers: Option<HeaderMap>,
}

/// What the codec does in one blocking step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Task {
    /// Encode up to a chunk of `pending`, or decode from it up to a chunk of output.
    Work,
    Flush,
    /// The input ended: end the encoded stream, or check the decoded one ended too.
    Finish,
}

fn drive(input: EdgeBody, codec: std::io::Result<Codec>, coding: Coding, op: Op) -> EdgeBody {
    let (codec, failure) = match codec {
        Ok(codec) => (Some(codec), None),
        Err(source) => (None, Some(TransformError { op, coding, source })),
    };
    let driver = Driver {
        input,
        codec,
        coding,
        op,
        pending: Bytes::new(),
        input_ended: false,
        unflushed: 0,
        more_output: false,
        trailers: None,
    };
    let frames = futures_util::stream::unfold((driver, failure), |(mut driver, failure)| async move {
        if let Some(error) = failure {
            return Some((Err(BoxError::from(error)), (driver, None)));
        }
        let frame = driver.next_frame().await?;
        Some((frame, (driver, None)))
    });
    StreamBody::new(frames).boxed_unsync()
}

impl Driver {
    /// The next output frame; `None` at the end.
    async fn next_frame(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        loop {
            let Some(codec) = self.codec.take() else {
                return self.trailers.take().map(|trailers| Ok(Frame::trailers(trailers)));
            };
            let task = match self.next_task(&codec).await {
                Ok(task) => task,
                Err(error) => return Some(Err(error)),
            };
            let pending = std::mem::take(&mut self.pending);
            let work = pending.len().min(CHUNK);
            let (codec, pending, result) = match tokio::task::spawn_blocking(move || step(codec, pending, task)).await {
                Ok(done) => done,
                Err(join) => (None, Bytes::new(), Err(std::io::Error::other(format!("codec task failed: {join}")))),
            };
            self.pending = pending;
            match result {
                Ok((output, more_output)) => {
                    self.more_output = more_output;
                    self.unflushed = match task {
                        Task::Work if output.is_empty() => self.unflushed + work,
                        Task::Work | Task::Flush | Task::Finish => 0,
                    };
                    self.codec = codec;
                    if !output.is_empty() {
                        return Some(Ok(Frame::data(output)));
                    }
                }
                Err(source) => {
                    self.trailers = None;
                    return Some(Err(TransformError { op: self.op, coding: self.coding, source }.into()));
                }
            }
        }
    }

    /// Decides the next step, reading input when the codec needs it.
    async fn next_task(&mut self, codec: &Codec) -> Result<Task, BoxError> {
        let encoding = matches!(codec, Codec::Encode(_));
        if encoding && self.unflushed >= FLUSH_AFTER {
            return Ok(Task::Flush);
        }
        if !self.pending.is_empty() || self.more_output {
            return Ok(Task::Work);
        }
        if !self.input_ended {
            let may_flush = encoding && self.unflushed > 0;
            if self.fill(may_flush).await? {
                return Ok(Task::Flush);
            }
        }
        Ok(if !self.pending.is_empty() { Task::Work } else { Task::Finish })
    }

    /// Reads the frames that are ready, up to a chunk; waits for the first unless `may_stall`,
    /// in which case returns true (stalled) when none is ready.
    async fn fill(&mut self, may_stall: bool) -> Result<bool, BoxError> {
        let mut batch = BytesMut::new();
        let mut first: Option<Bytes> = None;
        loop {
            let empty = first.is_none();
            let next =
                if empty && !may_stall { Some(self.input.frame().await) } else { self.input.frame().now_or_never() };
            let frame = match next {
                None if empty => return Ok(true),
                None => break,
                Some(None) => {
                    self.input_ended = true;
                    break;
                }
                Some(Some(frame)) => frame?,
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => match &first {
                    None => first = Some(data),
                    Some(head) => {
                        if batch.is_empty() {
                            batch.extend_from_slice(head);
                        }
                        batch.extend_from_slice(&data);
                    }
                },
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        self.trailers = Some(trailers);
                    }
                }
            }
            let gathered = if batch.is_empty() { first.as_ref().map_or(0, Bytes::len) } else { batch.len() };
            if gathered >= CHUNK {
                break;
            }
        }
        self.pending = if batch.is_empty() { first.unwrap_or_default() } else { batch.freeze() };
        Ok(false)
    }
}

/// One blocking step: the codec back (unless finished), the input left, the output and
/// whether the decoder may have more output without more input.
fn step(codec: Codec, mut pending: Bytes, task: Task) -> (Option<Codec>, Bytes, std::io::Result<(Bytes, bool)>) {
    match (codec, task) {
        (Codec::Encode(encoder), Task::Finish) => (None, pending, encoder.finish().map(|out| (out, false))),
        (Codec::Encode(mut encoder), Task::Flush) => {
            let result = encoder.flush().map(|out| (out, false));
            (Some(Codec::Encode(encoder)), pending, result)
        }
        (Codec::Encode(mut encoder), Task::Work) => {
            let piece = pending.split_to(pending.len().min(CHUNK));
            let result = encoder.push(&piece).map(|out| (out, false));
            (Some(Codec::Encode(encoder)), pending, result)
        }
        (Codec::Decode(mut decoder), task) => match decoder.decode(&pending, CHUNK) {
            Ok(decoded) => {
                pending.advance(decoded.consumed);
                let more = decoded.output.len() >= CHUNK;
                if task == Task::Finish && pending.is_empty() && !more {
                    (None, pending, decoder.finish().map(|()| (decoded.output, false)))
                } else if decoded.consumed == 0 && decoded.output.is_empty() && !pending.is_empty() {
                    let stuck = std::io::Error::other("decoder made no progress");
                    (None, pending, Err(stuck))
                } else {
                    (Some(Codec::Decode(decoder)), pending, Ok((decoded.output, more)))
                }
            }
            Err(error) => (None, pending, Err(error)),
        },
    }
}

#[cfg(test)]
mod tests;
