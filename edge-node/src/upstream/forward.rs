//! Client request headers → upstream request headers. The fields an origin reads as facts about
//! the client (its address, the host and scheme it asked for, the URL it meant) come from this
//! node, not from the client: a client could otherwise name any address to an origin's rate
//! limits and allow-lists, or any host and scheme to its redirects and links, none of which
//! is part of the cache key. Only a trusted peer (a load balancer in front of the node, an
//! edge in front of a shield) may pass its own on.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::http::hop::strip_hop_by_hop;

/// What the upstream request says about the client it is made for.
pub struct ForwardInfo<'a> {
    pub client_ip: IpAddr,
    /// The request's canonical host: what it was routed and keyed by.
    pub host: &'a str,
    pub tls: bool,
    pub node: &'a str,
    /// The peer is in the service's or the node's `trusted_networks`: its forwarding fields
    /// are kept and extended rather than replaced.
    pub trusted: bool,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Fields that origins and frameworks read as the client's address, the public host, scheme
/// or port, or the URL really asked for (Rails, Django, Express, Symfony, IIS, Spring, nginx's
/// realip module), none of them in the cache key. From an untrusted peer every one is removed.
const CLIENT_CLAIMS: &[&str] = &[
    // RFC 7239 and its de-facto predecessors.
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "front-end-https",
    "x-url-scheme",
    // The client's address as other proxies and CDNs name it.
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    // URL and host overrides (IIS, Symfony, Zend): a path the cache key does not hold.
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
];

/// Hop-by-hop fields removed (RFC 9110 §7.6.1); `Host` set to the canonical host (RFC 9112
/// §3.2.2: a proxy generates Host from the target it resolved, never forwards the received
/// one; the upstream client then applies the service's `host_header`); the client's claims
/// removed unless `info.trusted`; this node's `Forwarded` (RFC 7239 §4), `X-Forwarded-For`,
/// `-Proto`, `-Host`, `X-Real-IP` and `Via` (RFC 9110 §7.6.3) added.
pub fn forward_headers(mut headers: HeaderMap, info: &ForwardInfo<'_>) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    if !info.trusted {
        for name in CLIENT_CLAIMS {
            headers.remove(*name);
        }
    }
    let ip = info.client_ip.to_canonical().to_string();
    // RFC 7239 §5.2 style list: each proxy appends the address it received from.
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    let proto = if info.tls { "https" } else { "http" };
    set_unless_present(&mut headers, &X_FORWARDED_PROTO, proto);
    set_unless_present(&mut headers, &X_FORWARDED_HOST, info.host);
    set_unless_present(&mut headers, &X_REAL_IP, &ip);
    let for_ip = match info.client_ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        // RFC 7239 §6: an IPv6 node is a quoted, bracketed string.
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    if let Ok(v) = HeaderValue::from_str(&format!("for={for_ip};host={};proto={proto}", info.host)) {
        headers.append(FORWARDED.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("1.1 {}", info.node)) {
        headers.append(header::VIA, v);
    }
    if let Ok(h) = HeaderValue::from_str(info.host) {
        headers.insert(header::HOST, h);
    }
    headers
}

/// A trusted peer's value stands (it saw the real client); otherwise this node's.
fn set_unless_present(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if !headers.contains_key(name)
        && let Ok(v) = HeaderValue::from_str(value)
    {
        headers.insert(name.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(trusted: bool) -> ForwardInfo<'static> {
        ForwardInfo { client_ip: [192, 0, 2, 7].into(), host: "shop.test", tls: true, node: "e1", trusted }
    }

    fn forged() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("host", "evil.example"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-scheme", "http"),
            ("x-original-url", "/admin"),
            ("x-real-ip", "203.0.113.9"),
            ("true-client-ip", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9;host=evil.example"),
            ("accept", "text/html"),
        ] {
            h.append(name, HeaderValue::from_static(value));
        }
        h
    }

    fn all(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name).iter().map(|v| v.to_str().unwrap_or("?").to_string()).collect()
    }

    #[test]
    fn an_untrusted_clients_claims_are_replaced_by_the_nodes() {
        let h = forward_headers(forged(), &info(false));
        let cases: &[(&str, &[&str])] = &[
            // RFC 9112 §3.2.2: Host is generated from the resolved target.
            ("host", &["shop.test"]),
            ("x-forwarded-for", &["192.0.2.7"]),
            ("x-forwarded-host", &["shop.test"]),
            ("x-forwarded-proto", &["https"]),
            ("x-real-ip", &["192.0.2.7"]),
            // RFC 7239 §4: only this node's element; the client's is gone.
            ("forwarded", &["for=192.0.2.7;host=shop.test;proto=https"]),
            // RFC 9110 §7.6.3
            ("via", &["1.1 e1"]),
            ("x-forwarded-scheme", &[]),
            ("x-original-url", &[]),
            ("true-client-ip", &[]),
            ("accept", &["text/html"]),
        ];
        for (name, want) in cases {
            assert_eq!(all(&h, name), *want, "{name}");
        }
    }

    #[test]
    fn a_trusted_peers_claims_are_kept_and_extended() {
        let h = forward_headers(forged(), &info(true));
        let cases: &[(&str, &[&str])] = &[
            ("host", &["shop.test"]),
            ("x-forwarded-for", &["203.0.113.9, 192.0.2.7"]),
            ("x-forwarded-host", &["evil.example"]),
            ("x-forwarded-proto", &["http"]),
            ("x-real-ip", &["203.0.113.9"]),
            // RFC 7239 §4: each proxy appends its element.
            ("forwarded", &["for=203.0.113.9;host=evil.example", "for=192.0.2.7;host=shop.test;proto=https"]),
            ("x-original-url", &["/admin"]),
        ];
        for (name, want) in cases {
            assert_eq!(all(&h, name), *want, "{name}");
        }
    }

    #[test]
    fn ipv6_and_mapped_clients() {
        let mut i = info(false);
        i.client_ip = "2001:db8::1".parse().unwrap_or(i.client_ip);
        let h = forward_headers(HeaderMap::new(), &i);
        assert_eq!(all(&h, "forwarded"), ["for=\"[2001:db8::1]\";host=shop.test;proto=https"]);
        i.client_ip = "::ffff:192.0.2.8".parse().unwrap_or(i.client_ip);
        let h = forward_headers(HeaderMap::new(), &i);
        assert_eq!(all(&h, "x-forwarded-for"), ["192.0.2.8"]);
    }
}
