//! Ingest by group commit: concurrent [`PgStore::accept`](super::PgStore::accept) calls are
//! written by one task, together, in ONE statement per group — events `ON CONFLICT DO
//! NOTHING RETURNING`, and the deliveries and queue entries of those returned, from arrays
//! (`unnest`) — so a group costs one round trip and one WAL flush, however many events it
//! holds. That flush, not the number of connections, is what bounds a durable write rate.
//!
//! Records are encoded by the callers, on their own tasks, before they are handed over.
//! Within a group an event that two calls carry is stored for the first; the second gets the
//! first's answer as a duplicate — as if the calls had run one after the other. A group that
//! PostgreSQL refuses for its data (not for its connection) is written again call by call, so
//! one bad call fails alone.
//!
//! A queue entry of a webhook whose deliveries may go in any order, for a lane this host keeps
//! — owns, or shares with the other hosts (see `lanes/`) — is written claimed by this
//! process and handed to its own engine (through `Shared::kept`): no claim, no read back, no
//! notification. An `ordered` webhook's entries are written unclaimed: a claim finds them in
//! order with those other hosts wrote before them.
//!
//! A call with an `Idempotency-Key` (rare) has a transaction of its own: the same statement,
//! then the key inserted `ON CONFLICT DO NOTHING` — a second request racing with the same
//! key waits on the first's row, finds it, rolls back and replays the first's outcomes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;

use uuid::Uuid;

use super::lanes::Writing;
use super::{
    Shared, decode, encode, error_text, int, pg_error, pool_error_text, refused_data, status_name, uint,
};
use crate::domain::delivery::DeliveryStatus;
use crate::store::group::{Grouping, Groups};
use crate::store::{Accept, IdempotencyKey, Outcome, QueueEntry, StoreError, Stored};

/// Events in one group at most: bounds a statement's size (and its arrays).
const GROUP_EVENTS: usize = 2000;

/// Entries claimed as written and not yet taken by the engine, at most: past this (an
/// engine that cannot keep up) new ones are written unclaimed and wait in the database.
const KEPT_MAX: usize = 100_000;

/// The one statement that writes a group. Deliveries and queue entries are kept only for the
/// events the first part inserted (`new_events`); an event that was there already writes
/// nothing. All of it commits, or none.
const WRITE_GROUP: &str = "
WITH new_events AS (
    INSERT INTO events (company_id, id, accepted_ms, record, response)
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::bytea[])
    ON CONFLICT DO NOTHING
    RETURNING company_id, id
), new_deliveries AS (
    SELECT d.* FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                           $11::timestamptz[], $12::bytea[], $13::int8[], $14::uuid[])
        AS d(company_id, event_id, id, webhook_id, status, created_at, record, due_ms, claimed_by)
    WHERE (d.company_id, d.event_id) IN (SELECT company_id, id FROM new_events)
), stored_deliveries AS (
    INSERT INTO deliveries (id, webhook_id, status, created_at, record)
    SELECT id, webhook_id, status, created_at, record FROM new_deliveries
), stored_queue AS (
    INSERT INTO queue (delivery_id, webhook_id, due_ms, claimed_by)
    SELECT id, webhook_id, due_ms, claimed_by FROM new_deliveries WHERE due_ms IS NOT NULL
)
SELECT company_id, id FROM new_events";

/// The first answers of events that were there already.
const STORED_RESPONSES: &str = "
SELECT e.company_id, e.id, e.response FROM events e
JOIN unnest($1::text[], $2::text[]) AS k(company_id, id) ON e.company_id = k.company_id AND e.id = k.id";

/// An accept call, encoded.
pub(super) struct Prepared {
    events: Vec<EventRow>,
    now_ms: i64,
}

struct EventRow {
    company_id: String,
    id: String,
    record: Vec<u8>,
    response: Value,
    response_bytes: Vec<u8>,
    deliveries: Vec<DeliveryRow>,
}

