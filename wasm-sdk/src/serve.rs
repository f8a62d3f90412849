//! One request through the guest: the host's `incoming-request` becomes an `http::Request`, the
//! handler runs, its response goes back through the `response-outparam`.
//!
//! A panic must still answer: wasm32-wasip2 aborts on panic (the instance traps), so the
//! outparam waits in a thread-local until the response is set, and a panic hook installed per
//! instance answers 500 through it when the handler never did. The host serves a response set
//! before a trap; the abort that follows ends the instance.

use std::cell::RefCell;

use http::StatusCode;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use wasi::http::types::{ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam, Scheme};
use wasi::io::streams::{OutputStream, StreamError};

use crate::body::{Body, Parent, stream_error};
use crate::edge::REQUEST_ID;
use crate::error::{BodySource, Error, error_body};
use crate::wire::{from_fields, from_wasi_method, to_fields};
use crate::{Request, Response};

thread_local! {
    /// The outparam until a response is set; the panic hook takes it when the handler panics.
    static PENDING: RefCell<Option<ResponseOutparam>> = const { RefCell::new(None) };
    /// `Outpost-Request-Id` of the request being served, for error bodies.
    static CURRENT_ID: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// What a handler may return. Implemented for [`Response`], [`Error`] and `Result` of either,
/// so handlers can use `?`.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.to_status();
        // One line on stderr: the node logs it with the request id.
        eprintln!("outpost-sdk: answering {}: {self}", status.as_u16());
        error_response(status, &self.to_string())
    }
}

impl<T: IntoResponse, E: Into<Error>> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => e.into().into_response(),
        }
    }
}

/// A `text/plain` error response in the node's format, naming the request id.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let body = CURRENT_ID.with_borrow(|id| error_body(status, message, id.as_deref()));
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// The body of the `handler!` export: runs `handler` on one request.
pub fn serve<R: IntoResponse>(incoming: IncomingRequest, out: ResponseOutparam, handler: impl FnOnce(Request) -> R) {
    install_panic_hook();
    PENDING.set(Some(out));
    let response = match into_request(incoming) {
        Ok(request) => {
            CURRENT_ID.set(request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned));
            handler(request).into_response()
        }
        Err(e) => e.into_response(),
    };
    if let Some(out) = PENDING.take() {
        send(response, out);
    }
}

fn into_request(incoming: IncomingRequest) -> Result<Request, Error> {
    let bad = |what: &str| Error::status(StatusCode::BAD_REQUEST, format!("the host sent an invalid {what}"));
    let method = from_wasi_method(incoming.method()).ok_or_else(|| bad("method"))?;
    let mut uri = http::Uri::builder();
    if let Some(scheme) = incoming.scheme() {
        uri = uri.scheme(match &scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Other(s) => s.as_str(),
        });
    }
    if let Some(authority) = incoming.authority() {
        uri = uri.authority(authority);
    }
    uri = uri.path_and_query(incoming.path_with_query().unwrap_or_else(|| "/".to_owned()));
    let uri = uri.build().map_err(|_| bad("URI"))?;
    let headers = from_fields(&incoming.headers());
    let mut request = Request::new(Body::incoming(Parent::Request(incoming)));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Sets the response head, then streams the body. A failure after the head is out can only cut
/// the body short: the host sees an unfinished body and closes the client's response.
fn send(response: Response, out: ResponseOutparam) {
    let (outgoing, out_body, mut body) = match head(response) {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("outpost-sdk: the response head was refused: {e}");
            match head(error_response(StatusCode::INTERNAL_SERVER_ERROR, "the function's response was invalid")) {
                Ok(parts) => parts,
                Err(e) => {
                    let code = ErrorCode::InternalError(Some(format!("no valid response: {e}")));
                    return ResponseOutparam::set(out, Err(code));
                }
            }
        }
    };
    ResponseOutparam::set(out, Ok(outgoing));
    if let Err(e) = write_body(&mut body, &out_body) {
        // Leave the body unfinished so the host does not mistake it for a complete one.
        eprintln!("outpost-sdk: the response body failed: {e}");
        return;
    }
    if let Err(code) = OutgoingBody::finish(out_body, None) {
        eprintln!("outpost-sdk: finishing the response body: {code:?}");
    }
}

