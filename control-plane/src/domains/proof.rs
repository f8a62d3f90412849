//! One check of one domain: the DNS proof (a TXT record `_outpost-challenge.<host>` holding
//! the token), else, for an exact host, the HTTP proof
//! (`http://<host>/.well-known/outpost-challenge/<token>` answering the token).
//!
//! The HTTP fetch is made safe to aim at names a tenant chooses: the host is resolved through
//! the same resolver, every address is judged against the tenant network list
//! (`limits.tenant_upstream_allow`, as tenants' upstreams are) before any connection, the
//! request is a fixed GET on port `domains.http_port` over HTTP/1.1 without TLS, redirects are
//! not followed, the body read is bounded ([`MAX_BODY`]) and the whole exchange timed
//! (`domains.check_timeout`). Nothing of the answer is echoed but its status and size.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use outpost_config::Cidr;

use super::record::{DomainMethod, DomainRecord, WELL_KNOWN};
use super::resolver::{LookupError, Resolver};
use super::rules::Outcome;

/// Largest HTTP proof body read: the token is 32 characters; a few more allow a newline.
pub const MAX_BODY: usize = 1024;

/// What a check may use.
#[derive(Debug, Clone)]
pub struct Prover {
    pub resolver: Resolver,
    /// `domains.http_port`: where the HTTP proof is fetched (80 but in tests).
    pub http_port: u16,
    /// `limits.tenant_upstream_allow`: private addresses the HTTP proof may reach.
    pub allow: Vec<Cidr>,
    /// `domains.check_timeout`: the whole HTTP exchange (each DNS lookup has its own).
    pub timeout: Duration,
}

impl Prover {
    /// Checks `domain`: DNS first; an exact host whose DNS proof is absent tries HTTP. A
    /// resolver that does not answer makes the check inconclusive.
    pub async fn check(&self, domain: &DomainRecord) -> Outcome {
        let dns = match self.dns(domain).await {
            Ok(None) => return Outcome::Proven(DomainMethod::Dns),
            Ok(Some(why)) => why,
            Err(error) => return Outcome::Inconclusive(error.to_string()),
        };
        if domain.is_wildcard() {
            return Outcome::Refuted(format!("{dns} (a wildcard needs the DNS proof)"));
        }
        match self.http(domain).await {
            Ok(None) => Outcome::Proven(DomainMethod::Http),
            Ok(Some(why)) => Outcome::Refuted(format!("{dns}; {why}")),
            Err(error) => Outcome::Inconclusive(format!("{dns}; {error}")),
        }
    }

    /// `None` when the TXT record holds the token; else what was found.
    async fn dns(&self, domain: &DomainRecord) -> Result<Option<String>, LookupError> {
        let name = domain.challenge_name();
        let texts = self.resolver.txt(&name).await?;
        if texts.iter().any(|t| t.trim() == domain.token) {
            return Ok(None);
        }
        Ok(Some(match texts.len() {
            0 => format!("no TXT record at {name}"),
            n => format!("{n} TXT record(s) at {name}, none holding the token"),
        }))
    }

    /// `None` when the URL answers the token; else why not.
    async fn http(&self, domain: &DomainRecord) -> Result<Option<String>, LookupError> {
        let url = format!("http://{}:{}{WELL_KNOWN}{}", domain.host, self.http_port, domain.token);
        let addrs = self.resolver.addresses(&domain.host).await?;
        if addrs.is_empty() {
            return Ok(Some(format!("GET {url}: {} has no address", domain.host)));
        }
        // Every address is judged before any is tried: a name that mixes a public address with
        // a private one is refused whole rather than raced.
        for addr in &addrs {
            if let Err(forbidden) = outpost_config::net::tenant::check_address(*addr, &self.allow) {
                return Ok(Some(format!("GET {url}: not fetched: {forbidden}")));
            }
        }
        let mut failures = Vec::new();
        for addr in addrs {
            let target = SocketAddr::new(addr, self.http_port);
            match tokio::time::timeout(self.timeout, fetch(target, &domain.host, &domain.token)).await {
                Ok(Ok(body)) if body.trim_ascii() == domain.token.as_bytes() => return Ok(None),
                Ok(Ok(body)) => failures.push(format!("{addr}: the answer ({} bytes) is not the token", body.len())),
                Ok(Err(why)) => failures.push(format!("{addr}: {why}")),
                Err(_) => failures.push(format!("{addr}: no answer within {:?}", self.timeout)),
            }
        }
        Ok(Some(format!("GET {url}: {}", failures.join("; "))))
    }
}

/// GETs the token's path from `target` with `Host: host`; the body of a 200, at most
/// [`MAX_BODY`] bytes. Any other status (a redirect included) is an error naming it.
async fn fetch(target: SocketAddr, host: &str, token: &str) -> Result<Vec<u8>, String> {
    let stream = tokio::net::TcpStream::connect(target).await.map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("{WELL_KNOWN}{token}"))
        .header(header::HOST, host)
        .header(header::USER_AGENT, "outpost-control-plane (domain check)")
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("status {} (redirects are not followed)", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY).collect().await;
        body.map(|b| b.to_bytes().to_vec()).map_err(|e| format!("body: {e} (at most {MAX_BODY} bytes are read)"))
    }
    .await;
    driver.abort();
    result
}
