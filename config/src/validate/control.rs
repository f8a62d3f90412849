//! Checks of `[control]`: one token source, readable files, positive timeouts, a backoff range.

use std::path::Path;
use std::time::Duration;

use super::Report;
use crate::control_client::{ControlConfig, defaults};
use crate::units::{ByteSize, format_duration};

pub(super) fn check(report: &mut Report<'_>, control: &ControlConfig) {
    check_urls(report, control);
    match (&control.token, &control.token_file) {
        (None, None) => report.error(
            "control",
            "no node token; set control.token or control.token_file (the control plane's \
             [[tokens]] entry with node = true)",
        ),
        (Some(_), Some(_)) => report.error("control.token_file", "set control.token or control.token_file, not both"),
        (Some(token), None) => {
            if let Err(why) = check_token(token) {
                report.error("control.token", why);
            }
        }
        (None, Some(file)) => check_token_file(report, file),
    }
    if let Some(ca) = &control.ca {
        report.readable_file("control.ca", ca);
    }
    if control.state_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        report.error("control.state_dir", "empty; give a directory, or leave it out to use cache.disk_path");
    }
    report.positive("control.connect_timeout", control.connect_timeout);
    report.positive("control.request_timeout", control.request_timeout);
    if control.heartbeat_timeout < Duration::from_secs(1) {
        report.error(
            "control.heartbeat_timeout",
            format!(
                "{} is too short; use at least 1s (the control plane sends a heartbeat every 5s by default)",
                format_duration(control.heartbeat_timeout)
            ),
        );
    }
    report.positive("control.backoff_min", control.backoff_min);
    if control.backoff_max < control.backoff_min {
        report.error(
            "control.backoff_max",
            format!(
                "{} is below control.backoff_min; use at least control.backoff_min ({})",
                format_duration(control.backoff_max),
                format_duration(control.backoff_min)
            ),
        );
    }
    report.size("control.max_message_size", control.max_message_size, ByteSize::kib(1), Some(ByteSize::gib(1)));
    let advertise = &control.advertise;
    for (name, addr) in [("http", advertise.http), ("https", advertise.https), ("admin", advertise.admin)] {
        let Some(addr) = addr else { continue };
        if addr.ip().is_unspecified() || addr.ip().is_multicast() || addr.port() == 0 {
            report.error(
                format!("control.advertise.{name}"),
                format!(
                    "{addr} cannot be reached; give the address and port others connect to, e.g. \"203.0.113.7:443\""
                ),
            );
        }
    }
}

/// One of `url` and `urls`; `urls` distinct and at most [`defaults::MAX_URLS`].
fn check_urls(report: &mut Report<'_>, control: &ControlConfig) {
    match (&control.url, control.urls.is_empty()) {
        (None, true) => report.error(
            "control.url",
            "set control.url or control.urls (the control plane's API, e.g. \"https://control.cdn.example\")",
        ),
        (Some(_), false) => report.error("control.urls", "set control.url or control.urls, not both"),
        _ => {}
    }
    if control.urls.len() > defaults::MAX_URLS {
        report.error(
            "control.urls",
            format!("{} URLs; give at most {} control-plane replicas", control.urls.len(), defaults::MAX_URLS),
        );
    }
    for (i, url) in control.urls.iter().enumerate() {
        if let Some(first) = control.urls[..i].iter().position(|other| other == url) {
            report.error(format!("control.urls[{i}]"), format!("\"{url}\" is the same as control.urls[{first}]"));
        }
    }
}

/// The file must be readable now; its content is checked each time the agent reads it.
fn check_token_file(report: &mut Report<'_>, file: &Path) {
    let problem = match std::fs::metadata(file) {
        Ok(meta) if !meta.is_file() => Some("not a regular file".to_owned()),
        Ok(_) => std::fs::File::open(file).err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(problem) = problem {
        report.error(
            "control.token_file",
            format!(
                "cannot read \"{}\": {problem}; expected a file holding the node token (relative \
                 paths are resolved against the config file's directory)",
                file.display()
            ),
        );
    }
}

/// A token goes into an `Authorization` header: visible ASCII, no spaces.
fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("empty; give the node token".to_owned());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII without spaces (it is sent as a bearer token)".to_owned());
    }
    Ok(())
}
