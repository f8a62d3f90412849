//! The node's HTTP/2 upstream client, on the h2 crate: every HTTP/2 upstream (origins with
//! `origin_protocol = "http2"`, and shields) is reached through it rather than through
//! hyper's client, because hyper's HTTP/2 client drops interim responses (it never calls h2's
//! `poll_informational`), and a proxy forwards the 1xx it receives (RFC 9110 §15.2; RFC 8297
//! for `103 Early Hints`).
//!
//! One [`H2Pool`] per upstream peer: multiplexed connections ([`conn`]), the choice of one per
//! stream ([`pool`]), and one request's exchange ([`stream`]). A failed try reports the
//! [`Stage`] it failed at and whether its connection had answered before, so the send loop's
//! stale-connection and retry rules (`stale`, `retry`) judge it as they judge hyper's errors:
//! a stream the peer refused (RST_STREAM REFUSED_STREAM, RFC 9113 §8.7) or left unprocessed
//! by a GOAWAY (§6.8) is sent again on a new connection.

mod conn;
pub mod pool;
mod stream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body::Body as _;

pub use conn::{Dialer, NotH2};
pub use stream::H2Body;

use super::body::UpstreamBody;
use crate::body::{BoxError, EdgeBody};
use crate::hints::HintRelay;

/// Where a try on an HTTP/2 upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Making the connection (TCP, TLS, the HTTP/2 preface): nothing was sent.
    Connect,
    /// Opening the stream on a connection that had become unusable: nothing was sent.
    Open,
    /// After the request went out, before the final response head.
    Response,
}

/// A failed try on an HTTP/2 upstream.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct H2Failed {
    pub stage: Stage,
    /// The connection had delivered a response before this try.
    pub reused: bool,
    #[source]
    source: BoxError,
}

impl H2Failed {
    fn new(stage: Stage, reused: bool, source: impl Into<BoxError>) -> Self {
        Self { stage, reused, source: source.into() }
    }
}

/// What a pool needs to open connections.
#[derive(Clone)]
pub struct PoolConfig {
    pub dialer: Dialer,
    /// `upstream.h2_max_connections`.
    pub max_connections: usize,
    /// `upstream.connect_timeout` (or the service's).
    pub connect_timeout: Duration,
    /// `upstream.pool_idle_timeout`.
    pub idle_timeout: Duration,
}

/// The HTTP/2 connections to one upstream peer.
pub struct H2Pool {
    config: PoolConfig,
    conns: Mutex<Vec<Arc<conn::H2Conn>>>,
    /// One dial at a time: concurrent requests to a peer with no room wait for the one
    /// connection being made rather than each opening their own.
    dialing: tokio::sync::Mutex<()>,
    /// An ALPN-learning pool found the peer picks http/1.1 ([`Dialer::OriginAlpn`]).
    http1: AtomicBool,
}

/// How a request to a peer with a pool goes.
pub enum Route {
    /// Over HTTP/2, through the pool.
    H2,
    /// Over HTTP/1.1, through hyper's client: the origin picked http/1.1 by ALPN.
    Http1,
    /// Nowhere: the connection that was to tell failed.
    Failed(H2Failed),
}

impl H2Pool {
    pub fn new(config: PoolConfig) -> Self {
        Self {
            config,
            conns: Mutex::new(Vec::new()),
            dialing: tokio::sync::Mutex::new(()),
            http1: AtomicBool::new(false),
        }
    }

    /// How a request to `uri` goes. A pool that learns by ALPN dials once to find out (the
    /// connection stays in the pool when it speaks h2); an origin that picks http/1.1 is
    /// remembered for the life of this config version, and costs that one handshake.
    pub async fn route(&self, uri: &Uri) -> Route {
        if !matches!(self.config.dialer, Dialer::OriginAlpn(_)) {
            return Route::H2;
        }
        if self.http1.load(Ordering::Relaxed) {
            return Route::Http1;
        }
        match self.checkout(uri, false).await {
            Ok(_) => Route::H2,
            Err(e) if e.source.is::<NotH2>() => {
                tracing::debug!(origin = %origin_of(uri), "origin chose http/1.1 by ALPN");
                self.http1.store(true, Ordering::Relaxed);
                Route::Http1
            }
            Err(e) => Route::Failed(e),
        }
    }

    /// Sends `req` (an absolute URI) on a pooled connection, or on a new one when `fresh`; the
    /// upstream's 1xx go to `relay` as they arrive.
    pub async fn send(
        &self,
        req: Request<EdgeBody>,
        relay: Option<&HintRelay>,
        fresh: bool,
    ) -> Result<Response<UpstreamBody>, H2Failed> {
        let conn = self.checkout(req.uri(), fresh).await?;
        let reused = conn.shared_reused();
        let closed = || H2Failed::new(Stage::Open, reused, "upstream HTTP/2 connection closed");
        let (send, slot) = conn.enter().ok_or_else(closed)?;
        let mut send = send.ready().await.map_err(|e| {
            conn.retire();
            H2Failed::new(Stage::Open, reused, e)
        })?;
        let (parts, body) = req.into_parts();
        let mut head = Request::from_parts(parts, ());
        let method = head.method().clone();
        prepare(&method, head.headers_mut(), body.is_end_stream(), body.size_hint().exact());
        let eos = body.is_end_stream();
        let (fut, tx) = send.send_request(head, eos).map_err(|e| {
            conn.retire();
            H2Failed::new(Stage::Open, reused, e)
        })?;
        if !eos {
            tokio::spawn(stream::pump(body, tx));
        }
        let resp = stream::response(fut, relay).await.map_err(|e| {
            if e.is_go_away() || e.is_io() {
                conn.retire();
            }
            H2Failed::new(Stage::Response, reused, e)
        })?;
        slot.shared().answered();
        let (parts, recv) = resp.into_parts();
        let body = H2Body::new(recv, &parts.headers, slot);
        Ok(Response::from_parts(parts, UpstreamBody::H2(body)))
    }

