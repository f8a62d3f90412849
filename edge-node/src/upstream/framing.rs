//! The framing of a request sent upstream: the `Content-Length` / `Transfer-Encoding` the
//! upstream sees always describe the body this node actually sends.
//!
//! A framing header copied from the client while the body is dropped (a GET with content, whose
//! body the cache phase does not forward) makes an upstream that answers before reading the
//! body (nginx, Node) take the first bytes of the next request on that pooled connection as
//! this one's body: request smuggling, and a poisoned cache entry (RFC 9112 §11.2). So the
//! client's framing fields are never trusted as they are: they are rewritten from the body.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method};
use http_body::SizeHint;

use crate::http::declared_length;

/// How the body of an upstream request is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No content: no framing field, or `Content-Length: 0` for a method that defines content.
    Empty,
    /// `Content-Length: n`; the body must carry exactly n bytes (checked as it streams).
    Length(u64),
    /// Length unknown: chunked on HTTP/1.1 (the client sets it), DATA frames on HTTP/2.
    Streamed,
}

/// Rewrite the framing fields of `headers` for a body that is `empty` (already complete) or has
/// the size `hint`, and say how the body is framed.
///
/// - `Transfer-Encoding` is hop-by-hop (RFC 9110 §7.6.1, RFC 9112 §6.1): always removed; the
///   upstream client applies chunked itself when the length is unknown.
/// - An empty body carries no `Content-Length` (RFC 9110 §8.6), except `Content-Length: 0` for a
///   method that defines a meaning for content (POST, PUT, PATCH): "a user agent SHOULD send
///   Content-Length in a request when the method defines a meaning for enclosed content".
/// - A body of known size carries that size, whatever the client claimed.
/// - A streamed body keeps a client's single valid `Content-Length`, and the body is held to it
///   (see [`super::request_body::SentBody`]); anything else goes out without one (chunked).
pub fn frame(method: &Method, headers: &mut HeaderMap, empty: bool, hint: &SizeHint) -> Framing {
    headers.remove(TRANSFER_ENCODING);
    let declared = declared_length(headers);
    headers.remove(CONTENT_LENGTH);
    if empty {
        if defines_content(method) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        return Framing::Empty;
    }
    let length = hint.exact().or(declared);
    match length {
        Some(n) => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            Framing::Length(n)
        }
        None => Framing::Streamed,
    }
}

/// RFC 9110 §9.3: the methods whose definition gives request content a meaning. GET, HEAD,
/// DELETE, OPTIONS and the rest do not (§9.3.1, §9.3.2, §9.3.5, §9.3.7).
fn defines_content(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            if let (Ok(n), Ok(v)) = (http::HeaderName::try_from(*n), HeaderValue::try_from(*v)) {
                h.append(n, v);
            }
        }
        h
    }

    fn hint(exact: Option<u64>) -> SizeHint {
        exact.map(SizeHint::with_exact).unwrap_or_default()
    }

    /// (case, method, client fields, body empty, exact size, framing, content-length sent)
    type Row = (
        &'static str,
        Method,
        &'static [(&'static str, &'static str)],
        bool,
        Option<u64>,
        Framing,
        Option<&'static str>,
    );

    #[test]
    fn framing_describes_the_body_sent() {
        let table: [Row; 10] = [
            // RFC 9110 §9.3.1: a GET's content has no defined semantics; the cache phase drops it,
            // and its Content-Length with it (the smuggling of issue 18).
            ("fat GET, body dropped", Method::GET, &[("content-length", "43")], true, Some(0), Framing::Empty, None),
            ("fat HEAD, body dropped", Method::HEAD, &[("content-length", "5")], true, Some(0), Framing::Empty, None),
            // RFC 9110 §8.6: no Content-Length on a GET without content.
            ("plain GET", Method::GET, &[], true, Some(0), Framing::Empty, None),
            // RFC 9110 §8.6: Content-Length: 0 for a POST without content.
            ("empty POST", Method::POST, &[("content-length", "0")], true, Some(0), Framing::Empty, Some("0")),
            ("empty PUT, no field", Method::PUT, &[], true, None, Framing::Empty, Some("0")),
            // RFC 9112 §6.1 / RFC 9110 §7.6.1: Transfer-Encoding is hop-by-hop.
            (
                "chunked POST streams",
                Method::POST,
                &[("transfer-encoding", "chunked")],
                false,
                None,
                Framing::Streamed,
                None,
            ),
            // The body's own size wins over the client's claim.
            ("known size", Method::POST, &[("content-length", "9")], false, Some(5), Framing::Length(5), Some("5")),
            ("declared, streamed", Method::PUT, &[("content-length", "7")], false, None, Framing::Length(7), Some("7")),
            // RFC 9110 §8.6 / RFC 9112 §6.3: an invalid or repeated Content-Length is not framing.
            (
                "repeated length dropped",
                Method::POST,
                &[("content-length", "7"), ("content-length", "8")],
                false,
                None,
                Framing::Streamed,
                None,
            ),
            ("signed length dropped", Method::POST, &[("content-length", "+7")], false, None, Framing::Streamed, None),
        ];
        for (case, method, fields, empty, exact, framing, sent) in table {
            let mut h = headers(fields);
            assert_eq!(frame(&method, &mut h, empty, &hint(exact)), framing, "{case}");
            let cl: Vec<_> = h.get_all(CONTENT_LENGTH).iter().filter_map(|v| v.to_str().ok()).collect();
            assert_eq!(cl, sent.into_iter().collect::<Vec<_>>(), "{case}");
            assert!(!h.contains_key(TRANSFER_ENCODING), "{case}");
        }
    }
}
