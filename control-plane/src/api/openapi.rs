//! `GET /v1/openapi.json`: an OpenAPI 3.1 description of every route, written by hand. A test
//! checks it against the router's route table in both directions, so a route cannot be added
//! or removed without this document following.

use axum::Json;
use serde_json::{Value, json};

use super::error::ErrorKind;

pub async fn get() -> Json<Value> {
    Json(document())
}

/// The document.
pub fn document() -> Value {
    let mut document = json!({
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
            "/metrics": {"get": metrics_op()},
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
                        400 invalid_config names each field at fault, among them a tenant's upstream in the \
                        nodes' own network (loopback, private, link-local...) outside limits.tenant_upstream_allow.",
                       Some("ServiceConfig"), "ServiceRecord", &[400, 403, 409, 413], true),
                    &[query("tenant", "string", "Operator: the tenant that owns a new service.")],
                ),
                "get": op("getService", "One service.", None, "ServiceRecord", &[404], true),
                "delete": op("deleteService", "Delete a service; appends a service_deleted event.", None, "Deleted", &[404, 409], true),
            },
            "/v1/services/{id}/purge": {
                "parameters": [path_param("id", "Service id.")],
                "post": waiting(with_params(
                    accepted(op("purge", "Purge URLs, prefixes, tags, or all of a service, hard or soft; \
                        202 at once with the purge id and its event's seq. With wait=true: 200 with the progress once \
                        every expected node (live, or seen within nodes.offline_after) has acked, or 202 with the progress so far at the timeout.",
                        Some("PurgeBody"), "PurgeAccepted", &[400, 404, 413, 429], true)),
                    &[wait_param(), timeout_param()],
                )),
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
            "/v1/pops": {
                "get": op("listPops", "Every PoP (operator only): region, edge nodes and their probes, healthy, drained, since; \
                    the health checks' detection time; DNS answer counters.", None, "PopList", &[403], true),
            },
            "/v1/pops/{pop}/drain": {
                "parameters": [path_param("pop", "PoP name (a node's [node] pop, or one the DNS region map names).")],
                "post": op("drainPop", "Drain a PoP (operator only): DNS answers move to the next nearest PoP at once; \
                    persisted. Draining a drained PoP changes nothing.", None, "Pop", &[400, 403, 404], true),
            },
            "/v1/pops/{pop}/restore": {
                "parameters": [path_param("pop", "PoP name.")],
                "post": op("restorePop", "Restore a drained PoP (operator only). Restoring an undrained PoP changes nothing.",
                    None, "Pop", &[400, 403, 404], true),
            },
            "/service/{id}/purge/{surrogate_key}": {
                "parameters": [path_param("id", "Service id (Fastly's service id)."), path_param("surrogate_key", "The tag to purge.")],
                "post": with_params(
                    op("fastlyPurgeKey", "Fastly's purge by surrogate key.", None, "FastlyAnswer", &[400, 404, 429], true),
                    &[header("Fastly-Soft-Purge", "1: mark stale instead of removing."), wait_param(), timeout_param()],
                ),
            },
            "/service/{id}/purge": {
                "parameters": [path_param("id", "Service id.")],
                "post": with_params(
                    op("fastlyPurgeBatch", "Fastly's batch purge: keys in Surrogate-Key (space-separated) or a body {\"surrogate_keys\": [...]}; answers {key: purge id}.",
                       Some("FastlyBatch"), "Any", &[400, 404, 413, 429], true),
                    &[header("Surrogate-Key", "Keys to purge, space-separated."), header("Fastly-Soft-Purge", "1: soft."),
                      wait_param(), timeout_param()],
                ),
            },
            "/service/{id}/purge_all": {
                "parameters": [path_param("id", "Service id.")],
                "post": with_params(
                    op("fastlyPurgeAll", "Fastly's purge of a whole service.", None, "FastlyAnswer", &[404, 429], true),
                    &[header("Fastly-Soft-Purge", "1: soft."), wait_param(), timeout_param()],
                ),
            },
            "/zones/{id}/purge_cache": {
                "parameters": [path_param("id", "Service id (Cloudflare's zone id).")],
                "post": with_params(op("cloudflarePurge", "Cloudflare's purge: one of files, tags, prefixes, hosts, purge_everything.",
                    Some("CloudflarePurge"), "CloudflareAnswer", &[400, 404, 413, 429], true), &[wait_param(), timeout_param()]),
            },
        },
    });
    if let (Some(paths), Value::Object(nodes)) = (document["paths"].as_object_mut(), node_paths()) {
        paths.extend(nodes);
    }
    if let (Some(paths), Value::Object(functions)) = (document["paths"].as_object_mut(), function_paths()) {
        paths.extend(functions);
    }
    if let (Some(paths), Value::Object(domains)) = (document["paths"].as_object_mut(), domain_paths()) {
        paths.extend(domains);
    }
    if let Some(paths) = document["paths"].as_object_mut() {
        paths.insert(
            "/v1/services/{id}/acme".to_owned(),
            json!({
                "parameters": [path_param("id", "Service id.")],
                "get": op("getAcme", "Where a tls = \"auto\" service's ACME certificate stands: status (idle, \
                    ordering, valid, failed), hosts, the certificate's dates, failures in a row, the last ACME error \
                    (code and the CA's detail) and the next attempt.", None, "AcmeView", &[404], true),
            }),
        );
    }
    if let (Some(paths), Value::Object(certs)) = (document["paths"].as_object_mut(), super::openapi_certs::paths()) {
        paths.extend(certs);
    }
    document
}

