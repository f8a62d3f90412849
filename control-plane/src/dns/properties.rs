//! Properties of query handling on generated queries, in every test run: a wire query with any
//! name, type, class and EDNS Client Subnet option (valid or not, RFC 7871 §6) is decoded by
//! hickory and answered by the server's handler, and the response is a DNS message that
//! decodes, with the rcode the zone's rules give (see `answer.rs`). The `dns` fuzz target in
//! `tests/fuzz` feeds the same handler arbitrary bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use outpost_config::{Seq, ServiceId, TenantId, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::answer::Answerer;
use super::services::ServiceIndex;
use super::{DnsSettings, Handler, Stats};
use crate::nodes::Nodes;
use crate::pops::{HealthSettings, Pops};
use crate::settings::NodeSettings;
use crate::store::{EmbeddedStore, Expect, ServicePut, Store};

const SETTINGS: &str = r#"
zone = "cdn.example."
ns = ["ns1.cdn.example."]
default_pops = ["iad", "fra"]
[soa]
rname = "hostmaster.cdn.example."
[regions.eu]
subnets = ["192.0.2.0/24", "2001:db8:1::/48"]
pops = ["fra", "iad"]
"#;

async fn handler(dir: &std::path::Path) -> Handler {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.join("cp.redb")).unwrap_or_else(|e| panic!("{e}")));
    let put = ServicePut {
        id: ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}")),
        tenant: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
        config: serde_json::json!({ "name": "shop" }),
        hosts: vec!["shop.example".into()],
        expect: Expect::Absent,
        function: None,
        decreed: Vec::new(),
    };
    store.put_service(put, Timestamp(0)).await.unwrap_or_else(|e| panic!("{e}"));
    let nodes = Nodes::load(store.clone(), NodeSettings::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let pops = Pops::load(store.clone(), nodes, HealthSettings::default(), vec!["iad".into(), "fra".into()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let settings: DnsSettings = toml::from_str(SETTINGS).unwrap_or_else(|e| panic!("{e}"));
    let (zone, steering) = settings.compile().unwrap_or_else(|e| panic!("{e:?}"));
    let (_head, head) = tokio::sync::watch::channel(Seq(1));
    let services = ServiceIndex::new(store, head);
    Handler(Arc::new(Answerer { zone, steering, pops, services, stats: Arc::new(Stats::default()) }))
}

/// Encodes the response as hickory's UDP path does and keeps the bytes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let max = response.edns().map_or(512, |e| e.max_payload());
        let mut bytes = Vec::new();
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bytes);
        Ok(info)
    }
}

/// One query as generated: name labels, type, class, and an optional ECS option given as
/// (family, source prefix, scope prefix, address bytes), any of which may be invalid.
#[derive(Debug, Clone)]
struct Query {
    labels: Vec<String>,
    qtype: u16,
    qclass: u16,
    ecs: Option<(u16, u8, u8, Vec<u8>)>,
}

fn query() -> impl Strategy<Value = Query> {
    let label = prop_oneof![
        Just("shop".to_owned()),
        Just("cdn".to_owned()),
        Just("example".to_owned()),
        Just("SHOP".to_owned()),
        "[a-z0-9_-]{1,12}",
    ];
    let ecs = (1u16..=3, any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..18));
    (
        prop::collection::vec(label, 0..5),
        prop::sample::select(vec![1u16, 28, 255, 6, 2, 16, 15, 0]),
        prop::sample::select(vec![1u16, 3, 255]),
        prop::option::of(ecs),
    )
        .prop_map(|(labels, qtype, qclass, ecs)| Query { labels, qtype, qclass, ecs })
}

impl Query {
    fn name(&self) -> String {
        self.labels.iter().map(|l| format!("{l}.")).collect()
    }

    fn wire(&self) -> Vec<u8> {
        let mut out = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(self.ecs.is_some())];
        for label in &self.labels {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some((family, source, scope, addr)) = &self.ecs {
            let option_len = 4 + addr.len() as u16;
            out.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
            out.extend_from_slice(&(4 + option_len).to_be_bytes());
            out.extend_from_slice(&[0, 8]);
            out.extend_from_slice(&option_len.to_be_bytes());
            out.extend_from_slice(&family.to_be_bytes());
            out.extend_from_slice(&[*source, *scope]);
            out.extend_from_slice(addr);
        }
        out
    }

    /// The rcode `answer.rs`'s table gives, where it follows from the question alone.
    fn expected(&self) -> Option<ResponseCode> {
        let name = self.name().to_ascii_lowercase();
        if self.qclass != 1 || !(name == "cdn.example." || name.ends_with(".cdn.example.")) {
            return Some(ResponseCode::Refused);
        }
        None
    }
}

#[test]
fn every_query_gets_a_response_that_decodes() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let handler = rt.block_on(handler(dir.path()));
    let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 5353);
    let config = ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&query(), |q| {
        // What hickory's decoder refuses (a malformed ECS option) the server drops unanswered.
        let Ok(request) = Request::from_bytes(q.wire(), src, Protocol::Udp) else { return Ok(()) };
        let capture = Capture::default();
        rt.block_on(handler.handle_request::<Capture, TokioTime>(&request, capture.clone()));
        let bytes = capture.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let bytes = bytes.ok_or_else(|| TestCaseError::fail("no response"))?;
        let response = Message::from_vec(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(response.metadata.id, 0x1234);
        if let Some(rcode) = q.expected() {
            prop_assert_eq!(response.metadata.response_code, rcode, "{:?}", q);
        }
        Ok(())
    });
    result.unwrap_or_else(|e| panic!("{e}"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// RFC 4632 §3.1: a network contains the addresses it was made from, for every valid
    /// prefix; a prefix longer than the family allows is refused, never a panic.
    #[test]
    fn a_network_contains_its_addresses(v4 in any::<u32>(), v6 in any::<u128>(), prefix in any::<u8>()) {
        for addr in [IpAddr::from(Ipv4Addr::from(v4)), IpAddr::from(std::net::Ipv6Addr::from(v6))] {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            match super::cidr::Cidr::new(addr, prefix) {
                Some(net) => prop_assert!(prefix <= max && net.contains(addr)),
                None => prop_assert!(prefix > max),
            }
            let _ = super::cidr::mask(addr, prefix);
        }
    }
}
