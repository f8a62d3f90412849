//! Certificates: table `certificates` (migration 4), one row per (service, name), the record
//! with its sealed key as JSON (`record`), deleted with the service (`ON DELETE CASCADE`).

use deadpool_postgres::{GenericClient, Transaction};
use outpost_config::{CertificateName, Change, Event, Seq, ServiceId, Timestamp};

use super::log::{append, next_seq};
use super::services::lock;
use super::{decode_column, encode, execute, int, query, query_opt};
use crate::secrets::Sealed;
use crate::store::{Expect, StoreError, StoredCertificate};

pub(super) async fn put(
    txn: &Transaction<'_>,
    mut put: StoredCertificate,
    at: Timestamp,
    max: u64,
) -> Result<Event, StoreError> {
    let seq = next_seq(txn).await?;
    // The service's row stays locked to the end: a concurrent delete waits, then cascades.
    let service = lock(txn, &put.record.service).await?;
    if service.as_ref().is_none_or(|s| s.tenant != put.record.tenant) {
        return Err(StoreError::Conflict { id: put.record.service, expected: Expect::Absent, found: None });
    }
    put.record.version = seq;
    put.record.updated_at = at;
    execute(
        txn,
        "INSERT INTO certificates (service, name, version, record) VALUES ($1, $2, $3, $4::text::jsonb)
         ON CONFLICT (service, name) DO UPDATE SET version = EXCLUDED.version, record = EXCLUDED.record",
        &[&put.record.service.as_str(), &put.record.name.as_str(), &int(seq.0)?, &encode(&put)?],
    )
    .await?;
    append(txn, Event { seq, at, change: Change::CertificatePut { certificate: put.record } }, max).await
}

pub(super) async fn one(
    client: &impl GenericClient,
    service: &ServiceId,
    name: &CertificateName,
) -> Result<Option<StoredCertificate>, StoreError> {
    let row = query_opt(
        client,
        "SELECT record::text FROM certificates WHERE service = $1 AND name = $2",
        &[&service.as_str(), &name.as_str()],
    )
    .await?;
    row.map(|row| decode_column(&row, &format!("{service}/{name}"))).transpose()
}

pub(super) async fn list(
    client: &impl GenericClient,
    service: Option<&ServiceId>,
    limit: usize,
) -> Result<Vec<StoredCertificate>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match service {
        Some(service) => {
            query(
                client,
                "SELECT record::text, service || '/' || name FROM certificates WHERE service = $1
                 ORDER BY service, name LIMIT $2",
                &[&service.as_str(), &limit],
            )
            .await?
        }
        None => {
            query(
                client,
                "SELECT record::text, service || '/' || name FROM certificates ORDER BY service, name LIMIT $1",
                &[&limit],
            )
            .await?
        }
    };
    rows.iter().map(|row| decode_column(row, &row.try_get::<_, String>(1).unwrap_or_default())).collect()
}

pub(super) async fn delete(
    txn: &Transaction<'_>,
    service: &ServiceId,
    name: &CertificateName,
    at: Timestamp,
    max: u64,
) -> Result<Option<Event>, StoreError> {
    let seq = next_seq(txn).await?;
    let row = query_opt(
        txn,
        "DELETE FROM certificates WHERE service = $1 AND name = $2 RETURNING record::text",
        &[&service.as_str(), &name.as_str()],
    )
    .await?;
    let Some(row) = row else {
        // Nothing deleted: the transaction is rolled back by the caller's drop, so the number
        // taken is given back (no gap).
        return Ok(None);
    };
    let removed: StoredCertificate = decode_column(&row, &format!("{service}/{name}"))?;
    let change =
        Change::CertificateDeleted { service: service.clone(), tenant: removed.record.tenant, name: name.clone() };
    append(txn, Event { seq, at, change }, max).await.map(Some)
}

pub(super) async fn reseal(
    txn: &Transaction<'_>,
    service: &ServiceId,
    name: &CertificateName,
    version: Seq,
    sealed: Sealed,
) -> Result<bool, StoreError> {
    let row = query_opt(
        txn,
        "SELECT record::text FROM certificates WHERE service = $1 AND name = $2 AND version = $3 FOR UPDATE",
        &[&service.as_str(), &name.as_str(), &int(version.0)?],
    )
    .await?;
    let Some(row) = row else { return Ok(false) };
    let mut stored: StoredCertificate = decode_column(&row, &format!("{service}/{name}"))?;
    stored.key = sealed;
    execute(
        txn,
        "UPDATE certificates SET record = $3::text::jsonb WHERE service = $1 AND name = $2",
        &[&service.as_str(), &name.as_str(), &encode(&stored)?],
    )
    .await?;
    Ok(true)
}