struct DeliveryRow {
    id: String,
    webhook_id: String,
    status: String,
    created_at: OffsetDateTime,
    record: Vec<u8>,
    queued: bool,
    /// Its webhook's deliveries may go in any order: its entry may be claimed as written.
    any_order: bool,
}

impl Prepared {
    fn new(batch: &[Accept], now_ms: u64) -> Prepared {
        let events = batch
            .iter()
            .map(|accept| EventRow {
                company_id: accept.event.company_id.clone(),
                id: accept.event.id.clone(),
                record: encode(accept.event.as_ref()),
                response: accept.response.clone(),
                response_bytes: encode(&accept.response),
                deliveries: accept
                    .deliveries
                    .iter()
                    .map(|delivery| DeliveryRow {
                        id: delivery.id.clone(),
                        webhook_id: delivery.webhook_id.clone(),
                        status: status_name(delivery.status),
                        created_at: delivery.created_at,
                        record: encode(delivery),
                        queued: delivery.status == DeliveryStatus::Pending,
                        any_order: accept.unordered.contains(&delivery.webhook_id),
                    })
                    .collect(),
            })
            .collect();
        Prepared { events, now_ms: int(now_ms) }
    }
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, StoreError>>;

/// Hands calls to the group-commit task.
pub(super) type Sender = Groups<(Prepared, Reply)>;

/// The group-commit task: takes every call waiting, writes them together, answers each.
pub(super) fn start(shared: Arc<Shared>) -> (Sender, JoinHandle<()>) {
    Groups::start(Ingest(shared))
}

struct Ingest(Arc<Shared>);

impl Grouping for Ingest {
    type Item = (Prepared, Reply);
    const MAX_WEIGHT: usize = GROUP_EVENTS;
    const LINGER: bool = true;

    fn weight((call, _): &Self::Item) -> usize {
        call.events.len()
    }

    async fn write(&self, group: Vec<Self::Item>) {
        write_and_answer(&self.0, group).await;
    }
}

pub(super) async fn accept(
    shared: &Shared,
    sender: &Sender,
    batch: &[Accept],
    key: Option<&IdempotencyKey>,
    now_ms: u64,
) -> Result<Stored, StoreError> {
    let prepared = Prepared::new(batch, now_ms);
    if let Some(key) = key {
        return accept_with_key(shared, prepared, key).await;
    }
    if prepared.events.is_empty() {
        return Ok(Stored::Accepted(Vec::new()));
    }
    let (reply, outcome) = oneshot::channel();
    sender.send((prepared, reply)).map_err(|_| closed())?;
    outcome.await.map_err(|_| closed())?.map(Stored::Accepted)
}

fn closed() -> StoreError {
    StoreError::Unavailable("storage is closed".into())
}

/// Starts a write of these calls: the queued entries of webhooks whose deliveries may go in
/// any order, of the lanes this host keeps, are claimed as written. Kept until their entries
/// are (see `lanes/`).
fn claiming_as_written<'a>(shared: &'a Shared, calls: &[Prepared]) -> Writing<'a> {
    let room = shared.kept().len() < KEPT_MAX;
    let candidates = calls
        .iter()
        .flat_map(|call| &call.events)
        .flat_map(|event| &event.deliveries)
        .filter(move |delivery| room && delivery.queued && delivery.any_order)
        .map(|delivery| delivery.webhook_id.as_str());
    shared.lanes.writing(candidates)
}

/// What a group wrote, passed on: entries claimed as written to this engine, the others
/// announced.
fn wrote(shared: &Shared, written: &mut Written) {
    shared.kept_written(std::mem::take(&mut written.kept));
    shared.queued(written.queued, written.webhooks.iter().map(String::as_str));
}

