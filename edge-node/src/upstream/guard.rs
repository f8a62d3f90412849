//! The connect-time guard on a tenant's upstreams: every address a tenant's upstream name
//! resolves to is judged against the networks a tenant may not reach
//! (`outpost_config::net::tenant`, the same list the control plane judges written addresses
//! with), unless `limits.tenant_upstream_allow` holds it, before any connection is made. It
//! sits in the resolver, so the addresses judged are the addresses dialled: a name that
//! resolves to a public address when checked and to 127.0.0.1 a moment later (DNS rebinding)
//! gains nothing. Addresses written as addresses skip the resolver and are judged before it.
//!
//! Services from the node's own file are the operator's and are not guarded
//! ([`Guard::Operator`]); the control plane's services are tenants' ([`Guard::Tenant`]).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::conn::Tracked;
use crate::body::BoxError;
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioIo;
use outpost_config::net::Cidr;
use outpost_config::net::tenant::{Forbidden, check_address};

/// Whose upstream a connector dials.
#[derive(Debug, Clone)]
pub enum Guard {
    /// The operator's (the node's file): any address.
    Operator,
    /// A tenant's (the control plane's services): no forbidden network outside `allow`.
    Tenant { allow: Arc<[Cidr]> },
}

impl Guard {
    /// Judges one address; `host` is the name it came from, for the message.
    pub fn check(&self, host: &str, addr: IpAddr) -> Result<(), ForbiddenUpstream> {
        match self {
            Guard::Operator => Ok(()),
            Guard::Tenant { allow } => {
                check_address(addr, allow).map_err(|refused| ForbiddenUpstream { host: host.to_owned(), refused })
            }
        }
    }
}

/// A tenant's upstream that leads into a forbidden network: the client gets 502
/// `upstream_forbidden`; the log line names the address and the network.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host}: {refused}; a tenant's upstream may not connect there (the operator may allow the \
     network with limits.tenant_upstream_allow)"
)]
pub struct ForbiddenUpstream {
    pub host: String,
    pub refused: Forbidden,
}

/// `getaddrinfo`, then only the addresses the guard lets through; none left is an error.
#[derive(Clone)]
pub struct GuardedResolver {
    gai: GaiResolver,
    guard: Guard,
}

type Resolving = Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.gai.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_owned();
        let resolving = self.gai.call(name);
        let guard = self.guard.clone();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = resolving.await?.collect();
            let (allowed, refused) = screen(&guard, &host, resolved);
            if let Some(first) = refused.into_iter().next() {
                if allowed.is_empty() {
                    return Err(first.into());
                }
                // Only the allowed addresses are dialled; the rest never are.
                tracing::warn!(error = %first, "a tenant's upstream resolves partly into a forbidden network; skipped");
            }
            Ok(allowed.into_iter())
        })
    }
}

/// `resolved` split into the addresses `guard` lets through and the refusals of the others.
fn screen(guard: &Guard, host: &str, resolved: Vec<SocketAddr>) -> (Vec<SocketAddr>, Vec<ForbiddenUpstream>) {
    let mut allowed = Vec::with_capacity(resolved.len());
    let mut refused = Vec::new();
    for addr in resolved {
        match guard.check(host, addr.ip()) {
            Ok(()) => allowed.push(addr),
            Err(e) => refused.push(e),
        }
    }
    (allowed, refused)
}

/// An `HttpConnector` whose every destination passes the [`Guard`]: names through
/// [`GuardedResolver`], IP literals (which `HttpConnector` does not resolve) here.
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    guard: Guard,
}

impl GuardedConnector {
    /// A connector like `HttpConnector::new()` behind `guard`; `configure` sets its options.
    pub fn new(guard: Guard, configure: impl FnOnce(&mut HttpConnector<GuardedResolver>)) -> Self {
        let mut inner =
            HttpConnector::new_with_resolver(GuardedResolver { gai: GaiResolver::new(), guard: guard.clone() });
        configure(&mut inner);
        Self { inner, guard }
    }
}

/// A connection being made: every upstream connection carries its counters ([`Tracked`]).
pub(super) type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<Tracked>, BoxError>> + Send>>;

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<Tracked>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let host = dst.host().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if let Some(Err(refused)) = literal.map(|ip| self.guard.check(host, ip)) {
            return Box::pin(async move { Err(refused.into()) });
        }
        let connecting = self.inner.call(dst);
        Box::pin(async move {
            let tcp = connecting.await.map_err(BoxError::from)?;
            Ok(TokioIo::new(Tracked::new(tcp.into_inner())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(allow: &[&str]) -> Guard {
        Guard::Tenant { allow: allow.iter().filter_map(|c| c.parse().ok()).collect::<Vec<_>>().into() }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().filter_map(|a| a.parse().ok()).collect()
    }

    #[test]
    fn only_allowed_addresses_are_dialled() {
        // (guard, what the name resolved to, what is dialled, how many refused)
        let cases = [
            (
                "operator: anything",
                Guard::Operator,
                vec!["127.0.0.1:80", "[::1]:80"],
                vec!["127.0.0.1:80", "[::1]:80"],
                0,
            ),
            ("tenant: loopback refused", tenant(&[]), vec!["127.0.0.1:9090"], vec![], 1),
            ("tenant: mapped loopback refused", tenant(&[]), vec!["[::ffff:127.0.0.1]:9090"], vec![], 1),
            ("tenant: NAT64 of metadata refused", tenant(&[]), vec!["[64:ff9b::a9fe:a9fe]:80"], vec![], 1),
            (
                "tenant: public kept, private dropped",
                tenant(&[]),
                vec!["10.0.0.1:80", "203.0.113.5:80"],
                vec!["203.0.113.5:80"],
                1,
            ),
            ("tenant: allowed network", tenant(&["127.0.0.0/8"]), vec!["127.0.0.1:80"], vec!["127.0.0.1:80"], 0),
        ];
        for (name, guard, resolved, dialled, refused) in cases {
            let (allowed, refusals) = screen(&guard, "origin.example", addrs(&resolved));
            assert_eq!(allowed, addrs(&dialled), "{name}");
            assert_eq!(refusals.len(), refused, "{name}");
        }
    }

    #[test]
    fn a_refusal_names_the_host_the_address_and_the_fix() {
        let err = tenant(&[]).check("evil.example", "127.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])));
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with("evil.example: 127.0.0.1 is in 127.0.0.0/8, loopback"), "{message}");
        assert!(message.contains("limits.tenant_upstream_allow"), "{message}");
    }
}
