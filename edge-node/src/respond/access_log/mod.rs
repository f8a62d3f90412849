//! One structured (JSON) line per request, errors included. Lines go through a bounded queue
//! to a writer task, so a slow disk or terminal never stalls requests; when the queue is full a
//! line is dropped and counted (`outpost_access_log_dropped_total`).

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_config::AccessLog as AccessLogConfig;
use serde::Serialize;
use tokio::sync::mpsc;

/// Lines waiting for the writer. Default: 8192.
const QUEUE: usize = 8192;

#[derive(Serialize)]
pub struct AccessRecord<'a> {
    /// Seconds since the epoch, ms precision; set by [`AccessLog::write`].
    #[serde(serialize_with = "epoch_seconds")]
    pub ts: SystemTime,
    pub request_id: &'a str,
    pub client: SocketAddr,
    pub protocol: &'a str,
    pub tls: bool,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub service: Option<&'a str>,
    pub status: u16,
    pub cache: &'a str,
    pub cache_status: Option<String>,
    pub bytes: Option<u64>,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    pub error: Option<String>,
}

fn epoch_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as f64 / 1000.0).unwrap_or(0.0);
    s.serialize_f64(secs)
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
}

impl AccessLog {
    pub fn start(cfg: &AccessLogConfig) -> std::io::Result<Self> {
        let mut out: Box<dyn Write + Send> = match cfg {
            AccessLogConfig::Off => return Ok(Self { tx: None }),
            AccessLogConfig::Stdout => Box::new(std::io::stdout()),
            AccessLogConfig::File(path) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        // A plain thread: writes block, and the request path must not.
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            while let Some(line) = rx.blocking_recv() {
                let _ = writeln!(out, "{line}");
                if rx.is_empty() {
                    let _ = out.flush();
                }
            }
        })?;
        Ok(Self { tx: Some(tx) })
    }

    /// False when `log.access = "off"`: the caller can skip building the record.
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    pub fn write(&self, record: AccessRecord<'_>) {
        let Some(tx) = &self.tx else { return };
        let Ok(line) = serde_json::to_string(&record) else { return };
        if tx.try_send(line).is_err() {
            metrics::counter!(crate::metrics::ACCESS_LOG_DROPPED).increment(1);
        }
    }
}
