//! `store = { postgres = "postgres://..." }`: the file form ([`StoreSettings`]) and what the
//! store runs with ([`PostgresSettings`]), checked with each problem's field path.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// The top-level `store` table. Without `postgres`, the embedded redb store in `data` is used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// A libpq connection string, URL (`postgres://USER@HOST:PORT/DB`) or `key=value` form.
    /// Default: none (the embedded store).
    pub postgres: Option<String>,
    /// A file holding the password (one line; not readable by every user), relative to the
    /// config file's directory; the URL then carries none. Default: none.
    pub password_file: Option<PathBuf>,
    /// Connections per replica. Default: 16; 1 to 1024.
    pub pool_size: usize,
    /// Connecting, and waiting for a free pooled connection. Default: `"5s"`; 100ms to 5m.
    #[serde(with = "outpost_config::units::duration")]
    pub connect_timeout: Duration,
    /// How long start-up retries a database it cannot reach before the process exits.
    /// Default: `"60s"`; 1s to 1h.
    #[serde(with = "outpost_config::units::duration")]
    pub start_timeout: Duration,
    /// How often each replica reads the log's head besides `LISTEN`: the longest an event
    /// waits to reach this replica's streams when a notification is lost. Default: `"1s"`;
    /// 10ms to 1m.
    #[serde(with = "outpost_config::units::duration")]
    pub catch_up_interval: Duration,
    /// The database aborts a statement running longer, and a transaction idle longer
    /// (`statement_timeout`, `idle_in_transaction_session_timeout`): a replica that hangs or
    /// loses the network inside a write holds the log's lock at most this long, instead of
    /// until the server's TCP keepalive notices (hours). Default: `"30s"`; 1s to 10m.
    #[serde(with = "outpost_config::units::duration")]
    pub statement_timeout: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            postgres: None,
            password_file: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(60),
            catch_up_interval: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// A checked PostgreSQL store setting.
#[derive(Clone)]
pub struct PostgresSettings {
    config: tokio_postgres::Config,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub start_timeout: Duration,
    pub catch_up_interval: Duration,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("PostgresSettings").field("target", &self.redacted()).finish_non_exhaustive()
    }
}

impl PostgresSettings {
    /// From a connection string, with the defaults of [`StoreSettings`] (for tests).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let file = StoreSettings { postgres: Some(url.to_owned()), ..StoreSettings::default() };
        match file.compile(Path::new("")) {
            Ok(Some(settings)) => Ok(settings),
            Ok(None) => Err("no url".to_owned()),
            Err(problems) => Err(problems.into_iter().map(|(p, m)| format!("{p}: {m}")).collect::<Vec<_>>().join("; ")),
        }
    }

    /// The client config: the connection string, the password, the timeouts, TCP keepalives
    /// (a replica notices a dead database, and its `LISTEN` connection a dead link).
    pub fn client_config(&self) -> tokio_postgres::Config {
        self.config.clone()
    }

    /// `user@host:port/dbname`, for logs.
    pub fn redacted(&self) -> String {
        let user = self.config.get_user().unwrap_or("?");
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(self.config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(host, port)| match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            })
            .collect();
        format!("{user}@{}/{}", hosts.join(","), self.config.get_dbname().unwrap_or(user))
    }
}

