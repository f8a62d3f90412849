//! Helpers shared by the fuzz targets: turning fuzzer bytes into the typed inputs the parsers
//! take (header maps, times, config), so each target stays a few lines. Inputs are plain text
//! where the wire format is text, so a corpus seed reads like the request it stands for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

/// Header lines `name: value`, one per line (`\n`); lines that do not form a valid field (as
/// hyper would refuse them) are skipped, exactly as a field that never reached the parser.
pub fn header_map(text: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

/// Splits `data` at the first `sep` byte: (before, after). No separator: (data, empty).
pub fn split2(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Takes the first 8 bytes as a little-endian u64 (zero-padded), and the rest.
pub fn take_u64(data: &[u8]) -> (u64, &[u8]) {
    let n = data.len().min(8);
    let mut buf = [0u8; 8];
    buf[..n].copy_from_slice(&data[..n]);
    (u64::from_le_bytes(buf), &data[n..])
}

/// A time within ±2^40 ms (about 35 years) of 2026-01-01, from fuzzer bits; the parsers must
/// cope with any of them, including times before the epoch's far side of the dates they read.
pub fn time(bits: u64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let offset = Duration::from_millis(bits & ((1 << 40) - 1));
    if bits & (1 << 63) != 0 { base.checked_sub(offset).unwrap_or(base) } else { base + offset }
}

/// Text of `data` (lossy), for targets whose input is text.
pub fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}
