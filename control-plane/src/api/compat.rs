//! Purge requests in the shapes users bring from Fastly and Cloudflare, mapped onto the same
//! purge as `POST /v1/services/{id}/purge`. The service id stands in for Fastly's service id
//! and Cloudflare's zone id; the token goes in `Fastly-Key` or `Authorization: Bearer` (see
//! `auth`). Answers take each product's success shape; errors keep ours.
//!
//! - Fastly: `POST /service/{id}/purge/{surrogate_key}` (one key), `POST /service/{id}/purge`
//!   (several: `Surrogate-Key: a b c`, or a body `{"surrogate_keys": [...]}`),
//!   `POST /service/{id}/purge_all`; `Fastly-Soft-Purge: 1` makes any of them soft.
//! - Cloudflare: `POST /zones/{id}/purge_cache` with `files` (URLs, or `{"url": ...}` objects
//!   whose `headers` are ignored: every variant of the URL is purged), `tags`, `prefixes`,
//!   `hosts` (everything under `host/`), or `purge_everything`. Cloudflare has no soft purge.
//!
//! Each also takes our `?wait=true[&timeout=10s]`: the answer is then our purge progress (200
//! when every expected node acked, 202 at the timeout), as from `POST /v1/services/{id}/purge`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use outpost_config::{PurgeRecord, PurgeTarget};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, ApiQuery, Auth, Body, parse_json};
use super::purges::{self, PurgeSpec, WaitQuery};
use super::services;

/// The answer: the product's shape at once, or our progress after waiting.
async fn answer(app: &AppState, purge: PurgeRecord, wait: Option<Duration>, shape: Value) -> Response {
    match wait {
        None => Json(shape).into_response(),
        Some(timeout) => purges::waited(app, purge, timeout).await.into_response(),
    }
}

/// `Fastly-Soft-Purge: 1`.
fn fastly_soft(headers: &HeaderMap) -> bool {
    headers.get("fastly-soft-purge").is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
}

/// `POST /service/{id}/purge/{surrogate_key}` → `{"status": "ok", "id": "..."}`.
pub async fn fastly_purge_key(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath((service, key)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let wait = query.wait()?;
    let service = services::lookup(&app, &principal, &service).await?;
    let spec = PurgeSpec {
        soft: fastly_soft(&headers),
        targets: vec![("surrogate_key".to_owned(), PurgeTarget::Tag { tag: key })],
    };
    let purge = purges::create(&app, &principal, &service, spec).await?;
    let shape = json!({"status": "ok", "id": purge.id, "seq": purge.seq});
    Ok(answer(&app, purge, wait, shape).await)
}

/// The body of Fastly's batch purge.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FastlyBatch {
    surrogate_keys: Vec<String>,
}

/// The keys of a Fastly batch purge: the `Surrogate-Key` header (space-separated), else the
/// body's `surrogate_keys`.
pub fn fastly_batch_keys(headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, ApiError> {
    if let Some(header) = headers.get("surrogate-key") {
        let header =
            header.to_str().map_err(|_| ApiError::new(ErrorKind::InvalidRequest, "Surrogate-Key is not text"))?;
        return Ok(header.split_ascii_whitespace().map(str::to_owned).collect());
    }
    if body.trim_ascii().is_empty() {
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            "no keys; send Surrogate-Key: KEY1 KEY2, or a body {\"surrogate_keys\": [...]}",
        ));
    }
    Ok(parse_json::<FastlyBatch>(body, ErrorKind::InvalidRequest)?.surrogate_keys)
}

/// `POST /service/{id}/purge` (batch) → `{"KEY": "purge id", ...}`, one purge for all keys.
pub async fn fastly_purge_batch(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(service): ApiPath<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let wait = query.wait()?;
    let service = services::lookup(&app, &principal, &service).await?;
    let keys = fastly_batch_keys(&headers, &body)?;
    let targets =
        keys.iter().enumerate().map(|(i, key)| (format!("surrogate_keys[{i}]"), PurgeTarget::Tag { tag: key.clone() }));
    let spec = PurgeSpec { soft: fastly_soft(&headers), targets: targets.collect() };
    let purge = purges::create(&app, &principal, &service, spec).await?;
    let shape: serde_json::Map<String, Value> = keys.into_iter().map(|key| (key, json!(purge.id))).collect();
    Ok(answer(&app, purge, wait, Value::Object(shape)).await)
}

/// `POST /service/{id}/purge_all` → `{"status": "ok"}`.
pub async fn fastly_purge_all(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(service): ApiPath<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let wait = query.wait()?;
    let service = services::lookup(&app, &principal, &service).await?;
    let spec = PurgeSpec { soft: fastly_soft(&headers), targets: vec![(String::new(), PurgeTarget::All)] };
    let purge = purges::create(&app, &principal, &service, spec).await?;
    let shape = json!({"status": "ok", "id": purge.id, "seq": purge.seq});
    Ok(answer(&app, purge, wait, shape).await)
}

/// The body of Cloudflare's `purge_cache`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflarePurge {
    #[serde(default)]
    files: Vec<CloudflareFile>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    purge_everything: bool,
}

/// A `files` entry: a URL, or `{"url": ..., "headers": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CloudflareFile {
    Url(String),
    WithHeaders {
        url: String,
        #[serde(default)]
        #[allow(dead_code)]
        headers: serde_json::Map<String, Value>,
    },
}

