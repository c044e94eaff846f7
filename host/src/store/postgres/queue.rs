//! The delivery queue on PostgreSQL: claiming, finishing, waking and counting.
//!
//! - Claiming marks entries with this process's id (`claimed_by`) in one `UPDATE … WHERE
//!   delivery_id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED))`, taking unclaimed entries (through a
//!   partial index, so a claim never steps over the thousands this process may be holding)
//!   of the webhooks whose lanes this host owns (see `lanes/`). Entries an earlier process
//!   claimed (it died) are returned when a host takes that process's lanes over. Entries
//!   this process wrote claimed already (see `ingest.rs`) come from memory; the database is
//!   asked only when it may hold some unclaimed for this host (`Shared::unclaimed`: written
//!   by another host or for a lane not kept here, returned, or a notification missed) —
//!   on one host under steady load, almost never.
//! - Finishing: concurrent [`finish`] calls are written by one task, together, in one
//!   statement per group, with `synchronous_commit = off` (claims and announcements too: see
//!   `Shared::queue_pool`) — a turn lost in a crash only means the delivery is worked again
//!   (at least once), and not waiting for the WAL flush is what makes finishing cheap.
//! - Waking: writers wake this process's engine directly, and other hosts through one
//!   `NOTIFY` from a tiny transaction of its own after the data commits (a `NOTIFY` inside a
//!   busy transaction would serialise commits on its global lock); it names the webhooks
//!   written for, so the host that should own a new webhook's lane takes it at its next
//!   claim. A dedicated connection listens (to changes of webhooks, users and connectors
//!   too); it reconnects with backoff and wakes the engine and the change reader after a
//!   reconnect (what was sent meanwhile was lost, so the next claim looks at every webhook);
//!   a slow poll covers the rest.
//! - The depth is counted from this process's writes and resynced from `count(*)` every few
//!   seconds, since other hosts write too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_postgres::types::ToSql;

use super::{
    CHANGES_CHANNEL, Database, Shared, encode, error_text, int, lanes, pg_error, pool_error_text,
    refused_data, status_name, uint,
};
use crate::domain::delivery::{Attempt, Delivery};
use crate::store::group::{Grouping, Groups};
use crate::store::{QueueEntry, StoreError};

/// How long [`PgStore::wait_for_work`](super::PgStore::wait_for_work) waits when no
/// notification comes: the safety net for notifications lost while the listener reconnects.
pub(super) const POLL: Duration = Duration::from_secs(2);

/// The channel every host listens on, for "any webhook": a payload is the writing process's
/// id alone. Entries for known webhooks go to the channel of the host that should work them
/// ([`host_channel`]): the writer's id, then the webhooks, one a line.
pub(super) const CHANNEL: &str = "wasmhook_queue";

/// The channel a host's listener hears its own announcements on.
pub(super) fn host_channel(host: uuid::Uuid) -> String {
    format!("{CHANNEL}_{}", host.simple())
}

/// How often the depth is read again from the table.
const RESYNC: Duration = Duration::from_secs(5);

/// Turns in one finishing group at most.
const FINISH_GROUP: usize = 1000;

/// Finishing groups written at once. One: while it is written the next gathers, so groups
/// grow with the load (a group holds up to [`FINISH_GROUP`] turns, so one writer caps
/// nothing), and a statement's fixed cost is most of a small group's. Two writers split the
/// turns into groups of ~5 at 6,000 deliveries/s; one makes them ~15: a third of the
/// statements, PostgreSQL CPU per event 0.081 → 0.070 ms and single events +8 % (one host,
/// 9 runs each, alternated; four writers had already lost to two the same way).
const FINISHING_AT_ONCE: usize = 1;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A claim of entries nobody holds, of the lanes this host owns (unexpired) and is not
/// releasing (`$3`), read through `queue_unclaimed` in due order. `= ANY(ARRAY(…))` makes
/// the update find the rows by primary key (`IN (…)` let the planner hash-join a scan of
/// the whole queue: ~30 ms for 1,000 of 100,000 entries, ~8 ms this way, whether this host
/// owns every lane or a tenth of them).
pub(super) const CLAIM: &str = "
UPDATE queue SET claimed_by = $1 WHERE delivery_id = ANY(ARRAY(
    SELECT delivery_id FROM queue
    WHERE claimed_by IS NULL
        AND webhook_id IN (SELECT webhook_id FROM lanes WHERE owner = $1 AND expires_at > now())
        AND webhook_id <> ALL($3::text[])
    ORDER BY due_ms, delivery_id LIMIT $2 FOR UPDATE SKIP LOCKED))
