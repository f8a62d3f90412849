//! The systemd notification protocol (`sd_notify(3)`), written directly: one datagram per state
//! change to the Unix socket named by `$NOTIFY_SOCKET`, no libsystemd. Every Outpost daemon
//! (`edge-node`, `origin-shield`, `control-plane`) uses it so its unit can be `Type=notify`:
//!
//! - `READY=1` once the listeners are bound and the process serves (systemd starts units ordered
//!   after it only then, and only then accepts `systemctl reload`);
//! - `RELOADING=1` (with `MONOTONIC_USEC`) when a SIGHUP reload starts, `READY=1` when it ends;
//! - `STOPPING=1` when a stop signal arrives and the drain begins;
//! - `WATCHDOG=1` every half of `$WATCHDOG_USEC` (`WatchdogSec=` in the unit), from a task on
//!   the daemon's own runtime, so a runtime that stops making progress stops the pings and
//!   systemd restarts the unit.
//!
//! Without `$NOTIFY_SOCKET` (not under systemd, or `Type=simple`) every call is a no-op. The
//! environment is read, never changed (removing variables is `unsafe` in Rust 2024, which the
//! workspace forbids; nothing here spawns children that could inherit them).
//!
//! ```no_run
//! let notifier = outpost_sd_notify::Notifier::from_env();
//! // ... bind the listeners ...
//! notifier.ready("serving");
//! ```

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where `$NOTIFY_SOCKET` points (sd_notify(3): "an AF_UNIX socket path or an abstract
/// namespace socket name prefixed with @").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A socket file (`/run/systemd/notify`).
    Path(PathBuf),
    /// An abstract socket (`@name`: the name without the `@`).
    Abstract(Vec<u8>),
}

/// Why `$NOTIFY_SOCKET` or `$WATCHDOG_USEC` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("NOTIFY_SOCKET is empty")]
    EmptySocket,
    #[error("NOTIFY_SOCKET={0:?}: not an absolute path nor an @abstract name (vsock: is not supported)")]
    UnsupportedSocket(String),
    #[error("NOTIFY_SOCKET={0:?}: longer than a Unix socket address allows (107 bytes)")]
    SocketTooLong(String),
    #[error("WATCHDOG_USEC={0:?}: not a positive number of microseconds")]
    WatchdogUsec(String),
}

