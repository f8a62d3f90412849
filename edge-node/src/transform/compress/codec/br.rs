//! Brotli (RFC 7932) through the `brotli` crate's streaming state machines.

use std::io;

use brotli::enc::StandardAlloc;
use brotli::enc::encode::{
    BrotliEncoderDestroyInstance, BrotliEncoderOperation, BrotliEncoderParameter, BrotliEncoderStateStruct,
};
use brotli::enc::interface::{PredictionModeContextMap, StaticCommand};
use brotli::{BrotliDecompressStream, BrotliResult, BrotliState, InputPair, InputReferenceMut};

/// Window: 4MiB (lgwin 22), brotli's default, which every browser decodes.
const LGWIN: u32 = 22;
/// Output is copied out of the encoder through a buffer of this size.
const SCRATCH: usize = 32 * 1024;

pub(super) struct Encoder {
    state: BrotliEncoderStateStruct<StandardAlloc>,
    scratch: Box<[u8]>,
}

impl Encoder {
    pub(super) fn new(quality: u32) -> Self {
        let mut state = BrotliEncoderStateStruct::new(StandardAlloc::default());
        state.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_QUALITY, quality.min(11));
        state.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_LGWIN, LGWIN);
        Self { state, scratch: vec![0; SCRATCH].into_boxed_slice() }
    }

    pub(super) fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.run(BrotliEncoderOperation::BROTLI_OPERATION_PROCESS, input, out)
    }

    pub(super) fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.run(BrotliEncoderOperation::BROTLI_OPERATION_FLUSH, &[], out)
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.run(BrotliEncoderOperation::BROTLI_OPERATION_FINISH, &[], out)
    }

    /// Runs `op` until the input is taken and the output it makes is copied out.
    fn run(&mut self, op: BrotliEncoderOperation, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut available_in = input.len();
        let mut input_offset = 0;
        loop {
            let before = input_offset;
            let mut available_out = self.scratch.len();
            let mut output_offset = 0;
            let ok = self.state.compress_stream(
                op,
                &mut available_in,
                input,
                &mut input_offset,
                &mut available_out,
                &mut self.scratch,
                &mut output_offset,
                &mut None,
                &mut no_metablock_callback,
            );
            out.extend_from_slice(&self.scratch[..output_offset]);
            if !ok {
                return Err(io::Error::other("brotli encoder failed"));
            }
            let done = match op {
                BrotliEncoderOperation::BROTLI_OPERATION_FINISH => self.state.is_finished(),
                _ => available_in == 0 && !self.state.has_more_output(),
            };
            if done {
                return Ok(());
            }
            if output_offset == 0 && input_offset == before {
                return Err(io::Error::other("brotli encoder made no progress"));
            }
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        BrotliEncoderDestroyInstance(&mut self.state);
    }
}

fn no_metablock_callback(
    _: &mut PredictionModeContextMap<InputReferenceMut<'_>>,
    _: &mut [StaticCommand],
    _: InputPair<'_>,
    _: &mut StandardAlloc,
) {
}

pub(super) struct Decoder {
    state: BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    /// Output goes through this buffer, zeroed once: the decoder wants initialised memory.
    scratch: Box<[u8]>,
    /// The stream's last meta-block has been decoded.
    ended: bool,
    /// Any input has been seen.
    started: bool,
}

impl Decoder {
    pub(super) fn new() -> Self {
        let mut state = BrotliState::new(StandardAlloc::default(), StandardAlloc::default(), StandardAlloc::default());
        // RFC 7932 windows only (up to 16MiB): the crate turns on large windows (up to 1GiB),
        // which no HTTP client produces and which would let a hostile object size our memory.
        state.large_window = false;
        Self { state, scratch: vec![0; SCRATCH].into_boxed_slice(), ended: false, started: false }
    }

    /// Decodes into the spare capacity of `out`; returns how much of `input` was used.
    pub(super) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        self.started |= !input.is_empty();
        if self.ended {
            return if input.is_empty() { Ok(0) } else { Err(invalid("data after the end of the brotli stream")) };
        }
        let mut used = 0;
        loop {
            let room = (out.capacity() - out.len()).min(self.scratch.len());
            if room == 0 {
                return Ok(used);
            }
            let mut available_in = input.len() - used;
            let mut available_out = room;
            let mut output_offset = 0;
            let mut total_out = 0;
            let result = BrotliDecompressStream(
                &mut available_in,
                &mut used,
                input,
                &mut available_out,
                &mut output_offset,
                &mut self.scratch[..room],
                &mut total_out,
                &mut self.state,
            );
            out.extend_from_slice(&self.scratch[..output_offset]);
            match result {
                BrotliResult::ResultSuccess => {
                    self.ended = true;
                    if used < input.len() {
                        return Err(invalid("data after the end of the brotli stream"));
                    }
                    return Ok(used);
                }
                // All input taken. With the output full there may be more to write out all the
                // same: this crate says NeedsMoreInput then too.
                BrotliResult::NeedsMoreInput if output_offset < room => return Ok(used),
                BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => {}
                BrotliResult::ResultFailure => {
                    return Err(invalid(&format!("invalid brotli data ({:?})", self.state.error_code)));
                }
            }
        }
    }

    /// At the end of a stream, or before any input.
    pub(super) fn is_done(&self) -> bool {
        self.ended || !self.started
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}
