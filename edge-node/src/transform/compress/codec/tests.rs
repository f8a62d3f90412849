use std::io::{self, Read, Write};

use super::*;
use crate::transform::compress::test_data::{noise, text};

const CODINGS: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

/// Levels tried per coding: the extremes and the defaults.
fn levels(coding: Coding) -> &'static [u32] {
    match coding {
        Coding::Br => &[0, 1, 4, 9, 11],
        Coding::Zstd => &[1, 3, 14, 19],
        Coding::Gzip => &[1, 5, 9],
        Coding::Identity => &[],
    }
}

fn encode(coding: Coding, level: u32, input: &[u8], chunk: usize) -> Vec<u8> {
    let mut encoder = Encoder::new(coding, level).expect("encoder");
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        out.extend_from_slice(&encoder.push(piece).expect("push"));
    }
    out.extend_from_slice(&encoder.finish().expect("finish"));
    out
}

/// Decodes `input` fed `chunk` bytes at a time, asking for at most `limit` bytes per call.
fn decode(coding: Coding, input: &[u8], chunk: usize, limit: usize, max_out: u64) -> io::Result<Vec<u8>> {
    let mut decoder = Decoder::new(coding, max_out)?;
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        let mut rest = piece;
        loop {
            let step = decoder.decode(rest, limit)?;
            assert!(step.output.len() <= limit.max(1), "{} > {limit}", step.output.len());
            assert!(step.consumed > 0 || !step.output.is_empty() || rest.is_empty(), "no progress");
            rest = &rest[step.consumed..];
            out.extend_from_slice(&step.output);
            if rest.is_empty() && step.output.len() < limit {
                break;
            }
        }
    }
    loop {
        let step = decoder.decode(&[], limit)?;
        out.extend_from_slice(&step.output);
        if step.output.len() < limit {
            break;
        }
    }
    decoder.finish()?;
    Ok(out)
}

#[test]
fn round_trips_at_every_level() {
    let input = text(96 * 1024, 1);
    for coding in CODINGS {
        for &level in levels(coding) {
            let encoded = encode(coding, level, &input, 16 * 1024);
            assert!(encoded.len() < input.len() / 2, "{coding} {level}: {} of {}", encoded.len(), input.len());
            let decoded = decode(coding, &encoded, 8 * 1024, CHUNK, u64::MAX).expect("decode");
            assert!(decoded == input, "{coding} {level}");
            // All at once: each call fills its output, so a short one means the end.
            let mut decoder = Decoder::new(coding, u64::MAX).expect("decoder");
            assert!(decoder.push(&encoded).expect("push") == input, "{coding} {level}");
            decoder.finish().expect("ended");
        }
    }
}

#[test]
fn round_trips_whatever_the_chunking() {
    let input = text(20_000, 2);
    for coding in CODINGS {
        let level = levels(coding)[1];
        let whole = encode(coding, level, &input, input.len());
        for chunk in [1, 7, 1000, 65_536] {
            let encoded = encode(coding, level, &input, chunk);
            for (in_chunk, limit) in [(1, 1), (3, 7), (encoded.len(), 1), (1, CHUNK), (encoded.len(), CHUNK)] {
                let decoded = decode(coding, &encoded, in_chunk, limit, u64::MAX).expect("decode");
                assert!(decoded == input, "{coding}: chunk {chunk}, in {in_chunk}, limit {limit}");
            }
        }
        assert!(decode(coding, &whole, 5, 3, u64::MAX).expect("decode") == input, "{coding}");
    }
}

#[test]
fn empty_and_incompressible_inputs_round_trip() {
    for coding in CODINGS {
        let empty = encode(coding, levels(coding)[1], &[], 1);
        assert!(!empty.is_empty(), "{coding}: an empty stream still has framing");
        assert_eq!(decode(coding, &empty, 1, 1, 0).expect("decode"), b"", "{coding}");
        // No input at all (an empty body) is not a truncated stream.
        assert_eq!(decode(coding, &[], 1, 1, 0).expect("decode"), b"", "{coding}");

        let input = noise(100_000, 3);
        let encoded = encode(coding, levels(coding)[1], &input, 10_000);
        assert!(encoded.len() < input.len() + 1024, "{coding}: {}", encoded.len());
        assert!(decode(coding, &encoded, 4096, 1000, u64::MAX).expect("decode") == input, "{coding}");
    }
}