RETURNING delivery_id, webhook_id, due_ms";

/// One statement for a group of turns: attempts added, deliveries stored, entries moved
/// (still claimed by this process) or removed. A group holds each delivery once, so no row
/// is written twice by it.
pub(super) const FINISH: &str = "
WITH new_attempts AS (
    INSERT INTO attempts (delivery_id, at, message_id, record)
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bytea[])
    ON CONFLICT DO NOTHING
), stored AS (
    INSERT INTO deliveries (id, webhook_id, status, created_at, record)
    SELECT * FROM unnest($5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::bytea[])
    ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record
), moved AS (
    INSERT INTO queue (delivery_id, webhook_id, due_ms, claimed_by)
    SELECT r.delivery_id, r.webhook_id, r.due_ms, $10::uuid
    FROM unnest($11::text[], $12::text[], $13::int8[]) AS r(delivery_id, webhook_id, due_ms)
    ON CONFLICT (delivery_id) DO UPDATE SET due_ms = excluded.due_ms, claimed_by = excluded.claimed_by
        WHERE queue.due_ms <> excluded.due_ms OR queue.claimed_by IS DISTINCT FROM excluded.claimed_by
    RETURNING xmax = 0 AS inserted
), removed AS (
    DELETE FROM queue WHERE delivery_id = ANY($14::text[]) RETURNING 1
)
SELECT (SELECT count(*) FROM moved WHERE inserted), (SELECT count(*) FROM removed)";

pub(super) async fn claim(shared: &Shared, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let _busy = shared.lanes.busy.lock().await;
    let Some(skipped) = shared.lanes.skipped() else {
        return Ok(Vec::new()); // this host lost touch: its lanes may be others' by now
    };
    // Those of lanes being released stay until their release drops them.
    let mut entries: Vec<QueueEntry> = {
        let mut kept = shared.kept();
        let (mut taken, mut left) = (Vec::new(), Vec::new());
        for entry in kept.drain(..) {
            match taken.len() < limit && !skipped.contains(&entry.webhook_id) {
                true => taken.push(entry),
                false => left.push(entry),
            }
        }
        *kept = left;
        taken
    };
    let room = limit - entries.len();
    if room > 0 && shared.unclaimed.swap(false, Ordering::Relaxed) {
        match claim_unclaimed(shared, room).await {
            Ok(claimed) => {
                if claimed.len() == room {
                    shared.unclaimed.store(true, Ordering::Relaxed); // there may be more
                }
                entries.extend(claimed);
            }
            Err(error) => {
                shared.unclaimed.store(true, Ordering::Relaxed);
                shared.kept().extend(entries);
                return Err(error);
            }
        }
    }
    entries.sort_unstable_by(|a, b| (a.due_ms, &a.delivery_id).cmp(&(b.due_ms, &b.delivery_id)));
    Ok(entries)
}

/// Claims from the database: the lanes new entries were written for first, then up to
/// `limit` unclaimed entries of the lanes this host owns and is not releasing. Called with
/// `Lanes::busy` held.
async fn claim_unclaimed(shared: &Shared, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
    lanes::acquire_wanted(shared).await?;
    // Lanes acquired just now are not skipped; those reported since are.
    let Some(skipped) = shared.lanes.skipped() else { return Ok(Vec::new()) };
    let client = shared.queue_pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    let statement = client.prepare_cached(CLAIM).await.map_err(pg_error)?;
    let limit = int(limit as u64);
    // On the queue's connections (see `Shared::queue_pool`): kept off sequential scans — with
    // the queue's statistics missing or stale the planner sometimes found the claimed rows
    // by scanning the whole queue, dead rows included (40–70 ms a claim, and deliveries fell
    // to a few hundred a second) — and not waiting for the WAL flush: a claim lost in a
    // database crash only puts its entries back.
    let params: [&(dyn ToSql + Sync); 3] = [&shared.me, &limit, &skipped];
    let rows = client.query(&statement, &params).await.map_err(pg_error)?;
    Ok(rows.iter().map(|row| QueueEntry::new(uint(row.get(2)), row.get(0), row.get(1))).collect())
}

/// A turn of a delivery, encoded by its caller.
pub(super) struct Turn {
    delivery_id: String,
    webhook_id: String,
    delivery: Option<(String, OffsetDateTime, Vec<u8>)>,
    next_due: Option<i64>,
    attempts: Vec<(OffsetDateTime, String, Vec<u8>)>,
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Hands turns to the finishing task.
pub(super) type FinishSender = Groups<(Turn, Reply)>;

/// The finishing task: turns written in groups, [`FINISHING_AT_ONCE`] group at a time.
pub(super) fn start_finishing(shared: Arc<Shared>) -> (FinishSender, JoinHandle<()>) {
    Groups::start(Finishing(shared))
}

struct Finishing(Arc<Shared>);

impl Grouping for Finishing {
    type Item = (Turn, Reply);
    const MAX_WEIGHT: usize = FINISH_GROUP;
    const AT_ONCE: usize = FINISHING_AT_ONCE;

