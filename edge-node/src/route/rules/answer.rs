//! Responses the rules make themselves: redirects (a rule's, and the service's HTTP→HTTPS)
//! and denials.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use outpost_config::{QueryKeep, RuleConfig, Template};

use super::render::{Vars, render};
use super::text;
use crate::body::EdgeBody;

pub enum Answer {
    Redirect { status: StatusCode, to: Template, keep_query: bool },
    Deny { status: StatusCode, body: Option<Bytes>, content_type: HeaderValue },
}

impl Answer {
    pub fn compile(r: &RuleConfig) -> Result<Option<Self>, String> {
        if let Some(redirect) = &r.redirect {
            let status = StatusCode::from_u16(redirect.status).map_err(|e| format!("redirect.status: {e}"))?;
            let keep_query = redirect.query == QueryKeep::Keep;
            return Ok(Some(Answer::Redirect { status, to: redirect.to.clone(), keep_query }));
        }
        if let Some(deny) = &r.deny {
            return Ok(Some(Answer::Deny {
                status: StatusCode::from_u16(deny.status).map_err(|e| format!("deny.status: {e}"))?,
                body: deny.body.clone().map(Bytes::from),
                content_type: HeaderValue::from_str(&deny.content_type)
                    .map_err(|e| format!("deny.content_type: {e}"))?,
            }));
        }
        Ok(None)
    }

    pub fn respond(&self, vars: &Vars<'_>) -> Response<EdgeBody> {
        match self {
            Answer::Redirect { status, to, keep_query } => {
                let mut target = render(to, vars);
                if let Some(q) = vars.query.filter(|q| *keep_query && !q.is_empty()) {
                    target.push(if target.contains('?') { '&' } else { '?' });
                    target.push_str(q);
                }
                redirect(*status, &target)
            }
            Answer::Deny { status, body, content_type } => {
                let body = match body {
                    Some(b) => b.clone(),
                    None => Bytes::from(format!("{} {}\n", status.as_u16(), status.canonical_reason().unwrap_or(""))),
                };
                let mut resp = Response::new(text(body));
                *resp.status_mut() = *status;
                resp.headers_mut().insert(header::CONTENT_TYPE, content_type.clone());
                resp
            }
        }
    }
}

/// A redirect to `target` (RFC 9110 §15.4), with a short body for clients that show it. A
/// target that cannot be a field value (bytes a template's variable brought in) becomes a 500
/// with a log line, never a broken header.
pub fn redirect(status: StatusCode, target: &str) -> Response<EdgeBody> {
    let Ok(location) = HeaderValue::from_str(target) else {
        tracing::warn!(target, "redirect target is not a valid Location; answering 500");
        let mut resp = Response::new(text("500 Internal Server Error\n"));
        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return resp;
    };
    let mut resp = Response::new(text(format!("Redirecting to {target}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
