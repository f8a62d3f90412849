//! Stale connections: whether a try that died on a reused upstream connection, before any
//! response byte, is sent once more on a new connection ([`verdict`]).
//!
//! An origin closes an idle keep-alive connection when its own timeout fires (nginx 75 s,
//! Apache httpd and Node.js 5 s); a request written at that moment meets the close instead of
//! an answer. RFC 9112 §9.3.1 asks clients to expect such asynchronous closes and defers to
//! RFC 9110 §9.2.2 for what may be retried: an idempotent request, or one the client has
//! "some means to detect that the original request was never applied". Such a death is not
//! the upstream failing, so it never counts against its breaker (`StaleConnection`).
//!
//! "Provably not processed" here means one of:
//! - hyper handed the request back unwritten (`Canceled`: the connection was found closed
//!   before a byte of it went out);
//! - on HTTP/1.1, the peer reset the connection (RST) with no response byte read since the
//!   request was written. A TCP that is closed with received data still unread, or that
//!   receives data after its close, sends a RST "to show that data was lost" (RFC 9293
//!   §3.6.1): the origin's application did not read the whole request.
//!
//! A clean close (FIN, hyper's "connection closed before message completed") is *not* proof:
//! an origin that read a POST, acted on it and crashed closes the same way. So it replays only
//! idempotent requests. HTTP/2 multiplexes, so its byte counts say nothing about one stream:
//! there only idempotent requests and unwritten ones are replayed.
//!
//! Others: nginx retries a failed try of a non-idempotent request only with
//! `proxy_next_upstream non_idempotent`, whatever the connection; Envoy retries only what its
//! retry policy lists (`reset-before-request` for any method, when no request byte left);
//! Pingora retries once any failure on a reused connection (`RetryType::ReusedOnly`), body
//! from a 64 KiB retry buffer, whatever the method.

use std::error::Error as StdError;

use http::Method;

use super::conn::ConnFacts;

/// How a connection died under a request, from the error's cause chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    /// hyper handed the request back before writing any of it.
    Unsent,
    /// The peer closed (EOF) before a whole response head arrived.
    Closed,
    /// The peer reset the connection (ECONNRESET, EPIPE, ECONNABORTED), or the stream.
    Reset,
    /// An HTTP/2 peer said the stream was not processed (REFUSED_STREAM, or a graceful GOAWAY
    /// whose last stream id is below it).
    Refused,
}

/// The death a request error reports, by error types and I/O error kinds (never message
/// text); `None` for anything else (a timeout, a parse error, a TLS or connect failure).
pub fn death_of(err: &(dyn StdError + 'static)) -> Option<Death> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() || h.is_parse() || h.is_user() {
                return None;
            }
            if h.is_canceled() {
                return Some(Death::Unsent);
            }
            if h.is_incomplete_message() {
                return Some(Death::Closed);
            }
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2_death(h2);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted => Some(Death::Reset),
                std::io::ErrorKind::UnexpectedEof => Some(Death::Closed),
                _ => None,
            };
        }
        cause = e.source();
    }
    None
}

/// The death an h2 stream error reports.
fn h2_death(e: &h2::Error) -> Option<Death> {
    if let Some(io) = e.get_io() {
        return death_of(io);
    }
    let reason = e.reason()?;
    match (e.is_reset(), e.is_go_away(), e.is_remote()) {
        // RFC 9113 §8.7: "the stream was closed prior to any processing".
        (true, _, true) if reason == h2::Reason::REFUSED_STREAM => Some(Death::Refused),
        (true, _, true) => Some(Death::Reset),
        // §6.8: a graceful GOAWAY fails only the streams above its last stream id.
        (_, true, true) if reason == h2::Reason::NO_ERROR => Some(Death::Refused),
        (_, true, _) => Some(Death::Closed),
        _ => None,
    }
}

/// A try that died on its connection, as the replay decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedTry {
    pub death: Death,
    pub conn: ConnFacts,
    /// The connection spoke HTTP/1.1 (one exchange at a time: its byte counts are this try's).
    pub http1: bool,
    /// The request's body can be sent again: it was empty, or kept whole
    /// (`upstream.replay_body_max`).
    pub body_held: bool,
}

/// What a try that died on its connection comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a stale connection (a new one, or the answer had begun): the upstream failed.
    Failure,
    /// A stale connection: sent once more, on a new connection to the same upstream.
    Replay,
    /// A stale connection, but the request may have been applied (or its body is gone): the
    /// client gets the error; the upstream's breaker does not count it.
    Stale,
}

/// The verdict on `failed`. Only a reused connection is stale (a new one that dies is the
/// upstream failing), only before any response byte; it is replayed when the body is still
/// held and the method is idempotent or the request provably unprocessed.
pub fn verdict(method: &Method, failed: &FailedTry) -> Verdict {
    // Unwritten: the last exchange's bytes are all the counters hold.
    let answered = failed.http1 && failed.conn.read > 0 && failed.death != Death::Unsent;
    // The peer's own word that it did not process the stream holds on a new connection too.
    let refused = failed.death == Death::Refused;
    if (!failed.conn.reused && !refused) || answered {
        return Verdict::Failure;
    }
    let unprocessed = match failed.death {
        // RFC 9113 §8.7, §6.8.
        Death::Refused => true,
        // Nothing of it left: "never applied" (RFC 9110 §9.2.2).
        Death::Unsent => true,
        // RFC 9293 §3.6.1: the RST says the origin left request bytes unread.
        Death::Reset => failed.http1,
        Death::Closed => false,
    };
    if failed.body_held && (unprocessed || idempotent(method)) { Verdict::Replay } else { Verdict::Stale }
}