    /// A turn of a delivery already in the group waits for the next one.
    fn key((turn, _): &Self::Item) -> Option<&str> {
        Some(&turn.delivery_id)
    }

    async fn write(&self, group: Vec<Self::Item>) {
        finish_group(&self.0, group).await;
    }
}

pub(super) async fn finish(
    sender: &FinishSender,
    entry: &QueueEntry,
    delivery: Option<&Delivery>,
    next_due: Option<u64>,
    attempts: &[Attempt],
) -> Result<(), StoreError> {
    let turn = Turn {
        delivery_id: entry.delivery_id.clone(),
        webhook_id: entry.webhook_id.clone(),
        delivery: delivery.map(|d| (status_name(d.status), d.created_at, encode(d))),
        next_due: next_due.map(int),
        attempts: attempts.iter().map(|a| (a.at, a.message_id.clone(), encode(a))).collect(),
    };
    let closed = || StoreError::Unavailable("storage is closed".into());
    let (reply, done) = oneshot::channel();
    sender.send((turn, reply)).map_err(|_| closed())?;
    done.await.map_err(|_| closed())?
}

async fn finish_group(shared: &Shared, group: Vec<(Turn, Reply)>) {
    let (turns, replies): (Vec<Turn>, Vec<Reply>) = group.into_iter().unzip();
    let written = match shared.queue_pool.get().await {
        Ok(client) => write_turns(&client, shared, &turns).await,
        Err(error) => {
            let text = pool_error_text(&error);
            replies
                .into_iter()
                .for_each(|reply| drop(reply.send(Err(StoreError::Unavailable(text.clone())))));
            return;
        }
    };
    match written {
        Ok(()) => replies.into_iter().for_each(|reply| drop(reply.send(Ok(())))),
        Err(error) if turns.len() > 1 && refused_data(&error) => {
            tracing::warn!(error = %error_text(&error), "a group of delivery turns was refused; writing them one by one");
            for (turn, reply) in turns.iter().zip(replies) {
                let written = match shared.queue_pool.get().await {
                    Ok(client) => {
                        write_turns(&client, shared, std::slice::from_ref(turn)).await.map_err(pg_error)
                    }
                    Err(error) => Err(StoreError::Unavailable(pool_error_text(&error))),
                };
                let _ = reply.send(written);
            }
        }
        Err(error) => {
            let text = error_text(&error);
            replies
                .into_iter()
                .for_each(|reply| drop(reply.send(Err(StoreError::Unavailable(text.clone())))));
        }
    }
}

async fn write_turns(
    client: &deadpool_postgres::Client,
    shared: &Shared,
    turns: &[Turn],
) -> Result<(), tokio_postgres::Error> {
    let (mut a_delivery, mut a_at, mut a_message, mut a_record) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut d_id, mut d_webhook, mut d_status, mut d_created, mut d_record) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut m_id, mut m_webhook, mut m_due) = (Vec::new(), Vec::new(), Vec::new());
    let mut removed_ids = Vec::new();
    for turn in turns {
        for (at, message_id, record) in &turn.attempts {
            a_delivery.push(turn.delivery_id.as_str());
            a_at.push(*at);
            a_message.push(message_id.as_str());
            a_record.push(record.as_slice());
        }
        if let Some((status, created_at, record)) = &turn.delivery {
            d_id.push(turn.delivery_id.as_str());
            d_webhook.push(turn.webhook_id.as_str());
            d_status.push(status.as_str());
            d_created.push(*created_at);
            d_record.push(record.as_slice());
        }
        match turn.next_due {
            Some(due) => {
                m_id.push(turn.delivery_id.as_str());
                m_webhook.push(turn.webhook_id.as_str());
                m_due.push(due);
            }
            None => removed_ids.push(turn.delivery_id.as_str()),
        }
    }
    let statement = client.prepare_cached(FINISH).await?;
    let params: [&(dyn ToSql + Sync); 14] = [
        &a_delivery,
        &a_at,
        &a_message,
        &a_record,
        &d_id,
        &d_webhook,
        &d_status,
        &d_created,
        &d_record,
        &shared.me,
        &m_id,
        &m_webhook,
        &m_due,
        &removed_ids,
    ];
    // One statement, so one transaction: on the queue's connections it neither waits for
    // the WAL flush nor scans the queue's dead rows (see `Shared::queue_pool`).
    let row = client.query_one(&statement, &params).await?;
    let (added, removed): (i64, i64) = (row.get(0), row.get(1));
    shared.depth.fetch_add(uint(added), Ordering::Relaxed);
    shared.dequeued(uint(removed));
    Ok(())
}

