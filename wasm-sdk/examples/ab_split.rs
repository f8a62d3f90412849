//! Splits visitors between two versions of the site by cookie.
//!
//! A visitor with cookie `ab=a` or `ab=b` keeps their version; a new one is assigned `b` with
//! probability `AB_PERCENT_B` percent (service variable, default 50) and gets the cookie. Version
//! `b` is served from the origin's `/b/...` tree, `a` from the usual paths, so each version is a
//! URL of its own in the node's cache.

use outpost_sdk::http::header::{HeaderValue, SET_COOKIE};
use outpost_sdk::{Error, ORIGIN, Request, RequestExt, Response, env, fetch};

fn handle(mut req: Request) -> Result<Response, Error> {
    let (variant, assigned) = match req.cookie("ab") {
        Some("a") => ("a", false),
        Some("b") => ("b", false),
        _ => (assign(&req), true),
    };
    if variant == "b" {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = format!("/b{path}").parse()?;
    }
    let mut resp = fetch(ORIGIN, req)?;
    resp.headers_mut().insert("x-ab-variant", HeaderValue::from_static(variant));
    if assigned {
        let cookie = format!("ab={variant}; Path=/; Max-Age=2592000; SameSite=Lax");
        resp.headers_mut().append(SET_COOKIE, HeaderValue::try_from(cookie)?);
    }
    Ok(resp)
}

/// `b` for `AB_PERCENT_B` percent of new visitors. The request id is unique per request, so its
/// hash is an even draw.
fn assign(req: &Request) -> &'static str {
    let percent: u64 = env::var("AB_PERCENT_B").and_then(|p| p.parse().ok()).unwrap_or(50);
    let id = req.request_id().unwrap_or("");
    // FNV-1a: small, and good enough to spread ids over 100 buckets.
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    if hash % 100 < percent { "b" } else { "a" }
}

outpost_sdk::handler!(handle);
