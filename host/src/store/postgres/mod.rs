//! PostgreSQL: the storage backend for one host or several on one database.
//!
//! - `mod.rs` (this file): opening (pools, schema check, heartbeat), records that are read
//!   and written one at a time (webhooks, users, tokens, connectors, events, deliveries), the
//!   feed of changes other hosts apply, requeue and retention.
//! - `connection.rs`: the database URL (described without its password), the connection
//!   pools, and the driver's errors in the store's words.
//! - `tls.rs`: TLS as libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` ask for it.
//! - `schema.rs` and `migrations/`: versioned schema migrations under an advisory lock.
//! - `import.rs`: a copy from another backend written in, a page per statement (see
//!   `store/transfer.rs`).
//! - `ingest.rs`: [`PgStore::accept`] — concurrent calls are written together, one statement
//!   and one commit (one WAL flush) per group.
//! - `queue.rs`: claiming and finishing deliveries (finishes written together too), waking
//!   the engine (`LISTEN/NOTIFY`, with a slow poll as the safety net) and the queue depth.
//! - `lanes/`: which live host works each webhook's deliveries (heartbeats, lane leases,
//!   rebalancing as hosts come and go).
//! - `plugin_state.rs`: connectors' state per webhook.
//! - `versions.rs`: connector versions, which is live or shadowing, and shadow runs.
//! - `testing.rs` (tests only): a database of its own per test, dropped after it.
//!
//! Records are their serde_json bytes in `bytea` columns (the server never parses them); the
//! fields queried by are columns of their own. PostgreSQL 13 or newer. A write is durable when
//! it returns as far as the server's `synchronous_commit` makes it (on, unless an operator
//! turned it off); only the queue's own traffic (claims, finishing, announcements) turns it
//! off, on connections of its own. Connections come from two deadpool pools; the
//! listener has a connection of its own. All of them use TLS as libpq's `sslmode` and
//! certificate options in the URL ask (`tls.rs`).

mod analyze;
mod connection;
mod import;
mod ingest;
mod lanes;
mod plugin_state;
mod queue;
mod schema;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod tls;
mod versions;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::access::{Token, User};
use crate::domain::dead_letter::DeadLetter;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::webhook::Webhook;
use crate::store::{Accept, Change, DeliveryQuery, IdempotencyKey, QueueEntry, StoreError, Stored};

pub(crate) use self::import::Import;
pub(super) use connection::describe_url;
use connection::{Database, error_text, pg_error, pool_error_text, refused_data};

/// Connections in the pool. Throughput comes from group commit, not from connections: ingest
/// and finishing each write through one at a time; the rest serve the API's reads.
const POOL_SIZE: usize = 12;

/// Connections for the queue's own traffic (see [`Shared::queue_pool`]): one claim, two
/// finishing groups, one announcement and one read ahead at a time.
const QUEUE_POOL_SIZE: usize = 6;

/// How the queue's connections start (see [`Shared::queue_pool`]).
const QUEUE_SESSION: &str =
    "-c synchronous_commit=off -c enable_seqscan=off -c plan_cache_mode=force_generic_plan";

/// Rows a batched retention `DELETE` takes at most, so that it never holds locks for long.
const PRUNE_BATCH: i64 = 5000;

/// Records a change for other hosts, in the transaction of the write: the counter's row lock
/// orders changes by commit (see the schema).
const RECORD_CHANGE: &str = "
WITH next AS (UPDATE change_counter SET seq = seq + 1 RETURNING seq)
INSERT INTO changes (seq, kind, key, host) SELECT seq, $1, $2, $3 FROM next";

/// The channel other hosts hear changes on (the queue has its own, see `queue.rs`).
const CHANGES_CHANNEL: &str = "wasmhook_changes";

/// Changes read at most per call; the caller asks again from the cursor it got.
const CHANGES_PAGE: i64 = 1000;

/// Whether [`PgStore::open`] may bring the schema up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrate {
    /// Apply pending migrations (under the migration lock) before opening.
    Apply,
    /// Refuse a schema that is behind, naming the command that migrates it.
    Check,
}

/// Applies pending migrations to the database at `url`; returns the versions applied.
pub async fn migrate(url: &str) -> Result<Vec<u64>, StoreError> {
    schema::apply(&Database::parse(url)?).await
}