async fn write_and_answer(shared: &Shared, group: Vec<(Prepared, Reply)>) {
    let (calls, replies): (Vec<Prepared>, Vec<Reply>) = group.into_iter().unzip();
    let writing = claiming_as_written(shared, &calls);
    let claimed = writing.webhooks();
    let written = match shared.pool.get().await {
        Ok(client) => write_group(&client, &calls, shared.me, claimed).await.map_err(Failure::Db),
        Err(error) => Err(Failure::Store(StoreError::Unavailable(pool_error_text(&error)))),
    };
    match written {
        Ok(mut written) => {
            wrote(shared, &mut written);
            for (reply, outcomes) in replies.into_iter().zip(written.outcomes) {
                let _ = reply.send(outcomes);
            }
        }
        // One call's data was refused: write each alone so that only it fails.
        Err(Failure::Db(error)) if calls.len() > 1 && refused_data(&error) => {
            tracing::warn!(error = %error_text(&error), "a group of events was refused; writing them one by one");
            for (call, reply) in calls.into_iter().zip(replies) {
                let written = match shared.pool.get().await {
                    Ok(client) => write_group(&client, std::slice::from_ref(&call), shared.me, claimed)
                        .await
                        .map_err(pg_error),
                    Err(error) => Err(StoreError::Unavailable(pool_error_text(&error))),
                };
                let outcomes = written.and_then(|mut written| {
                    wrote(shared, &mut written);
                    written.outcomes.pop().unwrap_or_else(|| Ok(Vec::new()))
                });
                let _ = reply.send(outcomes);
            }
        }
        Err(failure) => {
            let text = match failure {
                Failure::Db(error) => error_text(&error),
                Failure::Store(error) => error.to_string(),
            };
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(text.clone())));
            }
        }
    }
}

