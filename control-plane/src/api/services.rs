//! `/v1/services`: create, replace, read, list and delete service configs.
//!
//! Service ids are global (nodes route and purge by them), like host names. A tenant asking
//! for another tenant's service gets 404, as if it did not exist (GitHub answers private
//! repositories the same way), except on `PUT`, where taking the id is refused with 409
//! `id_taken`: a registry of unique names cannot hide that a name is taken (S3's bucket names
//! work the same way).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use outpost_config::{ServiceId, ServiceRecord, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorKind};
use super::extract::{ApiPath, ApiQuery, Auth, Body};
use super::{AppState, service_body};
use crate::auth::Principal;
use crate::store::{DomainQuery, Expect, ServicePut, ServiceQuery};

/// `?tenant=` on `PUT`: the operator names the owner of a new service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    tenant: Option<String>,
}

/// `PUT /v1/services/{id}`: 201 with the record when created, 200 when replaced.
pub async fn put(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PutQuery>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let id = ServiceId::parse(&id).map_err(|why| ApiError::field(ErrorKind::InvalidRequest, "id", why))?;
    let checked = service_body::check(&id, &body, &principal, &app.tenant_upstream_allow)?;
    let current = app.store.service(&id).await?;
    let tenant = owner(&principal, query.tenant.as_deref(), current.as_ref())?;
    let expect = match &current {
        Some(current) if current.tenant != tenant => {
            // The operator may know who holds it; a tenant learns only that it is taken.
            let message = match principal {
                Principal::Operator => format!(
                    "service \"{id}\" belongs to tenant {}; delete it first to give the id to {tenant}",
                    current.tenant
                ),
                Principal::Tenant(_) | Principal::Node(_) => {
                    format!("service id \"{id}\" is taken; ids are unique across the CDN, choose another")
                }
            };
            return Err(ApiError::new(ErrorKind::IdTaken, message));
        }
        Some(current) => Expect::Version(current.version),
        None => {
            let owned = app.store.count_services(&tenant).await?;
            if owned >= app.limits.max_services_per_tenant {
                return Err(ApiError::new(
                    ErrorKind::ServiceLimit,
                    format!(
                        "tenant {tenant} has {owned} services, the most allowed (limits.max_services_per_tenant); delete one first"
                    ),
                ));
            }
            Expect::Absent
        }
    };
    let hosts: Vec<String> = checked.config.hosts.iter().map(ToString::to_string).collect();
    let decreed = claim_new_hosts(&app, &id, &tenant, &hosts, current.is_some()).await?;
    // A config change keeps the active function: only activate and rollback change it.
    let function = current.as_ref().and_then(|c| c.function.clone());
    let put = ServicePut { id: id.clone(), tenant, config: checked.json, hosts, expect, function, decreed };
    let event = app.store.put_service(put, Timestamp::from_system(std::time::SystemTime::now())).await?;
    app.nodes.appended(event.seq);
    let outpost_config::Change::ServicePut { service } = event.change else {
        return Err(ApiError::internal("put service", "the store answered with another kind of event"));
    };
    tracing::info!(service = %id, seq = %event.seq, by = %principal, "service_put");
    let status = if expect == Expect::Absent { StatusCode::CREATED } else { StatusCode::OK };
    let location = format!("/v1/services/{id}");
    Ok((status, [(header::LOCATION, location)], Json(service)).into_response())
}

/// Checks the hosts new to the service against every other tenant's claims (409
/// `domain_claimed` naming the domain, at the host's field path); returns those the config
/// says the tenant owns (`domains.owned`), verified at once. Hosts the service already has
/// keep their domains as they are.
async fn claim_new_hosts(
    app: &AppState,
    id: &ServiceId,
    tenant: &TenantId,
    hosts: &[String],
    exists: bool,
) -> Result<Vec<String>, ApiError> {
    let known = if exists { app.store.domains(DomainQuery::service(id.clone())).await? } else { Vec::new() };
    let new: Vec<(usize, &String)> =
        hosts.iter().enumerate().filter(|(_, h)| !known.iter().any(|d| d.host == **h && d.tenant == *tenant)).collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let claims = app.domains.claims(app.store.as_ref()).await?;
    for (i, host) in &new {
        if let Some(collision) = app.domains.collision(tenant, host, &claims) {
            tracing::info!(service = %id, %tenant, host = %host, domain = %collision.domain, "host refused: domain claimed");
            let mut error = ApiError::field(ErrorKind::DomainClaimed, format!("hosts[{i}]"), collision.to_string());
            error.message = format!("hosts[{i}]: {collision}; prove control of it, or ask the operator");
            return Err(error);
        }
    }
    Ok(new.into_iter().filter(|(_, h)| app.domains.owned_by(tenant, h)).map(|(_, h)| h.clone()).collect())
}

