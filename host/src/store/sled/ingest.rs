//! Ingest by group commit: concurrent [`SledStore::accept`](super::SledStore::accept) calls
//! are written by one task, a group at a time, then ONE flush makes the group durable, and
//! each call hears its own answer. Each flush (like each sled transaction commit) seals a log
//! buffer and wakes sled's I/O threads: a transaction per call cost that per event, which was
//! most of the server's time under load.
//!
//! Records are encoded by the callers, on their own tasks. Within a group the calls are
//! written in arrival order, each seeing the ones before (an event or an `Idempotency-Key`
//! repeated in one group answers as a duplicate or a replay, as if the calls had come one
//! after the other). A call that finds an unreadable stored record fails alone.

use std::borrow::Cow;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{EventRecord, IdempotencyRecord, decode, delivery_key, encode, event_key, expiry, queue};
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
                    event: Cow::Borrowed(&accept.event),
                    response: Cow::Borrowed(&accept.response),
                }),
                response: accept.response.clone(),
                deliveries: accept
                    .deliveries
                    .iter()
                    .map(|delivery| DeliveryRow {
                        id: delivery.id.clone(),
                        webhook_id: delivery.webhook_id.clone(),
                        record: super::record::new(delivery),
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
    /// Where each group's queued deliveries are registered before any is claimable.
    pub(super) groups: std::sync::Arc<std::sync::Mutex<queue::Groups>>,
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

/// Writes the group's calls one after the other, then flushes once: each call's answer, in order.
///
/// Two entries cover the whole group, written before its records so that no record is ever
/// stored without them, at the latest time a call was made: one in `expiry` naming every
/// event the group was given, to prune them, and one in `queue` naming every delivery to
/// queue (`queue.rs`). When some events were not accepted (stored before, or their call
/// answered from its `Idempotency-Key`) the expiry entry is written again with those left
/// out; the queue entry's deliveries that were not written are skipped when it is read back.
fn write_and_flush(trees: &Trees, calls: &[Prepared]) -> Vec<Result<Written, StoreError>> {
    let given: Vec<&[u8]> =
        calls.iter().flat_map(|call| call.events.iter().map(|e| e.key.as_slice())).collect();
    let at_ms = calls.iter().map(|call| call.now_ms).max().unwrap_or_default();
    let (entry, value) = expiry::events(at_ms, &given);
    let deliveries = calls.iter().flat_map(|call| call.events.iter().flat_map(|e| &e.deliveries));
    let (group, listed) = queue::group(at_ms, deliveries.filter(|d| d.queued).map(|d| d.id.as_bytes()));
    let queues = !listed.is_empty();
    let cover = || -> Result<(), sled::Error> {
        if !given.is_empty() {
            trees.expiry.insert(&entry, value)?;
        }
        if queues {
            trees.queue.insert(&group, listed)?;
        }
        Ok(())
    };
    if let Err(error) = cover() {
        let error = StoreError::from(error);
        return calls.iter().map(|_| Err(error.clone())).collect();
    }
    let mut accepted = Vec::with_capacity(given.len());
    let written: Vec<Result<Written, StoreError>> =
        calls.iter().map(|call| write_call(trees, call, &mut accepted)).collect();
    if accepted.len() < given.len() {
        let rewritten = match accepted.is_empty() {
            true => trees.expiry.remove(&entry).map(drop),
            false => trees.expiry.insert(&entry, expiry::events(at_ms, &accepted).1).map(drop),
        };
        if let Err(error) = rewritten {
            // The entry names events that were not accepted: a prune finds nothing to remove.
            tracing::warn!("cannot rewrite an ingest group's expiry entry: {error}");
        }
    }
    let fresh = written.iter().flatten().flat_map(|(_, fresh)| fresh.iter().map(|e| e.delivery_id.clone()));
    let fresh: Vec<String> = fresh.collect();
    if fresh.is_empty()
        && queues
        && let Err(error) = trees.queue.remove(&group)
    {
        // Read back, it names no delivery still queued, and goes then.
        tracing::warn!("cannot remove an ingest group's empty queue entry: {error}");
    }
    match trees.db.flush() {
        Ok(_) => {
            trees.groups.lock().unwrap_or_else(|p| p.into_inner()).add(group, fresh);
            written
        }
        Err(error) => {
            let error = StoreError::NotDurable(error.to_string());
            calls.iter().map(|_| Err(error.clone())).collect()
        }
    }
}

/// One call's writes, in the order that makes a crash before the flush harmless. sled
/// recovers its log as a prefix (a later write never survives an earlier one), and the
/// caller has no answer until the flush: a call cut short left at most queued deliveries
/// whose event is missing (worked as failed, "the event is no longer stored"),
/// never an event without its deliveries, which a retry would take for a duplicate. So
/// each event's deliveries come first, the event record after them, and
/// the `Idempotency-Key` record last. `accepted` gains the key of each event stored.
///
/// No transaction: one task writes every group, so nothing else writes events or keys
/// between a read and the write that depends on it; and a sled transaction seals a log
/// buffer twice (each seal wakes all of sled's I/O threads), which cost more than the
/// rest of ingest.
fn write_call<'a>(
    trees: &Trees,
    call: &'a Prepared,
    accepted: &mut Vec<&'a [u8]>,
) -> Result<Written, StoreError> {
    let now_ms = call.now_ms;
    if let Some(key) = &call.key
        && let Some(seen) = trees.idempotency.get(&key.scoped)?
    {
        let seen: IdempotencyRecord = decode(&seen)?;
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
        if let Some(seen) = trees.events.get(&event.key)? {
            let record: EventRecord = decode(&seen)?;
            outcomes.push(Outcome { response: record.response.into_owned(), duplicate: true });
            continue;
        }
        for delivery in &event.deliveries {
            trees.deliveries.insert(delivery_key(&delivery.id), delivery.record.as_slice())?;
            trees.deliveries.insert(super::by_webhook_key(&delivery.webhook_id, &delivery.id), &[])?;
            if delivery.queued {
                fresh.push(QueueEntry::new(now_ms, &delivery.id, &delivery.webhook_id));
            }
        }
        trees.events.insert(event.key.as_slice(), event.record.as_slice())?;
        accepted.push(&event.key);
        outcomes.push(Outcome { response: event.response.clone(), duplicate: false });
    }
    if let Some(key) = &call.key {
        let record = IdempotencyRecord {
            endpoint: key.endpoint.clone(),
            body_hash: key.body_hash.clone(),
            outcomes: outcomes.clone(),
        };
        trees.expiry.insert(expiry::idempotency_key(now_ms, &key.scoped), &[])?;
        trees.idempotency.insert(key.scoped.as_slice(), encode(&record))?;
    }
    Ok((Stored::Accepted(outcomes), fresh))
}