/// A PostgreSQL database, opened. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    location: String,
    ingest: ingest::Sender,
    finish: queue::FinishSender,
    tasks: Mutex<Option<Tasks>>,
    /// How long [`PgStore::wait_for_work`] waits without a notification.
    poll: Duration,
    /// Whether [`PgStore::prune`] vacuums what it deleted from (the server's autovacuum is
    /// off).
    vacuum: bool,
}

/// What the background tasks share with the store.
struct Shared {
    pool: Pool,
    /// Connections for claims, finishing, announcements and reads ahead, set up once so that
    /// each of those is a statement alone, with no transaction block around it:
    /// - their commits do not wait for the WAL flush: a claim, a turn or an announcement lost
    ///   in a database crash only means a delivery is worked again (at least once), and the
    ///   flush was most of their cost;
    /// - the planner keeps off sequential scans: each finds its rows by key, yet with the
    ///   queue's statistics missing or stale (a young table, autovacuum off or behind) it
    ///   picked whole-table scans — claims of 40–70 ms, finishing groups reading every dead
    ///   row of the queue's churn;
    /// - their prepared statements keep one generic plan: each finds its rows by key, from
    ///   arrays, whatever their values, yet with small groups (three hosts) PostgreSQL judged
    ///   a finishing group's custom plan cheaper and planned all but 4 % of 6,300 groups
    ///   afresh — a third as much CPU again as executing them.
    queue_pool: Pool,
    /// This process: the mark on the queue entries it claims.
    me: Uuid,
    /// Queue entries: exact for this process's own writes, resynced every few seconds.
    depth: AtomicU64,
    /// Set when queue entries may have been written: wakes [`PgStore::wait_for_work`].
    work: Notify,
    /// The queue may hold entries for this host that only a claim from the database finds
    /// (written unclaimed, by another host or for a lane not kept here then; returned; or a
    /// notification missed): the next [`PgStore::claim`] asks the database, not only `kept`.
    unclaimed: AtomicBool,
    /// Entries this process wrote claimed already (see `ingest.rs`), for its engine's next
    /// claim; those of a lane released are dropped with the release (returned in the
    /// database by it).
    kept: Mutex<Vec<QueueEntry>>,
    /// Set when other hosts should hear that queue entries were written (see `queue.rs`).
    announce: Notify,
    /// Set when another host wrote a change (see [`PgStore::changes_since`]).
    changes: Notify,
    /// The webhooks' lanes this process owns (see `lanes/`).
    lanes: lanes::Lanes,
}

impl Shared {
    /// Unclaimed entries were written for these webhooks (`entries` new ones).
    fn queued<'a>(&self, entries: u64, webhooks: impl IntoIterator<Item = &'a str>) {
        self.depth.fetch_add(entries, Ordering::Relaxed);
        let (wake, tell) = self.lanes.wrote(webhooks, self.me);
        if wake {
            self.wake_to_claim();
        }
        if tell {
            self.announce.notify_one();
        }
    }

    /// Entries were written claimed by this process, for its own engine: no claim, and
    /// nothing to tell other hosts.
    fn kept_written(&self, entries: Vec<QueueEntry>) {
        if entries.is_empty() {
            return;
        }
        self.depth.fetch_add(entries.len() as u64, Ordering::Relaxed);
        self.kept().extend(entries);
        self.work.notify_one();
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<QueueEntry>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the engine to claim from the database.
    fn wake_to_claim(&self) {
        self.unclaimed.store(true, Ordering::Relaxed);
        self.work.notify_one();
    }

    fn dequeued(&self, entries: u64) {
        let _ = self
            .depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| Some(d.saturating_sub(entries)));
    }
}

struct Tasks {
    ingest: JoinHandle<()>,
    finish: JoinHandle<()>,
    /// Listener, announcer, depth resync, heartbeat: stopped, not drained.
    helpers: Vec<JoinHandle<()>>,
}

/// The tables retention deletes from, and the queue (the most churned of all).
const VACUUM: &str =
    "VACUUM (SKIP_LOCKED) events, idempotency, changes, deliveries, attempts, queue, lanes, hosts";

impl Drop for Inner {
    fn drop(&mut self) {
        // Ingest and finishing end on their own once their channels close with this.
        if let Some(tasks) = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            tasks.helpers.iter().for_each(JoinHandle::abort);
        }
    }
}

