//! The asterisk-form request target (RFC 9112 §3.2.4): `OPTIONS *` asks about the server as a
//! whole, not about a resource, so no origin is asked. The node answers it itself, as Apache
//! httpd does; forwarding it would mean inventing a target (it once reached the origin host's
//! port 80 instead of the configured port, and its failures opened the breaker).

use http::{HeaderValue, Method, Response, StatusCode, Uri, header};

use crate::body::{self, EdgeBody};

/// What a request target in asterisk form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asterisk {
    /// An ordinary target (origin-form or absolute-form).
    No,
    /// `OPTIONS *`: the server's options (RFC 9110 §9.3.7).
    ServerOptions,
    /// `*` with another method: RFC 9112 §3.2.4 defines the form for OPTIONS only (400).
    Invalid,
}

/// Whether `uri` is the asterisk form, and for which method.
pub fn asterisk(method: &Method, uri: &Uri) -> Asterisk {
    let star = uri.scheme().is_none() && uri.authority().is_none() && uri.path() == "*";
    match (star, *method == Method::OPTIONS) {
        (false, _) => Asterisk::No,
        (true, true) => Asterisk::ServerOptions,
        (true, false) => Asterisk::Invalid,
    }
}

/// RFC 9110 §9.3.7: 200 with `Allow` naming the methods the node serves or forwards, and no
/// content (`Content-Length: 0`, as the RFC asks of a response without content).
pub fn server_options() -> Response<EdgeBody> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    let allow = HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    resp.headers_mut().insert(header::ALLOW, allow);
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asterisk_form() {
        // (method, target, answer): RFC 9112 §3.2.4 (asterisk-form is for OPTIONS only);
        // RFC 9112 §3.2.1/§3.2.2 (origin-form and absolute-form are ordinary targets).
        let table = [
            (Method::OPTIONS, "*", Asterisk::ServerOptions),
            (Method::GET, "*", Asterisk::Invalid),
            (Method::POST, "*", Asterisk::Invalid),
            (Method::OPTIONS, "/", Asterisk::No),
            (Method::OPTIONS, "/*", Asterisk::No),
            (Method::OPTIONS, "http://shop.test/", Asterisk::No),
            (Method::GET, "/a?*", Asterisk::No),
        ];
        for (method, target, want) in table {
            let uri: Uri = target.parse().unwrap_or_else(|e| panic!("{target}: {e}"));
            assert_eq!(asterisk(&method, &uri), want, "{method} {target}");
        }
    }

    #[test]
    fn options_answer_has_no_content() {
        let resp = server_options();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get(header::ALLOW).is_some());
        assert_eq!(resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()), Some("0"));
    }
}
