//! Domains: one row per host pattern (`domains`, migration 3), removed with their service
//! (`ON DELETE CASCADE`) or when their host leaves its config.

use deadpool_postgres::{GenericClient, Transaction};
use outpost_config::{Change, Event, ServiceId, Timestamp};

use super::log::{append, next_seq};
use super::services::{lock, write as write_service};
use super::{decode_column, encode, execute, query, query_opt};
use crate::domains::DomainRecord;
use crate::store::{DomainQuery, StoreError, reserve};

/// A service's domains, in host order.
pub(super) async fn of_service(
    client: &impl GenericClient,
    service: &ServiceId,
) -> Result<Vec<DomainRecord>, StoreError> {
    let rows =
        query(client, "SELECT record::text, host FROM domains WHERE service = $1 ORDER BY host", &[&service.as_str()])
            .await?;
    rows.iter().map(|row| decode_column(row, &row.try_get::<_, String>(1).unwrap_or_default())).collect()
}

/// Creates or replaces one domain.
pub(super) async fn write(txn: &Transaction<'_>, domain: &DomainRecord) -> Result<(), StoreError> {
    execute(
        txn,
        "INSERT INTO domains (host, service, tenant, status, record) VALUES ($1, $2, $3, $4, $5::text::jsonb)
         ON CONFLICT (host) DO UPDATE SET service = EXCLUDED.service, tenant = EXCLUDED.tenant,
           status = EXCLUDED.status, record = EXCLUDED.record",
        &[&domain.host, &domain.service.as_str(), &domain.tenant.as_str(), &domain.status.as_str(), &encode(domain)?],
    )
    .await?;
    Ok(())
}

/// Removes the domains of `service` whose hosts are `hosts`.
pub(super) async fn remove(txn: &Transaction<'_>, service: &ServiceId, hosts: &[String]) -> Result<(), StoreError> {
    execute(txn, "DELETE FROM domains WHERE service = $1 AND host = ANY($2)", &[&service.as_str(), &hosts]).await?;
    Ok(())
}

/// [`Store::domains`](crate::store::Store::domains).
pub(super) async fn list(client: &impl GenericClient, q: &DomainQuery) -> Result<Vec<DomainRecord>, StoreError> {
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let service = q.service.as_ref().map(|s| s.as_str().to_owned());
    let tenant = q.tenant.as_ref().map(|t| t.as_str().to_owned());
    let after = q.after.clone().unwrap_or_default();
    let rows = query(
        client,
        "SELECT record::text, host FROM domains
         WHERE ($1::text IS NULL OR service = $1) AND ($2::text IS NULL OR tenant = $2) AND host > $3
         ORDER BY host LIMIT $4",
        &[&service, &tenant, &after, &limit],
    )
    .await?;
    rows.iter().map(|row| decode_column(row, &row.try_get::<_, String>(1).unwrap_or_default())).collect()
}

/// One domain.
pub(super) async fn one(client: &impl GenericClient, host: &str) -> Result<Option<DomainRecord>, StoreError> {
    let row = query_opt(client, "SELECT record::text FROM domains WHERE host = $1", &[&host]).await?;
    row.map(|row| decode_column(&row, host)).transpose()
}

/// [`Store::put_domain`](crate::store::Store::put_domain) inside `txn`.
pub(super) async fn put(
    txn: &Transaction<'_>,
    record: DomainRecord,
    at: Timestamp,
    max: u64,
) -> Result<Option<Event>, StoreError> {
    let gone = || StoreError::DomainGone { host: record.host.clone() };
    // The log's row first, as every write that may append an event: writers queue there.
    let seq = next_seq(txn).await?;
    let Some(service) = lock(txn, &record.service).await? else { return Err(gone()) };
    let current =
        query_opt(txn, "SELECT record::text FROM domains WHERE host = $1 FOR UPDATE", &[&record.host]).await?;
    let current: Option<DomainRecord> = current.map(|row| decode_column(&row, &record.host)).transpose()?;
    if current.is_none_or(|c| c.service != record.service || c.token != record.token) {
        return Err(gone());
    }
    write(txn, &record).await?;
    let domains = of_service(txn, &record.service).await?;
    let Some(served) = reserve(&service, &domains) else {
        // No event: give the number back (the transaction still commits the domain).
        execute(txn, "UPDATE outpost_log SET last_seq = last_seq - 1 WHERE id = 1", &[]).await?;
        return Ok(None);
    };
    let service =
        outpost_config::ServiceRecord { version: seq, updated_at: at, verified_hosts: Some(served), ..service };
    write_service(txn, &service).await?;
    append(txn, Event { seq, at, change: Change::ServicePut { service } }, max).await.map(Some)
}
