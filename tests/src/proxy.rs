//! [`TcpGate`]: a loopback TCP forwarder that a test can shut: while shut, it ends every
//! connection it carries and drops new ones as soon as they arrive, so the client sees its
//! peer go away (as when a network path fails), and it forwards again once opened. Nodes put it
//! between themselves and the control plane to come back late, or not at all, on cue.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The forwarder; dropping it stops it and ends its connections.
pub struct TcpGate {
    addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpGate {
    /// Listens on `127.0.0.1:0` and forwards to `target`, open.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open = Arc::new(watch::Sender::new(true));
        let task = tokio::spawn(accept(listener, target, open.clone()));
        Ok(Self { addr, open, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Ends every connection and refuses new ones until [`TcpGate::open`].
    pub fn shut(&self) {
        self.open.send_replace(false);
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.open.send_replace(false);
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, open: Arc<watch::Sender<bool>>) {
    while let Ok((client, _)) = listener.accept().await {
        if !*open.borrow() {
            drop(client);
            continue;
        }
        let mut shut = open.subscribe();
        tokio::spawn(async move {
            let Ok(mut upstream) = TcpStream::connect(target).await else { return };
            let mut client = client;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                _ = shut.wait_for(|open| !*open) => {}
            }
        });
    }
}
