//! Keeping a sled database trustworthy across versions: the marker that tells an emptied
//! database from a new one, and upgrades of records written by older versions.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{SledStore, StoreError, decode, encode};
use crate::access::{Companies, User};
use crate::store::Outcome;

/// Checks the database in `dir` against its marker file (`<db>.id`: the database's id and
/// its generation), then starts a new generation.
///
/// The generation is written to `meta` (and made durable) before the marker, at every start
/// and every clean stop, so `meta` is never behind the marker — unless the database lost
/// writes: files emptied or cut short, or a damaged log that sled quietly recovered to an
/// older state. Either way the database is refused rather than served with data missing.
pub(super) fn check_marker(dir: &Path, meta: &sled::Tree) -> Result<(), StoreError> {
    let marker = marker_path(dir);
    let damaged = |reason: String| StoreError::Damaged { location: dir.display().to_string(), reason };
    let stored_id = meta.get("db_id")?.map(|id| String::from_utf8_lossy(&id).into_owned());
    let stored_generation = generation(meta)?;
    let id = match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let mut parts = text.split_whitespace();
            let (expected, at_least) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("0"));
            let at_least: u64 = at_least.parse().unwrap_or(0);
            match stored_id {
                Some(found) if found == expected && stored_generation >= at_least => found,
                Some(found) if found != expected => {
                    return Err(damaged(format!(
                        "it is database {found}, but {} says this directory holds {expected}; restore \
                         the right database from a backup",
                        marker.display()
                    )));
                }
                _ => {
                    return Err(damaged(format!(
                        "it has lost writes ({} records generation {at_least}, the database {}): its \
                         files were emptied, cut short or damaged; restore them from a backup, or \
                         remove {} to start over with what is left",
                        marker.display(),
                        if stored_id.is_some() { format!("only {stored_generation}") } else { "none".into() },
                        marker.display()
                    )));
                }
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => match stored_id {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::now_v7().simple().to_string();
                meta.insert("db_id", id.as_bytes())?;
                id
            }
        },
        Err(error) => return Err(damaged(format!("cannot read {}: {error}", marker.display()))),
    };
    advance(dir, meta, &id, stored_generation + 1)
}

/// Starts the next generation: durable in `meta` first, then in the marker.
pub(super) fn next_generation(dir: &Path, meta: &sled::Tree) -> Result<(), StoreError> {
    let id = meta.get("db_id")?.map(|id| String::from_utf8_lossy(&id).into_owned()).unwrap_or_default();
    advance(dir, meta, &id, generation(meta)? + 1)
}

fn advance(dir: &Path, meta: &sled::Tree, id: &str, generation: u64) -> Result<(), StoreError> {
    meta.insert("generation", &generation.to_be_bytes())?;
    meta.flush()?;
    let marker = marker_path(dir);
    crate::private_file::replace(&marker, format!("{id} {generation}\n").as_bytes()).map_err(|e| {
        StoreError::Damaged {
            location: dir.display().to_string(),
            reason: format!("cannot write {}: {e}", marker.display()),
        }
    })
}

fn generation(meta: &sled::Tree) -> Result<u64, StoreError> {
    match meta.get("generation")? {
        None => Ok(0),
        Some(bytes) => Ok(u64::from_be_bytes(
            bytes
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("the database generation is unreadable".into()))?,
        )),
    }
}

fn marker_path(dir: &Path) -> std::path::PathBuf {
    dir.with_extension("id")
}

/// Brings records written by schema `from` up to this version.
pub(super) fn upgrade(store: &SledStore, from: u64) -> Result<(), StoreError> {
    if from < 2 {
        users_from_tokens_and_webhooks(store)?;
    }
    if from < 3 {
        idempotency_outcomes(store)?;
    }
    Ok(())
}

/// Schema 2 stored the answer an `Idempotency-Key` was given; schema 3 stores its outcomes
/// (one per event), from which the endpoint builds the answer.
fn idempotency_outcomes(store: &SledStore) -> Result<(), StoreError> {
    for item in store.inner.idempotency.iter() {
        let (key, record) = item?;
        let mut record: Value = decode(&record)?;
        let Some(response) = record.as_object_mut().and_then(|r| r.remove("response")) else { continue };
        let outcome = |response: &Value| Outcome {
            duplicate: response["duplicate"] == true,
            response: response.clone(),
        };
        let outcomes: Vec<Outcome> = match response.get("events").and_then(Value::as_array) {
            Some(events) => events.iter().map(outcome).collect(),
            None => vec![outcome(&response)],
        };
        record["outcomes"] = serde_json::to_value(outcomes).expect("plain data");
        store.inner.idempotency.insert(key, encode(&record))?;
    }
    Ok(())
}

/// Schema 1 kept companies on each token and webhook; schema 2 keeps them on the user. Each
/// user gets the companies of their newest token, or, with no token left, of their webhooks.
fn users_from_tokens_and_webhooks(store: &SledStore) -> Result<(), StoreError> {
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
        if store.inner.users.get(&id)?.is_none() {
            store.inner.users.insert(&id, encode(&User { id: id.clone(), companies }))?;
        }
    }
    Ok(())
}
