//! Per-request context: identity, connection facts, and phase timings for `Server-Timing`,
//! metrics and the access log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The pipeline's timed phases, named as `pipeline.rs`, `Server-Timing`, metrics and docs name
/// them (accept · route · function · transform · cache · upstream · store · respond; the others
/// are not timed on their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Route,
    Function,
    Cache,
    Upstream,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Route => "route",
            Phase::Function => "function",
            Phase::Cache => "cache",
            Phase::Upstream => "upstream",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    Http3,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http/1.1",
            Protocol::Http2 => "h2",
            Protocol::Http3 => "h3",
        }
    }
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    /// The SNI name the client sent, lower-case.
    pub sni: Option<Arc<str>>,
    /// Host patterns the certificate chosen for this connection covers (for the 421 check).
    pub cert_hosts: Option<Arc<[outpost_config::HostPattern]>>,
}

/// Request extension: the request arrived in TLS early data (0-RTT), before the handshake was
/// confirmed, so it may be a replay (RFC 8470).
#[derive(Debug, Clone, Copy)]
pub struct EarlyData;

/// A unique id per request: node start time in ms, then a counter, both hex.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

impl RequestId {
    pub fn next() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let prefix = PREFIX.get_or_init(|| {
            let epoch =
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            format!("{epoch:x}-")
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Written by hand: `format!` cost a visible share of a small request's CPU.
        let mut id = String::with_capacity(prefix.len() + 16);
        id.push_str(prefix);
        push_hex(&mut id, n);
        RequestId(id.into())
    }
}

/// `v` in lower-case hex, without leading zeros.
fn push_hex(out: &mut String, mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(v & 0xf) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&b| char::from(b)));
}

pub struct RequestCtx {
    pub id: RequestId,
    pub started: Instant,
    pub protocol: Protocol,
    pub conn: ConnInfo,
    timings: [Option<Duration>; 4],
}

impl RequestCtx {
    pub fn new(conn: ConnInfo, protocol: Protocol) -> Self {
        Self { id: RequestId::next(), started: Instant::now(), protocol, conn, timings: [None; 4] }
    }

    /// Add time spent in a phase (phases may run more than once, e.g. upstream on revalidation).
    pub fn record(&mut self, phase: Phase, took: Duration) {
        let slot = &mut self.timings[phase as usize];
        *slot = Some(slot.unwrap_or_default() + took);
    }

    /// `Server-Timing` value (W3C Server Timing): each phase that ran, then the total, in ms.
    pub fn server_timing(&self) -> String {
        let mut out = String::with_capacity(96);
        for phase in [Phase::Route, Phase::Function, Phase::Cache, Phase::Upstream] {
            if let Some(d) = self.timings[phase as usize] {
                push_metric(&mut out, phase.as_str(), d);
                out.push_str(", ");
            }
        }
        push_metric(&mut out, "total", self.started.elapsed());
        out
    }
}

/// `name;dur=M.UUU` (milliseconds, 3 decimals). Integer formatting: this runs on every response,
/// and float formatting cost ~3% of a small cache hit's CPU.
fn push_metric(out: &mut String, name: &str, d: Duration) {
    use std::fmt::Write as _;
    let micros = d.as_micros();
    let _ = write!(out, "{name};dur={}.{:03}", micros / 1000, micros % 1000);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_lists_phases_that_ran_in_milliseconds() {
        let conn = ConnInfo {
            peer: "127.0.0.1:1".parse().expect("addr"),
            local: "127.0.0.1:2".parse().expect("addr"),
            tls: false,
            sni: None,
            cert_hosts: None,
        };
        let mut ctx = RequestCtx::new(conn, Protocol::Http1);
        ctx.record(Phase::Route, Duration::from_micros(2));
        ctx.record(Phase::Upstream, Duration::from_micros(1_670));
        ctx.record(Phase::Upstream, Duration::from_micros(12_005));
        let value = ctx.server_timing();
        let (phases, total) = value.rsplit_once(", ").expect("a total");
        assert_eq!(phases, "route;dur=0.002, upstream;dur=13.675");
        let total = total.strip_prefix("total;dur=").expect("total last");
        let (whole, frac) = total.split_once('.').expect("3 decimals");
        assert!(whole.parse::<u64>().is_ok() && frac.len() == 3 && frac.parse::<u64>().is_ok(), "{total}");
    }

    #[test]
    fn hex_matches_the_formatter() {
        for v in [0, 1, 9, 10, 15, 16, 255, 0x01a2_4eb9_607b, u64::MAX] {
            let mut out = String::from("x-");
            push_hex(&mut out, v);
            assert_eq!(out, format!("x-{v:x}"));
        }
    }

    #[test]
    fn request_ids_are_unique_and_share_the_node_prefix() {
        let (a, b) = (RequestId::next(), RequestId::next());
        assert_ne!(a.0, b.0);
        let (pa, na) = a.0.split_once('-').expect("prefix-counter");
        let (pb, nb) = b.0.split_once('-').expect("prefix-counter");
        assert_eq!(pa, pb);
        assert!(u64::from_str_radix(na, 16).is_ok() && u64::from_str_radix(nb, 16).is_ok(), "{a:?} {b:?}");
    }
}