enum Failure {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

/// What a group wrote: each call's outcomes (or why it has none: an unreadable stored
/// answer), the entries claimed as written, and how many unclaimed ones, for which webhooks.
struct Written {
    outcomes: Vec<Result<Vec<Outcome>, StoreError>>,
    kept: Vec<QueueEntry>,
    queued: u64,
    webhooks: HashSet<String>,
}

/// Where an event of a group stands before it is written.
enum Slot {
    /// The first of its key in the group: written.
    Candidate,
    /// The same key as an earlier event of the group: `(call, event)` of that one.
    Repeat(usize, usize),
}

/// Writes `calls` with one statement (its own transaction when `client` is not in one), and
/// a second to read the answers of events that were there already. Outside a transaction the
/// first commits alone: should the second fail, the calls hear "unavailable" though their
/// events are stored, and a retry finds them as duplicates (as after a lost COMMIT reply).
/// Queue entries of the `claimed` webhooks whose deliveries may go in any order are written
/// claimed by `me`.
async fn write_group(
    client: &impl GenericClient,
    calls: &[Prepared],
    me: Uuid,
    claimed: &HashSet<String>,
) -> Result<Written, tokio_postgres::Error> {
    // Each key once, the first event with it; the rest answer as its duplicates.
    let mut first_of: HashMap<(&str, &str), (usize, usize)> = HashMap::new();
    let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(calls.len());
    let mut candidates: Vec<(&EventRow, i64)> = Vec::new();
    for (c, call) in calls.iter().enumerate() {
        let mut call_slots = Vec::with_capacity(call.events.len());
        for (e, event) in call.events.iter().enumerate() {
            match first_of.entry((event.company_id.as_str(), event.id.as_str())) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    let (fc, fe) = *first.get();
                    call_slots.push(Slot::Repeat(fc, fe));
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert((c, e));
                    call_slots.push(Slot::Candidate);
                    candidates.push((event, call.now_ms));
                }
            }
        }
        slots.push(call_slots);
    }

    // In key order, so that two groups inserting the same events lock them in the same order
    // (no deadlock between hosts).
    candidates.sort_unstable_by(|(a, _), (b, _)| (&a.company_id, &a.id).cmp(&(&b.company_id, &b.id)));
    let mut company_ids = Vec::with_capacity(candidates.len());
    let mut ids = Vec::with_capacity(candidates.len());
    let mut accepted = Vec::with_capacity(candidates.len());
    let mut records = Vec::with_capacity(candidates.len());
    let mut responses = Vec::with_capacity(candidates.len());
    let mut d_company = Vec::new();
    let mut d_event = Vec::new();
    let mut d_id = Vec::new();
    let mut d_webhook = Vec::new();
    let mut d_status = Vec::new();
    let mut d_created = Vec::new();
    let mut d_record = Vec::new();
    let mut d_due: Vec<Option<i64>> = Vec::new();
    let mut d_claimed: Vec<Option<Uuid>> = Vec::new();
    let claims = |delivery: &DeliveryRow| delivery.any_order && claimed.contains(&delivery.webhook_id);
    for (event, now_ms) in &candidates {
        company_ids.push(event.company_id.as_str());
        ids.push(event.id.as_str());
        accepted.push(*now_ms);
        records.push(event.record.as_slice());
        responses.push(event.response_bytes.as_slice());
        for delivery in &event.deliveries {
            d_company.push(event.company_id.as_str());
            d_event.push(event.id.as_str());
            d_id.push(delivery.id.as_str());
            d_webhook.push(delivery.webhook_id.as_str());
            d_status.push(delivery.status.as_str());
            d_created.push(delivery.created_at);
            d_record.push(delivery.record.as_slice());
            d_due.push(delivery.queued.then_some(*now_ms));
            d_claimed.push((delivery.queued && claims(delivery)).then_some(me));
        }
    }
    let statement = client.prepare_cached(WRITE_GROUP).await?;
    let params: [&(dyn ToSql + Sync); 14] = [
        &company_ids,
        &ids,
        &accepted,
        &records,
        &responses,
        &d_company,
        &d_event,
        &d_id,
        &d_webhook,
        &d_status,
        &d_created,
        &d_record,
        &d_due,
        &d_claimed,
    ];
    let rows = client.query(&statement, &params).await?;
    let mut inserted: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for row in &rows {
        let (company_id, id): (&str, &str) = (row.get(0), row.get(1));
        // Borrow the key from the candidates, not from the rows.
        if let Some(&(c, e)) = first_of.get(&(company_id, id)) {
            let event = &calls[c].events[e];
            inserted.insert((event.company_id.as_str(), event.id.as_str()));
        }
    }

    // Events there already (stored before, or by another host meanwhile): their first answers.
    let mut stored: HashMap<(&str, &str), Result<Value, String>> = HashMap::new();
    if inserted.len() < candidates.len() {
        let (old_companies, old_ids): (Vec<&str>, Vec<&str>) = candidates
            .iter()
            .map(|(event, _)| (event.company_id.as_str(), event.id.as_str()))
            .filter(|key| !inserted.contains(key))
            .unzip();
        let statement = client.prepare_cached(STORED_RESPONSES).await?;
        for row in client.query(&statement, &[&old_companies, &old_ids]).await? {
            let (company_id, id, response): (&str, &str, &[u8]) = (row.get(0), row.get(1), row.get(2));
            if let Some(&(c, e)) = first_of.get(&(company_id, id)) {
                let event = &calls[c].events[e];
                let answer = decode::<Value>("events", id, response).map_err(|e| e.to_string());
                stored.insert((event.company_id.as_str(), event.id.as_str()), answer);
            }
        }
    }

    // Answers in call order: a repeat always comes after the first of its key.
    let (mut kept, mut queued) = (Vec::new(), 0u64);
    let mut webhooks: HashSet<String> = HashSet::new();
    let mut answers: HashMap<(usize, usize), Result<Value, String>> = HashMap::new();
    let mut outcomes = Vec::with_capacity(calls.len());
    for (c, call) in calls.iter().enumerate() {
        let mut call_outcomes = Vec::with_capacity(call.events.len());
        for (e, event) in call.events.iter().enumerate() {
            let key = (event.company_id.as_str(), event.id.as_str());
            let outcome = match slots[c][e] {
                Slot::Repeat(fc, fe) => match answers.get(&(fc, fe)) {
                    Some(Ok(first)) => Ok(Outcome { response: first.clone(), duplicate: true }),
                    Some(Err(why)) => Err(why.clone()),
                    None => Err("an event's first occurrence has no answer".to_owned()),
                },
                Slot::Candidate if inserted.contains(&key) => {
                    for delivery in event.deliveries.iter().filter(|d| d.queued) {
                        if claims(delivery) {
                            kept.push(QueueEntry::new(uint(call.now_ms), &delivery.id, &delivery.webhook_id));
                            continue;
                        }
                        queued += 1;
                        if !webhooks.contains(&delivery.webhook_id) {
                            webhooks.insert(delivery.webhook_id.clone());
                        }
                    }
                    Ok(Outcome { response: event.response.clone(), duplicate: false })
                }
                Slot::Candidate => match stored.get(&key) {
                    Some(Ok(response)) => Ok(Outcome { response: response.clone(), duplicate: true }),
                    Some(Err(why)) => Err(why.clone()),
                    // Pruned between the two statements (only an event older than the
                    // retention period, sent again just then): it was a duplicate.
                    None => Ok(Outcome { response: event.response.clone(), duplicate: true }),
                },
            };
            if matches!(slots[c][e], Slot::Candidate) {
                answers.insert((c, e), outcome.as_ref().map(|o| o.response.clone()).map_err(String::clone));
            }
            call_outcomes.push(outcome);
        }
        outcomes.push(call_outcomes.into_iter().collect::<Result<Vec<_>, _>>().map_err(StoreError::Corrupt));
    }
    Ok(Written { outcomes, kept, queued, webhooks })
}

