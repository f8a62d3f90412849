//! How failures look to the client, one path each.
//!
//! - `/panic`: the handler panics; the SDK answers 500 before the instance traps.
//! - `/denied`: a fetch to a backend the service does not name; the host refuses it
//!   ("destination not allowed") and the handler's `?` turns that into a 502.
//! - `/upload`: reads the request body with a 16-byte cap; a longer body is a 413.
//! - `/ignored-upload`: a GET to the origin carrying a 1 MiB body. A GET's body means nothing
//!   (RFC 9110 §9.3.1) and the node does not forward it: it closes the stream, the upload stops
//!   there without an error, and the origin's answer comes back.
//! - anything else: 404 in the node's error format.

use outpost_sdk::{Body, Error, ORIGIN, Request, Response, StatusCode, fetch};

fn handle(req: Request) -> Result<Response, Error> {
    match req.uri().path() {
        "/panic" => panic!("the handler gave up"),
        "/denied" => {
            let probe = outpost_sdk::http::Request::get("/").body(Body::empty())?;
            Ok(fetch("not-a-backend", probe)?)
        }
        "/upload" => {
            let body = req.into_body().with_limit(16).into_bytes()?;
            Ok(Response::new(Body::from(format!("got {} bytes\n", body.len()))))
        }
        "/ignored-upload" => {
            let get = outpost_sdk::http::Request::get("/ignored").body(Body::from(vec![b'x'; 1 << 20]))?;
            Ok(fetch(ORIGIN, get)?)
        }
        _ => Err(Error::status(StatusCode::NOT_FOUND, "no such path")),
    }
}

outpost_sdk::handler!(handle);
