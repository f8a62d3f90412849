//! One request's interim responses on their way to the client: the 1xx an upstream sends
//! (forwarded without hop-by-hop fields, bounded in count and size) and the early hints the
//! cache makes, with no link sent twice. It wraps the request's [`InterimSender`]; a clone
//! lives in the request's extensions for the cache phase and in the upstream client's
//! informational callback, so both see what the other already sent.

use std::sync::{Arc, Mutex};

use http::header::{CONTENT_LENGTH, LINK};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::link;
use crate::http::hop::strip_hop_by_hop;
use crate::interim::{InterimHead, InterimSender, MAX_INTERIM_PER_REQUEST};

/// Why an interim response was not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// 100 and 101 belong to one hop (RFC 9110 §10.1.1, §7.8); each server sends its own.
    HopOnly,
    /// Its fields are over `max_interim_bytes`.
    TooLarge,
    /// The request's [`MAX_INTERIM_PER_REQUEST`] are spent.
    Budget,
    /// A 103 whose every link the client already got (from the cache's 103).
    Duplicate,
    /// The final response has begun (or the client's protocol takes none).
    Closed,
}

impl Dropped {
    /// The `reason` label of `outpost_interim_dropped_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::HopOnly => "hop_only",
            Dropped::TooLarge => "too_large",
            Dropped::Budget => "budget",
            Dropped::Duplicate => "duplicate",
            Dropped::Closed => "closed",
        }
    }
}

/// The request's relay; cheap to clone, never blocks (a short lock, never held across await).
#[derive(Clone, Debug)]
pub struct HintRelay(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    sender: InterimSender,
    max_head_bytes: usize,
    sent: Mutex<Sent>,
}

#[derive(Debug, Default)]
struct Sent {
    heads: usize,
    links: Vec<HeaderValue>,
}

impl HintRelay {
    pub fn new(sender: InterimSender, max_head_bytes: usize) -> Self {
        Self(Arc::new(Inner { sender, max_head_bytes, sent: Mutex::new(Sent::default()) }))
    }

    /// An interim response from the upstream (hyper's informational callback).
    pub fn from_upstream(&self, status: StatusCode, headers: &HeaderMap) {
        let Ok(mut sent) = self.0.sent.lock() else { return };
        let head = if sent.heads >= MAX_INTERIM_PER_REQUEST {
            Err(Dropped::Budget)
        } else {
            forwardable(status, headers, &sent.links, self.0.max_head_bytes)
        };
        match head.and_then(|head| self.send(&mut sent, head)) {
            Ok(()) => count_sent(status, "origin"),
            Err(Dropped::HopOnly) => {}
            Err(reason) => count_dropped(reason),
        }
    }

    /// Early hints made from a stored response: `links` (already bounded) in one `103`.
    pub fn from_cache(&self, links: Vec<HeaderValue>) {
        if links.is_empty() {
            return;
        }
        let Ok(mut sent) = self.0.sent.lock() else { return };
        let fresh: Vec<HeaderValue> = links.into_iter().filter(|l| !sent.links.contains(l)).collect();
        if fresh.is_empty() {
            return;
        }
        let mut headers = HeaderMap::with_capacity(fresh.len());
        for l in fresh {
            headers.append(LINK, l);
        }
        let head = InterimHead { status: StatusCode::EARLY_HINTS, headers };
        let result =
            if sent.heads >= MAX_INTERIM_PER_REQUEST { Err(Dropped::Budget) } else { self.send(&mut sent, head) };
        match result {
            Ok(()) => count_sent(StatusCode::EARLY_HINTS, "cache"),
            Err(reason) => count_dropped(reason),
        }
    }

    fn send(&self, sent: &mut Sent, head: InterimHead) -> Result<(), Dropped> {
        let links: Vec<HeaderValue> = head.headers.get_all(LINK).iter().cloned().collect();
        self.0.sender.send(head).map_err(|_| Dropped::Closed)?;
        sent.heads += 1;
        sent.links.extend(links);
        Ok(())
    }
}

fn count_sent(status: StatusCode, source: &'static str) {
    if status == StatusCode::EARLY_HINTS {
        metrics::counter!(crate::metrics::EARLY_HINTS_SENT, "source" => source).increment(1);
    }
}

fn count_dropped(reason: Dropped) {
    metrics::counter!(crate::metrics::INTERIM_DROPPED, "reason" => reason.as_str()).increment(1);
}

/// The head to pass on for an upstream's interim response, or why none. Hop-by-hop fields go
/// (RFC 9110 §7.6.1), and `Content-Length` (§8.6: never in a 1xx); the rest must fit in
/// `max_bytes` (names and values plus 4 bytes a line, as HTTP/1.1 writes them). Link values
/// the client already got are left out, and a 103 left with no link is not sent at all.
pub fn forwardable(
    status: StatusCode,
    headers: &HeaderMap,
    already: &[HeaderValue],
    max_bytes: usize,
) -> Result<InterimHead, Dropped> {
    if !status.is_informational() || status == StatusCode::CONTINUE || status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Dropped::HopOnly);
    }
    let mut headers = headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    let size: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if size > max_bytes {
        return Err(Dropped::TooLarge);
    }
    if !already.is_empty() && headers.contains_key(LINK) {
        let kept = unsent_links(&headers, already);
        headers.remove(LINK);
        if kept.is_empty() && status == StatusCode::EARLY_HINTS {
            return Err(Dropped::Duplicate);
        }
        for v in kept {
            headers.append(LINK, v);
        }
    }
    Ok(InterimHead { status, headers })
}

