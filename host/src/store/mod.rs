//! Storage: sled trees behind a narrow, typed interface.
//!
//! Trees: `webhooks`, `users`, `tokens`, `events` (by company and id), `deliveries`,
//! `queue` (keyed by due time), `attempts`, `connectors`, `idempotency` (by token and key)
//! and `meta` (the schema version and the database's id). Records are JSON. Ingest writes an
//! event, its deliveries and their queue entries in one transaction — the idempotency check
//! included — then waits for a group commit before it answers. Kept narrow so that a second
//! backend (PostgreSQL, for several nodes) can stand behind the same interface.
//!
//! A marker file beside the database (`<db>.id`) holds the id written into `meta` when the
//! database was created: a database that lost its files (truncated, replaced by an empty one)
//! is then refused at start instead of starting empty.

mod commit;
mod migrate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::access::{Token, User};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::webhook::Webhook;

use self::commit::GroupCommit;

/// The layout this version writes. Bump with a migration when records change shape.
const SCHEMA_VERSION: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Storage cannot take or give data right now (a full or failing disk): try again later.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "the data directory {path} was written by a newer wasmhook (schema {found}, this one knows {SCHEMA_VERSION})"
    )]
    NewerSchema { path: PathBuf, found: u64 },
    #[error("a stored record is damaged: {0}")]
    Corrupt(String),
    #[error("the database in {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("storage could not make the write durable: {0}")]
    NotDurable(String),
}

/// Backend errors in words the rest of the host can act on: nothing outside `store/` names
/// the backend.
impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(cause) => StoreError::Unavailable(cause.to_string()),
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

/// One event to accept, with the deliveries it makes and the answer to give for it.
pub struct Accept {
    pub event: Event,
    pub deliveries: Vec<Delivery>,
    pub response: Value,
}

/// What became of an event given to [`Store::accept`].
pub enum Accepted {
    New,
    /// Seen before: the answer given the first time.
    Duplicate(Value),
}

/// An `Idempotency-Key` as ingest checks it: scoped to the token that sent it, bound to the
/// endpoint and the body it was first used with.
pub struct IdempotencyKey {
    /// `<token id>\0<key>`.
    pub scoped: String,
    pub endpoint: &'static str,
    pub body_hash: String,
}

/// What [`Store::accept`] did.
pub enum Stored {
    /// Stored (some events may have been duplicates): the answer.
    Answer(Value),
    /// The key was used before with this endpoint and body: the first answer, nothing stored.
    Replay(Value),
    /// The key was used before with another endpoint or body: why; nothing stored.
    KeyConflict(String),
}

#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdempotencyRecord {
    endpoint: String,
    body_hash: String,
    response: Value,
}

#[derive(Clone)]
pub struct Store {
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
    attempts: sled::Tree,
    connectors: sled::Tree,
    idempotency: sled::Tree,
    /// `<accepted ms BE>e<event key>` and `<accepted ms BE>k<scoped key>`: what to prune when.
    expiry: sled::Tree,
    queue_depth: AtomicU64,
    commit: Arc<GroupCommit>,
}

#[derive(Serialize, serde::Deserialize)]
struct EventRecord {
    event: Event,
    response: Value,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Milliseconds since the Unix epoch: the time of queue keys and expiry.
pub fn millis(at: time::OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The current time in [`millis`].
pub fn now_ms() -> u64 {
    millis(time::OffsetDateTime::now_utc())
}

/// Events are deduplicated per company: another tenant's id never collides with this one's.
fn event_key(company_id: &str, event_id: &str) -> Vec<u8> {
    [company_id.as_bytes(), b"\0", event_id.as_bytes()].concat()
}

/// Queue keys sort by due time: milliseconds since the epoch, big-endian, then the id.
/// The value is the webhook's id, so the engine can cap work per webhook without a read.
fn queue_key(due_ms: u64, delivery_id: &str) -> Vec<u8> {
    [&due_ms.to_be_bytes()[..], delivery_id.as_bytes()].concat()
}

/// Deliveries are stored under `d/<id>`, and indexed by webhook under `w/<webhook>/<id>`.
fn delivery_key(id: &str) -> Vec<u8> {
    format!("d/{id}").into_bytes()
}

fn by_webhook_key(webhook_id: &str, delivery_id: &str) -> Vec<u8> {
    format!("w/{webhook_id}/{delivery_id}").into_bytes()
}

/// A delivery waiting in the queue.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    key: Vec<u8>,
    pub delivery_id: String,
    pub webhook_id: String,
    pub due_ms: u64,
}

impl QueueEntry {
    pub fn new(due_ms: u64, delivery_id: &str, webhook_id: &str) -> Self {
        QueueEntry {
            key: queue_key(due_ms, delivery_id),
            delivery_id: delivery_id.to_owned(),
            webhook_id: webhook_id.to_owned(),
            due_ms,
        }
    }