/// The domain routes (proof of domain control).
fn domain_paths() -> Value {
    let service = path_param("id", "Service id.");
    let host = path_param("host", "A host pattern of the service, as its config writes it (`*.shop.example` too).");
    json!({
        "/v1/services/{id}/domains": {
            "parameters": [service.clone()],
            "get": op("listServiceDomains", "The service's domains (one per host pattern): status (pending, verified, \
                failing, lapsed), method, token, times, last error, and what to publish to prove each. Only verified \
                and failing hosts are served.", None, "DomainList", &[404], true),
        },
        "/v1/services/{id}/domains/{host}/check": {
            "parameters": [service.clone(), host.clone()],
            "post": op("checkDomain", "Look for the proof now: TXT _outpost-challenge.<host> holding the token, else \
                (exact hosts) http://<host>/.well-known/outpost-challenge/<token> answering it. 200 when proven (the \
                host reaches the nodes as the service's next version); 422 not_verified saying what was found; 409 \
                domain_claimed when another tenant's verified domain covers the host; 503 resolver_unavailable when \
                the resolver does not answer (nothing changes).", None, "CheckAnswer", &[404, 409, 422, 503], true),
        },
        "/v1/services/{id}/domains/{host}/decree": {
            "parameters": [service.clone(), host.clone()],
            "post": op("decreeDomain", "Operator: verified by the operator's word (method operator, never re-checked).",
                None, "Domain", &[403, 404, 409], true),
        },
        "/v1/services/{id}/domains/{host}/revoke": {
            "parameters": [service, host],
            "post": op("revokeDomain", "Operator: back to pending; not served until proven again.",
                None, "Domain", &[403, 404, 409], true),
        },
        "/v1/domains": {
            "get": with_params(
                op("listDomains", "Every domain (operator; a tenant sees its own), in host order.", None, "DomainList", &[400, 403], true),
                &[query("tenant", "string", "Only this tenant's."),
                  query("status", "string", "Only this status: pending, verified, failing, lapsed."),
                  query("after", "string", "The host to start after."),
                  query("limit", "integer", "Page size. Default 100; at most limits.max_page.")],
            ),
        },
    })
}

