//! Purges: `POST /v1/services/{id}/purge` and `GET /v1/purges/{id}`, and [`create`], which the
//! Fastly and Cloudflare shapes (`compat`) share.
//!
//! A purge is recorded and appended to the event log at once; nodes apply it as they follow
//! the log and acknowledge its `seq`, which fills `nodes`, `pops`, `pending` and `complete`.
//! `?wait=true[&timeout=10s]` answers when every expected node (live, or seen within
//! `nodes.offline_after`, across restarts) has acked (200) or at the timeout
//! (202, with the progress so far).

use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use outpost_config::{HostPattern, PurgeId, PurgeRecord, PurgeTarget, Seq, ServiceRecord, Timestamp};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorKind, FieldError};
use super::extract::{ApiPath, ApiQuery, Auth, Body, parse_json};
use super::{AppState, services};
use crate::auth::{Principal, hex};
use crate::nodes::PurgeProgress;
use crate::store::NewPurge;

/// How long `wait=true` waits without a `timeout`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// The longest `timeout` accepted: a request held open longer is better polled with
/// `GET /v1/purges/{id}`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The query of a purge request: `?wait=true&timeout=10s`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    wait: bool,
    timeout: Option<String>,
}

impl WaitQuery {
    /// How long to wait: `None` without `wait=true`.
    pub fn wait(&self) -> Result<Option<Duration>, ApiError> {
        let timeout = match &self.timeout {
            None => DEFAULT_WAIT,
            Some(text) => outpost_config::parse_duration(text)
                .map_err(|message| ApiError::field(ErrorKind::InvalidRequest, "timeout", message))?,
        };
        if timeout > MAX_WAIT {
            return Err(ApiError::field(
                ErrorKind::InvalidRequest,
                "timeout",
                format!(
                    "{} is too long; wait at most 60s, then poll GET /v1/purges/{{id}}",
                    self.timeout.as_deref().unwrap_or("")
                ),
            ));
        }
        Ok(self.wait.then_some(timeout))
    }
}

/// What to purge, before it is checked against the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeSpec {
    pub soft: bool,
    /// Each target with the field path it came from (`urls[2]`), for errors.
    pub targets: Vec<(String, PurgeTarget)>,
}

/// The body of `POST /v1/services/{id}/purge`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    soft: bool,
}

impl PurgeBody {
    /// The body as a [`PurgeSpec`]: `all` alone, or any mix of the lists.
    pub fn spec(self) -> Result<PurgeSpec, ApiError> {
        if self.all && !(self.urls.is_empty() && self.prefixes.is_empty() && self.tags.is_empty()) {
            return Err(ApiError::field(
                ErrorKind::InvalidRequest,
                "all",
                "\"all\" purges everything; send it without urls, prefixes or tags",
            ));
        }
        let mut targets = Vec::new();
        if self.all {
            targets.push(("all".to_owned(), PurgeTarget::All));
        }
        let urls = self.urls.into_iter().enumerate().map(|(i, url)| (format!("urls[{i}]"), PurgeTarget::Url { url }));
        let prefixes = self
            .prefixes
            .into_iter()
            .enumerate()
            .map(|(i, prefix)| (format!("prefixes[{i}]"), PurgeTarget::Prefix { prefix }));
        let tags = self.tags.into_iter().enumerate().map(|(i, tag)| (format!("tags[{i}]"), PurgeTarget::Tag { tag }));
        targets.extend(urls.chain(prefixes).chain(tags));
        Ok(PurgeSpec { soft: self.soft, targets })
    }
}

/// What a purge request gets back at once (202).
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub id: PurgeId,
    pub seq: Seq,
    pub status: &'static str,
}

