//! `Content-Length`, read in one place (RFC 9110 §8.6: `Content-Length = 1*DIGIT`).
//!
//! Two readings of the same grammar: [`declared_length`] for framing decisions on a message
//! the node checks itself (HTTP/3 requests), which must be exactly one field line; and
//! [`content_length`] for a message whose framing hyper or h2 already checked (requests the
//! listeners parsed, upstream responses, stored heads), where the first line is the length.

use http::HeaderMap;
use http::header::CONTENT_LENGTH;

/// The one `Content-Length` of `headers`, or `None` when absent, repeated or not a number: the
/// listeners refuse such requests, so `None` only drops a field that could not be trusted anyway.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    digits(first.to_str().ok()?)
}

/// The length a framed message declares: its first `Content-Length` line, optional whitespace
/// around it ignored (RFC 9110 §5.5: not part of the field value). `None` when absent or not a
/// number.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    digits(headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim())
}

/// RFC 9110 §8.6: 1*DIGIT, no sign, within u64.
fn digits(text: &str) -> Option<u64> {
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

    #[test]
    fn content_length_reads_the_first_line() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<u64>);
        let cases: &[Case] = &[
            ("RFC 9110 §8.6 1*DIGIT", &[("content-length", "42")], Some(42)),
            ("RFC 9110 §5.5 whitespace around a value is not part of it", &[("content-length", " 7 ")], Some(7)),
            (
                "RFC 9110 §8.6 a framed message's first line",
                &[("content-length", "5"), ("content-length", "5")],
                Some(5),
            ),
            ("RFC 9110 §8.6 not 1*DIGIT: no sign", &[("content-length", "+5")], None),
            ("RFC 9110 §8.6 not 1*DIGIT: negative", &[("content-length", "-1")], None),
            ("absent", &[], None),
            ("past u64", &[("content-length", "99999999999999999999999")], None),
        ];
        for (clause, fields, want) in cases {
            assert_eq!(content_length(&headers(fields)), *want, "{clause}");
        }
    }
}