/// Who owns the service after a `PUT`: a tenant's token acts for its tenant; the operator
/// keeps the current owner or names one with `?tenant=`.
fn owner(principal: &Principal, asked: Option<&str>, current: Option<&ServiceRecord>) -> Result<TenantId, ApiError> {
    let asked = asked
        .map(TenantId::parse)
        .transpose()
        .map_err(|why| ApiError::field(ErrorKind::InvalidRequest, "tenant", why))?;
    match (principal, asked, current) {
        (Principal::Tenant(own), Some(asked), _) if asked != *own => Err(ApiError::new(
            ErrorKind::Forbidden,
            "a tenant's token acts for its own tenant only; leave ?tenant= out",
        )),
        (Principal::Tenant(own), _, _) => Ok(own.clone()),
        (Principal::Operator, Some(asked), _) => Ok(asked),
        (Principal::Operator, None, Some(current)) => Ok(current.tenant.clone()),
        (Principal::Operator, None, None) => {
            Err(ApiError::field(ErrorKind::InvalidRequest, "tenant", "a new service needs an owner; add ?tenant=NAME"))
        }
        // `Auth` refuses node tokens before any handler runs; this arm only keeps it so.
        (Principal::Node(_), _, _) => Err(ApiError::new(ErrorKind::Forbidden, "a node token owns no services")),
    }
}

/// `GET /v1/services/{id}`.
pub async fn get(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ServiceRecord>, ApiError> {
    lookup(&app, &principal, &id).await.map(Json)
}

/// The service `id` if it exists and `principal` may see it; otherwise 404, the same answer
/// whether it is missing or another tenant's.
pub async fn lookup(app: &AppState, principal: &Principal, id: &str) -> Result<ServiceRecord, ApiError> {
    let not_found = || ApiError::not_found(format_args!("service \"{id}\""));
    let id = ServiceId::parse(id).map_err(|_| not_found())?;
    match app.store.service(&id).await? {
        Some(service) if principal.may_access(&service) => Ok(service),
        _ => Err(not_found()),
    }
}

/// `?after=ID&limit=N&tenant=NAME` on the list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
    tenant: Option<String>,
}

/// A page of services; `next` is the `after` of the next page, absent on the last.
#[derive(Debug, Serialize)]
pub struct ServicePage {
    services: Vec<ServiceRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<ServiceId>,
}

/// Default page size of lists.
pub const DEFAULT_PAGE: usize = 100;

/// `GET /v1/services`: a tenant sees its own; the operator sees all, or one tenant's with
/// `?tenant=`.
pub async fn list(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ServicePage>, ApiError> {
    let limit = page_limit(query.limit, app.limits.max_page)?;
    let asked = query.tenant.as_deref().map(TenantId::parse).transpose();
    let asked = asked.map_err(|why| ApiError::field(ErrorKind::InvalidRequest, "tenant", why))?;
    let tenant = match (&principal, asked) {
        (Principal::Tenant(own), Some(asked)) if asked != *own => {
            return Err(ApiError::new(ErrorKind::Forbidden, "a tenant's token lists its own services only"));
        }
        (Principal::Tenant(own), _) => Some(own.clone()),
        (Principal::Operator, asked) => asked,
        (Principal::Node(_), _) => return Err(ApiError::new(ErrorKind::Forbidden, "a node token lists no services")),
    };
    let after = query.after.as_deref().map(ServiceId::parse).transpose();
    let after = after.map_err(|why| ApiError::field(ErrorKind::InvalidRequest, "after", why))?;
    let services = app.store.services(ServiceQuery { tenant, after, limit }).await?;
    let next = if services.len() == limit { services.last().map(|s| s.id.clone()) } else { None };
    Ok(Json(ServicePage { services, next }))
}

/// `limit` checked against its bound; [`DEFAULT_PAGE`] (or the bound, if lower) when absent.
pub fn page_limit(asked: Option<usize>, max: usize) -> Result<usize, ApiError> {
    match asked {
        None => Ok(DEFAULT_PAGE.min(max)),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::field(
            ErrorKind::InvalidRequest,
            "limit",
            format!("{n} is out of range; use 1 to {max} (limits.max_page)"),
        )),
    }
}

/// What `DELETE` answers: the event's `seq` says when nodes have applied it.
#[derive(Debug, Serialize)]
pub struct Deleted {
    id: ServiceId,
    deleted: bool,
    seq: outpost_config::Seq,
}

/// `DELETE /v1/services/{id}`.
pub async fn delete(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let service = lookup(&app, &principal, &id).await?;
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let event = app.store.delete_service(&service.id, service.version, now).await?;
    app.nodes.appended(event.seq);
    tracing::info!(service = %service.id, seq = %event.seq, by = %principal, "service_deleted");
    Ok(Json(Deleted { id: service.id, deleted: true, seq: event.seq }))
}
