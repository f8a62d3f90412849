use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_config::AccessFormat;
use serde::Serialize;

use super::super::AccessRecord;
use super::*;

/// The record as the node serialized it before (serde_json, field for field): the JSON layout
/// must stay byte-compatible with it.
#[derive(Serialize)]
struct Legacy<'a> {
    #[serde(serialize_with = "epoch_seconds")]
    ts: SystemTime,
    request_id: &'a str,
    client: SocketAddr,
    protocol: &'a str,
    tls: bool,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    service: Option<&'a str>,
    status: u16,
    cache: &'a str,
    cache_status: Option<String>,
    bytes: Option<u64>,
    #[serde(serialize_with = "millis")]
    duration: Duration,
    error: Option<String>,
}

fn epoch_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as f64 / 1000.0).unwrap_or(0.0);
    s.serialize_f64(secs)
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

struct Case {
    ts: SystemTime,
    text: &'static str,
    client: &'static str,
    optional: bool,
    bytes: Option<u64>,
    duration: Duration,
}

fn ours(c: &Case, format: AccessFormat) -> String {
    let error = c.text.to_owned();
    let record = AccessRecord {
        ts: c.ts,
        request_id: c.text,
        client: c.client.parse().expect("addr"),
        protocol: "h2",
        tls: c.optional,
        method: "GET",
        host: c.text,
        path: c.text,
        service: c.optional.then_some(c.text),
        status: 503,
        cache: "miss",
        cache_status: c.optional.then_some(c.text),
        bytes: c.bytes,
        duration: c.duration,
        error: c.optional.then_some(&error as &dyn std::fmt::Display),
    };
    let mut out = Vec::new();
    line(format, &record, &mut out);
    String::from_utf8(out).expect("utf-8")
}

fn theirs(c: &Case) -> String {
    let legacy = Legacy {
        ts: c.ts,
        request_id: c.text,
        client: c.client.parse().expect("addr"),
        protocol: "h2",
        tls: c.optional,
        method: "GET",
        host: c.text,
        path: c.text,
        service: c.optional.then_some(c.text),
        status: 503,
        cache: "miss",
        cache_status: c.optional.then(|| c.text.to_owned()),
        bytes: c.bytes,
        duration: c.duration,
        error: c.optional.then(|| c.text.to_owned()),
    };
    serde_json::to_string(&legacy).expect("json") + "\n"
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[test]
fn json_lines_match_serde_json_byte_for_byte() {
    let all_controls: &'static str = "\u{0}\u{1}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{e}\u{1b}\u{1f} \u{7f}";
    // (case, why): RFC 8259 §7 for strings, §6 for numbers as serde_json (ryu) prints them.
    let cases = [
        (
            Case {
                ts: at(1_765_135_477_123),
                text: "plain",
                client: "127.0.0.1:5555",
                optional: true,
                bytes: Some(1024),
                duration: Duration::from_micros(1_234),
            },
            "§7 unescaped text",
        ),
        (
            Case {
                ts: at(1_765_135_477_000),
                text: "a\"b\\c",
                client: "[::1]:443",
                optional: true,
                bytes: None,
                duration: Duration::ZERO,
            },
            "§7 quotation mark and reverse solidus; whole seconds print .0",
        ),
        (
            Case {
                ts: at(1_765_135_477_100),
                text: all_controls,
                client: "10.0.0.1:1",
                optional: true,
                bytes: Some(0),
                duration: Duration::from_nanos(1_499),
            },
            "§7 U+0000..U+001F escaped, U+007F not",
        ),
        (
            Case {
                ts: at(1_765_135_477_010),
                text: "/caf\u{e9}/\u{1f600}?q=\u{2028}",
                client: "[fe80::1%2]:80",
                optional: false,
                bytes: Some(u64::MAX),
                duration: Duration::from_nanos(1_500),
            },
            "§7 non-ASCII copied as UTF-8; rounding at .5 µs",
        ),
        (
            Case {
                ts: at(1),
                text: "",
                client: "0.0.0.0:0",
                optional: true,
                bytes: Some(7),
                duration: Duration::from_secs(86_400 * 365),
            },
            "§6 small fraction and a year-long duration",
        ),
        (
            Case {
                ts: UNIX_EPOCH - Duration::from_secs(5),
                text: "</script>",
                client: "1.2.3.4:5",
                optional: false,
                bytes: None,
                duration: Duration::from_millis(999),
            },
            "before the epoch: 0.0, as before",
        ),
        (
            Case {
                ts: at(1_765_135_477_999),
                text: "%00%0a",
                client: "1.2.3.4:5",
                optional: true,
                bytes: None,
                duration: Duration::from_micros(10_000_001),
            },
            "percent-encoding passes as is",
        ),
    ];
    for (case, why) in &cases {
        assert_eq!(ours(case, AccessFormat::Json), theirs(case), "{why}");
    }
}

#[test]
fn thousandths_print_as_ryu_would() {
    for n in [
        0,
        1,
        10,
        100,
        999,
        1_000,
        1_001,
        1_010,
        1_100,
        123_456_789,
        1_765_135_477_123,
        999_999_999_999_999,
        1_000_000_000_000_000,
        (1 << 53) - 1,
        10_000_000_000_000_000,
    ] {
        let mut out = Vec::new();
        decimal_thousandths(&mut out, n);
        let expected = serde_json::to_string(&(n as f64 / 1000.0)).expect("json");
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected, "{n}");
    }
}

#[test]
fn combined_lines() {
    let case = Case {
        ts: at(1_765_135_477_123),
        text: "x",
        client: "[2001:db8::1]:4433",
        optional: true,
        bytes: Some(1024),
        duration: Duration::from_micros(12_345),
    };
    assert_eq!(
        ours(&case, AccessFormat::Combined),
        "2001:db8::1 - - [07/Dec/2025:19:24:37 +0000] \"GET x HTTP/2.0\" 503 1024 \"-\" \"-\" host=\"x\" \
         service=\"x\" cache=miss cache_status=\"x\" rt=0.012 id=\"x\" error=\"x\"\n"
    );
}

#[test]
fn combined_text_is_escaped_as_nginx_does() {
    // (input, escaped): nginx's ngx_http_log_escape: `"`, `\`, < 0x20, >= 0x7F as \xHH.
    let rows = [
        ("plain /a?b=c", "plain /a?b=c"),
        ("a\"b", "a\\x22b"),
        ("a\\b", "a\\x5Cb"),
        ("\n\t\u{0}", "\\x0A\\x09\\x00"),
        ("\u{7f}", "\\x7F"),
        ("\u{e9}", "\\xC3\\xA9"),
    ];
    for (input, escaped) in rows {
        let mut out = Vec::new();
        text(&mut out, input);
        assert_eq!(String::from_utf8(out).expect("ascii"), escaped, "{input:?}");
    }
}

#[test]
fn clf_dates() {
    // (seconds since the epoch, nginx's $time_local in UTC)
    let rows = [
        (0, "01/Jan/1970:00:00:00 +0000"),
        (951_782_400, "29/Feb/2000:00:00:00 +0000"),
        (1_709_251_199, "29/Feb/2024:23:59:59 +0000"),
        (1_765_135_477, "07/Dec/2025:19:24:37 +0000"),
        (4_102_444_800, "01/Jan/2100:00:00:00 +0000"),
    ];
    for (secs, expected) in rows {
        let mut out = Vec::new();
        clf_time(&mut out, secs);
        assert_eq!(String::from_utf8(out).expect("ascii"), expected, "{secs}");
    }
}
