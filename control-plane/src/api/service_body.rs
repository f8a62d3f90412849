//! The body of `PUT /v1/services/{id}`: a service config in JSON, with the fields of a
//! `[[services]]` table, checked with `outpost-config` before anything is stored.

use outpost_config::{ServiceConfig, ServiceId};
use serde_json::Value;

use super::error::{ApiError, ErrorKind};
use super::extract::parse_json;
use super::tenant_upstreams;
use crate::auth::Principal;
use crate::dns::cidr::Cidr;

/// A config that passed every check: the JSON to store and send to nodes, and its parsed form.
#[derive(Debug)]
pub struct CheckedService {
    pub json: Value,
    pub config: ServiceConfig,
}

/// Parses and checks `body` for the service `id` on behalf of `principal`.
///
/// `name` may be left out (it is the id); when given it must be the id. Tenants may not set
/// `origin_ca`: it is a path on the nodes' disks, the operator's to choose. Nor may they point
/// an upstream at the nodes' own network, unless it is in `upstream_allow`
/// (`limits.tenant_upstream_allow`; see [`tenant_upstreams`]).
pub fn check(
    id: &ServiceId,
    body: &[u8],
    principal: &Principal,
    upstream_allow: &[Cidr],
) -> Result<CheckedService, ApiError> {
    let mut json: Value = parse_json(body, ErrorKind::InvalidConfig)?;
    let Some(object) = json.as_object_mut() else {
        return Err(ApiError::field(
            ErrorKind::InvalidConfig,
            "",
            "expected a JSON object with the fields of a [[services]] table",
        ));
    };
    match object.get("name") {
        None => {
            object.insert("name".to_owned(), Value::String(id.to_string()));
        }
        Some(Value::String(name)) if name == id.as_str() => {}
        Some(other) => {
            return Err(ApiError::field(
                ErrorKind::InvalidConfig,
                "name",
                format!("{other} is not the service id in the path (\"{id}\"); leave name out or make them equal"),
            ));
        }
    }
    if principal.tenant().is_some() && object.get("origin_ca").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::field(
            ErrorKind::InvalidConfig,
            "origin_ca",
            "a CA file on the nodes; only the operator may set it",
        ));
    }
    let function_wasm = object.get("function").and_then(|f| f.get("wasm")).is_some_and(|v| !v.is_null());
    if principal.tenant().is_some() && function_wasm {
        return Err(ApiError::field(
            ErrorKind::InvalidConfig,
            "function.wasm",
            "a path on the nodes; upload the component with POST /v1/services/{id}/functions and activate it instead",
        ));
    }
    // Round-trip through the text: deserializing from a `Value` would report no field paths.
    // A `function` table without `wasm` (env, backends, limits) is checked as if the deployed
    // component's path were there: nodes fill it in with the file they fetched.
    let text = match parse_form(&json, function_wasm) {
        Some(with_wasm) => with_wasm.to_string(),
        None => json.to_string(),
    };
    let config: ServiceConfig = parse_json(text.as_bytes(), ErrorKind::InvalidConfig)?;
    outpost_config::validate_service(&config)?;
    if principal.tenant().is_some() {
        tenant_upstreams::check(&config, upstream_allow)?;
    }
    Ok(CheckedService { json, config })
}

/// `json` with a placeholder `function.wasm` when it has a `function` table without one.
fn parse_form(json: &Value, has_wasm: bool) -> Option<Value> {
    if has_wasm || !json.get("function").is_some_and(Value::is_object) {
        return None;
    }
    let mut with_wasm = json.clone();
    with_wasm["function"]["wasm"] = Value::String(DEPLOYED_WASM.to_owned());
    Some(with_wasm)
}

/// The placeholder path [`check`] parses a `function` table with (never stored).
const DEPLOYED_WASM: &str = "deployed.wasm";

#[cfg(test)]
mod tests {
    use outpost_config::TenantId;
    use serde_json::json;

    use super::*;

