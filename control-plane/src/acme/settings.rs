//! `[acme]`: the ACME (RFC 8555) directory the control plane orders `tls = "auto"` services'
//! certificates from, and how it schedules and bounds the orders.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Let's Encrypt's production directory: the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `[acme]`. Every field has a default: without the table, `tls = "auto"` services get
/// certificates from Let's Encrypt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeSettings {
    /// The ACME directory URL (`https://`). Default: Let's Encrypt's production directory.
    pub directory: String,
    /// Contact addresses for the account (`mailto:ops@example.com`); the CA writes to them
    /// about expiring certificates and policy changes. Default: none.
    pub contact: Vec<String>,
    /// A PEM file of CA certificates trusted for the directory's HTTPS, beside the system's
    /// roots: a private ACME server (step-ca, Pebble in tests). Relative to the config file.
    /// Default: none.
    pub ca_file: Option<PathBuf>,
    /// The challenge type offered to the CA: `"http-01"` (port 80 of an edge) or
    /// `"tls-alpn-01"` (port 443). Edges answer both; this picks which one the CA is asked to
    /// validate. Default: `"http-01"`.
    pub challenge: String,
    /// How often the driver looks at every `tls = "auto"` service (due renewals, new hosts,
    /// retries). Each round costs one store read. Default: `"1m"`; 100ms to 1h.
    #[serde(with = "outpost_config::units::duration")]
    pub interval: Duration,
    /// First wait after a failed order; doubles with each failure in a row, with full jitter.
    /// Default: `"1m"`; 1s to 1d (tests use less: 100ms at least).
    #[serde(with = "outpost_config::units::duration")]
    pub retry_min: Duration,
    /// Longest wait between failed orders. Default: `"6h"`; at least `retry_min`, at most 7d.
    #[serde(with = "outpost_config::units::duration")]
    pub retry_max: Duration,
    /// How long one order may take, from creation to the certificate (validations included);
    /// past it the order fails with `timeout`. Also the lease a replica holds on it, and the
    /// lifetime of the challenge answers edges serve. Default: `"2m"`; 5s to 1h.
    #[serde(with = "outpost_config::units::duration")]
    pub order_timeout: Duration,
    /// Orders driven at once by one replica; more services wait for the next round.
    /// Default: `8`; 1 to 1000.
    pub max_concurrent_orders: usize,
    /// Most hosts in one order (one certificate): a service with more gets an error naming
    /// the bound. Let's Encrypt allows 100. Default: `100`; 1 to 100.
    pub max_hosts: usize,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        Self {
            directory: LETS_ENCRYPT.to_owned(),
            contact: Vec::new(),
            ca_file: None,
            challenge: "http-01".to_owned(),
            interval: Duration::from_secs(60),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
            order_timeout: Duration::from_secs(120),
            max_concurrent_orders: 8,
            max_hosts: 100,
        }
    }
}

impl AcmeSettings {
    /// Every problem with its field path (`acme.retry_max`).
    pub fn check(&self, report: &mut dyn FnMut(&str, String)) {
        if !self.directory.starts_with("https://") || self.directory.len() <= "https://".len() {
            report("acme.directory", format!("{:?} is not an https:// URL", self.directory));
        }
        for (i, contact) in self.contact.iter().enumerate() {
            if !contact.starts_with("mailto:") || contact.len() <= "mailto:".len() {
                report(&format!("acme.contact[{i}]"), format!("{contact:?} is not a mailto: URL"));
            }
        }
        if !matches!(self.challenge.as_str(), "http-01" | "tls-alpn-01") {
            report("acme.challenge", format!("{:?} is not one of \"http-01\", \"tls-alpn-01\"", self.challenge));
        }
        let ranges = [
            ("acme.interval", self.interval, Duration::from_millis(100), Duration::from_secs(3600), "100ms to 1h"),
            ("acme.retry_min", self.retry_min, Duration::from_millis(100), Duration::from_secs(86_400), "100ms to 1d"),
            ("acme.order_timeout", self.order_timeout, Duration::from_secs(5), Duration::from_secs(3600), "5s to 1h"),
        ];
        for (path, value, min, max, valid) in ranges {
            if value < min || value > max {
                report(path, format!("{value:?} is out of range; use {valid}"));
            }
        }
        if self.retry_max < self.retry_min || self.retry_max > Duration::from_secs(7 * 86_400) {
            report("acme.retry_max", format!("{:?} is out of range; use retry_min to 7d", self.retry_max));
        }
        if !(1..=1000).contains(&self.max_concurrent_orders) {
            report(
                "acme.max_concurrent_orders",
                format!("{} is out of range; use 1 to 1000", self.max_concurrent_orders),
            );
        }
        if !(1..=100).contains(&self.max_hosts) {
            report("acme.max_hosts", format!("{} is out of range; use 1 to 100", self.max_hosts));
        }
    }

    /// `ca_file` resolved against the config file's directory.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(file) = &self.ca_file
            && file.is_relative()
        {
            self.ca_file = Some(base.join(file));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(settings: &AcmeSettings) -> Vec<String> {
        let mut found = Vec::new();
        settings.check(&mut |path, message| found.push(format!("{path}: {message}")));
        found
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_field() {
        assert_eq!(problems(&AcmeSettings::default()), Vec::<String>::new());
        let rows: [(AcmeSettings, &str); 7] = [
            (AcmeSettings { directory: "http://ca/dir".into(), ..Default::default() }, "acme.directory"),
            (AcmeSettings { contact: vec!["ops@example.com".into()], ..Default::default() }, "acme.contact[0]"),
            (AcmeSettings { challenge: "dns-01".into(), ..Default::default() }, "acme.challenge"),
            (AcmeSettings { interval: Duration::from_millis(10), ..Default::default() }, "acme.interval"),
            (AcmeSettings { retry_max: Duration::from_secs(1), ..Default::default() }, "acme.retry_max"),
            (AcmeSettings { order_timeout: Duration::from_secs(1), ..Default::default() }, "acme.order_timeout"),
            (AcmeSettings { max_hosts: 101, ..Default::default() }, "acme.max_hosts"),
        ];
        for (settings, path) in rows {
            let found = problems(&settings);
            assert!(found.len() == 1 && found[0].starts_with(path), "{path}: {found:?}");
        }
    }
}
