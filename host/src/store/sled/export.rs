//! Reading a whole database out, a page of one kind at a time, for a copy to another backend
//! (see `store/transfer.rs`). Each page is read on the blocking pool from where the last one
//! ended (its last key), so memory holds one page whatever the size of the database.
//!
//! Events are read in the order they were accepted, from the `expiry` tree, which has the time
//! of each; an event with no entry there would be missed, so when fewer events were found that
//! way than the `events` tree holds, a second pass reads them all, accepted "now" (the target
//! skips those it has).

use std::ops::Bound;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::expiry::{self, Expiring};
use super::queue::{self, Stored};
use super::{EventRecord, Inner, SledStore, record};
use crate::store::transfer::{Kind, PAGE_BYTES, PAGE_RECORDS, Page, Records, StoredAttempt, StoredEvent};
use crate::store::{StoreError, now_ms};

/// A database opened for reading out. Holds sled's lock: no server can open it meanwhile.
pub(crate) struct Export {
    store: SledStore,
    /// When the export started: the acceptance time of events that have none stored.
    started_ms: u64,
    reading: Option<Reading>,
}

/// Where the reading of one kind stands.
#[derive(Default)]
struct Reading {
    kind: Option<Kind>,
    second_pass: bool,
    /// The last key read; `None` before the first page of a pass.
    after: Option<Vec<u8>>,
    done: bool,
    /// Events found in the first pass.
    found: u64,
    /// Events the second pass adds to those found: counted with its next page.
    unread: u64,
}

impl Export {
    /// Opens the existing database in `dir` (upgrading what older versions wrote, as a
    /// server's start would); refused while a server holds it, or when there is none.
    pub(crate) async fn open(dir: &Path) -> Result<Export, StoreError> {
        // sled would create an empty database where there is none.
        if !dir.join("db").is_file() {
            return Err(StoreError::Refused(format!("there is no database at {}", dir.display())));
        }
        let store = SledStore::open_with(dir, false)?;
        Ok(Export { store, started_ms: now_ms(), reading: None })
    }

    /// The next page of `kind`; `None` once every record of it was read. Asking for another
    /// kind starts that one from its beginning.
    pub(crate) async fn page(&mut self, kind: Kind) -> Result<Option<Page>, StoreError> {
        let reading = match &mut self.reading {
            Some(reading) if reading.kind == Some(kind) => reading,
            other => other.insert(Reading { kind: Some(kind), ..Reading::default() }),
        };
        let first_events_pass = |reading: &Reading| kind == Kind::Events && !reading.second_pass;
        while !reading.done {
            let (after, second_pass, started_ms) =
                (reading.after.take(), reading.second_pass, self.started_ms);
            let (records, next) =
                self.store.scan(move |inner| read(inner, kind, second_pass, after, started_ms)).await?;
            let counted = match second_pass {
                true => std::mem::take(&mut reading.unread),
                false => records.len() as u64,
            };
            if first_events_pass(reading) {
                reading.found += counted;
            }
            match next {
                Some(next) => reading.after = Some(next),
                None if first_events_pass(reading) => {
                    let found = reading.found;
                    let stored = self.store.scan(|inner| Ok(inner.events.len() as u64)).await?;
                    // Fewer found: some have no entry in `expiry`. More: an entry left by a
                    // prune cut short points at an event accepted again since, counted twice,
                    // which could hide one with no entry.
                    reading.second_pass = found != stored;
                    reading.done = found == stored;
                    reading.unread = stored.saturating_sub(found);
                    if reading.second_pass {
                        tracing::info!(
                            found,
                            stored,
                            "some events have no acceptance time: reading them all"
                        );
                    }
                }
                None => reading.done = true,
            }
            if !records.is_empty() {
                return Ok(Some(Page { records, read: counted }));
            } else if second_pass {
                reading.unread += counted; // counted with the next page that has records
            }
        }
        Ok(None)
    }