/// `POST /v1/services/{id}/purge[?wait=true[&timeout=10s]]`.
pub async fn post(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(service): ApiPath<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let wait = query.wait()?;
    let service = services::lookup(&app, &principal, &service).await?;
    let spec = parse_json::<PurgeBody>(&body, ErrorKind::InvalidRequest)?.spec()?;
    let purge = create(&app, &principal, &service, spec).await?;
    match wait {
        None => {
            let accepted = Accepted { id: purge.id, seq: purge.seq, status: "pending" };
            Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
        }
        Some(timeout) => Ok(waited(&app, purge, timeout).await.into_response()),
    }
}

/// Waits up to `timeout` for every expected node to ack `purge`: 200 when they have, else 202,
/// each with the progress.
pub async fn waited(app: &AppState, purge: PurgeRecord, timeout: Duration) -> (StatusCode, Json<PurgeStatus>) {
    let progress = wait_for(app, &purge, timeout).await;
    let status = if progress.complete { StatusCode::OK } else { StatusCode::ACCEPTED };
    (status, Json(PurgeStatus::new(purge, progress)))
}

/// The purge's progress once complete, or at `timeout`. Wakes on every ack and connect or
/// drop, and at least every heartbeat (a dropped node's grace may have run out).
async fn wait_for(app: &AppState, purge: &PurgeRecord, timeout: Duration) -> PurgeProgress {
    let deadline = tokio::time::Instant::now() + timeout;
    let recheck = app.nodes.settings().heartbeat_interval;
    let mut changes = app.nodes.changes();
    loop {
        changes.borrow_and_update();
        let progress = app.nodes.progress(purge, Instant::now());
        if progress.complete || tokio::time::Instant::now() >= deadline {
            return progress;
        }
        let wake = deadline.min(tokio::time::Instant::now() + recheck);
        // An error means the registry is gone (shutting down): answer with what we have.
        if let Ok(Err(_)) = tokio::time::timeout_at(wake, changes.changed()).await {
            return progress;
        }
    }
}

/// Checks `spec` against `service` and the tenant's rate, then records the purge.
pub async fn create(
    app: &AppState,
    principal: &Principal,
    service: &ServiceRecord,
    spec: PurgeSpec,
) -> Result<PurgeRecord, ApiError> {
    let hosts = service_hosts(service);
    check_targets(&spec, &hosts, app.limits.max_purge_targets)?;
    // The operator is not limited: in an incident it must be able to purge at once.
    // The bucket is in the store, shared by every replica: the rate is the tenant's across the
    // fleet, not per replica.
    if let Principal::Tenant(_) = principal {
        let now = Timestamp::from_system(SystemTime::now());
        app.store.take_purge(&service.tenant, app.purge_bucket, now).await?.map_err(ApiError::rate_limited)?;
    }
    let id = PurgeId(random_id()?);
    let purge = NewPurge {
        id,
        service: service.id.clone(),
        tenant: service.tenant.clone(),
        soft: spec.soft,
        targets: spec.targets.into_iter().map(|(_, target)| target).collect(),
    };
    let record = app.store.create_purge(purge, Timestamp::from_system(SystemTime::now())).await?;
    app.nodes.appended(record.seq);
    app.counters.purge_accepted();
    tracing::info!(service = %record.service, purge = %record.id, seq = %record.seq, by = %principal, "purge");
    Ok(record)
}

/// The host patterns of a stored service; a pattern that does not parse (never, for a
/// validated config) is skipped.
fn service_hosts(service: &ServiceRecord) -> Vec<HostPattern> {
    let hosts = service.config.get("hosts").and_then(|h| h.as_array());
    hosts.into_iter().flatten().filter_map(|h| h.as_str()?.parse().ok()).collect()
}

