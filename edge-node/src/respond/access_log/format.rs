//! Access-log lines written straight into a reusable buffer: no `String` per record, no
//! serde. Two layouts: `json` (one object per line, byte for byte what `serde_json` made of
//! [`AccessRecord`] before, so parsers see no change) and `combined` (nginx's `combined` line,
//! then a few `key=value` fields).

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_config::AccessFormat;

use super::AccessRecord;

/// Appends one line (ending in `\n`) for `r` to `out`.
pub fn line(format: AccessFormat, r: &AccessRecord<'_>, out: &mut Vec<u8>) {
    match format {
        AccessFormat::Json => json(r, out),
        AccessFormat::Combined => combined(r, out),
    }
    out.push(b'\n');
}

fn json(r: &AccessRecord<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ts\":");
    decimal_thousandths(out, epoch_millis(r.ts));
    out.extend_from_slice(b",\"request_id\":");
    json_str(out, r.request_id);
    // A socket address holds no character JSON escapes: written as it displays.
    let _ = write!(out, ",\"client\":\"{}\",\"protocol\":", r.client);
    json_str(out, r.protocol);
    let tls: &[u8] = if r.tls { b",\"tls\":true,\"method\":" } else { b",\"tls\":false,\"method\":" };
    out.extend_from_slice(tls);
    json_str(out, r.method);
    out.extend_from_slice(b",\"host\":");
    json_str(out, r.host);
    out.extend_from_slice(b",\"path\":");
    json_str(out, r.path);
    out.extend_from_slice(b",\"service\":");
    json_opt_str(out, r.service);
    out.extend_from_slice(b",\"status\":");
    integer(out, u64::from(r.status));
    out.extend_from_slice(b",\"cache\":");
    json_str(out, r.cache);
    out.extend_from_slice(b",\"cache_status\":");
    json_opt_str(out, r.cache_status);
    out.extend_from_slice(b",\"bytes\":");
    match r.bytes {
        Some(n) => integer(out, n),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"duration\":");
    decimal_thousandths(out, duration_micros(r.duration));
    out.extend_from_slice(b",\"error\":");
    match r.error {
        Some(e) => {
            out.push(b'"');
            let _ = write!(JsonEscaped(out), "{e}");
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// Milliseconds since the epoch; 0 before it (a clock set back that far).
fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// Microseconds, rounded as the serde form did (`(secs * 1e6).round()`), so the figures match.
fn duration_micros(d: Duration) -> u64 {
    // A float to integer `as` saturates: never a panic, whatever the duration.
    (d.as_secs_f64() * 1e6).round() as u64
}

/// `n / 1000` as the shortest decimal that reads back as the same `f64`, which is what
/// `serde_json` (ryu) prints for it: `1.5`, `0.001`, `12.0`. Below 10^15 the exact quotient has
/// at most 15 significant digits, which an `f64` always tells apart, so no shorter string
/// rounds to the same double and trailing zeros are the only thing to trim. Above (a clock past
/// the year 33000), `f64`'s own shortest form.
fn decimal_thousandths(out: &mut Vec<u8>, n: u64) {
    if n >= 1_000_000_000_000_000 {
        let start = out.len();
        let _ = write!(out, "{}", n as f64 / 1000.0);
        if !out[start..].contains(&b'.') {
            out.extend_from_slice(b".0");
        }
        return;
    }
    integer(out, n / 1000);
    let frac = n % 1000;
    out.push(b'.');
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let digits = [b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8];
    let keep = if digits[2] != b'0' {
        3
    } else if digits[1] != b'0' {
        2
    } else {
        1
    };
    out.extend_from_slice(&digits[..keep]);
}

fn integer(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_escape(out, s);
    out.push(b'"');
}

/// RFC 8259 §7: `"` and `\` and the control characters U+0000 to U+001F are escaped, with the
/// same choices as `serde_json`: the two-character forms `\b \t \n \f \r`, else `\u00XX` in
/// lower-case hex. Everything else, U+007F and non-ASCII included, is copied: the input is a
/// `&str`, so the output is UTF-8 too.
fn json_escape(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A `Display` value (an error) escaped as it is formatted: no `String` in between.
struct JsonEscaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        json_escape(self.0, s);
        Ok(())
    }
}

/// nginx's `combined`: `$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`, time in UTC; the referer and user
/// agent are not recorded (`"-"`). Then `host= service= cache= cache_status= rt= id= error=`,
/// each quoted where it is text.
fn combined(r: &AccessRecord<'_>, out: &mut Vec<u8>) {
    let _ = write!(out, "{} - - [", r.client.ip());
    clf_time(out, epoch_millis(r.ts) / 1000);
    out.extend_from_slice(b"] \"");
    text(out, r.method);
    out.push(b' ');
    text(out, r.path);
    out.extend_from_slice(match r.protocol {
        "h2" => b" HTTP/2.0\" ",
        "h3" => b" HTTP/3.0\" ",
        _ => b" HTTP/1.1\" ",
    });
    integer(out, u64::from(r.status));
    out.push(b' ');
    match r.bytes {
        Some(n) => integer(out, n),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" \"-\" \"-\" host=\"");
    text(out, r.host);
    out.extend_from_slice(b"\" service=\"");
    text(out, r.service.unwrap_or("-"));
    out.extend_from_slice(b"\" cache=");
    text(out, r.cache);
    out.extend_from_slice(b" cache_status=\"");
    text(out, r.cache_status.unwrap_or("-"));
    out.extend_from_slice(b"\" rt=");
    decimal_thousandths(out, duration_micros(r.duration) / 1000);
    out.extend_from_slice(b" id=\"");
    text(out, r.request_id);
    out.push(b'"');
    if let Some(e) = r.error {
        out.extend_from_slice(b" error=\"");
        let _ = write!(TextEscaped(out), "{e}");
        out.push(b'"');
    }
}

/// As nginx escapes variables in a log line: `"`, `\`, control characters, DEL and every byte
/// above 0x7F become `\xHH` (upper-case hex), so a line is always printable ASCII and a field
/// cannot break out of its quotes.
fn text(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&[b'\\', b'x', UPPER_HEX[usize::from(b >> 4)], UPPER_HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

struct TextEscaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for TextEscaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        text(self.0, s);
        Ok(())
    }
}

/// `07/Dec/2026:19:24:37 +0000` for `secs` since the epoch (nginx's `$time_local`, in UTC).
fn clf_time(out: &mut Vec<u8>, secs: u64) {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, m, d) = outpost_config::civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let month = MONTHS.get(m.saturating_sub(1) as usize).copied().unwrap_or("Jan");
    let _ = write!(out, "{d:02}/{month}/{y}:{:02}:{:02}:{:02} +0000", rem / 3600, rem / 60 % 60, rem % 60);
}

#[cfg(test)]
mod tests;
