//! The checks an uploaded certificate passes before it is stored (pure: PEM text, the service's
//! hosts and `now` in, the facts the API shows or every problem with its field out):
//! - `chain_pem`: PEM certificates, leaf first, at most [`MAX_CHAIN`]; each within its validity
//!   at `now` (RFC 5280 §4.1.2.5); each issued by the next (RFC 5280 §6.1: the chain builds
//!   from the leaf through the intermediates; the last one is taken as the anchor, since
//!   clients bring their own roots); the leaf has DNS names (RFC 6125 §6.4.4: clients match
//!   subjectAltName only).
//! - `key_pem`: one PEM private key (PKCS#8, PKCS#1 or SEC1) that signs for the leaf's public
//!   key (RFC 8446 §4.4.2).
//! - `hosts`: the hosts it is for, each a host of the service and covered by its names; when
//!   not given, at least one of the service's hosts must be covered.

use std::sync::Arc;

use outpost_config::{HostPattern, Timestamp};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::x509;
use crate::api::FieldError;

/// Certificates in one chain, at most. Real chains hold 2 to 4.
pub const MAX_CHAIN: usize = 10;

/// What a certificate that passed says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The chain re-encoded as PEM (no text around the blocks).
    pub chain_pem: String,
    pub names: Vec<String>,
    pub issuer: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub sha256: String,
    /// The hosts of the service it covers (as the hosts were asked for, or all covered).
    pub hosts: Vec<HostPattern>,
}

/// Checks `chain_pem` and `key_pem` for a service with `service_hosts`; `hosts` are the ones
/// asked for (`None`: any of the service's). Every problem found, each at its field.
pub fn check(
    chain_pem: &str,
    key_pem: &str,
    hosts: Option<&[String]>,
    service_hosts: &[HostPattern],
    now: Timestamp,
) -> Result<Checked, Vec<FieldError>> {
    let mut problems = Vec::new();
    let mut report = |path: &str, message: String| problems.push(FieldError { path: path.to_owned(), message });
    let chain = read_chain(chain_pem).map_err(|m| report("chain_pem", m));
    let key = read_key(key_pem).map_err(|m| report("key_pem", m));
    let (Ok(chain), key) = (chain, key) else { return Err(problems) };
    if let Ok(key) = key
        && CertifiedKey::new(chain.clone(), key).keys_match().is_err()
    {
        report("key_pem", "does not match the leaf certificate (the first in chain_pem)".to_owned());
    }
    let mut fields = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        match x509::read(der) {
            Ok(f) => fields.push(f),
            Err(e) => {
                report("chain_pem", format!("certificate {i} is not an X.509 certificate ({e})"));
                return Err(problems);
            }
        }
    }
    let mut valid = true;
    for (i, f) in fields.iter().enumerate() {
        if let Some(message) = outside_validity(i, f, now) {
            report("chain_pem", message);
            valid = false;
        }
    }
    // webpki would report an expiry again, less precisely.
    if valid && let Err(message) = builds(&chain, &fields, now) {
        report("chain_pem", message);
    }
    let Some(leaf) = chain.first().and_then(|der| webpki::EndEntityCert::try_from(der).ok()) else {
        report("chain_pem", "certificate 0 is not an end-entity certificate webpki can read".to_owned());
        return Err(problems);
    };
    let names: Vec<String> = leaf.valid_dns_names().map(str::to_ascii_lowercase).collect();
    if names.is_empty() {
        report(
            "chain_pem",
            "the leaf has no DNS names (subjectAltName); clients match host names only there".to_owned(),
        );
    }
    let covered = coverage(&leaf, &names, hosts, service_hosts, &mut report);
    if !problems.is_empty() {
        return Err(problems);
    }
    let (leaf_fields, leaf_der) = (&fields[0], &chain[0]);
    Ok(Checked {
        chain_pem: chain.iter().map(pem).collect(),
        names,
        issuer: leaf_fields.issuer.clone(),
        not_before: leaf_fields.not_before,
        not_after: leaf_fields.not_after,
        sha256: crate::auth::hex(&crate::auth::sha256(leaf_der)),
        hosts: covered,
    })
}

fn read_chain(text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    match chain.len() {
        0 => Err("no certificate (a PEM \"BEGIN CERTIFICATE\" block, leaf first)".to_owned()),
        n if n > MAX_CHAIN => Err(format!("{n} certificates; at most {MAX_CHAIN} in one chain")),
        _ => Ok(chain),
    }
}