/// The schemas of the domain routes.
fn domain_schemas() -> Value {
    let time = json!({"type": ["string", "null"], "format": "date-time"});
    json!({
        "Domain": {
            "type": "object",
            "properties": {
                "host": {"type": "string"},
                "service": {"type": "string"},
                "tenant": {"type": "string"},
                "status": {"enum": ["pending", "verified", "failing", "lapsed"]},
                "method": {"enum": ["dns", "http", "operator", null]},
                "token": {"type": "string", "description": "32 hex digits: what the proof must hold."},
                "created_at": time, "verified_at": time, "checked_at": time,
                "failures": {"type": "integer", "description": "Checks in a row that found the proof gone."},
                "last_error": {"type": ["string", "null"]},
                "challenge": {"type": "object", "properties": {
                    "dns_name": {"type": "string"}, "dns_value": {"type": "string"}, "http_url": {"type": ["string", "null"]}}},
            },
        },
        "DomainList": {"type": "object", "properties": {
            "domains": {"type": "array", "items": schema_ref("Domain")},
            "next": {"type": "string", "description": "after= for the next page; absent on the last."}}},
        "CheckAnswer": {"type": "object", "properties": {"domain": schema_ref("Domain"), "outcome": {"const": "proven"}}},
    })
}

/// The edge-function routes.
fn function_paths() -> Value {
    let service = path_param("id", "Service id.");
    let mut upload = op(
        "uploadFunction",
        "Upload a .wasm (Content-Type: application/wasm; at most \
        limits.max_function_size): a component exporting wasi:http/incoming-handler@0.2.x, else 400 not_a_component, \
        missing_export or invalid_wasm saying why. Stored by SHA-256 as an immutable version; 201 with it, or 200 with \
        the existing version when the service already has these bytes. Nothing runs it until it is activated. \
        Beyond limits.max_function_versions the oldest inactive version is deleted.",
        None,
        "FunctionVersion",
        &[400, 404, 413],
        true,
    );
    upload["requestBody"] =
        json!({"required": true, "content": {"application/wasm": {"schema": {"type": "string", "format": "binary"}}}});
    if let Some(responses) = upload["responses"].as_object_mut()
        && let Some(ok) = responses.get("200").cloned()
    {
        responses.insert("201".to_owned(), ok);
    }
    let mut fetch = op(
        "getFunctionBytes",
        "The .wasm with this SHA-256 (node and operator tokens), as nodes fetch \
        what a service record's function names. application/wasm, immutable.",
        None,
        "Any",
        &[403, 404],
        true,
    );
    fetch["responses"]["200"]["content"] =
        json!({"application/wasm": {"schema": {"type": "string", "format": "binary"}}});
    json!({
        "/v1/services/{id}/functions": {
            "parameters": [service.clone()],
            "post": upload,
            "get": op("listFunctions", "The service's function versions, the active one, and the activation history.",
                None, "FunctionList", &[404], true),
        },
        "/v1/services/{id}/functions/{version}/activate": {
            "parameters": [service.clone(), path_param("version", "Function version number.")],
            "post": op("activateFunction", "Make a version active: writes a new version of the service record with \
                its function (a service_put event); nodes fetch, compile and switch. 200 with the record.",
                None, "ServiceRecord", &[404, 409], true),
        },
        "/v1/services/{id}/functions/rollback": {
            "parameters": [service],
            "post": op("rollbackFunction", "Return to the version active before the current one (a service_put \
                event); 409 no_previous_version when there is none. 200 with the record.",
                None, "ServiceRecord", &[404, 409], true),
        },
        "/v1/functions/{sha256}": {
            "parameters": [path_param("sha256", "SHA-256 of the .wasm, 64 lower-case hex digits.")],
            "get": fetch,
        },
    })
}

