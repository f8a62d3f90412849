//! Compression in the transform phase: the coding negotiated from `Accept-Encoding`, each
//! variant made once from one base object and cached, exact lengths, ETags per variant, ranges
//! cut from the variant, and no double compression. Every body is decoded here and compared
//! with the origin's bytes.

use std::io::Read;

use bytes::Bytes;
use outpost_tests::node::SETTLE;
use outpost_tests::{Chunk, EdgeNode, Origin, Reply, Req, Resp, shop};
use serde_json::json;

/// A JavaScript-like text: compressible, and different at every offset.
fn script(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        let line = format!("function f{i}(a, b) {{ return a * {} + b.length; }} // {}\n", i % 97, i * 7919 % 10007);
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn decode(coding: Option<&str>, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(body),
        Some("br") => {
            brotli::Decompressor::new(body, 4096).read_to_end(&mut out)?;
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
        }
        Some("zstd") => out = zstd::decode_all(body)?,
        Some(other) => anyhow::bail!("unexpected coding {other}"),
    }
    Ok(out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

async fn get(node: &EdgeNode, path: &str, accept_encoding: Option<&str>) -> anyhow::Result<Resp> {
    let mut req = Req::get("shop.test", path);
    if let Some(ae) = accept_encoding {
        req = req.header("accept-encoding", ae);
    }
    node.send(req).await
}

fn varies_on_accept_encoding(resp: &Resp) -> bool {
    resp.headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim().eq_ignore_ascii_case("accept-encoding"))
}

#[tokio::test]
async fn each_coding_is_negotiated_made_once_and_decodes_to_the_origin_bytes() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let body = script(200_000);
    origin.route(
        "/app.js",
        Reply::ok(body.clone())
            .header("content-type", "application/javascript")
            .header("etag", "\"v1\"")
            .cache_control("max-age=60"),
    );

    for coding in ["br", "gzip", "zstd"] {
        let first = get(&node, "/app.js", Some(coding)).await?;
        assert_eq!(first.status, 200, "{}", first.summary());
        assert_eq!(first.header("content-encoding"), Some(coding), "{}", first.summary());
        assert!(decode(Some(coding), &first.body)? == body, "{coding} body does not decode to the origin's");
        assert!(first.body.len() < body.len() / 3, "{coding}: {} of {} bytes", first.body.len(), body.len());
        assert!(varies_on_accept_encoding(&first), "{}", first.summary());
        assert_eq!(first.header("etag"), Some(format!("\"v1-{coding}\"").as_str()));
        tokio::time::sleep(SETTLE).await;

        // Stored: the second is a hit with an exact length, and HEAD agrees with GET.
        let second = get(&node, "/app.js", Some(coding)).await?;
        assert!(second.cache_status().hit(), "{}", second.summary());
        assert_eq!(second.body, first.body, "{coding}: the variant changed between requests");
        assert_eq!(second.header("content-length"), Some(second.body.len().to_string().as_str()));
        let head = node.send(Req::head("shop.test", "/app.js").header("accept-encoding", coding)).await?;
        assert_eq!(head.header("content-length"), second.header("content-length"), "HEAD {coding}");
        assert_eq!(head.header("content-encoding"), Some(coding));
        assert!(head.body.is_empty());
    }
    let plain = get(&node, "/app.js", None).await?;
    assert!(plain.header("content-encoding").is_none(), "{}", plain.summary());
    assert!(plain.body[..] == body[..]);
    assert!(varies_on_accept_encoding(&plain), "identity responses vary too: {}", plain.summary());

    assert_eq!(origin.count("/app.js"), 1, "one base object for every coding");
    assert_eq!(origin.last("/app.js")?.header("accept-encoding"), Some("identity"));
    Ok(())
}

#[tokio::test]
async fn q_values_decide_and_refusals_are_honoured() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let body = script(20_000);
    origin.route("/a.css", Reply::ok(body.clone()).header("content-type", "text/css").cache_control("max-age=60"));
    let cases: [(&str, Option<&str>); 8] = [
        ("gzip, br", Some("br")),
        ("gzip;q=1, br;q=0.5", Some("gzip")),
        ("br;q=0, gzip", Some("gzip")),
        ("br;q=0, gzip;q=0, zstd;q=0", None),
        ("*", Some("br")),
        ("*;q=0, identity", None),
        ("compress, deflate", None),
        ("identity;q=1, gzip;q=0.5", None),
    ];
    for (accept, want) in cases {
        let resp = get(&node, "/a.css", Some(accept)).await?;
        assert_eq!(resp.status, 200, "{accept}: {}", resp.summary());
        assert_eq!(resp.header("content-encoding"), want, "Accept-Encoding: {accept}");
        assert!(decode(want, &resp.body)? == body, "{accept}: body differs");
    }
    assert_eq!(origin.count("/a.css"), 1);
    Ok(())
}