fn read_key(text: &str) -> Result<Arc<dyn rustls::sign::SigningKey>, String> {
    // Never the key's text in a message: it ends up in logs and responses.
    let der = PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|_| "not a PEM private key; give a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key".to_owned())?;
    rustls::crypto::ring::default_provider().key_provider.load_private_key(der).map_err(|_| {
        "not a key type TLS can sign with (RSA of 2048 bits or more, ECDSA P-256/P-384, Ed25519)".to_owned()
    })
}

/// RFC 5280 §4.1.2.5: valid from notBefore through notAfter.
fn outside_validity(i: usize, f: &x509::Fields, now: Timestamp) -> Option<String> {
    let which = if i == 0 { "the leaf".to_owned() } else { format!("certificate {i} (\"{}\")", f.subject) };
    if now > f.not_after {
        Some(format!("{which} expired on {} (notAfter); renew it", f.not_after))
    } else if now < f.not_before {
        Some(format!("{which} is not valid before {} (notBefore)", f.not_before))
    } else {
        None
    }
}

/// RFC 5280 §6.1: each certificate is issued by the next. webpki builds the path from the leaf
/// with the last certificate as the anchor.
fn builds(chain: &[CertificateDer<'static>], fields: &[x509::Fields], now: Timestamp) -> Result<(), String> {
    for (i, pair) in fields.windows(2).enumerate() {
        if pair[0].issuer != pair[1].subject {
            return Err(format!(
                "the chain does not build: certificate {i} is issued by \"{}\", but certificate {} is \"{}\" \
                 (give the leaf first, then each certificate's issuer)",
                pair[0].issuer,
                i + 1,
                pair[1].subject
            ));
        }
    }
    let (Some(leaf), Some(last)) = (chain.first(), chain.last()) else { return Ok(()) };
    if chain.len() < 2 {
        return Ok(());
    }
    let anchor = webpki::anchor_from_trusted_cert(last).map_err(|e| format!("certificate {}: {e}", chain.len() - 1))?;
    let intermediates = &chain[1..chain.len() - 1];
    let leaf = webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("certificate 0: {e}"))?;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_millis(now.0));
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        intermediates,
        at,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| match e {
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
            "the chain does not build: a certificate's signature does not verify with the next one's key \
             (give the leaf first, then each certificate's issuer)"
                .to_owned()
        }
        other => format!("the chain does not verify: {other}"),
    })
}

/// The hosts the certificate is for, each checked; problems go to `report`.
fn coverage(
    leaf: &webpki::EndEntityCert<'_>,
    names: &[String],
    hosts: Option<&[String]>,
    service_hosts: &[HostPattern],
    report: &mut impl FnMut(&str, String),
) -> Vec<HostPattern> {
    let listed = || if names.is_empty() { "no DNS names".to_owned() } else { names.join(", ") };
    match hosts {
        Some(hosts) => {
            let mut out = Vec::new();
            for (i, host) in hosts.iter().enumerate() {
                let path = format!("hosts[{i}]");
                let pattern = match host.parse::<HostPattern>() {
                    Ok(pattern) => pattern,
                    Err(why) => {
                        report(&path, why);
                        continue;
                    }
                };
                if !service_hosts.contains(&pattern) {
                    report(&path, format!("\"{host}\" is not a host of this service"));
                } else if !covers(leaf, names, &pattern) {
                    report(&path, format!("\"{host}\" is not among the certificate's names ({})", listed()));
                } else {
                    out.push(pattern);
                }
            }
            out
        }
        None => {
            let covered: Vec<HostPattern> = service_hosts.iter().filter(|h| covers(leaf, names, h)).cloned().collect();
            if covered.is_empty() && !names.is_empty() {
                let hosts: Vec<String> = service_hosts.iter().map(|h| h.to_string()).collect();
                report(
                    "chain_pem",
                    format!(
                        "the certificate's names ({}) cover none of the service's hosts ({})",
                        listed(),
                        if hosts.is_empty() { "none".to_owned() } else { hosts.join(", ") }
                    ),
                );
            }
            covered
        }
    }
}

/// RFC 6125 §6.4: an exact host is covered when the certificate is valid for it (a wildcard
/// name covers one label); a `*.suffix` pattern only by that same wildcard name.
pub fn covers(leaf: &webpki::EndEntityCert<'_>, names: &[String], host: &HostPattern) -> bool {
    match host {
        HostPattern::Exact(name) => ServerName::try_from(name.as_str())
            .is_ok_and(|server_name| leaf.verify_is_valid_for_subject_name(&server_name).is_ok()),
        HostPattern::Wildcard(suffix) => names.iter().any(|n| n.strip_prefix('*').is_some_and(|s| s == suffix)),
    }
}

fn pem(der: &CertificateDer<'_>) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
