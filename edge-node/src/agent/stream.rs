//! The stream's body → its NDJSON lines, in runs: every complete line that has arrived, so the
//! agent applies a burst of events and then persists and acknowledges once.
//!
//! Bounds: a line longer than `control.max_message_size` drops the stream; no line at all (a
//! heartbeat comes every few seconds) for `control.heartbeat_timeout` drops it too.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use outpost_config::StreamMessage;

use super::error::AgentError;

pub struct LineReader<B> {
    body: B,
    buf: BytesMut,
    max_line: usize,
    silence: Duration,
}

impl<B> LineReader<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    pub fn new(body: B, max_line: usize, silence: Duration) -> Self {
        Self { body, buf: BytesMut::new(), max_line, silence }
    }

    /// The next run of complete lines (at least one), each parsed. Waits at most the heartbeat
    /// timeout for the first byte of a line to complete it.
    pub async fn next_run(&mut self) -> Result<Vec<StreamMessage>, AgentError> {
        loop {
            let lines = self.take_lines()?;
            if !lines.is_empty() {
                return Ok(lines);
            }
            let frame = match tokio::time::timeout(self.silence, self.body.frame()).await {
                Err(_) => return Err(AgentError::Silent(self.silence)),
                Ok(None) => return Err(AgentError::Ended),
                Ok(Some(Err(e))) => return Err(AgentError::Unreachable { step: "stream", message: e.to_string() }),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// Splits off every complete line in the buffer; empty lines are skipped.
    fn take_lines(&mut self) -> Result<Vec<StreamMessage>, AgentError> {
        let mut lines = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line = self.buf.split_to(end);
            self.buf.advance(1);
            if end > self.max_line {
                return Err(too_long(self.max_line));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let message = serde_json::from_slice(&line).map_err(|e| AgentError::Protocol {
                step: "stream",
                message: format!("a line that is not a stream message: {e}"),
            })?;
            lines.push(message);
        }
        if self.buf.len() > self.max_line {
            return Err(too_long(self.max_line));
        }
        Ok(lines)
    }
}

fn too_long(max: usize) -> AgentError {
    AgentError::Protocol {
        step: "stream",
        message: format!("a line longer than {max} bytes (control.max_message_size)"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream;
    use http_body::Frame;
    use http_body_util::StreamBody;
    use outpost_config::Seq;

    use super::*;

    type Chunks = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    fn body(chunks: &[&str]) -> Chunks {
        let frames: Vec<_> = chunks.iter().map(|c| Ok(Frame::data(Bytes::from(c.to_string())))).collect();
        StreamBody::new(stream::iter(frames))
    }

    const BEAT: &str = "{\"heartbeat\":{\"head\":3}}\n";

    #[tokio::test]
    async fn lines_split_across_chunks_come_out_whole_in_runs() {
        let chunks = ["{\"heartbeat\":", "{\"head\":1}}\n\n{\"heartbeat\":{\"head\":2}}\n", BEAT];
        let mut reader = LineReader::new(body(&chunks), 1024, Duration::from_secs(1));
        let run = reader.next_run().await.unwrap();
        assert_eq!(run, [StreamMessage::Heartbeat { head: Seq(1) }, StreamMessage::Heartbeat { head: Seq(2) }]);
        assert_eq!(reader.next_run().await.unwrap(), [StreamMessage::Heartbeat { head: Seq(3) }]);
        assert!(matches!(reader.next_run().await, Err(AgentError::Ended)));
    }

    #[tokio::test]
    async fn a_line_over_the_bound_drops_the_stream() {
        let long = format!("{{\"heartbeat\":{{\"head\":{}}}}}\n", "1".repeat(40));
        let mut reader = LineReader::new(body(&[&long]), 32, Duration::from_secs(1));
        let error = reader.next_run().await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("longer than 32 bytes (control.max_message_size)"), "{error}");
        // Without its newline yet, too.
        let mut reader = LineReader::new(body(&[&long[..40]]), 32, Duration::from_secs(1));
        assert!(reader.next_run().await.err().is_some_and(|e| e.to_string().contains("longer than 32")));
    }

    #[tokio::test]
    async fn a_line_that_is_not_a_message_is_a_protocol_error() {
        let mut reader = LineReader::new(body(&["{\"gossip\":{}}\n"]), 1024, Duration::from_secs(1));
        let error = reader.next_run().await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.starts_with("stream: a line that is not a stream message"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_past_the_heartbeat_timeout_drops_the_stream() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        let silent = StreamBody::new(tokio_stream_from(rx));
        let mut reader = LineReader::new(silent, 1024, Duration::from_secs(15));
        let error = reader.next_run().await.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(error, "stream: no line for 15s (heartbeat timeout)");
    }

    /// A stream that yields what the channel receives (and pends while it is empty).
    fn tokio_stream_from<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> + Unpin {
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
    }
}