/// Every problem with the targets, each at its field path: none at all, too many, empty, or a
/// URL or prefix whose host is not one of the service's (a purge reaches only its own
/// service's objects, so such a target would purge nothing; saying so beats a silent no-op).
pub fn check_targets(spec: &PurgeSpec, hosts: &[HostPattern], max: usize) -> Result<(), ApiError> {
    if spec.targets.is_empty() {
        return Err(ApiError::field(
            ErrorKind::InvalidRequest,
            "",
            "nothing to purge; give urls, prefixes, tags, or all",
        ));
    }
    if spec.targets.len() > max {
        return Err(ApiError::field(
            ErrorKind::InvalidRequest,
            "",
            format!("{} targets in one purge; send at most {max} (limits.max_purge_targets)", spec.targets.len()),
        ));
    }
    let mut problems = Vec::new();
    for (path, target) in &spec.targets {
        if let Err(message) = check_target(target, hosts) {
            problems.push(FieldError { path: path.clone(), message });
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ApiError::fields(ErrorKind::InvalidRequest, problems)) }
}

/// Longest URL, prefix or tag accepted.
const MAX_TARGET_LEN: usize = 4096;

fn check_target(target: &PurgeTarget, hosts: &[HostPattern]) -> Result<(), String> {
    let (text, kind) = match target {
        PurgeTarget::All => return Ok(()),
        PurgeTarget::Tag { tag } => (tag, "tag"),
        PurgeTarget::Url { url } => (url, "URL"),
        PurgeTarget::Prefix { prefix } => (prefix, "prefix"),
    };
    if text.is_empty() || text.len() > MAX_TARGET_LEN {
        return Err(format!("a {kind} of 1 to {MAX_TARGET_LEN} bytes"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{text:?} has whitespace or control characters; a {kind} has none"));
    }
    if let PurgeTarget::Tag { .. } = target {
        return Ok(());
    }
    let host = url_host(text).ok_or_else(|| {
        format!("{text:?} is not a host and path, e.g. \"shop.example/images/\" or \"https://shop.example/a?x=1\"")
    })?;
    if hosts.iter().any(|pattern| pattern.matches(&host)) {
        Ok(())
    } else {
        Err(format!("host \"{host}\" is not one of this service's hosts"))
    }
}

/// The host of `scheme://host[:port]/path` or `host[:port]/path`, lower-cased, without the
/// port. `None` without a `/` after the host (a bare host is ambiguous: a prefix of what?).
pub fn url_host(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or(&lower);
    let (authority, _path) = rest.split_once('/')?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    (!host.is_empty() && !host.contains(['@', '[', '?', '#'])).then(|| host.to_owned())
}

/// 128 random bits as hex: purge ids cannot be guessed (lookups check the tenant anyway).
fn random_id() -> Result<String, ApiError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| ApiError::internal("purge id", "no randomness"))?;
    Ok(hex(&bytes))
}

/// What `GET /v1/purges/{id}` (and a purge with `wait=true`) answers: the purge and its
/// progress on the nodes (`nodes`, `pops`, `pending`, `complete`).
#[derive(Debug, Serialize)]
pub struct PurgeStatus {
    #[serde(flatten)]
    record: PurgeRecord,
    /// `"complete"` once every expected node has acked, else `"pending"`.
    status: &'static str,
    #[serde(flatten)]
    progress: PurgeProgress,
}

impl PurgeStatus {
    pub fn new(record: PurgeRecord, progress: PurgeProgress) -> Self {
        let status = if progress.complete { "complete" } else { "pending" };
        Self { record, status, progress }
    }
}