impl PgStore {
    /// Opens the database at `url` (`postgres://user:password@host:port/dbname?…`). Needs a
    /// tokio runtime (for its background tasks).
    pub async fn open(url: &str, migrate: Migrate) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, migrate, queue::POLL, lanes::Timing::DEFAULT).await
    }

    async fn open_with(
        url: &str,
        migrate: Migrate,
        poll: Duration,
        timing: lanes::Timing,
    ) -> Result<PgStore, StoreError> {
        let database = Database::parse(url)?;
        let location = database.describe();
        if migrate == Migrate::Apply {
            schema::apply(&database).await?;
        }
        let pool = database.pool(POOL_SIZE)?;
        let mut queue_database = database.clone();
        let options = match database.config.get_options() {
            Some(theirs) => format!("{theirs} {QUEUE_SESSION}"),
            None => QUEUE_SESSION.to_owned(),
        };
        queue_database.config.options(&options);
        let queue_pool = queue_database.pool(QUEUE_POOL_SIZE)?;
        let client = pool.get().await.map_err(|e| {
            StoreError::Unavailable(format!("cannot reach {location}: {}", pool_error_text(&e)))
        })?;
        schema::check(&client, &location).await?;
        let depth: i64 = client.query_one("SELECT count(*) FROM queue", &[]).await.map_err(pg_error)?.get(0);
        let autovacuum: bool = client
            .query_one("SELECT current_setting('autovacuum')::bool", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        if !autovacuum {
            tracing::warn!(
                "autovacuum is off on {location}: wasmhook analyzes its own tables as they change and \
                 vacuums them after each retention pass, but other tables of this server will bloat"
            );
        }
        drop(client);
        let shared = Arc::new(Shared {
            pool,
            queue_pool,
            me: Uuid::now_v7(),
            depth: AtomicU64::new(uint(depth)),
            work: Notify::new(),
            // Whatever was queued before this start waits in the database.
            unclaimed: AtomicBool::new(true),
            kept: Mutex::default(),
            announce: Notify::new(),
            changes: Notify::new(),
            lanes: lanes::Lanes::new(timing),
        });
        // This host is live, and has the lanes it should have, before anything is claimed.
        lanes::beat(&shared).await?;
        let (ingest, ingest_task) = ingest::start(shared.clone());
        let (finish, finish_task) = queue::start_finishing(shared.clone());
        let mut helpers = vec![
            tokio::spawn(queue::listen(database, shared.clone())),
            tokio::spawn(queue::announce(shared.clone())),
            tokio::spawn(queue::resync_depth(shared.clone())),
            // Last: see `stop_heartbeat`.
            tokio::spawn(lanes::heartbeat(shared.clone())),
        ];
        if !autovacuum {
            helpers.insert(0, tokio::spawn(analyze::run(shared.clone())));
        }
        let tasks = Tasks { ingest: ingest_task, finish: finish_task, helpers };
        let inner = Inner {
            shared,
            location,
            ingest,
            finish,
            tasks: Mutex::new(Some(tasks)),
            poll,
            vacuum: !autovacuum,
        };
        Ok(PgStore { inner: Arc::new(inner) })
    }

    /// Stops this host's heartbeat alone, as if it had lost touch with the database.
    #[cfg(test)]
    fn stop_heartbeat(&self) {
        let tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(heartbeat) = tasks.as_ref().and_then(|tasks| tasks.helpers.last()) {
            heartbeat.abort();
        }
    }

    /// The database, for messages: `postgres host:port/dbname`, never the password.
    pub fn describe(&self) -> String {
        self.inner.location.clone()
    }

    /// Stops the background tasks: writes already handed to them are finished first. Then
    /// this host leaves: its lanes go to the other hosts at once (see `lanes/`).
    pub async fn close(&self) -> Result<(), StoreError> {
        let tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(tasks) = tasks else { return Ok(()) };
        tasks.helpers.iter().for_each(JoinHandle::abort);
        self.inner.ingest.stop();
        self.inner.finish.stop();
        let _ = tasks.ingest.await;
        let _ = tasks.finish.await;
        if let Err(error) = lanes::leave(&self.inner.shared, queue::CHANNEL).await {
            // Its lanes go to other hosts when its leases expire instead.
            tracing::warn!(%error, "could not hand this host's lanes over on stopping");
        }
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner.shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&statement, params).await.map_err(pg_error)
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query_opt(&statement, params).await.map_err(pg_error)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.execute(&statement, params).await.map_err(pg_error)
    }

    /// Runs a write and, when it wrote a row, records `change` for other hosts — in one
    /// transaction, so no host misses a change nor hears of one that did not happen.
    async fn write_recording(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        (kind, key): (&str, &str),
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let statement = transaction.prepare_cached(sql).await.map_err(pg_error)?;
        let written = transaction.execute(&statement, params).await.map_err(pg_error)?;
        if written > 0 {
            let me = &self.inner.shared.me;
            let record = transaction.prepare_cached(RECORD_CHANGE).await.map_err(pg_error)?;
            transaction.execute(&record, &[&kind, &key, me]).await.map_err(pg_error)?;
            // Sent when the transaction commits, and only then. Changes are rare: the notify
            // lock this takes at commit costs nothing worth measuring.
            let notify = transaction.prepare_cached("SELECT pg_notify($1, $2)").await.map_err(pg_error)?;
            transaction.execute(&notify, &[&CHANGES_CHANNEL, &me.to_string()]).await.map_err(pg_error)?;
        }
        transaction.commit().await.map_err(pg_error)?;
        Ok(written)
    }

    // Webhooks.

    /// Stores a new webhook (at its revision).
    pub async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        self.write_recording(
            "INSERT INTO webhooks (id, created_by_id, revision, record) VALUES ($1, $2, $3, $4)",
            &[&webhook.id, &webhook.created_by_id, &int(webhook.revision), &encode(webhook)],
            ("webhook", &webhook.id),
        )
        .await?;
        Ok(())
    }

    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let row = self.query_opt("SELECT id, revision, record FROM webhooks WHERE id = $1", &[&id]).await?;
        row.map(|row| webhook_from(&row)).transpose()
    }

    /// Every webhook, by id.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let rows = self.query("SELECT id, revision, record FROM webhooks ORDER BY id", &[]).await?;
        rows.iter().map(webhook_from).collect()
    }

    /// A page of webhooks by id, after `after`, those created by `owner` only when given.
    pub async fn webhooks_page(
        &self,
        owner: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Webhook>, StoreError> {
        // One statement per combination rather than `$1 IS NULL OR …`, so each has a plan
        // that uses the index.
        let mut sql = String::from("SELECT id, revision, record FROM webhooks WHERE true");
        let limit = int(limit as u64);
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(owner) = &owner {
            params.push(owner);
            sql += &format!(" AND created_by_id = ${}", params.len());
        }
        if let Some(after) = &after {
            params.push(after);
            sql += &format!(" AND id > ${}", params.len());
        }
        params.push(&limit);
        sql += &format!(" ORDER BY id LIMIT ${}", params.len());
        let rows = self.query(&sql, &params).await?;
        rows.iter().map(webhook_from).collect()
    }

    /// Stores `webhook` with its revision bumped, if the stored one is still at
    /// `webhook.revision`: `false` when another writer got there first, or it is gone.
    pub async fn swap_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        let next = Webhook { revision: webhook.revision + 1, ..webhook.clone() };
        let swapped = self
            .write_recording(
                "UPDATE webhooks SET revision = $3, created_by_id = $4, record = $5
                 WHERE id = $1 AND revision = $2",
                &[
                    &webhook.id,
                    &int(webhook.revision),
                    &int(next.revision),
                    &next.created_by_id,
                    &encode(&next),
                ],
                ("webhook", &webhook.id),
            )
            .await?;
        Ok(swapped == 1)
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.write_recording("DELETE FROM webhooks WHERE id = $1", &[&id], ("webhook", id)).await? == 1)
    }

    // Users.

    pub async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.write_recording(
            "INSERT INTO users (id, record) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET record = excluded.record",
            &[&user.id, &encode(user)],
            ("user", &user.id),
        )
        .await?;
        Ok(())
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = self.query_opt("SELECT record FROM users WHERE id = $1", &[&id]).await?;
        row.map(|row| decode("users", id, row.get(0))).transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = self.query("SELECT id, record FROM users ORDER BY id", &[]).await?;
        rows.iter().map(|row| decode("users", row.get(0), row.get(1))).collect()
    }

    // Tokens, found by the hash of their text.

    pub async fn put_token(&self, hash: &[u8; 32], token: &Token) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO tokens (id, hash, record) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, record = excluded.record",
            &[&token.id, &hash.as_slice(), &encode(token)],
        )
        .await?;
        Ok(())
    }

    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Token>, StoreError> {
        let row =
            self.query_opt("SELECT id, record FROM tokens WHERE hash = $1", &[&hash.as_slice()]).await?;
        row.map(|row| decode("tokens", row.get(0), row.get(1))).transpose()
    }

    pub async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        let rows = self.query("SELECT id, record FROM tokens ORDER BY id", &[]).await?;
        rows.iter().map(|row| decode("tokens", row.get(0), row.get(1))).collect()
    }

    pub async fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM tokens WHERE id = $1", &[&id]).await? == 1)
    }

    // Uploaded connectors: name → component bytes.

    pub async fn put_connector(&self, name: &str, component: &[u8]) -> Result<(), StoreError> {
        self.write_recording(
            "INSERT INTO connectors (name, component, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (name) DO UPDATE SET component = excluded.component, updated_at = now()",
            &[&name, &component],
            ("connector", name),
        )
        .await?;
        Ok(())
    }

    pub async fn delete_connector(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .write_recording("DELETE FROM connectors WHERE name = $1", &[&name], ("connector", name))
            .await?
            == 1)
    }

    pub async fn connectors(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = self.query("SELECT name, component FROM connectors ORDER BY name", &[]).await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    // Dead letters of broker sources.

    pub async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let at_ms = int(super::millis(letter.at));
        self.execute(
            "INSERT INTO dead_letters (source, id, at_ms, record) VALUES ($1, $2, $3, $4)",
            &[&letter.source, &letter.id, &at_ms, &encode(letter)],
        )
        .await?;
        Ok(())
    }

    pub async fn dead_letters(
        &self,
        source: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT record FROM dead_letters WHERE source = $1 AND ($2::text IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3",
                &[&source, &before, &limit],
            )
            .await?;
        rows.iter().map(|row| decode("dead_letters", source, row.get(0))).collect()
    }

    // Events and deliveries.

    /// Stores events with their deliveries and queue entries (see `ingest.rs`).
    pub async fn accept(
        &self,
        batch: &[Accept],
        key: Option<&IdempotencyKey>,
        now_ms: u64,
    ) -> Result<Stored, StoreError> {
        ingest::accept(&self.inner.shared, &self.inner.ingest, batch, key, now_ms).await
    }

    pub async fn event(&self, company_id: &str, id: &str) -> Result<Option<Event>, StoreError> {
        let row = self
            .query_opt("SELECT record FROM events WHERE company_id = $1 AND id = $2", &[&company_id, &id])
            .await?;
        row.map(|row| decode("events", id, row.get(0))).transpose()
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let row = self.query_opt("SELECT record FROM deliveries WHERE id = $1", &[&id]).await?;
        row.map(|row| decode("deliveries", id, row.get(0))).transpose()
    }

    /// The deliveries still stored of `ids`, in any order.
    pub async fn deliveries_by_id(&self, ids: &[&str]) -> Result<Vec<Delivery>, StoreError> {
        let rows = self.read_by_key("SELECT id, record FROM deliveries WHERE id = ANY($1)", &[&ids]).await?;
        rows.iter().map(|row| decode("deliveries", row.get::<_, &str>(0), row.get(1))).collect()
    }

    /// The events still stored of `keys` (company, id), in any order.
    pub async fn events_by_key(&self, keys: &[(String, String)]) -> Result<Vec<Event>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (companies, ids): (Vec<&str>, Vec<&str>) =
            keys.iter().map(|(company, id)| (company.as_str(), id.as_str())).unzip();
        let sql = "SELECT e.id, e.record FROM unnest($1::text[], $2::text[]) AS k(company_id, id)
                   JOIN events e ON e.company_id = k.company_id AND e.id = k.id";
        let rows = self.read_by_key(sql, &[&companies, &ids]).await?;
        rows.iter().map(|row| decode("events", row.get::<_, &str>(0), row.get(1))).collect()
    }

    /// A read of rows by their keys, kept off sequential scans (on the queue's connections):
    /// on missing or stale statistics the planner may otherwise scan a whole table for them.
    async fn read_by_key(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let shared = &self.inner.shared;
        let client =
            shared.queue_pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&statement, params).await.map_err(pg_error)
    }

    /// A webhook's deliveries, newest first (ids are UUIDv7: by id, descending).
    pub async fn deliveries_of(
        &self,
        webhook_id: &str,
        query: &DeliveryQuery<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let statuses: Vec<String> = query.statuses.iter().map(|s| status_name(*s)).collect();
        let limit = int(query.limit as u64);
        let mut sql = String::from("SELECT id, record FROM deliveries WHERE webhook_id = $1");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&webhook_id];
        if let Some(before) = &query.before {
            params.push(before);
            sql += &format!(" AND id < ${}", params.len());
        }
        if !statuses.is_empty() {
            params.push(&statuses);
            sql += &format!(" AND status = ANY(${})", params.len());
        }
        if let Some(since) = &query.since {
            params.push(since);
            sql += &format!(" AND created_at >= ${}", params.len());
        }
        params.push(&limit);
        sql += &format!(" ORDER BY id DESC LIMIT ${}", params.len());
        let rows = self.query(&sql, &params).await?;
        rows.iter().map(|row| decode("deliveries", row.get(0), row.get(1))).collect()
    }

    /// Every attempt of each delivery, oldest first, in the order of `ids`: one query.
    pub async fn attempts_of(&self, ids: &[String]) -> Result<Vec<Vec<Attempt>>, StoreError> {
        let rows = self
            .query(
                "SELECT delivery_id, record FROM attempts WHERE delivery_id = ANY($1)
                 ORDER BY delivery_id, at, message_id",
                &[&ids],
            )
            .await?;
        let mut by_id: std::collections::HashMap<&str, Vec<Attempt>> = std::collections::HashMap::new();
        for row in &rows {
            let id: &str = row.get(0);
            by_id.entry(id).or_default().push(decode("attempts", id, row.get(1))?);
        }
        // The same id twice gets its attempts twice.
        Ok(ids.iter().map(|id| by_id.get(id.as_str()).cloned().unwrap_or_default()).collect())
    }

    /// Puts a finished or paused delivery back in the queue, due at `now_ms`, unclaimed, in
    /// its new state: `false` (nothing written) if the stored one is pending.
    pub async fn requeue(&self, delivery: &Delivery, now_ms: u64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let current = transaction
            .query_opt("SELECT status FROM deliveries WHERE id = $1 FOR UPDATE", &[&delivery.id])
            .await
            .map_err(pg_error)?;
        let pending = status_name(DeliveryStatus::Pending);
        if current.is_some_and(|row| row.get::<_, &str>(0) == pending) {
            return Ok(false); // dropping the transaction rolls it back
        }
        transaction
            .execute(
                "INSERT INTO deliveries (id, webhook_id, status, created_at, record)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET webhook_id = excluded.webhook_id,
                     status = excluded.status, created_at = excluded.created_at, record = excluded.record",
                &[
                    &delivery.id,
                    &delivery.webhook_id,
                    &status_name(delivery.status),
                    &delivery.created_at,
                    &encode(delivery),
                ],
            )
            .await
            .map_err(pg_error)?;
        let inserted: bool = transaction
            .query_one(
                "INSERT INTO queue (delivery_id, webhook_id, due_ms, claimed_by) VALUES ($1, $2, $3, NULL)
                 ON CONFLICT (delivery_id) DO UPDATE SET webhook_id = excluded.webhook_id,
                     due_ms = excluded.due_ms, claimed_by = NULL
                 RETURNING xmax = 0",
                &[&delivery.id, &delivery.webhook_id, &int(now_ms)],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        transaction.commit().await.map_err(pg_error)?;
        // Already an entry (a stale one) when not inserted: it was moved, unclaimed; still
        // worth a wake.
        self.inner.shared.queued(u64::from(inserted), [delivery.webhook_id.as_str()]);
        Ok(true)
    }

    /// Deletes events and idempotency keys accepted before `cutoff_ms`, and finished (not
    /// queued) deliveries created before it with their attempts; returns how many records
    /// went. Batches of [`PRUNE_BATCH`] rows, each its own short statement.
    pub async fn prune(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let cutoff = int(cutoff_ms);
        let cutoff_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(cutoff) * 1_000_000)
            .map_err(|e| StoreError::Unavailable(format!("prune cutoff: {e}")))?;
        let pending = status_name(DeliveryStatus::Pending);
        let mut removed = 0u64;
        // `ctid = ANY(ARRAY(…))` is planned as a TID scan: the rows found, and no others.
        for sql in [
            "DELETE FROM events WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM events WHERE accepted_ms < $1 LIMIT $2))",
            "DELETE FROM idempotency WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM idempotency WHERE accepted_ms < $1 LIMIT $2))",
            // Hosts read changes within seconds; a host that was away reloads everything.
            "DELETE FROM changes WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM changes WHERE at < to_timestamp($1::int8 / 1000.0) LIMIT $2))",
            "DELETE FROM dead_letters WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM dead_letters WHERE at_ms < $1 LIMIT $2))",
            "DELETE FROM shadow_runs WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM shadow_runs WHERE at_ms < $1 LIMIT $2))",
        ] {
            loop {
                let batch = self.execute(sql, &[&cutoff, &PRUNE_BATCH]).await?;
                removed += batch;
                if batch < PRUNE_BATCH as u64 {
                    break;
                }
            }
        }
        loop {
            let row = self
                .query_opt(
                    "WITH gone AS (
                         DELETE FROM deliveries WHERE ctid = ANY(ARRAY(
                             SELECT ctid FROM deliveries d
                             WHERE created_at < $1 AND status <> $2
                               AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.delivery_id = d.id)
                             LIMIT $3))
                         RETURNING id
                     ), attempts_gone AS (
                         DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone) RETURNING 1
                     )
                     SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM attempts_gone)",
                    &[&cutoff_at, &pending, &PRUNE_BATCH],
                )
                .await?;
            let (deliveries, attempts): (i64, i64) = row.map(|r| (r.get(0), r.get(1))).unwrap_or((0, 0));
            removed += uint(deliveries) + uint(attempts);
            if deliveries < PRUNE_BATCH {
                break;
            }
        }
        if self.inner.vacuum {
            // Without it, deleted rows (and the queue's churn) are never reclaimed: tables grow
            // for ever and every scan of the queue reads its dead rows. SKIP_LOCKED: another
            // host vacuuming the same table already does the job.
            let client = self.client().await?;
            client.batch_execute(VACUUM).await.map_err(pg_error)?;
        }
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    /// Bytes the database takes on disk.
    pub async fn size_on_disk(&self) -> Result<u64, StoreError> {
        let row = self.query_opt("SELECT pg_database_size(current_database())", &[]).await?;
        Ok(row.map(|row| uint(row.get(0))).unwrap_or(0))
    }

    // Changes made by other hosts.

    /// Where the changes stand now: what is read after this comes after.
    pub async fn changes_cursor(&self) -> Result<u64, StoreError> {
        let row = self.query_opt("SELECT seq FROM change_counter", &[]).await?;
        Ok(row.map_or(0, |row| uint(row.get(0))))
    }

    /// Changes other processes recorded after `cursor`, oldest first, and the cursor to ask
    /// with next.
    pub async fn changes_since(&self, cursor: u64) -> Result<(Vec<Change>, u64), StoreError> {
        let rows = self
            .query(
                "SELECT seq, kind, key, host FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&int(cursor), &CHANGES_PAGE],
            )
            .await?;
        let mut next = cursor;
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            next = uint(row.get(0));
            let (kind, key, host): (&str, String, Uuid) = (row.get(1), row.get(2), row.get(3));
            if host == self.inner.shared.me {
                continue; // made here, applied here already
            }
            changes.push(match kind {
                "webhook" => Change::Webhook(key),
                "user" => Change::User(key),
                "connector" => Change::Connector(key),
                other => return Err(StoreError::Corrupt(format!("changes {next}: unknown kind {other:?}"))),
            });
        }
        Ok((changes, next))
    }

    /// Returns when another process may have recorded a change (the caller also asks again
    /// after a while: notifications are lost while the listener reconnects).
    pub async fn wait_for_changes(&self) {
        self.inner.shared.changes.notified().await;
    }

    // The queue (see `queue.rs`).

    /// Queue entries: exact for this process's writes, resynced from the table every few
    /// seconds (other hosts write too).
    pub fn queue_depth(&self) -> u64 {
        self.inner.shared.depth.load(Ordering::Relaxed)
    }

    /// Takes up to `limit` entries of the webhooks whose lanes this host owns and is not
    /// releasing (see `lanes/`), earliest due first: those this process wrote claimed
    /// already, and — when some may be there — unclaimed ones from the database.
    pub async fn claim(&self, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
        queue::claim(&self.inner.shared, limit).await
    }

    /// Returns when entries may have been written, lanes acquired, or lanes are to be
    /// released (at the latest after the poll).
    pub async fn wait_for_work(&self) {
        let shared = &self.inner.shared;
        if tokio::time::timeout(self.inner.poll, shared.work.notified()).await.is_err() {
            // The safety net: a notification may have been lost.
            shared.unclaimed.store(true, Ordering::Relaxed);
        }
    }

    /// Whether this host works deliveries of the webhook that it ingests: it holds the lane or
    /// should take it, or — for deliveries that may go in any order (`any_order`) — keeps its
    /// share (see `lanes/`). What it ingests for the others is worked elsewhere.
    pub fn works(&self, webhook_id: &str, any_order: bool) -> bool {
        let shared = &self.inner.shared;
        shared.lanes.works(webhook_id, shared.me) || (any_order && shared.lanes.keeps(webhook_id))
    }

    /// How many of the webhook's deliveries this host may run at once, of `cap` for all hosts
    /// together; `None` when it should hand back what it holds of the webhook (see
    /// `lanes/demand.rs`). `shared`: the webhook has no `rateLimit`.
    pub fn share(&self, webhook_id: &str, cap: usize, shared: bool) -> Option<usize> {
        self.inner.shared.lanes.share(webhook_id, cap, shared, self.inner.shared.me)
    }

    /// This host's engine holds no entry of the webhook any more (see `lanes/demand.rs`).
    pub fn emptied(&self, webhook_id: &str) {
        self.inner.shared.lanes.emptied(webhook_id);
    }

    /// Whether this host shares webhooks with the others (see `lanes/demand.rs`); on by
    /// default.
    pub fn share_webhooks(&self, on: bool) {
        self.inner.shared.lanes.share_webhooks(on);
    }

    /// Changes whenever [`PgStore::share`]'s answers may have.
    pub fn shares_version(&self) -> u64 {
        self.inner.shared.lanes.shares_version()
    }

    /// The webhooks whose lanes this host must give up (another live host should work them,
    /// or this host may have lost them), or whose entries it kept as its share while it lost
    /// touch: claims skip them already; each is reported until [`PgStore::release_lane`] is
    /// called for it.
    pub async fn lanes_to_release(&self) -> Vec<String> {
        self.inner.shared.lanes.to_release()
    }

    /// Gives up a webhook's lane once nothing of it runs here: this process's claims of its
    /// entries are returned and the lane deleted, in one transaction; the other hosts are told.
    pub async fn release_lane(&self, webhook_id: &str) -> Result<(), StoreError> {
        lanes::release(&self.inner.shared, webhook_id).await
    }

    pub async fn finish(
        &self,
        entry: &QueueEntry,
        delivery: Option<&Delivery>,
        next_due: Option<u64>,
        attempts: &[Attempt],
    ) -> Result<(), StoreError> {
        queue::finish(&self.inner.finish, entry, delivery, next_due, attempts).await
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data")
}

/// A stored record; `Corrupt` naming the table and the key when it does not read.
fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{table} {key}: {e}")))
}

fn webhook_from(row: &Row) -> Result<Webhook, StoreError> {
    let mut webhook: Webhook = decode("webhooks", row.get(0), row.get(2))?;
    // The column is what compare-and-swap checks; the record agrees unless written by hand.
    webhook.revision = uint(row.get(1));
    Ok(webhook)
}

/// A status as the `status` column holds it: the API's spelling.
fn status_name(status: DeliveryStatus) -> String {
    match serde_json::to_value(status) {
        Ok(Value::String(name)) => name,
        _ => format!("{status:?}"),
    }
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
