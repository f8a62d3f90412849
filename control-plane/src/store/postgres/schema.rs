//! The PostgreSQL store's schema, as numbered migrations applied at start.
//!
//! Each migration runs once, in its own transaction, under a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`), and records itself in `schema_migrations` in that transaction:
//! replicas that start together queue on the lock, and each finds the migrations the first one
//! applied already recorded. A migration is never edited once released; a change is a new one.

use deadpool_postgres::Client;

use super::pg_error;
use crate::store::StoreError;

/// The advisory lock key every replica takes to migrate ("outpost\0" as a big-endian i64).
const MIGRATION_LOCK: i64 = 0x6f75_7470_6f73_7400;

/// `(version, name, SQL)`, in ascending order. Parallel branches are given version numbers
/// ahead of time, so a build may lack some numbers (a database that applied a later one first
/// still gets the missing earlier one: each is recorded on its own).
pub(super) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", INITIAL),
    (2, "node liveness and drains", NODE_LIVENESS),
    (3, "domains", DOMAINS),
    (4, "certificates", CERTIFICATES),
    (5, "acme", ACME),
    (6, "presence shared by replicas, purge buckets", PRESENCE),
];

/// Each host pattern's proof of domain control (`crate::domains::DomainRecord` as JSON), one
/// row per host, removed with its service. The hosts services already hold are kept as
/// verified by the operator's word, so the upgrade serves what was served (their service
/// records have no `verified_hosts`, which nodes read as every host).
const DOMAINS: &str = r#"
CREATE TABLE domains (
    host text COLLATE "C" PRIMARY KEY,
    service text NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    tenant text COLLATE "C" NOT NULL,
    status text NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX domains_by_service ON domains (service, host);
CREATE INDEX domains_by_tenant ON domains (tenant, host);
INSERT INTO domains (host, service, tenant, status, record)
SELECT h.host, h.service, s.tenant, 'verified', jsonb_build_object(
    'host', h.host, 'service', h.service, 'tenant', s.tenant, 'status', 'verified',
    'method', 'operator', 'token', md5(random()::text || h.host),
    'created_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'verified_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'checked_at', NULL, 'failures', 0, 'last_error', NULL)
FROM hosts h JOIN services s ON s.id = h.service;
"#;

/// Which replica holds each node's stream (`hold`: replica, generation, peer, since; JSON), the
/// replicas' leases (a hold stands while its replica's lease runs), and one purge token
/// bucket per tenant, shared by every replica.
const PRESENCE: &str = r#"
ALTER TABLE nodes ADD COLUMN hold jsonb;
CREATE INDEX nodes_by_holder ON nodes ((hold->>'replica'));
CREATE TABLE replicas (id text PRIMARY KEY, alive_until bigint NOT NULL);
CREATE TABLE purge_buckets (
    tenant text PRIMARY KEY,
    tokens double precision NOT NULL,
    updated_at bigint NOT NULL
);
"#;

/// The ACME driver's state: challenge answers (what snapshots carry, beside the events), each
/// `tls = "auto"` service's order state (written by compare-and-set on `revision`), and the
/// ACME account per directory URL (credentials sealed by the control plane).
const ACME: &str = r#"
CREATE TABLE acme_challenges (token text COLLATE "C" PRIMARY KEY, record jsonb NOT NULL);
CREATE TABLE acme_states (
    service text COLLATE "C" PRIMARY KEY,
    revision bigint NOT NULL CHECK (revision >= 1),
    record jsonb NOT NULL
);
CREATE TABLE acme_accounts (directory text PRIMARY KEY, credentials text NOT NULL);
"#;

/// Certificates per (service, name): the record and its sealed private key as JSON (never the
/// key in clear), deleted with their service.
const CERTIFICATES: &str = r#"
CREATE TABLE certificates (
    service text COLLATE "C" NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    name text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (service, name)
);
"#;

/// When each node last held a stream (purge completeness after a restart waits for nodes seen
/// lately) and per-node drains; both are kept when a node registers again.
const NODE_LIVENESS: &str = r#"
ALTER TABLE nodes ADD COLUMN seen_at bigint, ADD COLUMN drained_at bigint;
"#;

/// The whole state the embedded store keeps, one table per redb table. Records are JSON (the
/// API's form) in `jsonb`, so operators can read them with SQL; keys and counters are columns.
const INITIAL: &str = r#"
-- One row: the log's identity and the highest sequence number given. Every write that appends
-- an event updates it in its transaction, so writers queue on its row lock and numbers are
-- given and committed in order, without gaps (a sequence object skips numbers on rollback).
CREATE TABLE outpost_log (
    id smallint PRIMARY KEY CHECK (id = 1),
    log_id bigint NOT NULL,
    last_seq bigint NOT NULL CHECK (last_seq >= 0)
);
CREATE TABLE events (seq bigint PRIMARY KEY, record jsonb NOT NULL);
-- Byte order ("C"), as the embedded store's keys sort: lists page by id the same way.
CREATE TABLE services (
    id text COLLATE "C" PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX services_by_tenant ON services (tenant, id);
-- A host pattern belongs to one service.
CREATE TABLE hosts (
    host text PRIMARY KEY,
    service text NOT NULL REFERENCES services (id) ON DELETE CASCADE
);
CREATE INDEX hosts_by_service ON hosts (service);
CREATE TABLE purges (id text PRIMARY KEY, seq bigint NOT NULL, record jsonb NOT NULL);
CREATE TABLE nodes (
    id text COLLATE "C" PRIMARY KEY,
    record jsonb NOT NULL,
    acked bigint NOT NULL DEFAULT 0,
    acked_at bigint
);
CREATE TABLE drains (pop text COLLATE "C" PRIMARY KEY, drained_at bigint NOT NULL);
CREATE TABLE function_sets (service text PRIMARY KEY, record jsonb NOT NULL);
-- Content-addressed: the bytes once per SHA-256, with how many versions refer to them.
CREATE TABLE function_blobs (
    sha256 text PRIMARY KEY,
    bytes bytea NOT NULL,
    refs bigint NOT NULL CHECK (refs >= 0)
);
"#;

/// Applies the migrations this database lacks; returns how many it applied.
pub(super) async fn migrate(client: &mut Client) -> Result<usize, StoreError> {
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS {
        let txn = client.transaction().await.map_err(pg_error("begin migration"))?;
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg_error("lock"))?;
        // Under the lock: two replicas creating the table at once would race on the catalog.
        txn.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error("create schema_migrations"))?;
        let done = txn
            .query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version])
            .await
            .map_err(pg_error("read schema_migrations"))?;
        if done.is_none() {
            txn.batch_execute(sql).await.map_err(pg_error(&format!("migration {version} ({name})")))?;
            txn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name])
                .await
                .map_err(pg_error("record migration"))?;
            applied += 1;
        }
        txn.commit().await.map_err(pg_error("commit migration"))?;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_start_at_one_and_ascend() {
        assert_eq!(MIGRATIONS.first().map(|m| m.0), Some(1));
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} then {}", pair[0].0, pair[1].0);
        }
    }
}
