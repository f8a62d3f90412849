//! The REST API: [`routes`] is the one table of what is served, [`router`] turns it into an
//! axum router with the body limit and the JSON answers for unknown routes and methods.
//!
//! Every handler follows the same order: authenticate (from headers, before the body is
//! read), find the service the caller may see (404 otherwise), parse and check the body, then
//! one store write that also appends the event.

mod acme;
mod backup;
mod certificates;
mod compat;
mod component;
mod domains;
mod error;
mod events;
mod extract;
mod functions;
mod metrics;
mod node_admin;
mod nodes;
mod openapi;
mod openapi_certs;
mod pops;
mod purges;
mod service_body;
mod services;
mod tenant_upstreams;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};

pub use error::{ApiError, ErrorKind, FieldError};
pub use functions::sha256_hex;
pub use openapi::document as openapi_document;

use crate::auth::Tokens;
use crate::dns::cidr::Cidr;
use crate::nodes::Nodes;
use crate::pops::Pops;
use crate::ratelimit::BucketSpec;
use crate::settings::{Limits, Settings};
use crate::store::{Store, StoreError};

/// What every handler shares.
pub struct App {
    pub store: Arc<dyn Store>,
    pub tokens: Tokens,
    pub limits: Limits,
    /// `limits.tenant_upstream_allow`, parsed once.
    pub tenant_upstream_allow: Vec<Cidr>,
    /// Each tenant's purge bucket (`limits.purge_burst`, `purge_rate`), kept in the store.
    pub purge_bucket: BucketSpec,
    /// The nodes following the log: registry, streams' hub, acks.
    pub nodes: Arc<Nodes>,
    /// PoP health and drains (the checker is started by `server`).
    pub pops: Arc<Pops>,
    /// DNS answer counters (`GET /v1/pops`); zero when `[dns]` is not set.
    pub dns_stats: Arc<crate::dns::Stats>,
    /// What `GET /metrics` counts.
    pub counters: metrics::Counters,
    /// Domain checks (`[domains]`), shared with the periodic check `server` starts.
    pub domains: Arc<crate::domains::Domains>,
    /// `[acme]`: the API reports the next attempt with its retry bounds.
    pub acme: crate::acme::AcmeSettings,
    /// Seals and opens certificates' private keys (`[secrets]`).
    pub keyring: Arc<crate::secrets::Keyring>,
}

pub type AppState = Arc<App>;

impl App {
    /// The shared state, with the nodes loaded from `store`. Call inside the runtime (it starts
    /// the ack writer).
    /// Keys sealed under an old key of `keyring` are re-sealed under its primary one first.
    pub async fn open(
        store: Arc<dyn Store>,
        settings: &Settings,
        keyring: Arc<crate::secrets::Keyring>,
    ) -> Result<AppState, StoreError> {
        crate::certs::reseal_all(store.as_ref(), &keyring).await?;
        let limits = settings.limits.clone();
        let purge_bucket = BucketSpec { burst: limits.purge_burst, interval: limits.purge_interval() };
        let nodes = Nodes::load(store.clone(), settings.nodes.clone()).await?;
        let named_pops = settings.dns.as_ref().map(crate::dns::DnsSettings::named_pops).unwrap_or_default();
        let pops = Pops::load(store.clone(), nodes.clone(), settings.health.clone(), named_pops).await?;
        let dns_stats = Arc::new(crate::dns::Stats::default());
        let tokens = Tokens::new(&settings.tokens);
        let tenant_upstream_allow = limits.tenant_upstream_networks();
        let counters = metrics::Counters::default();
        let domains = Arc::new(crate::domains::Domains::new(settings.domains.clone(), tenant_upstream_allow.clone()));
        Ok(Arc::new(App {
            store,
            tokens,
            limits,
            tenant_upstream_allow,
            purge_bucket,
            nodes,
            pops,
            dns_stats,
            counters,
            domains,
            acme: settings.acme.clone(),
            keyring,
        }))
    }
}

/// An HTTP method the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Put,
    Post,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Put => MethodFilter::PUT,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
        }
    }

    /// The lower-case name, as OpenAPI writes it.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Put => "put",
            Verb::Post => "post",
            Verb::Delete => "delete",
        }
    }
}

/// One row of the route table.
pub struct Route {
    pub verb: Verb,
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H: Handler<T, AppState>, T: 'static>(verb: Verb, path: &'static str, handler: H) -> Route {
    Route { verb, path, handler: on(verb.filter(), handler) }
}