#[test]
fn a_flush_makes_everything_so_far_decodable() {
    let input = text(30_000, 4);
    for coding in CODINGS {
        let &level = levels(coding).last().expect("a level");
        let mut encoder = Encoder::new(coding, level).expect("encoder");
        let mut decoder = Decoder::new(coding, u64::MAX).expect("decoder");
        let mut decoded = Vec::new();
        let mut pushed = 0;
        for piece in input.chunks(7_000) {
            let mut encoded = encoder.push(piece).expect("push").to_vec();
            encoded.extend_from_slice(&encoder.flush().expect("flush"));
            pushed += piece.len();
            decoded.extend_from_slice(&decoder.push(&encoded).expect("decode"));
            assert!(decoded == input[..pushed], "{coding}: {} of {pushed} decodable", decoded.len());
        }
        assert!(decoder.push(&encoder.finish().expect("finish")).expect("decode").is_empty(), "{coding}");
        decoder.finish().expect("ended");
    }
}

/// The output decodes with other implementations, and theirs with ours.
#[test]
fn interoperates_with_the_reference_decoders_and_encoders() {
    let input = text(50_000, 5);

    let ours = encode(Coding::Gzip, 6, &input, 4096);
    let mut theirs = Vec::new();
    flate2::read::MultiGzDecoder::new(&ours[..]).read_to_end(&mut theirs).expect("flate2 reads our gzip");
    assert!(theirs == input);
    // flate2's gzip with a file name, comment and extra field, as two members (RFC 1952 §2.2).
    let member = |data: &[u8]| {
        let mut writer = flate2::GzBuilder::new()
            .filename("a.js")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::new(5));
        writer.write_all(data).expect("write");
        writer.finish().expect("finish")
    };
    let two = [member(&input[..20_000]), member(&input[20_000..])].concat();
    assert!(decode(Coding::Gzip, &two, 333, 1000, u64::MAX).expect("two members") == input);

    let ours = encode(Coding::Zstd, 3, &input, 4096);
    assert!(::zstd::stream::decode_all(&ours[..]).expect("libzstd reads our zstd") == input);
    let frames = [
        ::zstd::stream::encode_all(&input[..10_000], 5).expect("zstd"),
        ::zstd::stream::encode_all(&input[10_000..], 5).expect("zstd"),
    ]
    .concat();
    assert!(decode(Coding::Zstd, &frames, 1000, 999, u64::MAX).expect("two frames") == input);

    let ours = encode(Coding::Br, 5, &input, 4096);
    let mut theirs = Vec::new();
    brotli::Decompressor::new(&ours[..], 4096).read_to_end(&mut theirs).expect("brotli reads our br");
    assert!(theirs == input);
    let mut writer = brotli::CompressorWriter::new(Vec::new(), 4096, 7, 20);
    writer.write_all(&input).expect("write");
    let theirs = writer.into_inner();
    assert!(decode(Coding::Br, &theirs, 1000, 100, u64::MAX).expect("brotli's writer") == input);
}

#[test]
fn the_decode_bound_stops_a_bomb_one_chunk_at_a_time() {
    let zeros = vec![0u8; 8 << 20];
    let max_out = 1 << 20;
    for coding in CODINGS {
        let bomb = encode(coding, 1, &zeros, zeros.len());
        assert!(bomb.len() < 64 * 1024, "{coding}: {}", bomb.len());
        let mut decoder = Decoder::new(coding, max_out).expect("decoder");
        let mut rest = &bomb[..];
        let mut total = 0u64;
        let error = loop {
            match decoder.decode(rest, CHUNK) {
                Ok(step) => {
                    assert!(step.output.len() <= CHUNK);
                    total += step.output.len() as u64;
                    rest = &rest[step.consumed..];
                }
                Err(error) => break error,
            }
        };
        assert!(DecodeLimitExceeded::is(&error), "{coding}: {error}");
        assert_eq!(error.to_string(), "decoded size is above the limit of 1048576 bytes");
        assert!(total <= max_out, "{coding}: {total}");

        // Exactly at the bound is fine.
        let exact = encode(coding, 1, &zeros[..1 << 20], 1 << 20);
        assert_eq!(decode(coding, &exact, 4096, CHUNK, max_out).expect("at the bound").len(), 1 << 20);
        let error = decode(coding, &exact, 4096, CHUNK, max_out - 1).expect_err("one byte over");
        assert!(DecodeLimitExceeded::is(&error), "{coding}: {error}");
    }
}