impl CloudflarePurge {
    /// As a [`PurgeSpec`]. Cloudflare takes one kind per request; so do we, with the same
    /// field paths it would name.
    pub fn spec(self) -> Result<PurgeSpec, ApiError> {
        let kinds = [
            !self.files.is_empty(),
            !self.tags.is_empty(),
            !self.prefixes.is_empty(),
            !self.hosts.is_empty(),
            self.purge_everything,
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "one of files, tags, prefixes, hosts or purge_everything per request",
            ));
        }
        let mut targets = Vec::new();
        if self.purge_everything {
            targets.push(("purge_everything".to_owned(), PurgeTarget::All));
        }
        for (i, file) in self.files.into_iter().enumerate() {
            let url = match file {
                CloudflareFile::Url(url) | CloudflareFile::WithHeaders { url, .. } => url,
            };
            targets.push((format!("files[{i}]"), PurgeTarget::Url { url }));
        }
        for (i, tag) in self.tags.into_iter().enumerate() {
            targets.push((format!("tags[{i}]"), PurgeTarget::Tag { tag }));
        }
        for (i, prefix) in self.prefixes.into_iter().enumerate() {
            targets.push((format!("prefixes[{i}]"), PurgeTarget::Prefix { prefix }));
        }
        for (i, host) in self.hosts.into_iter().enumerate() {
            // Everything under the host: a prefix of host + "/". A host with a path or a
            // scheme is not a host: leave it as is, and the target check names it.
            let prefix = if host.contains('/') { host } else { format!("{host}/") };
            targets.push((format!("hosts[{i}]"), PurgeTarget::Prefix { prefix }));
        }
        Ok(PurgeSpec { soft: false, targets })
    }
}

/// `POST /zones/{id}/purge_cache` → `{"success": true, "errors": [], "messages": [],
/// "result": {"id": "..."}}`.
pub async fn cloudflare_purge(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(zone): ApiPath<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let wait = query.wait()?;
    let service = services::lookup(&app, &principal, &zone).await?;
    let spec = parse_json::<CloudflarePurge>(&body, ErrorKind::InvalidRequest)?.spec()?;
    let purge = purges::create(&app, &principal, &service, spec).await?;
    let shape = json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": {"id": purge.id, "seq": purge.seq},
    });
    Ok(answer(&app, purge, wait, shape).await)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn cloudflare(body: &str) -> Result<Vec<(String, PurgeTarget)>, String> {
        let parsed =
            parse_json::<CloudflarePurge>(body.as_bytes(), ErrorKind::InvalidRequest).map_err(|e| e.message)?;
        parsed.spec().map(|s| s.targets).map_err(|e| e.message)
    }

    fn t(path: &str, target: PurgeTarget) -> (String, PurgeTarget) {
        (path.to_owned(), target)
    }

    #[test]
    fn cloudflare_bodies_map_onto_targets() {
        let url = |u: &str| PurgeTarget::Url { url: u.to_owned() };
        let prefix = |p: &str| PurgeTarget::Prefix { prefix: p.to_owned() };
        type Case<'a> = (&'a str, Result<Vec<(String, PurgeTarget)>, &'a str>);
        let cases: Vec<Case> = vec![
            (
                r#"{"files": ["https://shop.example/a", {"url": "https://shop.example/b", "headers": {"Origin": "x"}}]}"#,
                Ok(vec![t("files[0]", url("https://shop.example/a")), t("files[1]", url("https://shop.example/b"))]),
            ),
            (
                r#"{"tags": ["a", "b"]}"#,
                Ok(vec![
                    t("tags[0]", PurgeTarget::Tag { tag: "a".into() }),
                    t("tags[1]", PurgeTarget::Tag { tag: "b".into() }),
                ]),
            ),
            (r#"{"prefixes": ["shop.example/img/"]}"#, Ok(vec![t("prefixes[0]", prefix("shop.example/img/"))])),
            (r#"{"hosts": ["shop.example"]}"#, Ok(vec![t("hosts[0]", prefix("shop.example/"))])),
            (r#"{"purge_everything": true}"#, Ok(vec![t("purge_everything", PurgeTarget::All)])),
            (r#"{"purge_everything": false}"#, Ok(vec![])),
            (
                r#"{"tags": ["a"], "hosts": ["shop.example"]}"#,
                Err("one of files, tags, prefixes, hosts or purge_everything"),
            ),
            (r#"{"files": [7]}"#, Err("files[0]")),
            (r#"{"zones": []}"#, Err("unknown field `zones`")),
        ];
        for (body, expected) in cases {
            match (cloudflare(body), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{body}"),
                (Err(message), Err(fragment)) => assert!(message.contains(fragment), "{body}: {message}"),
                (got, want) => panic!("{body}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn fastly_keys_come_from_the_header_or_the_body() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            fastly_batch_keys(&headers, br#"{"surrogate_keys": ["a", "b"]}"#).ok(),
            Some(vec!["a".into(), "b".into()])
        );
        assert!(fastly_batch_keys(&headers, b"").is_err());
        headers.insert("surrogate-key", HeaderValue::from_static("k1  k2 k3"));
        assert_eq!(fastly_batch_keys(&headers, b"").ok(), Some(vec!["k1".into(), "k2".into(), "k3".into()]));
    }

    #[test]
    fn fastly_soft_purge_is_the_header_set_to_1() {
        let mut headers = HeaderMap::new();
        assert!(!fastly_soft(&headers));
        headers.insert("fastly-soft-purge", HeaderValue::from_static("1"));
        assert!(fastly_soft(&headers));
        headers.insert("fastly-soft-purge", HeaderValue::from_static("0"));
        assert!(!fastly_soft(&headers));
    }
}
