//! `GET /v1/openapi.json`: an OpenAPI 3.1 description of every route, written by hand. A test
//! checks it against the router's route table in both directions, so a route cannot be added
//! or removed without this document following.

use axum::Json;
use serde_json::{Value, json};

pub async fn get() -> Json<Value> {
    Json(document())
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Outpost control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Service configs, purges and the event log nodes follow. Every error is \
                {\"error\": {\"code\", \"message\", \"fields\"?}}. A tenant's token sees only its \
                tenant's services: another tenant's answers 404, as a missing one does."
        },
        "components": components(),
        "security": [{"bearer": []}, {"fastlyKey": []}],
        "paths": {
            "/healthz": {"get": op("health", "The store answers.", None, "Health", &[], false)},
            "/v1/openapi.json": {"get": op("openapi", "This document.", None, "Any", &[], false)},
            "/v1/services": {
                "get": with_params(
                    op("listServices", "Services ordered by id: a tenant's own; the operator's all, or one tenant's.", None, "ServicePage", &[400], true),
                    &[query("after", "string", "Start after this id (the previous page's next)."),
                      query("limit", "integer", "Page size. Default 100; at most limits.max_page."),
                      query("tenant", "string", "Operator: only this tenant's services.")],
                ),
            },
            "/v1/services/{id}": {
                "parameters": [path_param("id", "Service id: 1 to 64 of a-z 0-9 _ -, unique across the CDN.")],
                "put": with_params(
                    op("putService", "Create (201) or replace (200) a service config; appends a service_put event. \
                        The body has the fields of a [[services]] table; name defaults to the id. \
                        400 invalid_config names each field at fault.",
                       Some("ServiceConfig"), "ServiceRecord", &[400, 403, 409, 413], true),
                    &[query("tenant", "string", "Operator: the tenant that owns a new service.")],
                ),
                "get": op("getService", "One service.", None, "ServiceRecord", &[404], true),
                "delete": op("deleteService", "Delete a service; appends a service_deleted event.", None, "Deleted", &[404, 409], true),
            },
            "/v1/services/{id}/purge": {
                "parameters": [path_param("id", "Service id.")],
                "post": accepted(op("purge", "Purge URLs, prefixes, tags, or all of a service, hard or soft; \
                    202 at once with the purge id and its event's seq.", Some("PurgeBody"), "PurgeAccepted", &[400, 404, 413, 429], true)),
            },
            "/v1/purges/{id}": {
                "parameters": [path_param("id", "Purge id.")],
                "get": op("getPurge", "A purge and its progress on the nodes.", None, "PurgeStatus", &[404], true),
            },
            "/v1/events": {
                "get": with_params(
                    op("listEvents", "The event log (operator only): ordered, numbered changes, as nodes follow them.", None, "EventPage", &[400, 403], true),
                    &[query("from", "integer", "First seq wanted. Default 1."),
                      query("limit", "integer", "Page size. Default 100; at most limits.max_page.")],
                ),
            },
            "/service/{id}/purge/{surrogate_key}": {
                "parameters": [path_param("id", "Service id (Fastly's service id)."), path_param("surrogate_key", "The tag to purge.")],
                "post": with_params(
                    op("fastlyPurgeKey", "Fastly's purge by surrogate key.", None, "FastlyAnswer", &[400, 404, 429], true),
                    &[header("Fastly-Soft-Purge", "1: mark stale instead of removing.")],
                ),
            },
            "/service/{id}/purge": {
                "parameters": [path_param("id", "Service id.")],
                "post": with_params(
                    op("fastlyPurgeBatch", "Fastly's batch purge: keys in Surrogate-Key (space-separated) or a body {\"surrogate_keys\": [...]}; answers {key: purge id}.",
                       Some("FastlyBatch"), "Any", &[400, 404, 413, 429], true),
                    &[header("Surrogate-Key", "Keys to purge, space-separated."), header("Fastly-Soft-Purge", "1: soft.")],
                ),
            },
            "/service/{id}/purge_all": {
                "parameters": [path_param("id", "Service id.")],
                "post": with_params(
                    op("fastlyPurgeAll", "Fastly's purge of a whole service.", None, "FastlyAnswer", &[404, 429], true),
                    &[header("Fastly-Soft-Purge", "1: soft.")],
                ),
            },
            "/zones/{id}/purge_cache": {
                "parameters": [path_param("id", "Service id (Cloudflare's zone id).")],
                "post": op("cloudflarePurge", "Cloudflare's purge: one of files, tags, prefixes, hosts, purge_everything.",
                    Some("CloudflarePurge"), "CloudflareAnswer", &[400, 404, 413, 429], true),
            },
        },
    })
}

/// An operation answering 200 with `schema`, plus the listed error statuses (and 401 when
/// it needs a token).
fn op(id: &str, summary: &str, body: Option<&str>, schema: &str, errors: &[u16], auth: bool) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(
        "200".to_owned(),
        json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(schema)}}}),
    );
    let mut statuses = errors.to_vec();
    if auth {
        statuses.push(401);
    }
    statuses.sort_unstable();
    for status in statuses {
        responses.insert(status.to_string(), json!({"$ref": "#/components/responses/Error"}));
    }
    let mut operation = json!({"operationId": id, "summary": summary, "responses": responses});
    if !auth {
        operation["security"] = json!([]);
    }
    if let Some(body) = body {
        operation["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema_ref(body)}}});
    }
    operation
}

/// `operation` answering 202 instead of 200.
fn accepted(mut operation: Value) -> Value {
    if let Some(responses) = operation["responses"].as_object_mut()
        && let Some(ok) = responses.remove("200")
    {
        responses.insert("202".to_owned(), ok);
    }
    operation
}

