//! `[control]`: how a node follows the control plane (its agent). Without the section the node
//! serves its config file's services alone, as before.
//!
//! The node registers at `url` with its token, holds one stream of events, applies them, keeps
//! what it applied in `<state_dir>/control-state.json`, and acknowledges. Every bound below is
//! what the agent waits for or holds at most; the checks are in `validate`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::origin::OriginUrl;
use crate::units::{ByteSize, duration};

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// The control plane's API: scheme, host and port, e.g. `"https://control.cdn.example"`.
    /// `https` is verified against the system roots, or against `ca` when set. Exactly one of
    /// `url` and `urls` is required.
    #[serde(default)]
    pub url: Option<OriginUrl>,
    /// Several control-plane replicas, tried in order: the agent starts with the first and moves
    /// to the next when its connection fails (resuming from the last sequence number it
    /// applied), going round the list; a full round that fails backs off (`backoff_min` to
    /// `backoff_max`). 1 to 16 distinct URLs. Default: none (`url`).
    #[serde(default)]
    pub urls: Vec<OriginUrl>,
    /// The node token (the control plane's `[[tokens]] node = true`), sent as a bearer token.
    /// Exactly one of `token` and `token_file` is required.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the node token (surrounding whitespace ignored), read again on every
    /// (re)connect so it can be rotated without a restart. Relative paths are resolved against
    /// the config file's directory. Default: none.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA the control plane's certificate must chain to (instead of the system
    /// roots). Relative paths as for `token_file`. Default: none.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Directory of `control-state.json`: the sequence number and the services the node last
    /// applied, loaded before the listeners serve so that a node restarted while the control
    /// plane is down serves its last state. Created if missing. Default: `cache.disk_path`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// TCP connect plus TLS handshake to the control plane; past it the attempt fails and the
    /// agent backs off. Default: 5s; more than 0.
    #[serde(default = "defaults::connect_timeout", deserialize_with = "duration::deserialize")]
    pub connect_timeout: Duration,
    /// Registration and acknowledgement requests, each, from sent to answered. Default: 10s;
    /// more than 0.
    #[serde(default = "defaults::request_timeout", deserialize_with = "duration::deserialize")]
    pub request_timeout: Duration,
    /// Time without any line on the stream (the control plane sends a heartbeat every 5s by
    /// default) after which the agent drops the stream and reconnects. Default: 15s (three
    /// heartbeats); at least 1s.
    #[serde(default = "defaults::heartbeat_timeout", deserialize_with = "duration::deserialize")]
    pub heartbeat_timeout: Duration,
    /// First wait before reconnecting after a failure; each failure in a row doubles it, up to
    /// `backoff_max`, and a random part of it (full jitter) is waited so that a fleet does not
    /// reconnect in step. Default: 100ms; more than 0.
    #[serde(default = "defaults::backoff_min", deserialize_with = "duration::deserialize")]
    pub backoff_min: Duration,
    /// Longest wait between two rounds of reconnection attempts (one attempt per URL each).
    /// Default: 2s, so a fleet is back within a couple of seconds of a control plane restart
    /// (a refused connection costs the control plane nothing); at least `backoff_min`.
    #[serde(default = "defaults::backoff_max", deserialize_with = "duration::deserialize")]
    pub backoff_max: Duration,
    /// Largest line on the stream (a snapshot carries every service in one line); a longer one
    /// drops the stream, logged, and the agent reconnects. Also the largest deployed function
    /// fetched (`GET /v1/functions/{sha256}`); a larger one is not applied and the agent
    /// retries. Default: 64MiB; 1KiB to 1GiB.
    #[serde(default = "defaults::max_message_size")]
    pub max_message_size: ByteSize,
    /// `[control.advertise]`: the addresses the node registers in place of the ones its
    /// listeners are bound to. Needed when those are not what the control plane and clients
    /// reach: a listener on `0.0.0.0` (DNS answers need the node's public address), behind
    /// NAT, or an admin listener the control plane reaches on another interface. Default: the
    /// bound addresses.
    #[serde(default)]
    pub advertise: Advertise,
}

/// `[control.advertise]`. Each field replaces one bound address in the node's registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advertise {
    /// Where clients reach the node's HTTP listener; its IP goes into the control plane's DNS
    /// answers when the node has no HTTPS listener. Default: `listen.http` as bound.
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// Where clients reach the node's HTTPS listener; its IP goes into the control plane's
    /// DNS answers. Default: `listen.https` as bound.
    #[serde(default)]
    pub https: Option<SocketAddr>,
    /// Where the control plane reaches the admin listener's `/healthz` (its PoP health
    /// checks). Default: `listen.admin` as bound.
    #[serde(default)]
    pub admin: Option<SocketAddr>,
}