#[test]
fn corrupt_input_is_an_error_not_a_panic() {
    let input = text(40_000, 6);
    for coding in CODINGS {
        let encoded = encode(coding, levels(coding)[1], &input, input.len());

        let garbage = decode(coding, &noise(5000, 7), 100, 1000, u64::MAX).expect_err("garbage");
        assert_eq!(garbage.kind(), io::ErrorKind::InvalidData, "{coding}: {garbage}");
        let html = decode(coding, b"<!doctype html><html></html>", 100, 1000, u64::MAX).expect_err("plain text");
        assert_eq!(html.kind(), io::ErrorKind::InvalidData, "{coding}: {html}");

        for cut in [1, 10, encoded.len() / 2, encoded.len() - 1] {
            let truncated = decode(coding, &encoded[..cut], 100, 1000, u64::MAX).expect_err("truncated");
            assert!(
                matches!(truncated.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData),
                "{coding} cut at {cut}: {truncated}"
            );
        }

        let trailing = [&encoded[..], b"junk after the end"].concat();
        let error = decode(coding, &trailing, 100, 1000, u64::MAX).expect_err("trailing data");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{coding}: {error}");

        // Every single-byte change: an error, or (brotli has no checksum) different output.
        let mut rng = crate::transform::compress::test_data::Rng::new(8);
        for _ in 0..200 {
            let mut damaged = encoded.clone();
            let at = rng.below(damaged.len());
            damaged[at] ^= 1 << rng.below(8);
            match decode(coding, &damaged, 1000, CHUNK, 1 << 20) {
                Err(_) => {}
                Ok(output) => assert!(coding == Coding::Br && output != input, "{coding}: byte {at} changed unnoticed"),
            }
        }
    }
}

#[test]
fn windows_beyond_what_http_allows_are_refused() {
    let input = text(4096, 9);
    // zstd: a frame that declares a 128MB window (RFC 9659 §3 allows 8MB).
    let mut writer = ::zstd::stream::write::Encoder::new(Vec::new(), 19).expect("zstd");
    writer.window_log(27).expect("window");
    writer.write_all(&input).expect("write");
    let large = writer.finish().expect("finish");
    assert!(::zstd::stream::decode_all(&large[..]).is_ok(), "libzstd's default limit takes it");
    let error = decode(Coding::Zstd, &large, 4096, CHUNK, u64::MAX).expect_err("too large a window");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");

    // brotli: the large-window extension (not RFC 7932).
    let params = brotli::enc::BrotliEncoderParams { quality: 5, lgwin: 26, large_window: true, ..Default::default() };
    let mut writer = brotli::CompressorWriter::with_params(Vec::new(), 4096, &params);
    writer.write_all(&input).expect("write");
    let large = writer.into_inner();
    let error = decode(Coding::Br, &large, 4096, CHUNK, u64::MAX).expect_err("large window");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
}

