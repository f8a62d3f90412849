//! gzip (RFC 1952): raw deflate from `flate2` inside a header and trailer written and checked
//! here, so that decoding can stop at any output size (flate2's gzip readers and writers
//! cannot).

use std::io;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

/// Output room added per step when encoding.
const STEP: usize = 32 * 1024;
/// RFC 1952 §2.3.1 flags.
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;
/// A member header longer than this (a long file name or comment) is refused.
const MAX_HEADER: usize = 64 * 1024;

pub(super) struct Encoder {
    deflate: Compress,
    crc: Crc,
    level: u32,
    header_written: bool,
}

impl Encoder {
    pub(super) fn new(level: u32) -> Self {
        let level = level.clamp(1, 9);
        Self { deflate: Compress::new(Compression::new(level), false), crc: Crc::new(), level, header_written: false }
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            self.header_written = true;
            // RFC 1952 §2.3: ID1 ID2 CM=8 (deflate), no flags, no MTIME, XFL (2: slowest,
            // 4: fastest), OS=255 (unknown).
            let xfl = match self.level {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
        }
    }

    pub(super) fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.header(out);
        self.crc.update(input);
        let mut rest = input;
        while !rest.is_empty() {
            out.reserve(STEP);
            let before = self.deflate.total_in();
            self.deflate.compress_vec(rest, out, FlushCompress::None).map_err(io::Error::other)?;
            let used = usize::try_from(self.deflate.total_in() - before).unwrap_or(usize::MAX).min(rest.len());
            rest = &rest[used..];
        }
        Ok(())
    }

    /// A sync flush: everything so far becomes decodable; costs about 5 bytes.
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.header(out);
        self.drain(out, FlushCompress::Sync).map(|_| ())
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.header(out);
        while self.drain(out, FlushCompress::Finish)? != Status::StreamEnd {}
        // RFC 1952 §2.3.1: CRC32 and ISIZE (the input size modulo 2^32), little-endian.
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&self.crc.amount().to_le_bytes());
        Ok(())
    }

    /// Runs `flush` until the output it makes fits in the room given.
    fn drain(&mut self, out: &mut Vec<u8>, flush: FlushCompress) -> io::Result<Status> {
        loop {
            out.reserve(STEP);
            let room = out.capacity() - out.len();
            let before = out.len();
            let status = self.deflate.compress_vec(&[], out, flush).map_err(io::Error::other)?;
            if status == Status::StreamEnd || out.len() - before < room {
                return Ok(status);
            }
        }
    }
}

enum Stage {
    /// Reading a member header; holds the bytes seen so far.
    Header(Vec<u8>),
    /// Inflating a member's deflate data.
    Body,
    /// Reading a member's 8-byte trailer; holds the bytes seen so far.
    Trailer(Vec<u8>),
    /// A member ended; more input starts another (RFC 1952 §2.2).
    Ended,
}

pub(super) struct Decoder {
    stage: Stage,
    inflate: Decompress,
    crc: Crc,
}

impl Decoder {
    pub(super) fn new() -> Self {
        Self { stage: Stage::Header(Vec::new()), inflate: Decompress::new(false), crc: Crc::new() }
    }

    /// Decodes into the spare capacity of `out`; returns how much of `input` was used.
    pub(super) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match &mut self.stage {
                Stage::Ended | Stage::Header(_) if rest.is_empty() => return Ok(used),
                Stage::Ended => self.stage = Stage::Header(Vec::new()),
                Stage::Header(seen) => {
                    let before = seen.len();
                    seen.extend_from_slice(&rest[..rest.len().min(MAX_HEADER + 1 - before)]);
                    match header_len(seen)? {
                        Some(len) => {
                            used += len - before;
                            self.inflate.reset(false);
                            self.crc.reset();
                            self.stage = Stage::Body;
                        }
                        None => return Ok(input.len()),
                    }
                }
                Stage::Body => {
                    if out.len() == out.capacity() {
                        return Ok(used);
                    }
                    let (in_before, out_before) = (self.inflate.total_in(), out.len());
                    let status = self
                        .inflate
                        .decompress_vec(rest, out, FlushDecompress::None)
                        .map_err(|e| invalid(&e.to_string()))?;
                    self.crc.update(&out[out_before..]);
                    used += usize::try_from(self.inflate.total_in() - in_before).unwrap_or(usize::MAX).min(rest.len());
                    if status == Status::StreamEnd {
                        self.stage = Stage::Trailer(Vec::with_capacity(8));
                    } else if used == input.len() || out.len() == out_before {
                        // All input taken, or the output is full (no progress means the same).
                        return Ok(used);
                    }
                }
                Stage::Trailer(seen) => {
                    let take = rest.len().min(8 - seen.len());
                    seen.extend_from_slice(&rest[..take]);
                    used += take;
                    if seen.len() < 8 {
                        return Ok(used);
                    }
                    let crc = u32::from_le_bytes([seen[0], seen[1], seen[2], seen[3]]);
                    let size = u32::from_le_bytes([seen[4], seen[5], seen[6], seen[7]]);
                    if crc != self.crc.sum() || size != self.crc.amount() {
                        return Err(invalid("gzip trailer does not match the data (CRC32 or size)"));
                    }
                    self.stage = Stage::Ended;
                }
            }
        }
    }

    /// At the end of a member, or before any input.
    pub(super) fn is_done(&self) -> bool {
        match &self.stage {
            Stage::Ended => true,
            Stage::Header(seen) => seen.is_empty(),
            Stage::Body | Stage::Trailer(_) => false,
        }
    }
}

