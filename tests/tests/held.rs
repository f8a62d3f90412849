//! Attacks the node already held off when issue 18's attack run was made, kept as regressions:
//! request smuggling by odd body framing (RFC 9112 §6), HTTP/2 rapid reset (CVE-2023-44487) and
//! CONTINUATION floods (CVE-2024-27316 and kin), each against the real node with a recording origin.

use std::time::Duration;

use outpost_tests::{Reply, Req, raw_exchange, shop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Requests whose body framing is ambiguous or invalid. Each is refused before the origin sees
/// anything: a front end and a back end that read such framing differently are how requests are
/// smuggled (RFC 9112 §6.1, §6.3, §11.2).
const SMUGGLING: &[(&str, &str)] = &[
    // §6.1: Transfer-Encoding and Content-Length together.
    ("cl+te", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te+cl", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
    // §6.1: chunked must be the final coding; unknown codings are not understood.
    ("te-xchunked", "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("te-chunked-identity", "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    ("te-twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
    // §5.1: no whitespace between a field name and the colon.
    ("te-space-colon", "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    // §6.3 and RFC 9110 §8.6: Content-Length is 1*DIGIT; differing values are an error.
    ("cl-plus", "Content-Length: +5\r\n\r\nhello"),
    ("cl-hex", "Content-Length: 0x5\r\n\r\nhello"),
    ("cl-list", "Content-Length: 5, 6\r\n\r\nhello!"),
    ("cl-negative", "Content-Length: -1\r\n\r\n"),
];

#[tokio::test]
async fn ambiguous_body_framing_is_refused_before_the_origin() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/echo", Reply::ok("echo"));
    for (name, rest) in SMUGGLING {
        let request = format!("POST /echo HTTP/1.1\r\nHost: shop.test\r\n{rest}");
        let resp = raw_exchange(node.http_addr(), request.as_bytes()).await;
        if matches!(*name, "cl+te" | "te+cl") {
            // RFC 9112 §6.1: with both, a server may reject the message or read it as chunked,
            // dropping Content-Length, and then MUST close the connection. Read as chunked, the
            // origin gets the empty body and never the 5 bytes Content-Length announced.
            let Ok(resp) = resp else { continue };
            if resp.status == 400 {
                continue;
            }
            assert_eq!(resp.status, 200, "{name}: got {}", resp.head);
            assert_eq!(resp.header("connection"), Some("close"), "{name}: connection kept open: {}", resp.head);
            let seen = origin.requests_for("/echo").pop().ok_or_else(|| anyhow::anyhow!("{name}: no request"))?;
            assert!(seen.body.is_empty(), "{name}: origin got {:?}", seen.body);
            assert_ne!(seen.header("content-length"), Some("5"), "{name}: stale Content-Length forwarded");
            continue;
        }
        // A response of 400 or 501 (RFC 9112 §6.1 for codings not understood), or a connection
        // closed without one: never a 2xx, and never a request at the origin.
        if let Ok(resp) = resp {
            assert!(matches!(resp.status, 400 | 501), "{name}: got {}", resp.head);
        }
    }
    let framed = origin.count("/echo");
    assert!(framed <= 2, "{framed} ambiguous requests reached the origin");
    // The node serves on: a well-framed request goes through.
    let ok = raw_exchange(
        node.http_addr(),
        b"POST /echo HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await?;
    assert_eq!(ok.status, 200, "{}", ok.head);
    assert_eq!(origin.count("/echo"), framed + 1);
    Ok(())
}

/// HTTP/2 frames written by hand: what a hostile client sends, byte for byte (RFC 9113 §4.1).
mod h2frame {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const CANCEL: u32 = 0x8;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = Vec::with_capacity(9 + payload.len());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// RFC 7541 §6.2.2: a literal field without indexing, new name, no Huffman coding.
    pub fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
        out.push(0x00);
        integer(out, name.len(), 7);
        out.extend_from_slice(name.as_bytes());
        integer(out, value.len(), 7);
        out.extend_from_slice(value.as_bytes());
    }

    /// RFC 7541 §5.1: an integer with an n-bit prefix (the prefix byte's other bits are zero).
    fn integer(out: &mut Vec<u8>, mut value: usize, prefix_bits: u32) {
        let max = (1usize << prefix_bits) - 1;
        if value < max {
            out.push(value as u8);
            return;
        }
        out.push(max as u8);
        value -= max;
        while value >= 128 {
            out.push((value % 128 + 128) as u8);
            value /= 128;
        }
        out.push(value as u8);
    }

    pub fn get(path: &str) -> Vec<u8> {
        let mut block = Vec::new();
        literal(&mut block, ":method", "GET");
        literal(&mut block, ":scheme", "http");
        literal(&mut block, ":authority", "shop.test");
        literal(&mut block, ":path", path);
        block
    }
}

/// Reads frames until the peer closes the connection or `limit` passes; whether a GOAWAY came.
async fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> bool {
    let mut goaway = false;
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 16384];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                goaway |= buf[3] == h2frame::GOAWAY;
                buf.drain(..9 + len);
            }
        }
    };
    let _ = tokio::time::timeout(limit, read).await;
    goaway
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn h2_rapid_reset_does_not_reach_the_origin_and_the_connection_is_closed() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route_prefix("/slow/", |_| Reply::ok("slow").delay(Duration::from_millis(300)));
    origin.route("/after", Reply::ok("after"));
    let mut tcp = TcpStream::connect(node.http_addr()).await?;
    let mut out = h2frame::PREFACE.to_vec();
    out.extend(h2frame::frame(h2frame::SETTINGS, 0, 0, &[]));
    tcp.write_all(&out).await?;
    // Open a stream and cancel it at once, 2,000 times, on distinct paths so that no collapsing
    // hides what reaches the origin.
    const STREAMS: u32 = 2000;
    let mut sent = 0;
    for i in 0..STREAMS {
        let id = 1 + 2 * i;
        let mut burst = h2frame::frame(
            h2frame::HEADERS,
            h2frame::END_STREAM | h2frame::END_HEADERS,
            id,
            &h2frame::get(&format!("/slow/{i}")),
        );
        burst.extend(h2frame::frame(h2frame::RST_STREAM, 0, id, &h2frame::CANCEL.to_be_bytes()));
        if tcp.write_all(&burst).await.is_err() {
            break; // the node closed the connection: what it should do
        }
        sent += 1;
    }
    let goaway = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    // hyper's h2 server counts streams reset before they were served and sends GOAWAY
    // (ENHANCE_YOUR_CALM) past `max_pending_accept_reset_streams`.
    assert!(goaway || sent < STREAMS, "the node took {sent} rapid resets without closing the connection");
    // Let whatever did get through arrive, then count: a handful at most, never the flood.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reached = origin.requests().iter().filter(|r| r.path.starts_with("/slow/")).count();
    assert!(reached < 100, "{reached} of {sent} reset streams reached the origin");
    let after = outpost_tests::client::send(node.http_addr(), &Req::get("shop.test", "/after")).await?;
    assert_eq!(after.status, 200);
    Ok(())
}