    /// Closes the database as a clean stop does, and lets go of it.
    pub(crate) async fn close(self) -> Result<(), StoreError> {
        self.store.close_and_release().await
    }
}

/// Reads a page of `kind` after the key `after`; returns it and the key to read on from,
/// `None` at the end. A page may be empty without being the last (entries skipped).
fn read(
    inner: &Inner,
    kind: Kind,
    second_pass: bool,
    after: Option<Vec<u8>>,
    started_ms: u64,
) -> Result<(Records, Option<Vec<u8>>), StoreError> {
    let after = after.as_deref();
    Ok(match kind {
        Kind::Users => {
            let (entries, next) = entries(&inner.users, b"", after)?;
            (Records::Users(decode_all("users", &entries)?), next)
        }
        Kind::Tokens => {
            // `h/<hash>` → token; `i/<id>` → hash is the index back.
            let (entries, next) = entries(&inner.tokens, b"h/", after)?;
            let tokens = entries
                .iter()
                .map(|(key, value)| {
                    let hash =
                        key[2..].try_into().map_err(|_| damaged("tokens", key, "not a SHA-256 hash"))?;
                    Ok((hash, decode("tokens", key, value)?))
                })
                .collect::<Result<_, StoreError>>()?;
            (Records::Tokens(tokens), next)
        }
        Kind::Connectors => {
            let (entries, next) = entries(&inner.connectors, b"", after)?;
            let connectors = entries
                .into_iter()
                .map(|(name, component)| (String::from_utf8_lossy(&name).into_owned(), component.to_vec()))
                .collect();
            (Records::Connectors(connectors), next)
        }
        Kind::Webhooks => {
            let (entries, next) = entries(&inner.webhooks, b"", after)?;
            (Records::Webhooks(decode_all("webhooks", &entries)?), next)
        }
        Kind::Events if second_pass => {
            let (entries, next) = entries(&inner.events, b"", after)?;
            let events = entries
                .iter()
                .map(|(key, value)| Ok(decode::<EventRecord>("events", key, value)?.stored(started_ms)))
                .collect::<Result<_, StoreError>>()?;
            (Records::Events(events), next)
        }
        Kind::Events => {
            let (events, next) = accepted_events(inner, after)?;
            (Records::Events(events), next)
        }
        Kind::Deliveries => {
            // `d/<id>` → delivery; `w/<webhook>/<id>` is the index by webhook.
            let (entries, next) = entries(&inner.deliveries, b"d/", after)?;
            let deliveries = entries
                .iter()
                .map(|(key, value)| {
                    record::delivery(value).map_err(|e| damaged("deliveries", key, &e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            (Records::Deliveries(deliveries), next)
        }
        Kind::Attempts => {
            // Each delivery's record holds its attempts.
            let (entries, next) = entries(&inner.deliveries, b"d/", after)?;
            let mut attempts = Vec::new();
            for (key, value) in &entries {
                let delivery_id = String::from_utf8_lossy(&key[2..]);
                let stored =
                    record::attempts(value).map_err(|e| damaged("deliveries", key, &e.to_string()))?;
                attempts.extend(
                    stored
                        .into_iter()
                        .map(|attempt| StoredAttempt { delivery_id: delivery_id.to_string(), attempt }),
                );
            }
            (Records::Attempts(attempts), next)
        }
        Kind::Queue => {
            let (entries, next) = entries(&inner.queue, b"", after)?;
            let mut queue = Vec::with_capacity(entries.len());
            // A delivery in a group with an entry of its own due other than its record says
            // (a retry its plugin asked to wait for, a requeue) is copied twice: the target
            // keeps the first it reads, the group's (keys sort by time).
            for (key, value) in &entries {
                match queue::read(key, value)? {
                    Stored::One(entry) => queue.push(entry),
                    Stored::Group { at_ms, delivery_ids } => queue.extend(queue::still_queued(
                        &inner.queue,
                        &inner.deliveries,
                        at_ms,
                        &delivery_ids,
                    )?),
                }
            }
            (Records::Queue(queue), next)
        }
    })
}

/// Events in the order they were accepted: those the `expiry` tree's entries name (not its
/// idempotency keys, which are not copied), each with its event.
fn accepted_events(
    inner: &Inner,
    after: Option<&[u8]>,
) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
    let mut events = Vec::new();
    let mut bytes = 0;
    for item in inner.expiry.range::<&[u8], _>((start(after), Bound::Unbounded)) {
        let (key, value) = item?;
        if let (accepted_ms, Expiring::Events(keys)) = expiry::read(&key, &value)? {
            for event_key in keys {
                // Gone when a prune stopped between the event and its entry.
                if let Some(value) = inner.events.get(event_key)? {
                    events.push(decode::<EventRecord>("events", event_key, &value)?.stored(accepted_ms));
                    bytes += value.len();
                }
            }
        }
        if events.len() == PAGE_RECORDS || bytes >= PAGE_BYTES {
            return Ok((events, Some(key.to_vec())));
        }
    }
    Ok((events, None))
}

/// A key and its value.
type Entry = (sled::IVec, sled::IVec);

/// Up to a page of `tree`'s entries under `prefix`, after the key `after`; with the key to read
/// on from, `None` when the entries under `prefix` ended.
fn entries(
    tree: &sled::Tree,
    prefix: &[u8],
    after: Option<&[u8]>,
) -> Result<(Vec<Entry>, Option<Vec<u8>>), StoreError> {
    let from = match after {
        Some(after) => start(Some(after)),
        None => Bound::Included(prefix),
    };
    let mut page = Vec::new();
    let mut bytes = 0;
    for item in tree.range::<&[u8], _>((from, Bound::Unbounded)) {
        let (key, value) = item?;
        if !key.starts_with(prefix) {
            break;
        }
        bytes += key.len() + value.len();
        page.push((key, value));
        if page.len() == PAGE_RECORDS || bytes >= PAGE_BYTES {
            let next = page.last().map(|(key, _)| key.to_vec());
            return Ok((page, next));
        }
    }
    Ok((page, None))
}

fn start(after: Option<&[u8]>) -> Bound<&[u8]> {
    match after {
        Some(after) => Bound::Excluded(after),
        None => Bound::Unbounded,
    }
}

fn decode_all<T: DeserializeOwned>(tree: &str, entries: &[Entry]) -> Result<Vec<T>, StoreError> {
    entries.iter().map(|(key, value)| decode(tree, key, value)).collect()
}

/// A stored record; `Corrupt` naming the tree and the key when it does not read.
fn decode<T: DeserializeOwned>(tree: &str, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| damaged(tree, key, &e.to_string()))
}

fn damaged(tree: &str, key: &[u8], why: &str) -> StoreError {
    StoreError::Corrupt(format!("{tree} {}: {why}", String::from_utf8_lossy(key).escape_debug()))
}

impl EventRecord<'_> {
    /// The record as a transfer carries it, accepted at `accepted_ms`.
    fn stored(self, accepted_ms: u64) -> StoredEvent {
        StoredEvent { event: self.event.into_owned(), response: self.response.into_owned(), accepted_ms }
    }
}

#[cfg(test)]
impl SledStore {
    /// Forgets when the events of the first `count` ingest groups were accepted, as
    /// databases written before retention came in never recorded it.
    pub(crate) fn forget_acceptance_times(&self, count: usize) -> Result<(), StoreError> {
        let mut forgotten = 0;
        for item in self.inner.expiry.iter() {
            let (key, value) = item?;
            if forgotten < count && matches!(expiry::read(&key, &value)?.1, Expiring::Events(_)) {
                self.inner.expiry.remove(key)?;
                forgotten += 1;
            }
        }
        Ok(())
    }
}
