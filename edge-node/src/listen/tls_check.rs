//! What is wrong with `[[tls.certificates]]` before a client's handshake finds it: the checks
//! `check-config` runs, the same ones start-up refuses on ([`super::tls::load_sites`]:
//! a key that is not a private key, or not the certificate's), plus what the files say about
//! the certificate itself: its validity period (RFC 5280 §4.1.2.5) and its names (RFC 6125
//! §6.4, RFC 5280 §4.2.1.6) against the `hosts` it is served for.
//!
//! An expired certificate is an error here, so a deploy is stopped before it ships one: every
//! client fails its handshake for those hosts. A running node that restarts with one still
//! starts and logs it (as nginx and HAProxy do), so one tenant's lapse never takes every other
//! host down. A certificate not valid yet, or whose names miss one of its `hosts`, is a warning:
//! the first may be a renewal staged early, the second may be served on purpose to clients
//! that do not check names.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_config::{CertificateConfig, HostPattern};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `check-config` fails (exit 1).
    Error,
    /// Printed; `check-config` still succeeds.
    Warning,
}

/// One problem, at its field path (`tls.certificates[0].key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertProblem {
    pub severity: Severity,
    pub path: String,
    pub message: String,
}

/// Every problem of every certificate, in file order, judged at `now`.
pub fn inspect(certs: &[CertificateConfig], now: SystemTime) -> Vec<CertProblem> {
    let mut out = Vec::new();
    for (index, cert) in certs.iter().enumerate() {
        inspect_one(index, cert, now, &mut out);
    }
    out
}

fn inspect_one(index: usize, c: &CertificateConfig, now: SystemTime, out: &mut Vec<CertProblem>) {
    let at = |field: &str| format!("tls.certificates[{index}].{field}");
    let mut report =
        |severity, field: &str, message: String| out.push(CertProblem { severity, path: at(field), message });
    let chain = read_chain(&c.cert).map_err(|m| report(Severity::Error, "cert", format!("{}: {m}", c.cert.display())));
    let key = load_key(&c.key).map_err(|m| report(Severity::Error, "key", format!("{}: {m}", c.key.display())));
    let Ok(chain) = chain else { return };
    if let Ok(key) = key
        && let Err(e) = CertifiedKey::new(chain.clone(), key).keys_match()
    {
        let message = format!(
            "{} does not match the certificate in {} (the first in that file is the one served): {e}",
            c.key.display(),
            c.cert.display()
        );
        report(Severity::Error, "key", message);
    }
    let Some(leaf_der) = chain.first() else { return };
    let leaf = match webpki::EndEntityCert::try_from(leaf_der) {
        Ok(leaf) => leaf,
        Err(e) => {
            report(Severity::Error, "cert", format!("{}: not an X.509 certificate: {e}", c.cert.display()));
            return;
        }
    };
    if let Some((severity, message)) = validity(&leaf, now) {
        report(severity, "cert", format!("{}: {message}", c.cert.display()));
    }
    for (j, host) in c.hosts.iter().enumerate() {
        if !covers(&leaf, host) {
            let names: Vec<&str> = leaf.valid_dns_names().collect();
            let message = format!(
                "{} is not among the names of the certificate in {} ({}): clients that check names \
                 refuse it; add the name to the certificate or serve this host with another",
                pattern_text(host),
                c.cert.display(),
                if names.is_empty() { "no DNS names".to_owned() } else { names.join(", ") }
            );
            report(Severity::Warning, &format!("hosts[{j}]"), message);
        }
    }
}

/// Why a certificate file or a key file could not be used; the caller adds the file's path.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{0}")]
    Unreadable(rustls_pki_types::pem::Error),
    #[error("no certificate in file")]
    NoCertificate,
    #[error("not a private key ({0}); give a PEM PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key")]
    NotAKey(rustls_pki_types::pem::Error),
    #[error("not a key this node can sign with: {0}")]
    Unsigning(rustls::Error),
}

/// The certificate chain in `path`, leaf first.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(PemError::Unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(PemError::Unreadable)?;
    if chain.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(chain)
}

/// The private key in `path`, loaded for signing as start-up does.
pub fn load_key(path: &Path) -> Result<Arc<dyn SigningKey>, PemError> {
    let der = PrivateKeyDer::from_pem_file(path).map_err(PemError::NotAKey)?;
    rustls::crypto::ring::default_provider().key_provider.load_private_key(der).map_err(PemError::Unsigning)
}

/// RFC 5280 §4.1.2.5: outside notBefore..=notAfter a certificate is not valid. webpki checks a
/// certificate's own validity before it looks for an issuer, so a chain with no trust anchor
/// reports exactly that (any other outcome, such as the unknown issuer, is not ours to judge:
/// clients have their own roots).
fn validity(leaf: &webpki::EndEntityCert<'_>, now: SystemTime) -> Option<(Severity, String)> {
    let time = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    let outcome = leaf.verify_for_usage(&[], &[], &[], time, webpki::KeyUsage::server_auth(), None, None);
    match outcome {
        Err(webpki::Error::CertExpired { not_after, .. }) => Some((
            Severity::Error,
            format!("expired on {} (notAfter); clients refuse it: renew it", http_date(not_after)),
        )),
        Err(webpki::Error::CertNotValidYet { not_before, .. }) => Some((
            Severity::Warning,
            format!("not valid before {} (notBefore); clients refuse it until then", http_date(not_before)),
        )),
        _ => None,
    }
}