    /// A connection for a stream to `uri`'s origin: one with room, else a new one (or, at the
    /// bound, the least loaded to wait on).
    async fn checkout(&self, uri: &Uri, fresh: bool) -> Result<Arc<conn::H2Conn>, H2Failed> {
        let origin = origin_of(uri);
        if !fresh && let Some(found) = self.choose(&origin) {
            return Ok(found);
        }
        let _dialing = self.dialing.lock().await;
        if !fresh && let Some(found) = self.choose(&origin) {
            return Ok(found);
        }
        let c = &self.config;
        let opened = conn::open(&c.dialer, uri.clone(), c.connect_timeout, c.idle_timeout)
            .await
            .map_err(|e| H2Failed::new(Stage::Connect, false, e))?;
        let opened = Arc::new(opened);
        if let Ok(mut conns) = self.conns.lock() {
            conns.retain(|c| c.is_usable());
            conns.push(opened.clone());
        }
        Ok(opened)
    }

    fn choose(&self, origin: &str) -> Option<Arc<conn::H2Conn>> {
        let mut conns = self.conns.lock().ok()?;
        conns.retain(|c| c.is_usable());
        let mine: Vec<&Arc<conn::H2Conn>> = conns.iter().filter(|c| c.origin == origin).collect();
        let loads: Vec<pool::Load> = mine.iter().map(|c| c.load()).collect();
        match pool::pick(&loads, self.config.max_connections) {
            pool::Pick::Use(i) | pool::Pick::Queue(i) => mine.get(i).map(|c| Arc::clone(c)),
            pool::Pick::Dial => None,
        }
    }
}

fn origin_of(uri: &Uri) -> String {
    format!("{}://{}", uri.scheme_str().unwrap_or("http"), uri.authority().map_or("", |a| a.as_str()))
}

/// The request head as HTTP/2 carries it, as hyper's client made it: no connection-specific
/// field (RFC 9113 §8.2.2: Connection and the fields it names, Keep-Alive, Proxy-Connection,
/// Transfer-Encoding, Upgrade; TE only as "trailers"), and a Content-Length when the body's
/// length is known (RFC 9110 §8.6), except 0 for a method without defined body semantics.
fn prepare(method: &Method, headers: &mut HeaderMap, empty: bool, exact: Option<u64>) {
    for name in crate::http::hop::connection_named(headers) {
        headers.remove(name);
    }
    headers.remove(CONNECTION);
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
    headers.remove(TRANSFER_ENCODING);
    headers.remove(UPGRADE);
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
    let defined = !matches!(*method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::CONNECT);
    let len = if empty { Some(0) } else { exact };
    if let Some(len) = len
        && (len != 0 || defined)
        && !headers.contains_key(CONTENT_LENGTH)
    {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in list {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_request_head_carries_no_connection_specific_field() {
        // (case, method, fields in, body empty, exact length, fields out)
        type Fields = Vec<(&'static str, &'static str)>;
        type Case = (&'static str, Method, Fields, bool, Option<u64>, Fields);
        let cases: [Case; 6] = [
            (
                "RFC 9113 §8.2.2: Connection and the fields it names go",
                Method::GET,
                vec![("connection", "x-hop, keep-alive"), ("x-hop", "1"), ("keep-alive", "5"), ("x-end", "1")],
                true,
                Some(0),
                vec![("x-end", "1")],
            ),
            (
                "§8.2.2: Transfer-Encoding, Upgrade, Proxy-Connection go",
                Method::POST,
                vec![("transfer-encoding", "chunked"), ("upgrade", "websocket"), ("proxy-connection", "x")],
                false,
                None,
                vec![],
            ),
            (
                "§8.2.2: TE: trailers stays",
                Method::GET,
                vec![("te", "trailers")],
                true,
                Some(0),
                vec![("te", "trailers")],
            ),
            ("§8.2.2: any other TE goes", Method::GET, vec![("te", "gzip")], true, Some(0), vec![]),
            (
                "RFC 9110 §8.6: a known length is sent",
                Method::POST,
                vec![],
                false,
                Some(5),
                vec![("content-length", "5")],
            ),
            ("§8.6: no Content-Length: 0 on a GET", Method::GET, vec![], true, Some(0), vec![]),
        ];
        for (name, method, input, empty, exact, expected) in cases {
            let mut headers = fields(&input);
            prepare(&method, &mut headers, empty, exact);
            let got: Vec<(String, String)> =
                headers.iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_string())).collect();
            let want: Vec<(String, String)> = expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