/// `GET /v1/purges/{id}`. A tenant sees only its own purges (404 otherwise, as for services).
pub async fn get(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PurgeStatus>, ApiError> {
    let not_found = || ApiError::not_found(format_args!("purge \"{id}\""));
    let record = app.store.purge(&PurgeId(id.clone())).await?.ok_or_else(not_found)?;
    if principal.tenant().is_some_and(|tenant| *tenant != record.tenant) {
        return Err(not_found());
    }
    let progress = app.nodes.progress(&record, Instant::now());
    Ok(Json(PurgeStatus::new(record, progress)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<HostPattern> {
        ["shop.example", "*.cdn.shop.example"].iter().filter_map(|h| h.parse().ok()).collect()
    }

    fn spec(targets: Vec<(&str, PurgeTarget)>) -> PurgeSpec {
        PurgeSpec { soft: false, targets: targets.into_iter().map(|(p, t)| (p.to_owned(), t)).collect() }
    }

    fn url(u: &str) -> PurgeTarget {
        PurgeTarget::Url { url: u.to_owned() }
    }

    fn prefix(p: &str) -> PurgeTarget {
        PurgeTarget::Prefix { prefix: p.to_owned() }
    }

    #[test]
    fn url_hosts() {
        let cases = [
            ("https://Shop.Example/a?x=1", Some("shop.example")),
            ("http://shop.example:8080/", Some("shop.example")),
            ("shop.example/images/", Some("shop.example")),
            ("shop.example", None),
            ("https://shop.example", None),
            ("/a", None),
            ("user@shop.example/a", None),
            ("[::1]:80/a", None),
        ];
        for (text, host) in cases {
            assert_eq!(url_host(text).as_deref(), host, "{text}");
        }
    }

    #[test]
    fn targets_must_belong_to_the_service() {
        let ok = spec(vec![
            ("urls[0]", url("https://shop.example/a")),
            ("urls[1]", url("img.cdn.shop.example/b.jpg")),
            ("prefixes[0]", prefix("shop.example/images/")),
            ("tags[0]", PurgeTarget::Tag { tag: "product-42".to_owned() }),
        ]);
        assert!(check_targets(&ok, &hosts(), 10).is_ok());

        let bad = spec(vec![
            ("urls[0]", url("https://other.example/a")),
            ("urls[1]", url("shop.example")),
            ("prefixes[0]", prefix("cdn.shop.example/")),
            ("tags[0]", PurgeTarget::Tag { tag: "two words".to_owned() }),
            ("tags[1]", PurgeTarget::Tag { tag: String::new() }),
        ]);
        let error = check_targets(&bad, &hosts(), 10).err().unwrap_or_else(|| panic!("accepted"));
        let found: Vec<(&str, &str)> = error.fields.iter().map(|f| (f.path.as_str(), f.message.as_str())).collect();
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].1.contains("host \"other.example\" is not one of this service's hosts"));
        assert!(found[1].1.contains("is not a host and path"));
        assert!(found[2].1.contains("host \"cdn.shop.example\" is not one"), "{}", found[2].1);
        assert!(found[3].1.contains("whitespace"));
        assert!(found[4].1.contains("1 to 4096 bytes"));
        assert_eq!(
            found.iter().map(|f| f.0).collect::<Vec<_>>(),
            ["urls[0]", "urls[1]", "prefixes[0]", "tags[0]", "tags[1]"]
        );
    }

    #[test]
    fn counts_are_bounded() {
        let none = spec(vec![]);
        assert!(check_targets(&none, &hosts(), 10).err().is_some_and(|e| e.message.contains("nothing to purge")));
        let many = spec((0..11).map(|_| ("tags[0]", PurgeTarget::Tag { tag: "t".to_owned() })).collect());
        let error = check_targets(&many, &hosts(), 10).err().map(|e| e.message).unwrap_or_default();
        assert!(error.contains("11 targets in one purge; send at most 10"), "{error}");
    }

    #[test]
    fn the_native_body_maps_onto_targets() {
        let body: PurgeBody = serde_json::from_str(
            r#"{"urls": ["shop.example/a"], "prefixes": ["shop.example/p/"], "tags": ["t"], "soft": true}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let spec = body.spec().unwrap_or_else(|e| panic!("{e:?}"));
        assert!(spec.soft);
        let paths: Vec<&str> = spec.targets.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["urls[0]", "prefixes[0]", "tags[0]"]);

        let all: PurgeBody = serde_json::from_str(r#"{"all": true}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.spec().map(|s| s.targets).ok(), Some(vec![("all".to_owned(), PurgeTarget::All)]));

        let mixed: PurgeBody =
            serde_json::from_str(r#"{"all": true, "tags": ["t"]}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(mixed.spec().is_err());
    }
}