/// RFC 6125 §6.4: an exact host is covered when the certificate is valid for it (a wildcard
/// name covers one label); a `*.suffix` pattern only by the same wildcard name.
pub(crate) fn covers(leaf: &webpki::EndEntityCert<'_>, host: &HostPattern) -> bool {
    match host {
        HostPattern::Exact(name) => ServerName::try_from(name.as_str())
            .is_ok_and(|server_name| leaf.verify_is_valid_for_subject_name(&server_name).is_ok()),
        HostPattern::Wildcard(suffix) => {
            leaf.valid_dns_names().any(|n| n.strip_prefix('*').is_some_and(|s| s.eq_ignore_ascii_case(suffix)))
        }
    }
}

fn pattern_text(host: &HostPattern) -> String {
    match host {
        HostPattern::Exact(name) => format!("\"{name}\""),
        HostPattern::Wildcard(suffix) => format!("\"*{suffix}\""),
    }
}

fn http_date(t: UnixTime) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t.as_secs()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            Self { dir: tempfile::tempdir().unwrap() }
        }
        fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    /// A self-signed certificate for `names`, valid from the first of one month to another's,
    /// and its key, in PEM.
    fn cert(names: &[&str], not_before: (i32, u8), not_after: (i32, u8)) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn config(files: &Files, hosts: &[&str], cert_pem: &str, key_pem: &str) -> CertificateConfig {
        CertificateConfig {
            hosts: hosts.iter().map(|h| h.parse().unwrap()).collect(),
            cert: files.write("cert.pem", cert_pem),
            key: files.write("key.pem", key_pem),
        }
    }

    /// (clause, hosts, certificate PEM, key PEM, the problems wanted: severity, field, words).
    type Case<'a> = (&'a str, Vec<&'a str>, String, String, Vec<(Severity, &'a str, &'a str)>);

    #[test]
    fn each_problem_at_its_field() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_000_000); // 2026-12
        let good = cert(&["shop.test", "*.shop.test"], (2026, 1), (2027, 6));
        let other = cert(&["shop.test"], (2026, 1), (2027, 6));
        let expired = cert(&["shop.test"], (2025, 1), (2026, 6));
        let early = cert(&["shop.test"], (2027, 1), (2028, 1));
        let (good_pem, good_key) = good;
        use Severity::{Error, Warning};
        let cases: Vec<Case> = vec![
            (
                "valid, names cover the hosts",
                vec!["shop.test", "a.shop.test", "*.shop.test"],
                good_pem.clone(),
                good_key.clone(),
                vec![],
            ),
            (
                "RFC 5958 a certificate given as the key",
                vec!["shop.test"],
                good_pem.clone(),
                good_pem.clone(),
                vec![(Error, "key", "not a private key")],
            ),
            (
                "RFC 8446 §4.4.2 the key must be the certificate's",
                vec!["shop.test"],
                good_pem.clone(),
                other.1,
                vec![(Error, "key", "does not match the certificate")],
            ),
            (
                "RFC 5280 §4.1.2.5 after notAfter",
                vec!["shop.test"],
                expired.0,
                expired.1,
                vec![(Error, "cert", "expired on")],
            ),
            (
                "RFC 5280 §4.1.2.5 before notBefore",
                vec!["shop.test"],
                early.0,
                early.1,
                vec![(Warning, "cert", "not valid before")],
            ),
            (
                "RFC 6125 §6.4 names that miss a host",
                vec!["shop.test", "blog.test", "*.blog.test"],
                good_pem.clone(),
                good_key.clone(),
                vec![
                    (Warning, "hosts[1]", "\"blog.test\" is not among"),
                    (Warning, "hosts[2]", "\"*.blog.test\" is not among"),
                ],
            ),
            (
                "RFC 7468 no certificate in the file",
                vec!["shop.test"],
                String::new(),
                good_key.clone(),
                vec![(Error, "cert", "no certificate")],
            ),
        ];
        for (clause, hosts, cert_pem, key_pem, want) in cases {
            let files = Files::new();
            let got = inspect(&[config(&files, &hosts, &cert_pem, &key_pem)], now);
            assert_eq!(got.len(), want.len(), "{clause}: {got:?}");
            for (problem, (severity, field, text)) in got.iter().zip(want) {
                assert_eq!(problem.severity, severity, "{clause}: {problem:?}");
                assert_eq!(problem.path, format!("tls.certificates[0].{field}"), "{clause}");
                assert!(problem.message.contains(text), "{clause}: {}", problem.message);
            }
        }
    }
}
