//! Interim responses a request's phases make or pass on (RFC 9110 §15.2): the 1xx an upstream
//! sends, forwarded to the client, and `103 Early Hints` (RFC 8297) made from the `Link` fields
//! of a stored HTML page when a request for it must wait for the origin — what Cloudflare
//! calls Early Hints. [`crate::interim`] carries them to the connection; this module decides
//! what goes in them.
//!
//! Never stored, never merged into the final response: a relayed head only ever goes to the
//! interim channel, and the stored object is the final response as the origin sent it.
//!
//! What reaches this module: an HTTP/1.1 upstream's 1xx (hyper's client surfaces them through
//! `hyper::ext::on_informational`), and an HTTP/2 upstream's (shields, origins with
//! `origin_protocol = "http2"`): those are reached through the node's own h2 client
//! (`upstream::h2`), which reads them with h2's `poll_informational` (hyper's HTTP/2 client
//! never does) and hands them to the same relay, under the same rules.

pub mod link;
pub mod relay;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use outpost_config::ServiceConfig;

pub use relay::HintRelay;

use crate::interim::InterimSender;

/// A service's interim-response settings, compiled once per config version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HintsPolicy {
    /// `early_hints`: make 103s from stored pages.
    pub from_cache: bool,
    pub max_links: usize,
    pub max_link_bytes: usize,
    /// `max_interim_bytes`: bound on one forwarded 1xx head.
    pub max_interim_bytes: usize,
}

impl HintsPolicy {
    pub fn from_config(svc: &ServiceConfig) -> Self {
        Self {
            from_cache: svc.early_hints,
            max_links: svc.early_hints_max_links,
            max_link_bytes: svc.early_hints_max_bytes.as_usize(),
            max_interim_bytes: svc.max_interim_bytes.as_usize(),
        }
    }
}

/// Gives a routed request its [`HintRelay`] when its connection takes interim responses (the
/// transport put an [`InterimSender`] in its extensions). One relay per request, however many
/// times the cache phase runs for it, so no link is hinted twice.
pub fn attach<B>(req: &mut Request<B>, policy: &HintsPolicy) {
    if let Some(sender) = req.extensions().get::<InterimSender>().cloned() {
        req.extensions_mut().insert(HintRelay::new(sender, policy.max_interim_bytes));
    }
}

/// The links a `103` made from this stored response carries: its hint-worthy `Link` values
/// (see [`link::hint_links`]) when the service makes early hints and the response is an HTML
/// page (a 200 `text/html`: the document whose subresources a browser would fetch).
pub fn cached_links(policy: &HintsPolicy, status: StatusCode, headers: &HeaderMap) -> Vec<HeaderValue> {
    if !policy.from_cache || status != StatusCode::OK || !is_html(headers) {
        return Vec::new();
    }
    link::hint_links(headers, policy.max_links, policy.max_link_bytes)
}

/// RFC 9110 §8.3.1: the media type is the part before any parameter, case-insensitive.
fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_html_200_of_a_service_that_asks_gives_hints() {
        let on = HintsPolicy { from_cache: true, max_links: 16, max_link_bytes: 4096, max_interim_bytes: 8192 };
        let off = HintsPolicy { from_cache: false, ..on };
        let page = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            h.insert(http::header::LINK, HeaderValue::from_static("</a.css>; rel=preload; as=style"));
            h
        };
        let cases = [
            (on, 200, "text/html; charset=utf-8", 1),
            // RFC 9110 §8.3.1: type and subtype are case-insensitive.
            (on, 200, "Text/HTML", 1),
            (off, 200, "text/html", 0),
            (on, 200, "text/css", 0),
            (on, 404, "text/html", 0),
            (on, 206, "text/html", 0),
        ];
        for (policy, status, ct, want) in cases {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            assert_eq!(cached_links(&policy, status, &page(ct)).len(), want, "{policy:?} {status} {ct}");
        }
    }
}
