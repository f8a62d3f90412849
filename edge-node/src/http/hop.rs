//! Hop-by-hop fields (RFC 9110 §7.6.1): what one connection's peers say to each other, removed
//! before a message is forwarded, stored or answered from the store. Used by the upstream client
//! (both directions), the 1xx relay and the cache's 304 merge.

use http::header::{
    CONNECTION, CONTENT_LENGTH, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName};

use super::syntax::{split_list, text};

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// RFC 9110 §7.6.1 hop-by-hop fields, plus Proxy-Authenticate/-Authorization (meant for the
/// proxy, RFC 9110 §11.7) and Proxy-Connection (non-standard, RFC 9110 §7.6.1 note).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// The fields [`is_hop_by_hop`] names, one list for the test and the strip.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

/// Fields named by Connection (RFC 9110 §7.6.1), except Host and Content-Length: those are
/// meant for all recipients (a sender must not list them) and removing them would change
/// routing or framing.
pub fn connection_named(h: &HeaderMap) -> Vec<HeaderName> {
    h.get_all(CONNECTION)
        .iter()
        .flat_map(|v| {
            split_list(&text(v))
                .into_iter()
                .filter_map(|s| HeaderName::from_bytes(s.as_bytes()).ok())
                .collect::<Vec<_>>()
        })
        .filter(|n| *n != HOST && *n != CONTENT_LENGTH)
        .collect()
}

/// Removes hop-by-hop fields (RFC 9110 §7.6.1): Connection and every field it names,
/// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
/// Proxy-Authorization. Used in both directions.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    for name in connection_named(h) {
        h.remove(name);
    }
    for name in HOP_BY_HOP {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(*n), http::HeaderValue::try_from(*v)) {
                h.append(n, v);
            }
        }
        h
    }

    #[test]
    fn hop_by_hop_fields_go() {
        let mut h = map(&[
            ("connection", "close, X-Foo"),
            ("connection", "x-bar, host, content-length"),
            ("x-foo", "1"),
            ("x-bar", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic x"),
            ("host", "a"),
            ("content-length", "3"),
            ("etag", "\"a\""),
        ]);
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "etag", "host"], "RFC 9110 §7.6.1 hop-by-hop and Connection-named fields");
    }
}