#[tokio::test]
async fn only_compressible_types_above_the_minimum_and_never_with_no_transform() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let png = vec![0x89u8; 50_000];
    origin.route("/i.png", Reply::ok(png.clone()).header("content-type", "image/png").cache_control("max-age=60"));
    origin.route("/small.txt", Reply::ok("tiny").header("content-type", "text/plain").cache_control("max-age=60"));
    let text = script(30_000);
    origin.route(
        "/raw.json",
        Reply::ok(text.clone()).header("content-type", "application/json").cache_control("max-age=60, no-transform"),
    );
    let img = get(&node, "/i.png", Some("br, gzip")).await?;
    assert!(img.header("content-encoding").is_none(), "{}", img.summary());
    assert!(img.body[..] == png[..]);
    let small = get(&node, "/small.txt", Some("br, gzip")).await?;
    assert!(small.header("content-encoding").is_none(), "{}", small.summary());
    assert_eq!(small.text(), "tiny");
    let raw = get(&node, "/raw.json", Some("br, gzip")).await?;
    assert!(raw.header("content-encoding").is_none(), "no-transform: {}", raw.summary());
    assert!(raw.body[..] == text[..]);
    Ok(())
}

#[tokio::test]
async fn an_origin_coding_is_kept_when_accepted_and_decoded_when_not() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let plain = script(100_000);
    let gzipped = gzip(&plain);
    origin.route(
        "/pre.js",
        Reply::ok(gzipped.clone())
            .header("content-type", "text/javascript")
            .header("content-encoding", "gzip")
            .header("etag", "\"g1\"")
            .cache_control("max-age=60"),
    );
    // Accepted: served as the origin sent it, never compressed twice.
    let as_is = get(&node, "/pre.js", Some("gzip")).await?;
    assert_eq!(as_is.header("content-encoding"), Some("gzip"), "{}", as_is.summary());
    assert!(as_is.body[..] == gzipped[..], "gzip body changed");
    // Not accepted: decoded, and re-encoded when the client takes another coding.
    let identity = get(&node, "/pre.js", None).await?;
    assert!(identity.header("content-encoding").is_none(), "{}", identity.summary());
    assert!(identity.body[..] == plain[..], "decoded body differs");
    let br = get(&node, "/pre.js", Some("br")).await?;
    assert_eq!(br.header("content-encoding"), Some("br"), "{}", br.summary());
    assert!(decode(Some("br"), &br.body)? == plain);
    assert_eq!(origin.count("/pre.js"), 1);
    Ok(())
}

#[tokio::test]
async fn ranges_and_conditionals_apply_to_the_variant() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let body = script(120_000);
    origin.route(
        "/data.txt",
        Reply::ok(body.clone())
            .header("content-type", "text/plain")
            .header("etag", "\"d1\"")
            .cache_control("max-age=60"),
    );
    let full = get(&node, "/data.txt", Some("br")).await?;
    assert_eq!(full.header("content-encoding"), Some("br"));
    tokio::time::sleep(SETTLE).await;

    let range = node
        .send(Req::get("shop.test", "/data.txt").header("accept-encoding", "br").header("range", "bytes=10-109"))
        .await?;
    assert_eq!(range.status, 206, "{}", range.summary());
    assert_eq!(range.header("content-encoding"), Some("br"));
    assert_eq!(range.header("content-range"), Some(format!("bytes 10-109/{}", full.body.len()).as_str()));
    assert_eq!(range.body, full.body.slice(10..110), "the range is cut from the br variant");

    let not_modified = node
        .send(Req::get("shop.test", "/data.txt").header("accept-encoding", "br").header("if-none-match", "\"d1-br\""))
        .await?;
    assert_eq!(not_modified.status, 304, "{}", not_modified.summary());
    // The identity validator does not match the br variant.
    let other = node
        .send(Req::get("shop.test", "/data.txt").header("accept-encoding", "br").header("if-none-match", "\"d1\""))
        .await?;
    assert_eq!(other.status, 304, "the base validator still names an acceptable representation: {}", other.summary());
    assert_eq!(origin.count("/data.txt"), 1);
    Ok(())
}

