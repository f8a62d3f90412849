//! One HTTP/2 connection to an upstream: dialled through the service's guarded connector (and
//! TLS with ALPN h2, or h2c with prior knowledge, RFC 9113 §3.3), handshaken with the settings
//! hyper's client used, and driven by its own task, which closes it once it has been idle for
//! `upstream.pool_idle_timeout`. Its load (streams in flight, usable or going away) is kept
//! beside it for the pool's choice ([`super::pool`]).

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tower_service::Service;

use super::pool::Load;
use crate::body::BoxError;
use crate::upstream::dial::FixedDial;
use crate::upstream::guard::GuardedConnector;

/// hyper 1.12's HTTP/2 client defaults (proto/h2/client.rs), kept so that moving to this
/// client changes no window or frame size an upstream sees.
const CONN_WINDOW: u32 = 5 * 1024 * 1024;
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_SEND_BUF_SIZE: usize = 1024 * 1024;
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Streams h2 lets us open before the peer's SETTINGS arrive (RFC 9113 §6.5.2 leaves the
/// initial limit unbounded; hyper assumes 100, and a refused stream is retried, §8.7).
const INITIAL_MAX_SEND_STREAMS: usize = 100;

/// How a connection is made: to the host the request URI names (origins), or to one fixed
/// address whatever it names (a shield: the URI names the client's host, for SNI).
#[derive(Clone)]
pub enum Dialer {
    Origin(HttpsConnector<GuardedConnector>),
    /// An `https` origin of `origin_protocol = "auto"`: TLS offering h2 and http/1.1; a
    /// connection on which the origin picked http/1.1 is refused with [`NotH2`].
    OriginAlpn(HttpsConnector<GuardedConnector>),
    Shield(HttpsConnector<FixedDial>),
}

/// The origin picked http/1.1 by ALPN (RFC 7301): it is left to hyper's HTTP/1.1 client.
#[derive(Debug, thiserror::Error)]
#[error("the origin chose http/1.1 by ALPN")]
pub struct NotH2;

type Io = TokioIo<hyper_rustls::MaybeHttpsStream<TokioIo<crate::upstream::conn::Tracked>>>;

impl Dialer {
    async fn connect(&self, uri: Uri) -> Result<Io, BoxError> {
        let stream = match self.clone() {
            Dialer::Origin(mut c) | Dialer::OriginAlpn(mut c) => {
                poll_fn(|cx| c.poll_ready(cx)).await?;
                c.call(uri).await?
            }
            Dialer::Shield(mut c) => {
                poll_fn(|cx| c.poll_ready(cx)).await?;
                c.call(uri).await?
            }
        };
        Ok(TokioIo::new(stream))
    }
}

/// A connection's load and lifecycle, shared by the pool, its streams and its task.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    /// Response heads received on it: a failure on a connection that answered before is a
    /// failure on a reused connection (`stale`).
    responses: AtomicU64,
}

#[derive(Debug)]
struct State {
    open: usize,
    usable: bool,
    last_active: Instant,
}

impl Shared {
    fn new() -> Self {
        Self {
            state: Mutex::new(State { open: 0, usable: true, last_active: Instant::now() }),
            responses: AtomicU64::new(0),
        }
    }

    pub fn reused(&self) -> bool {
        self.responses.load(Ordering::Acquire) > 0
    }

    pub fn answered(&self) {
        self.responses.fetch_add(1, Ordering::AcqRel);
    }

    /// No new stream goes on it (GOAWAY received, an error, its task ended).
    pub fn retire(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.usable = false;
        }
    }

    /// Takes a slot for a stream when the connection is still usable.
    fn enter(self: &Arc<Self>) -> Option<StreamSlot> {
        let mut s = self.state.lock().ok()?;
        if !s.usable {
            return None;
        }
        s.open += 1;
        Some(StreamSlot(self.clone()))
    }

    /// Closes the connection if it is idle at `now` (no stream for `idle`); otherwise when it
    /// may next be idle long enough.
    fn close_if_idle(&self, idle: Duration, now: Instant) -> Result<(), Instant> {
        let Ok(mut s) = self.state.lock() else { return Ok(()) };
        let due = s.last_active + idle;
        if s.open > 0 || now < due {
            return Err(if s.open > 0 { now + idle } else { due });
        }
        s.usable = false;
        Ok(())
    }
}

/// One stream's place on a connection, held until its response body ends or is dropped.
#[derive(Debug)]
pub struct StreamSlot(Arc<Shared>);

impl StreamSlot {
    pub fn shared(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.open = s.open.saturating_sub(1);
            s.last_active = Instant::now();
        }
    }
}

