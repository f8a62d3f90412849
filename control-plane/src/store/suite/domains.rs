use outpost_config::{Change, Seq, ServiceRecord};

use super::{AT, Fixture, MAX, id, ok, put, tenant};
use crate::domains::{DomainMethod, DomainRecord, DomainStatus};
use crate::store::{DomainQuery, Expect, StoreError};

fn served(event: &outpost_config::Event) -> ServiceRecord {
    match &event.change {
        Change::ServicePut { service } => service.clone(),
        other => panic!("not a put: {other:?}"),
    }
}

fn verified(domain: &DomainRecord, method: DomainMethod) -> DomainRecord {
    DomainRecord { status: DomainStatus::Verified, method: Some(method), verified_at: Some(AT), ..domain.clone() }
}

pub(crate) async fn domains_follow_their_hosts_and_verification_writes_a_version(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    let mut shop = put("shop", "acme", &["a.example", "*.b.example"], Expect::Absent);
    shop.decreed = vec!["a.example".to_owned()];
    let first = ok(store.put_service(shop, AT)).await;
    assert_eq!(served(&first).verified_hosts, Some(vec!["a.example".to_owned()]), "the new host waits for its proof");
    let domains = ok(store.domains(DomainQuery::service(id("shop")))).await;
    let view: Vec<(&str, DomainStatus, Option<DomainMethod>)> =
        domains.iter().map(|d| (d.host.as_str(), d.status, d.method)).collect();
    assert_eq!(
        view,
        [
            ("*.b.example", DomainStatus::Pending, None),
            ("a.example", DomainStatus::Verified, Some(DomainMethod::Operator))
        ]
    );
    assert_eq!(domains[0].token.len(), 32);
    assert_ne!(domains[0].token, domains[1].token);

    // A proof writes the domain and the service's next version, in one step.
    let proven = ok(store.put_domain(verified(&domains[0], DomainMethod::Dns), AT)).await;
    let proven = proven.unwrap_or_else(|| panic!("the served set changed"));
    assert_eq!(proven.seq, Seq(2));
    let record = served(&proven);
    assert_eq!(record.verified_hosts, Some(vec!["a.example".to_owned(), "*.b.example".to_owned()]));
    assert_eq!(ok(store.service(&id("shop"))).await.map(|s| s.version), Some(Seq(2)));
    // The same standing again changes nothing served: no event, no number taken.
    let stored = ok(store.domain("*.b.example")).await.unwrap_or_else(|| panic!("stored"));
    assert_eq!(stored.method, Some(DomainMethod::Dns));
    assert_eq!(ok(store.put_domain(DomainRecord { checked_at: Some(AT), ..stored }, AT)).await, None);
    assert_eq!(ok(store.last_seq()).await, Seq(2));

    // A write with another token (the host was removed and added anew meanwhile) is dropped.
    let stale = DomainRecord { token: "0".repeat(32), ..domains[1].clone() };
    assert!(matches!(store.put_domain(stale, AT).await, Err(StoreError::DomainGone { .. })));

    // A new config: kept hosts keep their standing, new ones are pending, dropped ones go.
    let again = put("shop", "acme", &["*.b.example", "c.example"], Expect::Version(Seq(2)));
    let again = ok(store.put_service(again, AT)).await;
    assert_eq!(served(&again).verified_hosts, Some(vec!["*.b.example".to_owned()]));
    let hosts: Vec<String> =
        ok(store.domains(DomainQuery::service(id("shop")))).await.into_iter().map(|d| d.host).collect();
    assert_eq!(hosts, ["*.b.example", "c.example"]);
    assert_eq!(ok(store.domain("a.example")).await, None);

    ok(store.put_service(put("blog", "globex", &["blog.example"], Expect::Absent), AT)).await;
    let all: Vec<String> = ok(store.domains(DomainQuery::all(10))).await.into_iter().map(|d| d.host).collect();
    assert_eq!(all, ["*.b.example", "blog.example", "c.example"]);
    let page = DomainQuery { tenant: Some(tenant("acme")), after: Some("*.b.example".into()), ..DomainQuery::all(1) };
    let page: Vec<String> = ok(store.domains(page)).await.into_iter().map(|d| d.host).collect();
    assert_eq!(page, ["c.example"]);
    let snapshot = ok(store.snapshot()).await;
    let shop = snapshot.services.iter().find(|s| s.id == id("shop")).map(|s| s.verified_hosts.clone());
    assert_eq!(shop, Some(Some(vec!["*.b.example".to_owned()])));
    drop(store);

    // Statuses survive a restart; a deleted service's domains go with it.
    let store = fixture.open(MAX).await;
    let kept = ok(store.domain("*.b.example")).await.map(|d| (d.status, d.method));
    assert_eq!(kept, Some((DomainStatus::Verified, Some(DomainMethod::Dns))));
    ok(store.delete_service(&id("shop"), Seq(3), AT)).await;
    assert!(ok(store.domains(DomainQuery::service(id("shop")))).await.is_empty());
    let left: Vec<String> = ok(store.domains(DomainQuery::all(10))).await.into_iter().map(|d| d.host).collect();
    assert_eq!(left, ["blog.example"]);
    // A domain of a deleted service cannot be written back.
    assert!(matches!(
        store.put_domain(verified(&domains[0], DomainMethod::Dns), AT).await,
        Err(StoreError::DomainGone { .. })
    ));
}