fn with_params(mut operation: Value, params: &[Value]) -> Value {
    operation["parameters"] = Value::Array(params.to_vec());
    operation
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": kind}})
}

fn header(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": false, "description": description, "schema": {"type": "string"}})
}

fn components() -> Value {
    let string_list = json!({"type": "array", "items": {"type": "string"}});
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An operator's or a tenant's token."},
            "fastlyKey": {"type": "apiKey", "in": "header", "name": "Fastly-Key", "description": "The same token, as Fastly's clients send it."},
        },
        "responses": {
            "Error": {"description": "An error", "content": {"application/json": {"schema": schema_ref("Error")}}},
        },
        "schemas": {
            "Any": {},
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "enum": [
                            "bad_json", "invalid_config", "invalid_request", "unauthorized", "forbidden",
                            "service_limit", "not_found", "method_not_allowed", "id_taken", "host_taken",
                            "conflict", "body_too_large", "rate_limited", "internal", "unavailable"]},
                        "message": {"type": "string"},
                        "fields": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                        }},
                    },
                }},
            },
            "Health": {"type": "object", "properties": {"status": {"const": "ok"}}},
            "ServiceConfig": {
                "type": "object",
                "description": "The fields of a [[services]] table of the node config (see the README's configuration reference), in JSON.",
                "required": ["hosts"],
                "properties": {"name": {"type": "string"}, "hosts": string_list, "origin": {"type": "string"}},
                "additionalProperties": true,
            },
            "ServiceRecord": {
                "type": "object",
                "required": ["id", "tenant", "version", "updated_at", "config"],
                "properties": {
                    "id": {"type": "string"},
                    "tenant": {"type": "string"},
                    "version": {"type": "integer", "description": "The seq of the event that wrote this version."},
                    "updated_at": time,
                    "config": schema_ref("ServiceConfig"),
                },
            },
            "ServicePage": {
                "type": "object",
                "properties": {
                    "services": {"type": "array", "items": schema_ref("ServiceRecord")},
                    "next": {"type": "string", "description": "after= for the next page; absent on the last."},
                },
            },
            "Deleted": {"type": "object", "properties": {"id": {"type": "string"}, "deleted": {"const": true}, "seq": {"type": "integer"}}},
            "PurgeBody": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "urls": {"type": "array", "items": {"type": "string"}, "description": "\"https://shop.example/a?x=1\" or \"shop.example/a?x=1\"; every Vary variant."},
                    "prefixes": {"type": "array", "items": {"type": "string"}, "description": "Host and path prefix: \"shop.example/images/\"."},
                    "tags": {"type": "array", "items": {"type": "string"}, "description": "Surrogate-Key / Cache-Tag values."},
                    "all": {"type": "boolean", "description": "Everything in the service; alone."},
                    "soft": {"type": "boolean", "description": "Mark stale instead of removing."},
                },
            },
            "PurgeAccepted": {"type": "object", "properties": {"id": {"type": "string"}, "seq": {"type": "integer"}, "status": {"const": "pending"}}},
            "PurgeStatus": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "service": {"type": "string"},
                    "tenant": {"type": "string"},
                    "seq": {"type": "integer"},
                    "created_at": time,
                    "soft": {"type": "boolean"},
                    "targets": {"type": "array", "items": {"type": "object"}},
                    "status": {"type": "string"},
                    "nodes": {"type": "object", "description": "Node name → its acknowledgement."},
                    "complete": {"type": "boolean"},
                },
            },
            "Event": {
                "type": "object",
                "required": ["seq", "at", "type"],
                "properties": {
                    "seq": {"type": "integer"},
                    "at": time,
                    "type": {"type": "string", "enum": ["service_put", "service_deleted", "purge"]},
                    "service": schema_ref("ServiceRecord"),
                    "id": {"type": "string"},
                    "tenant": {"type": "string"},
                    "purge": schema_ref("PurgeStatus"),
                },
            },
            "EventPage": {
                "type": "object",
                "properties": {
                    "events": {"type": "array", "items": schema_ref("Event")},
                    "next": {"type": "integer"},
                    "last_seq": {"type": "integer"},
                },
            },
            "FastlyAnswer": {"type": "object", "properties": {"status": {"const": "ok"}, "id": {"type": "string"}}},
            "FastlyBatch": {"type": "object", "properties": {"surrogate_keys": string_list}},
            "CloudflarePurge": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "files": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"url": {"type": "string"}, "headers": {"type": "object"}}}]}},
                    "tags": string_list,
                    "prefixes": string_list,
                    "hosts": string_list,
                    "purge_everything": {"type": "boolean"},
                },
            },
            "CloudflareAnswer": {
                "type": "object",
                "properties": {"success": {"const": true}, "errors": {"type": "array"}, "messages": {"type": "array"}, "result": {"type": "object", "properties": {"id": {"type": "string"}}}},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes;

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let doc = document();
        let Some(paths) = doc["paths"].as_object() else { panic!("no paths") };
        let routes = routes();
        for route in &routes {
            let method = route.verb.name();
            assert!(doc["paths"][route.path][method].is_object(), "{method} {} is not in the document", route.path);
        }
        for (path, item) in paths {
            let Some(item) = item.as_object() else { panic!("{path}") };
            for method in item.keys().filter(|k| *k != "parameters") {
                let routed = routes.iter().any(|r| r.path == path && r.verb.name() == method);
                assert!(routed, "the document has {method} {path}, the router does not");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, doc: &Value) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let pointer = target.trim_start_matches('#');
                        assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
                    }
                    map.values().for_each(|v| walk(v, doc));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc)),
                _ => {}
            }
        }
        let doc = document();
        walk(&doc, &doc);
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