#[tokio::test]
async fn a_large_miss_is_compressed_as_it_streams_and_uncacheable_responses_too() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let body = script(6 << 20);
    let chunks = body.chunks(128 * 1024).map(|c| Chunk::Data(Bytes::copy_from_slice(c))).collect();
    origin.route(
        "/big.txt",
        Reply::ok("").chunks(chunks).header("content-type", "text/plain").cache_control("max-age=60"),
    );
    let resp = get(&node, "/big.txt", Some("gzip")).await?;
    assert_eq!(resp.header("content-encoding"), Some("gzip"), "{}", resp.summary());
    assert!(decode(Some("gzip"), &resp.body)? == body, "6 MiB body differs after gzip");

    let page = script(10_000);
    origin.route("/private", Reply::ok(page.clone()).header("content-type", "text/html").cache_control("no-store"));
    for _ in 0..2 {
        let resp = get(&node, "/private", Some("br")).await?;
        assert_eq!(resp.header("content-encoding"), Some("br"), "{}", resp.summary());
        assert!(decode(Some("br"), &resp.body)? == page);
    }
    assert_eq!(origin.count("/private"), 2, "not stored, compressed per request");
    Ok(())
}

#[tokio::test]
async fn a_purge_reaches_the_variants() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let v1 = script(10_000);
    origin.route(
        "/p.js",
        Reply::ok(v1.clone())
            .header("content-type", "text/javascript")
            .header("etag", "\"1\"")
            .cache_control("max-age=600"),
    );
    let first = get(&node, "/p.js", Some("br")).await?;
    assert!(decode(Some("br"), &first.body)? == v1);
    tokio::time::sleep(SETTLE).await;

    let mut v2 = v1.clone();
    v2.extend_from_slice(b"// version 2\n");
    origin.route(
        "/p.js",
        Reply::ok(v2.clone())
            .header("content-type", "text/javascript")
            .header("etag", "\"2\"")
            .cache_control("max-age=600"),
    );
    node.purge(json!({"kind": "url", "url": "shop.test/p.js"})).await?;
    let after = get(&node, "/p.js", Some("br")).await?;
    assert!(decode(Some("br"), &after.body)? == v2, "an old variant outlived the purge");
    assert_eq!(after.header("etag"), Some("\"2-br\""));
    assert_eq!(origin.count("/p.js"), 2);
    Ok(())
}

#[tokio::test]
async fn compression_can_be_turned_off_per_service() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    let service =
        outpost_tests::ServiceSpec::new("shop", &["shop.test"], origin.url()).line("compression.enabled = false");
    let node = EdgeNode::start(outpost_tests::NodeConfig::with_service(service)).await?;
    let body = script(20_000);
    origin
        .route("/a.js", Reply::ok(body.clone()).header("content-type", "text/javascript").cache_control("max-age=60"));
    let resp = get(&node, "/a.js", Some("br, gzip")).await?;
    assert!(resp.header("content-encoding").is_none(), "{}", resp.summary());
    assert!(resp.body[..] == body[..]);
    assert_eq!(origin.last("/a.js")?.header("accept-encoding"), Some("br, gzip"), "the client's header goes upstream");
    Ok(())
}

