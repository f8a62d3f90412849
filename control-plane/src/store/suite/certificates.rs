use outpost_config::{CertificateName, CertificateRecord, CertificateSource, Change, Seq, Timestamp};

use super::{AT, Fixture, MAX, id, ok, put, tenant};
use crate::secrets::Sealed;
use crate::store::{Expect, StoreError, StoredCertificate};

fn name(text: &str) -> CertificateName {
    CertificateName::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn certificate(service: &str, owner: &str, cert: &str, ciphertext: &str) -> StoredCertificate {
    StoredCertificate {
        record: CertificateRecord {
            service: id(service),
            tenant: tenant(owner),
            name: name(cert),
            version: Seq(0),
            updated_at: Timestamp(0),
            chain_pem: format!("chain of {service}/{cert}"),
            names: vec![format!("{service}.example")],
            issuer: "Test CA".to_owned(),
            not_before: Timestamp(0),
            not_after: AT,
            sha256: "a".repeat(64),
            source: CertificateSource::Upload,
        },
        key: Sealed { key_id: "k1".to_owned(), nonce: "00".repeat(12), ciphertext: ciphertext.to_owned() },
    }
}

pub(crate) async fn certificates_are_events_listed_in_order_and_go_with_their_service(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    ok(store.put_service(put("shop", "acme", &["shop.example"], Expect::Absent), AT)).await;
    ok(store.put_service(put("shop-2", "acme", &["shop-2.example"], Expect::Absent), AT)).await;

    let event = ok(store.put_certificate(certificate("shop", "acme", "www", "c1"), AT)).await;
    let Change::CertificatePut { certificate: record } = &event.change else { panic!("{event:?}") };
    assert_eq!((record.version, record.updated_at), (event.seq, AT), "versioned by its event");
    ok(store.put_certificate(certificate("shop", "acme", "apex", "c2"), AT)).await;
    ok(store.put_certificate(certificate("shop-2", "acme", "www", "c3"), AT)).await;
    let replaced = ok(store.put_certificate(certificate("shop", "acme", "www", "c4"), AT)).await;

    let all = ok(store.certificates(None, 100)).await;
    let keys: Vec<String> = all.iter().map(|c| format!("{}/{}", c.record.service, c.record.name)).collect();
    assert_eq!(keys, ["shop/apex", "shop/www", "shop-2/www"], "by (service, name)");
    let shop = ok(store.certificates(Some(id("shop")), 100)).await;
    assert_eq!(shop.len(), 2, "not shop-2's");
    assert_eq!(ok(store.certificates(None, 1)).await.len(), 1, "at most limit");
    let www = ok(store.certificate(&id("shop"), &name("www"))).await.unwrap_or_else(|| panic!("stored"));
    assert_eq!((www.record.version, www.key.ciphertext.as_str()), (replaced.seq, "c4"));

    // Another tenant's service, or none: refused, nothing written.
    let head = ok(store.last_seq()).await;
    let foreign = store.put_certificate(certificate("shop", "evil", "x", "c5"), AT).await;
    assert!(matches!(foreign, Err(StoreError::Conflict { .. })), "{foreign:?}");
    let missing = store.put_certificate(certificate("nope", "acme", "x", "c5"), AT).await;
    assert!(matches!(missing, Err(StoreError::Conflict { .. })), "{missing:?}");
    assert_eq!(ok(store.last_seq()).await, head);

    let snapshot = ok(store.snapshot()).await;
    assert_eq!(snapshot.certificates.len(), 3);
    assert_eq!(snapshot.certificates[1].version, replaced.seq);

    // Re-sealing is conditional on the version and writes no event.
    let resealed = Sealed { key_id: "k2".to_owned(), nonce: "11".repeat(12), ciphertext: "c6".to_owned() };
    assert!(!ok(store.reseal_certificate(&id("shop"), &name("www"), event.seq, resealed.clone())).await);
    assert!(ok(store.reseal_certificate(&id("shop"), &name("www"), replaced.seq, resealed.clone())).await);
    assert_eq!(ok(store.last_seq()).await, head);
    drop(store);

    let store = fixture.open(MAX).await;
    let www = ok(store.certificate(&id("shop"), &name("www"))).await.unwrap_or_else(|| panic!("kept"));
    assert_eq!(www.key, resealed, "survives a reopen");
    let deleted = ok(store.delete_certificate(&id("shop"), &name("apex"), AT)).await;
    let Some(deleted) = deleted else { panic!("deleted") };
    assert!(matches!(&deleted.change, Change::CertificateDeleted { name: n, .. } if n.as_str() == "apex"));
    assert!(ok(store.delete_certificate(&id("shop"), &name("apex"), AT)).await.is_none());
    assert_eq!(ok(store.last_seq()).await, deleted.seq, "no number taken for nothing");

    let version = ok(store.service(&id("shop"))).await.map(|s| s.version).unwrap_or_default();
    ok(store.delete_service(&id("shop"), version, AT)).await;
    let left: Vec<String> =
        ok(store.certificates(None, 100)).await.iter().map(|c| c.record.service.to_string()).collect();
    assert_eq!(left, ["shop-2"], "a deleted service's certificates go with it");
    // A new service under the id starts with none.
    ok(store.put_service(put("shop", "other", &["shop.example"], Expect::Absent), AT)).await;
    assert!(ok(store.certificates(Some(id("shop")), 100)).await.is_empty());
}
