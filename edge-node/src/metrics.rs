//! Metric names, in one place. Labels are bounded enums (cache outcome, status class, error kind,
//! protocol).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "outpost_requests_total";
pub const REQUEST_DURATION: &str = "outpost_request_duration_seconds";
pub const RESPONSE_BYTES: &str = "outpost_response_body_bytes_total";
pub const UPSTREAM_ERRORS: &str = "outpost_upstream_errors_total";
pub const UPSTREAM_REQUESTS: &str = "outpost_upstream_requests_total";
pub const UPSTREAM_HEALTHY: &str = "outpost_upstream_healthy";
pub const UPSTREAM_BREAKER_TRANSITIONS: &str = "outpost_upstream_breaker_transitions_total";
pub const UPSTREAM_RETRIES: &str = "outpost_upstream_retries_total";
/// Panic episodes: every upstream of a list ejected, traffic sent to them anyway.
pub const UPSTREAM_PANICS: &str = "outpost_upstream_panics_total";
/// Tries that died on a reused upstream connection before any response byte (the origin
/// closed it while idle), by `replayed`: sent again on a new connection, or not (the request
/// may have been applied). Never counted as upstream failures.
pub const UPSTREAM_STALE_CONNECTIONS: &str = "outpost_upstream_stale_connections_total";
/// Open HTTP/2 connections of the node's own h2 upstream client (origins and shields).
pub const UPSTREAM_H2_CONNECTIONS: &str = "outpost_upstream_h2_connections";
pub const STORED_OBJECTS: &str = "outpost_cache_stored_objects_total";
pub const STORE_ERRORS: &str = "outpost_cache_store_errors_total";
pub const CACHE_MEMORY_BYTES: &str = "outpost_cache_memory_bytes";
pub const PURGES: &str = "outpost_purges_total";
pub const PURGE_RECORDS: &str = "outpost_purge_records";
pub const CONNECTIONS: &str = "outpost_open_connections";
pub const CONNECTIONS_REFUSED: &str = "outpost_connections_refused_total";
/// Connections the node closed, by `reason`: `first_request_timeout`, `keepalive_timeout`,
/// `evicted` (the longest idle, to make room under `max_connections`).
pub const CONNECTIONS_CLOSED: &str = "outpost_connections_closed_total";
pub const QUIC_RETRIES: &str = "outpost_quic_retries_total";
/// TLS handshakes by `outcome` (`ok`, `unrecognized_name`: SNI no certificate covers,
/// `no_sni`: no SNI and no `tls.default_host`, `failed`, `timeout`) and `protocol` (`tcp`,
/// `quic`).
pub const TLS_HANDSHAKES: &str = "outpost_tls_handshakes_total";
/// `103 Early Hints` sent to clients, by `source`: `origin` (forwarded) or `cache` (made from
/// a stored page's `Link` fields, `early_hints = true`).
pub const EARLY_HINTS_SENT: &str = "outpost_early_hints_sent_total";
/// Interim (1xx) responses not passed to the client, by `reason`: `too_large`
/// (`max_interim_bytes`), `budget` (more than 4 for one request), `duplicate` (every link
/// already hinted from cache), `closed` (the final response had begun).
pub const INTERIM_DROPPED: &str = "outpost_interim_dropped_total";
/// Interim (1xx) responses written to clients, by `protocol` (`h1`, `h2`, `h3`).
pub const INTERIM_SENT: &str = "outpost_interim_responses_sent_total";
/// Requests refused with 400 for their host fields, by `reason` (`AuthorityError::label`).
pub const HOST_REFUSED: &str = "outpost_host_refused_total";
/// Transform variants looked up, by outcome (`hit`: stored; `miss`: made now).
pub const TRANSFORM_VARIANTS: &str = "outpost_transform_variants_total";
pub const ACCESS_LOG_DROPPED: &str = "outpost_access_log_dropped_total";
/// Image transcodes by `outcome` (`ok` or a `TranscodeError::kind`) and requested `format`.
pub const IMAGE_TRANSCODES: &str = "outpost_image_transcodes_total";
/// Time a transcode runs (decode, resize, encode; not its wait for a slot), by `format`.
pub const IMAGE_TRANSCODE_DURATION: &str = "outpost_image_transcode_duration_seconds";
/// Image transcodes waiting for a slot (`limits.max_queued_transcodes`).
pub const IMAGE_TRANSCODES_WAITING: &str = "outpost_image_transcodes_waiting";
/// 1 while the agent holds a stream from the control plane, else 0.
pub const CONTROL_CONNECTED: &str = "outpost_control_connected";
/// The last event sequence number applied and saved.
pub const CONTROL_APPLIED_SEQ: &str = "outpost_control_applied_seq";
/// The last sequence number the control plane acknowledged receiving.
pub const CONTROL_ACKED_SEQ: &str = "outpost_control_acked_seq";
/// Streams lost (or never opened) and retried.
pub const CONTROL_RECONNECTS: &str = "outpost_control_reconnects_total";
/// Control-plane services this node could not run (a host clash with its file, a compile error).
pub const CONTROL_REJECTED_SERVICES: &str = "outpost_control_rejected_services";
/// Function instances made, by `service` (one per request a function handles).
pub const FUNCTION_INSTANTIATIONS: &str = "outpost_function_instantiations_total";
/// Function runs by `service` and `outcome` (`ok`, `trap`, `cpu`, `wall`, `memory`, `capacity`).
pub const FUNCTION_REQUESTS: &str = "outpost_function_requests_total";
/// Time from instantiation to the guest's end (its response body included), by `outcome`.
pub const FUNCTION_DURATION: &str = "outpost_function_duration_seconds";
/// Functions made ready at start or reload, by `source`: `compiled`, or `cache` (machine code
/// loaded from `functions.cache_dir`).
pub const FUNCTION_LOADS: &str = "outpost_function_loads_total";

