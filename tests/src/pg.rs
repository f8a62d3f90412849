//! A throwaway PostgreSQL cluster: `initdb` and `pg_ctl` from Debian's `postgresql` package on
//! a loopback port, in a temporary directory, stopped (`pg_ctl -m fast stop`) and removed on
//! drop.
//!
//! `initdb` refuses to run as root, so as root every server command runs as the `postgres`
//! user through `runuser`, in a directory that user owns. A watchdog shell also stops the
//! cluster when the test process dies without dropping it (a SIGKILLed test run, or a cluster
//! kept in a `static` for a whole test binary, whose destructor never runs).
//!
//! Standard library and `tempfile` only: the control plane's unit tests include this file too
//! (`#[path]`), so one harness starts PostgreSQL for both.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running cluster; `postgres` is its superuser, with trust authentication on loopback.
pub struct PgCluster {
    root: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// Makes and starts a cluster (about a second). Tries a few free ports: the port is picked
    /// by binding port 0 and released before the server binds it, so another process may take
    /// it in between.
    pub fn start() -> Result<Self, String> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let root = tempfile::Builder::new().prefix("outpost-pg-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let mut cluster = Self { root, bin, port: 0, as_postgres };
        // Before anything can be left behind: a test killed during the start leaves nothing.
        cluster.watchdog();
        cluster.init()?;
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(format!("postgres did not start: {last}"))
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates an empty database (`createdb`).
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        let port = self.port.to_string();
        let createdb = self.bin.join("createdb");
        let status = Command::new(&createdb)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", createdb.display()))?;
        if status.status.success() {
            Ok(())
        } else {
            Err(format!("createdb {name}: {}", String::from_utf8_lossy(&status.stderr)))
        }
    }

    /// Stops the server (`pg_ctl -m fast stop`: open connections are cut), keeping its data:
    /// the database is away until [`PgCluster::resume`].
    pub fn pause(&self) -> Result<(), String> {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = self.server_command(&pg_ctl);
        command.arg("-D").arg(self.data()).args(["-m", "fast", "-w", "stop"]);
        run(&mut command)
    }

    /// Starts the server again on the same port and data after [`PgCluster::pause`].
    pub fn resume(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }

    /// Runs `sql` in `database` with `psql`; the rows as unaligned text, one per line.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        let psql = self.bin.join("psql");
        let out = Command::new(&psql)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", database, "-At", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", psql.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.root.path().join("postgres.log")
    }

    /// The server's log so far (to print when a test fails).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn init(&self) -> Result<(), String> {
        let data = self.data();
        std::fs::create_dir(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        if self.as_postgres {
            // The temp dir is root's (0700): let postgres through, and give it its own dirs.
            set_mode(self.root.path(), 0o755)?;
            std::fs::write(self.log(), "").map_err(|e| format!("log file: {e}"))?;
            run(Command::new("chown").args(["postgres:postgres"]).arg(&data).arg(self.log()))?;
        }
        let initdb = self.bin.join("initdb");
        let mut command = self.server_command(&initdb);
        command.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        run(&mut command)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.data();
        // Unix sockets in the data dir (postgres may write there); fsync off: a throwaway
        // cluster need not survive a power cut, and tests run far faster without it.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            data.display()
        );
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = self.server_command(&pg_ctl);
        command.arg("-D").arg(&data).args(["-o", &options, "-l"]).arg(self.log()).args(["-w", "-t", "60", "start"]);
        run(&mut command).map_err(|e| format!("{e}\n{}", self.log_text()))
    }

    /// A shell that waits for this process to end, then stops the cluster (immediately) and
    /// removes its directory: nothing is left running after a killed test.
    fn watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- {} -D {} -m immediate stop", pg_ctl.display(), self.data().display())
        } else {
            format!("{} -D {} -m immediate stop", pg_ctl.display(), self.data().display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {root}",
            pid = std::process::id(),
            root = self.root.path().display()
        );
        // In a process group of its own: `timeout` (and a terminal's Ctrl-C) signal the test's
        // whole group, and the watchdog must outlive the test to do its job.
        let _ = Command::new("sh")
            .process_group(0)
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn server_command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = self.server_command(&pg_ctl);
        command.arg("-D").arg(self.data()).args(["-m", "fast", "-w", "stop"]);
        let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// Debian's `/usr/lib/postgresql/<version>/bin`, the newest version installed.
fn bin_dir() -> Result<PathBuf, String> {
    let base = Path::new("/usr/lib/postgresql");
    let entries = std::fs::read_dir(base)
        .map_err(|e| format!("{}: {e}; install PostgreSQL (apt-get install postgresql)", base.display()))?;
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("free port: {e}"))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
