//! Keeping a sled database trustworthy across versions: the marker that tells an emptied
//! database from a new one, and upgrades of records written by older versions.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{SledStore, StoreError, decode, delivery_key, encode, record};
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
    if from < 4 {
        attempts_into_deliveries(store)?;
    }
    Ok(())
}

/// Schema 3 kept attempts in a tree of their own, `<delivery id>/<nanos>/<message id>`;
/// schema 4 keeps them in their delivery's record (`record.rs`). Each delivery's record is
/// rewritten with the attempts the tree holds for it, then they leave the tree in one batch:
/// stopped half-way, the next start does the rest (a record is rewritten from the tree, not
/// added to). Attempts of a delivery no longer stored are dropped.
fn attempts_into_deliveries(store: &SledStore) -> Result<(), StoreError> {
    let inner = &store.inner;
    let attempts = inner.db.open_tree("attempts")?;
    let mut entries = attempts.iter().peekable();
    while let Some(first) = entries.next() {
        let (key, value) = first?;
        let delivery_id = key.split(|b| *b == b'/').next().unwrap_or_default().to_vec();
        let mut keys = vec![key];
        let mut lines = vec![value];
        while let Some(Ok((key, _))) = entries.peek()
            && key.split(|b| *b == b'/').next() == Some(delivery_id.as_slice())
        {
            let (key, value) = entries.next().expect("peeked")?;
            keys.push(key);
            lines.push(value);
        }
        let record_key = delivery_key(&String::from_utf8_lossy(&delivery_id));
        if let Some(stored) = inner.deliveries.get(&record_key)? {
            inner.deliveries.insert(record_key, record::with_attempts(&stored, &lines))?;
        }
        let mut moved = sled::Batch::default();
        keys.into_iter().for_each(|key| moved.remove(key));
        attempts.apply_batch(moved)?;
    }
    inner.db.drop_tree("attempts")?;
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::delivery::{Attempt, Delivery};
    use crate::store::Accept;

    fn attempt(status: u16, at: OffsetDateTime) -> Attempt {
        Attempt {
            message_id: "m1".into(),
            at,
            status_code: Some(status),
            latency_ms: 1,
            response: None,
            error: None,
            remote_id: None,
        }
    }

    /// Stores `ids` as schema 3 did: attempts in their own tree, keyed by delivery and time.
    async fn schema_3(dir: &Path, ids: &[&str]) -> Vec<Delivery> {
        let store = SledStore::open(dir).unwrap();
        let mut deliveries = Vec::new();
        for id in ids {
            let incoming: crate::domain::event::IncomingEvent =
                serde_json::from_value(json!({"id": id, "event": "E", "companyId": "c", "projectId": "p"}))
                    .unwrap();
            let event = incoming.accept(OffsetDateTime::now_utc());
            let delivery = Delivery::new(&event, "w1", true, OffsetDateTime::now_utc());
            let accept = Accept {
                event: event.into(),
                deliveries: vec![delivery.clone()],
                response: json!({}),
                unordered: vec![],
            };
            store.accept(&[accept], None, 1).await.unwrap();
            deliveries.push(delivery);
        }
        store.close_and_release().await.unwrap();
        let db = sled::open(dir).unwrap();
        let attempts = db.open_tree("attempts").unwrap();
        let start = OffsetDateTime::now_utc();
        for delivery in deliveries.iter().chain([&Delivery { id: "gone".into(), ..deliveries[0].clone() }]) {
            for (i, status) in [500, 200].into_iter().enumerate() {
                let at = start + time::Duration::seconds(i as i64);
                let key = format!("{}/{:032}/m1", delivery.id, at.unix_timestamp_nanos());
                attempts.insert(key, encode(&attempt(status, at))).unwrap();
            }
        }
        db.open_tree("meta").unwrap().insert("schema_version", &3u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
        deliveries
    }

    fn statuses(attempts: &[Attempt]) -> Vec<Option<u16>> {
        attempts.iter().map(|a| a.status_code).collect()
    }

    #[tokio::test]
    async fn attempts_move_into_their_deliveries_records() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("db");
        let deliveries = schema_3(&dir, &["e1", "e2"]).await;
        let store = SledStore::open(&dir).unwrap();
        let ids: Vec<String> = deliveries.iter().map(|d| d.id.clone()).chain(["gone".into()]).collect();
        let found = store.attempts_of(&ids).await.unwrap();
        assert_eq!(statuses(&found[0]), [Some(500), Some(200)], "oldest first");
        assert_eq!(statuses(&found[1]), [Some(500), Some(200)]);
        assert!(found[2].is_empty(), "a delivery no longer stored keeps none");
        assert_eq!(store.delivery(&ids[0]).await.unwrap().as_ref(), Some(&deliveries[0]));
        assert!(
            !store.inner.db.tree_names().iter().any(|name| name.as_ref() == b"attempts"),
            "the tree is gone"
        );
    }

    #[tokio::test]
    async fn a_move_stopped_half_way_is_finished_without_copies() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("db");
        let deliveries = schema_3(&dir, &["e1"]).await;
        {
            // The record was rewritten, the attempts had not left the tree yet.
            let db = sled::open(&dir).unwrap();
            let records = db.open_tree("deliveries").unwrap();
            let key = delivery_key(&deliveries[0].id);
            let stored = records.get(&key).unwrap().unwrap();
            records
                .insert(
                    &key,
                    record::with_attempts(&stored, &[encode(&attempt(500, OffsetDateTime::now_utc()))]),
                )
                .unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open(&dir).unwrap();
        let found = store.attempts_of(&[deliveries[0].id.clone()]).await.unwrap();
        assert_eq!(statuses(&found[0]), [Some(500), Some(200)]);
    }
}
