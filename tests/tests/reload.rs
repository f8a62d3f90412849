//! Config reload on SIGHUP: the file's services are recompiled and swapped whole; a request in
//! flight finishes on the services it started with; a file that does not load keeps the old ones.

use bytes::Bytes;
use outpost_tests::{Chunk, EdgeNode, Gate, NodeConfig, Origin, Reply, Req, ServiceSpec, client};

fn shop(origin: &Origin) -> ServiceSpec {
    ServiceSpec::new("shop", &["shop.test"], origin.url())
}

fn blog(origin: &Origin) -> ServiceSpec {
    ServiceSpec::new("blog", &["blog.test"], origin.url())
}

#[tokio::test]
async fn sighup_adds_and_removes_services() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home").cache_control("max-age=60"));
    let mut node = EdgeNode::start(NodeConfig::with_service(shop(&origin))).await?;
    assert_eq!(node.get("shop.test", "/").await?.status, 200);
    let unknown = node.get("blog.test", "/").await?.status;
    assert_ne!(unknown, 200, "blog is not configured yet");

    node.reload(NodeConfig::with_service(shop(&origin)).service(blog(&origin))).await?;
    assert_eq!(node.get("blog.test", "/").await?.status, 200);
    let shop_hit = node.get("shop.test", "/").await?;
    assert_eq!(shop_hit.status, 200);
    assert!(shop_hit.cache_status().hit(), "the cache outlives a reload: {}", shop_hit.summary());

    node.reload(NodeConfig::with_service(blog(&origin))).await?;
    assert_eq!(node.get("shop.test", "/").await?.status, unknown, "shop was removed");
    assert_eq!(node.get("blog.test", "/").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn a_bad_file_keeps_the_services_in_force() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home"));
    let mut node = EdgeNode::start(NodeConfig::with_service(shop(&origin))).await?;
    // Two services claiming one host: refused as a whole.
    let clash = ServiceSpec::new("other", &["shop.test"], origin.url());
    let refused = node.reload(NodeConfig::with_service(shop(&origin)).service(clash)).await;
    let message = format!("{:#}", refused.expect_err("a host owned twice is refused"));
    assert!(message.contains("shop.test"), "the log names the host: {message}");
    assert_eq!(node.get("shop.test", "/").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_services_it_started_with() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    let gate = Gate::new();
    origin.route(
        "/slow",
        Reply::ok("").chunks(vec![
            Chunk::Data(Bytes::from_static(b"first half, ")),
            Chunk::Wait(gate.clone()),
            Chunk::Data(Bytes::from_static(b"second half")),
        ]),
    );
    let mut node = EdgeNode::start(NodeConfig::with_service(shop(&origin))).await?;
    let addr = node.http_addr();
    let slow = tokio::spawn(async move { client::send(addr, &Req::get("shop.test", "/slow")).await });
    anyhow::ensure!(
        outpost_tests::eventually(std::time::Duration::from_secs(5), || origin.count("/slow") == 1).await,
        "the slow request never reached the origin"
    );
    // Remove the service while its response is half sent.
    node.reload(NodeConfig::with_service(blog(&origin))).await?;
    gate.open();
    let resp = slow.await??;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "first half, second half");
    Ok(())
}