    fn read(key: &[u8], value: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("queue entry".into());
        let (due, id) = key.split_at_checked(8).ok_or_else(corrupt)?;
        Ok(QueueEntry {
            key: key.to_vec(),
            delivery_id: String::from_utf8(id.to_vec()).map_err(|_| corrupt())?,
            webhook_id: String::from_utf8(value.to_vec()).map_err(|_| corrupt())?,
            due_ms: u64::from_be_bytes(due.try_into().map_err(|_| corrupt())?),
        })
    }
}

impl Store {
    /// Opens (or creates) the database in `dir`. Needs a tokio runtime (for group commit).
    /// A damaged database is an error naming it, never a panic or an empty start.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let damaged = |reason: String| StoreError::Damaged { path: dir.to_owned(), reason };
        // sled panics on some damage it finds while recovering; that is an answer too.
        let restore = |what: String| damaged(format!("{what}; restore it from a backup"));
        let opened = std::panic::catch_unwind(|| sled::Config::new().path(dir).open())
            .map_err(|panic| restore(format!("sled stopped reading it: {}", panic_message(&panic))))?;
        let db = opened.map_err(|error| match error {
            sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => {
                restore(format!("sled found it unreadable ({error})"))
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
            return Err(StoreError::NewerSchema { path: dir.to_owned(), found });
        }
        migrate::check_marker(dir, &meta)?;
        let queue = db.open_tree("queue")?;
        let inner = Inner {
            path: dir.to_owned(),
            meta: meta.clone(),
            webhooks: db.open_tree("webhooks")?,
            users: db.open_tree("users")?,
            tokens: db.open_tree("tokens")?,
            events: db.open_tree("events")?,
            deliveries: db.open_tree("deliveries")?,
            attempts: db.open_tree("attempts")?,
            connectors: db.open_tree("connectors")?,
            idempotency: db.open_tree("idempotency")?,
            expiry: db.open_tree("expiry")?,
            queue_depth: AtomicU64::new(queue.len() as u64),
            queue,
            commit: GroupCommit::start(db.clone()),
            db,
        };
        let store = Store { inner: Arc::new(inner) };
        match found {
            Some(found) if found < SCHEMA_VERSION => migrate::upgrade(&store, found)?,
            _ => {}
        }
        meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
        Ok(store)
    }

    /// Waits until every write made so far is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.inner.commit.durable().await.map_err(StoreError::NotDurable)
    }

    /// Records a clean stop (a new generation, see `migrate`), after a final flush.
    pub fn close_cleanly(&self) -> Result<(), StoreError> {
        migrate::next_generation(&self.inner.path, &self.inner.meta)
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush_async().await?;
        Ok(())
    }

    // Webhooks.

    pub fn put_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        self.inner.webhooks.insert(&webhook.id, encode(webhook))?;
        Ok(())
    }

