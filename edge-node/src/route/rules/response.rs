//! The rules' work on the response, in the respond phase: the matched rule's response fields
//! and browser TTL, HSTS over TLS, the debug headers, and the service's error pages.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use outpost_config::ErrorPageConfig;

use super::render::Vars;
use super::{Applied, Rules, text};
use crate::body::EdgeBody;

static OUTPOST_CACHE_KEY: HeaderName = HeaderName::from_static("outpost-cache-key");
static OUTPOST_RULE: HeaderName = HeaderName::from_static("outpost-rule");

/// `[[services.error_pages]]`, exact statuses before classes.
#[derive(Default)]
pub struct Pages(Vec<Page>);

struct Page {
    low: u16,
    high: u16,
    body: Bytes,
    content_type: HeaderValue,
    upstream: bool,
}

impl Pages {
    pub fn compile(pages: &[ErrorPageConfig]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(pages.len());
        for (i, p) in pages.iter().enumerate() {
            let (low, high) = p.range().ok_or_else(|| format!("error_pages[{i}].status: {:?}", p.status))?;
            let content_type =
                HeaderValue::from_str(&p.content_type).map_err(|e| format!("error_pages[{i}].content_type: {e}"))?;
            out.push(Page { low, high, body: Bytes::from(p.body.clone()), content_type, upstream: p.upstream });
        }
        out.sort_by_key(|p| p.high - p.low);
        Ok(Self(out))
    }

    fn find(&self, status: StatusCode) -> Option<&Page> {
        let s = status.as_u16();
        self.0.iter().find(|p| (p.low..=p.high).contains(&s))
    }
}

impl Rules {
    /// The respond phase's part for a response the service served (from the cache, the
    /// upstream, or a function).
    pub fn finish(&self, applied: &Applied, vars: &Vars<'_>, mut resp: Response<EdgeBody>) -> Response<EdgeBody> {
        let status = resp.status();
        if status.is_server_error()
            && let Some(page) = self.pages.find(status).filter(|p| p.upstream)
        {
            resp = page_response(page, status, resp.headers().get(header::RETRY_AFTER).cloned());
        }
        self.decorate(applied, vars, resp)
    }

    /// The node's own error for a request routed to this service: its page when it has one.
    pub fn error(&self, applied: &Applied, vars: &Vars<'_>, resp: Response<EdgeBody>) -> Response<EdgeBody> {
        let resp = match self.pages.find(resp.status()) {
            Some(page) => page_response(page, resp.status(), resp.headers().get(header::RETRY_AFTER).cloned()),
            None => resp,
        };
        self.decorate(applied, vars, resp)
    }

    fn decorate(&self, applied: &Applied, vars: &Vars<'_>, mut resp: Response<EdgeBody>) -> Response<EdgeBody> {
        let rule = applied.rule.map(|i| &self.rules[i]);
        if let Some(rule) = rule {
            let values = rule.response_headers.render(vars);
            rule.response_headers.apply(resp.headers_mut(), values);
            // Browser TTL: what the client may keep, for responses a browser would cache.
            if let Some(ttl) = &rule.browser_ttl
                && (resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED)
            {
                resp.headers_mut().insert(header::CACHE_CONTROL, ttl.clone());
                resp.headers_mut().remove(header::EXPIRES);
            }
        }
        let headers = resp.headers_mut();
        // RFC 6797 §7.2: never over plain HTTP.
        if let Some(hsts) = self.hsts.as_ref().filter(|_| vars.tls) {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        if self.debug_headers {
            if let Some(key) = &applied.key_debug {
                headers.insert(OUTPOST_CACHE_KEY.clone(), key.clone());
            }
            if let Some(rule) = rule {
                headers.insert(OUTPOST_RULE.clone(), rule.label.clone());
            }
        }
        resp
    }
}

/// An error page in place of `status`'s body: the status stays, and so does `Retry-After`.
fn page_response(page: &Page, status: StatusCode, retry_after: Option<HeaderValue>) -> Response<EdgeBody> {
    let mut resp = Response::new(text(page.body.clone()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, page.content_type.clone());
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
