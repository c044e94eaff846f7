//! Ingest by group commit: concurrent [`SledStore::accept`](super::SledStore::accept) calls
//! are written by one task in ONE sled transaction per group, then one flush, and each call
//! hears its own answer. A sled transaction seals a log buffer and hands it to sled's I/O
//! threads on every commit: a transaction per call cost a buffer write and a thread wake-up
//! per event, which is where most of the server's time went under load.
//!
//! Records are encoded by the callers, on their own tasks. Within a group the calls run in
//! arrival order inside the transaction, each seeing the ones before (an event or an
//! `Idempotency-Key` repeated in one group answers as a duplicate or a replay, as if the
//! calls had run one after the other). A group that fails for its data (an unreadable stored
//! record) is written again call by call, so one bad call fails alone.

use serde_json::Value;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{
    EventRecord, IdempotencyRecord, decode_in_tx, delivery_key, encode, event_key, queue_key,
    transaction_error,
};
use crate::domain::delivery::DeliveryStatus;
use crate::store::group::{Grouping, Groups};
use crate::store::{Accept, IdempotencyKey, Outcome, QueueEntry, StoreError, Stored};

/// Events in one group at most: bounds a transaction's size.
const GROUP_EVENTS: usize = 2000;

/// An accept call, encoded.
pub(super) struct Prepared {
    events: Vec<EventRow>,
    key: Option<KeyRow>,
    now_ms: u64,
}

struct EventRow {
    key: Vec<u8>,
    /// The encoded [`EventRecord`].
    record: Vec<u8>,
    response: Value,
    deliveries: Vec<DeliveryRow>,
}

struct DeliveryRow {
    id: String,
    webhook_id: String,
    record: Vec<u8>,
    queued: bool,
}

struct KeyRow {
    scoped: Vec<u8>,
    endpoint: String,
    body_hash: String,
}

impl Prepared {
    fn new(batch: &[Accept], key: Option<&IdempotencyKey>, now_ms: u64) -> Prepared {
        let events = batch
            .iter()
            .map(|accept| EventRow {
                key: event_key(&accept.event.company_id, &accept.event.id),
                record: encode(&EventRecord {
                    event: accept.event.clone(),
                    response: accept.response.clone(),
                }),
                response: accept.response.clone(),
                deliveries: accept
                    .deliveries
                    .iter()
                    .map(|delivery| DeliveryRow {
                        id: delivery.id.clone(),
                        webhook_id: delivery.webhook_id.clone(),
                        record: encode(delivery),
                        queued: delivery.status == DeliveryStatus::Pending,
                    })
                    .collect(),
            })
            .collect();
        let key = key.map(|key| KeyRow {
            scoped: key.scoped.as_bytes().to_vec(),
            endpoint: key.endpoint.to_owned(),
            body_hash: key.body_hash.clone(),
        });
        Prepared { events, key, now_ms }
    }
}

/// What a call stored, and the queue entries it wrote (claimable once durable).
pub(super) type Written = (Stored, Vec<QueueEntry>);

type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// Hands calls to the group-commit task.
pub(super) type Sender = Groups<(Prepared, Reply)>;

/// The trees ingest writes, and the database to flush.
pub(super) struct Trees {
    pub(super) db: sled::Db,
    pub(super) events: sled::Tree,
    pub(super) deliveries: sled::Tree,
    pub(super) queue: sled::Tree,
    pub(super) idempotency: sled::Tree,
    pub(super) expiry: sled::Tree,
}

pub(super) fn start(trees: Trees) -> (Sender, JoinHandle<()>) {
    Groups::start(Ingest(std::sync::Arc::new(trees)))
}

/// Writes `batch` (with its `key`) and returns once it is durable.
pub(super) async fn accept(
    sender: &Sender,
    batch: &[Accept],
    key: Option<&IdempotencyKey>,
    now_ms: u64,
) -> Result<Written, StoreError> {
    let closed = || StoreError::Unavailable("storage is closed".into());
    let (reply, written) = oneshot::channel();
    sender.send((Prepared::new(batch, key, now_ms), reply)).map_err(|_| closed())?;
    written.await.map_err(|_| closed())?
}

struct Ingest(std::sync::Arc<Trees>);

impl Grouping for Ingest {
    type Item = (Prepared, Reply);
    const MAX_WEIGHT: usize = GROUP_EVENTS;

    fn weight((call, _): &Self::Item) -> usize {
        call.events.len().max(1)
    }