/// RFC 9110 §9.2.2: PUT, DELETE and the safe methods (§9.2.1) GET, HEAD, OPTIONS, TRACE.
fn idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Death::{Closed, Refused, Reset, Unsent};

    fn conn(reused: bool, written: u64, read: u64) -> ConnFacts {
        ConnFacts { reused, written, read }
    }

    #[test]
    fn replayed_only_when_stale_and_provably_unprocessed_or_idempotent() {
        use Verdict::{Failure, Replay, Stale};
        let stale = conn(true, 80, 0);
        let fresh = conn(false, 80, 0);
        let answered = conn(true, 80, 12);
        // (case, method, death, connection, http1, body held, verdict)
        let cases = [
            ("RFC 9110 §9.2.2: GET, reused, FIN before any byte", "GET", Closed, stale, true, true, Replay),
            ("§9.2.2: PUT is idempotent", "PUT", Closed, stale, true, true, Replay),
            ("§9.2.2: DELETE is idempotent", "DELETE", Reset, stale, true, true, Replay),
            ("§9.2.2: POST after a FIN may have been applied", "POST", Closed, stale, true, true, Stale),
            ("RFC 9293 §3.6.1: POST after a RST was not read", "POST", Reset, stale, true, true, Replay),
            ("§3.6.1: PATCH after a RST", "PATCH", Reset, stale, true, true, Replay),
            ("§9.2.2 never applied: POST handed back unwritten", "POST", Unsent, stale, true, true, Replay),
            ("unwritten: the last exchange's bytes do not count", "POST", Unsent, answered, true, true, Replay),
            ("a new connection that dies is the upstream failing", "GET", Closed, fresh, true, true, Failure),
            ("a new connection, unwritten: hyper_util's own case", "GET", Unsent, fresh, true, true, Failure),
            ("RFC 9112 §9.3.1: response bytes arrived, GET", "GET", Closed, answered, true, true, Failure),
            ("response bytes arrived, RST", "POST", Reset, answered, true, true, Failure),
            ("the body is gone: nothing to send", "GET", Closed, stale, true, false, Stale),
            ("the body is gone, even unwritten", "POST", Unsent, stale, true, false, Stale),
            ("HTTP/2: a stream's bytes are not countable, GET", "GET", Reset, answered, false, true, Replay),
            ("HTTP/2: a RST proves nothing about one stream", "POST", Reset, stale, false, true, Stale),
            ("HTTP/2: unwritten is unwritten", "POST", Unsent, stale, false, true, Replay),
            ("extension methods are not known idempotent", "PURGE", Closed, stale, true, true, Stale),
            ("RFC 9113 §8.7: REFUSED_STREAM, POST", "POST", Refused, stale, false, true, Replay),
            ("§8.7: refused on a new connection too", "POST", Refused, fresh, false, true, Replay),
            ("§6.8: above a GOAWAY's last stream id, PATCH", "PATCH", Refused, fresh, false, true, Replay),
            ("refused, but the body is gone", "POST", Refused, stale, false, false, Stale),
            ("§6.8: an error GOAWAY may have processed it: POST", "POST", Closed, stale, false, true, Stale),
        ];
        for (name, method, death, conn, http1, body_held, expected) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            let failed = FailedTry { death, conn, http1, body_held };
            assert_eq!(verdict(&method, &failed), expected, "{name}");
        }
    }

    #[test]
    fn deaths_by_error_kind() {
        use std::io::{Error, ErrorKind};
        let cases = [
            (ErrorKind::ConnectionReset, Some(Reset)),
            (ErrorKind::BrokenPipe, Some(Reset)),
            (ErrorKind::ConnectionAborted, Some(Reset)),
            (ErrorKind::UnexpectedEof, Some(Closed)),
            (ErrorKind::TimedOut, None),
            (ErrorKind::InvalidData, None),
        ];
        for (kind, expected) in cases {
            let err = Error::new(kind, "x");
            assert_eq!(death_of(&err), expected, "{kind:?}");
        }
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] Error);
        let nested = Wrapped(Error::from(ErrorKind::ConnectionReset));
        assert_eq!(death_of(&nested), Some(Reset), "found down the cause chain");
    }

    #[test]
    fn h2_deaths_by_reason() {
        // A library-made error (not from the peer) proves nothing about the peer.
        let cases = [
            ("RFC 9113 §8.7: a stream the peer did not process", h2::Error::from(h2::Reason::REFUSED_STREAM), None),
            ("a reason alone, not from the peer", h2::Error::from(h2::Reason::CANCEL), None),
        ];
        for (name, err, expected) in cases {
            assert_eq!(death_of(&err), expected, "{name}");
        }
    }
}