impl StoreSettings {
    /// The PostgreSQL settings when `postgres` is set, each problem as `(field path, message)`;
    /// `base` anchors a relative `password_file`.
    pub fn compile(&self, base: &Path) -> Result<Option<PostgresSettings>, Vec<(String, String)>> {
        let mut problems = Vec::new();
        self.check_bounds(&mut problems);
        let Some(url) = &self.postgres else {
            if self.password_file.is_some() {
                problems.push(("store.password_file".to_owned(), "set only with store.postgres".to_owned()));
            }
            return if problems.is_empty() { Ok(None) } else { Err(problems) };
        };
        let mut config = match tokio_postgres::Config::from_str(url) {
            Ok(config) => config,
            Err(e) => {
                problems.push((
                    "store.postgres".to_owned(),
                    format!("not a connection string ({e}); write postgres://USER@HOST:PORT/DB"),
                ));
                return Err(problems);
            }
        };
        check_target(&config, &mut problems);
        if let Some(file) = &self.password_file {
            if config.get_password().is_some() {
                problems.push((
                    "store.password_file".to_owned(),
                    "store.postgres already has a password; keep it in one place (the file)".to_owned(),
                ));
            }
            match read_password(&base.join(file)) {
                Ok(password) => {
                    config.password(password);
                }
                Err(problem) => problems.push(("store.password_file".to_owned(), problem)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        let ms = self.statement_timeout.as_millis();
        let timeouts = format!("-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}");
        let options = match config.get_options() {
            Some(own) => format!("{own} {timeouts}"),
            None => timeouts,
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("outpost-control-plane");
        }
        Ok(Some(PostgresSettings {
            config,
            pool_size: self.pool_size,
            connect_timeout: self.connect_timeout,
            start_timeout: self.start_timeout,
            catch_up_interval: self.catch_up_interval,
        }))
    }

    fn check_bounds(&self, problems: &mut Vec<(String, String)>) {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        if !(1..=1024).contains(&self.pool_size) {
            problems.push(("store.pool_size".to_owned(), format!("{}; give 1 to 1024", self.pool_size)));
        }
        let durations = [
            ("store.connect_timeout", self.connect_timeout, ms(100), secs(300), "100ms to 5m"),
            ("store.start_timeout", self.start_timeout, secs(1), secs(3600), "1s to 1h"),
            ("store.catch_up_interval", self.catch_up_interval, ms(10), secs(60), "10ms to 1m"),
            ("store.statement_timeout", self.statement_timeout, secs(1), secs(600), "1s to 10m"),
        ];
        for (path, value, low, high, valid) in durations {
            if value < low || value > high {
                problems.push((path.to_owned(), format!("{value:?}; give {valid}")));
            }
        }
    }
}

fn check_target(config: &tokio_postgres::Config, problems: &mut Vec<(String, String)>) {
    if config.get_hosts().is_empty() {
        problems.push(("store.postgres".to_owned(), "no host; write postgres://USER@HOST:PORT/DB".to_owned()));
    }
    if config.get_user().is_none() {
        problems.push(("store.postgres".to_owned(), "no user; write postgres://USER@HOST:PORT/DB".to_owned()));
    }
}

/// The password file's one line. Like every secret file here, it may not be world-readable.
fn read_password(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read \"{shown}\": {e}"))?;
    if !meta.is_file() || meta.len() > 4096 {
        return Err(format!("\"{shown}\" is not a password file (a regular file of one line)"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(format!("\"{shown}\" is readable by every user (mode {mode:03o}); `chmod 600` it"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read \"{shown}\": {e}"))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() || password.contains('\n') {
        return Err(format!("\"{shown}\": give the password alone on one line"));
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(file: StoreSettings, base: &Path) -> Vec<(String, String)> {
        file.compile(base).err().unwrap_or_default()
    }

    fn with_url(url: &str) -> StoreSettings {
        StoreSettings { postgres: Some(url.to_owned()), ..StoreSettings::default() }
    }

    #[test]
    fn each_problem_names_its_field() {
        let base = Path::new("/nonexistent");
        let cases: Vec<(StoreSettings, &str, &str)> = vec![
            (with_url("postgres://"), "store.postgres", "no host"),
            (with_url("postgres://db.internal/outpost"), "store.postgres", "no user"),
            (with_url("mysql://u@h/d"), "store.postgres", "not a connection string"),
            (StoreSettings { pool_size: 0, ..with_url("postgres://u@h/d") }, "store.pool_size", "1 to 1024"),
            (
                StoreSettings { connect_timeout: Duration::from_millis(5), ..with_url("postgres://u@h/d") },
                "store.connect_timeout",
                "100ms",
            ),
            (
                StoreSettings { catch_up_interval: Duration::from_secs(600), ..with_url("postgres://u@h/d") },
                "store.catch_up_interval",
                "10ms to 1m",
            ),
            (
                StoreSettings { statement_timeout: Duration::from_millis(10), ..with_url("postgres://u@h/d") },
                "store.statement_timeout",
                "1s to 10m",
            ),
            (
                StoreSettings { password_file: Some("pw".into()), ..StoreSettings::default() },
                "store.password_file",
                "only with store.postgres",
            ),
            (
                StoreSettings { password_file: Some("pw".into()), ..with_url("postgres://u@h/d") },
                "store.password_file",
                "cannot read",
            ),
        ];
        for (file, path, message) in cases {
            let found = problems(file, base);
            assert!(found.iter().any(|(p, m)| p == path && m.contains(message)), "{path}: {found:?}");
        }
    }

    #[test]
    fn the_password_comes_from_its_file_and_never_shows() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("pg-password");
        std::fs::write(&file, "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap_or_else(|e| panic!("{e}"));
        let settings =
            StoreSettings { password_file: Some("pg-password".into()), ..with_url("postgres://cp@db:6432/cdn") };
        let found = problems(settings.clone(), dir.path());
        assert!(found.iter().any(|(p, m)| p == "store.password_file" && m.contains("chmod 600")), "{found:?}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap_or_else(|e| panic!("{e}"));
        let compiled =
            settings.compile(dir.path()).unwrap_or_else(|e| panic!("{e:?}")).unwrap_or_else(|| panic!("set"));
        assert_eq!(compiled.client_config().get_password(), Some(&b"s3cret"[..]));
        assert_eq!(compiled.redacted(), "cp@db:6432/cdn");
        let options = compiled.client_config().get_options().map(str::to_owned);
        assert_eq!(
            options.as_deref(),
            Some("-c statement_timeout=30000 -c idle_in_transaction_session_timeout=30000"),
            "a stuck replica holds the log's lock 30s at most"
        );
        assert!(!format!("{compiled:?}").contains("s3cret"));
        let both = StoreSettings { password_file: Some("pg-password".into()), ..with_url("postgres://cp:x@db/cdn") };
        let found = problems(both, dir.path());
        assert!(found.iter().any(|(p, m)| p == "store.password_file" && m.contains("one place")), "{found:?}");
    }

    #[test]
    fn without_postgres_the_embedded_store_is_used() {
        assert!(matches!(StoreSettings::default().compile(Path::new("")), Ok(None)));
    }
}