/// Every route, in the order the README's API table lists them. `GET` also answers `HEAD`.
pub fn routes() -> Vec<Route> {
    use Verb::{Delete, Get, Post, Put};
    vec![
        route(Get, "/healthz", health),
        route(Get, "/v1/openapi.json", openapi::get),
        route(Get, "/metrics", metrics::get),
        route(Get, "/v1/services", services::list),
        route(Put, "/v1/services/{id}", services::put),
        route(Get, "/v1/services/{id}", services::get),
        route(Delete, "/v1/services/{id}", services::delete),
        route(Post, "/v1/services/{id}/purge", purges::post),
        route(Get, "/v1/services/{id}/domains", domains::list),
        route(Post, "/v1/services/{id}/domains/{host}/check", domains::check),
        route(Post, "/v1/services/{id}/domains/{host}/decree", domains::decree),
        route(Post, "/v1/services/{id}/domains/{host}/revoke", domains::revoke),
        route(Get, "/v1/domains", domains::list_all),
        // The upload reads its body with its own limit (`limits.max_function_size`).
        Route {
            verb: Post,
            path: "/v1/services/{id}/functions",
            handler: on(Post.filter(), functions::upload).layer(DefaultBodyLimit::disable()),
        },
        route(Get, "/v1/services/{id}/functions", functions::list),
        route(Get, "/v1/services/{id}/acme", acme::get),
        route(Post, "/v1/services/{id}/functions/{version}/activate", functions::activate),
        route(Post, "/v1/services/{id}/functions/rollback", functions::rollback),
        route(Get, "/v1/functions/{sha256}", functions::bytes),
        route(Get, "/v1/services/{id}/certificates", certificates::list),
        route(Put, "/v1/services/{id}/certificates/{name}", certificates::put),
        route(Get, "/v1/services/{id}/certificates/{name}", certificates::get),
        route(Delete, "/v1/services/{id}/certificates/{name}", certificates::delete),
        route(Get, "/v1/certificates", certificates::all),
        route(Get, "/v1/nodes/{id}/certificates/{service}/{name}", certificates::node_key),
        route(Get, "/v1/purges/{id}", purges::get),
        route(Get, "/v1/events", events::list),
        route(Get, "/v1/nodes", nodes::list),
        route(Put, "/v1/nodes/{id}", nodes::register),
        route(Get, "/v1/nodes/{id}/stream", nodes::stream),
        route(Post, "/v1/nodes/{id}/ack", nodes::ack),
        route(Delete, "/v1/nodes/{id}", node_admin::delete),
        route(Post, "/v1/nodes/{id}/drain", node_admin::drain),
        route(Post, "/v1/nodes/{id}/restore", node_admin::restore),
        route(Post, "/v1/backup", backup::post),
        route(Get, "/v1/pops", pops::list),
        route(Post, "/v1/pops/{pop}/drain", pops::drain),
        route(Post, "/v1/pops/{pop}/restore", pops::restore),
        route(Post, "/service/{id}/purge/{surrogate_key}", compat::fastly_purge_key),
        route(Post, "/service/{id}/purge", compat::fastly_purge_batch),
        route(Post, "/service/{id}/purge_all", compat::fastly_purge_all),
        route(Post, "/zones/{id}/purge_cache", compat::cloudflare_purge),
    ]
}

/// The API as a router, ready to serve.
pub fn router(app: AppState) -> Router {
    let mut router = Router::new();
    for route in routes() {
        // Routes on one path with different methods merge into one method router.
        router = router.route(route.path, route.handler);
    }
    let body_limit = app.limits.max_body_size.as_usize();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), log_request))
        .with_state(app)
}

/// `GET /healthz`: 200 when the store answers.
async fn health(State(app): State<AppState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    match app.store.last_seq().await {
        Ok(_) => Ok(axum::Json(serde_json::json!({"status": "ok"}))),
        Err(error) => {
            tracing::warn!("health: {error}");
            Err(ApiError::new(ErrorKind::Unavailable, "the store does not answer"))
        }
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format_args!("{} {}", request.method(), request.uri().path()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    let message = format!("{} is not allowed on {}", request.method(), request.uri().path());
    ApiError::new(ErrorKind::MethodNotAllowed, message)
}

/// One log line per request: method, path, status, time taken (never a token or a body); and
/// the answer counted by status class.
async fn log_request(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let (method, path, start) = (request.method().clone(), request.uri().path().to_owned(), Instant::now());
    let response = next.run(request).await;
    app.counters.answered(response.status());
    let status = response.status().as_u16();
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    if response.status().is_server_error() {
        tracing::warn!(%method, %path, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, %path, status, elapsed_ms, "request");
    }
    response
}