    fn shop() -> ServiceId {
        ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}"))
    }

    fn tenant() -> Principal {
        Principal::Tenant(TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn a_valid_config_gets_its_name_from_the_path() {
        let body = json!({"hosts": ["shop.example"], "origin": "https://o.example", "default_ttl": "1m"});
        let checked = check(&shop(), body.to_string().as_bytes(), &tenant(), &[]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(checked.json["name"], "shop");
        assert_eq!(checked.config.name, "shop");
        assert_eq!(checked.config.hosts[0].to_string(), "shop.example");
    }

    #[test]
    fn every_problem_names_its_field() {
        let cases: Vec<(Value, ErrorKind, &str, &str)> = vec![
            (json!([]), ErrorKind::InvalidConfig, "", "expected a JSON object"),
            (
                json!({"name": "other", "hosts": ["a.example"], "origin": "http://o"}),
                ErrorKind::InvalidConfig,
                "name",
                "not the service id",
            ),
            (
                json!({"hosts": ["a.example"], "origin": "http://o", "origin_ca": "/etc/ca.pem"}),
                ErrorKind::InvalidConfig,
                "origin_ca",
                "only the operator",
            ),
            (
                json!({"hosts": ["a.example"], "orign": "http://o"}),
                ErrorKind::InvalidConfig,
                "orign",
                "unknown field `orign`",
            ),
            (
                json!({"hosts": ["a.example"], "origin": "ftp://o"}),
                ErrorKind::InvalidConfig,
                "origin",
                "unsupported scheme",
            ),
            (
                json!({"hosts": ["a.example"], "origin": "http://o", "retry": {"max_retries": "x"}}),
                ErrorKind::InvalidConfig,
                "retry.max_retries",
                "expected a whole number",
            ),
            (
                json!({"hosts": ["a.example"], "origin": "http://o", "retry": {"max_retries": 11}}),
                ErrorKind::InvalidConfig,
                "retry.max_retries",
                "use 0 to 10",
            ),
            (json!({"hosts": [], "origin": "http://o"}), ErrorKind::InvalidConfig, "hosts", "list the hosts"),
            (json!({"hosts": ["a.example"]}), ErrorKind::InvalidConfig, "origin", "missing"),
        ];
        for (body, kind, path, fragment) in cases {
            let error = check(&shop(), body.to_string().as_bytes(), &tenant(), &[]).err();
            let Some(error) = error else { panic!("{body}: accepted") };
            assert_eq!(error.kind, kind, "{body}: {error:?}");
            assert_eq!(error.fields.first().map(|f| f.path.as_str()), Some(path), "{body}: {error:?}");
            assert!(error.message.contains(fragment), "{body}: {}", error.message);
        }
    }

    #[test]
    fn a_function_table_is_settings_only_for_tenants() {
        let settings = json!({"hosts": ["a.example"], "origin": "https://o", "function": {"env": {"MODE": "a"}, "cpu_time": "20ms"}});
        let checked =
            check(&shop(), settings.to_string().as_bytes(), &tenant(), &[]).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(checked.json["function"].get("wasm").is_none(), "the stored form has no path");
        assert_eq!(checked.config.function.map(|f| f.env.len()), Some(1));
        let path = json!({"hosts": ["a.example"], "origin": "https://o", "function": {"wasm": "/etc/passwd"}});
        let error = check(&shop(), path.to_string().as_bytes(), &tenant(), &[]).err();
        assert_eq!(error.and_then(|e| e.fields.first().map(|f| f.path.clone())).as_deref(), Some("function.wasm"));
        let limits = json!({"hosts": ["a.example"], "origin": "https://o", "function": {"cpu_time": "0s"}});
        let error = check(&shop(), limits.to_string().as_bytes(), &tenant(), &[]).err();
        assert_eq!(error.and_then(|e| e.fields.first().map(|f| f.path.clone())).as_deref(), Some("function.cpu_time"));
    }

    #[test]
    fn the_operator_may_set_origin_ca() {
        let body = json!({"hosts": ["a.example"], "origin": "https://o", "origin_ca": "/etc/outpost/ca.pem"});
        assert!(check(&shop(), body.to_string().as_bytes(), &Principal::Operator, &[]).is_ok());
    }

    #[test]
    fn a_tenant_may_not_aim_the_nodes_at_their_own_network() {
        let cases = [
            (json!({"hosts": ["a.example"], "origin": "http://127.0.0.1:9901"}), "origin", "loopback"),
            (json!({"hosts": ["a.example"], "origin": "http://localhost:9901"}), "origin", "the node itself"),
            (
                json!({"hosts": ["a.example"], "origins": [{"url": "https://o.example"}, {"url": "http://192.168.1.5"}]}),
                "origins[1].url",
                "private (RFC 1918)",
            ),
            (
                json!({"hosts": ["a.example"], "origin": "https://o.example", "shields": [{"url": "http://[fe80::1]", "pop": "fra"}]}),
                "shields[0].url",
                "link-local",
            ),
            (
                json!({"hosts": ["a.example"], "origin": "https://o.example", "function": {"backends": {"api": "http://169.254.169.254"}}}),
                "function.backends.api",
                "link-local",
            ),
        ];
        for (body, path, fragment) in cases {
            let bytes = body.to_string();
            let error = check(&shop(), bytes.as_bytes(), &tenant(), &[]).err();
            let Some(error) = error else { panic!("{body}: accepted") };
            assert_eq!(error.kind, ErrorKind::InvalidConfig, "{body}");
            assert_eq!(error.fields.first().map(|f| f.path.as_str()), Some(path), "{body}: {error:?}");
            assert!(error.message.contains(fragment), "{body}: {}", error.message);
            // The operator is not restricted.
            assert!(check(&shop(), bytes.as_bytes(), &Principal::Operator, &[]).is_ok(), "{body}");
        }
        let allow: Vec<Cidr> = ["127.0.0.0/8", "::1/128"].iter().filter_map(|c| c.parse().ok()).collect();
        for origin in ["http://127.0.0.1:9901", "http://localhost:9901", "http://[::1]:80"] {
            let body = json!({"hosts": ["a.example"], "origin": origin}).to_string();
            assert!(check(&shop(), body.as_bytes(), &tenant(), &allow).is_ok(), "{origin} is allowed");
        }
    }

    #[test]
    fn bad_json_is_its_own_error() {
        let error = check(&shop(), b"{\"hosts\": [", &tenant(), &[]).err().map(|e| e.kind);
        assert_eq!(error, Some(ErrorKind::BadJson));
    }
}
