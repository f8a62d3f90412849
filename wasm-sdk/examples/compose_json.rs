//! Composes one JSON response from two backends, fetched one after the other.
//!
//! `GET /product/<id>` reads the product from the service's origin (`/api/products/<id>`) and its
//! stock from the `inventory` backend (`/stock/<id>`; the service names it under
//! `[services.function] backends`), and answers `{"product": ..., "stock": ..., "pop": ...}`.
//! Both fetches go through the node's cache, so a popular product costs the backends one
//! request each per freshness lifetime. The response is tagged `product-<id>`, so purging that
//! tag also drops anything cached under it.

use std::time::Duration;

use outpost_sdk::http::header::{CONTENT_TYPE, HeaderValue};
use outpost_sdk::{
    Body, CacheControl, Error, FetchOptions, ORIGIN, Request, RequestExt, Response, ResponseExt, StatusCode, fetch_with,
};
use serde_json::{Value, json};

/// Larger backend documents are refused (502) rather than buffered.
const MAX_DOCUMENT: u64 = 256 << 10;

fn handle(req: Request) -> Result<Response, Error> {
    let Some(id) = req.uri().path().strip_prefix("/product/").filter(|id| is_id(id)) else {
        return Err(Error::status(StatusCode::NOT_FOUND, "try /product/<id>"));
    };
    let opts = FetchOptions::new().first_byte_timeout(Duration::from_secs(5));
    let product = get_json(ORIGIN, &format!("/api/products/{id}"), &opts)?;
    let stock = get_json("inventory", &format!("/stock/{id}"), &opts)?;
    let doc = json!({ "product": product, "stock": stock, "pop": req.pop() });

    let mut resp = Response::new(Body::from(doc.to_string()));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.set_cache_control(&CacheControl::new().private().max_age(Duration::from_secs(10)));
    resp.add_surrogate_keys([format!("product-{id}")])?;
    Ok(resp)
}

fn get_json(backend: &str, path: &str, opts: &FetchOptions) -> Result<Value, Error> {
    let resp = fetch_with(backend, outpost_sdk::http::Request::get(path).body(Body::empty())?, opts)?;
    if !resp.status().is_success() {
        let msg = format!("backend {backend:?} answered {} for {path}", resp.status().as_u16());
        return Err(Error::status(StatusCode::BAD_GATEWAY, msg));
    }
    let text = resp.into_body().with_limit(MAX_DOCUMENT).into_string()?;
    serde_json::from_str(&text)
        .map_err(|e| Error::status(StatusCode::BAD_GATEWAY, format!("backend {backend:?} sent invalid JSON: {e}")))
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

outpost_sdk::handler!(handle);
