//! How a replica learns that another one appended to the log: `LISTEN outpost_log` on a
//! connection of its own (each write's transaction runs `pg_notify` with its `seq`), plus a
//! read of `last_seq` every `store.catch_up_interval`. The same connection listens on
//! `outpost_presence` (acks, holds, drains: see `presence`) and wakes the presence sync.
//!
//! Notifications are a wake-up, never the source of events: streams read the events from the
//! table after their cursor. So a lost notification (the `LISTEN` connection dropped, the
//! database restarted, a notification queue overflow) delays an event by at most one
//! catch-up interval and loses nothing; after the connection comes back, one read of the head
//! covers whatever was committed while it was away.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use outpost_config::Seq;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::log::CHANNEL;
use super::presence::CHANNEL as PRESENCE;
use super::{PostgresSettings, PostgresStore};
use crate::store::Store;

/// The `LISTEN` connection's `application_name`.
pub const LISTENER_NAME: &str = "outpost-control-plane-listen";

/// What the follower calls with a head it saw; it may repeat or lag a head already seen.
pub type OnHead = Arc<dyn Fn(Seq) + Send + Sync>;

/// What the follower calls when another replica announced a presence change (and after each
/// re-`LISTEN`, when some may have been missed).
pub type OnPresence = Arc<dyn Fn() + Send + Sync>;

/// Calls `on_head` whenever the log may have grown, from notifications and catch-up reads, and
/// `on_presence` on presence notifications, until the task is aborted.
pub fn follow_head(
    store: PostgresStore,
    settings: PostgresSettings,
    on_head: OnHead,
    on_presence: OnPresence,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(
            listen(&settings, on_head.clone(), on_presence),
            catch_up(&store, settings.catch_up_interval, &on_head)
        );
    })
}

/// Reads the head every `every`, logging a failure once per run of failures.
async fn catch_up(store: &PostgresStore, every: Duration, on_head: &OnHead) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        match store.last_seq().await {
            Ok(seq) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("postgres: the log's head reads again");
                }
                on_head(seq);
            }
            Err(error) if !failing => {
                failing = true;
                tracing::warn!("postgres: cannot read the log's head: {error}; retrying every {every:?}");
            }
            Err(_) => {}
        }
    }
}

/// Holds a `LISTEN` connection, reconnecting with backoff (100ms doubling to 5s) when it ends.
async fn listen(settings: &PostgresSettings, on_head: OnHead, on_presence: OnPresence) {
    let mut wait = Duration::from_millis(100);
    loop {
        let started = tokio::time::Instant::now();
        let why = listen_once(settings, on_head.clone(), on_presence.clone()).await;
        if started.elapsed() > Duration::from_secs(30) {
            wait = Duration::from_millis(100);
        }
        tracing::warn!(
            target = %settings.redacted(),
            retry_in = ?wait,
            "postgres: LISTEN connection ended: {why}; catch-up reads carry events meanwhile"
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// One `LISTEN` connection's life; returns why it ended.
async fn listen_once(settings: &PostgresSettings, on_head: OnHead, on_presence: OnPresence) -> String {
    let mut config = settings.client_config();
    // Named apart from the pool's connections in pg_stat_activity.
    config.application_name(LISTENER_NAME);
    let (client, mut connection) = match config.connect(tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) => return format!("connect: {e}"),
    };
    // The connection's messages (notifications among them) are read by polling it; the pump
    // also carries the client's own queries below.
    let pump_head = on_head.clone();
    let pump_presence = on_presence.clone();
    let pump = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.channel() == PRESENCE => pump_presence(),
                Ok(AsyncMessage::Notification(n)) => match n.payload().parse::<u64>() {
                    Ok(seq) => pump_head(Seq(seq)),
                    Err(_) => tracing::debug!(payload = n.payload(), "postgres: ignored a notification"),
                },
                Ok(_) => {}
                Err(e) => return format!("{e}"),
            }
        }
        "closed by the server".to_owned()
    });
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {PRESENCE}")).await {
        pump.abort();
        return format!("LISTEN: {e}");
    }
    on_presence();
    // Whatever was committed before LISTEN took effect was never notified to us: read it.
    match client.query_one("SELECT last_seq FROM outpost_log WHERE id = 1", &[]).await {
        Ok(row) => {
            if let Ok(seq) = row.try_get::<_, i64>(0) {
                on_head(Seq(u64::try_from(seq).unwrap_or(0)));
            }
        }
        Err(e) => {
            pump.abort();
            return format!("read last_seq: {e}");
        }
    }
    tracing::debug!("postgres: listening for appends");
    let why = pump.await.unwrap_or_else(|e| format!("listener task: {e}"));
    drop(client);
    why
}
