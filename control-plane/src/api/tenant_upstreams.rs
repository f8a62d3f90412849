//! Where a tenant may point the nodes: not at the nodes' own network. Each upstream address a
//! tenant sets (`origin`, `origins[i].url`, `shields[i].url`, `function.backends.NAME`) is
//! refused when it is an IP literal in a loopback, private, link-local, unspecified, CGNAT,
//! multicast or broadcast network, or the name `localhost` (RFC 6761 §6.3), unless the
//! operator allows the network (`limits.tenant_upstream_allow`). Without this, a tenant's
//! `origin = "http://127.0.0.1:9901"` would reach a node's admin listener, which takes purges
//! for every tenant without a token. The operator's own configs are not checked.
//!
//! Host names are not resolved here: a name is resolved on each node when it connects, and may
//! resolve to something else there or later, so each node judges the addresses it resolves
//! against the same list (`outpost_config::net::tenant`) before it connects. Only addresses
//! written as addresses are judged here, in every form the nodes' resolver (`getaddrinfo`)
//! reads as one: `0x7f000001` is 127.0.0.1.

use outpost_config::net::tenant::refusal;
use outpost_config::{OriginUrl, ServiceConfig};

use super::error::{ApiError, ErrorKind, FieldError};
use crate::dns::cidr::Cidr;

/// Checks every upstream address of a tenant's `config`; one field error per refused address.
pub fn check(config: &ServiceConfig, allow: &[Cidr]) -> Result<(), ApiError> {
    let fields: Vec<FieldError> = upstreams(config)
        .into_iter()
        .filter_map(|(path, url)| refusal(url, allow).map(|message| FieldError { path, message }))
        .collect();
    if fields.is_empty() { Ok(()) } else { Err(ApiError::fields(ErrorKind::InvalidConfig, fields)) }
}

/// Every address a node connects to for this service, with its field path.
fn upstreams(config: &ServiceConfig) -> Vec<(String, &OriginUrl)> {
    let mut list: Vec<(String, &OriginUrl)> = Vec::new();
    list.extend(config.origin.iter().map(|url| ("origin".to_owned(), url)));
    list.extend(config.origins.iter().enumerate().map(|(i, o)| (format!("origins[{i}].url"), &o.url)));
    list.extend(config.shields.iter().enumerate().map(|(i, s)| (format!("shields[{i}].url"), &s.url)));
    if let Some(function) = &config.function {
        list.extend(function.backends.iter().map(|(name, url)| (format!("function.backends.{name}"), url)));
    }
    list
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(json: serde_json::Value) -> ServiceConfig {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap_or_else(|e| panic!("{e}"))).collect()
    }

    #[test]
    fn every_upstream_field_is_checked_and_named() {
        let service = config(json!({
            "name": "shop",
            "hosts": ["shop.example"],
            "origins": [{"url": "https://origin.shop.example"}, {"url": "http://10.0.0.2", "group": 1}],
            "shields": [{"url": "http://127.0.0.1:8081", "pop": "fra"}],
            "function": {"wasm": "f.wasm", "backends": {"api": "http://[::1]:9901", "cdn": "https://cdn.example"}},
        }));
        let error = check(&service, &[]).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(error.kind, ErrorKind::InvalidConfig);
        let paths: Vec<&str> = error.fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["origins[1].url", "shields[0].url", "function.backends.api"]);
        let single = config(json!({"name": "shop", "hosts": ["shop.example"], "origin": "http://127.0.0.1:9901"}));
        let error = check(&single, &[]).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(error.fields[0].path, "origin");
        assert!(
            error.message.starts_with("origin: http://127.0.0.1:9901 is in 127.0.0.0/8, loopback"),
            "{}",
            error.message
        );
        assert!(check(&single, &cidrs(&["127.0.0.1"])).is_ok());
    }
}