#[test]
fn identity_has_no_codec() {
    assert_eq!(Encoder::new(Coding::Identity, 1).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
    assert_eq!(Decoder::new(Coding::Identity, 1).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
}

/// Throughput and ratio per coding and level on real text, single core, for the issue note.
/// `OUTPOST_BENCH_FILES` lists files (colon-separated) to measure, e.g. minified JavaScript
/// and HTML; by default generated text. Run in release mode:
/// `cargo test --release -p edge-node --lib compress::codec::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: prints figures, asserts nothing; run with --release"]
fn throughput() {
    let samples: Vec<(String, Vec<u8>)> = match std::env::var("OUTPOST_BENCH_FILES") {
        Ok(list) => list
            .split(':')
            .filter(|path| !path.is_empty())
            .map(|path| (path.rsplit('/').next().unwrap_or(path).to_owned(), std::fs::read(path).expect("sample file")))
            .collect(),
        Err(_) => vec![("generated".to_owned(), text(256 * 1024, 10))],
    };
    let configs: &[(Coding, &[u32])] = &[
        (Coding::Br, &[2, 3, 4, 5, 6, 7, 9, 11]),
        (Coding::Zstd, &[1, 3, 6, 7, 8, 9, 10, 12, 19]),
        (Coding::Gzip, &[1, 3, 4, 5, 6, 9]),
    ];
    for (name, data) in &samples {
        println!("{name}: {} bytes", data.len());
        println!("  coding level   ratio  encode MB/s  decode MB/s");
        for (coding, levels) in configs {
            for &level in *levels {
                let (encoded, encode_rate) = timed(data.len(), || encode(*coding, level, data, CHUNK));
                let (decoded, decode_rate) =
                    timed(data.len(), || decode(*coding, &encoded, CHUNK, CHUNK, u64::MAX).expect("decode"));
                assert!(decoded == *data);
                let ratio = data.len() as f64 / encoded.len() as f64;
                println!("  {coding:<6} {level:>5} {ratio:>7.2} {encode_rate:>12.1} {decode_rate:>12.1}");
            }
        }
    }
}

/// Runs `f` for about half a second (at least twice); returns its output and the MB/s over
/// `len` of its fastest run, which is the least disturbed by other work on the machine.
fn timed<T>(len: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let start = std::time::Instant::now();
    let mut best = f64::MAX;
    for runs in 1.. {
        let run = std::time::Instant::now();
        let out = f();
        best = best.min(run.elapsed().as_secs_f64());
        if runs >= 2 && start.elapsed().as_secs_f64() > 0.5 {
            return (out, len as f64 / best / 1e6);
        }
    }
    unreachable!("the loop returns")
}

/// Resident memory per live encoder and decoder after 2MiB of text, by coding and level: what
/// concurrent transforms cost. Linux only (reads /proc/self/statm). Run in release mode with
/// `--ignored --nocapture --test-threads 1`.
#[test]
#[ignore = "benchmark: prints figures, asserts nothing; run with --release"]
fn memory_per_codec() {
    fn resident() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        statm.split(' ').nth(1).and_then(|pages| pages.parse::<u64>().ok()).unwrap_or(0) * 4096
    }
    let input = text(2 << 20, 12);
    const N: usize = 8;
    for (coding, level) in [
        (Coding::Br, 4),
        (Coding::Br, 6),
        (Coding::Br, 11),
        (Coding::Zstd, 3),
        (Coding::Zstd, 8),
        (Coding::Zstd, 19),
        (Coding::Gzip, 5),
        (Coding::Gzip, 9),
    ] {
        let before = resident();
        let mut encoders: Vec<Encoder> = (0..N).map(|_| Encoder::new(coding, level).expect("encoder")).collect();
        let mut encoded = Vec::new();
        for encoder in &mut encoders {
            encoded.clear();
            for piece in input.chunks(CHUNK) {
                encoded.extend_from_slice(&encoder.push(piece).expect("push"));
            }
        }
        let per_encoder = resident().saturating_sub(before) / N as u64;
        drop(encoders);
        let whole = encode(coding, level, &input, CHUNK);
        let before = resident();
        let mut decoders: Vec<Decoder> = (0..N).map(|_| Decoder::new(coding, u64::MAX).expect("decoder")).collect();
        for decoder in &mut decoders {
            let mut rest = &whole[..];
            while !rest.is_empty() {
                rest = &rest[decoder.decode(rest, CHUNK).expect("decode").consumed..];
            }
        }
        let per_decoder = resident().saturating_sub(before) / N as u64;
        println!("{coding} {level}: encoder {} KiB, decoder {} KiB", per_encoder >> 10, per_decoder >> 10);
    }
}
