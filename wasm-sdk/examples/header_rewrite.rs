//! Rewrites a request on its way to the origin and the response on its way back.
//!
//! Requests under `/old/` go to `/new/` at the origin; the client's cookies stay at the edge and
//! the origin learns the PoP in `X-Edge-PoP`. The origin's `Server` and `X-Powered-By` never
//! reach the client; the response says which PoP rewrote it. The body is not touched: the host
//! splices it from the origin to the client.

use outpost_sdk::http::HeaderValue;
use outpost_sdk::http::header::{COOKIE, SERVER};
use outpost_sdk::{Error, ORIGIN, Request, RequestExt, Response, fetch};

fn handle(mut req: Request) -> Result<Response, Error> {
    let pop = HeaderValue::from_str(req.pop().unwrap_or("unknown"))?;
    if let Some(rest) = req.uri().path_and_query().and_then(|p| p.as_str().strip_prefix("/old/")) {
        *req.uri_mut() = format!("/new/{rest}").parse()?;
    }
    let headers = req.headers_mut();
    headers.remove(COOKIE);
    headers.insert("x-edge-pop", pop.clone());

    let mut resp = fetch(ORIGIN, req)?;
    let headers = resp.headers_mut();
    headers.remove(SERVER);
    headers.remove("x-powered-by");
    headers.insert("x-rewritten-by", pop);
    Ok(resp)
}

outpost_sdk::handler!(handle);