/// The schemas of the edge-function routes.
fn function_schemas() -> Value {
    let sha = json!({"type": "string", "pattern": "^[0-9a-f]{64}$"});
    json!({
        "FunctionRef": {
            "type": ["object", "null"],
            "description": "The function a service version runs.",
            "required": ["version", "sha256", "size"],
            "properties": {"version": {"type": "integer"}, "sha256": sha, "size": {"type": "integer"}},
        },
        "FunctionVersion": {
            "type": "object",
            "properties": {
                "service": {"type": "string"},
                "version": {"type": "integer"},
                "sha256": sha,
                "size": {"type": "integer"},
                "uploaded_at": {"type": "string", "format": "date-time"},
            },
        },
        "FunctionList": {
            "type": "object",
            "properties": {
                "service": {"type": "string"},
                "active": schema_ref("FunctionRef"),
                "versions": {"type": "array", "items": schema_ref("FunctionVersion")},
                "history": {"type": "array", "items": {"type": "integer"}, "description": "Activated versions, oldest first; the last is active."},
            },
        },
    })
}

fn wait_param() -> Value {
    query(
        "wait",
        "boolean",
        "Answer when every expected node (live, or seen within nodes.offline_after) has applied the purge: 200 with the progress, or 202 \
        with the progress so far at the timeout (any purge shape).",
    )
}

fn timeout_param() -> Value {
    query("timeout", "string", "How long wait=true waits, e.g. \"10s\". Default 10s; at most 60s.")
}

/// A purge operation that, with `wait=true`, may answer 200 with the progress.
fn waiting(mut operation: Value) -> Value {
    if let Some(responses) = operation["responses"].as_object_mut() {
        let ok = json!({"description": "wait=true: every expected node acked",
            "content": {"application/json": {"schema": schema_ref("PurgeStatus")}}});
        responses.insert("200".to_owned(), ok);
        if let Some(accepted) = responses.get_mut("202") {
            accepted["content"]["application/json"]["schema"] =
                json!({"oneOf": [schema_ref("PurgeAccepted"), schema_ref("PurgeStatus")]});
        }
    }
    operation
}

/// The node protocol's routes (docs/contracts.md, "Node protocol"); apart from `document`'s
/// `json!`, which would exceed the macro's recursion limit.
fn node_paths() -> Value {
    let node = path_param("id", "Node id: its [node] name, 1 to 64 of A-Z a-z 0-9 . _ -.");
    json!({
        "/v1/nodes": {
            "get": op("listNodes", "Every registered node (operator only): pop, region, role, addresses, live, acked seq, \
                last ack time, running function versions.", None, "NodeList", &[403], true),
        },
        "/v1/nodes/{id}": {
            "parameters": [node.clone()],
            "put": op("registerNode", "Register a node or update its registration (node token only). Idempotent. \
                409 node_id_in_use while another connection holds the node's stream (the message names its address).",
                Some("NodeRegistration"), "Registered", &[400, 403, 409, 413], true),
            "delete": no_content(with_params(op("deleteNode", "Deregister a node (operator only): its registration \
                and acks are forgotten; it leaves DNS and purge progress. 409 node_live while its stream is open, \
                unless force=true (which ends the stream).", None, "Any", &[400, 403, 404, 409], true),
                &[query("force", "boolean", "Deregister even with the stream open. Default false.")])),
        },
        "/v1/nodes/{id}/drain": {
            "parameters": [node.clone()],
            "post": op("drainNode", "Drain one node (operator only): DNS leaves its address out; it keeps \
                following the log. Persisted. 200 with the node.", None, "NodeView", &[400, 403, 404], true),
        },
        "/v1/backup": {
            "post": op("backup", "Write a consistent copy of the store, taken while it serves, to a new file on the \
                control plane's host (operator only; never over an existing file). Restore: stop the control plane, \
                put the copy in place of the data file, start it.", Some("Backup"), "BackupDone", &[400, 403, 413], true),
        },
        "/v1/nodes/{id}/restore": {
            "parameters": [node.clone()],
            "post": op("restoreNode", "Undo a node drain (operator only). 200 with the node.", None, "NodeView",
                &[400, 403, 404], true),
        },
        "/v1/nodes/{id}/stream": {
            "parameters": [node.clone()],
            "get": with_params(op("nodeStream", "The node's stream (node token only): application/x-ndjson, one \
                StreamMessage per line, never ending by itself. A snapshot first when after is 0, compacted away, or \
                beyond the head (resync when after > 0); else the events after it; then each new event in order, \
                and a heartbeat every nodes.heartbeat_interval. One stream per node: while one is open, another \
                gets 409 node_id_in_use.",
                None, "StreamMessage", &[400, 403, 404, 409, 503], true),
                &[query("after", "integer", "The last seq the node applied and persisted. Default 0 (nothing).")]),
        },
        "/v1/nodes/{id}/ack": {
            "parameters": [node],
            "post": no_content(op("ackNode", "The node applied and persisted every event up to seq (node token only); \
                204. A lower seq than the last is ignored; one beyond the head is refused.",
                Some("Ack"), "Any", &[400, 403, 404], true)),
        },
    })
}