/// The defaults above, as named constants.
pub mod defaults {
    use std::time::Duration;

    use crate::units::ByteSize;

    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);
    pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
    pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
    /// Most URLs in `urls`.
    pub const MAX_URLS: usize = 16;
    pub const MAX_MESSAGE_SIZE: ByteSize = ByteSize::mib(64);

    pub(super) fn connect_timeout() -> Duration {
        CONNECT_TIMEOUT
    }
    pub(super) fn request_timeout() -> Duration {
        REQUEST_TIMEOUT
    }
    pub(super) fn heartbeat_timeout() -> Duration {
        HEARTBEAT_TIMEOUT
    }
    pub(super) fn backoff_min() -> Duration {
        BACKOFF_MIN
    }
    pub(super) fn backoff_max() -> Duration {
        BACKOFF_MAX
    }
    pub(super) fn max_message_size() -> ByteSize {
        MAX_MESSAGE_SIZE
    }
}

/// The name of the state file in `state_dir`.
pub const STATE_FILE: &str = "control-state.json";

impl ControlConfig {
    /// The control planes to follow, in order: `urls`, or `url` alone.
    pub fn urls(&self) -> Vec<OriginUrl> {
        match &self.url {
            Some(url) if self.urls.is_empty() => vec![url.clone()],
            _ => self.urls.clone(),
        }
    }

    /// Where `control-state.json` lives: `state_dir`, else the cache directory.
    pub fn state_dir<'a>(&'a self, cache_dir: &'a Path) -> &'a Path {
        self.state_dir.as_deref().unwrap_or(cache_dir)
    }

