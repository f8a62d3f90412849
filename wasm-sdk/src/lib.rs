//! # outpost-sdk: edge functions in Rust
//!
//! An Outpost edge function is a WebAssembly component exporting the standard WASI 0.2
//! `wasi:http/proxy` world: the node hands it each request of the service it is bound to, and it
//! answers, or fetches from the service's backends (through the node's cache) and composes an
//! answer. This crate makes that pleasant in Rust without hiding the standard: a handler is a
//! plain function over [`http`] types, and everything underneath is the raw `wasi` 0.14
//! bindings, so a request costs what the bindings cost (no async runtime, no extra copies: a
//! backend's body returned as-is is spliced to the client by the host).
//!
//! ```no_run
//! use outpost_sdk::{Body, CacheControl, Error, Request, RequestExt, Response, ResponseExt};
//! use std::time::Duration;
//!
//! fn handle(req: Request) -> Result<Response, Error> {
//!     let pop = req.pop().unwrap_or("unknown");
//!     let mut resp = Response::new(Body::from(format!("hello from {pop}\n")));
//!     resp.set_cache_control(&CacheControl::new().public().max_age(Duration::from_secs(60)));
//!     Ok(resp)
//! }
//!
//! outpost_sdk::handler!(handle);
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2`; the `.wasm` cargo writes is the component:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//! [dependencies]
//! outpost-sdk = { path = ".../wasm-sdk" }
//! ```
//!
//! `cargo build --release --target wasm32-wasip2`, then bind the `.wasm` to a service in the
//! node's config (`[services.function] wasm = "path/to/fn.wasm"`; see the README).
//!
//! ## What is here
//! - [`handler!`]: exports a function `fn(Request) -> impl IntoResponse` as the component's
//!   `wasi:http/incoming-handler`. A panic answers 500 (a panic hook answers before the instance traps);
//!   an [`Error`] answers the status it maps to, in the node's error-body format.
//! - [`Body`]: streaming bodies with a size cap ([`Body::with_limit`], default 8 MiB).
//! - [`fetch`] / [`fetch_with`]: requests to the service's backends, by name ([`ORIGIN`] for the
//!   service's own upstream), with timeouts; a backend the service does not name fails with
//!   [`FetchError::Denied`].
//! - [`CacheControl`], [`ResponseExt`]: `Cache-Control`, `CDN-Cache-Control`, `Surrogate-Key`.
//! - [`RequestExt`]: the headers the node adds (client IP, PoP, node, request id) and cookies.
//! - [`env`]: the variables the service's config gives the function.
//!
//! ## Where it builds
//! The crate is a member of the Outpost workspace, not a workspace of its own: its code has no
//! `cfg(target_arch)` branches (the `wasi` bindings compile on any target, their imports only
//! link on wasm32), so the workspace's host-side `cargo clippy` and `cargo test` check all of it
//! and run its pure-logic unit tests, with one `Cargo.lock` and one `target/`; the end-to-end
//! tests build the examples for `wasm32-wasip2` from the same lock. Only the export itself is
//! wasm32-only (its symbol names are not valid in a host shared library).

mod body;
mod cache;
pub mod edge;
pub mod env;
mod error;
mod fetch;
mod serve;
mod wire;

pub use body::{Body, DEFAULT_BODY_LIMIT};
pub use cache::{CDN_CACHE_CONTROL, CacheControl, InvalidSurrogateKey, ResponseExt, SURROGATE_KEY};
pub use edge::RequestExt;
pub use error::{BodySource, Error};
pub use fetch::{FetchError, FetchOptions, ORIGIN, fetch, fetch_with};
pub use http;
pub use http::StatusCode;
pub use serve::{IntoResponse, error_response};

/// A request as the handler sees it (the body streams from the client on demand).
pub type Request = http::Request<Body>;
/// A response as the handler returns it, or as [`fetch`] delivers it.
pub type Response = http::Response<Body>;

/// Exports `$handler`, a `fn(Request) -> impl IntoResponse`, as the component's
/// `wasi:http/incoming-handler`. Use it once per component, at the crate root.
#[macro_export]
macro_rules! handler {
    ($handler:path) => {
        #[doc(hidden)]
        #[allow(dead_code)]
        struct __OutpostHandler;

        impl $crate::__private::Guest for __OutpostHandler {
            fn handle(request: $crate::__private::IncomingRequest, out: $crate::__private::ResponseOutparam) {
                $crate::__private::serve(request, out, $handler)
            }
        }

        // The export's symbol names (`wasi:http/incoming-handler@0.2.x#handle`) only link into a
        // wasm component; host builds (clippy, doc tests) compile the handler without it.
        #[cfg(target_arch = "wasm32")]
        $crate::__private::wasi::http::proxy::export!(__OutpostHandler);
        // On the host nothing calls the handler; this keeps it (and the code it reaches) live
        // for the dead-code lint, as the export does on wasm32.
        #[cfg(not(target_arch = "wasm32"))]
        #[allow(dead_code)]
        fn __outpost_handler_export() {
            let _ = <__OutpostHandler as $crate::__private::Guest>::handle;
        }
    };
}

/// What [`handler!`] expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::serve::serve;
    pub use wasi;
    pub use wasi::exports::http::incoming_handler::Guest;
    pub use wasi::http::types::{IncomingRequest, ResponseOutparam};
}