/// The length of the member header at the start of `bytes` (RFC 1952 §2.3), `None` while more
/// bytes are needed; an error when it cannot be a gzip header or is longer than 64KiB.
fn header_len(bytes: &[u8]) -> io::Result<Option<usize>> {
    for (i, (want, what)) in
        [(0x1f, "not gzip data"), (0x8b, "not gzip data"), (8, "gzip method is not deflate")].iter().enumerate()
    {
        if bytes.get(i).is_some_and(|b| b != want) {
            return Err(invalid(what));
        }
    }
    let Some(&flags) = bytes.get(3) else { return Ok(None) };
    if flags & FRESERVED != 0 {
        return Err(invalid("gzip header has reserved flags set"));
    }
    let mut len = 10;
    if flags & FEXTRA != 0 {
        let Some(xlen) = bytes.get(10..12) else { return pending(bytes) };
        len += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let Some(zero) = bytes.get(len..).and_then(|b| b.iter().position(|&b| b == 0)) else {
                return pending(bytes);
            };
            len += zero + 1;
        }
    }
    if flags & FHCRC != 0 {
        // The header's own CRC16 is not checked: the trailer's CRC32 covers what matters.
        len += 2;
    }
    if len > MAX_HEADER {
        return Err(invalid("gzip header is longer than 64KiB"));
    }
    if bytes.len() < len { pending(bytes) } else { Ok(Some(len)) }
}

fn pending(bytes: &[u8]) -> io::Result<Option<usize>> {
    if bytes.len() > MAX_HEADER { Err(invalid("gzip header is longer than 64KiB")) } else { Ok(None) }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths() {
        let base = [0x1f, 0x8b, 8];
        let with = |flags: u8, rest: &[u8]| [&base[..], &[flags, 0, 0, 0, 0, 0, 255], rest].concat();
        type Expected = Result<Option<usize>, &'static str>;
        let cases: Vec<(Vec<u8>, Expected)> = vec![
            (vec![], Ok(None)),
            (vec![0x1f], Ok(None)),
            (vec![0x1f, 0x8b, 8, 0], Ok(None)),
            (with(0, &[]), Ok(Some(10))),
            (with(0, b"data"), Ok(Some(10))),
            (with(FNAME, b"a.txt"), Ok(None)),
            (with(FNAME, b"a.txt\0"), Ok(Some(16))),
            (with(FNAME | FCOMMENT, b"a\0hello\0x"), Ok(Some(18))),
            (with(FEXTRA, &[3]), Ok(None)),
            (with(FEXTRA, &[3, 0, 1, 2]), Ok(None)),
            (with(FEXTRA, &[3, 0, 1, 2, 3]), Ok(Some(15))),
            (with(FHCRC, &[1]), Ok(None)),
            (with(FHCRC, &[1, 2]), Ok(Some(12))),
            (with(FEXTRA | FNAME | FCOMMENT | FHCRC, &[1, 0, 9, b'n', 0, b'c', 0, 7, 7]), Ok(Some(19))),
            (vec![0x1f, 0x8c], Err("not gzip data")),
            (vec![b'<'], Err("not gzip data")),
            (vec![0x1f, 0x8b, 7], Err("not deflate")),
            (with(0x20, &[]), Err("reserved flags")),
            (with(FNAME, &vec![b'a'; MAX_HEADER]), Err("longer than 64KiB")),
            (with(FEXTRA, &[0xff, 0xff]), Err("longer than 64KiB")),
        ];
        for (bytes, expected) in cases {
            match (header_len(&bytes), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{bytes:?}"),
                (Err(e), Err(fragment)) => assert!(e.to_string().contains(fragment), "{e}"),
                (got, want) => panic!("{:?}: got {got:?}, expected {want:?}", &bytes[..bytes.len().min(20)]),
            }
        }
    }
}