/// `operation` answering 204 (no body) instead of 200.
fn no_content(mut operation: Value) -> Value {
    if let Some(responses) = operation["responses"].as_object_mut()
        && responses.remove("200").is_some()
    {
        responses.insert("204".to_owned(), json!({"description": "Recorded"}));
    }
    operation
}

/// The schemas of the node protocol.
fn node_schemas() -> Value {
    let label = json!({"type": ["string", "null"], "pattern": "^[A-Za-z0-9._-]{1,64}$"});
    let addr = json!({"type": "string", "description": "IP:port"});
    json!({
        "NodeRegistration": {
            "type": "object",
            "additionalProperties": false,
            "required": ["role", "addresses"],
            "properties": {
                "pop": label,
                "region": label,
                "role": {"type": "string", "enum": ["edge", "shield"]},
                "addresses": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["admin"],
                    "properties": {"http": addr, "https": addr, "admin": addr},
                },
            },
        },
        "NodeRecord": {"allOf": [schema_ref("NodeRegistration"), {"type": "object", "properties": {
            "id": {"type": "string"}, "registered_at": {"type": "string", "format": "date-time"}}}]},
        "Registered": {"type": "object", "properties": {"node": schema_ref("NodeRecord"), "head": {"type": "integer"},
            "log": {"type": "string", "description": "The event log's identity (16 hex digits): a node that followed \
                another log starts over from a snapshot."}}},
        "NodeList": {"type": "object", "properties": {"head": {"type": "integer"}, "nodes": {"type": "array", "items":
            schema_ref("NodeView")}}},
        "Backup": {"type": "object", "additionalProperties": false, "required": ["path"], "properties": {
            "path": {"type": "string", "description": "Absolute path on the control plane's host."}}},
        "BackupDone": {"type": "object", "properties": {"path": {"type": "string"}, "records": {"type": "integer"}}},
        "NodeView": {"allOf": [schema_ref("NodeRecord"), {"type": "object", "properties": {
            "live": {"type": "boolean", "description": "Stream connected, or dropped less than nodes.grace ago."},
            "connected": {"type": "boolean"},
            "acked": {"type": "integer"},
            "acked_at": {"type": ["string", "null"], "format": "date-time"},
            "last_seen": {"type": "string", "format": "date-time",
                "description": "Last registration, ack or open stream (kept across control-plane restarts)."},
            "expected": {"type": "boolean", "description": "Seen within nodes.offline_after: purges wait for it."},
            "reconnecting": {"type": "boolean",
                "description": "No stream yet since the control plane started, within nodes.startup_grace."},
            "peer": {"type": ["string", "null"], "description": "IP:port of the connection holding its stream."},
            "drained_at": {"type": ["string", "null"], "format": "date-time"},
            "functions": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "Service id → \"<version>:<sha256 first 12>\" of the function it runs, from its last ack."},
        }}]},
        "StreamMessage": {"oneOf": [
            {"type": "object", "required": ["snapshot"], "properties": {"snapshot": {"type": "object", "properties": {
                "seq": {"type": "integer"},
                "services": {"type": "array", "items": schema_ref("ServiceRecord")},
                "resync": {"type": "boolean", "description": "Soft-purge everything served from the control plane."},
            }}}},
            {"type": "object", "required": ["event"], "properties": {"event": schema_ref("Event")}},
            {"type": "object", "required": ["heartbeat"], "properties": {"heartbeat": {"type": "object", "properties": {"head": {"type": "integer"}}}}},
        ]},
        "Ack": {"type": "object", "additionalProperties": false, "required": ["seq"], "properties": {
            "seq": {"type": "integer", "minimum": 0},
            "functions": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "Service id → \"<version>:<sha256 first 12>\" of each function the node runs."},
        }},
    })
}

