//! Conversions between the `http` crate's types and the wasi:http resources the host speaks.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use wasi::http::types::{Fields, HeaderError, Method as WasiMethod};

use crate::error::{BodySource, Error};

/// Connection-specific fields (RFC 9110 §7.6.1) that wasi:http hosts refuse to take from a guest
/// (wasmtime's default forbidden list). The host manages them itself, so they are dropped
/// instead of failing the whole message.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
];

/// True for a field the host would refuse (compared lower-case, as `http` stores names).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The headers of an outgoing message, as one host call.
pub(crate) fn to_fields(headers: &HeaderMap) -> Result<Fields, Error> {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    match Fields::from_list(&list) {
        Ok(fields) => Ok(fields),
        // A host may forbid more than the standard list (its own headers): drop those one by one.
        Err(HeaderError::Forbidden) => {
            let fields = Fields::new();
            for (name, value) in &list {
                match fields.append(name, value) {
                    Ok(()) | Err(HeaderError::Forbidden) => {}
                    Err(e) => return Err(header_error(name, e)),
                }
            }
            Ok(fields)
        }
        Err(e) => Err(header_error("(one of the fields)", e)),
    }
}

fn header_error(name: &str, e: HeaderError) -> Error {
    Error::Io { source: BodySource::Function, message: format!("header {name}: refused by the host ({e:?})") }
}

/// The headers the host delivered. Fields the host already validated; anything `http` still
/// rejects is skipped rather than failing the request.
pub(crate) fn from_fields(fields: &Fields) -> HeaderMap {
    let entries = fields.entries();
    let mut map = HeaderMap::with_capacity(entries.len());
    for (name, value) in entries {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value)) {
            map.append(name, value);
        }
    }
    map
}

pub(crate) fn to_wasi_method(method: &http::Method) -> WasiMethod {
    match *method {
        http::Method::GET => WasiMethod::Get,
        http::Method::HEAD => WasiMethod::Head,
        http::Method::POST => WasiMethod::Post,
        http::Method::PUT => WasiMethod::Put,
        http::Method::DELETE => WasiMethod::Delete,
        http::Method::CONNECT => WasiMethod::Connect,
        http::Method::OPTIONS => WasiMethod::Options,
        http::Method::TRACE => WasiMethod::Trace,
        http::Method::PATCH => WasiMethod::Patch,
        ref other => WasiMethod::Other(other.as_str().to_owned()),
    }
}

/// `None` for an extension method that is not a valid token (the host should never send one).
pub(crate) fn from_wasi_method(method: WasiMethod) -> Option<http::Method> {
    Some(match method {
        WasiMethod::Get => http::Method::GET,
        WasiMethod::Head => http::Method::HEAD,
        WasiMethod::Post => http::Method::POST,
        WasiMethod::Put => http::Method::PUT,
        WasiMethod::Delete => http::Method::DELETE,
        WasiMethod::Connect => http::Method::CONNECT,
        WasiMethod::Options => http::Method::OPTIONS,
        WasiMethod::Trace => http::Method::TRACE,
        WasiMethod::Patch => http::Method::PATCH,
        WasiMethod::Other(s) => return http::Method::from_bytes(s.as_bytes()).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip() {
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PURGE"] {
            let method = http::Method::from_bytes(m.as_bytes()).ok();
            let back = method.as_ref().and_then(|m| from_wasi_method(to_wasi_method(m)));
            assert_eq!(back, method, "{m}");
        }
        assert_eq!(from_wasi_method(WasiMethod::Other("bad method".into())), None);
    }

    #[test]
    fn hop_by_hop_fields_are_the_ones_hosts_forbid() {
        for name in ["connection", "host", "transfer-encoding", "upgrade", "keep-alive"] {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["content-type", "cache-control", "outpost-pop"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }
}
