//! The h1 and h2 glue on a real loopback socket with real clients (the `h2` crate's client, a
//! raw TCP socket for HTTP/1.x), and a handler standing in for the pipeline: it queues a
//! `103 Early Hints` and holds the final response until the client has seen the hint, so a
//! hint written only with (or after) the final head fails the test.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use super::conns::{Admission, Conns};
use super::{ConnBuilders, Handler, Serving};
use crate::body::{self, BoxError, EdgeBody};
use crate::ctx::ConnInfo;
use crate::interim::{InterimHead, InterimSender};

/// Every wait is bounded; none is a timing assertion.
const LIMIT: Duration = Duration::from_secs(10);

/// More than loopback's socket buffers hold, so hyper is still flushing it when the next
/// pipelined request's hint is ready.
const BIG: usize = 64 * 1024 * 1024;

/// Sends a 103 (two Link fields), then answers 200 once `seen` is notified (or after LIMIT).
#[derive(Clone)]
struct Hinting {
    seen: Arc<Notify>,
    /// Told once the hint is queued.
    hinted: Arc<Notify>,
}

impl Hinting {
    fn new(seen: &Arc<Notify>) -> Self {
        Self { seen: seen.clone(), hinted: Arc::new(Notify::new()) }
    }
}

fn hint() -> InterimHead {
    let mut headers = HeaderMap::new();
    headers.append("link", HeaderValue::from_static("</a.css>; rel=preload; as=style"));
    headers.append("link", HeaderValue::from_static("</b.js>; rel=preload; as=script"));
    InterimHead { status: StatusCode::EARLY_HINTS, headers }
}

impl Handler for Hinting {
    fn handle<B>(&self, _conn: Arc<ConnInfo>, req: Request<B>) -> impl Future<Output = Response<EdgeBody>> + Send
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let sender = req.extensions().get::<InterimSender>().cloned();
        let seen = self.seen.clone();
        let hinted = self.hinted.clone();
        let big = req.uri().path() == "/big";
        async move {
            if big {
                // No hint: a body larger than the socket buffers, for the pipelining test.
                return Response::new(body::full(vec![b'x'; BIG]));
            }
            let queued = sender.map(|s| s.send(hint()).is_ok());
            if queued == Some(true) {
                hinted.notify_one();
                let _ = tokio::time::timeout(LIMIT, seen.notified()).await;
            }
            let mut resp = Response::new(body::full("final"));
            resp.headers_mut().insert("x-final", HeaderValue::from_static("1"));
            resp
        }
    }

    fn unparsed(&self, _conn: &Arc<ConnInfo>, _status: u16, _error: &str) {}
}

/// A listener on port 0 serving one connection with the h1 glue (`h2 = false`) or h2 glue.
async fn serve_one(h2: bool, handler: Hinting) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.expect("accept");
        let builders = ConnBuilders::new(&outpost_config::LimitsConfig::default());
        let conns = Conns::new(4);
        let Admission::Admitted(slot) = conns.admit() else { panic!("admitted") };
        let graceful = GracefulShutdown::new();
        let (_keep, shutdown) = watch::channel(false);
        let serving = Serving { handler, watcher: graceful.watcher(), activity: slot.activity.clone(), shutdown };
        let conn = Arc::new(ConnInfo { peer, local: addr, tls: false, sni: None, cert_hosts: None });
        if h2 {
            super::serve_h2(tcp, conn, None, &builders.h2, serving).await;
        } else {
            super::serve_h1(tcp, conn, None, &builders.h1, serving).await;
        }
    });
    addr
}

#[tokio::test]
async fn an_h2_client_sees_the_103_before_the_200_and_not_in_it() {
    let seen = Arc::new(Notify::new());
    let addr = serve_one(true, Hinting::new(&seen)).await;
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get("http://shop.test/").body(()).expect("request");
    let (mut resp, _) = client.send_request(req, true).expect("send");
    let informational = tokio::time::timeout(LIMIT, std::future::poll_fn(|cx| resp.poll_informational(cx)))
        .await
        .expect("a 1xx within the limit")
        .expect("a 1xx, not the end")
        .expect("no error");
    // RFC 9113 §8.1: the 103 is a HEADERS frame ahead of the final one, with every Link field.
    assert_eq!(informational.status(), StatusCode::EARLY_HINTS);
    let links: Vec<_> = informational.headers().get_all("link").iter().collect();
    assert_eq!(links.len(), 2, "RFC 8297 §2: every Link field of the hint");
    seen.notify_one();
    let resp = tokio::time::timeout(LIMIT, resp).await.expect("final within the limit").expect("final");
    assert_eq!(resp.status(), StatusCode::OK);
    // RFC 8297 §2: the hint's fields are not the final response's.
    assert!(resp.headers().get("link").is_none(), "the 103's fields leaked into the 200");
    assert_eq!(resp.headers().get("x-final").map(HeaderValue::as_bytes), Some(&b"1"[..]));
    let mut body = resp.into_body();
    let data = tokio::time::timeout(LIMIT, body.data()).await.expect("body").expect("data").expect("ok");
    assert_eq!(&data[..], b"final");
}

