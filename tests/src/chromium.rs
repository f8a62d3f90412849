//! Headless Chromium (Debian's `chromium` package, which `.ci/run` installs) as a client nobody
//! here wrote: [`chromium`] finds the binary, [`run`] loads one URL with the offline flags and
//! returns the DOM the page settled on (`--dump-dom`), bounded by [`CHROMIUM_LIMIT`]. Scenarios
//! add their own flags: how to trust the test certificate (`--ignore-certificate-errors-spki-list`
//! with [`crate::tls::spki_sha256_base64`]), where names resolve (`--host-resolver-rules`), QUIC.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Bound on one Chromium run, start to exit; past it the process is killed and the test fails.
pub const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

/// What one Chromium run left behind.
pub struct BrowserRun {
    pub command_line: String,
    pub status: ExitStatus,
    pub elapsed: Duration,
    pub dom: String,
    pub stderr: String,
}

impl BrowserRun {
    pub fn diagnosis(&self) -> String {
        format!(
            "chromium: {}\nexit: {} after {:?}\n---- dumped DOM ----\n{}\n---- chromium stderr ----\n{}",
            self.command_line, self.status, self.elapsed, self.dom, self.stderr
        )
    }

    /// The text of `<pre id="{id}">`, as the page's script left it.
    pub fn field(&self, id: &str) -> Option<&str> {
        let open = format!("<pre id=\"{id}\">");
        let start = self.dom.find(&open)? + open.len();
        let len = self.dom[start..].find("</pre>")?;
        Some(&self.dom[start..start + len])
    }
}

/// `OUTPOST_CHROMIUM` when set; else `/usr/bin/chromium`, else `chromium` on PATH. Missing
/// is an error that names the package: a skipped check would read as a passed one.
pub fn chromium() -> anyhow::Result<PathBuf> {
    const INSTALL: &str = "this test needs Debian's `chromium` package: `apt-get install \
                           --no-install-recommends chromium` (.ci/run installs it)";
    if let Some(path) = std::env::var_os("OUTPOST_CHROMIUM").map(PathBuf::from) {
        anyhow::ensure!(path.is_file(), "OUTPOST_CHROMIUM={} is not a file; {INSTALL}", path.display());
        return Ok(path);
    }
    let debian = Path::new("/usr/bin/chromium");
    if debian.is_file() {
        return Ok(debian.to_path_buf());
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("chromium")).find(|p| p.is_file()));
    on_path.with_context(|| format!("no chromium: neither /usr/bin/chromium nor `chromium` on PATH; {INSTALL}"))
}

/// Runs headless Chromium on `url` with `args` after the common offline flags, bounded by
/// [`CHROMIUM_LIMIT`]; the DOM after the page settles comes from `--dump-dom` on stdout.
pub async fn run(bin: &Path, url: &str, args: &[String]) -> anyhow::Result<BrowserRun> {
    let dir = tempfile::Builder::new().prefix("outpost-chromium-").tempdir()?;
    let profile = dir.path().join("profile");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut argv: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        // Containers often have a small /dev/shm; shared memory then comes from /tmp instead.
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    argv.push(format!("--user-data-dir={}", profile.display()));
    argv.extend(args.iter().cloned());
    argv.push("--dump-dom".into());
    argv.push(url.into());
    let shell_words: Vec<String> =
        argv.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() }).collect();
    let command_line = format!("{} {}", bin.display(), shell_words.join(" "));

    // Files, not pipes: Chromium's helper processes inherit the descriptors and may outlive
    // the browser process, so a pipe's end-of-file would not mark the end of the output.
    let mut child = Command::new(bin)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning {command_line}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > CHROMIUM_LIMIT {
            // Only the process this test started, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            anyhow::bail!("chromium did not exit within {CHROMIUM_LIMIT:?}\n{command_line}\nstderr:\n{stderr}");
        }
        // Async sleep: the origin serving Chromium's requests runs on this test's runtime.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Ok(BrowserRun {
        command_line,
        status,
        elapsed: start.elapsed(),
        dom: std::fs::read_to_string(&out_path)?,
        stderr: std::fs::read_to_string(&err_path)?,
    })
}
