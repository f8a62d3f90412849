//! The smallest function: answers every request itself, naming the PoP that served it.

use outpost_sdk::http::header::CONTENT_TYPE;
use outpost_sdk::{Body, Request, RequestExt, Response};

fn handle(req: Request) -> Response {
    let body = format!("hello from {}\n", req.pop().unwrap_or("an unknown pop"));
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(CONTENT_TYPE, "text/plain; charset=utf-8".parse().expect("static value"));
    resp
}

outpost_sdk::handler!(handle);
