//! Services and their hosts.

use deadpool_postgres::{GenericClient, Transaction};
use outpost_config::{Change, Event, Seq, ServiceId, ServiceRecord, TenantId, Timestamp};

use super::log::{append, next_seq};
use super::{decode_column, encode, execute, int, pg_error, query, query_opt};
use crate::store::{Expect, ServicePut, ServiceQuery, StoreError};

pub(super) async fn one(client: &impl GenericClient, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
    let row = query_opt(client, "SELECT record::text FROM services WHERE id = $1", &[&id.as_str()]).await?;
    row.map(|row| decode_column(&row, id.as_str())).transpose()
}

/// A page ordered by id (byte order: the column is `COLLATE "C"`).
pub(super) async fn page(client: &impl GenericClient, q: &ServiceQuery) -> Result<Vec<ServiceRecord>, StoreError> {
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let after = q.after.as_ref().map_or("", |a| a.as_str());
    let rows = match &q.tenant {
        Some(tenant) => {
            query(
                client,
                "SELECT record::text, id FROM services WHERE tenant = $1 AND id > $2
                 ORDER BY id LIMIT $3",
                &[&tenant.as_str(), &after, &limit],
            )
            .await?
        }
        None => {
            query(client, "SELECT record::text, id FROM services WHERE id > $1 ORDER BY id LIMIT $2", &[&after, &limit])
                .await?
        }
    };
    rows.iter().map(|row| decode_column(row, &row.try_get::<_, String>(1).unwrap_or_default())).collect()
}

pub(super) async fn count(client: &impl GenericClient, tenant: &TenantId) -> Result<usize, StoreError> {
    let rows = query(client, "SELECT count(*) FROM services WHERE tenant = $1", &[&tenant.as_str()]).await?;
    let n: i64 = match rows.first() {
        Some(row) => row.try_get(0).map_err(pg_error("count services"))?,
        None => 0,
    };
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The service as of now, its row locked until the transaction ends.
pub(super) async fn lock(txn: &Transaction<'_>, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
    let row = query_opt(txn, "SELECT record::text FROM services WHERE id = $1 FOR UPDATE", &[&id.as_str()]).await?;
    row.map(|row| decode_column(&row, id.as_str())).transpose()
}

pub(super) fn check_expect(id: &ServiceId, expect: Expect, current: Option<&ServiceRecord>) -> Result<(), StoreError> {
    let found = current.map(|c| c.version);
    let holds = match expect {
        Expect::Absent => found.is_none(),
        Expect::Version(version) => found == Some(version),
    };
    if holds { Ok(()) } else { Err(StoreError::Conflict { id: id.clone(), expected: expect, found }) }
}

pub(super) async fn put(txn: &Transaction<'_>, put: ServicePut, at: Timestamp, max: u64) -> Result<Event, StoreError> {
    let seq = next_seq(txn).await?;
    let current = lock(txn, &put.id).await?;
    check_expect(&put.id, put.expect, current.as_ref())?;
    let taken = query_opt(
        txn,
        "SELECT host, service FROM hosts WHERE host = ANY($1) AND service <> $2 ORDER BY host LIMIT 1",
        &[&put.hosts, &put.id.as_str()],
    )
    .await?;
    if let Some(row) = taken {
        let host: String = row.try_get(0).map_err(pg_error("read host"))?;
        let owner: String = row.try_get(1).map_err(pg_error("read host"))?;
        let owner = ServiceId::parse(&owner).map_err(|reason| StoreError::Corrupt { key: host.clone(), reason })?;
        return Err(StoreError::HostTaken { host, owner });
    }
    let existing = super::domains::of_service(txn, &put.id).await?;
    let plan = crate::domains::rules::plan(
        &put.id,
        &put.tenant,
        &put.hosts,
        &put.decreed,
        &existing,
        at,
        crate::domains::record::new_token,
    )
    .map_err(|e| StoreError::Backend(format!("token: {e}")))?;
    let record = ServiceRecord {
        id: put.id,
        tenant: put.tenant,
        version: seq,
        updated_at: at,
        config: put.config,
        function: put.function,
        verified_hosts: Some(plan.verified_hosts),
    };
    write(txn, &record).await?;
    execute(txn, "DELETE FROM hosts WHERE service = $1", &[&record.id.as_str()]).await?;
    execute(
        txn,
        "INSERT INTO hosts (host, service) SELECT DISTINCT unnest($1::text[]), $2",
        &[&put.hosts, &record.id.as_str()],
    )
    .await?;
    super::domains::remove(txn, &record.id, &plan.removed).await?;
    for domain in &plan.domains {
        super::domains::write(txn, domain).await?;
    }
    append(txn, Event { seq, at, change: Change::ServicePut { service: record } }, max).await
}

/// Writes the service's row (created or replaced).
pub(super) async fn write(txn: &Transaction<'_>, record: &ServiceRecord) -> Result<(), StoreError> {
    execute(
        txn,
        "INSERT INTO services (id, tenant, version, record) VALUES ($1, $2, $3, $4::text::jsonb)
         ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, version = EXCLUDED.version, record = EXCLUDED.record",
        &[&record.id.as_str(), &record.tenant.as_str(), &int(record.version.0)?, &encode(record)?],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete(
    txn: &Transaction<'_>,
    id: ServiceId,
    expect: Seq,
    at: Timestamp,
    max: u64,
) -> Result<Event, StoreError> {
    let seq = next_seq(txn).await?;
    let current = lock(txn, &id).await?;
    check_expect(&id, Expect::Version(expect), current.as_ref())?;
    let Some(current) = current else {
        return Err(StoreError::Conflict { id, expected: Expect::Version(expect), found: None });
    };
    // Its hosts and domains go with it (ON DELETE CASCADE).
    execute(txn, "DELETE FROM services WHERE id = $1", &[&id.as_str()]).await?;
    // A later service under this id, maybe another tenant's, starts with no functions.
    super::functions::forget(txn, &id).await?;
    append(txn, Event { seq, at, change: Change::ServiceDeleted { id, tenant: current.tenant } }, max).await
}
