//! `/v1/services/{id}/domains` and `/v1/domains`: where each host's proof of control stands,
//! a check on demand, and the operator's decree and revocation.
//!
//! A tenant sees and checks its own services' domains only (another's service is 404). A check
//! answers 200 when the proof was found, 422 `not_verified` naming what was looked up and
//! found, 409 `domain_claimed` when another tenant's verified domain covers the host, and 503
//! `resolver_unavailable` when the resolver does not answer (nothing served changes then).

use axum::Json;
use axum::extract::State;
use outpost_config::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, ApiQuery, Auth};
use super::services::{lookup, page_limit};
use crate::auth::Principal;
use crate::domains::{DomainMethod, DomainRecord, DomainStatus, Outcome};
use crate::store::DomainQuery;

/// A domain as the API shows it: the record, and what to publish to prove it.
#[derive(Debug, Serialize)]
pub struct DomainView {
    #[serde(flatten)]
    pub record: DomainRecord,
    pub challenge: Challenge,
}

/// What proves control of a domain.
#[derive(Debug, Serialize)]
pub struct Challenge {
    /// A TXT record at this name...
    pub dns_name: String,
    /// ...holding this value (the token).
    pub dns_value: String,
    /// Or this URL answering the token (exact hosts only; `null` for a wildcard).
    pub http_url: Option<String>,
}

impl From<DomainRecord> for DomainView {
    fn from(record: DomainRecord) -> Self {
        let challenge = Challenge {
            dns_name: record.challenge_name(),
            dns_value: record.token.clone(),
            http_url: record.challenge_url(),
        };
        Self { record, challenge }
    }
}

#[derive(Debug, Serialize)]
pub struct DomainList {
    domains: Vec<DomainView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// `GET /v1/services/{id}/domains`.
pub async fn list(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DomainList>, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let domains = app.store.domains(DomainQuery::service(service.id)).await?;
    Ok(Json(DomainList { domains: domains.into_iter().map(DomainView::from).collect(), next: None }))
}

/// `?tenant=&status=&after=&limit=` on `GET /v1/domains`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    tenant: Option<String>,
    status: Option<DomainStatus>,
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/domains`: the operator sees every tenant's (or one's with `?tenant=`); a tenant
/// its own. `?status=pending` filters.
pub async fn list_all(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<DomainList>, ApiError> {
    let limit = page_limit(query.limit, app.limits.max_page)?;
    let asked = query.tenant.as_deref().map(TenantId::parse).transpose();
    let asked = asked.map_err(|why| ApiError::field(ErrorKind::InvalidRequest, "tenant", why))?;
    let tenant = match (&principal, asked) {
        (Principal::Tenant(own), Some(asked)) if asked != *own => {
            return Err(ApiError::new(ErrorKind::Forbidden, "a tenant's token lists its own domains only"));
        }
        (Principal::Tenant(own), _) => Some(own.clone()),
        (Principal::Operator, asked) => asked,
        (Principal::Node(_), _) => return Err(ApiError::new(ErrorKind::Forbidden, "a node token lists no domains")),
    };
    let mut domains = Vec::new();
    let mut after = query.after.clone();
    // A status filter reads pages until the page is full or the domains end.
    loop {
        let page = app.store.domains(DomainQuery { service: None, tenant: tenant.clone(), after, limit }).await?;
        let ended = page.len() < limit;
        after = page.last().map(|d| d.host.clone());
        domains.extend(page.into_iter().filter(|d| query.status.is_none_or(|s| s == d.status)));
        if ended || domains.len() >= limit {
            break;
        }
    }
    domains.truncate(limit);
    let next = if domains.len() == limit { domains.last().map(|d| d.host.clone()) } else { None };
    Ok(Json(DomainList { domains: domains.into_iter().map(DomainView::from).collect(), next }))
}

/// The domain `host` of service `id`, if the caller may see the service; else 404.
async fn find(app: &AppState, principal: &Principal, id: &str, host: &str) -> Result<DomainRecord, ApiError> {
    let service = lookup(app, principal, id).await?;
    let host = host.to_ascii_lowercase();
    match app.store.domain(&host).await? {
        Some(domain) if domain.service == service.id => Ok(domain),
        _ => Err(ApiError::not_found(format_args!("domain \"{host}\" of service \"{}\"", service.id))),
    }
}

/// What a check answers with 200.
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    domain: DomainView,
    /// `proven`.
    outcome: &'static str,
}

/// `POST /v1/services/{id}/domains/{host}/check`: looks for the proof now.
pub async fn check(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath((id, host)): ApiPath<(String, String)>,
) -> Result<Json<CheckAnswer>, ApiError> {
    let domain = find(&app, &principal, &id, &host).await?;
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let checked = app.domains.check(app.store.as_ref(), &domain, now).await?;
    if let Some(event) = &checked.event {
        app.nodes.appended(event.seq);
    }
    if let Some(collision) = checked.collision {
        return Err(ApiError::new(ErrorKind::DomainClaimed, collision.to_string()));
    }
    let status = checked.record.status;
    match checked.outcome {
        Outcome::Proven(_) => Ok(Json(CheckAnswer { domain: checked.record.into(), outcome: "proven" })),
        Outcome::Refuted(why) => {
            Err(ApiError::new(ErrorKind::NotVerified, format!("{} is not verified ({status}): {why}", domain.host)))
        }
        Outcome::Inconclusive(why) => Err(ApiError::new(
            ErrorKind::ResolverUnavailable,
            format!("{} could not be checked; it stays {status}: {why}", domain.host),
        )),
    }
}

/// `POST /v1/services/{id}/domains/{host}/decree` (operator): verified by the operator's word.
pub async fn decree(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath((id, host)): ApiPath<(String, String)>,
) -> Result<Json<DomainView>, ApiError> {
    operator_only(&principal, "decree")?;
    let domain = find(&app, &principal, &id, &host).await?;
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let next = DomainRecord {
        status: DomainStatus::Verified,
        method: Some(DomainMethod::Operator),
        verified_at: Some(now),
        checked_at: Some(now),
        failures: 0,
        last_error: None,
        ..domain
    };
    write(&app, next, now, &principal, "domain_decreed").await
}

/// `POST /v1/services/{id}/domains/{host}/revoke` (operator): back to pending, not served
/// until proven again.
pub async fn revoke(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath((id, host)): ApiPath<(String, String)>,
) -> Result<Json<DomainView>, ApiError> {
    operator_only(&principal, "revoke")?;
    let domain = find(&app, &principal, &id, &host).await?;
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let next = DomainRecord {
        status: DomainStatus::Pending,
        method: None,
        verified_at: None,
        failures: 0,
        last_error: Some("revoked by the operator".to_owned()),
        ..domain
    };
    write(&app, next, now, &principal, "domain_revoked").await
}

fn operator_only(principal: &Principal, what: &str) -> Result<(), ApiError> {
    match principal {
        Principal::Operator => Ok(()),
        _ => Err(ApiError::new(ErrorKind::Forbidden, format!("only the operator may {what} a domain"))),
    }
}

async fn write(
    app: &AppState,
    next: DomainRecord,
    now: Timestamp,
    principal: &Principal,
    what: &'static str,
) -> Result<Json<DomainView>, ApiError> {
    let event = app.store.put_domain(next.clone(), now).await?;
    if let Some(event) = &event {
        app.nodes.appended(event.seq);
    }
    tracing::info!(host = %next.host, service = %next.service, status = %next.status, by = %principal, "{what}");
    Ok(Json(next.into()))
}
