//! Under systemd (`Type=notify`): each daemon tells the service manager, over the datagram
//! socket named by `$NOTIFY_SOCKET` (sd_notify(3)), that it is ready once it serves, that a
//! SIGHUP reload begins and ends, that it stops, and pings the watchdog at half of
//! `$WATCHDOG_USEC`. Here a test socket stands in for systemd.

use std::time::{Duration, Instant};

use outpost_tests::control::{ControlConfig, ControlPlane};
use outpost_tests::{Binary, EdgeNode, NodeConfig, Origin, Reply, ServiceSpec};
use tokio::net::UnixDatagram;

/// Bound on waiting for one notification (a loaded machine, a debug binary starting).
const LIMIT: Duration = Duration::from_secs(60);

/// systemd's end of the socket: every datagram received, in order.
struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Manager {
    /// A socket file; `NOTIFY_SOCKET` is its path.
    fn file() -> anyhow::Result<(Self, String)> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path)?;
        Ok((Self { socket, seen: Vec::new(), _dir: dir }, path.display().to_string()))
    }

    /// An abstract socket; `NOTIFY_SOCKET` is `@name`, as systemd passes it to services.
    fn abstract_name() -> anyhow::Result<(Self, String)> {
        use std::os::linux::net::SocketAddrExt;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let name = format!("outpost-e2e-notify-{}-{nanos}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let std_socket = std::os::unix::net::UnixDatagram::bind_addr(&addr)?;
        std_socket.set_nonblocking(true)?;
        let socket = UnixDatagram::from_std(std_socket)?;
        Ok((Self { socket, seen: Vec::new(), _dir: tempfile::tempdir()? }, format!("@{name}")))
    }

    /// Receives until a datagram has the line `line`; returns that datagram.
    async fn expect(&mut self, line: &str) -> anyhow::Result<String> {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        loop {
            let left = LIMIT.saturating_sub(start.elapsed());
            let Ok(received) = tokio::time::timeout(left, self.socket.recv(&mut buf)).await else {
                anyhow::bail!("no {line} within {LIMIT:?}; received: {:?}", self.seen);
            };
            let text = String::from_utf8_lossy(&buf[..received?]).into_owned();
            self.seen.push(text.clone());
            if text.lines().any(|l| l == line) {
                return Ok(text);
            }
        }
    }

    /// The datagrams received so far that have the line `line`.
    fn count(&self, line: &str) -> usize {
        self.seen.iter().filter(|d| d.lines().any(|l| l == line)).count()
    }
}

fn shop(origin: &Origin) -> ServiceSpec {
    ServiceSpec::new("shop", &["shop.test"], origin.url())
}

#[tokio::test]
async fn edge_node_reports_ready_reload_watchdog_and_stop() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    origin.route("/", Reply::ok("home").cache_control("max-age=60"));
    let (mut manager, socket) = Manager::file()?;
    // WatchdogSec=200ms: a ping every 100 ms.
    let env = [("NOTIFY_SOCKET", socket.as_str()), ("WATCHDOG_USEC", "200000")];
    let mut node = EdgeNode::start_with_env(Binary::EdgeNode, NodeConfig::with_service(shop(&origin)), &env).await?;

    let ready = manager.expect("READY=1").await?;
    assert_eq!(manager.seen.len(), 1, "READY=1 comes first: {:?}", manager.seen);
    assert!(ready.lines().any(|l| l == "STATUS=serving"), "{ready:?}");
    // Ready means serving: the listeners answer.
    assert_eq!(node.get("shop.test", "/").await?.status, 200);
    manager.expect("WATCHDOG=1").await?;

    // systemctl reload: RELOADING=1 (stamped, for systemd 253+), then READY=1 once in force.
    let readies = manager.count("READY=1");
    node.reload(NodeConfig::with_service(shop(&origin))).await?;
    let reloading = manager.expect("RELOADING=1").await?;
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading:?}");
    manager.expect("READY=1").await?;
    assert_eq!(manager.count("READY=1"), readies + 1);

    let status = node.stop().await?;
    assert!(status.success(), "{status}");
    let stopping = manager.expect("STOPPING=1").await?;
    // The stop may take limits.drain_timeout (10 s by default) plus the flush: systemd is told.
    assert!(stopping.lines().any(|l| l.starts_with("EXTEND_TIMEOUT_USEC=")), "{stopping:?}");
    Ok(())
}

#[tokio::test]
async fn a_reload_that_fails_still_ends_with_ready() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    let (mut manager, socket) = Manager::file()?;
    let env = [("NOTIFY_SOCKET", socket.as_str())];
    let mut node = EdgeNode::start_with_env(Binary::EdgeNode, NodeConfig::with_service(shop(&origin)), &env).await?;
    manager.expect("READY=1").await?;
    // Two services claiming one host: refused, the old services stay; the unit is not left
    // "reloading" forever.
    let clash = ServiceSpec::new("other", &["shop.test"], origin.url());
    assert!(node.reload(NodeConfig::with_service(shop(&origin)).service(clash)).await.is_err());
    manager.expect("RELOADING=1").await?;
    let ready = manager.expect("READY=1").await?;
    assert!(ready.contains("STATUS=serving; last reload failed"), "{ready:?}");
    // No watchdog was asked for: none is sent.
    assert_eq!(manager.count("WATCHDOG=1"), 0, "{:?}", manager.seen);
    Ok(())
}

#[tokio::test]
async fn origin_shield_reports_ready_on_an_abstract_socket() -> anyhow::Result<()> {
    let origin = Origin::start().await?;
    let (mut manager, socket) = Manager::abstract_name()?;
    let env = [("NOTIFY_SOCKET", socket.as_str())];
    let mut shield =
        EdgeNode::start_with_env(Binary::OriginShield, NodeConfig::with_service(shop(&origin)), &env).await?;
    manager.expect("READY=1").await?;
    assert!(shield.stop().await?.success());
    manager.expect("STOPPING=1").await?;
    Ok(())
}

#[tokio::test]
async fn control_plane_reports_ready_survives_sighup_and_stops() -> anyhow::Result<()> {
    let (mut manager, socket) = Manager::file()?;
    let env = [("NOTIFY_SOCKET", socket.as_str()), ("WATCHDOG_USEC", "200000")];
    let mut cp = ControlPlane::start_with_env(ControlConfig::default(), &env).await?;
    manager.expect("READY=1").await?;
    manager.expect("WATCHDOG=1").await?;

    // A SIGHUP (logrotate habit, systemctl kill -s HUP) is logged, not fatal.
    let pid = cp.pid().ok_or_else(|| anyhow::anyhow!("not running"))?;
    let killed = std::process::Command::new("kill").arg("-HUP").arg(pid.to_string()).status()?;
    anyhow::ensure!(killed.success(), "kill -HUP failed");
    let start = Instant::now();
    while !cp.stderr_text().contains("SIGHUP: the control plane reloads nothing") {
        anyhow::ensure!(start.elapsed() < LIMIT, "no SIGHUP line: {}", cp.stderr_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = cp.call(http::Method::GET, "/healthz", None, "").await?;
    assert_eq!(health.status, 200, "still serving after SIGHUP");

    assert!(cp.stop().await?.success());
    manager.expect("STOPPING=1").await?;
    Ok(())
}
