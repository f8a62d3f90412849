//! Bodies stream through the node: the client sees the first bytes before the origin has sent the
//! last, objects over max_object_size pass uncached, and large cacheable objects come back intact.

use std::time::Duration;

use bytes::Bytes;
use outpost_tests::client::send_streaming;
use outpost_tests::{Chunk, Gate, Reply, Req, shop, shop_with};

/// A body whose bytes differ by position, so truncation or reordering shows.
fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

#[tokio::test]
async fn first_chunk_reaches_the_client_before_the_origin_finishes() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let gate = Gate::new();
    origin.route(
        "/stream",
        Reply::ok("").cache_control("max-age=60").chunks(vec![
            Chunk::Data(Bytes::from_static(b"first part;")),
            Chunk::Wait(gate.clone()),
            Chunk::Data(Bytes::from_static(b"second part")),
        ]),
    );
    let mut streaming = send_streaming(node.http_addr(), &Req::get("shop.test", "/stream")).await?;
    assert_eq!(streaming.response.status(), 200);

    // The origin holds the second chunk until the gate opens; a node that buffers the whole body
    // sends nothing before then.
    let mut received = Vec::new();
    while received.len() < b"first part;".len() {
        let chunk = tokio::time::timeout(Duration::from_secs(5), streaming.next_data())
            .await
            .map_err(|_| anyhow::anyhow!("no body bytes while the origin waits: the node buffers"))??
            .ok_or_else(|| anyhow::anyhow!("body ended early"))?;
        received.extend_from_slice(&chunk);
    }
    assert!(!gate.is_open());
    assert_eq!(origin.finished("/stream"), 0, "the origin had not finished");
    assert_eq!(&received[..], b"first part;");

    gate.open();
    received.extend_from_slice(&streaming.rest().await?);
    assert_eq!(&received[..], b"first part;second part");

    let again = node.get("shop.test", "/stream").await?;
    assert!(again.cache_status().hit(), "a streamed response is still stored: {}", again.summary());
    assert_eq!(again.text(), "first part;second part");
    assert_eq!(origin.count("/stream"), 1);
    Ok(())
}

#[tokio::test]
async fn object_over_max_object_size_streams_through_uncached() -> anyhow::Result<()> {
    let (origin, node) = shop_with(|mut c| {
        c.max_object_size = "64KiB".into();
        c
    })
    .await?;
    let big = pattern(200 * 1024);
    // Known length: too big from the head.
    origin.route("/sized", Reply::ok(big.clone()).cache_control("max-age=60"));
    // Chunked: found too big while streaming.
    let chunks = big.chunks(16 * 1024).map(|c| Chunk::Data(Bytes::copy_from_slice(c))).collect();
    origin.route("/chunked", Reply::ok("").cache_control("max-age=60").chunks(chunks));

    for path in ["/sized", "/chunked"] {
        for _ in 0..2 {
            let resp = node.get("shop.test", path).await?;
            assert_eq!(resp.status, 200, "{path}: {}", resp.summary());
            assert_eq!(resp.body.len(), big.len(), "{path}");
            assert!(resp.body == big, "{path}: body corrupted");
            assert!(!resp.cache_status().hit(), "{path}: {}", resp.summary());
            if path == "/sized" {
                // Content-Length says too big before any byte: contracts say no `stored`.
                assert!(!resp.cache_status().stored(), "{path}: {}", resp.summary());
            }
        }
        assert_eq!(origin.count(path), 2, "{path} was cached despite max_object_size");
    }
    Ok(())
}

#[tokio::test]
async fn large_cacheable_object_comes_back_intact() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let big = pattern(3 * 1024 * 1024 + 17);
    origin.route("/big", Reply::ok(big.clone()).cache_control("max-age=60"));
    let miss = node.get("shop.test", "/big").await?;
    assert!(miss.body == big, "miss body corrupted ({} bytes)", miss.body.len());
    let hit = node.get("shop.test", "/big").await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    assert_eq!(hit.body.len(), big.len());
    assert!(hit.body == big, "hit body corrupted");
    let tail = node.send(Req::get("shop.test", "/big").header("range", "bytes=-17")).await?;
    assert_eq!(tail.status, 206);
    assert_eq!(&tail.body[..], &big[big.len() - 17..]);
    assert_eq!(origin.count("/big"), 1);
    Ok(())
}

#[tokio::test]
async fn origin_stalling_mid_body_is_cut_off_and_not_stored() -> anyhow::Result<()> {
    let (origin, node) = shop_with(|mut c| {
        c.between_bytes_timeout = Some("500ms".into());
        c
    })
    .await?;
    let never = Gate::new();
    origin.route(
        "/stall",
        Reply::ok("").cache_control("max-age=60").header("content-length", "20").chunks(vec![
            Chunk::Data(Bytes::from_static(b"0123456789")),
            Chunk::Wait(never.clone()),
            Chunk::Data(Bytes::from_static(b"abcdefghij")),
        ]),
    );
    let streaming = send_streaming(node.http_addr(), &Req::get("shop.test", "/stall")).await?;
    let outcome = tokio::time::timeout(Duration::from_secs(5), streaming.rest()).await;
    match outcome {
        Err(_) => anyhow::bail!("the node kept the client waiting past between_bytes_timeout"),
        Ok(Ok(body)) => anyhow::bail!("a truncated body was delivered as complete: {body:?}"),
        Ok(Err(_)) => {} // the client sees the response cut off
    }
    never.open();
    let again = node.get("shop.test", "/stall").await?;
    assert!(!again.cache_status().hit(), "a truncated body was stored: {}", again.summary());
    assert_eq!(again.text(), "0123456789abcdefghij");
    assert_eq!(origin.count("/stall"), 2);
    Ok(())
}
