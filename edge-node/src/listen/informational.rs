//! What an interim (1xx) response head looks like on the client's connection: which clients may
//! get one, which fields it may carry, and its HTTP/1.1 bytes. Pure functions; the h1 and h2
//! glue ([`super::h1`], [`super::h2`]) write what these return.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};
use http::{StatusCode, Version};

use crate::interim::InterimHead;

/// RFC 9110 §15.2: "A server MUST NOT send a 1xx response to an HTTP/1.0 client." HTTP/2 and
/// HTTP/3 carry them as HEADERS frames ahead of the final ones (RFC 9113 §8.1, RFC 9114 §4.1).
pub fn takes_interim(version: Version) -> bool {
    matches!(version, Version::HTTP_11 | Version::HTTP_2 | Version::HTTP_3)
}

/// Whether the request asks for `100 Continue` before it sends its content (RFC 9110 §10.1.1:
/// "100-continue", case-insensitive, the one expectation defined). The listener answers it
/// itself and removes `Expect` before the pipeline, as nginx does: the next hop gets the content
/// without waiting, and its own 100 could only be a duplicate (RFC 9110 §15.2.1: a proxy MUST
/// NOT forward a 100 when it already sent one).
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::EXPECT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|member| member.trim().eq_ignore_ascii_case("100-continue"))
}

/// Connection-specific fields (RFC 9110 §7.6.1), which RFC 9113 §8.2.2 forbids in HTTP/2 (a
/// message carrying one is malformed) and which describe the hop they arrived on, not this one.
const CONNECTION_FIELDS: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes connection-specific fields, those `Connection` names included, and a `TE` (RFC 9113
/// §8.2.2: only `TE: trailers`, and only in requests).
pub fn strip_connection_fields(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in &CONNECTION_FIELDS {
        headers.remove(name);
    }
    headers.remove(header::TE);
}

/// The fields an interim response goes out with: connection-specific fields removed, and
/// framing fields too, since a 1xx has no content (RFC 9110 §8.6: "A server MUST NOT send a
/// Content-Length header field in any response with a status code of 1xx"; §6.1: 1xx ends
/// at its header section).
pub fn interim_fields(head: &InterimHead) -> HeaderMap {
    let mut headers = head.headers.clone();
    strip_connection_fields(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    headers
}

/// An interim head in HTTP/1.1 syntax (RFC 9112 §4): status line, fields, empty line. Field
/// values cannot hold CR or LF (`http::HeaderValue` refuses them), so no line can be injected.
pub fn encode_h1(status: StatusCode, headers: &HeaderMap) -> Bytes {
    let reason = status.canonical_reason().unwrap_or("");
    let fields: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    let mut out = BytesMut::with_capacity(reason.len() + fields + 16);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

/// The interim head as an `http::Response` for the h2 and h3 servers.
pub fn to_response(head: &InterimHead) -> http::Response<()> {
    let mut resp = http::Response::new(());
    *resp.status_mut() = head.status;
    *resp.headers_mut() = interim_fields(head);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(HeaderName::try_from(*n).expect("name"), HeaderValue::try_from(*v).expect("value"));
        }
        h
    }

    #[test]
    fn which_clients_take_interim_responses() {
        // (version, takes 1xx, clause)
        let table = [
            (Version::HTTP_09, false, "RFC 9110 §15.2: no 1xx to a client before HTTP/1.1"),
            (Version::HTTP_10, false, "RFC 9110 §15.2: MUST NOT send a 1xx to an HTTP/1.0 client"),
            (Version::HTTP_11, true, "RFC 9110 §15.2: 1xx before the final response"),
            (Version::HTTP_2, true, "RFC 9113 §8.1: HEADERS with a 1xx, then the final HEADERS"),
            (Version::HTTP_3, true, "RFC 9114 §4.1: interim HEADERS frames"),
        ];
        for (version, want, clause) in table {
            assert_eq!(takes_interim(version), want, "{clause}");
        }
    }

    #[test]
    fn which_requests_expect_100_continue() {
        // (Expect values, asks for 100, clause)
        let table: [(&[&str], bool, &str); 6] = [
            (&["100-continue"], true, "RFC 9110 §10.1.1: the expectation"),
            (&["100-Continue"], true, "RFC 9110 §10.1.1: case-insensitive"),
            (&["foo, 100-continue"], true, "RFC 9110 §10.1.1: one member of a list"),
            (&["foo", "100-continue"], true, "RFC 9110 §5.3: fields combine into one list"),
            (&["200-ok"], false, "RFC 9110 §10.1.1: other expectations are not 100-continue"),
            (&[], false, "no Expect field"),
        ];
        for (values, want, clause) in table {
            let fields: Vec<(&str, &str)> = values.iter().map(|v| ("expect", *v)).collect();
            assert_eq!(expects_continue(&headers(&fields)), want, "{values:?}: {clause}");
        }
    }

    #[test]
    fn interim_fields_keep_hints_and_drop_hop_and_framing_fields() {
        let head = InterimHead {
            status: StatusCode::EARLY_HINTS,
            headers: headers(&[
                ("link", "</a.css>; rel=preload; as=style"),
                ("link", "</b.js>; rel=preload; as=script"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "h2c"),
                ("te", "trailers"),
                ("content-length", "0"),
            ]),
        };
        let out = interim_fields(&head);
        // (field, kept, clause)
        let table = [
            ("link", true, "RFC 8297 §2: the hints themselves"),
            ("connection", false, "RFC 9110 §7.6.1 / RFC 9113 §8.2.2"),
            ("x-hop", false, "RFC 9110 §7.6.1: fields Connection names are hop-by-hop"),
            ("keep-alive", false, "RFC 9110 §7.6.1"),
            ("transfer-encoding", false, "RFC 9113 §8.2.2; RFC 9110 §6.1: a 1xx has no content"),
            ("upgrade", false, "RFC 9113 §8.2.2"),
            ("te", false, "RFC 9113 §8.2.2: TE only in requests"),
            ("content-length", false, "RFC 9110 §8.6: MUST NOT in a 1xx"),
        ];
        for (field, kept, clause) in table {
            assert_eq!(out.contains_key(field), kept, "{field}: {clause}");
        }
        assert_eq!(out.get_all("link").iter().count(), 2, "RFC 8297 §2: every Link field");
    }

    #[test]
    fn h1_bytes_are_a_status_line_fields_and_an_empty_line() {
        // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
        let h = headers(&[("link", "</a.css>; rel=preload")]);
        let wire = encode_h1(StatusCode::EARLY_HINTS, &h);
        assert_eq!(&wire[..], b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n");
        let wire = encode_h1(StatusCode::PROCESSING, &HeaderMap::new());
        assert_eq!(&wire[..], b"HTTP/1.1 102 Processing\r\n\r\n");
        // An unregistered 1xx: the reason phrase is optional (RFC 9112 §4).
        let wire = encode_h1(StatusCode::from_u16(199).expect("199"), &HeaderMap::new());
        assert_eq!(&wire[..], b"HTTP/1.1 199 \r\n\r\n");
    }
}
