//! The admin token: `Authorization: Bearer TOKEN` (RFC 6750 §2.1) on every admin route
//! (`/healthz` included unless `listen.admin_open_healthz`, or no token is configured). Only the token's SHA-256 is kept, and a presented token is compared by its
//! SHA-256 in constant time, so neither its length nor its first differing byte shows in the
//! time an answer takes.

use std::path::Path;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use outpost_config::ListenConfig;

use crate::body::EdgeBody;

/// The configured admin token, as its digest.
pub struct AdminToken {
    digest: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("listen.admin_token_file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("listen.admin_token_file {path}: {problem}")]
    Invalid { path: String, problem: String },
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self { digest: sha256(token.as_bytes()) }
    }

    /// The token `listen` names (a value, or a file read now), or `None`.
    pub fn from_config(listen: &ListenConfig) -> Result<Option<Self>, TokenError> {
        if let Some(token) = &listen.admin_token {
            return Ok(Some(Self::new(token)));
        }
        let Some(path) = &listen.admin_token_file else { return Ok(None) };
        read(path).map(Some)
    }

    fn matches(&self, presented: &[u8]) -> bool {
        let presented = sha256(presented);
        let diff = self.digest.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

fn read(path: &Path) -> Result<AdminToken, TokenError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read { path: shown.clone(), source })?;
    let token = text.trim();
    outpost_config::admin_token_problem(token).map_err(|problem| TokenError::Invalid { path: shown, problem })?;
    Ok(AdminToken::new(token))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token is configured: only `/healthz` is served.
    NotConfigured,
    /// No `Authorization: Bearer` credential.
    Missing,
    /// A credential that is not the token.
    Invalid,
}

/// Whether `method path` is served without the token: only `GET /healthz`, and only when the
/// operator opened it (`listen.admin_open_healthz`) or configured no token at all (then it is
/// the one route served, so a fresh install's liveness probes still pass).
pub fn is_open(method: &Method, path: &str, token_configured: bool, open_healthz: bool) -> bool {
    method == Method::GET && path == "/healthz" && (open_healthz || !token_configured)
}

/// Whether `headers` carry the admin token.
pub fn authorize(token: Option<&AdminToken>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = token else { return Err(Refusal::NotConfigured) };
    let presented = bearer(headers).ok_or(Refusal::Missing)?;
    if token.matches(presented) { Ok(()) } else { Err(Refusal::Invalid) }
}

/// The credential of `Authorization: Bearer CREDENTIAL`; the scheme is case-insensitive
/// (RFC 9110 §11.1). Several `Authorization` fields are refused rather than guessed at.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let bytes = value.as_bytes();
    let (scheme, rest) = bytes.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let credential = rest.trim_ascii();
    (!credential.is_empty()).then_some(credential)
}

/// 401 with the challenge of RFC 6750 §3 (`error="invalid_token"` for a wrong token, §3.1).
pub fn unauthorized(refusal: Refusal) -> Response<EdgeBody> {
    let (message, challenge) = match refusal {
        Refusal::NotConfigured => (
            "no admin token is configured on this node (listen.admin_token_file); only /healthz is served",
            "Bearer realm=\"outpost-admin\"",
        ),
        Refusal::Missing => ("send Authorization: Bearer <listen.admin_token>", "Bearer realm=\"outpost-admin\""),
        Refusal::Invalid => ("the admin token is wrong", "Bearer realm=\"outpost-admin\", error=\"invalid_token\""),
    };
    let mut resp = super::error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_the_token_as_a_bearer_credential_passes() {
        let token = AdminToken::new("0123456789abcdef0123");
        // (case, Authorization fields, outcome)
        let cases = [
            ("RFC 6750 §2.1: the token", vec!["Bearer 0123456789abcdef0123"], Ok(())),
            ("RFC 9110 §11.1: scheme case-insensitive", vec!["bearer 0123456789abcdef0123"], Ok(())),
            ("no credential", vec![], Err(Refusal::Missing)),
            ("another scheme", vec!["Basic 0123456789abcdef0123"], Err(Refusal::Missing)),
            ("empty credential", vec!["Bearer "], Err(Refusal::Missing)),
            ("a prefix of the token", vec!["Bearer 0123456789abcdef012"], Err(Refusal::Invalid)),
            ("the token and more", vec!["Bearer 0123456789abcdef01234"], Err(Refusal::Invalid)),
            ("wrong token", vec!["Bearer ffffffffffffffffffff"], Err(Refusal::Invalid)),
            (
                "two Authorization fields: ambiguous",
                vec!["Bearer 0123456789abcdef0123", "Bearer 0123456789abcdef0123"],
                Err(Refusal::Missing),
            ),
        ];
        for (case, values, want) in cases {
            assert_eq!(authorize(Some(&token), &headers(&values)), want, "{case}");
        }
        let good = headers(&["Bearer 0123456789abcdef0123"]);
        assert_eq!(authorize(None, &good), Err(Refusal::NotConfigured), "no token configured: refuse all");
    }

    #[test]
    fn only_healthz_may_be_open_and_only_when_asked_or_unconfigured() {
        // (case, method, path, token configured, admin_open_healthz, served without the token)
        let cases = [
            ("issue 18: a token guards /healthz too", Method::GET, "/healthz", true, false, false),
            ("admin_open_healthz opens it", Method::GET, "/healthz", true, true, true),
            ("no token: /healthz is the one route served", Method::GET, "/healthz", false, false, true),
            ("no token, opt-in: the same", Method::GET, "/healthz", false, true, true),
            ("the opt-in opens nothing else", Method::GET, "/metrics", true, true, false),
            ("nor another method (RFC 9110 §9.3.1: GET only)", Method::POST, "/healthz", true, true, false),
            ("no prefix match", Method::GET, "/healthz/x", true, true, false),
            ("no token: other routes stay closed", Method::GET, "/readyz", false, true, false),
        ];
        for (case, method, path, token, open, want) in cases {
            assert_eq!(is_open(&method, path, token, open), want, "{case}");
        }
    }

    #[test]
    fn a_refusal_carries_the_bearer_challenge() {
        let resp = unauthorized(Refusal::Invalid);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = resp.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
        assert_eq!(challenge, Some("Bearer realm=\"outpost-admin\", error=\"invalid_token\""));
    }
}