    pub fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        self.inner.webhooks.get(id)?.map(|v| decode(&v)).transpose()
    }

    pub fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.inner.webhooks.remove(id)?.is_some())
    }

    /// Every webhook (to build the match index at start).
    pub fn all_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        self.inner.webhooks.iter().values().map(|v| decode(&v?)).collect()
    }

    /// A page of webhooks by id, after `after`, those of `owner` only when given.
    pub fn list_webhooks(
        &self,
        owner: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Webhook>, StoreError> {
        let range = match after {
            Some(after) => self
                .inner
                .webhooks
                .range::<&[u8], _>((std::ops::Bound::Excluded(after.as_bytes()), std::ops::Bound::Unbounded)),
            None => self.inner.webhooks.iter(),
        };
        let mut page = Vec::new();
        for value in range.values() {
            let webhook: Webhook = decode(&value?)?;
            if owner.is_none_or(|owner| webhook.created_by_id == owner) {
                page.push(webhook);
                if page.len() == limit {
                    break;
                }
            }
        }
        Ok(page)
    }

    // Users: id → the companies they may see.

    pub fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.inner.users.insert(&user.id, encode(user))?;
        Ok(())
    }

    pub fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.inner.users.get(id)?.map(|v| decode(&v)).transpose()
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.users.iter().values().map(|v| decode(&v?)).collect()
    }

    // Tokens: `h/<hash>` → token, `i/<id>` → hash.

    pub fn put_token(&self, hash: &[u8; 32], token: &Token) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert([b"h/".as_slice(), hash].concat(), encode(token));
        batch.insert(format!("i/{}", token.id).as_bytes(), hash.as_slice());
        self.inner.tokens.apply_batch(batch)?;
        Ok(())
    }

    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Token>, StoreError> {
        self.inner.tokens.get([b"h/".as_slice(), hash].concat())?.map(|v| decode(&v)).transpose()
    }

    pub fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.inner.tokens.scan_prefix(b"h/").values().map(|v| decode(&v?)).collect()
    }

    pub fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        let Some(hash) = self.inner.tokens.remove(format!("i/{id}").as_bytes())? else { return Ok(false) };
        self.inner.tokens.remove([b"h/".as_slice(), &hash].concat())?;
        Ok(true)
    }

    // Uploaded connectors: name → component bytes.

    pub fn put_connector(&self, name: &str, component: &[u8]) -> Result<(), StoreError> {
        self.inner.connectors.insert(name, component)?;
        Ok(())
    }

    pub fn delete_connector(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.inner.connectors.remove(name)?.is_some())
    }

    pub fn connectors(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner
            .connectors
            .iter()
            .map(|item| {
                let (name, bytes) = item?;
                Ok((String::from_utf8_lossy(&name).into_owned(), bytes.to_vec()))
            })
            .collect()
    }

    // Events.

    /// Deliveries waiting in the queue.
    pub fn queue_depth(&self) -> u64 {
        self.inner.queue_depth.load(Ordering::Relaxed)
    }

    /// Stores events with their deliveries and queue entries, all or nothing, skipping
    /// events whose id was seen before in their company. `answer` turns the outcomes into the
    /// request's answer, which is returned and, under an `Idempotency-Key`, stored in the same
    /// transaction that checks the key — so two requests racing with one key store once.
    /// Not yet durable: call [`Store::durable`] before answering.
    pub fn accept(
        &self,
        batch: &[Accept],
        idempotency_key: Option<&IdempotencyKey>,
        answer: impl Fn(&[Accepted]) -> Value,
        now_ms: u64,
    ) -> Result<Stored, StoreError> {
        let inner = &self.inner;
        let trees = (&inner.events, &inner.deliveries, &inner.queue, &inner.idempotency, &inner.expiry);
        let result = trees.transaction(|(events, deliveries, queue, keys, expiry)| {
            if let Some(key) = idempotency_key
                && let Some(seen) = keys.get(key.scoped.as_bytes())?
            {
                let seen: IdempotencyRecord = serde_json::from_slice(&seen)
                    .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                let stored = if seen.endpoint != key.endpoint {
                    Stored::KeyConflict(format!(
                        "this Idempotency-Key was used on {}; use a new key for this request",
                        seen.endpoint
                    ))
                } else if seen.body_hash != key.body_hash {
                    Stored::KeyConflict(
                        "this Idempotency-Key was used with a different body; use a new key for a new request"
                            .into(),
                    )
                } else {
                    Stored::Replay(seen.response)
                };
                return Ok((stored, 0));
            }
            let mut outcomes = Vec::with_capacity(batch.len());
            let mut queued = 0u64;
            for accept in batch {
                let key = event_key(&accept.event.company_id, &accept.event.id);
                if let Some(seen) = events.get(&key)? {
                    let record: EventRecord = serde_json::from_slice(&seen)
                        .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                    outcomes.push(Accepted::Duplicate(record.response));
                    continue;
                }
                let record = EventRecord { event: accept.event.clone(), response: accept.response.clone() };
                events.insert(key.as_slice(), encode(&record))?;
                expiry.insert([&now_ms.to_be_bytes()[..], b"e", &key].concat(), &[])?;
                for delivery in &accept.deliveries {
                    deliveries.insert(delivery_key(&delivery.id), encode(delivery))?;
                    deliveries.insert(by_webhook_key(&delivery.webhook_id, &delivery.id), &[])?;
                    if delivery.status == DeliveryStatus::Pending {
                        queue.insert(queue_key(now_ms, &delivery.id), delivery.webhook_id.as_bytes())?;
                        queued += 1;
                    }
                }
                outcomes.push(Accepted::New);
            }
            let answer = answer(&outcomes);
            if let Some(key) = idempotency_key {
                let record = IdempotencyRecord {
                    endpoint: key.endpoint.to_owned(),
                    body_hash: key.body_hash.clone(),
                    response: answer.clone(),
                };
                keys.insert(key.scoped.as_bytes(), encode(&record))?;
                expiry.insert([&now_ms.to_be_bytes()[..], b"k", key.scoped.as_bytes()].concat(), &[])?;
            }
            Ok((Stored::Answer(answer), queued))
        });
        match result {
            Ok((answer, queued)) => {
                inner.queue_depth.fetch_add(queued, Ordering::Relaxed);
                Ok(answer)
            }
            Err(TransactionError::Abort(message)) => Err(StoreError::Corrupt(message)),
            Err(TransactionError::Storage(error)) => Err(error.into()),
        }
    }

    pub fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        self.inner.deliveries.get(delivery_key(id))?.map(|v| decode(&v)).transpose()
    }

    /// A webhook's deliveries, newest first, before the `before` delivery id.
    pub fn deliveries_of(
        &self,
        webhook_id: &str,
        before: Option<&str>,
        mut keep: impl FnMut(&Delivery) -> bool,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let prefix = format!("w/{webhook_id}/");
        let end = match before {
            Some(id) => std::ops::Bound::Excluded(by_webhook_key(webhook_id, id)),
            None => std::ops::Bound::Excluded(format!("w/{webhook_id}0").into_bytes()),
        };
        let range =
            self.inner.deliveries.range((std::ops::Bound::Included(prefix.clone().into_bytes()), end));
        let mut page = Vec::new();
        for key in range.keys().rev() {
            let key = key?;
            let id = std::str::from_utf8(&key[prefix.len()..])
                .map_err(|_| StoreError::Corrupt("delivery index".into()))?;
            let Some(delivery) = self.delivery(id)? else { continue };
            if keep(&delivery) {
                page.push(delivery);
                if page.len() == limit {
                    break;
                }
            }
        }
        Ok(page)
    }

    /// Every attempt of a delivery, oldest first.
    pub fn attempts_of(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
        self.inner.attempts.scan_prefix(format!("{delivery_id}/")).values().map(|v| decode(&v?)).collect()
    }

    // The queue.

    /// Every queued entry (read once, when the engine starts).
    pub fn queued(&self) -> Result<Vec<QueueEntry>, StoreError> {
        self.inner
            .queue
            .iter()
            .map(|item| item.map_err(StoreError::from).and_then(|(k, v)| QueueEntry::read(&k, &v)))
            .collect()
    }

    /// Records a turn of a delivery: its attempts, its new state, and its queue entry moved
    /// to `next_due` or removed.
    ///
    /// Deliberately not a transaction: a sled transaction seals and syncs a log buffer on every
    /// commit, which would cost two disk syncs per delivery. The writes go to sled's log in
    /// this order instead, and a crash between any two of them only means the delivery is
    /// worked again: attempts are logged first; the delivery's state next; the queue entry is
    /// removed last, so a delivery never leaves the queue before its final state is written
    /// (a queue entry whose delivery is already final is dropped when it comes up).
    pub fn finish(
        &self,
        entry: &QueueEntry,
        delivery: Option<&Delivery>,
        next_due: Option<u64>,
        attempts: &[Attempt],
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        for attempt in attempts {
            let nanos = attempt.at.unix_timestamp_nanos();
            let key = format!("{}/{nanos:032}/{}", entry.delivery_id, attempt.message_id);
            inner.attempts.insert(key.as_bytes(), encode(attempt))?;
        }
        if let Some(delivery) = delivery {
            inner.deliveries.insert(delivery_key(&delivery.id), encode(delivery))?;
        }
        let next_key = next_due.map(|due| queue_key(due, &entry.delivery_id));
        if next_key.as_deref() == Some(entry.key.as_slice()) {
            return Ok(()); // stays where it is
        }
        if let Some(key) = &next_key {
            inner.queue.insert(key.as_slice(), entry.webhook_id.as_bytes())?;
            inner.queue_depth.fetch_add(1, Ordering::Relaxed);
        }
        if inner.queue.remove(entry.key.as_slice())?.is_some() {
            inner.queue_depth.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Puts a finished or paused delivery back in the queue, due now, in its new state.
    /// `false` if it was queued already.
    pub fn requeue(&self, delivery: &Delivery, now_ms: u64) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let result = (&inner.deliveries, &inner.queue).transaction(|(deliveries, queue)| {
            let current: Option<Delivery> = deliveries
                .get(delivery_key(&delivery.id))?
                .map(|v| serde_json::from_slice(&v))
                .transpose()
                .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
            if current.is_some_and(|d| d.status == DeliveryStatus::Pending) {
                return Ok(false);
            }
            deliveries.insert(delivery_key(&delivery.id), encode(delivery))?;
            queue.insert(queue_key(now_ms, &delivery.id), delivery.webhook_id.as_bytes())?;
            Ok(true)
        });
        match result {
            Ok(queued) => {
                if queued {
                    inner.queue_depth.fetch_add(1, Ordering::Relaxed);
                }
                Ok(queued)
            }
            Err(TransactionError::Abort(message)) => Err(StoreError::Corrupt(message)),
            Err(TransactionError::Storage(error)) => Err(error.into()),
        }
    }

    /// Deletes events, idempotency keys, finished deliveries and their attempts accepted
    /// before `cutoff_ms`; queued deliveries are kept whatever their age. Returns how many
    /// records went. Works in small steps, so ingest is never held up for long.
    pub fn prune(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let mut removed = 0;
        for item in inner.expiry.range(..cutoff_ms.to_be_bytes().as_slice()) {
            let (key, _) = item?;
            let (kind, id) = (key.get(8), key.get(9..).unwrap_or_default());
            match kind {
                Some(b'e') => inner.events.remove(id)?,
                _ => inner.idempotency.remove(id)?,
            };
            inner.expiry.remove(&key)?;
            removed += 1;
        }
        for item in inner.deliveries.scan_prefix(b"d/") {
            let (key, value) = item?;
            let delivery: Delivery = decode(&value)?;
            let created_ms = millis(delivery.created_at);
            if created_ms >= cutoff_ms {
                break; // ids are time-ordered (UUIDv7): everything after is younger
            }
            if delivery.status == DeliveryStatus::Pending {
                continue;
            }
            inner.deliveries.remove(&key)?;
            inner.deliveries.remove(by_webhook_key(&delivery.webhook_id, &delivery.id))?;
            for attempt in inner.attempts.scan_prefix(format!("{}/", delivery.id)).keys() {
                inner.attempts.remove(attempt?)?;
                removed += 1;
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.size_on_disk()?)
    }

    /// Changes a webhook atomically (compare-and-swap: `change` runs again on the newer
    /// record when another writer got there first, so neither undoes the other). `change`
    /// says whether it changed anything; the new webhook is returned when it did.
    pub fn update_webhook<E: From<StoreError>>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Webhook) -> Result<bool, E>,
    ) -> Result<Option<Webhook>, E> {
        loop {
            let Some(old) = self.inner.webhooks.get(id).map_err(StoreError::from)? else { return Ok(None) };
            let mut webhook: Webhook = decode(&old)?;
            if !change(&mut webhook)? {
                return Ok(None);
            }
            let swapped = self
                .inner
                .webhooks
                .compare_and_swap(id, Some(old), Some(encode(&webhook)))
                .map_err(StoreError::from)?;
            if swapped.is_ok() {
                return Ok(Some(webhook));
            }
        }
    }

    /// An event by its company and id. `Err(Corrupt)` when it is stored but unreadable,
    /// `Ok(None)` when it is gone (pruned).
    pub fn event(&self, company_id: &str, id: &str) -> Result<Option<Event>, StoreError> {
        let record = match self.inner.events.get(event_key(company_id, id))? {
            Some(record) => Some(record),
            // Written before events were scoped per company.
            None => self.inner.events.get(id)?,
        };
        Ok(record.map(|v| decode::<EventRecord>(&v)).transpose()?.map(|r| r.event))
    }
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
