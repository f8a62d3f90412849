//! A consistent copy of the store while it serves: one read transaction (a snapshot of the last
//! commit; writers go on meanwhile, redb being copy-on-write) copied table by table into a new
//! redb file, committed and fsynced. Restoring is replacing the data file with the copy while
//! the control plane is stopped.

use std::path::Path;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::acme::{ACME_ACCOUNTS, ACME_CHALLENGES, ACME_STATES};
use super::certificates::CERTIFICATES;
use super::domains::{DOMAINS, SERVICE_DOMAINS};
use super::functions::{FUNCTION_BLOBS, FUNCTION_REFS, FUNCTION_SETS};
use super::{DRAINS, EVENTS, HOSTS, META, NODES, PURGES, SERVICES, TENANT_SERVICES, backend};
use crate::store::StoreError;

/// Copies every table of `db` into a new file at `to` (which must not exist); returns the
/// number of records copied.
pub(super) fn copy(db: &Database, to: &Path) -> Result<u64, StoreError> {
    // `create_new`: never overwrite a file (a previous backup, or the live store itself).
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| backend(format!("backup {}", to.display()), e))?;
    let result = copy_into(db, to);
    if result.is_err() {
        let _ = std::fs::remove_file(to);
    }
    result
}

fn copy_into(db: &Database, to: &Path) -> Result<u64, StoreError> {
    let target = Database::create(to).map_err(|e| backend(format!("backup {}", to.display()), e))?;
    let read = db.begin_read().map_err(|e| backend("begin", e))?;
    let write = target.begin_write().map_err(|e| backend("begin backup", e))?;
    let mut records = 0;
    records += table(&read, &write, SERVICES)?;
    records += table(&read, &write, TENANT_SERVICES)?;
    records += table(&read, &write, HOSTS)?;
    records += table(&read, &write, PURGES)?;
    records += table(&read, &write, EVENTS)?;
    records += table(&read, &write, META)?;
    records += table(&read, &write, NODES)?;
    records += table(&read, &write, DRAINS)?;
    records += table(&read, &write, FUNCTION_SETS)?;
    records += table(&read, &write, FUNCTION_BLOBS)?;
    records += table(&read, &write, FUNCTION_REFS)?;
    records += table(&read, &write, DOMAINS)?;
    records += table(&read, &write, SERVICE_DOMAINS)?;
    records += table(&read, &write, ACME_CHALLENGES)?;
    records += table(&read, &write, ACME_STATES)?;
    records += table(&read, &write, ACME_ACCOUNTS)?;
    records += table(&read, &write, CERTIFICATES)?;
    write.commit().map_err(|e| backend("commit backup", e))?;
    Ok(records)
}

fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    read: &ReadTransaction,
    write: &WriteTransaction,
    definition: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let name = definition.to_string();
    let source = read.open_table(definition).map_err(|e| backend(format!("open {name}"), e))?;
    let mut target = write.open_table(definition).map_err(|e| backend(format!("backup {name}"), e))?;
    let mut count = 0;
    for entry in source.iter().map_err(|e| backend(format!("read {name}"), e))? {
        let (key, value) = entry.map_err(|e| backend(format!("read {name}"), e))?;
        target.insert(key.value(), value.value()).map_err(|e| backend(format!("backup {name}"), e))?;
        count += 1;
    }
    Ok(count)
}