/// An operation answering 200 with `schema`, plus the listed error statuses (and 401 when
/// it needs a token).
pub(super) fn op(id: &str, summary: &str, body: Option<&str>, schema: &str, errors: &[u16], auth: bool) -> Value {
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

/// `GET /metrics`: Prometheus text, not JSON.
fn metrics_op() -> Value {
    let mut operation = op(
        "metrics",
        "The control plane in the Prometheus text format (operator only): API answers by status class, \
            purges, the log's head, nodes and their acknowledged numbers, PoP health and drains, DNS queries.",
        None,
        "Any",
        &[403],
        true,
    );
    operation["responses"]["200"]["content"] = json!({"text/plain": {"schema": {"type": "string"}}});
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

pub(super) fn with_params(mut operation: Value, params: &[Value]) -> Value {
    operation["parameters"] = Value::Array(params.to_vec());
    operation
}

pub(super) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

pub(super) fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

pub(super) fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": kind}})
}

fn header(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": false, "description": description, "schema": {"type": "string"}})
}

fn components() -> Value {
    // Every code the API answers with: one per error kind, so none can be left out here.
    let codes: Vec<&str> = ErrorKind::ALL.iter().map(|kind| kind.code()).collect();
    let string_list = json!({"type": "array", "items": {"type": "string"}});
    let time = json!({"type": "string", "format": "date-time"});
    let mut components = json!({
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An operator's, a tenant's, or the nodes' token."},
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
                        "code": {"type": "string", "enum": codes},
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
                    "function": schema_ref("FunctionRef"),
                    "verified_hosts": {"type": "array", "items": {"type": "string"},
                        "description": "The hosts of config.hosts nodes serve: those whose domain control is proven."},
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
                    "status": {"type": "string", "enum": ["pending", "complete"]},
                    "nodes": {"type": "object", "description": "Every expected node (live, or seen within \
                        nodes.offline_after), and any other that acked, by id.",
                        "additionalProperties": {"type": "object", "properties": {
                            "pop": {"type": ["string", "null"]}, "live": {"type": "boolean"}, "acked": {"type": "boolean"},
                            "ms": {"type": ["integer", "null"], "description": "From the purge's creation to the node's ack."}}}},
                    "pops": {"type": "object", "description": "By PoP: nodes, acked, max_ms.",
                        "additionalProperties": {"type": "object", "properties": {
                            "nodes": {"type": "integer"}, "acked": {"type": "integer"}, "max_ms": {"type": ["integer", "null"]}}}},
                    "pending": {"type": "array", "items": {"type": "string"}, "description": "Expected nodes (live, or \
                        seen within nodes.offline_after, across control-plane restarts) that have not acked."},
                    "offline": {"type": "array", "items": {"type": "string"}, "description": "Registered nodes gone \
                        longer than nodes.offline_after that have not acked: not waited for; they resync before serving."},
                    "complete": {"type": "boolean", "description": "Every expected node has acked."},
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
    });
    if let (Some(schemas), Value::Object(pops)) = (components["schemas"].as_object_mut(), pop_schemas()) {
        schemas.extend(pops);
    }
    if let (Some(schemas), Value::Object(nodes)) = (components["schemas"].as_object_mut(), node_schemas()) {
        schemas.extend(nodes);
    }
    if let (Some(schemas), Value::Object(functions)) = (components["schemas"].as_object_mut(), function_schemas()) {
        schemas.extend(functions);
    }
    if let (Some(schemas), Value::Object(domains)) = (components["schemas"].as_object_mut(), domain_schemas()) {
        schemas.extend(domains);
    }
    if let Some(schemas) = components["schemas"].as_object_mut() {
        let at = json!({"type": "string", "format": "date-time"});
        schemas.insert(
            "AcmeView".to_owned(),
            json!({
                "type": "object",
                "required": ["service", "tls", "hosts", "failures"],
                "properties": {
                    "service": {"type": "string"},
                    "tls": {"enum": ["auto", "manual"]},
                    "status": {"enum": ["idle", "ordering", "valid", "failed"]},
                    "hosts": {"type": "array", "items": {"type": "string"}},
                    "certificate": {"type": "object", "properties": {"not_before": at, "not_after": at, "issued_at": at}},
                    "failures": {"type": "integer"},
                    "last_error": {"type": "object", "properties": {
                        "at": at, "code": {"enum": ["account", "account_gone", "order", "validation", "finalize", "install", "timeout", "hosts", "store", "lease"]},
                        "message": {"type": "string"}}},
                    "next_attempt": at,
                },
            }),
        );
    }
    if let (Some(schemas), Value::Object(certs)) =
        (components["schemas"].as_object_mut(), super::openapi_certs::schemas())
    {
        schemas.extend(certs);
    }
    components
}

/// The schemas of `/v1/pops` (apart: one `json!` of everything exceeds the macro's recursion limit).
fn pop_schemas() -> Value {
    json!({
        "Pop": {
            "type": "object",
            "required": ["pop", "healthy", "drained", "nodes"],
            "properties": {
                "pop": {"type": "string"},
                "region": {"type": ["string", "null"]},
                "healthy": {"type": "boolean", "description": "At least one edge node passes its /healthz probe and holds its stream."},
                "drained": {"type": "boolean"},
                "since": {"type": ["string", "null"], "format": "date-time", "description": "When healthy or drained last changed."},
                "drained_at": {"type": ["string", "null"], "format": "date-time"},
                "nodes": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "address": {"type": ["string", "null"], "description": "The IP DNS answers with."},
                        "admin": {"type": "string"},
                        "healthy": {"type": "boolean"},
                        "probe": {"type": "string", "enum": ["unknown", "up", "down"]},
                        "live": {"type": "boolean"},
                        "drained": {"type": "boolean", "description": "Drained by an operator: never in DNS answers."},
                        "reconnecting": {"type": "boolean", "description": "No stream yet since the control plane \
                            started, within nodes.startup_grace: counted by its probe alone."},
                        "error": {"type": ["string", "null"]},
                        "checked_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                }},
            },
        },
        "PopList": {
            "type": "object",
            "properties": {
                "pops": {"type": "array", "items": schema_ref("Pop")},
                "detection_time": {"type": "string", "description": "unhealthy_threshold × interval + timeout of [health]."},
                "dns": {"type": "object", "properties": {
                    "queries": {"type": "object", "description": "By outcome: answer, nodata, nxdomain, refused, malformed, servfail."},
                    "picks": {"type": "object", "description": "Service answers by pick: healthy, all_down, all_drained."},
                    "pops": {"type": "object", "description": "Service answers by PoP."},
                }},
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
    fn every_error_code_the_api_answers_with_is_documented() {
        let doc = document();
        let documented: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
            ["enum"]
            .as_array()
            .map(|codes| codes.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for kind in ErrorKind::ALL {
            assert!(documented.contains(&kind.code()), "{kind:?} answers {}, not in the document", kind.code());
        }
        assert_eq!(documented.len(), ErrorKind::ALL.len(), "codes the API never answers with: {documented:?}");
        for code in ["not_a_component", "missing_export", "invalid_wasm", "no_previous_version"] {
            assert!(documented.contains(&code), "{code}");
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