/// Listens for other hosts' notifications (queue entries written, changes recorded) on a
/// connection of its own, for as long as the store is open.
pub(super) async fn listen(mut database: Database, shared: Arc<Shared>) {
    // A listener that only reads notices a dead peer by keepalive alone: probe it sooner than
    // the default two hours.
    database.config.keepalives_idle(Duration::from_secs(30));
    let me = shared.me.to_string();
    let mut backoff = BACKOFF_MIN;
    let mut listened_before = false;
    loop {
        let listening = AtomicBool::new(false);
        let ended = listen_once(&database, &shared, &me, listened_before, &listening).await;
        if listening.load(Ordering::Relaxed) {
            listened_before = true;
            backoff = BACKOFF_MIN;
        }
        match ended {
            Ok(()) => tracing::warn!("the queue listener's connection closed; reconnecting"),
            Err(error) => {
                tracing::warn!(error = %error_text(&error), "the queue listener lost its connection; reconnecting")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn listen_once(
    database: &Database,
    shared: &Shared,
    me: &str,
    listened_before: bool,
    listening: &AtomicBool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = database.connect().await?;
    let own = host_channel(shared.me);
    // Polling the connection both delivers notifications and carries the client's requests.
    let drive = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    let mut lines = note.payload().split('\n');
                    // This process's own writes were applied here already.
                    if lines.next() == Some(me) {
                        continue;
                    }
                    match note.channel() {
                        channel if channel == CHANNEL || channel == own => {
                            let webhooks: Vec<String> = lines.map(str::to_owned).collect();
                            if shared.lanes.heard((!webhooks.is_empty()).then_some(webhooks), shared.me) {
                                shared.wake_to_claim();
                            }
                        }
                        _ => shared.changes.notify_one(),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    };
    let subscribe = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {own}; LISTEN {CHANGES_CHANNEL}")).await?;
        listening.store(true, Ordering::Relaxed);
        if listened_before {
            // Notifications sent while it was away are lost: look again now.
            shared.lanes.heard(None, shared.me);
            shared.wake_to_claim();
            shared.changes.notify_one();
        }
        std::future::pending::<Result<(), tokio_postgres::Error>>().await
    };
    tokio::select! {
        ended = drive => ended,
        ended = subscribe => ended,
    }
}

/// Tells other hosts that entries were written, and for which webhooks: one statement of
/// `NOTIFY`s per wake-up (see [`Lanes::announcements`](super::lanes::Lanes::announcements)),
/// however many writes asked for one meanwhile. On the queue's connections its commit does
/// not wait for the disk: listeners hear it once committed, and a notification lost in a
/// crash is found by the other hosts' next poll — a log flush per announcement was a cost
/// with nothing bought.
pub(super) async fn announce(shared: Arc<Shared>) {
    const NOTIFY: &str = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)";
    loop {
        shared.announce.notified().await;
        let (channels, payloads): (Vec<String>, Vec<String>) =
            shared.lanes.announcements(shared.me).into_iter().unzip();
        if channels.is_empty() {
            continue;
        }
        let sent = match shared.queue_pool.get().await {
            Ok(client) => match client.prepare_cached(NOTIFY).await {
                Ok(statement) => client.execute(&statement, &[&channels, &payloads]).await.map(drop),
                Err(error) => Err(error),
            }
            .map_err(|e| error_text(&e)),
            Err(error) => Err(pool_error_text(&error)),
        };
        if let Err(error) = sent {
            // Other hosts find the entries at their next poll.
            tracing::debug!(%error, "could not notify other hosts of queued deliveries");
        }
    }
}

/// Reads the queue's depth from the table every few seconds.
pub(super) async fn resync_depth(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(RESYNC).await;
        if let Err(error) = resync_once(&shared).await {
            tracing::debug!(%error, "could not read the queue depth");
        }
    }
}

pub(super) async fn resync_once(shared: &Shared) -> Result<(), StoreError> {
    let client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    let count: i64 = client.query_one("SELECT count(*) FROM queue", &[]).await.map_err(pg_error)?.get(0);
    shared.depth.store(uint(count), Ordering::Relaxed);
    Ok(())
}
