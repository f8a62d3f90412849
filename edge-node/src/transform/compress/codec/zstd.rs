//! Zstandard (RFC 8878) through libzstd's streaming API, with the 8MB window limit of
//! RFC 9659 on both sides.

use std::io;

use ::zstd::stream::raw::{self, CParameter, DParameter, InBuffer, Operation, OutBuffer};

/// RFC 9659 §3: a zstd content coding uses windows of at most 8MB (2^23); decoders may
/// refuse larger ones, and browsers do. Levels 1 to 19 stay within it.
const WINDOW_LOG_MAX: u32 = 23;
/// Output room added per step when encoding (libzstd's recommended output size is 128KiB).
const STEP: usize = 32 * 1024;

pub(super) struct Encoder {
    inner: raw::Encoder<'static>,
}

impl Encoder {
    pub(super) fn new(level: u32) -> io::Result<Self> {
        let level = i32::try_from(level.clamp(1, 19)).unwrap_or(3);
        let mut inner = raw::Encoder::new(level)?;
        // A 4-byte checksum per frame: a stored object that went bad on disk fails to decode.
        inner.set_parameter(CParameter::ChecksumFlag(true))?;
        Ok(Self { inner })
    }

    pub(super) fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut input = InBuffer::around(input);
        while input.pos() < input.src.len() {
            out.reserve(STEP);
            let mut output = OutBuffer::around_pos(out, out.len());
            self.inner.run(&mut input, &mut output)?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        drain(out, |output| self.inner.flush(output))
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        drain(out, |output| self.inner.finish(output, true))
    }
}

/// Calls `step` with more output room until it reports nothing left to write.
fn drain(out: &mut Vec<u8>, mut step: impl FnMut(&mut OutBuffer<'_, Vec<u8>>) -> io::Result<usize>) -> io::Result<()> {
    loop {
        out.reserve(STEP);
        let mut output = OutBuffer::around_pos(out, out.len());
        if step(&mut output)? == 0 {
            return Ok(());
        }
    }
}

pub(super) struct Decoder {
    inner: raw::Decoder<'static>,
    /// The last frame ended, or no input has been seen.
    at_boundary: bool,
}

impl Decoder {
    pub(super) fn new() -> io::Result<Self> {
        let mut inner = raw::Decoder::new()?;
        inner.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))?;
        Ok(Self { inner, at_boundary: true })
    }

    /// Decodes into the spare capacity of `out`; returns how much of `input` was used.
    /// Concatenated frames decode as one stream (RFC 8878 §3.1).
    pub(super) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut input = InBuffer::around(input);
        let mut output = OutBuffer::around_pos(out, out.len());
        loop {
            let (read, written) = (input.pos(), output.pos());
            // 0 means a frame just ended and all of it was written out.
            let hint =
                self.inner.run(&mut input, &mut output).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let progressed = input.pos() > read || output.pos() > written;
            if progressed {
                self.at_boundary = hint == 0;
            }
            // All input taken: libzstd has written all it can (else the output would be full).
            let room = output.pos() < output.capacity();
            if !progressed || !room || input.pos() == input.src.len() {
                return Ok(input.pos());
            }
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.at_boundary
    }
}
