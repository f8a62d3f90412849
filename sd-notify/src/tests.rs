use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use super::*;

#[test]
fn notify_socket_values() {
    // (value, expected): sd_notify(3) "Notes": an AF_UNIX path, or an abstract name written @name.
    let long = format!("/{}", "a".repeat(107));
    let rows: Vec<(&str, Result<Target, EnvError>)> = vec![
        ("/run/systemd/notify", Ok(Target::Path("/run/systemd/notify".into()))),
        (
            "@/org/freedesktop/systemd1/notify/123",
            Ok(Target::Abstract(b"/org/freedesktop/systemd1/notify/123".to_vec())),
        ),
        ("@x", Ok(Target::Abstract(b"x".to_vec()))),
        // An abstract name needs at least one byte after the @.
        ("@", Err(EnvError::UnsupportedSocket("@".into()))),
        ("", Err(EnvError::EmptySocket)),
        // Relative paths would depend on the working directory: systemd never sets one.
        ("run/notify", Err(EnvError::UnsupportedSocket("run/notify".into()))),
        // systemd 253+ may pass vsock:CID:PORT to VMs; a node never runs as such a guest's init.
        ("vsock:2:1234", Err(EnvError::UnsupportedSocket("vsock:2:1234".into()))),
        // sun_path holds 108 bytes with the NUL: 107 of name at most (unix(7)).
        (&long, Err(EnvError::SocketTooLong(long.clone()))),
    ];
    for (value, expected) in rows {
        assert_eq!(parse_target(OsStr::new(value)), expected, "NOTIFY_SOCKET={value:?}");
    }
}

/// WATCHDOG_USEC, WATCHDOG_PID, this process's id, and what [`watchdog_interval`] answers.
type WatchdogRow = (Option<&'static OsStr>, Option<&'static OsStr>, u32, Result<Option<Duration>, EnvError>);

#[test]
fn watchdog_values() {
    let us = |s: &'static str| Some(OsStr::new(s));
    // (WATCHDOG_USEC, WATCHDOG_PID, own pid, expected): sd_watchdog_enabled(3).
    let rows: Vec<WatchdogRow> = vec![
        // Not set: no watchdog.
        (None, None, 7, Ok(None)),
        // "send keep-alive notifications ... at half of the time": 30 s -> every 15 s.
        (us("30000000"), None, 7, Ok(Some(Duration::from_secs(15)))),
        (us("30000000"), us("7"), 7, Ok(Some(Duration::from_secs(15)))),
        // WATCHDOG_PID names another process (a parent that exec'd us kept its variables).
        (us("30000000"), us("8"), 7, Ok(None)),
        (us("30000000"), us("x"), 7, Ok(None)),
        (us("1"), None, 7, Ok(Some(Duration::from_nanos(500)))),
        (us("0"), None, 7, Err(EnvError::WatchdogUsec("0".into()))),
        (us("-5"), None, 7, Err(EnvError::WatchdogUsec("-5".into()))),
        (us("30s"), None, 7, Err(EnvError::WatchdogUsec("30s".into()))),
    ];
    for (usec, pid, own, expected) in rows {
        assert_eq!(watchdog_interval(usec, pid, own), expected, "WATCHDOG_USEC={usec:?} WATCHDOG_PID={pid:?}");
    }
}

#[test]
fn datagram_texts() {
    // sd_notify(3): newline-separated VARIABLE=VALUE assignments.
    let rows: Vec<(Vec<State<'_>>, &str)> = vec![
        (vec![State::Ready], "READY=1"),
        (vec![State::Ready, State::Status("serving")], "READY=1\nSTATUS=serving"),
        // RELOADING=1 needs MONOTONIC_USEC beside it (systemd 253+, Type=notify-reload).
        (vec![State::Reloading { monotonic_usec: 42 }], "RELOADING=1\nMONOTONIC_USEC=42"),
        (vec![State::Stopping], "STOPPING=1"),
        (vec![State::Watchdog], "WATCHDOG=1"),
        (vec![State::ExtendTimeout(Duration::from_secs(3))], "EXTEND_TIMEOUT_USEC=3000000"),
        (vec![State::MainPid(4242), State::Ready], "MAINPID=4242\nREADY=1"),
        // A line break in a status would start a new assignment (READY=1 from a log message).
        (vec![State::Status("bad\nREADY=1")], "STATUS=bad READY=1"),
    ];
    for (states, expected) in rows {
        assert_eq!(encode(&states), expected);
    }
}

fn received(listener: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = listener.recv(&mut buf).expect("a datagram");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn sends_to_a_socket_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify");
    let listener = UnixDatagram::bind(&path).expect("bind");
    let notifier = Notifier::to_target(&Target::Path(path), None).expect("notifier");
    assert!(notifier.is_active());
    notifier.ready("serving").expect("send");
    assert_eq!(received(&listener), "READY=1\nSTATUS=serving");
    notifier.stopping(Some(Duration::from_secs(10))).expect("send");
    assert_eq!(received(&listener), "STOPPING=1\nEXTEND_TIMEOUT_USEC=10000000\nSTATUS=draining");
    notifier.reloading().expect("send");
    let text = received(&listener);
    let usec = text.strip_prefix("RELOADING=1\nMONOTONIC_USEC=").and_then(|rest| rest.split('\n').next());
    assert!(usec.and_then(|u| u.parse::<u64>().ok()).is_some_and(|u| u > 0), "{text:?}");
}

#[test]
fn sends_to_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("outpost-sd-notify-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let listener = UnixDatagram::bind_addr(&addr).expect("bind");
    let target = parse_target(OsStr::new(&format!("@{name}"))).expect("target");
    let notifier = Notifier::to_target(&target, Some(Duration::from_secs(1))).expect("notifier");
    notifier.watchdog().expect("send");
    assert_eq!(received(&listener), "WATCHDOG=1");
    assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(1)));
}

#[test]
fn without_a_service_manager_nothing_is_sent() {
    let notifier = Notifier::default();
    assert!(!notifier.is_active());
    notifier.ready("serving").expect("a no-op");
    assert_eq!(notifier.watchdog_interval(), None);
}

#[tokio::test(start_paused = true)]
async fn watchdog_task_pings_at_the_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify");
    let listener = UnixDatagram::bind(&path).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let notifier = Arc::new(Notifier::to_target(&Target::Path(path), Some(Duration::from_secs(5))).expect("n"));
    let task = notifier.spawn_watchdog().expect("a watchdog is set");
    // The first tick is immediate, then one per interval: 0 s, 5 s, 10 s.
    tokio::time::sleep(Duration::from_millis(10_001)).await;
    let mut pings = 0;
    let mut buf = [0u8; 64];
    while let Ok(n) = listener.recv(&mut buf) {
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        pings += 1;
    }
    assert_eq!(pings, 3);
    task.abort();
    assert!(Arc::new(Notifier::default()).spawn_watchdog().is_none());
}
