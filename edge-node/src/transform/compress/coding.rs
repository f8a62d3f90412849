//! Content codings (RFC 9110 §8.4.1) by their `Content-Encoding` / `Accept-Encoding` tokens.

use http::header::{CONTENT_ENCODING, HeaderMap, HeaderValue};
use outpost_config::ContentCoding;

/// A content coding the node negotiates, produces and decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Brotli (RFC 7932).
    Br,
    /// Zstandard (RFC 8878), windows of at most 8MB (RFC 9659).
    Zstd,
    /// gzip (RFC 1952).
    Gzip,
    /// No coding: the representation as it is.
    Identity,
}

impl Coding {
    /// The coding a token names, case-insensitively (RFC 9110 §8.4.1). `x-gzip` is gzip
    /// (RFC 9110 §8.4.1.3). Other codings (`deflate`, `compress`, `*`) are `None`.
    pub fn parse(token: &str) -> Option<Coding> {
        [
            ("br", Coding::Br),
            ("zstd", Coding::Zstd),
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("identity", Coding::Identity),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(token))
        .map(|(_, coding)| coding)
    }

    /// The token as sent in `Content-Encoding`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }

    /// The `Content-Encoding` value; none for identity, which is sent without the field.
    pub fn header_value(self) -> Option<HeaderValue> {
        match self {
            Coding::Identity => None,
            coding => Some(HeaderValue::from_static(coding.as_str())),
        }
    }

    /// The coding of a response from its `Content-Encoding` fields: `Identity` without one
    /// (or with only `identity`), the coding when exactly one known coding is applied, and
    /// `None` when the node cannot undo it (`deflate`, an unknown token, several codings
    /// stacked, an unreadable value): such a body is passed through untouched.
    pub fn of_response(headers: &HeaderMap) -> Option<Coding> {
        let mut found = Coding::Identity;
        for value in headers.get_all(CONTENT_ENCODING) {
            let tokens = value.to_str().ok()?.split(',').map(|t| t.trim_matches([' ', '\t'])).filter(|t| !t.is_empty());
            for token in tokens {
                match Coding::parse(token)? {
                    Coding::Identity => {}
                    _ if found != Coding::Identity => return None,
                    coding => found = coding,
                }
            }
        }
        Some(found)
    }
}

impl From<ContentCoding> for Coding {
    fn from(coding: ContentCoding) -> Self {
        match coding {
            ContentCoding::Br => Coding::Br,
            ContentCoding::Zstd => Coding::Zstd,
            ContentCoding::Gzip => Coding::Gzip,
        }
    }
}

impl std::fmt::Display for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_print() {
        let cases = [
            ("br", Some(Coding::Br)),
            ("BR", Some(Coding::Br)),
            ("zstd", Some(Coding::Zstd)),
            ("gzip", Some(Coding::Gzip)),
            ("GZip", Some(Coding::Gzip)),
            ("x-gzip", Some(Coding::Gzip)),
            ("X-GZIP", Some(Coding::Gzip)),
            ("identity", Some(Coding::Identity)),
            ("deflate", None),
            ("compress", None),
            ("*", None),
            ("", None),
            (" gzip", None),
        ];
        for (token, expected) in cases {
            assert_eq!(Coding::parse(token), expected, "{token:?}");
        }
        for coding in [Coding::Br, Coding::Zstd, Coding::Gzip, Coding::Identity] {
            assert_eq!(Coding::parse(coding.as_str()), Some(coding));
        }
        for coding in ContentCoding::ALL {
            assert_eq!(Coding::from(coding).as_str(), coding.as_str());
        }
        assert_eq!(Coding::Identity.header_value(), None);
        assert_eq!(Coding::Br.header_value(), Some(HeaderValue::from_static("br")));
    }

    #[test]
    fn response_coding_from_content_encoding() {
        let cases: &[(&[&[u8]], Option<Coding>)] = &[
            (&[], Some(Coding::Identity)),
            (&[b"identity"], Some(Coding::Identity)),
            (&[b"br"], Some(Coding::Br)),
            (&[b"GZIP"], Some(Coding::Gzip)),
            (&[b"x-gzip"], Some(Coding::Gzip)),
            (&[b" zstd "], Some(Coding::Zstd)),
            (&[b"gzip, identity"], Some(Coding::Gzip)),
            (&[b""], Some(Coding::Identity)),
            // RFC 9110 §8.4: codings listed in the order applied; two stacked cannot be undone here.
            (&[b"gzip, br"], None),
            (&[b"gzip", b"br"], None),
            (&[b"gzip", b"gzip"], None),
            (&[b"deflate"], None),
            (&[b"aes128gcm"], None),
            (&[b"gzip\xff"], None),
        ];
        for (values, expected) in cases {
            let mut headers = HeaderMap::new();
            for value in *values {
                headers.append(CONTENT_ENCODING, HeaderValue::from_bytes(value).expect("valid header bytes"));
            }
            assert_eq!(Coding::of_response(&headers), *expected, "{values:?}");
        }
    }
}