    /// The state file's path.
    pub fn state_file(&self, cache_dir: &Path) -> PathBuf {
        self.state_dir(cache_dir).join(STATE_FILE)
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for path in [&mut self.token_file, &mut self.ca, &mut self.state_dir].into_iter().flatten() {
            crate::node::resolve(path, base);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = "[node]\nname = \"edge-1\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[cache]\ndisk_path = \"cache\"\n";

    fn parse(control: &str) -> Result<crate::NodeConfig, Vec<(String, String)>> {
        let text = format!("{BASE}[control]\n{control}");
        crate::parse(&text, Path::new("/etc/outpost/edge.toml"))
            .map_err(|e| e.0.into_iter().map(|e| (e.path, e.message)).collect())
    }

    #[test]
    fn absent_fields_take_their_documented_defaults() {
        let config = parse("url = \"http://127.0.0.1:7000\"\ntoken = \"t\"\n").unwrap();
        let control = config.control.unwrap();
        assert_eq!(control.urls().iter().map(OriginUrl::authority).collect::<Vec<_>>(), ["127.0.0.1:7000"]);
        assert_eq!(control.token.as_deref(), Some("t"));
        assert_eq!(control.token_file, None);
        assert_eq!(control.ca, None);
        assert_eq!(control.connect_timeout, Duration::from_secs(5));
        assert_eq!(control.request_timeout, Duration::from_secs(10));
        assert_eq!(control.heartbeat_timeout, Duration::from_secs(15));
        assert_eq!(control.backoff_min, Duration::from_millis(100));
        assert_eq!(control.backoff_max, Duration::from_secs(2));
        assert_eq!(control.max_message_size, ByteSize::mib(64));
        assert_eq!(control.state_file(&config.cache.disk_path), Path::new("/etc/outpost/cache/control-state.json"));
    }

    #[test]
    fn paths_resolve_against_the_config_directory() {
        let config = parse("url = \"http://127.0.0.1:7000\"\ntoken = \"t\"\nstate_dir = \"state\"\n").unwrap();
        let control = config.control.unwrap();
        assert_eq!(control.state_file(&config.cache.disk_path), Path::new("/etc/outpost/state/control-state.json"));
    }

    #[test]
    fn a_list_of_urls_is_read_in_order() {
        let text = "urls = [\"http://127.0.0.1:7001\", \"https://cp-2.example\"]\ntoken = \"t\"\n";
        let control = parse(text).unwrap().control.unwrap();
        let authorities: Vec<String> = control.urls().iter().map(OriginUrl::authority).collect();
        assert_eq!(authorities, ["127.0.0.1:7001", "cp-2.example:443"]);
    }

    #[test]
    fn advertised_addresses_are_read() {
        let text = "url = \"http://127.0.0.1:7000\"\ntoken = \"t\"\n[control.advertise]\nhttps = \"203.0.113.7:443\"\nadmin = \"10.0.0.7:9901\"\n";
        let control = parse(text).unwrap().control.unwrap();
        let want = Advertise { http: None, https: "203.0.113.7:443".parse().ok(), admin: "10.0.0.7:9901".parse().ok() };
        assert_eq!(control.advertise, want);
    }

    #[test]
    fn each_problem_names_its_field() {
        let url = "url = \"http://127.0.0.1:7000\"\n";
        let cases = [
            (String::from("token = \"t\"\n"), "control.url", "set control.url or control.urls"),
            (format!("{url}urls = [\"http://127.0.0.1:7001\"]\ntoken = \"t\"\n"), "control.urls", "not both"),
            (String::from("urls = []\ntoken = \"t\"\n"), "control.url", "set control.url or control.urls"),
            (
                String::from("urls = [\"http://a:1\", \"http://b:1\", \"http://a:1\"]\ntoken = \"t\"\n"),
                "control.urls[2]",
                "the same as control.urls[0]",
            ),
            (
                format!(
                    "urls = [{}]\ntoken = \"t\"\n",
                    (0..17).map(|i| format!("\"http://h{i}:1\"")).collect::<Vec<_>>().join(", ")
                ),
                "control.urls",
                "17 URLs; give at most 16",
            ),
            (String::from("urls = [\"ftp://x\"]\ntoken = \"t\"\n"), "control.urls", "unsupported scheme"),
            (url.to_string(), "control", "set control.token or control.token_file"),
            (format!("{url}token = \"t\"\ntoken_file = \"/x\"\n"), "control.token_file", "not both"),
            (format!("{url}token = \"\"\n"), "control.token", "empty"),
            (format!("{url}token = \"a b\"\n"), "control.token", "visible ASCII"),
            (format!("{url}token_file = \"/nonexistent/token\"\n"), "control.token_file", "cannot read"),
            (format!("{url}token = \"t\"\nca = \"/nonexistent/ca.pem\"\n"), "control.ca", "cannot read"),
            (String::from("url = \"ftp://x\"\ntoken = \"t\"\n"), "control.url", "unsupported scheme"),
            (format!("{url}token = \"t\"\nconnect_timeout = \"0s\"\n"), "control.connect_timeout", "more than 0"),
            (format!("{url}token = \"t\"\nrequest_timeout = \"0s\"\n"), "control.request_timeout", "more than 0"),
            (
                format!("{url}token = \"t\"\nheartbeat_timeout = \"500ms\"\n"),
                "control.heartbeat_timeout",
                "at least 1s",
            ),
            (format!("{url}token = \"t\"\nbackoff_min = \"0s\"\n"), "control.backoff_min", "more than 0"),
            (
                format!("{url}token = \"t\"\nbackoff_min = \"2s\"\nbackoff_max = \"1s\"\n"),
                "control.backoff_max",
                "at least control.backoff_min (2s)",
            ),
            (format!("{url}token = \"t\"\nmax_message_size = \"10B\"\n"), "control.max_message_size", "minimum"),
            (format!("{url}token = \"t\"\nstate_dir = \"\"\n"), "control.state_dir", "empty"),
            (
                format!("{url}token = \"t\"\n[control.advertise]\nhttps = \"0.0.0.0:443\"\n"),
                "control.advertise.https",
                "cannot be reached",
            ),
            (
                format!("{url}token = \"t\"\n[control.advertise]\nadmin = \"10.0.0.7:0\"\n"),
                "control.advertise.admin",
                "cannot be reached",
            ),
            (
                format!("{url}token = \"t\"\n[control.advertise]\nhttp = \"x\"\n"),
                "control.advertise.http",
                "invalid socket address",
            ),
            (format!("{url}token = \"t\"\nsecret = 1\n"), "control.secret", "unknown field"),
        ];
        for (text, path, message) in cases {
            let problems = parse(&text).err().unwrap_or_default();
            assert!(
                problems.iter().any(|(p, m)| p == path && m.contains(message)),
                "{text:?}: expected {path}: ...{message}..., got {problems:?}"
            );
        }
    }

    #[test]
    fn a_token_file_is_accepted() {
        let dir = tempfile_dir();
        let file = dir.join("token");
        std::fs::write(&file, "node-token\n").unwrap();
        let text = format!("url = \"https://cp.example\"\ntoken_file = \"{}\"\n", file.display());
        let control = parse(&text).unwrap().control.unwrap();
        assert_eq!(control.token_file.as_deref(), Some(file.as_path()));
        assert_eq!(control.urls()[0].port, 443);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A private directory under the system temp dir (this crate has no tempfile dependency).
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("outpost-config-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