#[tokio::test]
async fn h2_continuation_flood_is_cut_off_with_flat_memory() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    origin.route("/after", Reply::ok("after"));
    let pid = node.pid().ok_or_else(|| anyhow::anyhow!("node has no pid"))?;
    let before = rss_kib(pid).unwrap_or(0);
    let mut tcp = TcpStream::connect(node.http_addr()).await?;
    let mut out = h2frame::PREFACE.to_vec();
    out.extend(h2frame::frame(h2frame::SETTINGS, 0, 0, &[]));
    // A header block that never ends: HEADERS without END_HEADERS, then CONTINUATION frames of
    // 16 KiB each (the default SETTINGS_MAX_FRAME_SIZE), 64 MiB in all if nothing stops it.
    out.extend(h2frame::frame(h2frame::HEADERS, h2frame::END_STREAM, 1, &h2frame::get("/flood")));
    tcp.write_all(&out).await?;
    let mut junk = Vec::new();
    while junk.len() < 16_000 {
        h2frame::literal(&mut junk, "x-junk", &"a".repeat(100));
    }
    let continuation = h2frame::frame(h2frame::CONTINUATION, 0, 1, &junk);
    let mut written = 0usize;
    for _ in 0..4096 {
        match tokio::time::timeout(Duration::from_secs(10), tcp.write_all(&continuation)).await {
            Ok(Ok(())) => written += continuation.len(),
            _ => break, // closed, or no longer read: either way the flood is cut off
        }
    }
    assert!(written < 4096 * continuation.len(), "the node read a 64 MiB header block");
    let _ = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    let after_kib = rss_kib(pid).unwrap_or(0);
    // The bound is the header list size, a few hundred KiB; 64 MiB of growth means it buffered
    // the flood.
    assert!(
        after_kib.saturating_sub(before) < 48 * 1024,
        "node RSS grew from {before} KiB to {after_kib} KiB during the flood"
    );
    assert_eq!(origin.count("/flood"), 0);
    let after = outpost_tests::client::send(node.http_addr(), &Req::get("shop.test", "/after")).await?;
    assert_eq!(after.status, 200);
    Ok(())
}