/// Reads from `tcp` until `needle` has arrived (bounded).
async fn read_until(tcp: &mut TcpStream, wire: &mut Vec<u8>, needle: &[u8]) {
    let mut buf = [0u8; 4096];
    while !wire.windows(needle.len()).any(|w| w == needle) {
        let n = tokio::time::timeout(LIMIT, tcp.read(&mut buf)).await.expect("read within the limit").expect("read");
        assert!(n > 0, "closed before {:?}; got {:?}", String::from_utf8_lossy(needle), String::from_utf8_lossy(wire));
        wire.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn an_http11_client_reads_the_103_then_the_200() {
    let seen = Arc::new(Notify::new());
    let addr = serve_one(false, Hinting::new(&seen)).await;
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // Two requests on one connection: the second's hint goes after the first's whole response.
    for round in 0..2 {
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: shop.test\r\n\r\n").await.expect("write");
        let mut wire = Vec::new();
        read_until(&mut tcp, &mut wire, b"\r\n\r\n").await;
        let hint = "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload; as=style\r\n\
                    link: </b.js>; rel=preload; as=script\r\n\r\n";
        assert!(wire.starts_with(hint.as_bytes()), "round {round}: {:?}", String::from_utf8_lossy(&wire));
        seen.notify_one();
        read_until(&mut tcp, &mut wire, b"final").await;
        let rest = String::from_utf8_lossy(&wire[hint.len()..]).to_string();
        assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "round {round}: {rest:?}");
        assert!(!rest.to_ascii_lowercase().contains("link:"), "the 103's fields leaked into the 200: {rest:?}");
    }
}

#[tokio::test]
async fn an_http10_client_gets_no_1xx() {
    let seen = Arc::new(Notify::new());
    let addr = serve_one(false, Hinting::new(&seen)).await;
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.0\r\nhost: shop.test\r\n\r\n").await.expect("write");
    let mut wire = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut wire)).await.expect("closed within the limit").expect("read");
    let text = String::from_utf8_lossy(&wire);
    // RFC 9110 §15.2: a server MUST NOT send a 1xx response to an HTTP/1.0 client.
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n") || text.starts_with("HTTP/1.0 200 OK\r\n"), "{text:?}");
    assert!(!text.contains(" 103 "), "{text:?}");
}

#[tokio::test]
async fn a_pipelined_requests_hint_waits_for_the_previous_response_to_be_on_the_wire() {
    let seen = Arc::new(Notify::new());
    // A permit in advance: the hinting request answers right after its hint.
    seen.notify_one();
    let handler = Hinting::new(&seen);
    let hinted = handler.hinted.clone();
    let addr = serve_one(false, handler).await;
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // RFC 9112 §9.3.2: pipelined requests, answered in order. Nothing is read until both are
    // sent, so the first response fills the socket and hyper holds the rest of it unflushed.
    let requests = b"GET /big HTTP/1.1\r\nhost: shop.test\r\n\r\n\
                     GET / HTTP/1.1\r\nhost: shop.test\r\nconnection: close\r\n\r\n";
    tcp.write_all(requests).await.expect("write");
    // Not reading yet, so the first response fills the socket. (hyper 1.12 was seen not to
    // poll the next request while its flush is pending, so this usually waits out the bound;
    // the guard for the case where it does is unit-tested in `h1.rs`. A bound, not an
    // assertion: reading starts either way.)
    let _ = tokio::time::timeout(Duration::from_secs(1), hinted.notified()).await;
    let mut wire = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut wire)).await.expect("closed within the limit").expect("read");
    let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").expect("first head") + 4;
    assert!(wire.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&wire[..head_end]));
    let body_end = head_end + BIG;
    assert!(wire.len() > body_end, "the first body was cut short");
    assert!(wire[head_end..body_end].iter().all(|b| *b == b'x'), "bytes inside the first body are not its own");
    let rest = String::from_utf8_lossy(&wire[body_end..]);
    assert!(
        rest.starts_with("HTTP/1.1 103 Early Hints\r\n"),
        "the hint is not right after the first response: {rest:?}"
    );
    assert!(rest.contains("\r\n\r\nHTTP/1.1 200 OK\r\n") && rest.ends_with("final"), "{rest:?}");
}
