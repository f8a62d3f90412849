#![allow(clippy::unwrap_used)]

use super::*;
use crate::certs::testpki::{Ca, self_signed};

/// 2026-12-01.
const NOW: Timestamp = Timestamp(1_796_083_200_000);

fn hosts(list: &[&str]) -> Vec<HostPattern> {
    list.iter().map(|h| h.parse().unwrap()).collect()
}

#[test]
fn a_good_chain_reports_its_facts() {
    let root = Ca::root("Test Root");
    let intermediate = root.intermediate("Test Intermediate R1");
    let (leaf, key) = intermediate.leaf(&["shop.test", "*.shop.test"], 2026, 2027);
    let chain = format!("{leaf}{}", intermediate.pem);
    let service = hosts(&["shop.test", "a.shop.test", "*.shop.test", "blog.test"]);
    let checked = check(&chain, &key, None, &service, NOW).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(checked.names, ["shop.test", "*.shop.test"]);
    assert_eq!(checked.issuer, "Test Intermediate R1");
    assert_eq!(checked.not_after.to_string(), "2027-01-01T00:00:00.000Z");
    assert_eq!(checked.hosts, hosts(&["shop.test", "a.shop.test", "*.shop.test"]), "not blog.test");
    assert_eq!(checked.sha256.len(), 64);
    assert_eq!(CertificateDer::pem_slice_iter(checked.chain_pem.as_bytes()).count(), 2, "re-encoded whole");
    let again = check(&checked.chain_pem, &key, None, &service, NOW).unwrap();
    assert_eq!(again.sha256, checked.sha256, "the PEM written reads back the same");
    // With the root too, and a self-signed leaf alone.
    assert!(check(&format!("{chain}{}", root.pem), &key, None, &service, NOW).is_ok());
    let (alone, alone_key) = self_signed(&["shop.test"], 2026, 2027);
    assert!(check(&alone, &alone_key, None, &service, NOW).is_ok());
}

#[test]
fn each_problem_is_named_at_its_field() {
    let root = Ca::root("Test Root");
    let intermediate = root.intermediate("Test Intermediate R1");
    let other = Ca::root("Other Root").intermediate("Other Intermediate");
    let (leaf, key) = intermediate.leaf(&["shop.test", "*.shop.test"], 2026, 2027);
    let (_, other_key) = intermediate.leaf(&["shop.test"], 2026, 2027);
    let (expired, expired_key) = intermediate.leaf(&["shop.test"], 2024, 2025);
    let (early, early_key) = intermediate.leaf(&["shop.test"], 2027, 2028);
    let (elsewhere, elsewhere_key) = intermediate.leaf(&["blog.test"], 2026, 2027);
    let (impostor, impostor_key) =
        Ca { params: intermediate.params.clone(), key: rcgen::KeyPair::generate().unwrap(), pem: String::new() }.leaf(
            &["shop.test"],
            2026,
            2027,
        );
    let good = format!("{leaf}{}", intermediate.pem);
    let service = hosts(&["shop.test", "*.shop.test"]);
    let many = leaf.repeat(MAX_CHAIN + 1);
    // (clause, chain, key, hosts asked for, wanted: field and words)
    let cases: Vec<(&str, String, &str, Option<Vec<String>>, Vec<(&str, &str)>)> = vec![
        ("RFC 7468 no PEM at all", "hello".into(), &key, None, vec![("chain_pem", "no certificate")]),
        ("bounded chain", many, &key, None, vec![("chain_pem", "at most 10")]),
        ("RFC 5958 a certificate as the key", good.clone(), &leaf, None, vec![("key_pem", "not a PEM private key")]),
        ("RFC 8446 §4.4.2 another key", good.clone(), &other_key, None, vec![("key_pem", "does not match the leaf")]),
        (
            "RFC 5280 §4.1.2.5 expired",
            format!("{expired}{}", intermediate.pem),
            &expired_key,
            None,
            vec![("chain_pem", "the leaf expired on 2025-01-01")],
        ),
        (
            "RFC 5280 §4.1.2.5 not yet valid",
            format!("{early}{}", intermediate.pem),
            &early_key,
            None,
            vec![("chain_pem", "not valid before 2027-01-01")],
        ),
        (
            "RFC 5280 §6.1 wrong intermediate",
            format!("{leaf}{}", other.pem),
            &key,
            None,
            vec![(
                "chain_pem",
                "certificate 0 is issued by \"Test Intermediate R1\", but certificate 1 is \"Other Intermediate\"",
            )],
        ),
        (
            "RFC 5280 §6.1 chain out of order",
            format!("{}{leaf}", intermediate.pem),
            &key,
            None,
            vec![("key_pem", "does not match"), ("chain_pem", "does not build"), ("chain_pem", "no DNS names")],
        ),
        (
            "RFC 5280 §6.1 same issuer name, another key",
            format!("{impostor}{}", intermediate.pem),
            &impostor_key,
            None,
            vec![("chain_pem", "signature does not verify")],
        ),
        (
            "RFC 6125 §6.4 names cover none of the service's hosts",
            format!("{elsewhere}{}", intermediate.pem),
            &elsewhere_key,
            None,
            vec![("chain_pem", "names (blog.test) cover none of the service's hosts (shop.test, *.shop.test)")],
        ),
        (
            "hosts asked for: not the service's, not covered, not a host",
            good.clone(),
            &key,
            Some(vec!["shop.test".into(), "blog.test".into(), "*.shop.test".into(), "a:b".into()]),
            vec![("hosts[1]", "not a host of this service"), ("hosts[3]", "takes no port")],
        ),
    ];
    for (clause, chain, key, asked, want) in cases {
        let got =
            check(&chain, key, asked.as_deref(), &service, NOW).err().unwrap_or_else(|| panic!("{clause}: passed"));
        assert_eq!(got.len(), want.len(), "{clause}: {got:?}");
        for (problem, (field, words)) in got.iter().zip(want) {
            assert_eq!(problem.path, field, "{clause}: {problem:?}");
            assert!(problem.message.contains(words), "{clause}: {}", problem.message);
            assert!(!problem.message.contains("PRIVATE KEY"), "{clause}: never the key");
        }
    }
    let uncovered = hosts(&["shop.test", "www.blog.test"]);
    let got = check(&good, &key, Some(&["www.blog.test".to_owned()]), &uncovered, NOW).unwrap_err();
    assert!(got[0].message.contains("not among the certificate's names (shop.test, *.shop.test)"), "{got:?}");
}
