//! Lets a request through to the origin only with a valid signed token, checked at the edge.
//!
//! The token is `<expiry>.<signature>`, sent as `Authorization: Bearer <token>` or `?token=`:
//! `expiry` is a Unix time in seconds and `signature` the lower-case hex HMAC-SHA256, keyed with
//! the service's `AUTH_SECRET` variable, of `"<path>\n<expiry>"`. A missing, malformed, expired
//! or forged token is answered 403 here; the origin never sees it. The token is removed before
//! the request goes on, so the origin (and its cache key) never depends on it.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use outpost_sdk::http::header::AUTHORIZATION;
use outpost_sdk::{Error, ORIGIN, Request, Response, StatusCode, env, fetch};
use sha2::Sha256;

fn handle(mut req: Request) -> Result<Response, Error> {
    let Some(secret) = env::var("AUTH_SECRET").filter(|s| !s.is_empty()) else {
        return Err(Error::status(StatusCode::INTERNAL_SERVER_ERROR, "AUTH_SECRET is not set for this service"));
    };
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("");
    let from_query = query.split('&').find_map(|kv| kv.strip_prefix("token="));
    let from_header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "));
    let Some(token) = from_header.or(from_query) else {
        return Err(Error::status(StatusCode::FORBIDDEN, "a token is required"));
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    check(secret.as_bytes(), &path, token, now).map_err(|why| Error::status(StatusCode::FORBIDDEN, why))?;

    // The token has done its job: keep it out of the origin's view and the cache key.
    let rest: Vec<&str> = query.split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("token=")).collect();
    let uri = if rest.is_empty() { path } else { format!("{path}?{}", rest.join("&")) };
    *req.uri_mut() = uri.parse()?;
    req.headers_mut().remove(AUTHORIZATION);
    Ok(fetch(ORIGIN, req)?)
}

/// Checks `token` for `path` at time `now`; says why when it is not valid.
fn check(secret: &[u8], path: &str, token: &str, now: u64) -> Result<(), &'static str> {
    let (expiry, signature) = token.split_once('.').ok_or("malformed token")?;
    let expires: u64 = expiry.parse().map_err(|_| "malformed token")?;
    if expires < now {
        return Err("token expired");
    }
    let signature = hex(signature).ok_or("malformed token")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "bad secret")?;
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(expiry.as_bytes());
    // Constant-time comparison: the signature check leaks nothing through timing.
    mac.verify_slice(&signature).map_err(|_| "invalid signature")
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

outpost_sdk::handler!(handle);