/// A client that never opens its stream window (SETTINGS_INITIAL_WINDOW_SIZE = 0, RFC 9113
/// §6.9.2) while asking for a 64 MiB response: the node's h2 glue sends DATA only as the window
/// allows and reads the origin only as it sends, so it holds its send buffer, not the object.
#[tokio::test]
async fn h2_zero_window_holds_a_bounded_buffer_not_the_object() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    // Streamed in 1 MiB chunks, so the origin counts the body finished only once the node
    // has read all 64 of them.
    let mib = bytes::Bytes::from(vec![b'x'; 1024 * 1024]);
    let chunks = (0..64).map(|_| outpost_tests::Chunk::Data(mib.clone())).collect();
    origin.route("/big", Reply::ok("").chunks(chunks).cache_control("no-store"));
    origin.route("/after", Reply::ok("after"));
    let pid = node.pid().ok_or_else(|| anyhow::anyhow!("node has no pid"))?;
    let before = rss_kib(pid).unwrap_or(0);
    let tcp = TcpStream::connect(node.http_addr()).await?;
    let (mut client, conn) =
        h2::client::Builder::new().initial_window_size(0).handshake::<_, bytes::Bytes>(tcp).await?;
    let conn = tokio::spawn(conn);
    let (resp, _) = client.send_request(http::Request::get("http://shop.test/big").body(())?, true)?;
    // HEADERS need no window: the response has begun.
    let resp = tokio::time::timeout(Duration::from_secs(15), resp).await??;
    assert_eq!(resp.status(), 200);
    // The origin would finish within this bound if the node read it regardless of the client;
    // a node that holds (the expected case) never finishes it, so this cannot fail spuriously.
    let finished = outpost_tests::eventually(Duration::from_secs(3), || origin.finished("/big") > 0).await;
    assert!(!finished, "the node read the whole 64 MiB object for a client with a closed window");
    let after_kib = rss_kib(pid).unwrap_or(0);
    assert!(
        after_kib.saturating_sub(before) < 32 * 1024,
        "node RSS grew from {before} KiB to {after_kib} KiB for one zero-window stream"
    );
    drop(resp);
    drop(client);
    conn.abort();
    let after = outpost_tests::client::send(node.http_addr(), &Req::get("shop.test", "/after")).await?;
    assert_eq!(after.status, 200);
    Ok(())
}
