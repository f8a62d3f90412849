//! The one response body type every phase returns, and small constructors for it.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: a buffer, a cached object's chunks, a shared in-flight fetch, or an upstream stream.
pub type EdgeBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> EdgeBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> EdgeBody {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync()
}

/// The one `Content-Length` of `headers` (RFC 9110 §8.6: 1*DIGIT), or `None` when absent, repeated
/// or not a number: the listeners refuse such requests, so `None` only drops a field that could
/// not be trusted anyway.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = first.to_str().ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            if let (Ok(n), Ok(v)) = (http::HeaderName::try_from(*n), HeaderValue::try_from(*v)) {
                h.append(n, v);
            }
        }
        h
    }

    #[test]
    fn declared_length_is_strict() {
        // RFC 9110 §8.6: Content-Length = 1*DIGIT.
        let table = [("0", Some(0)), ("42", Some(42)), ("", None), (" 4", None), ("4,4", None), ("-1", None)];
        for (value, want) in table {
            assert_eq!(declared_length(&headers(&[("content-length", value)])), want, "{value:?}");
        }
        assert_eq!(declared_length(&HeaderMap::new()), None);
        assert_eq!(declared_length(&headers(&[("content-length", "99999999999999999999999")])), None);
    }
}