/// The link-values of `headers` not in `already`, one per value. A field value that does
/// not split (not visible ASCII) is kept whole: it cannot have come from the cache.
fn unsent_links(headers: &HeaderMap, already: &[HeaderValue]) -> Vec<HeaderValue> {
    let mut kept = Vec::new();
    for field in headers.get_all(LINK) {
        let Ok(text) = field.to_str() else {
            kept.push(field.clone());
            continue;
        };
        for value in link::split_values(text) {
            if !already.iter().any(|a| a.as_bytes() == value.as_bytes())
                && let Ok(v) = HeaderValue::from_str(value)
            {
                kept.push(v);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            if let (Ok(n), Ok(v)) = (http::HeaderName::try_from(*n), HeaderValue::try_from(*v)) {
                h.append(n, v);
            }
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        h.iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?"))).collect()
    }

    /// (status, fields, links already sent, forwarded fields or why not)
    type Case<'a> = (u16, Vec<(&'a str, &'a str)>, &'a [HeaderValue], Result<Vec<&'a str>, Dropped>);

    #[test]
    fn what_is_forwarded_of_an_upstreams_interim_response() {
        let link_a = "</a.css>; rel=preload";
        let already = [HeaderValue::from_static("</a.css>; rel=preload")];
        let cases: Vec<Case<'_>> = vec![
            // RFC 8297 §2: a 103's fields are passed on.
            (103, vec![("link", link_a)], &[], Ok(vec!["link: </a.css>; rel=preload"])),
            // RFC 9110 §15.2: other 1xx (102 Processing) are forwarded too.
            (102, vec![], &[], Ok(vec![])),
            // RFC 9110 §10.1.1: 100 answers one hop's Expect; §7.8: 101 switches one connection.
            (100, vec![], &[], Err(Dropped::HopOnly)),
            (101, vec![("upgrade", "websocket")], &[], Err(Dropped::HopOnly)),
            (200, vec![], &[], Err(Dropped::HopOnly)),
            // RFC 9110 §7.6.1: hop-by-hop fields, and those Connection names, are not forwarded.
            (
                103,
                vec![("connection", "x-private"), ("x-private", "1"), ("keep-alive", "timeout=5"), ("link", link_a)],
                &[],
                Ok(vec!["link: </a.css>; rel=preload"]),
            ),
            // RFC 9110 §8.6: a 1xx has no content, so no Content-Length.
            (103, vec![("content-length", "0"), ("link", link_a)], &[], Ok(vec!["link: </a.css>; rel=preload"])),
            // Already sent from the cache: not twice (RFC 8297 §2 allows any number of 103s,
            // so only the new links go in the second).
            (
                103,
                vec![("link", "</a.css>; rel=preload, </b.js>; rel=preload")],
                &already,
                Ok(vec!["link: </b.js>; rel=preload"]),
            ),
            (103, vec![("link", link_a)], &already, Err(Dropped::Duplicate)),
        ];
        for (status, pairs, already, want) in cases {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let got = forwardable(status, &fields(&pairs), already, 8192).map(|h| names(&h.headers));
            let want = want.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(got, want, "{status} {pairs:?}");
        }
    }

    #[test]
    fn an_oversized_interim_response_is_dropped() {
        let big = "x".repeat(100);
        let h = fields(&[("link", big.as_str())]);
        // "link" + value + ": " + CRLF
        assert!(forwardable(StatusCode::EARLY_HINTS, &h, &[], 4 + 100 + 4).is_ok());
        assert_eq!(forwardable(StatusCode::EARLY_HINTS, &h, &[], 4 + 100 + 3), Err(Dropped::TooLarge));
    }

    #[test]
    fn the_relay_bounds_the_count_and_never_repeats_a_cached_link() {
        let (tx, mut rx) = crate::interim::channel();
        let relay = HintRelay::new(tx, 8192);
        relay.from_cache(vec![HeaderValue::from_static("</a.css>; rel=preload")]);
        // The same link again from the cache (a second cache phase for the same request).
        relay.from_cache(vec![HeaderValue::from_static("</a.css>; rel=preload")]);
        relay.from_upstream(StatusCode::EARLY_HINTS, &fields(&[("link", "</a.css>; rel=preload")]));
        relay.from_upstream(StatusCode::CONTINUE, &HeaderMap::new());
        let first = rx.try_recv().map(|h| names(&h.headers));
        assert_eq!(first, Ok(vec!["link: </a.css>; rel=preload".to_string()]));
        assert!(rx.try_recv().is_err(), "nothing else was queued");
        // Drained as the connection writes them: still no more than MAX_INTERIM_PER_REQUEST.
        for _ in 0..10 {
            relay.from_upstream(StatusCode::PROCESSING, &HeaderMap::new());
            while rx.try_recv().is_ok() {}
        }
        assert_eq!(relay.0.sent.lock().map(|s| s.heads).unwrap_or(0), MAX_INTERIM_PER_REQUEST);
    }
}