#[tokio::test]
async fn beyond_the_codec_slots_responses_go_uncompressed() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    let service = outpost_tests::ServiceSpec::new("shop", &["shop.test"], origin.url());
    let config = outpost_tests::NodeConfig::with_service(service).limits_line("max_concurrent_encodes = 1");
    let node = std::sync::Arc::new(EdgeNode::start(config).await?);
    let gate = outpost_tests::Gate::new();
    let slow = script(300_000);
    let (first, rest) = slow.split_at(100_000);
    origin.route(
        "/slow.js",
        Reply::ok("")
            .chunks(vec![
                Chunk::Data(Bytes::copy_from_slice(first)),
                Chunk::Wait(gate.clone()),
                Chunk::Data(Bytes::copy_from_slice(rest)),
            ])
            .header("content-type", "text/javascript")
            .cache_control("max-age=60"),
    );
    let other = script(50_000);
    origin.route(
        "/other.js",
        Reply::ok(other.clone()).header("content-type", "text/javascript").cache_control("max-age=60"),
    );

    // The slow miss holds the only codec slot while its body waits at the gate.
    let n = node.clone();
    let held = tokio::spawn(async move { get(&n, "/slow.js", Some("br")).await });
    origin.wait_for_count("/slow.js", 1, std::time::Duration::from_secs(5)).await?;
    // The slot is taken once the node has the head and looked the variant up (counted as a
    // miss): wait for that (bounded) rather than a fixed sleep.
    let start = std::time::Instant::now();
    loop {
        let metrics = node.admin(http::Method::GET, "/metrics", "").await?.text();
        if metrics.contains("outpost_transform_variants_total{outcome=\"miss\"} 1") {
            break;
        }
        let waited = start.elapsed();
        anyhow::ensure!(waited < std::time::Duration::from_secs(5), "/slow.js took no slot in {waited:?}:\n{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let busy = get(&node, "/other.js", Some("br")).await?;
    assert_eq!(busy.status, 200, "{}", busy.summary());
    assert!(busy.header("content-encoding").is_none(), "no slot, so no compression: {}", busy.summary());
    assert!(busy.body[..] == other[..]);

    gate.open();
    let slow_resp = held.await??;
    assert_eq!(slow_resp.header("content-encoding"), Some("br"));
    assert!(decode(Some("br"), &slow_resp.body)? == slow);
    // The slot is free again.
    let after = get(&node, "/other.js", Some("br")).await?;
    assert_eq!(after.header("content-encoding"), Some("br"), "{}", after.summary());
    assert!(decode(Some("br"), &after.body)? == other);
    let metrics = node.admin(http::Method::GET, "/metrics", "").await?.text();
    assert!(metrics.contains("outpost_transform_variants_total{outcome=\"busy\"} 1"), "{metrics}");
    Ok(())
}

/// A gzip bomb: `mib` MiB of zeros in about `mib` KiB. One raw-deflate block of 1 MiB of zeros,
/// ended by a sync flush, repeated (its back-references stay inside zeros), then a final empty
/// block. The trailer's CRC is not that of the data: the node must stop long before it looks.
fn gzip_bomb(mib: usize) -> Vec<u8> {
    let mut deflate = flate2::Compress::new(flate2::Compression::best(), false);
    let mut block = Vec::with_capacity(8 << 10);
    deflate.compress_vec(&vec![0u8; 1 << 20], &mut block, flate2::FlushCompress::Sync).expect("deflate");
    let mut end = Vec::with_capacity(64);
    deflate.compress_vec(&[], &mut end, flate2::FlushCompress::Finish).expect("deflate");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..mib {
        out.extend_from_slice(&block);
    }
    out.extend_from_slice(&end);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&((mib as u32) << 20).to_le_bytes());
    out
}

