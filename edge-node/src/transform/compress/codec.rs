//! Synchronous streaming encoders and decoders for br, zstd and gzip. They do CPU work only:
//! call them off the async runtime (see [`super::stream`]).
//!
//! An [`Encoder`]'s output is never much larger than its input, so [`Encoder::push`] returns
//! all of it. A [`Decoder`]'s output can be thousands of times its input (a decompression
//! bomb), so [`Decoder::decode`] stops at an output limit per call and at `max_out` in all:
//! memory stays at the codec's window plus one chunk whatever the input.

mod br;
mod gzip;
mod zstd;

use std::io;

use bytes::Bytes;

use super::coding::Coding;

/// Largest piece of work per call in [`super::stream`]: input bytes per encode step, output
/// bytes per decode step.
pub const CHUNK: usize = 64 * 1024;

/// A streaming encoder for one coding.
pub struct Encoder {
    coding: Coding,
    backend: EncoderBackend,
}

enum EncoderBackend {
    Br(Box<br::Encoder>),
    Zstd(zstd::Encoder),
    Gzip(gzip::Encoder),
}

impl Encoder {
    /// An encoder at `level`: brotli quality 0 to 11, zstd 1 to 19, gzip 1 to 9; levels out of
    /// range are clamped. Identity has no encoder (`InvalidInput`).
    pub fn new(coding: Coding, level: u32) -> io::Result<Self> {
        let backend = match coding {
            Coding::Br => EncoderBackend::Br(Box::new(br::Encoder::new(level))),
            Coding::Zstd => EncoderBackend::Zstd(zstd::Encoder::new(level)?),
            Coding::Gzip => EncoderBackend::Gzip(gzip::Encoder::new(level)),
            Coding::Identity => return Err(no_codec()),
        };
        Ok(Self { coding, backend })
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Takes all of `input`; returns the output ready so far (often none: encoders buffer).
    pub fn push(&mut self, input: &[u8]) -> io::Result<Bytes> {
        let mut out = Vec::new();
        match &mut self.backend {
            EncoderBackend::Br(encoder) => encoder.push(input, &mut out)?,
            EncoderBackend::Zstd(encoder) => encoder.push(input, &mut out)?,
            EncoderBackend::Gzip(encoder) => encoder.push(input, &mut out)?,
        }
        Ok(into_bytes(out))
    }

    /// Returns everything needed to decode all input pushed so far, at a small cost in size
    /// (a few bytes per call). For a stalled origin, so that the client is not kept waiting.
    pub fn flush(&mut self) -> io::Result<Bytes> {
        let mut out = Vec::new();
        match &mut self.backend {
            EncoderBackend::Br(encoder) => encoder.flush(&mut out)?,
            EncoderBackend::Zstd(encoder) => encoder.flush(&mut out)?,
            EncoderBackend::Gzip(encoder) => encoder.flush(&mut out)?,
        }
        Ok(into_bytes(out))
    }

    /// Ends the stream; returns the rest of the output.
    pub fn finish(mut self) -> io::Result<Bytes> {
        let mut out = Vec::new();
        match &mut self.backend {
            EncoderBackend::Br(encoder) => encoder.finish(&mut out)?,
            EncoderBackend::Zstd(encoder) => encoder.finish(&mut out)?,
            EncoderBackend::Gzip(encoder) => encoder.finish(&mut out)?,
        }
        Ok(into_bytes(out))
    }
}

/// The inner error of a [`Decoder`] error whose output would pass `max_out`.
#[derive(Debug, thiserror::Error)]
#[error("decoded size is above the limit of {limit} bytes")]
pub struct DecodeLimitExceeded {
    pub limit: u64,
}

impl DecodeLimitExceeded {
    /// Whether `error` is this one.
    pub fn is(error: &io::Error) -> bool {
        error.get_ref().is_some_and(|inner| inner.is::<DecodeLimitExceeded>())
    }
}

/// A streaming decoder for one coding, bounded in output.
pub struct Decoder {
    coding: Coding,
    backend: DecoderBackend,
    max_out: u64,
    produced: u64,
}

enum DecoderBackend {
    Br(Box<br::Decoder>),
    Zstd(zstd::Decoder),
    Gzip(gzip::Decoder),
}

/// What one [`Decoder::decode`] call did.
#[derive(Debug)]
pub struct Decoded {
    /// Bytes of the input used; the caller passes the rest again.
    pub consumed: usize,
    /// Output; when it is as long as the limit asked for, more may be pending: call again,
    /// with an empty input if need be.
    pub output: Bytes,
}

impl Decoder {
    /// A decoder that fails (with [`DecodeLimitExceeded`] inside the error) once its output
    /// would pass `max_out` bytes. zstd frames with windows above 8MB and brotli's large-window
    /// extension are refused (RFC 9659, RFC 7932). Identity has no decoder (`InvalidInput`).
    pub fn new(coding: Coding, max_out: u64) -> io::Result<Self> {
        let backend = match coding {
            Coding::Br => DecoderBackend::Br(Box::new(br::Decoder::new())),
            Coding::Zstd => DecoderBackend::Zstd(zstd::Decoder::new()?),
            Coding::Gzip => DecoderBackend::Gzip(gzip::Decoder::new()),
            Coding::Identity => return Err(no_codec()),
        };
        Ok(Self { coding, backend, max_out, produced: 0 })
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Decodes from `input` until it is used up or `limit` (at least 1) output bytes are made.
    /// Corrupt input is an `InvalidData` error.
    pub fn decode(&mut self, input: &[u8], limit: usize) -> io::Result<Decoded> {
        // One byte past the budget is room enough to notice the output going over it.
        let budget = self.max_out.saturating_sub(self.produced).saturating_add(1);
        let mut out = Vec::with_capacity(limit.max(1).min(usize::try_from(budget).unwrap_or(usize::MAX)));
        let consumed = match &mut self.backend {
            DecoderBackend::Br(decoder) => decoder.decode(input, &mut out)?,
            DecoderBackend::Zstd(decoder) => decoder.decode(input, &mut out)?,
            DecoderBackend::Gzip(decoder) => decoder.decode(input, &mut out)?,
        };
        self.produced += out.len() as u64;
        if self.produced > self.max_out {
            return Err(io::Error::new(io::ErrorKind::InvalidData, DecodeLimitExceeded { limit: self.max_out }));
        }
        Ok(Decoded { consumed, output: into_bytes(out) })
    }

    /// Decodes all of `input`, [`CHUNK`] by [`CHUNK`] of output; the result is bounded by
    /// `max_out` only, so this is for small inputs and tests.
    pub fn push(&mut self, mut input: &[u8]) -> io::Result<Bytes> {
        let mut out = Vec::new();
        loop {
            let step = self.decode(input, CHUNK)?;
            if step.consumed == 0 && step.output.is_empty() && !input.is_empty() {
                return Err(io::Error::other(format!("{} decoder made no progress", self.coding)));
            }
            input = &input[step.consumed..];
            out.extend_from_slice(&step.output);
            if input.is_empty() && step.output.len() < CHUNK {
                return Ok(Bytes::from(out));
            }
        }
    }

    /// Checks that the stream ended where the input did: a truncated stream is an
    /// `UnexpectedEof` error. Call once all output has been taken. No input at all is fine
    /// (an empty body).
    pub fn finish(self) -> io::Result<()> {
        let done = match &self.backend {
            DecoderBackend::Br(decoder) => decoder.is_done(),
            DecoderBackend::Zstd(decoder) => decoder.is_done(),
            DecoderBackend::Gzip(decoder) => decoder.is_done(),
        };
        if done {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("truncated {} stream", self.coding)))
        }
    }
}

/// The output as `Bytes`, copied out when most of the buffer is unused: `Bytes` keeps the
/// whole allocation for as long as the frame lives.
fn into_bytes(out: Vec<u8>) -> Bytes {
    if out.len() < out.capacity() / 4 { Bytes::copy_from_slice(&out) } else { Bytes::from(out) }
}

fn no_codec() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "identity has no codec")
}

#[cfg(test)]
mod tests;
