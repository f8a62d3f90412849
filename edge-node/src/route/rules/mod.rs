//! The service's rules in the route phase (see `outpost_config::rules` for the language):
//! compiled once per config version with the service, evaluated per request with no
//! allocation until something matches. Order: `https_redirect` (plain HTTP only), then the
//! rules, first match wins; the matched rule answers (redirect, deny), or changes the request
//! (fields, cache key, cache overrides for the cache phase) and, later, the response.
//!
//! Not here: the cache's own decisions (the cache phase reads [`Overrides`] from the request),
//! error pages and response fields, which [`response`] applies in the respond phase.

mod answer;
pub mod key;
pub mod matcher;
pub mod render;
pub mod response;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use outpost_config::{HeaderOps, OriginCacheControl, RuleConfig, ServiceConfig, Template};

use crate::body::EdgeBody;
use crate::cache::overrides::{EdgeTtl, Overrides};
use answer::Answer;
use key::{Extra, KeySpec};
use matcher::{Facts, Matcher};
use render::{Vars, render};
pub use response::Pages;

pub struct Rules {
    https_redirect: Option<StatusCode>,
    hsts: Option<HeaderValue>,
    debug_headers: bool,
    key: KeySpec,
    rules: Vec<Rule>,
    pages: Pages,
}

struct Rule {
    /// `name`, or `rules[N]`: the `Outpost-Rule` debug header and log field.
    label: HeaderValue,
    when: Matcher,
    key: Option<KeySpec>,
    bypass: bool,
    edge_ttl: Option<EdgeTtl>,
    browser_ttl: Option<HeaderValue>,
    request_headers: HeaderActions,
    response_headers: HeaderActions,
    answer: Option<Answer>,
}

/// `remove`, then `set`, then `append`.
#[derive(Default)]
struct HeaderActions {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, Template)>,
    append: Vec<(HeaderName, Template)>,
}

/// What the route phase's rules made of a request.
pub enum Flow {
    Continue(Applied),
    /// Answered by a rule (a redirect, a deny).
    Respond(Response<EdgeBody>),
}

/// What the respond phase needs to finish the rules' work on the response.
#[derive(Default)]
pub struct Applied {
    rule: Option<usize>,
    /// `Outpost-Cache-Key`, with `debug_headers`.
    key_debug: Option<HeaderValue>,
}

impl Rules {
    pub fn compile(svc: &ServiceConfig) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(svc.rules.len());
        for (i, r) in svc.rules.iter().enumerate() {
            rules.push(Rule::compile(i, r).map_err(|e| format!("rules[{i}].{e}"))?);
        }
        let https_redirect = match svc.https_redirect {
            true => Some(
                StatusCode::from_u16(svc.https_redirect_status).map_err(|e| format!("https_redirect_status: {e}"))?,
            ),
            false => None,
        };
        let hsts = svc.hsts.as_ref().map(|h| {
            let mut v = format!("max-age={}", h.max_age.as_secs());
            if h.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if h.preload {
                v.push_str("; preload");
            }
            HeaderValue::from_str(&v).map_err(|e| format!("hsts: {e}"))
        });
        Ok(Self {
            https_redirect,
            hsts: hsts.transpose()?,
            debug_headers: svc.debug_headers,
            key: KeySpec::compile(&svc.cache_key)?,
            rules,
            pages: Pages::compile(&svc.error_pages)?,
        })
    }

    /// The route phase's part: `req` was routed to this service under `host`.
    pub fn apply(&self, host: &str, req: &mut Request<EdgeBody>, client_ip: std::net::IpAddr, tls: bool) -> Flow {
        let uri = req.uri();
        if let Some(status) = self.https_redirect
            && !tls
        {
            let target = format!("https://{host}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
            return Flow::Respond(answer::redirect(status, &target));
        }
        let (path, query) = (uri.path(), uri.query());
        let facts = Facts { method: req.method(), host, path, query, headers: req.headers(), client_ip, tls };
        let index = self.rules.iter().position(|r| r.when.matches(&facts));
        let rule = index.map(|i| &self.rules[i]);
        let vars = Vars { host, path, query, client_ip, tls };
        if let Some(answer) = rule.and_then(|r| r.answer.as_ref()) {
            return Flow::Respond(answer.respond(&vars));
        }
        let fields = rule.map(|r| r.request_headers.render(&vars)).unwrap_or_default();
        let spec = rule.and_then(|r| r.key.as_ref()).unwrap_or(&self.key);
        let mut overrides = Overrides {
            bypass: rule.is_some_and(|r| r.bypass),
            edge_ttl: rule.and_then(|r| r.edge_ttl.clone()),
            key_extra: None,
        };
        let new_uri = match spec.is_plain() {
            true => None,
            false => keyed_uri(spec, uri),
        };
        match spec.extra(req.headers()) {
            Extra::None => {}
            Extra::Fields(f) => overrides.key_extra = Some(f.into()),
            Extra::TooLong => overrides.bypass = true,
        }
        if let Some(rule) = rule {
            rule.request_headers.apply(req.headers_mut(), fields);
        }
        if let Some(uri) = new_uri {
            *req.uri_mut() = uri;
        }
        let key_debug = self.debug_headers.then(|| key_header(host, req.uri(), overrides.key_extra.as_deref()));
        if overrides.bypass || overrides.edge_ttl.is_some() || overrides.key_extra.is_some() {
            req.extensions_mut().insert(overrides);
        }
        Flow::Continue(Applied { rule: index, key_debug: key_debug.flatten() })
    }

    /// A purge's URL key (`host/path?query`) as the cache keys that URL: its query shaped by
    /// the rule a plain `GET` of it matches, or by `[services.cache_key]`.
    pub fn purge_url(&self, url_key: &str) -> String {
        let (host, pq) = url_key.split_at(url_key.find('/').unwrap_or(url_key.len()));
        let (path, query) = match pq.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (pq, None),
        };
        let headers = http::HeaderMap::new();
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let facts =
            Facts { method: &http::Method::GET, host, path, query, headers: &headers, client_ip: ip, tls: true };
        let rule = self.rules.iter().find(|r| r.when.matches(&facts));
        let spec = rule.and_then(|r| r.key.as_ref()).unwrap_or(&self.key);
        match query.map(|q| spec.query(q)) {
            Some(q) if q.is_empty() => format!("{host}{path}"),
            Some(q) => format!("{host}{path}?{q}"),
            None => url_key.to_owned(),
        }
    }
}