/// A live connection in a pool.
pub struct H2Conn {
    send: h2::client::SendRequest<Bytes>,
    shared: Arc<Shared>,
    /// The `scheme://authority` it was dialled for (a shield's connections are per client host:
    /// the TLS name is the host's).
    pub origin: String,
}

impl H2Conn {
    pub fn load(&self) -> Load {
        let (open, usable) = self.shared.state.lock().map(|s| (s.open, s.usable)).unwrap_or((0, false));
        Load { open, max: self.send.current_max_send_streams(), usable }
    }

    /// A handle to send one stream on, with its slot; `None` when it stopped being usable.
    pub fn enter(&self) -> Option<(h2::client::SendRequest<Bytes>, StreamSlot)> {
        Some((self.send.clone(), self.shared.enter()?))
    }

    pub fn is_usable(&self) -> bool {
        self.load().usable
    }

    /// It answered a request before (a failure on it is on a reused connection).
    pub fn shared_reused(&self) -> bool {
        self.shared.reused()
    }

    /// Takes no new stream: it got a GOAWAY or failed.
    pub fn retire(&self) {
        self.shared.retire();
    }
}

/// Dials `uri` and handshakes HTTP/2 on it, within `timeout` (TCP, TLS and the preface
/// together: `upstream.connect_timeout`); its task is spawned.
pub async fn open(dialer: &Dialer, uri: Uri, timeout: Duration, idle: Duration) -> Result<H2Conn, BoxError> {
    let origin = format!("{}://{}", uri.scheme_str().unwrap_or("http"), uri.authority().map_or("", |a| a.as_str()));
    let handshake = async {
        let io = dialer.connect(uri).await?;
        if matches!(dialer, Dialer::OriginAlpn(_)) && !io.inner().connected().is_negotiated_h2() {
            return Err(NotH2.into());
        }
        let (send, conn) = builder().handshake::<_, Bytes>(io).await?;
        Ok::<_, BoxError>((send, conn))
    };
    let (send, conn) = match tokio::time::timeout(timeout, handshake).await {
        Ok(done) => done?,
        Err(_) => {
            let timed_out =
                std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connect timed out after {timeout:?}"));
            return Err(timed_out.into());
        }
    };
    let shared = Arc::new(Shared::new());
    tokio::spawn(drive(conn, shared.clone(), idle));
    Ok(H2Conn { send, shared, origin })
}

fn builder() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_send_buffer_size(MAX_SEND_BUF_SIZE)
        .max_local_error_reset_streams(Some(1024))
        .enable_push(false);
    b
}

/// Runs the connection until it ends or has been idle for `idle`; then it is not usable.
async fn drive(conn: h2::client::Connection<Io, Bytes>, shared: Arc<Shared>, idle: Duration) {
    metrics::gauge!(crate::metrics::UPSTREAM_H2_CONNECTIONS).increment(1.0);
    tokio::pin!(conn);
    let mut next = Instant::now() + idle;
    loop {
        tokio::select! {
            ended = &mut conn => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
                break;
            }
            () = tokio::time::sleep_until(next) => match shared.close_if_idle(idle, Instant::now()) {
                Ok(()) => break,
                Err(at) => next = at,
            },
        }
    }
    shared.retire();
    metrics::gauge!(crate::metrics::UPSTREAM_H2_CONNECTIONS).decrement(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_closes_only_when_idle_for_the_whole_timeout() {
        let shared = Arc::new(Shared::new());
        let idle = Duration::from_secs(4);
        let slot = shared.enter();
        assert!(slot.is_some());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(shared.close_if_idle(idle, Instant::now()).is_err(), "a stream is open");
        drop(slot);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(shared.close_if_idle(idle, Instant::now()).is_err(), "idle for 3 s of 4");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(shared.close_if_idle(idle, Instant::now()).is_ok());
        assert!(shared.enter().is_none(), "a closed connection takes no stream");
    }

    #[test]
    fn a_retired_connection_takes_no_stream_and_slots_count_streams() {
        let shared = Arc::new(Shared::new());
        let a = shared.enter();
        let b = shared.enter();
        assert_eq!(shared.state.lock().map(|s| s.open).unwrap_or(0), 2);
        drop(a);
        assert_eq!(shared.state.lock().map(|s| s.open).unwrap_or(0), 1);
        shared.retire();
        assert!(shared.enter().is_none());
        drop(b);
        assert_eq!(shared.state.lock().map(|s| s.open).unwrap_or(9), 0);
    }
}
