//! The access log under load and under trouble: one line per request after a burst and a
//! SIGTERM; no line lost across a logrotate-style rotation (rename, then SIGHUP); a full disk
//! drops and counts lines while requests keep succeeding, and logging resumes once space
//! returns.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use outpost_tests::client::Conn;
use outpost_tests::fleet::{metric, wait_metric};
use outpost_tests::tmpfs::SmallFs;
use outpost_tests::{EdgeNode, NodeConfig, Origin, Reply, Req, ServiceSpec, eventually};

const DROPPED: &str = "outpost_access_log_dropped_total";
/// Bound on every wait for the log to catch up (default flush: 1 s).
const LIMIT: Duration = Duration::from_secs(15);

async fn origin() -> anyhow::Result<Origin> {
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok(vec![b'x'; 1024]).cache_control("max-age=600"));
    Ok(origin)
}

fn config(origin: &Origin, log: &Path) -> NodeConfig {
    NodeConfig::with_service(ServiceSpec::new("shop", &["shop.test"], origin.url()))
        .access_log(log.display().to_string())
}

/// The request ids of the file's lines; every line must be a whole JSON object.
fn ids(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).map_err(|e| anyhow::anyhow!("line {l:?}: {e}"))?;
            Ok(v["request_id"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// `total` GETs of `/` over `conns` keep-alive connections at once; every one must be a 200.
/// Returns their request ids.
async fn burst(node: &EdgeNode, conns: usize, total: usize) -> anyhow::Result<Vec<String>> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let addr = node.http_addr();
        let n = total / conns + usize::from(c < total % conns);
        tasks.spawn(async move {
            let req = Req::get("shop.test", "/");
            let mut conn = Conn::open(addr, &req).await?;
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                let resp = conn.send(&req).await?;
                anyhow::ensure!(resp.status == 200, "{}", resp.summary());
                ids.push(resp.request_id().unwrap_or_default().to_owned());
            }
            anyhow::Ok(ids)
        });
    }
    let mut ids = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        ids.extend(done??);
    }
    Ok(ids)
}

fn unique(ids: &[String]) -> HashSet<&str> {
    ids.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn every_request_of_a_burst_has_exactly_one_line_after_sigterm() -> anyhow::Result<()> {
    let origin = origin().await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("access.log");
    let mut node = EdgeNode::start(config(&origin, &log)).await?;

    let sent = burst(&node, 8, 10_000).await?;
    // At once: lines still in the node's buffers must reach the file before it exits.
    let status = node.stop().await?;
    anyhow::ensure!(status.success(), "exit: {status}");

    let logged = ids(&log)?;
    assert_eq!(logged.len(), sent.len(), "one line per request, no more, no fewer");
    assert_eq!(unique(&logged), unique(&sent), "the lines are those of the requests sent");
    Ok(())
}

#[tokio::test]
async fn lines_survive_a_rename_then_sighup_rotation() -> anyhow::Result<()> {
    let origin = origin().await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let cfg = config(&origin, &log);
    let mut node = EdgeNode::start(cfg.clone()).await?;

    let before = burst(&node, 4, 500).await?;
    // logrotate: rename, then HUP (the reload helper sends it and waits for its outcome).
    std::fs::rename(&log, &rotated)?;
    node.reload(cfg).await?;
    let after = burst(&node, 4, 500).await?;
    let status = node.stop().await?;
    anyhow::ensure!(status.success(), "exit: {status}");

    let (old, new) = (ids(&rotated)?, ids(&log)?);
    assert_eq!(unique(&old), unique(&before), "the renamed file holds every line logged before the HUP");
    assert_eq!(unique(&new), unique(&after), "the new file holds every line logged after it");
    assert_eq!(old.len() + new.len(), before.len() + after.len(), "no line twice");
    Ok(())
}

#[tokio::test]
async fn a_full_disk_drops_and_counts_lines_and_logging_resumes_when_space_returns() -> anyhow::Result<()> {
    let origin = origin().await?;
    let dir = tempfile::tempdir()?;
    let mount = dir.path().join("logs");
    std::fs::create_dir(&mount)?;
    let fs = SmallFs::mount(&mount, "64k")?;
    let log = fs.path().join("access.log");
    let node = EdgeNode::start(config(&origin, &log)).await?;
    assert_eq!(metric(&node, DROPPED).await?, Some(0.0), "the counter is exported from the start");

    let filler = fs.fill("filler")?;
    let lost = burst(&node, 4, 300).await?;
    // Lines written to a full disk are counted as dropped; every request of the burst was
    // served all the same (`burst` checks each status): the log never blocks a request.
    wait_metric(&node, DROPPED, |v| v > 0.0).await?;

    std::fs::remove_file(&filler)?;
    let kept = burst(&node, 4, 50).await?;
    let last = kept.last().cloned().unwrap_or_default();
    let resumed = eventually(LIMIT, || ids(&log).is_ok_and(|ids| ids.contains(&last))).await;
    assert!(resumed, "logging resumes once space returns");

    // Whole lines only: what the disk took plus what was counted is every request.
    let dropped = metric(&node, DROPPED).await?.unwrap_or(0.0) as usize;
    let written = ids(&log)?;
    assert_eq!(written.len() + dropped, lost.len() + kept.len(), "{dropped} dropped, {} written", written.len());
    Ok(())
}

#[tokio::test]
async fn the_combined_format_writes_nginx_lines() -> anyhow::Result<()> {
    let origin = origin().await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("access.log");
    let cfg = config(&origin, &log).log_line("access_format = \"combined\"").log_line("access_flush = \"10ms\"");
    let node = EdgeNode::start(cfg).await?;
    let resp = node.get("shop.test", "/").await?;
    let id = resp.request_id().unwrap_or_default().to_owned();
    let found = eventually(LIMIT, || std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&id))).await;
    assert!(found, "the line arrives within the flush interval");
    let text = std::fs::read_to_string(&log)?;
    let line = text.lines().find(|l| l.contains(&id)).unwrap_or_default();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains("] \"GET / HTTP/1.1\" 200 1024 \"-\" \"-\" host=\"shop.test\" service=\"shop\""), "{line}");
    Ok(())
}