/// `uri` with the query the key has, when that differs from the one sent.
fn keyed_uri(spec: &KeySpec, uri: &Uri) -> Option<Uri> {
    let query = uri.query()?;
    let keyed = spec.query(query);
    if keyed == query {
        return None;
    }
    let pq = if keyed.is_empty() { uri.path().to_owned() } else { format!("{}?{keyed}", uri.path()) };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}

fn key_header(host: &str, uri: &Uri, extra: Option<&str>) -> Option<HeaderValue> {
    let mut v = format!("{host}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    if let Some(extra) = extra {
        v.push_str("; ");
        v.push_str(&key::display_extra(extra));
    }
    HeaderValue::from_str(&v).ok()
}

impl Rule {
    fn compile(i: usize, r: &RuleConfig) -> Result<Self, String> {
        let label = r.name.clone().unwrap_or_else(|| format!("rules[{i}]"));
        let cache = r.cache.clone().unwrap_or_default();
        let edge_ttl = cache.edge_ttl.map(|ttl| {
            let mut v = format!("max-age={}", ttl.as_secs());
            if let Some(swr) = cache.stale_while_revalidate {
                v.push_str(&format!(", stale-while-revalidate={}", swr.as_secs()));
            }
            if let Some(sie) = cache.stale_if_error {
                v.push_str(&format!(", stale-if-error={}", sie.as_secs()));
            }
            let override_origin = cache.origin_cache_control == OriginCacheControl::Override;
            HeaderValue::from_str(&v).map(|value| EdgeTtl { value, override_origin })
        });
        let browser_ttl = cache.browser_ttl.map(|t| HeaderValue::from_str(&format!("max-age={}", t.as_secs())));
        Ok(Self {
            label: HeaderValue::from_str(&label).map_err(|e| format!("name: {e}"))?,
            when: Matcher::compile(&r.when).map_err(|e| format!("match.{e}"))?,
            key: cache.key.as_ref().map(KeySpec::compile).transpose().map_err(|e| format!("cache.key.{e}"))?,
            bypass: cache.bypass,
            edge_ttl: edge_ttl.transpose().map_err(|e| format!("cache.edge_ttl: {e}"))?,
            browser_ttl: browser_ttl.transpose().map_err(|e| format!("cache.browser_ttl: {e}"))?,
            request_headers: HeaderActions::compile(&r.request_headers).map_err(|e| format!("request_headers.{e}"))?,
            response_headers: HeaderActions::compile(&r.response_headers)
                .map_err(|e| format!("response_headers.{e}"))?,
            answer: Answer::compile(r)?,
        })
    }
}

impl HeaderActions {
    fn compile(ops: &HeaderOps) -> Result<Self, String> {
        let name = |n: &str| {
            HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).map_err(|_| format!("{n}: not a field name"))
        };
        let pairs = |m: &std::collections::BTreeMap<String, Template>| -> Result<Vec<_>, String> {
            m.iter().map(|(n, t)| Ok((name(n)?, t.clone()))).collect()
        };
        Ok(Self {
            remove: ops.remove.iter().map(|n| name(n)).collect::<Result<_, _>>()?,
            set: pairs(&ops.set)?,
            append: pairs(&ops.append)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.append.is_empty()
    }

    /// The values of `set` and `append` for this request, in order. A value that renders to
    /// something not allowed in a field (a query parameter with bytes a field cannot hold) is
    /// left out and logged.
    fn render(&self, vars: &Vars<'_>) -> Vec<Option<HeaderValue>> {
        let mut out = Vec::with_capacity(self.set.len() + self.append.len());
        for (name, template) in self.set.iter().chain(&self.append) {
            let value = HeaderValue::from_str(&render(template, vars));
            if value.is_err() {
                tracing::debug!(field = %name, "rule field value not valid in a field; left out");
            }
            out.push(value.ok());
        }
        out
    }

    fn apply(&self, headers: &mut http::HeaderMap, values: Vec<Option<HeaderValue>>) {
        if self.is_empty() {
            return;
        }
        for name in &self.remove {
            headers.remove(name);
        }
        let mut values = values.into_iter();
        for (name, _) in &self.set {
            if let Some(Some(v)) = values.next() {
                headers.insert(name.clone(), v);
            }
        }
        for (name, _) in &self.append {
            if let Some(Some(v)) = values.next() {
                headers.append(name.clone(), v);
            }
        }
    }
}

/// A body for answers the rules make.
fn text(body: impl Into<Bytes>) -> EdgeBody {
    crate::body::full(body.into())
}

#[cfg(test)]
mod tests;