/// The response head as the host's resource, with `Content-Length` when the length is known.
fn head(response: Response) -> Result<(OutgoingResponse, OutgoingBody, Body), Error> {
    let (mut parts, body) = response.into_parts();
    if let Some(len) = body.known_len()
        && !parts.headers.contains_key(CONTENT_LENGTH)
    {
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    let (outgoing, out_body) = outgoing_response(to_fields(&parts.headers)?, parts.status)?;
    Ok((outgoing, out_body, body))
}

fn outgoing_response(fields: Fields, status: StatusCode) -> Result<(OutgoingResponse, OutgoingBody), Error> {
    let outgoing = OutgoingResponse::new(fields);
    let refused = |what: &str| Error::status(StatusCode::INTERNAL_SERVER_ERROR, format!("the host refused the {what}"));
    // A new response is 200 already: one host call fewer for most responses.
    if status != StatusCode::OK {
        outgoing.set_status_code(status.as_u16()).map_err(|()| refused("status"))?;
    }
    let body = outgoing.body().map_err(|()| refused("body"))?;
    Ok((outgoing, body))
}

/// The most bytes `blocking-write-and-flush` takes at once (WASI 0.2 `wasi:io/streams`).
pub(crate) const MAX_BLOCKING_WRITE: usize = 4096;

/// Writes `body` to the response. A backend's body is spliced by the host, never copied through
/// guest memory; anything else is written as it is read.
fn write_body(body: &mut Body, out: &OutgoingBody) -> Result<(), Error> {
    if body.known_len() == Some(0) {
        return Ok(());
    }
    let mut stream = out.write().map_err(|()| Error::status(StatusCode::INTERNAL_SERVER_ERROR, "body taken"))?;
    match body.take_incoming() {
        Some(Ok((input, mut incoming))) => {
            let spliced = splice(body, &input, &stream);
            incoming.restore(input);
            spliced?;
        }
        Some(Err(e)) => return Err(e),
        None => {
            if let Some(bytes) = body.in_memory() {
                // Bytes in memory go out in one `blocking-write-and-flush` per 4096 (the most
                // it takes): one host call each, where a `Write` loop makes three or more.
                for chunk in bytes.chunks(MAX_BLOCKING_WRITE) {
                    stream.blocking_write_and_flush(chunk).map_err(|e| match e {
                        StreamError::Closed => Error::Io {
                            source: BodySource::Function,
                            message: "the host closed the response body".into(),
                        },
                        StreamError::LastOperationFailed(e) => stream_error(BodySource::Function, &e),
                    })?;
                }
                return Ok(());
            }
            std::io::copy(body, &mut stream).map_err(|e| body.error_from(e))?;
        }
    }
    // io::Write's flush waits until the host took the bytes (the inherent one only asks).
    std::io::Write::flush(&mut stream).map_err(|e| body.error_from(e))
}

fn splice(body: &mut Body, input: &wasi::io::streams::InputStream, out: &OutputStream) -> Result<(), Error> {
    let source = body.source();
    loop {
        // One byte past the cap tells "exactly at the cap" from "over it".
        let room = body.remaining().saturating_add(1).min(1 << 20);
        match out.blocking_splice(input, room) {
            Ok(n) => body.account(n)?,
            Err(StreamError::Closed) => return Ok(()),
            Err(StreamError::LastOperationFailed(e)) => return Err(stream_error(source, &e)),
        }
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The default hook prints the message and location to stderr (the node's log).
            default(info);
            if let Some(out) = PENDING.try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.take())).ok().flatten() {
                send(error_response(StatusCode::INTERNAL_SERVER_ERROR, "the function panicked"), out);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_the_nodes_error_body() {
        let resp = Err::<Response, _>(Error::status(StatusCode::FORBIDDEN, "bad token")).into_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("text/plain; charset=utf-8"));
        assert_eq!(resp.into_body().into_string().ok().as_deref(), Some("403 Forbidden\nbad token\n"));
    }
}