const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Set once the recorder is installed: handles made before then record nothing, forever.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Install the process-wide recorder once; later calls return the same handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    let handle = HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(IMAGE_TRANSCODE_DURATION.into()), &LATENCY_BUCKETS)
                })
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(FUNCTION_DURATION.into()), &LATENCY_BUCKETS))
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => h,
                // A recorder is already installed (tests in one process): render an unattached one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone();
    INSTALLED.store(true, Ordering::Release);
    handle
}

/// Cache outcomes, status classes and protocols: the labels of the per-request series.
const OUTCOMES: [&str; 9] =
    ["hit", "stale", "stale_if_error", "revalidated", "pass", "collapsed", "miss", "error", "none"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const PROTOCOLS: [&str; 3] = ["http/1.1", "h2", "h3"];

/// The handles of the series every request updates, each looked up in the registry on its first
/// use (so only series that occur are exported) rather than on every request (a key built, its
/// labels hashed, a map searched: a measurable part of a small function's request).
struct RequestSeries {
    requests: [[[OnceLock<Counter>; PROTOCOLS.len()]; CLASSES.len()]; OUTCOMES.len()],
    duration: [OnceLock<Histogram>; OUTCOMES.len()],
    bytes: [OnceLock<Counter>; OUTCOMES.len()],
}

static SERIES: RequestSeries = RequestSeries {
    requests: [const { [const { [const { OnceLock::new() }; PROTOCOLS.len()] }; CLASSES.len()] }; OUTCOMES.len()],
    duration: [const { OnceLock::new() }; OUTCOMES.len()],
    bytes: [const { OnceLock::new() }; OUTCOMES.len()],
};

/// One finished request: [`REQUESTS`] by `cache` outcome, status class and protocol,
/// [`REQUEST_DURATION`] and [`RESPONSE_BYTES`] (when the body's size is known) by outcome.
pub fn record_request(outcome: &'static str, status: u16, protocol: &'static str, seconds: f64, bytes: Option<u64>) {
    let class = status_class(status);
    let find = |set: &[&str], label: &str| set.iter().position(|l| *l == label);
    let indices = (find(&OUTCOMES, outcome), find(&CLASSES, class), find(&PROTOCOLS, protocol));
    let (Some(o), Some(c), Some(p)) = indices else {
        // A label this table does not list: the registry's own lookup.
        metrics::counter!(REQUESTS, "cache" => outcome, "status" => class, "protocol" => protocol).increment(1);
        metrics::histogram!(REQUEST_DURATION, "cache" => outcome).record(seconds);
        if let Some(n) = bytes {
            metrics::counter!(RESPONSE_BYTES, "cache" => outcome).increment(n);
        }
        return;
    };
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    SERIES.requests[o][c][p]
        .get_or_init(|| metrics::counter!(REQUESTS, "cache" => outcome, "status" => class, "protocol" => protocol))
        .increment(1);
    SERIES.duration[o].get_or_init(|| metrics::histogram!(REQUEST_DURATION, "cache" => outcome)).record(seconds);
    if let Some(n) = bytes {
        SERIES.bytes[o].get_or_init(|| metrics::counter!(RESPONSE_BYTES, "cache" => outcome)).increment(n);
    }
}

/// `2xx`, `3xx`, ... as a bounded label.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
