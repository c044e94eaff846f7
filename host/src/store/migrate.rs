//! Keeping a sled database trustworthy across versions: the marker that tells an emptied
//! database from a new one, and upgrades of records written by older versions.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{Store, StoreError, decode};
use crate::access::{Companies, User};

/// Checks the database in `dir` against its marker file, writing both on first start.
pub(super) fn check_marker(dir: &Path, meta: &sled::Tree) -> Result<(), StoreError> {
    let marker = dir.with_extension("id");
    let damaged = |reason: String| StoreError::Damaged { path: dir.to_owned(), reason };
    let stored = meta.get("db_id")?.map(|id| String::from_utf8_lossy(&id).into_owned());
    match std::fs::read_to_string(&marker) {
        Ok(expected) => match stored {
            Some(found) if found == expected.trim() => Ok(()),
            Some(found) => Err(damaged(format!(
                "it is database {found}, but {} says this directory holds {}; restore the right \
                 database from a backup",
                marker.display(),
                expected.trim()
            ))),
            None => Err(damaged(format!(
                "it held data before ({} says so) but its files are now empty or cut short; \
                 restore them from a backup, or remove {} to start over with an empty database",
                marker.display(),
                marker.display()
            ))),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = match stored {
                Some(id) => id,
                None => {
                    let id = uuid::Uuid::now_v7().simple().to_string();
                    meta.insert("db_id", id.as_bytes())?;
                    meta.flush()?;
                    id
                }
            };
            crate::private_file::write(&marker, id.as_bytes())
                .map_err(|e| damaged(format!("cannot write {}: {e}", marker.display())))
        }
        Err(error) => Err(damaged(format!("cannot read {}: {error}", marker.display()))),
    }
}

/// Brings records written by schema `from` up to this version.
pub(super) fn upgrade(store: &Store, from: u64) -> Result<(), StoreError> {
    if from < 2 {
        users_from_tokens_and_webhooks(store)?;
    }
    Ok(())
}

/// Schema 1 kept companies on each token and webhook; schema 2 keeps them on the user. Each
/// user gets the companies of their newest token, or, with no token left, of their webhooks.
fn users_from_tokens_and_webhooks(store: &Store) -> Result<(), StoreError> {
    let companies_of = |record: &Value| -> Option<Companies> {
        serde_json::from_value(record.get("companies")?.clone()).ok()
    };
    let mut users: BTreeMap<String, (String, Companies)> = BTreeMap::new();
    for record in store.inner.tokens.scan_prefix(b"h/").values() {
        let record: Value = decode(&record?)?;
        let (Some(user), Some(companies)) = (record["userId"].as_str(), companies_of(&record)) else {
            continue;
        };
        let created = record["createdAt"].as_str().unwrap_or_default().to_owned();
        let newer = users.get(user).is_none_or(|(at, _)| *at <= created);
        if newer {
            users.insert(user.to_owned(), (created, companies));
        }
    }
    let mut from_webhooks: BTreeMap<String, Companies> = BTreeMap::new();
    for record in store.inner.webhooks.iter().values() {
        let record: Value = decode(&record?)?;
        let (Some(owner), Some(companies)) = (record["createdById"].as_str(), companies_of(&record)) else {
            continue;
        };
        let merged = match (from_webhooks.remove(owner), companies) {
            (Some(Companies::All), _) | (_, Companies::All) => Companies::All,
            (Some(Companies::Only(mut a)), Companies::Only(b)) => {
                a.extend(b);
                Companies::Only(a)
            }
            (None, only) => only,
        };
        from_webhooks.insert(owner.to_owned(), merged);
    }
    for (id, companies) in from_webhooks {
        users.entry(id).or_insert((String::new(), companies));
    }
    for (id, (_, companies)) in users {
        if store.user(&id)?.is_none() {
            store.put_user(&User { id, companies })?;
        }
    }
    Ok(())
}
