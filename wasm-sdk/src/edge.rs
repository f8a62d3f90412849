//! What the node tells a function about the request: headers it adds before the function runs.
//!
//! The node sets these itself (a client cannot forge them: the node replaces any it sent), so a
//! function can trust them: `Outpost-Client-IP` (the client's address as the node saw it),
//! `Outpost-PoP` (the point of presence, or the node name when the node has no `node.pop`),
//! `Outpost-Node` (`node.name`) and `Outpost-Request-Id` (the id in the node's log and in
//! `x-request-id`).

use std::net::IpAddr;

use http::HeaderName;

/// `Outpost-Client-IP`: the client's IP address.
pub const CLIENT_IP: HeaderName = HeaderName::from_static("outpost-client-ip");
/// `Outpost-PoP`: the point of presence serving the request.
pub const POP: HeaderName = HeaderName::from_static("outpost-pop");
/// `Outpost-Node`: the node serving the request.
pub const NODE: HeaderName = HeaderName::from_static("outpost-node");
/// `Outpost-Request-Id`: the request's id in the node's log and `x-request-id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("outpost-request-id");

/// Typed access to the headers the node adds, on any `http::Request`.
pub trait RequestExt {
    /// The client's IP address, if the node sent a valid one.
    fn client_ip(&self) -> Option<IpAddr>;
    /// The point of presence (e.g. `"fra"`).
    fn pop(&self) -> Option<&str>;
    /// The node's name (e.g. `"edge-1"`).
    fn node(&self) -> Option<&str>;
    /// The request id (as in `x-request-id`).
    fn request_id(&self) -> Option<&str>;
    /// The value of cookie `name` from the `Cookie` header(s) (RFC 6265 §5.4), if present.
    fn cookie(&self, name: &str) -> Option<&str>;
}

impl<B> RequestExt for http::Request<B> {
    fn client_ip(&self) -> Option<IpAddr> {
        text(self, &CLIENT_IP)?.trim().parse().ok()
    }

    fn pop(&self) -> Option<&str> {
        text(self, &POP)
    }

    fn node(&self) -> Option<&str> {
        text(self, &NODE)
    }

    fn request_id(&self) -> Option<&str> {
        text(self, &REQUEST_ID)
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers()
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
    }
}

fn text<'a, B>(req: &'a http::Request<B>, name: &HeaderName) -> Option<&'a str> {
    req.headers().get(name)?.to_str().ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap_or_default()
    }

    #[test]
    fn node_headers_read_typed() {
        let r = req(&[
            ("Outpost-Client-IP", "2001:db8::7"),
            ("Outpost-PoP", "fra"),
            ("Outpost-Node", "edge-1"),
            ("Outpost-Request-Id", "abc123"),
        ]);
        assert_eq!(r.client_ip(), "2001:db8::7".parse().ok());
        assert_eq!((r.pop(), r.node(), r.request_id()), (Some("fra"), Some("edge-1"), Some("abc123")));
    }

    #[test]
    fn missing_or_bad_node_headers_are_none() {
        let r = req(&[("Outpost-Client-IP", "not an ip"), ("Outpost-PoP", "")]);
        assert_eq!((r.client_ip(), r.pop(), r.node(), r.request_id()), (None, None, None, None));
    }

    #[test]
    fn cookies_are_found_across_headers_and_pairs() {
        let r = req(&[("Cookie", "a=1; ab=\"B\""), ("Cookie", "c=3")]);
        assert_eq!(
            (r.cookie("a"), r.cookie("ab"), r.cookie("c"), r.cookie("b")),
            (Some("1"), Some("B"), Some("3"), None)
        );
    }
}
