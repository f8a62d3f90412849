//! Request context in the node's logs: every log line written for a request, by the request's
//! own task or by work spawned for it (the collapsed fetch, a variant job), carries the
//! request's id and service, so an operator finds all of a request's lines by its
//! `x-request-id`.

use std::time::Duration;

use outpost_tests::{Reply, Req, client, eventually, shop_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_line_from_a_spawned_fetch_carries_the_request_id() -> anyhow::Result<()> {
    let (origin, node) = shop_with(|mut c| {
        c.log_level = Some("edge_node=debug,info".into());
        c
    })
    .await?;
    // Not storable: the spawned fetch job logs "not storing" (debug) from its own task.
    origin.route("/nostore", Reply::ok("fresh every time").cache_control("no-store"));
    let resp = client::send(node.http_addr(), &Req::get("shop.test", "/nostore")).await?;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let id = resp.header("x-request-id").unwrap_or_default().to_string();
    anyhow::ensure!(!id.is_empty(), "no x-request-id: {}", resp.summary());
    let logged = |text: &str| text.lines().any(|l| l.contains("not storing") && l.contains("/nostore"));
    anyhow::ensure!(
        eventually(Duration::from_secs(10), || logged(&node.stderr_text())).await,
        "the fetch job logged no \"not storing\" line:\n{}",
        node.stderr_text()
    );
    let stderr = node.stderr_text();
    let line = stderr.lines().find(|l| l.contains("not storing") && l.contains("/nostore")).unwrap_or_default();
    anyhow::ensure!(line.contains(&id), "the fetch job's line does not name request {id}: {line}");
    anyhow::ensure!(line.contains("shop"), "the fetch job's line does not name the service: {line}");
    Ok(())
}
