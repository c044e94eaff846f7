//! The embedded backend: sled trees, one process per database.
//!
//! Trees: `webhooks`, `users`, `tokens`, `events` (by company and id), `deliveries` (each
//! with its attempts, `record.rs`), `queue` (by due time, an ingest group's deliveries in one
//! entry, `queue.rs`), `connectors` (each name's live component), `dead_letters`,
//! `plugin_state` (connectors' state per webhook, `plugin_state.rs`), the connector versions'
//! trees (`versions.rs`), `idempotency` (by token and key), `expiry` (what to prune when,
//! `expiry.rs`) and `meta` (the schema version and the database's id). Records are JSON.
//! Ingest writes a group of concurrent calls' events, their deliveries and the group's queue
//! and expiry entries — the idempotency check included — and one flush (`ingest.rs`).
//!
//! The queue is claimed in process: entries written here (and those found at open) wait in
//! a list of unclaimed entries until the engine claims them; writing one wakes the engine.
//!
//! `export.rs` reads a whole database out, a page at a time, for a copy to another backend.
//!
//! A marker file beside the database (`<db>.id`) holds the id written into `meta` when the
//! database was created: a database that lost its files (truncated, replaced by an empty one)
//! is then refused at start instead of starting empty.

mod commit;
mod expiry;
mod export;
mod ingest;
mod keylist;
mod migrate;
mod plugin_state;
mod queue;
mod record;
mod versions;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::Notify;

use super::{Accept, DeliveryQuery, IdempotencyKey, Outcome, QueueEntry, StoreError, Stored};
use crate::access::{Token, User};
use crate::domain::dead_letter::DeadLetter;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::webhook::Webhook;

use self::commit::GroupCommit;
use self::expiry::Expiring;

pub(crate) use self::export::Export;

/// The layout this version writes. Bump with a migration when records change shape.
/// 5: ingest queues a group's deliveries in one entry (`queue.rs`); read as written, but
/// older versions would take the entry for damage.
const SCHEMA_VERSION: u64 = 5;

/// Backend errors in words the rest of the host can act on.
impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(cause) => StoreError::Unavailable(cause.to_string()),
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdempotencyRecord {
    endpoint: String,
    body_hash: String,
    outcomes: Vec<Outcome>,
}

/// An event as stored, with its first answer: written from borrowed parts, read owned.
#[derive(Serialize, serde::Deserialize)]
struct EventRecord<'a> {
    event: Cow<'a, Event>,
    response: Cow<'a, Value>,
}

/// The sled database. Cheap to clone.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    meta: sled::Tree,
    db: sled::Db,
    webhooks: sled::Tree,
    users: sled::Tree,
    tokens: sled::Tree,
    events: sled::Tree,
    deliveries: sled::Tree,
    queue: sled::Tree,
    connectors: sled::Tree,
    /// `<source>\0<id>` → a source's dead letter.
    dead_letters: sled::Tree,
    /// `<webhook>\0<connector>\0<key>` → a connector's state value.
    plugin_state: sled::Tree,
    /// Held while a state write checks the quota and writes.
    plugin_state_writes: Mutex<()>,
    connector_versions: sled::Tree,
    connector_components: sled::Tree,
    connector_heads: sled::Tree,
    shadow_runs: sled::Tree,
    idempotency: sled::Tree,
    /// What to prune when (`expiry.rs`).
    expiry: sled::Tree,
    /// The deliveries each ingest group's queue entry still holds.
    groups: Arc<Mutex<queue::Groups>>,
    queue_depth: AtomicU64,
    /// Durable queue entries the engine has not claimed yet, in the order they were written.
    unclaimed: Mutex<VecDeque<QueueEntry>>,
    work_written: Notify,
    commit: Arc<GroupCommit>,
    ingest: ingest::Sender,
    ingest_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    /// The flushing task holds the database too: stopped, it lets sled release its lock once
    /// the last handle is gone (an export finished, a test's store dropped), not only when
    /// the process ends.
    fn drop(&mut self) {
        self.commit.stop();
        self.ingest.stop();
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(corrupt)
}

