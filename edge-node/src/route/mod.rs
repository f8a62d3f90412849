//! Route phase: the request's Host (and, on TLS, its SNI) → the service that serves it.
//! The table is built once per config version; lookups allocate nothing but the lower-cased host.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use http::Request;
use outpost_config::HostPattern;

use crate::ctx::ConnInfo;
use crate::error::{EdgeError, ErrorKind};
use crate::service::CompiledService;

pub mod authority;
pub mod rules;

/// The routing table in force: replaced whole on reload. A request takes the current table once
/// (an `Arc` clone under a read lock held for no await), so a reload never changes the service a
/// request in flight is using, and the old table (with its services, upstream pools and
/// functions) is dropped when its last request finishes.
pub struct RouteTable(RwLock<Arc<Router>>);

impl RouteTable {
    pub fn new(router: Router) -> Self {
        Self(RwLock::new(Arc::new(router)))
    }

    pub fn current(&self) -> Arc<Router> {
        // A poisoned lock still holds a whole table: writers only swap an Arc.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `router` in force and returns the table it replaced.
    pub fn replace(&self, router: Router) -> Arc<Router> {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, Arc::new(router))
    }
}

pub struct Router {
    services: Vec<Arc<CompiledService>>,
    exact: HashMap<String, Arc<CompiledService>>,
    /// (suffix with leading dot, service), longest suffix first so the most specific wins.
    wildcards: Vec<(String, Arc<CompiledService>)>,
}

/// What routing found: the service and the request's host (lower-case, no port).
pub struct Route {
    pub service: Arc<CompiledService>,
    pub host: String,
}

impl Router {
    pub fn new(services: &[Arc<CompiledService>]) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for svc in services {
            for pattern in &svc.hosts {
                match pattern {
                    HostPattern::Exact(h) => {
                        exact.insert(h.clone(), svc.clone());
                    }
                    HostPattern::Wildcard(suffix) => wildcards.push((suffix.clone(), svc.clone())),
                }
            }
        }
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Self { services: services.to_vec(), exact, wildcards }
    }

    pub fn services(&self) -> &[Arc<CompiledService>] {
        &self.services
    }

    pub fn lookup(&self, host: &str) -> Option<&Arc<CompiledService>> {
        if let Some(svc) = self.exact.get(host) {
            return Some(svc);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, svc)| svc)
    }

    /// A purge's target as the cache keys it: a URL's query shaped by its service's cache key
    /// (filtered, sorted, ignored), so a purge of the URL a client sent reaches the object it
    /// was stored as. Other targets, and services not running here, as they are.
    pub fn purge_target(&self, service: &str, target: crate::cache::purge::Target) -> crate::cache::purge::Target {
        use crate::cache::purge::Target;
        match (target, self.services.iter().find(|s| &*s.name == service)) {
            (Target::Url(url), Some(svc)) => Target::Url(svc.rules.purge_url(&url)),
            (target, _) => target,
        }
    }

    /// Resolve a request. On TLS, a Host the connection's certificate does not cover is 421
    /// (RFC 9110 §15.5.20), so one certificate's connection cannot be reused for another site.
    pub fn resolve(&self, host: &str, conn: &ConnInfo) -> Result<Route, EdgeError> {
        if conn.tls
            && let Some(cert_hosts) = &conn.cert_hosts
            && !cert_hosts.iter().any(|p| p.matches(host))
        {
            return Err(EdgeError::new(
                ErrorKind::Misdirected,
                format!("host {host}: not covered by the certificate chosen for SNI {:?}", conn.sni),
            ));
        }
        match self.lookup(host) {
            Some(svc) => Ok(Route { service: svc.clone(), host: host.to_string() }),
            None => Err(EdgeError::new(ErrorKind::UnknownHost, format!("host {host}: no service"))),
        }
    }
}

/// The request's canonical host ([`authority::resolve`]): lower-case, without the port. The
/// route, the cache key and the `Host` sent upstream all come from it.
pub fn request_host<B>(req: &Request<B>) -> Result<String, EdgeError> {
    let hosts: Vec<&[u8]> = req.headers().get_all(http::header::HOST).iter().map(|v| v.as_bytes()).collect();
    let target = req.uri().authority().map(|a| a.as_str());
    authority::resolve(req.version(), req.uri().scheme_str(), target, &hosts).map(|a| a.host).map_err(|e| {
        metrics::counter!(crate::metrics::HOST_REFUSED, "reason" => e.label()).increment(1);
        EdgeError::new(ErrorKind::BadRequest, e.message())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_from_header_is_lowercased_without_port() {
        let req = Request::get("/").header("host", "Shop.Example:80").body(()).unwrap_or_default();
        assert_eq!(request_host(&req).ok().as_deref(), Some("shop.example"));
        let bad = Request::get("/").header("host", "a b").body(()).unwrap_or_default();
        assert!(request_host(&bad).is_err());
        let none = Request::get("/").body(()).unwrap_or_default();
        assert!(request_host(&none).is_err());
    }

    #[test]
    fn absolute_form_wins_over_host() {
        let req = Request::get("http://shop.test/dir").header("host", "evil.example").body(()).unwrap_or_default();
        assert_eq!(request_host(&req).ok().as_deref(), Some("shop.test"));
    }
}
