//! The OpenAPI description of the certificate routes (apart from `openapi`, whose one `json!`
//! of everything exceeds the macro's recursion limit).

use serde_json::{Value, json};

use super::openapi::{op, path_param, query, schema_ref, with_params};

/// The certificate routes.
pub fn paths() -> Value {
    let service = path_param("id", "Service id.");
    let name = path_param("name", "Certificate name within the service: 1 to 64 of a-z 0-9 _ -.");
    let mut put = op(
        "putCertificate",
        "Upload (201) or replace (200) a certificate: PEM chain (leaf first) and private key. Checked: the key \
        matches the leaf, each certificate is issued by the next, each is within its validity, the leaf's names \
        cover the hosts asked for (or at least one host of the service); else 400 invalid_certificate with each \
        problem at its field (chain_pem, key_pem, hosts[i]). The key is sealed (AES-256-GCM) before it is \
        stored and never answered; appends a certificate_put event, and nodes serve it for the service's \
        hosts it covers. 409 certificate_limit beyond limits.max_certificates_per_service.",
        Some("CertificateUpload"),
        "Certificate",
        &[400, 404, 409, 413],
        true,
    );
    if let Some(responses) = put["responses"].as_object_mut()
        && let Some(ok) = responses.get("200").cloned()
    {
        responses.insert("201".to_owned(), ok);
    }
    let mut delete = op(
        "deleteCertificate",
        "Delete a certificate (204); appends a certificate_deleted event: nodes stop serving it.",
        None,
        "Any",
        &[404],
        true,
    );
    if let Some(responses) = delete["responses"].as_object_mut() {
        responses.remove("200");
        responses.insert("204".to_owned(), json!({"description": "Deleted"}));
    }
    json!({
        "/v1/services/{id}/certificates": {
            "parameters": [service.clone()],
            "get": op("listCertificates", "The service's certificates by name (never a key, nor the chain).",
                None, "CertificateList", &[404], true),
        },
        "/v1/services/{id}/certificates/{name}": {
            "parameters": [service, name],
            "put": put,
            "get": op("getCertificate", "One certificate with its chain (never its key).", None, "Certificate", &[404], true),
            "delete": delete,
        },
        "/v1/certificates": {
            "get": with_params(
                op("listAllCertificates", "Every certificate the token may see by (service, name): the operator's \
                    all, a tenant's own; names, issuer, validity, source, fingerprint.", None, "CertificateList", &[400], true),
                &[query("limit", "integer", "At most this many. Default and most: limits.max_page.")],
            ),
        },
        "/v1/nodes/{id}/certificates/{service}/{name}": {
            "parameters": [path_param("id", "Node id."), path_param("service", "Service id."),
                path_param("name", "Certificate name.")],
            "get": op("getCertificateKey", "The private key of the certificate's current version (node tokens \
                only; a token bound to another node gets 403), as a node fetches it after a certificate_put event.",
                None, "CertificateKey", &[403, 404], true),
        },
    })
}

/// The schemas of the certificate routes.
pub fn schemas() -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    let names = json!({"type": "array", "items": {"type": "string"}});
    let sha = json!({"type": "string", "pattern": "^[0-9a-f]{64}$"});
    let source = json!({"type": "string", "enum": ["upload", "acme"]});
    json!({
        "CertificateUpload": {
            "type": "object",
            "additionalProperties": false,
            "required": ["chain_pem", "key_pem"],
            "properties": {
                "chain_pem": {"type": "string", "description": "PEM certificates, leaf first (at most 10)."},
                "key_pem": {"type": "string", "description": "PEM private key: PKCS#8, PKCS#1 or SEC1."},
                "hosts": {"type": "array", "items": {"type": "string"},
                    "description": "Hosts of the service it is for; default: all it covers."},
            },
        },
        "Certificate": {
            "type": "object",
            "properties": {
                "service": {"type": "string"}, "tenant": {"type": "string"}, "name": {"type": "string"},
                "version": {"type": "integer"}, "updated_at": time, "chain_pem": {"type": "string"},
                "names": names, "issuer": {"type": "string"}, "not_before": time, "not_after": time,
                "sha256": sha, "source": source,
            },
        },
        "CertificateList": {"type": "object", "properties": {"certificates": {"type": "array", "items": schema_ref("Certificate")}}},
        "CertificateKey": {"type": "object", "properties": {
            "version": {"type": "integer"}, "sha256": {"type": "string"}, "key_pem": {"type": "string"},
        }},
    })
}