/// VmRSS and VmHWM (peak) of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status.lines().find(|l| l.starts_with(name)).ok_or_else(|| anyhow::anyhow!("no {name}"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// `clients` concurrent GETs of `path` accepting br only; (status, content-encoding, body length
/// or the error).
async fn br_clients(node: &EdgeNode, path: &str, clients: usize) -> Vec<Result<(u16, Option<String>, usize), String>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let req = Req::get("shop.test", path).header("accept-encoding", "br");
        let addr = node.http_addr();
        set.spawn(async move {
            match outpost_tests::client::send(addr, &req).await {
                Ok(r) => Ok((r.status.as_u16(), r.header("content-encoding").map(str::to_string), r.body.len())),
                Err(e) => Err(format!("{e:#}")),
            }
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

#[tokio::test]
async fn a_gzip_bomb_re_encoded_for_many_clients_stays_bounded_and_is_decoded_once() -> anyhow::Result<()> {
    // Issue 18: a 1 MiB gzip bomb (about 1 GiB decoded) for 32 clients that accept br only.
    // The node decodes it once, up to `max_decoded_size`, remembers that it went over, and
    // from then on serves the origin's bytes as they are; its memory stays bounded.
    let (origin, node) = shop().await?;
    let bomb = gzip_bomb(1024);
    origin.route(
        "/bomb.html",
        Reply::ok(bomb.clone())
            .header("content-type", "text/html")
            .header("content-encoding", "gzip")
            .etag("\"bomb\"")
            .cache_control("max-age=600"),
    );
    let pid = node.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    // Stored as the origin sent it: a client that takes gzip gets it as it is.
    let primed = get(&node, "/bomb.html", Some("gzip")).await?;
    assert_eq!((primed.status.as_u16(), primed.body.len()), (200, bomb.len()), "{}", primed.summary());
    let (before, _) = rss_kib(pid)?;
    let mut waves = Vec::new();
    for _ in 0..3 {
        waves.push(br_clients(&node, "/bomb.html", 32).await);
    }
    let (after, peak) = rss_kib(pid)?;
    eprintln!("bomb: RSS before {} MiB, after {} MiB, peak {} MiB", before >> 10, after >> 10, peak >> 10);
    let metrics = node.admin(http::Method::GET, "/metrics", "").await?.text();
    let transform: Vec<&str> = metrics.lines().filter(|l| l.starts_with("outpost_transform")).collect();
    eprintln!("{transform:#?}");
    for (i, wave) in waves.iter().enumerate() {
        let ok = wave.iter().filter(|r| r.is_ok()).count();
        eprintln!("wave {i}: {ok} complete of {}: {:?}", wave.len(), wave.iter().take(3).collect::<Vec<_>>());
    }
    // After the first wave the node knows: every later response is complete (the origin's bytes).
    for r in &waves[2] {
        let (status, coding, len) = r.as_ref().map_err(|e| anyhow::anyhow!("third wave: {e}"))?;
        assert_eq!((*status, coding.as_deref(), *len), (200, Some("gzip"), bomb.len()));
    }
    assert!(peak - before < 512 << 10, "peak RSS grew by {} MiB", (peak - before) >> 10);
    Ok(())
}

#[tokio::test]
async fn an_uncacheable_gzip_bomb_for_many_clients_is_decoded_once_and_bounded() -> anyhow::Result<()> {
    // The same bomb, not stored (`no-store`, no validator): each request fetches it and would
    // transform it for itself. The first that decodes past `max_decoded_size` marks the URL;
    // later ones get the origin's bytes as they are. RSS is printed for the report. A low
    // `max_decoded_size` keeps each decode short on a loaded debug build.
    let origin = Origin::start().await?;
    let service = outpost_tests::ServiceSpec::new("shop", &["shop.test"], origin.url())
        .line("compression = { max_decoded_size = \"1MiB\" }");
    let node = EdgeNode::start(outpost_tests::NodeConfig::with_service(service)).await?;
    let bomb = gzip_bomb(1024);
    origin.route(
        "/bomb-pass.html",
        Reply::ok(bomb.clone())
            .header("content-type", "text/html")
            .header("content-encoding", "gzip")
            .cache_control("no-store"),
    );
    let pid = node.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let (before, _) = rss_kib(pid)?;
    let mut complete = Vec::new();
    for _ in 0..3 {
        let wave = br_clients(&node, "/bomb-pass.html", 32).await;
        complete.push(
            wave.iter().filter(|r| matches!(r, Ok((200, Some(c), n)) if c == "gzip" && *n == bomb.len())).count(),
        );
    }
    let (after, peak) = rss_kib(pid)?;
    eprintln!(
        "uncacheable bomb: RSS before {} MiB, after {} MiB, peak {} MiB; complete per wave {complete:?}",
        before >> 10,
        after >> 10,
        peak >> 10
    );
    assert_eq!(complete[2], 32, "after the first decode past the bound, the bytes go as they are");
    assert!(peak - before < 512 << 10, "peak RSS grew by {} MiB", (peak - before) >> 10);
    Ok(())
}

/// Every `Vary` line of a response, as sent.
fn vary_lines(resp: &Resp) -> Vec<String> {
    resp.headers.get_all("vary").iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
}

/// The responses a client can get for `path` with the coding `ae`: GET, HEAD, and a 304 to a
/// GET that holds the first's validator (RFC 9110 §15.4.5: a 304 names the 200's `Vary`).
async fn get_head_304(node: &EdgeNode, path: &str, ae: Option<&str>) -> anyhow::Result<[Resp; 3]> {
    let with_ae = |req: Req| match ae {
        Some(ae) => req.header("accept-encoding", ae),
        None => req,
    };
    let get = node.send(with_ae(Req::get("shop.test", path))).await?;
    anyhow::ensure!(get.status == 200, "{}", get.summary());
    tokio::time::sleep(SETTLE).await;
    let head = node.send(with_ae(Req::head("shop.test", path))).await?;
    let etag = get.header("etag").unwrap_or("\"none\"").to_string();
    let not_modified = node.send(with_ae(Req::get("shop.test", path)).header("if-none-match", etag)).await?;
    anyhow::ensure!(not_modified.status == 304, "{path} {ae:?}: {}", not_modified.summary());
    Ok([get, head, not_modified])
}

#[tokio::test]
async fn vary_accept_encoding_only_where_compression_could_change_the_response() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let cached = |body: Vec<u8>, ct: &str| {
        Reply::ok(body).header("content-type", ct).header("etag", "\"e1\"").cache_control("max-age=60")
    };
    origin.route("/i.png", cached(vec![0x89u8; 50_000], "image/png"));
    origin.route("/small.txt", cached(b"tiny".to_vec(), "text/plain"));
    origin.route("/raw.json", cached(script(30_000), "application/json").cache_control("max-age=60, no-transform"));
    let modified = "Mon, 23 Nov 2026 10:00:00 GMT";
    origin.route("/big.js", cached(script(30_000), "application/javascript").header("last-modified", modified));

    for path in ["/i.png", "/small.txt", "/raw.json"] {
        for ae in [Some("br, gzip"), None, Some("gzip")] {
            for resp in get_head_304(&node, path, ae).await? {
                assert!(!varies_on_accept_encoding(&resp), "{path} {ae:?}: {}", resp.summary());
                assert!(resp.header("content-encoding").is_none(), "{path} {ae:?}: {}", resp.summary());
            }
        }
        // One stored object answers every coding: nothing was split by Accept-Encoding.
        assert_eq!(origin.count(path), 1, "{path}");
    }
    for ae in [Some("br"), None] {
        for resp in get_head_304(&node, "/big.js", ae).await? {
            assert_eq!(vary_lines(&resp), ["Accept-Encoding"], "/big.js {ae:?}: {}", resp.summary());
        }
    }
    // A 304 the base answered (If-Modified-Since means the same for every variant).
    let since = node
        .send(Req::get("shop.test", "/big.js").header("accept-encoding", "br").header("if-modified-since", modified))
        .await?;
    assert_eq!(since.status, 304, "{}", since.summary());
    assert_eq!(vary_lines(&since), ["Accept-Encoding"], "{}", since.summary());
    Ok(())
}

#[tokio::test]
async fn an_origins_vary_keeps_its_members_and_gets_accept_encoding_once() -> anyhow::Result<()> {
    let (origin, node) = shop().await?;
    let js = |vary: &[&str]| {
        let mut reply = Reply::ok(script(30_000))
            .header("content-type", "application/javascript")
            .header("etag", "\"e1\"")
            .cache_control("max-age=60");
        for line in vary {
            reply = reply.header("vary", *line);
        }
        reply
    };
    let cases: [(&str, &[&str], &str); 4] = [
        ("/plain.js", &["Origin, Accept-Language"], "Origin, Accept-Language, Accept-Encoding"),
        ("/listed.js", &["Origin, accept-encoding, Accept-Language"], "Origin, accept-encoding, Accept-Language"),
        (
            "/lines.js",
            &["Origin", "ORIGIN, Accept-Language", "ACCEPT-ENCODING"],
            "Origin, Accept-Language, ACCEPT-ENCODING",
        ),
        ("/last.js", &["Origin, Accept-Language, Accept-Encoding"], "Origin, Accept-Language, Accept-Encoding"),
    ];
    for (path, lines, want) in cases {
        origin.route(path, js(lines));
        for ae in [Some("br"), None, Some("gzip")] {
            for resp in get_head_304(&node, path, ae).await? {
                assert_eq!(vary_lines(&resp), [want], "{path} {ae:?}: {}", resp.summary());
            }
        }
    }
    // A small response is not compressed: the origin's Vary goes as it was sent.
    origin.route("/tiny.js", js(&["Origin", "Accept-Language"]).body(b"x".to_vec()));
    let tiny = get(&node, "/tiny.js", Some("br")).await?;
    assert_eq!(vary_lines(&tiny), ["Origin", "Accept-Language"], "{}", tiny.summary());
    Ok(())
}
