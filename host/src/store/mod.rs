//! Storage: sled trees behind a narrow, typed interface.
//!
//! Trees: `webhooks`, `tokens`, `events`, `deliveries`, `queue` (keyed by due time),
//! `attempts`, `connectors`, `idempotency` and `meta` (the schema version). Records are
//! JSON. Ingest writes an event, its deliveries and their queue entries in one transaction,
//! then waits for a group commit before it answers. Kept narrow so that a second backend
//! (PostgreSQL, for several nodes) can stand behind the same interface.

mod commit;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::access::Token;
use crate::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::event::Event;
use crate::webhook::Webhook;

use self::commit::GroupCommit;

/// The layout this version writes. Bump with a migration when records change shape.
const SCHEMA_VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "the data directory {path} was written by a newer wasmhook (schema {found}, this one knows {SCHEMA_VERSION})"
    )]
    NewerSchema { path: PathBuf, found: u64 },
    #[error("a stored record is damaged: {0}")]
    Corrupt(String),
    #[error("storage could not make the write durable: {0}")]
    NotDurable(String),
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

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    webhooks: sled::Tree,
    tokens: sled::Tree,
    events: sled::Tree,
    deliveries: sled::Tree,
    queue: sled::Tree,
    attempts: sled::Tree,
    connectors: sled::Tree,
    idempotency: sled::Tree,
    /// `<accepted ms BE>e<event id>` and `<accepted ms BE>k<idempotency key>`: what to prune when.
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
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            Some(v) => {
                let found = u64::from_be_bytes(
                    v.as_ref().try_into().map_err(|_| StoreError::Corrupt("schema version".into()))?,
                );
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path: dir.to_owned(), found });
                }
            }
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        let queue = db.open_tree("queue")?;
        let inner = Inner {
            webhooks: db.open_tree("webhooks")?,
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
        Ok(Store { inner: Arc::new(inner) })
    }

    /// Waits until every write made so far is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.inner.commit.durable().await.map_err(StoreError::NotDurable)
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

    /// The answer stored under an `Idempotency-Key`, if that key was used before.
    pub fn idempotent_response(&self, key: &str) -> Result<Option<Value>, StoreError> {
        self.inner.idempotency.get(key)?.map(|v| decode(&v)).transpose()
    }

    /// Stores events with their deliveries and queue entries, all or nothing, skipping
    /// events whose id was seen before. `answer` turns the outcomes into the request's
    /// answer, which is returned and, under an `Idempotency-Key`, stored in the same
    /// transaction. Not yet durable: call [`Store::durable`] before answering.
    pub fn accept(
        &self,
        batch: &[Accept],
        idempotency_key: Option<&str>,
        answer: impl Fn(&[Accepted]) -> Value,
        now_ms: u64,
    ) -> Result<Value, StoreError> {
        let inner = &self.inner;
        let trees = (&inner.events, &inner.deliveries, &inner.queue, &inner.idempotency, &inner.expiry);
        let result = trees.transaction(|(events, deliveries, queue, keys, expiry)| {
            let mut outcomes = Vec::with_capacity(batch.len());
            let mut queued = 0u64;
            for accept in batch {
                if let Some(seen) = events.get(&accept.event.id)? {
                    let record: EventRecord = serde_json::from_slice(&seen)
                        .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                    outcomes.push(Accepted::Duplicate(record.response));
                    continue;
                }
                let record = EventRecord { event: accept.event.clone(), response: accept.response.clone() };
                events.insert(accept.event.id.as_bytes(), encode(&record))?;
                expiry.insert([&now_ms.to_be_bytes()[..], b"e", accept.event.id.as_bytes()].concat(), &[])?;
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
                keys.insert(key.as_bytes(), encode(&answer))?;
                expiry.insert([&now_ms.to_be_bytes()[..], b"k", key.as_bytes()].concat(), &[])?;
            }
            Ok((answer, queued))
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

    /// Changes a webhook atomically; `change` says whether it changed anything. Returns the
    /// new webhook when it did.
    pub fn update_webhook(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Webhook) -> bool,
    ) -> Result<Option<Webhook>, StoreError> {
        loop {
            let Some(old) = self.inner.webhooks.get(id)? else { return Ok(None) };
            let mut webhook: Webhook = decode(&old)?;
            if !change(&mut webhook) {
                return Ok(None);
            }
            let swapped = self.inner.webhooks.compare_and_swap(id, Some(old), Some(encode(&webhook)))?;
            if swapped.is_ok() {
                return Ok(Some(webhook));
            }
        }
    }

    pub fn event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        Ok(self.inner.events.get(id)?.map(|v| decode::<EventRecord>(&v)).transpose()?.map(|r| r.event))
    }
}
