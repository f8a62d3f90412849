use outpost_config::{Change, Seq};
use serde_json::json;

use super::{AT, Fixture, MAX, id, ok, tenant};
use crate::store::{Expect, FunctionChange, NewFunction, ServicePut, Store, StoreError};

async fn service(store: &dyn Store, name: &str) -> Seq {
    let put = ServicePut {
        id: id(name),
        tenant: tenant("acme"),
        config: json!({"name": name, "hosts": [format!("{name}.example")], "origin": "http://o"}),
        hosts: vec![format!("{name}.example")],
        expect: Expect::Absent,
        function: None,
        decreed: Vec::new(),
    };
    ok(store.put_service(put, AT)).await.seq
}

fn upload(name: &str, bytes: &'static [u8], max_versions: usize) -> NewFunction {
    let sha256 = crate::api::sha256_hex(bytes);
    NewFunction { service: id(name), tenant: tenant("acme"), sha256, bytes: bytes.into(), max_versions }
}

pub(crate) async fn versions_activate_roll_back_and_release_their_bytes(fixture: &dyn Fixture) {
    let store = fixture.open(MAX).await;
    let store = &*store;
    let version = service(store, "shop").await;
    service(store, "blog").await;
    let one = ok(store.add_function(upload("shop", b"one", 2), AT)).await;
    let two = ok(store.add_function(upload("shop", b"two", 2), AT)).await;
    // Another service uploading the same bytes shares them.
    ok(store.add_function(upload("blog", b"one", 2), AT)).await;
    assert_eq!((one.version.version, two.version.version), (1, 2));
    let same = ok(store.add_function(upload("shop", b"one", 2), AT)).await;
    assert!(!same.created, "the same bytes are the same version");

    let event = ok(store.set_function(&id("shop"), version, FunctionChange::Activate(1), AT)).await;
    let Change::ServicePut { service } = &event.change else { panic!("{event:?}") };
    assert_eq!(service.function, Some(one.version.reference()));
    assert_eq!(service.version, event.seq);
    let stored = ok(store.service(&id("shop"))).await.unwrap_or_else(|| panic!("shop"));
    assert_eq!(stored.function, Some(one.version.reference()), "the record is written, not only the event");
    let stale = store.set_function(&id("shop"), version, FunctionChange::Activate(2), AT).await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })), "the version moved on");
    let event = ok(store.set_function(&id("shop"), event.seq, FunctionChange::Activate(2), AT)).await;
    let event = ok(store.set_function(&id("shop"), event.seq, FunctionChange::RollBack, AT)).await;
    let Change::ServicePut { service } = &event.change else { panic!("{event:?}") };
    assert_eq!(service.function.as_ref().map(|f| f.version), Some(1));

    // A third upload beyond max_versions = 2 drops version 2 (inactive): its bytes go.
    ok(store.add_function(upload("shop", b"three", 2), AT)).await;
    assert_eq!(ok(store.function_bytes(&two.version.sha256)).await, None);
    // Deleting shop keeps "one": blog still refers to it.
    ok(store.delete_service(&id("shop"), event.seq, AT)).await;
    let kept = ok(store.function_bytes(&one.version.sha256)).await;
    assert_eq!(kept.as_deref(), Some(&b"one"[..]));
    let set = ok(store.functions(&id("shop"))).await;
    assert!(set.versions.is_empty(), "a re-created shop starts with no functions");
    let orphan = store.add_function(upload("shop", b"four", 2), AT).await;
    assert!(matches!(orphan, Err(StoreError::Conflict { .. })), "no upload to a deleted service");
    // Deleting blog, the last to refer to "one", removes its bytes.
    let blog = ok(store.service(&id("blog"))).await.unwrap_or_else(|| panic!("blog"));
    ok(store.delete_service(&id("blog"), blog.version, AT)).await;
    assert_eq!(ok(store.function_bytes(&one.version.sha256)).await, None);
}
