//! RFC 9114 §4.2 / §4.1.2: what makes an HTTP/3 request malformed before any of it is used.
//! HTTP/1.1 and HTTP/2 requests get the same checks from hyper's parser and the h2 crate; the
//! h3 crate leaves them to the server.

use http::HeaderMap;
use http::header::{CONTENT_LENGTH, TE};

/// Why a request's header section is malformed, or `None` when it is not.
pub fn malformed(headers: &HeaderMap) -> Option<&'static str> {
    // RFC 9114 §4.2: "An endpoint MUST NOT generate an HTTP/3 field section containing
    // connection-specific fields; any message containing connection-specific fields MUST be
    // treated as malformed." Transfer-Encoding among them: HTTP/3 frames bodies itself.
    const CONNECTION_SPECIFIC: [&str; 5] =
        ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];
    if CONNECTION_SPECIFIC.iter().any(|name| headers.contains_key(*name)) {
        return Some("connection-specific field");
    }
    // RFC 9114 §4.2: TE may be present only with the value "trailers".
    if headers.get_all(TE).iter().any(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers")) {
        return Some("TE other than \"trailers\"");
    }
    // RFC 9110 §8.6: Content-Length = 1*DIGIT; differing values are an unrecoverable error.
    if headers.contains_key(CONTENT_LENGTH) && crate::http::declared_length(headers).is_none() {
        return Some("invalid Content-Length");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests() {
        // (fields, malformed?)
        let table: [(&[(&str, &str)], bool); 10] = [
            (&[], false),
            (&[("content-length", "5")], false),
            (&[("te", "trailers")], false),
            // RFC 9114 §4.2: connection-specific fields.
            (&[("connection", "keep-alive")], true),
            (&[("keep-alive", "timeout=5")], true),
            (&[("transfer-encoding", "chunked")], true),
            (&[("upgrade", "websocket")], true),
            // RFC 9114 §4.2: TE other than "trailers".
            (&[("te", "gzip")], true),
            // RFC 9110 §8.6: one Content-Length, digits only.
            (&[("content-length", "5"), ("content-length", "6")], true),
            (&[("content-length", "5x")], true),
        ];
        for (fields, want) in table {
            let mut h = HeaderMap::new();
            for (n, v) in fields {
                if let (Ok(n), Ok(v)) = (http::HeaderName::try_from(*n), http::HeaderValue::try_from(*v)) {
                    h.append(n, v);
                }
            }
            assert_eq!(malformed(&h).is_some(), want, "{fields:?}");
        }
    }
}
