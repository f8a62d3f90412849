//! Redirects each visitor to the regional site of the PoP that received the request.
//!
//! The service variable `REDIRECTS` maps PoPs to base URLs, `"fra=https://eu.example,
//! iad=https://us.example"`; `DEFAULT_REDIRECT` is the base for any other PoP. The answer is a
//! 302 to the base plus the request's path and query, made at the edge without a backend.

use outpost_sdk::http::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use outpost_sdk::{Body, Error, Request, RequestExt, Response, StatusCode, env};

fn handle(req: Request) -> Result<Response, Error> {
    let pop = req.pop().unwrap_or("");
    let base = env::var("REDIRECTS")
        .unwrap_or("")
        .split(',')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(p, _)| *p == pop)
        .map(|(_, url)| url)
        .or_else(|| env::var("DEFAULT_REDIRECT"))
        .ok_or_else(|| Error::status(StatusCode::MISDIRECTED_REQUEST, format!("no regional site for PoP {pop:?}")))?;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("{}{path}", base.trim_end_matches('/'));

    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut().insert(LOCATION, HeaderValue::try_from(location)?);
    // Each PoP answers differently: no shared cache may keep one PoP's answer for another's.
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(resp)
}

outpost_sdk::handler!(handle);