/// The longest `sun_path` Linux accepts (108 bytes including the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Parses `$NOTIFY_SOCKET`.
pub fn parse_target(value: &OsStr) -> Result<Target, EnvError> {
    let bytes = value.as_bytes();
    let shown = || value.to_string_lossy().into_owned();
    if bytes.is_empty() {
        return Err(EnvError::EmptySocket);
    }
    if bytes.len() > MAX_SOCKET_PATH {
        return Err(EnvError::SocketTooLong(shown()));
    }
    match bytes[0] {
        b'/' => Ok(Target::Path(PathBuf::from(value))),
        // The abstract namespace: a leading NUL byte in sun_path, written `@` in the variable.
        b'@' if bytes.len() > 1 => Ok(Target::Abstract(bytes[1..].to_vec())),
        _ => Err(EnvError::UnsupportedSocket(shown())),
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
/// recommends, or `None` when no watchdog is set for this process. `$WATCHDOG_PID`, when set,
/// names the process the watchdog is for; any other process must not ping.
pub fn watchdog_interval(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own_pid: u32,
) -> Result<Option<Duration>, EnvError> {
    let Some(usec) = usec else { return Ok(None) };
    if let Some(pid) = pid
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(own_pid)
    {
        return Ok(None);
    }
    let text = usec.to_string_lossy();
    match text.parse::<u64>() {
        Ok(us) if us > 0 => Ok(Some(Duration::from_micros(us) / 2)),
        _ => Err(EnvError::WatchdogUsec(text.into_owned())),
    }
}

/// One state change, as sd_notify(3) spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State<'a> {
    Ready,
    /// A reload began, at this CLOCK_MONOTONIC time in microseconds (systemd 253+ requires it
    /// beside `RELOADING=1`; older versions ignore it).
    Reloading {
        monotonic_usec: u64,
    },
    Stopping,
    Watchdog,
    /// Free text shown by `systemctl status`.
    Status(&'a str),
    /// Extends the start or stop timeout in progress to this much from now (a drain longer
    /// than `TimeoutStopSec=`).
    ExtendTimeout(Duration),
    /// The service's main process is now this one (a binary upgrade handed over to it; the
    /// unit needs `NotifyAccess=all` for systemd to take it from a process not yet main).
    MainPid(u32),
}

/// The datagram for `states`: one `KEY=VALUE` per line. A line break inside a status text would
/// start another assignment, so it becomes a space.
pub fn encode(states: &[State<'_>]) -> String {
    let lines: Vec<String> = states
        .iter()
        .map(|state| match state {
            State::Ready => "READY=1".to_string(),
            State::Reloading { monotonic_usec } => format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}"),
            State::Stopping => "STOPPING=1".to_string(),
            State::Watchdog => "WATCHDOG=1".to_string(),
            State::Status(text) => format!("STATUS={}", text.replace(['\n', '\r'], " ")),
            State::ExtendTimeout(d) => format!("EXTEND_TIMEOUT_USEC={}", d.as_micros()),
            State::MainPid(pid) => format!("MAINPID={pid}"),
        })
        .collect();
    lines.join("\n")
}

/// Sends notifications to the service manager, or nothing when there is none.
#[derive(Debug, Default)]
pub struct Notifier {
    inner: Option<Connected>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Connected {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`. A variable that cannot be
    /// used is logged (warn) and that part is off: the daemon still runs (systemd then
    /// reports the unit's start timeout, which names the cause in the journal beside this line).
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var_os("WATCHDOG_USEC");
        let pid = std::env::var_os("WATCHDOG_PID");
        let target = socket.as_deref().map(parse_target).transpose();
        let watchdog = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id());
        let mut notifier = Self::default();
        match target.map_err(io::Error::other).and_then(|t| t.map(|t| Self::connect(&t)).transpose()) {
            Ok(connected) => notifier.inner = connected,
            Err(e) => tracing::warn!("sd_notify: {e}; not notifying the service manager"),
        }
        match watchdog {
            Ok(interval) => notifier.watchdog = interval.filter(|_| notifier.inner.is_some()),
            Err(e) => tracing::warn!("sd_notify: {e}; no watchdog pings"),
        }
        notifier
    }

    /// A notifier for `target` (tests, or a caller that read the environment itself).
    pub fn to_target(target: &Target, watchdog: Option<Duration>) -> io::Result<Self> {
        Ok(Self { inner: Some(Self::connect(target)?), watchdog })
    }

    fn connect(target: &Target) -> io::Result<Connected> {
        let addr = match target {
            Target::Path(path) => SocketAddr::from_pathname(path)?,
            Target::Abstract(name) => SocketAddr::from_abstract_name(name)?,
        };
        Ok(Connected { socket: UnixDatagram::unbound()?, addr })
    }

    /// Whether a service manager listens.
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// How often to call [`Notifier::watchdog`], if the unit has a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `states` in one datagram. A failure is returned for the caller to log: the
    /// daemon's work never depends on the service manager hearing it.
    pub fn notify(&self, states: &[State<'_>]) -> io::Result<()> {
        let Some(c) = &self.inner else { return Ok(()) };
        c.socket.send_to_addr(encode(states).as_bytes(), &c.addr).map(|_| ())
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.notify(&[State::Ready, State::Status(status)])
    }

    /// `MAINPID=` this process, then `READY=1` with a status line: the new process of a
    /// binary upgrade, which systemd follows from then on.
    pub fn ready_as_main(&self, status: &str) -> io::Result<()> {
        self.notify(&[State::MainPid(std::process::id()), State::Ready, State::Status(status)])
    }

    /// `RELOADING=1` stamped with the current CLOCK_MONOTONIC time.
    pub fn reloading(&self) -> io::Result<()> {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let monotonic_usec =
            u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000;
        self.notify(&[State::Reloading { monotonic_usec }, State::Status("reloading")])
    }

    /// `STOPPING=1`; `drain`, if given, extends the stop timeout to cover it.
    pub fn stopping(&self, drain: Option<Duration>) -> io::Result<()> {
        match drain {
            Some(d) => self.notify(&[State::Stopping, State::ExtendTimeout(d), State::Status("draining")]),
            None => self.notify(&[State::Stopping, State::Status("stopping")]),
        }
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify(&[State::Watchdog])
    }

    /// Pings the watchdog every [`Notifier::watchdog_interval`] for as long as the returned
    /// task runs (the process's life), or returns `None` when the unit has no watchdog. The
    /// pings come from the daemon's own runtime: if it stops polling tasks, they stop too.
    pub fn spawn_watchdog(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let interval = self.watchdog?;
        let notifier = self.clone();
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            // A late tick (a loaded machine) pings once, not in a burst.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(e) = notifier.watchdog() {
                    tracing::warn!("sd_notify: WATCHDOG=1: {e}");
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests;
