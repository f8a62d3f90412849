//! The control plane's authoritative DNS: a UDP payload as hickory decodes it, answered by the
//! same handler the server runs (zone rules, steering by EDNS Client Subnet, RFC 7871), and
//! the response encoded as it would be sent. Any payload must give a response or be dropped
//! by the decoder, never a panic, and every response must decode as a DNS message.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use control_plane::dns::answer::Answerer;
use control_plane::dns::services::ServiceIndex;
use control_plane::dns::{DnsSettings, Handler, Stats};
use control_plane::nodes::Nodes;
use control_plane::pops::{HealthSettings, Pops};
use control_plane::settings::NodeSettings;
use control_plane::store::{EmbeddedStore, Expect, ServicePut, Store};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use libfuzzer_sys::fuzz_target;
use outpost_config::{Seq, ServiceId, TenantId, Timestamp};

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

struct World {
    rt: tokio::runtime::Runtime,
    handler: Handler,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let handler = rt.block_on(async {
            let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("cp.redb")).expect("store"));
            let put = ServicePut {
                id: ServiceId::parse("shop").expect("id"),
                tenant: TenantId::parse("acme").expect("tenant"),
                config: serde_json::json!({"name": "shop"}),
                hosts: vec!["shop.example".into()],
                expect: Expect::Absent,
                function: None,
            };
            store.put_service(put, Timestamp(0)).await.expect("service");
            let nodes = Nodes::load(store.clone(), NodeSettings::default()).await.expect("nodes");
            let pops = Pops::load(store.clone(), nodes, HealthSettings::default(), vec!["iad".into(), "fra".into()])
                .await
                .expect("pops");
            let settings: DnsSettings = toml::from_str(SETTINGS).expect("dns settings");
            let (zone, steering) = settings.compile().expect("compiles");
            let (_head_tx, head) = tokio::sync::watch::channel(Seq(1));
            let services = ServiceIndex::new(store, head);
            let answerer = Answerer { zone, steering, pops, services, stats: Arc::new(Stats::default()) };
            Handler(Arc::new(answerer))
        });
        World { rt, handler, _dir: dir }
    })
}

/// Encodes the response as the UDP server would, and checks that it decodes.
#[derive(Clone)]
struct Encode;

#[async_trait::async_trait]
impl ResponseHandler for Encode {
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
        // As hickory's UDP path: at most the requester's EDNS payload, 512 without EDNS.
        let max = response.edns().map_or(512, |e| e.max_payload());
        let mut buffer = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buffer);
        encoder.set_max_size(max);
        match response.destructive_emit(&mut encoder) {
            Ok(info) => {
                Message::from_vec(&buffer).expect("our response decodes");
                Ok(info)
            }
            // Too large for the payload: hickory then sends SERVFAIL; not a crash.
            Err(e) => Err(NetError::from(e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 5353);
    let Ok(request) = Request::from_bytes(data.to_vec(), src, Protocol::Udp) else { return };
    w.rt.block_on(w.handler.handle_request::<Encode, TokioTime>(&request, Encode));
});
