//! Health rounds against real loopback `/healthz` servers, liveness from the real registry,
//! drains through the real embedded store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use outpost_config::{NodeAddresses, NodeId, NodeRecord, NodeRegistration, NodeRole, Timestamp};
use tokio::io::AsyncWriteExt;

use super::checker::round;
use super::probe::read_head;
use super::*;
use crate::nodes::Connection;
use crate::settings::NodeSettings;
use crate::store::EmbeddedStore;

/// A node's admin listener: `/healthz` answers 200 while `healthy`, else 503.
struct Admin {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
}

async fn admin() -> Admin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let flag = flag.clone();
            tokio::spawn(async move {
                if read_head(&mut socket).await.is_none() {
                    return;
                }
                let status = if flag.load(Ordering::SeqCst) { "200 OK" } else { "503 Service Unavailable" };
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    Admin { addr, healthy }
}

/// An address nothing listens on.
async fn closed() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    nodes: Arc<Nodes>,
    streams: Vec<Connection>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&dir.path().join("cp.redb")).unwrap_or_else(|e| panic!("{e}")));
    let nodes = Nodes::load(store.clone(), NodeSettings::default()).await.unwrap_or_else(|e| panic!("{e}"));
    World { _dir: dir, store, nodes, streams: Vec::new() }
}

impl World {
    /// Registers a node; `stream` opens its stream (live).
    async fn node(&mut self, id: &str, pop: &str, role: NodeRole, http: &str, admin: SocketAddr, stream: bool) {
        let id = NodeId::parse(id).unwrap_or_else(|e| panic!("{e}"));
        let registration = NodeRegistration {
            pop: Some(pop.to_owned()),
            region: Some(format!("r-{pop}")),
            role,
            addresses: NodeAddresses { http: Some(http.parse().unwrap_or_else(|e| panic!("{e}"))), https: None, admin },
        };
        let record =
            NodeRecord { id: id.clone(), registration, registered_at: Timestamp::from_system(SystemTime::now()) };
        let stored = self.store.put_node(record).await.unwrap_or_else(|e| panic!("{e}"));
        self.nodes.registered(stored);
        if stream {
            self.streams.push(self.nodes.connect(&id, None).unwrap_or_else(|e| panic!("connect {id}: {e:?}")));
        }
    }

    async fn pops(&self, settings: HealthSettings, configured: &[&str]) -> Arc<Pops> {
        let configured = configured.iter().map(|s| (*s).to_owned()).collect();
        Pops::load(self.store.clone(), self.nodes.clone(), settings, configured).await.unwrap_or_else(|e| panic!("{e}"))
    }
}

fn addresses(table: &PopTable, pop: &str) -> Vec<String> {
    table.pops.get(pop).map(|p| p.addresses().iter().map(ToString::to_string).collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_pop_is_healthy_while_a_live_edge_passes_its_probe() {
    let mut world = world().await;
    let up = admin().await;
    let also_up = admin().await;
    let dead = closed().await;
    world.node("a-1", "a", NodeRole::Edge, "127.0.1.1:80", up.addr, true).await;
    world.node("a-2", "a", NodeRole::Edge, "127.0.1.2:80", dead, true).await;
    // Passing, but not following the control plane: not healthy.
    world.node("b-1", "b", NodeRole::Edge, "127.0.2.1:80", also_up.addr, false).await;
    // Shields are not DNS targets.
    world.node("s-1", "s", NodeRole::Shield, "127.0.3.1:80", dead, true).await;
    let pops = world.pops(HealthSettings::default(), &["c"]).await;
    // Before the first round every probe is unknown: every PoP down.
    assert!(pops.table().pops.values().all(|p| !p.healthy));
    round(&pops).await;
    let table = pops.table();
    assert!(table.pops["a"].healthy);
    assert_eq!(addresses(&table, "a"), vec!["127.0.1.1"]);
    assert!(!table.pops["b"].healthy);
    assert_eq!(addresses(&table, "b"), vec!["127.0.2.1"], "a down PoP gives every edge");
    assert!(!table.pops.contains_key("s"));
    assert!(table.pops["c"].targets.is_empty(), "a PoP of the region map without nodes");
    let list = pops.list();
    let names: Vec<&str> = list.iter().map(|p| p.pop.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    let a = &list[0];
    assert_eq!(a.region.as_deref(), Some("r-a"));
    assert!(a.since.is_some());
    let probes: Vec<(&str, &str, bool)> = a.nodes.iter().map(|n| (n.id.as_str(), n.probe, n.healthy)).collect();
    assert_eq!(probes, vec![("a-1", "up", true), ("a-2", "down", false)]);
    assert!(a.nodes[1].error.as_deref().is_some_and(|e| e.starts_with("connect ")), "{:?}", a.nodes[1].error);
    let b = &list[1];
    assert_eq!((b.nodes[0].probe, b.nodes[0].live, b.nodes[0].healthy), ("up", false, false));
}

#[tokio::test]
async fn a_node_goes_down_after_the_threshold_and_comes_back_after_its_own() {
    let mut world = world().await;
    let node = admin().await;
    world.node("a-1", "a", NodeRole::Edge, "127.0.1.1:80", node.addr, true).await;
    let settings = HealthSettings { unhealthy_threshold: 2, healthy_threshold: 3, ..HealthSettings::default() };
    let pops = world.pops(settings, &[]).await;
    let healthy = |pops: &Pops| pops.table().pops["a"].healthy;
    round(&pops).await;
    assert!(healthy(&pops));
    node.healthy.store(false, Ordering::SeqCst);
    round(&pops).await;
    assert!(healthy(&pops), "one failure of two");
    round(&pops).await;
    assert!(!healthy(&pops), "two failures");
    let since_down = pops.get("a").and_then(|p| p.since);
    node.healthy.store(true, Ordering::SeqCst);
    round(&pops).await;
    round(&pops).await;
    assert!(!healthy(&pops), "two passes of three");
    assert_eq!(pops.get("a").and_then(|p| p.since), since_down, "no change, same since");
    round(&pops).await;
    assert!(healthy(&pops), "three passes");
    assert!(pops.get("a").is_some_and(|p| p.nodes[0].error.is_none()));
}

#[tokio::test]
async fn drains_take_effect_at_once_and_are_kept_in_the_store() {
    let mut world = world().await;
    let node = admin().await;
    world.node("a-1", "a", NodeRole::Edge, "127.0.1.1:80", node.addr, true).await;
    let pops = world.pops(HealthSettings::default(), &["c"]).await;
    round(&pops).await;
    let drained = pops.set_drained("a", true).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(drained.drained && drained.healthy && drained.drained_at.is_some());
    assert!(pops.table().pops["a"].drained);
    // Again: nothing changes, the first drain's time stays.
    let again = pops.set_drained("a", true).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.drained_at, drained.drained_at);
    // A PoP only the region map names can be drained too; an unknown one cannot.
    assert!(pops.set_drained("c", true).await.is_ok_and(|p| p.drained));
    assert!(matches!(pops.set_drained("zzz", true).await, Err(PopError::Unknown(p)) if p == "zzz"));
    // A control plane started on the same store finds the drains.
    let reloaded = world.pops(HealthSettings::default(), &[]).await;
    assert!(reloaded.table().pops["a"].drained);
    assert!(reloaded.get("c").is_some_and(|p| p.drained), "a drained PoP stays known");
    let restored = pops.set_drained("a", false).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!restored.drained && restored.drained_at.is_none());
    assert!(!pops.table().pops["a"].drained);
    let stored = world.store.drained_pops().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), vec!["c"]);
}
