//! Image transforms through the real node: both URL styles, every operation and output format
//! (each result decoded here: format, dimensions), `format=auto` by `Accept`, variants made once
//! per source, and every bad parameter and limit.

use std::io::Cursor;

use image::{ImageFormat, RgbImage, RgbaImage};
use outpost_tests::node::SETTLE;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, Req, Resp, ServiceSpec, check_error};

fn gradient_jpeg(width: u32, height: u32) -> Vec<u8> {
    let img =
        RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg).expect("encode a JPEG in memory");
    out.into_inner()
}

fn alpha_png(width: u32, height: u32) -> Vec<u8> {
    let img =
        RgbaImage::from_fn(width, height, |x, y| image::Rgba([200, (x % 256) as u8, (y % 256) as u8, (x % 256) as u8]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).expect("encode a PNG in memory");
    out.into_inner()
}

/// Format and dimensions of an image body, as the `image` crate reads them (AVIF, which it
/// only encodes, from the `ispe` property box of the file).
fn inspect(resp: &Resp) -> anyhow::Result<(ImageFormat, u32, u32)> {
    let format =
        image::guess_format(&resp.body).map_err(|e| anyhow::anyhow!("not an image ({e}): {}", resp.summary()))?;
    if format == ImageFormat::Avif {
        let at = resp.body.windows(4).position(|w| w == b"ispe").ok_or_else(|| anyhow::anyhow!("AVIF without ispe"))?;
        let field = |i: usize| -> anyhow::Result<u32> {
            let b = resp.body.get(at + 8 + i * 4..at + 12 + i * 4).ok_or_else(|| anyhow::anyhow!("short ispe"))?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        return Ok((format, field(0)?, field(1)?));
    }
    let (w, h) = image::ImageReader::with_format(Cursor::new(&resp.body[..]), format).into_dimensions()?;
    Ok((format, w, h))
}

/// An origin with a 2000x1500 JPEG at /photo.jpg and a node whose service has images on.
async fn topology(lines: &[&str]) -> anyhow::Result<(Origin, EdgeNode)> {
    let origin = Origin::start().await?;
    let mut service = ServiceSpec::new("shop", &["shop.test"], origin.url()).line("images.enabled = true");
    for l in lines {
        service = service.line(*l);
    }
    origin.route(
        "/photo.jpg",
        Reply::ok(gradient_jpeg(2000, 1500))
            .header("content-type", "image/jpeg")
            .header("etag", "\"p1\"")
            .cache_control("max-age=600"),
    );
    let node = EdgeNode::start(NodeConfig::with_service(service)).await?;
    Ok((origin, node))
}

async fn get(node: &EdgeNode, path: &str, accept: Option<&str>) -> anyhow::Result<Resp> {
    let mut req = Req::get("shop.test", path);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    node.send(req).await
}

#[tokio::test]
async fn both_url_styles_resize_and_convert_from_one_source_fetch() -> anyhow::Result<()> {
    let (origin, node) = topology(&[]).await?;
    let cases = [
        ("/photo.jpg?width=400", ImageFormat::Jpeg, 400, 300),
        ("/cdn-cgi/image/width=400/photo.jpg", ImageFormat::Jpeg, 400, 300),
        ("/photo.jpg?width=400&format=webp", ImageFormat::WebP, 400, 300),
        ("/cdn-cgi/image/width=400,format=png/photo.jpg", ImageFormat::Png, 400, 300),
        ("/cdn-cgi/image/width=200,format=avif/photo.jpg", ImageFormat::Avif, 200, 150),
        ("/photo.jpg?width=300&height=300&fit=cover", ImageFormat::Jpeg, 300, 300),
        ("/photo.jpg?width=300&height=300&fit=contain", ImageFormat::Jpeg, 300, 225),
        ("/photo.jpg?width=200&dpr=2", ImageFormat::Jpeg, 400, 300),
        ("/cdn-cgi/image/width=4000,fit=scale-down/photo.jpg", ImageFormat::Jpeg, 2000, 1500),
        ("/photo.jpg?height=150&quality=50", ImageFormat::Jpeg, 200, 150),
    ];
    for (path, format, w, h) in cases {
        let resp = get(&node, path, None).await?;
        assert_eq!(resp.status, 200, "{path}: {}", resp.summary());
        assert_eq!(inspect(&resp)?, (format, w, h), "{path}");
        let content_type = resp.header("content-type").unwrap_or_default();
        assert_eq!(content_type, format.to_mime_type(), "{path}");
    }
    assert_eq!(origin.count("/photo.jpg"), 1, "one source fetch for every variant");
    assert!(origin.requests().iter().all(|r| r.path_and_query == "/photo.jpg"), "image parameters reached the origin");
    Ok(())
}

#[tokio::test]
async fn variants_are_stored_once_and_served_with_exact_lengths() -> anyhow::Result<()> {
    let (origin, node) = topology(&[]).await?;
    let first = get(&node, "/photo.jpg?width=400&format=webp", None).await?;
    assert_eq!(first.status, 200, "{}", first.summary());
    tokio::time::sleep(SETTLE).await;
    let second = get(&node, "/cdn-cgi/image/w=400,f=webp/photo.jpg", None).await?;
    assert!(second.cache_status().hit(), "{}", second.summary());
    assert_eq!(second.body, first.body, "the same variant, by either style");
    assert_eq!(second.header("content-length"), Some(second.body.len().to_string().as_str()));
    let metrics = node.admin(http::Method::GET, "/metrics", "").await?.text();
    assert!(metrics.contains("outpost_transform_variants_total{outcome=\"hit\"} 1"), "{metrics}");
    assert_eq!(origin.count("/photo.jpg"), 1);
    Ok(())
}

#[tokio::test]
async fn format_auto_follows_accept_and_varies_on_it() -> anyhow::Result<()> {
    let (_origin, node) = topology(&[]).await?;
    let cases = [
        (Some("image/avif,image/webp,*/*"), ImageFormat::Avif),
        (Some("image/webp,*/*"), ImageFormat::WebP),
        (Some("*/*"), ImageFormat::Jpeg),
        (None, ImageFormat::Jpeg),
    ];
    for (accept, format) in cases {
        let resp = get(&node, "/photo.jpg?width=200&format=auto", accept).await?;
        assert_eq!(resp.status, 200, "{accept:?}: {}", resp.summary());
        assert_eq!(inspect(&resp)?.0, format, "Accept: {accept:?}");
        let vary = resp.header("vary").unwrap_or_default().to_ascii_lowercase();
        assert!(vary.contains("accept"), "format=auto must vary on Accept: {}", resp.summary());
    }
    Ok(())
}

#[tokio::test]
async fn png_alpha_survives_and_other_sources_decode() -> anyhow::Result<()> {
    let (origin, node) = topology(&[]).await?;
    origin.route(
        "/logo.png",
        Reply::ok(alpha_png(600, 400)).header("content-type", "image/png").cache_control("max-age=60"),
    );
    let resp = get(&node, "/logo.png?width=300&format=png", None).await?;
    assert_eq!(inspect(&resp)?, (ImageFormat::Png, 300, 200));
    let decoded = image::load_from_memory(&resp.body)?;
    assert!(decoded.color().has_alpha(), "alpha dropped");
    let webp = get(&node, "/logo.png?width=300&format=webp", None).await?;
    assert_eq!(inspect(&webp)?, (ImageFormat::WebP, 300, 200));
    Ok(())
}

#[tokio::test]
async fn bad_parameters_get_400_naming_the_parameter() -> anyhow::Result<()> {
    let (origin, node) = topology(&[]).await?;
    let cases = [
        ("/photo.jpg?width=0", "width"),
        ("/photo.jpg?width=abc", "width"),
        ("/photo.jpg?width=9000", "width"),
        ("/photo.jpg?quality=101", "quality"),
        ("/photo.jpg?width=100&fit=stretch", "fit"),
        ("/photo.jpg?width=100&format=bmp", "format"),
        ("/photo.jpg?width=100&dpr=11", "dpr"),
        ("/cdn-cgi/image/width=100,bogus=1/photo.jpg", "bogus"),
    ];
    for (path, param) in cases {
        let resp = get(&node, path, None).await?;
        anyhow::ensure!(resp.status == 400, "{path}: expected 400, got {}", resp.summary());
        check_error(&resp, 400).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        assert!(resp.text().contains(param), "{path}: the message should name {param}: {}", resp.text());
    }
    assert_eq!(origin.count("/photo.jpg"), 0, "bad requests never reach the origin");
    Ok(())
}

#[tokio::test]
async fn a_body_that_is_not_an_image_is_served_as_is_or_415_when_strict() -> anyhow::Result<()> {
    let (origin, node) = topology(&[]).await?;
    origin.route(
        "/page.html",
        Reply::ok("<html>not an image</html>").header("content-type", "text/html").cache_control("max-age=60"),
    );
    let resp = get(&node, "/page.html?width=100", None).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(resp.text(), "<html>not an image</html>");

    // RFC 9110 §7.7: no-transform keeps the original, even when asked for by URL.
    origin.route(
        "/kept.jpg",
        Reply::ok(gradient_jpeg(300, 200))
            .header("content-type", "image/jpeg")
            .cache_control("max-age=60, no-transform"),
    );
    let kept = get(&node, "/kept.jpg?width=100&format=webp", None).await?;
    assert_eq!(inspect(&kept)?, (ImageFormat::Jpeg, 300, 200), "no-transform was ignored");

    let (origin, strict) = topology(&["images.strict = true"]).await?;
    origin.route(
        "/page.html",
        Reply::ok("<html>not an image</html>").header("content-type", "text/html").cache_control("max-age=60"),
    );
    let refused = get(&strict, "/page.html?width=100", None).await?;
    check_error(&refused, 415)?;
    Ok(())
}

#[tokio::test]
async fn source_limits_serve_the_original_and_nothing_bad_is_stored() -> anyhow::Result<()> {
    // 2000x1500 = 3 megapixels: over a 1-megapixel limit; the JPEG is over 10 KiB.
    for limit in ["images.max_source_pixels = 1000000", "images.max_source_bytes = \"10KiB\""] {
        let (origin, node) = topology(&[limit]).await?;
        let resp = get(&node, "/photo.jpg?width=100", None).await?;
        assert_eq!(resp.status, 200, "{limit}: {}", resp.summary());
        assert_eq!(inspect(&resp)?, (ImageFormat::Jpeg, 2000, 1500), "{limit}: the original is served");
        tokio::time::sleep(SETTLE).await;
        let again = get(&node, "/photo.jpg?width=100", None).await?;
        assert_eq!(inspect(&again)?, (ImageFormat::Jpeg, 2000, 1500), "{limit}: no variant was stored");
        assert_eq!(origin.count("/photo.jpg"), 1, "{limit}: the source itself is cached");
    }
    Ok(())
}

#[tokio::test]
async fn a_pixel_bomb_is_refused_before_decoding() -> anyhow::Result<()> {
    let (origin, node) = topology(&["images.strict = true"]).await?;
    // A PNG header claiming 100000 x 100000 pixels, with almost no data behind it.
    let mut bomb = Vec::new();
    bomb.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(b"IHDR");
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    bomb.extend_from_slice(&13u32.to_be_bytes());
    bomb.extend_from_slice(&ihdr);
    bomb.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    origin.route("/bomb.png", Reply::ok(bomb).header("content-type", "image/png").cache_control("max-age=60"));
    let resp = get(&node, "/bomb.png?width=100", None).await?;
    check_error(&resp, 415)?;
    Ok(())
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test]
async fn a_burst_beyond_the_transcode_slots_gets_originals_while_hits_go_on() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    let service = ServiceSpec::new("shop", &["shop.test"], origin.url()).line("images.enabled = true");
    let config = NodeConfig::with_service(service)
        .limits_line("max_concurrent_transcodes = 1")
        .limits_line("max_queued_transcodes = 0");
    let node = std::sync::Arc::new(EdgeNode::start(config).await?);
    origin.route(
        "/photo.jpg",
        Reply::ok(gradient_jpeg(2000, 1500)).header("content-type", "image/jpeg").cache_control("max-age=600"),
    );
    origin
        .route("/page.html", Reply::ok("cached page").header("content-type", "text/html").cache_control("max-age=600"));
    // The source and a page are cached first.
    assert_eq!(get(&node, "/photo.jpg", None).await?.status, 200);
    assert_eq!(get(&node, "/page.html", None).await?.text(), "cached page");
    tokio::time::sleep(SETTLE).await;

    // Four different AVIF variants at once: one slot, no queue.
    let mut burst = Vec::new();
    for width in [300, 310, 320, 330] {
        let node = node.clone();
        burst.push(tokio::spawn(
            async move { get(&node, &format!("/photo.jpg?width={width}&format=avif"), None).await },
        ));
    }
    // Hits are served meanwhile: transcodes run on the blocking pool, not on the async workers.
    let hit = get(&node, "/page.html", None).await?;
    assert!(hit.cache_status().hit(), "{}", hit.summary());
    let mut transcoded = 0;
    let mut originals = 0;
    for task in burst {
        let resp = task.await??;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        match inspect(&resp)? {
            (ImageFormat::Avif, _, _) => transcoded += 1,
            (ImageFormat::Jpeg, 2000, 1500) => originals += 1,
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    assert!(transcoded >= 1, "no request got its slot");
    assert!(originals >= 1, "with one slot and no queue, some of four concurrent transcodes must be refused");
    let metrics = node.admin(http::Method::GET, "/metrics", "").await?.text();
    assert!(metrics.contains("outcome=\"busy\""), "busy transcodes are counted:\n{metrics}");
    Ok(())
}

/// Found by the `image_params` fuzz target: an output scaled down to `max_source_pixels` had
/// its sides rounded to the nearest pixel, so both could round up and the area land above the
/// bound (2033x1525 = 3100325 pixels for a 3100000-pixel bound). The bound is what the
/// operator sized transcode memory by: the output never exceeds it.
#[tokio::test]
async fn an_enlarged_output_never_exceeds_the_pixel_bound() -> anyhow::Result<()> {
    // The 2000x1500 source (3000000 pixels) is within the bound; a 4000-wide `contain` box
    // enlarges it to 4000x3000, which is scaled down to fit 3100000 pixels.
    let (_origin, node) = topology(&["images.max_source_pixels = 3100000"]).await?;
    let resp = get(&node, "/photo.jpg?width=4000&fit=contain", None).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let (format, w, h) = inspect(&resp)?;
    assert_eq!(format, ImageFormat::Jpeg);
    assert!(u64::from(w) * u64::from(h) <= 3_100_000, "{w}x{h} is above the 3100000-pixel bound");
    assert_eq!((w, h), (2033, 1524), "as large as fits, aspect kept");
    Ok(())
}

/// Found by the `image_params` fuzz target: `dpr=66.6` was read as 66 * 1000 + 600 in a u16,
/// which overflowed: a debug node panicked on the request, a release one wrapped it to a
/// device pixel ratio of 1.064 and served that. Out of range is a 400 naming `dpr`.
#[tokio::test]
async fn a_dpr_beyond_the_range_is_refused_not_wrapped() -> anyhow::Result<()> {
    let (_origin, node) = topology(&[]).await?;
    for dpr in ["66.6", "99", "65.536"] {
        let resp = get(&node, &format!("/photo.jpg?width=100&dpr={dpr}"), None).await?;
        assert_eq!(resp.status, 400, "dpr={dpr}: {}", resp.summary());
        assert!(resp.text().contains("dpr"), "dpr={dpr}: {}", resp.text());
    }
    Ok(())
}