fn corrupt(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

fn transaction_error(error: TransactionError<String>) -> StoreError {
    match error {
        TransactionError::Abort(message) => StoreError::Corrupt(message),
        TransactionError::Storage(error) => error.into(),
    }
}

/// Events are deduplicated per company: another tenant's id never collides with this one's.
fn event_key(company_id: &str, event_id: &str) -> Vec<u8> {
    [company_id.as_bytes(), b"\0", event_id.as_bytes()].concat()
}

/// Deliveries are stored under `d/<id>`, and indexed by webhook under `w/<webhook>/<id>`.
fn delivery_key(id: &str) -> Vec<u8> {
    format!("d/{id}").into_bytes()
}

fn by_webhook_key(webhook_id: &str, delivery_id: &str) -> Vec<u8> {
    format!("w/{webhook_id}/{delivery_id}").into_bytes()
}

impl SledStore {
    /// Opens (or creates) the database in `dir`, upgrading what older versions wrote. Needs a
    /// tokio runtime (for group commit). A damaged database is an error naming it, never a
    /// panic or an empty start.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        SledStore::open_with(dir, true)
    }

    /// [`SledStore::open`]; `load_queue` false leaves the queue unread (nothing will be
    /// claimed: an export reads it page by page instead).
    fn open_with(dir: &Path, load_queue: bool) -> Result<Self, StoreError> {
        let damaged = |reason: String| StoreError::Damaged { location: dir.display().to_string(), reason };
        // sled panics on some damage it finds while recovering; that is an answer too.
        let restore = |what: String| damaged(format!("{what}; restore it from a backup"));
        let opened = std::panic::catch_unwind(|| sled::Config::new().path(dir).open())
            .map_err(|panic| restore(format!("sled stopped reading it: {}", panic_message(&panic))))?;
        let db = opened.map_err(|error| match error {
            sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => {
                restore(format!("sled found it unreadable ({error})"))
            }
            // sled says its lock is held only in the text of an `Other` I/O error.
            sled::Error::Io(cause) if cause.to_string().contains("could not acquire lock") => {
                StoreError::Refused(format!(
                    "the database {} is in use by another process (a wasmhook server running on \
                     it?): stop the server first",
                    dir.display()
                ))
            }
            other => other.into(),
        })?;
        let meta = db.open_tree("meta")?;
        let found = match meta.get("schema_version")? {
            Some(v) => Some(u64::from_be_bytes(
                v.as_ref().try_into().map_err(|_| damaged("the schema version is unreadable".into()))?,
            )),
            None => None,
        };
        if let Some(found) = found.filter(|found| *found > SCHEMA_VERSION) {
            return Err(StoreError::NewerSchema {
                location: format!("the data directory {}", dir.display()),
                found,
                known: SCHEMA_VERSION,
            });
        }
        migrate::check_marker(dir, &meta)?;
        let queue = db.open_tree("queue")?;
        let events = db.open_tree("events")?;
        let deliveries = db.open_tree("deliveries")?;
        deliveries.set_merge_operator(record::merge);
        let mut groups = queue::Groups::default();
        let unclaimed = match load_queue {
            true => queue::load(&queue, &deliveries, &mut groups)?,
            false => VecDeque::new(),
        };
        let groups = Arc::new(Mutex::new(groups));
        let idempotency = db.open_tree("idempotency")?;
        let expiry = db.open_tree("expiry")?;
        let (ingest, ingest_task) = ingest::start(ingest::Trees {
            db: db.clone(),
            events: events.clone(),
            deliveries: deliveries.clone(),
            queue: queue.clone(),
            idempotency: idempotency.clone(),
            expiry: expiry.clone(),
            groups: groups.clone(),
        });
        let inner = Inner {
            path: dir.to_owned(),
            meta: meta.clone(),
            webhooks: db.open_tree("webhooks")?,
            users: db.open_tree("users")?,
            tokens: db.open_tree("tokens")?,
            events,
            deliveries,
            connectors: db.open_tree("connectors")?,
            dead_letters: db.open_tree("dead_letters")?,
            plugin_state: db.open_tree("plugin_state")?,
            plugin_state_writes: Mutex::new(()),
            connector_versions: db.open_tree("connector_versions")?,
            connector_components: db.open_tree("connector_components")?,
            connector_heads: db.open_tree("connector_heads")?,
            shadow_runs: db.open_tree("shadow_runs")?,
            idempotency,
            expiry,
            queue_depth: AtomicU64::new(unclaimed.len() as u64),
            unclaimed: Mutex::new(unclaimed),
            work_written: Notify::new(),
            queue,
            groups,
            commit: GroupCommit::start(db.clone()),
            ingest,
            ingest_task: Mutex::new(Some(ingest_task)),
            db,
        };
        let store = SledStore { inner: Arc::new(inner) };
        match found {
            Some(found) if found < SCHEMA_VERSION => migrate::upgrade(&store, found)?,
            _ => {}
        }
        meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
        Ok(store)
    }

    pub fn describe(&self) -> String {
        format!("sled {}", self.inner.path.display())
    }

    /// Waits until every write made so far is on disk.
    async fn durable(&self) -> Result<(), StoreError> {
        self.inner.commit.durable().await.map_err(StoreError::NotDurable)
    }

    /// Runs a scan on the blocking pool: it may read many records.
    async fn scan<T: Send + 'static>(
        &self,
        scan: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || scan(&inner))
            .await
            .map_err(|e| StoreError::Unavailable(format!("a storage scan stopped: {e}")))?
    }

    /// Flushes, then records a clean stop (a new generation, see `migrate`).
    pub async fn close(&self) -> Result<(), StoreError> {
        self.inner.db.flush_async().await?;
        migrate::next_generation(&self.inner.path, &self.inner.meta)
    }

    /// Closes the database, then waits until sled has let go of it (and of its lock) — for
    /// a process that goes on after it, as one that exported it does. Any clone still held
    /// keeps the database open.
    async fn close_and_release(self) -> Result<(), StoreError> {
        self.close().await?;
        let commit = self.inner.commit.clone();
        if Arc::strong_count(&self.inner) == 1 {
            let ingest = self.inner.ingest_task.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(self); // stops the flushing and ingest tasks
            commit.stopped().await;
            if let Some(ingest) = ingest {
                let _ = ingest.await;
            }
        }
        Ok(())
    }

    /// Queue entries that became durable: claimable, and the engine is woken.
    fn queued(&self, entries: impl IntoIterator<Item = QueueEntry>) {
        let mut unclaimed = self.inner.unclaimed.lock().unwrap_or_else(|p| p.into_inner());
        let before = unclaimed.len();
        unclaimed.extend(entries);
        if unclaimed.len() > before {
            self.inner.work_written.notify_one();
        }
    }

    // Webhooks.

    pub async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        self.inner.webhooks.insert(&webhook.id, encode(webhook))?;
        self.durable().await
    }

    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        self.inner.webhooks.get(id)?.map(|v| decode(&v)).transpose()
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let removed = self.inner.webhooks.remove(id)?.is_some();
        self.drop_plugin_states(id)?;
        self.durable().await?;
        Ok(removed)
    }

    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        self.scan(|inner| inner.webhooks.iter().values().map(|v| decode(&v?)).collect()).await
    }

    pub async fn webhooks_page(
        &self,
        owner: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Webhook>, StoreError> {
        let (owner, after) = (owner.map(str::to_owned), after.map(str::to_owned));
        self.scan(move |inner| {
            let range = match &after {
                Some(after) => inner.webhooks.range::<&[u8], _>((
                    std::ops::Bound::Excluded(after.as_bytes()),
                    std::ops::Bound::Unbounded,
                )),
                None => inner.webhooks.iter(),
            };
            let mut page = Vec::new();
            for value in range.values() {
                let webhook: Webhook = decode(&value?)?;
                if owner.as_ref().is_none_or(|owner| webhook.created_by_id == *owner) {
                    page.push(webhook);
                    if page.len() == limit {
                        break;
                    }
                }
            }
            Ok(page)
        })
        .await
    }

    pub async fn swap_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        let Some(old) = self.inner.webhooks.get(&webhook.id)? else { return Ok(false) };
        let stored: Webhook = decode(&old)?;
        if stored.revision != webhook.revision {
            return Ok(false);
        }
        let new = Webhook { revision: webhook.revision + 1, ..webhook.clone() };
        let swapped = self.inner.webhooks.compare_and_swap(&webhook.id, Some(old), Some(encode(&new)))?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.durable().await?;
        Ok(true)
    }

    // Users.

    pub async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.inner.users.insert(&user.id, encode(user))?;
        self.durable().await
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.inner.users.get(id)?.map(|v| decode(&v)).transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.scan(|inner| inner.users.iter().values().map(|v| decode(&v?)).collect()).await
    }

    // Tokens: `h/<hash>` → token, `i/<id>` → hash.

    pub async fn put_token(&self, hash: &[u8; 32], token: &Token) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert([b"h/".as_slice(), hash].concat(), encode(token));
        batch.insert(format!("i/{}", token.id).as_bytes(), hash.as_slice());
        self.inner.tokens.apply_batch(batch)?;
        self.durable().await
    }

    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Token>, StoreError> {
        self.inner.tokens.get([b"h/".as_slice(), hash].concat())?.map(|v| decode(&v)).transpose()
    }

    pub async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.scan(|inner| inner.tokens.scan_prefix(b"h/").values().map(|v| decode(&v?)).collect()).await
    }

    pub async fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        let Some(hash) = self.inner.tokens.remove(format!("i/{id}").as_bytes())? else { return Ok(false) };
        self.inner.tokens.remove([b"h/".as_slice(), &hash].concat())?;
        self.durable().await?;
        Ok(true)
    }

    // Uploaded connectors: name → component bytes.

    pub async fn put_connector(&self, name: &str, component: &[u8]) -> Result<(), StoreError> {
        self.inner.connectors.insert(name, component)?;
        self.durable().await
    }

    pub async fn delete_connector(&self, name: &str) -> Result<bool, StoreError> {
        let removed = self.inner.connectors.remove(name)?.is_some();
        self.durable().await?;
        Ok(removed)
    }

    pub async fn connectors(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.scan(|inner| {
            inner
                .connectors
                .iter()
                .map(|item| {
                    let (name, bytes) = item?;
                    Ok((String::from_utf8_lossy(&name).into_owned(), bytes.to_vec()))
                })
                .collect()
        })
        .await
    }

    // Dead letters of broker sources.

    pub async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        self.inner.dead_letters.insert(format!("{}\0{}", letter.source, letter.id), encode(letter))?;
        self.durable().await
    }

    pub async fn dead_letters(
        &self,
        source: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let prefix = format!("{source}\0");
        let end = format!("{prefix}{}", before.unwrap_or("\u{10ffff}"));
        let (start, end) = (prefix.clone().into_bytes(), end.into_bytes());
        self.scan(move |inner| {
            inner.dead_letters.range(start..end).rev().take(limit).map(|item| decode(&item?.1)).collect()
        })
        .await
    }

    // Events and deliveries.

    pub async fn accept(
        &self,
        batch: &[Accept],
        key: Option<&IdempotencyKey>,
        now_ms: u64,
    ) -> Result<Stored, StoreError> {
        let (stored, fresh) = ingest::accept(&self.inner.ingest, batch, key, now_ms).await?;
        self.inner.queue_depth.fetch_add(fresh.len() as u64, Ordering::Relaxed);
        self.queued(fresh);
        Ok(stored)
    }

    pub async fn event(&self, company_id: &str, id: &str) -> Result<Option<Event>, StoreError> {
        let record = match self.inner.events.get(event_key(company_id, id))? {
            Some(record) => Some(record),
            // Written before events were scoped per company.
            None => self.inner.events.get(id)?,
        };
        Ok(record.map(|v| decode::<EventRecord>(&v)).transpose()?.map(|r| r.event.into_owned()))
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        self.inner
            .deliveries
            .get(delivery_key(id))?
            .map(|v| record::delivery(&v).map_err(corrupt))
            .transpose()
    }

    pub async fn deliveries_of(
        &self,
        webhook_id: &str,
        query: &DeliveryQuery<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let prefix = format!("w/{webhook_id}/");
        let end = match query.before {
            Some(id) => by_webhook_key(webhook_id, id),
            None => format!("w/{webhook_id}0").into_bytes(),
        };
        let (statuses, since, limit) = (query.statuses.to_vec(), query.since, query.limit);
        self.scan(move |inner| {
            let query = DeliveryQuery { before: None, statuses: &statuses, since, limit };
            let range = inner.deliveries.range((
                std::ops::Bound::Included(prefix.clone().into_bytes()),
                std::ops::Bound::Excluded(end),
            ));
            let mut page = Vec::new();
            for key in range.keys().rev() {
                let key = key?;
                let id = std::str::from_utf8(&key[prefix.len()..])
                    .map_err(|_| StoreError::Corrupt("delivery index".into()))?;
                let Some(value) = inner.deliveries.get(delivery_key(id))? else { continue };
                let delivery = record::delivery(&value).map_err(corrupt)?;
                if query.since.is_some_and(|since| delivery.created_at < since) {
                    break; // ids are time-ordered (UUIDv7): everything after is older
                }
                if query.keeps(&delivery) {
                    page.push(delivery);
                    if page.len() == limit {
                        break;
                    }
                }
            }
            Ok(page)
        })
        .await
    }

    pub async fn attempts_of(&self, ids: &[String]) -> Result<Vec<Vec<Attempt>>, StoreError> {
        let ids = ids.to_vec();
        self.scan(move |inner| {
            ids.iter()
                .map(|id| match inner.deliveries.get(delivery_key(id))? {
                    Some(stored) => record::attempts(&stored).map_err(corrupt),
                    None => Ok(Vec::new()),
                })
                .collect()
        })
        .await
    }

    pub async fn requeue(&self, delivery: &Delivery, now_ms: u64) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let queued = (&inner.deliveries, &inner.queue)
            .transaction(|(deliveries, queue)| {
                let stored = deliveries.get(delivery_key(&delivery.id))?;
                let current = stored.as_deref().map(record::delivery).transpose();
                // A damaged record aborts the transaction.
                let current = current.map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                if current.is_some_and(|d| d.status == DeliveryStatus::Pending) {
                    return Ok(false);
                }
                // Its attempts so far stay with it.
                let update = record::update(Some(delivery), &[]);
                let merged = record::merge(&[], stored.as_deref(), &update).unwrap_or(update);
                deliveries.insert(delivery_key(&delivery.id), merged)?;
                queue.insert(queue::key(now_ms, &delivery.id), delivery.webhook_id.as_bytes())?;
                Ok(true)
            })
            .map_err(transaction_error)?;
        if queued {
            inner.queue_depth.fetch_add(1, Ordering::Relaxed);
            self.durable().await?;
            self.queued([QueueEntry::new(now_ms, &delivery.id, &delivery.webhook_id)]);
        }
        Ok(queued)
    }

    pub async fn prune(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        self.scan(move |inner| prune(inner, cutoff_ms)).await
    }

    pub async fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.size_on_disk()?)
    }

    // Changes: one process per database, so none come from elsewhere.

    pub async fn changes_cursor(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    pub async fn changes_since(&self, cursor: u64) -> Result<(Vec<super::Change>, u64), StoreError> {
        Ok((Vec::new(), cursor))
    }

    pub async fn wait_for_changes(&self) {
        std::future::pending().await
    }

    // The queue.

    pub fn queue_depth(&self) -> u64 {
        self.inner.queue_depth.load(Ordering::Relaxed)
    }

    pub async fn claim(&self, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
        let mut unclaimed = self.inner.unclaimed.lock().unwrap_or_else(|p| p.into_inner());
        let take = limit.min(unclaimed.len());
        Ok(unclaimed.drain(..take).collect())
    }

    /// One host: it owns every lane, and never gives one up.
    pub async fn lanes_to_release(&self) -> Vec<String> {
        Vec::new()
    }

    pub async fn release_lane(&self, _webhook_id: &str) -> Result<(), StoreError> {
        Ok(())
    }

    pub async fn wait_for_work(&self) {
        let more = !self.inner.unclaimed.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        if !more {
            self.inner.work_written.notified().await;
        }
    }

    /// Deliberately not a transaction: a sled transaction seals and syncs a log buffer on every
    /// commit, which would cost two disk syncs per delivery. The writes go to sled's log in
    /// this order instead, and a crash between them only means the delivery is worked again:
    /// the delivery's state with its new attempts first (one merge, `record.rs`); the queue
    /// entry moved or removed last (a grouped delivery leaves its group, `queue.rs`), so a
    /// delivery never leaves the queue before its final state is written (a queue entry whose
    /// delivery is already final is dropped when it comes up).
    pub async fn finish(
        &self,
        entry: &QueueEntry,
        delivery: Option<&Delivery>,
        next_due: Option<u64>,
        attempts: &[Attempt],
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        if delivery.is_some() || !attempts.is_empty() {
            inner.deliveries.merge(delivery_key(&entry.delivery_id), record::update(delivery, attempts))?;
        }
        if next_due == Some(entry.stored_due_ms) {
            return Ok(()); // stays where it is
        }
        if let Some(due) = next_due {
            inner.queue.insert(queue::key(due, &entry.delivery_id), entry.webhook_id.as_bytes())?;
            inner.queue_depth.fetch_add(1, Ordering::Relaxed);
        }
        let leaving = inner.groups.lock().unwrap_or_else(|p| p.into_inner()).leave(&entry.delivery_id);
        let removed = match leaving {
            queue::Leaving::Ungrouped => {
                inner.queue.remove(queue::key(entry.stored_due_ms, &entry.delivery_id))?.is_some()
            }
            queue::Leaving::Stays => true,
            queue::Leaving::Last(group) => inner.queue.remove(group).map(|_| true)?,
        };
        if removed {
            inner.queue_depth.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn prune(inner: &Inner, cutoff_ms: u64) -> Result<usize, StoreError> {
    let mut removed = 0;
    for item in inner.expiry.range(..expiry::before(cutoff_ms).as_slice()) {
        let (key, value) = item?;
        match expiry::read(&key, &value)?.1 {
            Expiring::Events(events) => {
                for event in events {
                    inner.events.remove(event)?;
                    removed += 1;
                }
            }
            Expiring::Key(scoped) => {
                inner.idempotency.remove(scoped)?;
                removed += 1;
            }
        }
        inner.expiry.remove(&key)?;
    }
    for item in inner.deliveries.scan_prefix(b"d/") {
        let (key, value) = item?;
        let delivery = record::delivery(&value).map_err(corrupt)?;
        let created_ms = super::millis(delivery.created_at);
        if created_ms >= cutoff_ms {
            break; // ids are time-ordered (UUIDv7): everything after is younger
        }
        if delivery.status == DeliveryStatus::Pending {
            continue;
        }
        inner.deliveries.remove(&key)?;
        inner.deliveries.remove(by_webhook_key(&delivery.webhook_id, &delivery.id))?;
        removed += 1;
    }
    for item in inner.dead_letters.iter() {
        let (key, value) = item?;
        let letter: DeadLetter = decode(&value)?;
        if super::millis(letter.at) < cutoff_ms {
            inner.dead_letters.remove(key)?;
            removed += 1;
        }
    }
    for item in inner.shadow_runs.iter() {
        let (key, value) = item?;
        let run: crate::domain::connector_version::ShadowRun = decode(&value)?;
        if super::millis(run.at) < cutoff_ms {
            inner.shadow_runs.remove(key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The text of a caught panic.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("sled stopped while reading it")
        .to_owned()
}