    async fn write(&self, group: Vec<Self::Item>) {
        let trees = self.0.clone();
        let (calls, replies): (Vec<Prepared>, Vec<Reply>) = group.into_iter().unzip();
        let count = calls.len();
        // sled blocks: a transaction and a flush are no work for the runtime's threads.
        let written = tokio::task::spawn_blocking(move || write_and_flush(&trees, &calls))
            .await
            .unwrap_or_else(|stopped| {
                let error = StoreError::Unavailable(format!("ingest stopped: {stopped}"));
                (0..count).map(|_| Err(error.clone())).collect()
            });
        for (reply, answer) in replies.into_iter().zip(written) {
            let _ = reply.send(answer);
        }
    }
}

/// Writes the group in one transaction, then flushes: each call's answer, in order.
fn write_and_flush(trees: &Trees, calls: &[Prepared]) -> Vec<Result<Written, StoreError>> {
    let written: Vec<Result<Written, StoreError>> = match write(trees, calls) {
        Ok(written) => written.into_iter().map(Ok).collect(),
        // One call's stored data was unreadable: each alone, so that only it fails.
        Err(TransactionError::Abort(_)) if calls.len() > 1 => calls
            .iter()
            .map(|call| {
                write(trees, std::slice::from_ref(call))
                    .map_err(transaction_error)
                    .map(|mut written| written.remove(0))
            })
            .collect(),
        Err(error) => {
            let error = transaction_error(error);
            return calls.iter().map(|_| Err(error.clone())).collect();
        }
    };
    match trees.db.flush() {
        Ok(_) => written,
        Err(error) => {
            let error = StoreError::NotDurable(error.to_string());
            calls.iter().map(|_| Err(error.clone())).collect()
        }
    }
}

fn write(trees: &Trees, calls: &[Prepared]) -> Result<Vec<Written>, TransactionError<String>> {
    let all = (&trees.events, &trees.deliveries, &trees.queue, &trees.idempotency, &trees.expiry);
    all.transaction(|(events, deliveries, queue, keys, expiry)| {
        let views = Views { events, deliveries, queue, keys, expiry };
        calls.iter().map(|call| write_call(&views, call)).collect()
    })
}

struct Views<'a> {
    events: &'a TransactionalTree,
    deliveries: &'a TransactionalTree,
    queue: &'a TransactionalTree,
    keys: &'a TransactionalTree,
    expiry: &'a TransactionalTree,
}

fn write_call(views: &Views, call: &Prepared) -> Result<Written, ConflictableTransactionError<String>> {
    let now_ms = call.now_ms;
    if let Some(key) = &call.key
        && let Some(seen) = views.keys.get(&key.scoped)?
    {
        let seen: IdempotencyRecord = decode_in_tx(&seen)?;
        let stored = if seen.endpoint != key.endpoint {
            Stored::KeyConflict(format!(
                "this Idempotency-Key was used on {}; use a new key for this request",
                seen.endpoint
            ))
        } else if seen.body_hash != key.body_hash {
            Stored::KeyConflict(
                "this Idempotency-Key was used with a different body; use a new key for a new request".into(),
            )
        } else {
            Stored::Replay(seen.outcomes)
        };
        return Ok((stored, Vec::new()));
    }
    let mut outcomes = Vec::with_capacity(call.events.len());
    let mut fresh = Vec::new();
    for event in &call.events {
        if let Some(seen) = views.events.get(&event.key)? {
            let record: EventRecord = decode_in_tx(&seen)?;
            outcomes.push(Outcome { response: record.response, duplicate: true });
            continue;
        }
        views.events.insert(event.key.as_slice(), event.record.as_slice())?;
        views.expiry.insert([&now_ms.to_be_bytes()[..], b"e", &event.key].concat(), &[])?;
        for delivery in &event.deliveries {
            views.deliveries.insert(delivery_key(&delivery.id), delivery.record.as_slice())?;
            views.deliveries.insert(super::by_webhook_key(&delivery.webhook_id, &delivery.id), &[])?;
            if delivery.queued {
                views.queue.insert(queue_key(now_ms, &delivery.id), delivery.webhook_id.as_bytes())?;
                fresh.push(QueueEntry::new(now_ms, &delivery.id, &delivery.webhook_id));
            }
        }
        outcomes.push(Outcome { response: event.response.clone(), duplicate: false });
    }
    if let Some(key) = &call.key {
        let record = IdempotencyRecord {
            endpoint: key.endpoint.clone(),
            body_hash: key.body_hash.clone(),
            outcomes: outcomes.clone(),
        };
        views.keys.insert(key.scoped.as_slice(), encode(&record))?;
        views.expiry.insert([&now_ms.to_be_bytes()[..], b"k", &key.scoped].concat(), &[])?;
    }
    Ok((Stored::Accepted(outcomes), fresh))
}
