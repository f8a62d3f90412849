use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::cache::policy::strip_hop_by_hop;

/// What the upstream request says about the client it is made for.
pub struct ForwardInfo<'a> {
    pub client_ip: IpAddr,
    pub host: &'a str,
    pub tls: bool,
    pub node: &'a str,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Client request headers → upstream request headers: hop-by-hop removed (RFC 9110 §7.6.1),
/// `Forwarded` (RFC 7239) and `X-Forwarded-For`/`-Proto` appended, `Via` added (§7.6.3). `Host`
/// is the client's here; the upstream client rewrites it per upstream as the service says.
pub fn forward_headers(mut headers: HeaderMap, info: &ForwardInfo<'_>) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    let ip = info.client_ip.to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    let proto = if info.tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(if info.tls { "https" } else { "http" }));
    let for_ip = match info.client_ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    if let Ok(v) = HeaderValue::from_str(&format!("for={for_ip};host={};proto={proto}", info.host)) {
        headers.append(FORWARDED.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("1.1 {}", info.node)) {
        headers.append(header::VIA, v);
    }
    // HTTP/2 clients send :authority, not Host: the upstream gets it as Host.
    if !headers.contains_key(header::HOST)
        && let Ok(h) = HeaderValue::from_str(info.host)
    {
        headers.insert(header::HOST, h);
    }
    headers
}
