//! What the API shows of a certificate that webpki does not expose: its validity period and its
//! issuer's and subject's names. A small DER reader over the fixed start of a certificate
//! (RFC 5280 §4.1):
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER,
//!     signature AlgorithmIdentifier, issuer Name, validity Validity, subject Name, ... }
//! Validity ::= SEQUENCE { notBefore Time, notAfter Time }   -- UTCTime or GeneralizedTime
//! ```
//! Pure: bytes in, fields out; anything else is an error, never a panic.

use outpost_config::Timestamp;

/// The fields read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub issuer: String,
    pub subject: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0;
/// id-at-commonName (2.5.4.3) and id-at-organizationName (2.5.4.10), DER-encoded.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// Reads the fields of a DER certificate.
pub fn read(der: &[u8]) -> Result<Fields, &'static str> {
    let (certificate, _) = tlv(der, SEQUENCE)?;
    let (mut tbs, _) = tlv(certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = tlv(tbs, VERSION)?.1;
    }
    let (_, rest) = tlv(tbs, INTEGER)?;
    let (_, rest) = tlv(rest, SEQUENCE)?;
    let (issuer, rest) = tlv(rest, SEQUENCE)?;
    let (validity, rest) = tlv(rest, SEQUENCE)?;
    let (subject, _) = tlv(rest, SEQUENCE)?;
    let (not_before, after) = time(validity)?;
    let (not_after, _) = time(after)?;
    Ok(Fields { issuer: name(issuer)?, subject: name(subject)?, not_before, not_after })
}

/// One TLV with the expected tag: its contents and what follows it.
fn tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), &'static str> {
    let (&found, rest) = input.split_first().ok_or("truncated")?;
    if found != tag {
        return Err("unexpected field");
    }
    let (body, rest) = contents(rest)?;
    Ok((body, rest))
}

/// Any TLV: its tag, contents and what follows.
fn any(input: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    let (&tag, rest) = input.split_first().ok_or("truncated")?;
    let (body, rest) = contents(rest)?;
    Ok((tag, body, rest))
}

/// X.690 §8.1.3: a short length (< 128), or 0x8N and N big-endian bytes (at most 4 here).
fn contents(input: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let (&first, rest) = input.split_first().ok_or("truncated")?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err("bad length");
        }
        let (bytes, rest) = rest.split_at(count);
        (bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b)), rest)
    };
    if rest.len() < length {
        return Err("truncated");
    }
    Ok(rest.split_at(length))
}

/// A Time and what follows it. RFC 5280 §4.1.2.5.1: UTCTime YYMMDDHHMMSSZ, YY >= 50 is 19YY;
/// §4.1.2.5.2: GeneralizedTime YYYYMMDDHHMMSSZ. Before 1970 reads as 1970.
fn time(input: &[u8]) -> Result<(Timestamp, &[u8]), &'static str> {
    let (tag, body, rest) = any(input)?;
    let text = std::str::from_utf8(body).map_err(|_| "bad time")?;
    let digits = text.strip_suffix('Z').filter(|d| d.bytes().all(|b| b.is_ascii_digit())).ok_or("bad time")?;
    let full = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let century = if digits.get(..2).is_some_and(|yy| yy >= "50") { "19" } else { "20" };
            format!("{century}{digits}")
        }
        (GENERALIZED_TIME, 14) => digits.to_owned(),
        _ => return Err("bad time"),
    };
    let part = |range: std::ops::Range<usize>| full.get(range).unwrap_or("00");
    if part(0..4) < "1970" {
        return Ok((Timestamp(0), rest));
    }
    let rfc3339 =
        format!("{}-{}-{}T{}:{}:{}Z", part(0..4), part(4..6), part(6..8), part(8..10), part(10..12), part(12..14));
    Ok((Timestamp::parse(&rfc3339).map_err(|_| "bad time")?, rest))
}

/// A Name as shown: its common name, else its organization, else `"(no name)"`.
fn name(rdns: &[u8]) -> Result<String, &'static str> {
    let (mut common, mut organization) = (None, None);
    let mut rest = rdns;
    while !rest.is_empty() {
        let (set, next) = tlv(rest, SET)?;
        rest = next;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, next) = tlv(attributes, SEQUENCE)?;
            attributes = next;
            let (oid, value) = tlv(attribute, OID)?;
            let (_, text, _) = any(value)?;
            let text = String::from_utf8_lossy(text).into_owned();
            if oid == COMMON_NAME {
                common = Some(text);
            } else if oid == ORGANIZATION {
                organization = Some(text);
            }
        }
    }
    Ok(common.or(organization).unwrap_or_else(|| "(no name)".to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn der(params: rcgen::CertificateParams, issuer: Option<(&rcgen::CertificateParams, &rcgen::KeyPair)>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        match issuer {
            None => params.self_signed(&key).unwrap().der().to_vec(),
            Some((ca, ca_key)) => {
                let issuer = rcgen::Issuer::from_params(ca, ca_key);
                params.signed_by(&key, &issuer).unwrap().der().to_vec()
            }
        }
    }

    #[test]
    fn reads_names_and_validity_in_both_time_forms() {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(rcgen::DnType::CommonName, "Outpost Test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();

        // (what, params, issuer name, subject name, notBefore, notAfter)
        let mut utc = rcgen::CertificateParams::new(vec!["shop.test".to_owned()]).unwrap();
        utc.not_before = rcgen::date_time_ymd(2026, 1, 2);
        utc.not_after = rcgen::date_time_ymd(2027, 3, 4);
        let mut generalized = rcgen::CertificateParams::new(vec!["shop.test".to_owned()]).unwrap();
        generalized.not_before = rcgen::date_time_ymd(1975, 5, 6);
        generalized.not_after = rcgen::date_time_ymd(2051, 7, 8); // RFC 5280: from 2050 on, GeneralizedTime
        generalized.distinguished_name = rcgen::DistinguishedName::new();
        generalized.distinguished_name.push(rcgen::DnType::OrganizationName, "Shop Ltd");
        let cases = [
            (
                "UTCTime, signed by a CA",
                der(utc, Some((&ca, &ca_key))),
                "Outpost Test CA",
                "rcgen self signed cert",
                "2026-01-02",
                "2027-03-04",
            ),
            (
                "GeneralizedTime, organization only",
                der(generalized, None),
                "Shop Ltd",
                "Shop Ltd",
                "1975-05-06",
                "2051-07-08",
            ),
        ];
        for (what, der, issuer, subject, not_before, not_after) in cases {
            let fields = read(&der).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!((fields.issuer.as_str(), fields.subject.as_str()), (issuer, subject), "{what}");
            assert!(fields.not_before.to_string().starts_with(not_before), "{what}: {}", fields.not_before);
            assert!(fields.not_after.to_string().starts_with(not_after), "{what}: {}", fields.not_after);
        }
    }

    #[test]
    fn anything_else_is_an_error_not_a_panic() {
        let good = der(rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap(), None);
        for cut in 0..good.len() {
            let _ = read(&good[..cut]);
        }
        for bad in [&b""[..], &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], &[0x30, 0x80], &[0x02, 0x01, 0x00]] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
    }
}
