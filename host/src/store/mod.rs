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
use crate::delivery::Delivery;
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
    idempotency: sled::Tree,
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

/// Queue keys sort by due time: milliseconds since the epoch, big-endian, then the id.
fn queue_key(due_ms: u64, delivery_id: &str) -> Vec<u8> {
    [&due_ms.to_be_bytes()[..], delivery_id.as_bytes()].concat()
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
        for tree in ["attempts", "connectors"] {
            db.open_tree(tree)?;
        }
        let queue = db.open_tree("queue")?;
        let inner = Inner {
            webhooks: db.open_tree("webhooks")?,
            tokens: db.open_tree("tokens")?,
            events: db.open_tree("events")?,
            deliveries: db.open_tree("deliveries")?,
            idempotency: db.open_tree("idempotency")?,
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
        let trees = (&inner.events, &inner.deliveries, &inner.queue, &inner.idempotency);
        let result = trees.transaction(|(events, deliveries, queue, keys)| {
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
                for delivery in &accept.deliveries {
                    deliveries.insert(delivery.id.as_bytes(), encode(delivery))?;
                    queue.insert(queue_key(now_ms, &delivery.id), delivery.id.as_bytes())?;
                    queued += 1;
                }
                outcomes.push(Accepted::New);
            }
            let answer = answer(&outcomes);
            if let Some(key) = idempotency_key {
                keys.insert(key.as_bytes(), encode(&answer))?;
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
        self.inner.deliveries.get(id)?.map(|v| decode(&v)).transpose()
    }

    pub fn event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        Ok(self.inner.events.get(id)?.map(|v| decode::<EventRecord>(&v)).transpose()?.map(|r| r.event))
    }
}