/// An accept under an `Idempotency-Key`: the group statement and the key, in one transaction.
async fn accept_with_key(
    shared: &Shared,
    call: Prepared,
    key: &IdempotencyKey,
) -> Result<Stored, StoreError> {
    let mut client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    let calls = std::slice::from_ref(&call);
    let writing = claiming_as_written(shared, calls);
    let transaction = client.transaction().await.map_err(pg_error)?;
    let mut written =
        write_group(&transaction, calls, shared.me, writing.webhooks()).await.map_err(pg_error)?;
    let outcomes = written.outcomes.pop().unwrap_or_else(|| Ok(Vec::new()))?;
    let inserted = transaction
        .execute(
            "INSERT INTO idempotency (scoped, endpoint, body_hash, outcomes, accepted_ms)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&key.scoped.as_bytes(), &key.endpoint, &key.body_hash, &encode(&outcomes), &call.now_ms],
        )
        .await
        .map_err(pg_error)?;
    if inserted == 1 {
        transaction.commit().await.map_err(pg_error)?;
        wrote(shared, &mut written);
        return Ok(Stored::Accepted(outcomes));
    }
    // Used before (or by a request racing this one, which committed first): nothing of this
    // one is kept.
    transaction.rollback().await.map_err(pg_error)?;
    let row = client
        .query_opt(
            "SELECT endpoint, body_hash, outcomes FROM idempotency WHERE scoped = $1",
            &[&key.scoped.as_bytes()],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| {
            StoreError::Unavailable("an idempotency key went while it was read; try again".into())
        })?;
    let (endpoint, body_hash, stored): (&str, &str, &[u8]) = (row.get(0), row.get(1), row.get(2));
    Ok(if endpoint != key.endpoint {
        Stored::KeyConflict(format!(
            "this Idempotency-Key was used on {endpoint}; use a new key for this request"
        ))
    } else if body_hash != key.body_hash {
        Stored::KeyConflict(
            "this Idempotency-Key was used with a different body; use a new key for a new request".into(),
        )
    } else {
        Stored::Replay(decode("idempotency", &key.scoped.replace('\0', "/"), stored)?)
    })
}
