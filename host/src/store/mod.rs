//! Storage: one async interface with two backends behind it, chosen at start — sled (one
//! host, embedded) and PostgreSQL (one host or many on one database).
//!
//! The interface is shaped for SQL: every call is async; a write returns once it is durable
//! (except a delivery's outcome, whose loss in a crash only means the delivery is worked
//! again); no closure runs inside a backend — filters, bounds and cursors are arguments;
//! updates are compare-and-swap on a revision; errors are [`StoreError`]s that name no
//! backend. Nothing outside this module names sled or SQL.
//!
//! The delivery queue lives here too: ingest and requeue write entries; the engine *claims*
//! them (entries not yet claimed by this process, in due order), works them and finishes
//! them — rescheduled (still claimed) or removed. [`Store::wait_for_work`] wakes the engine
//! when entries are written, so no writer hands anything over.

mod group;
mod postgres;
mod recent;
mod sled;
pub mod transfer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::access::{Token, User};
use crate::domain::connector_version::{ConnectorHead, ConnectorVersion, ShadowRun};
use crate::domain::dead_letter::DeadLetter;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::webhook::Webhook;
use recent::Missing;

/// Why storage could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Storage cannot take or give data right now (a full or failing disk, an unreachable
    /// database): try again later.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("{location} was written by a newer wasmhook (schema {found}, this one knows {known})")]
    NewerSchema { location: String, found: u64, known: u64 },
    #[error("a stored record is damaged: {0}")]
    Corrupt(String),
    #[error("the database {location} is damaged: {reason}")]
    Damaged { location: String, reason: String },
    #[error("storage could not make the write durable: {0}")]
    NotDurable(String),
    /// The database's schema is behind this version, and it was not asked to migrate.
    #[error("{0}")]
    Behind(String),
    /// Storage will not do what was asked, for the reason given (another process holds the
    /// database, there is no database there, …); nothing was changed.
    #[error("{0}")]
    Refused(String),
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// An embedded sled database in this directory.
    Sled(PathBuf),
    /// A PostgreSQL database (`postgres://…`).
    Postgres(String),
}

/// For messages: the directory, or the database without its password.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sled(dir) => write!(f, "{}", dir.display()),
            Location::Postgres(url) => f.write_str(&postgres::describe_url(url)),
        }
    }
}

/// One event to accept, with the deliveries it makes and the answer to give for it.
pub struct Accept {
    /// Shared: storage encodes it and keeps it for the first turns without copying it.
    pub event: Arc<Event>,
    pub deliveries: Vec<Delivery>,
    pub response: Value,
    /// The deliveries' webhooks that are not `ordered`: storage may hand their queue entries
    /// to this host's engine as it writes them, without a claim — with several hosts, even
    /// where another host holds the lane (see [`Store::share`]). An `ordered` webhook's entry
    /// waits for a claim, which finds it in order with those other hosts wrote before it.
    /// Empty is always safe.
    pub unordered: Vec<String>,
}

/// What ingest answers for one event: its answer, and whether it was accepted before (then
/// the answer is the first one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub response: Value,
    pub duplicate: bool,
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
#[derive(Debug)]
pub enum Stored {
    /// Stored and durable (events seen before were skipped): one outcome per event, in order.
    Accepted(Vec<Outcome>),
    /// The key was used before with this endpoint and body: the first outcomes, nothing stored.
    Replay(Vec<Outcome>),
    /// The key was used before with another endpoint or body: why; nothing stored.
    KeyConflict(String),
}

/// A delivery waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub delivery_id: String,
    pub webhook_id: String,
    /// When it may be worked (ms since the epoch).
    pub due_ms: u64,
    /// When storage has it due: `due_ms` may be moved in memory alone (a retry after a
    /// storage error), and sled keys its queue by this time.
    stored_due_ms: u64,
}

impl QueueEntry {
    pub fn new(due_ms: u64, delivery_id: &str, webhook_id: &str) -> Self {
        QueueEntry {
            delivery_id: delivery_id.to_owned(),
            webhook_id: webhook_id.to_owned(),
            due_ms,
            stored_due_ms: due_ms,
        }
    }
}

/// A change that hosts sharing the database must apply to what they hold in memory; each
/// reads the record's current state from storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    Webhook(String),
    User(String),
    Connector(String),
}

/// Which of a webhook's deliveries to list, newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryQuery<'a> {
    /// Only those older than this delivery (the cursor).
    pub before: Option<&'a str>,
    /// Only these statuses; empty for any.
    pub statuses: &'a [DeliveryStatus],
    /// Only those created at or after this time.
    pub since: Option<OffsetDateTime>,
    pub limit: usize,
}

impl DeliveryQuery<'_> {
    pub(crate) fn keeps(&self, delivery: &Delivery) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&delivery.status))
            && self.since.is_none_or(|since| delivery.created_at >= since)
    }
}

/// Whether a key could name a stored record: no stored id holds a NUL (PostgreSQL's text
/// cannot), so a lookup by one finds nothing on either backend rather than failing on one.
fn storable(key: &str) -> bool {
    !key.contains('\0')
}

/// Milliseconds since the Unix epoch: the time of queue entries and expiry.
pub fn millis(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The current time in [`millis`].
pub fn now_ms() -> u64 {
    millis(OffsetDateTime::now_utc())
}

/// Applies pending schema migrations to the PostgreSQL database at `url` (what `wasmhook
/// migrate --database URL` does); returns the versions applied. The embedded database
/// upgrades itself when opened.
pub async fn migrate_postgres(url: &str) -> Result<Vec<u64>, StoreError> {
    postgres::migrate(url).await
}

/// The most one (webhook, connector) state store may hold.
#[derive(Debug, Clone, Copy)]
pub struct StateQuota {
    pub keys: usize,
    /// Keys and values together.
    pub bytes: usize,
}

/// Storage: the backend in use, and what ingest wrote here lately, read back from memory
/// (`recent`). Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    events: recent::RecentEvents,
    fresh: recent::FreshDeliveries,
}

#[derive(Clone)]
enum Backend {
    Sled(sled::SledStore),
    Postgres(postgres::PgStore),
}

/// Runs the same call on whichever backend this is.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $call:expr) => {
        match &$store.backend {
            Backend::Sled($backend) => $call,
            Backend::Postgres($backend) => $call,
        }
    };
}

impl Store {
    /// Opens (or creates) the database at `location`; `migrate` applies pending schema
    /// migrations (the embedded database always upgrades itself). Needs a tokio runtime.
    pub async fn open(location: &Location, migrate: bool) -> Result<Store, StoreError> {
        let backend = match location {
            Location::Sled(dir) => Backend::Sled(sled::SledStore::open(dir)?),
            Location::Postgres(url) => {
                let migrate = if migrate { postgres::Migrate::Apply } else { postgres::Migrate::Check };
                Backend::Postgres(postgres::PgStore::open(url, migrate).await?)
            }
        };
        let (events, fresh) = (recent::RecentEvents::events(), recent::FreshDeliveries::deliveries());
        Ok(Store { backend, events, fresh })
    }

    /// The database, for messages (never a password).
    pub fn describe(&self) -> String {
        on_backend!(self, backend => backend.describe())
    }

    /// Makes everything durable and records a clean stop.
    pub async fn close(&self) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.close().await)
    }

    // Webhooks.

    /// Stores a new webhook.
    pub async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.insert_webhook(webhook).await)
    }

    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        on_backend!(self, backend => backend.webhook(id).await)
    }

    /// Every webhook (to build the match index).
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        on_backend!(self, backend => backend.webhooks().await)
    }

    /// A page of webhooks by id, after `after`, those of `owner` only when given.
    pub async fn webhooks_page(
        &self,
        owner: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Webhook>, StoreError> {
        if !owner.is_none_or(storable) || !after.is_none_or(storable) {
            return Ok(Vec::new());
        }
        on_backend!(self, backend => backend.webhooks_page(owner, after, limit).await)
    }

    /// Stores `webhook` (its revision bumped) if the stored one is still at
    /// `webhook.revision`; `false` when another writer got there first, or it is gone.
    pub async fn swap_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        on_backend!(self, backend => backend.swap_webhook(webhook).await)
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        if !storable(id) {
            return Ok(false);
        }
        on_backend!(self, backend => backend.delete_webhook(id).await)
    }

    /// Changes a webhook by compare-and-swap: `change` runs again on the newer record when
    /// another writer got there first, so neither undoes the other. `change` says whether it
    /// changed anything; the stored webhook is returned when it did.
    pub async fn update_webhook<E: From<StoreError>>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Webhook) -> Result<bool, E>,
    ) -> Result<Option<Webhook>, E> {
        loop {
            let Some(mut webhook) = self.webhook(id).await? else { return Ok(None) };
            if !change(&mut webhook)? {
                return Ok(None);
            }
            if self.swap_webhook(&webhook).await? {
                webhook.revision += 1;
                return Ok(Some(webhook));
            }
        }
    }

    // Users: id → the companies they may see.

    pub async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.put_user(user).await)
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        on_backend!(self, backend => backend.user(id).await)
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        on_backend!(self, backend => backend.users().await)
    }

    // Tokens, found by the hash of their text.

    pub async fn put_token(&self, hash: &[u8; 32], token: &Token) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.put_token(hash, token).await)
    }

    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Token>, StoreError> {
        on_backend!(self, backend => backend.token_by_hash(hash).await)
    }

    pub async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        on_backend!(self, backend => backend.tokens().await)
    }

    pub async fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        if !storable(id) {
            return Ok(false);
        }
        on_backend!(self, backend => backend.delete_token(id).await)
    }

    // Uploaded connectors: name → component bytes.

    pub async fn put_connector(&self, name: &str, component: &[u8]) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.put_connector(name, component).await)
    }

    pub async fn delete_connector(&self, name: &str) -> Result<bool, StoreError> {
        on_backend!(self, backend => backend.delete_connector(name).await)
    }

    pub async fn connectors(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        on_backend!(self, backend => backend.connectors().await)
    }

    // Connector versions (every upload kept), which is in which role, and shadow runs.

    /// Keeps one upload of `name`.
    pub async fn add_connector_version(
        &self,
        name: &str,
        record: &ConnectorVersion,
        component: &[u8],
    ) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.add_connector_version(name, record, component).await)
    }

    /// Every kept version of `name`, oldest first.
    pub async fn connector_versions(&self, name: &str) -> Result<Vec<ConnectorVersion>, StoreError> {
        on_backend!(self, backend => backend.connector_versions(name).await)
    }

    pub async fn connector_component(&self, name: &str, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
        on_backend!(self, backend => backend.connector_component(name, version).await)
    }

    pub async fn delete_connector_versions(&self, name: &str, versions: &[u32]) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.delete_connector_versions(name, versions).await)
    }

    pub async fn connector_head(&self, name: &str) -> Result<Option<ConnectorHead>, StoreError> {
        on_backend!(self, backend => backend.connector_head(name).await)
    }

    /// Stores which version of `name` is in which role (other hosts hear of it).
    pub async fn put_connector_head(&self, name: &str, head: &ConnectorHead) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.put_connector_head(name, head).await)
    }

    /// Forgets every version of a connector, its head and its shadow runs.
    pub async fn forget_connector(&self, name: &str) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.forget_connector(name).await)
    }

    /// Keeps what a shadowing candidate did (not made durable at once: a lost run is only a
    /// lost comparison).
    pub async fn add_shadow_run(&self, run: &ShadowRun) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.add_shadow_run(run).await)
    }

    /// A connector's shadow runs, newest first, older than the one with id `before` if given.
    pub async fn shadow_runs(
        &self,
        connector: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ShadowRun>, StoreError> {
        if !storable(connector) || before.is_some_and(|id| !storable(id)) {
            return Ok(Vec::new());
        }
        on_backend!(self, backend => backend.shadow_runs(connector, before, limit).await)
    }

    // Dead letters of broker sources.

    pub async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.add_dead_letter(letter).await)
    }

    /// A source's dead letters, newest first, older than the one with id `before` if given.
    pub async fn dead_letters(
        &self,
        source: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        if !storable(source) || before.is_some_and(|id| !storable(id)) {
            return Ok(Vec::new());
        }
        on_backend!(self, backend => backend.dead_letters(source, before, limit).await)
    }

    // Connectors' state, per webhook and connector (deleted with the webhook).

    pub async fn plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        on_backend!(self, backend => backend.plugin_state(webhook_id, connector, key).await)
    }

    /// Keeps `value` under `key`; `false` (nothing written) when the scope's store would go
    /// over `quota`. Durable when it returns, or (sled) with the next durable write.
    pub async fn set_plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
        value: &str,
        quota: StateQuota,
    ) -> Result<bool, StoreError> {
        on_backend!(self, backend => backend.set_plugin_state(webhook_id, connector, key, value, quota).await)
    }

    pub async fn delete_plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.delete_plugin_state(webhook_id, connector, key).await)
    }

    /// The keys starting with `prefix`, in byte order.
    pub async fn plugin_state_keys(
        &self,
        webhook_id: &str,
        connector: &str,
        prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        on_backend!(self, backend => backend.plugin_state_keys(webhook_id, connector, prefix).await)
    }

    // Events and deliveries.

    /// Stores events with their deliveries and queue entries (due at `now_ms`), all or
    /// nothing, skipping events whose id was seen before in their company. Under an
    /// `Idempotency-Key` the outcomes are stored with the key, checked in the same
    /// transaction — so two requests racing with one key store once. Durable when it returns.
    pub async fn accept(
        &self,
        batch: &[Accept],
        key: Option<&IdempotencyKey>,
        now_ms: u64,
    ) -> Result<Stored, StoreError> {
        // Kept for the first turns this host will run (none for webhooks another host works),
        // before the write: the engine may take an entry as soon as it is written.
        let kept: Vec<Option<Arc<Event>>> = batch
            .iter()
            .map(|accept| {
                let mut turns = accept.deliveries.iter().filter(|delivery| {
                    let any_order = accept.unordered.contains(&delivery.webhook_id);
                    delivery.status == DeliveryStatus::Pending && self.works(&delivery.webhook_id, any_order)
                });
                let first = turns.next()?;
                let event = accept.event.clone();
                for delivery in std::iter::once(first).chain(turns) {
                    self.fresh.remember(delivery, now_ms, Some(event.clone()));
                }
                Some(event)
            })
            .collect();
        let stored = on_backend!(self, backend => backend.accept(batch, key, now_ms).await)?;
        if let Stored::Accepted(outcomes) = &stored {
            for (event, outcome) in kept.into_iter().zip(outcomes) {
                if let Some(event) = event
                    && !outcome.duplicate
                {
                    self.events.keep(event);
                }
            }
        }
        Ok(stored)
    }

    /// An event by its company and id. `Err(Corrupt)` when it is stored but unreadable,
    /// `Ok(None)` when it is gone (pruned).
    pub async fn event(&self, company_id: &str, id: &str) -> Result<Option<Arc<Event>>, StoreError> {
        if !storable(company_id) || !storable(id) {
            return Ok(None);
        }
        if let Some(event) = self.events.event(company_id, id) {
            return Ok(Some(event));
        }
        Ok(on_backend!(self, backend => backend.event(company_id, id).await)?.map(Arc::new))
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        on_backend!(self, backend => backend.delivery(id).await)
    }

    /// The delivery a claimed queue entry stands for: from memory when this host's ingest
    /// wrote both and nothing has worked it since, else from storage.
    pub async fn queued_delivery(&self, entry: &QueueEntry) -> Result<Option<Delivery>, StoreError> {
        match self.fresh.take(&entry.delivery_id, entry.stored_due_ms) {
            Some((delivery, event)) => {
                // Stored as given, since its delivery was: the turn reads it next (here already
                // unless the turn started before ingest's write returned).
                if let Some(event) = event {
                    self.events.offer(event);
                }
                // Taken out of memory: usually the only holder, so nothing is copied.
                Ok(Some(Arc::unwrap_or_clone(delivery)))
            }
            None => self.delivery(&entry.delivery_id).await,
        }
    }

    /// Whether this host works deliveries of the webhook that it ingests: always on the
    /// embedded database; on PostgreSQL, when it holds the webhook's lane or should take it,
    /// or keeps its share of them (`any_order`: they may go in any order).
    fn works(&self, webhook_id: &str, any_order: bool) -> bool {
        match &self.backend {
            Backend::Postgres(backend) => backend.works(webhook_id, any_order),
            Backend::Sled(_) => true,
        }
    }

    /// How many of the webhook's deliveries this host may run at once when `cap` is the
    /// webhook's cap for all hosts together, asked when this host's engine holds entries of
    /// it: all of it on the embedded database. With several hosts, a webhook whose deliveries
    /// may go in any order and that has no `rateLimit` (`shared`) is worked by every host
    /// that ingests its events, within its share of the cap (each keeps what it ingests);
    /// another is worked by its lane owner alone. `None`: this host should hand back what it
    /// holds of the webhook ([`Store::release_lane`]); another host runs it.
    pub fn share(&self, webhook_id: &str, cap: usize, shared: bool) -> Option<usize> {
        match &self.backend {
            Backend::Postgres(backend) => backend.share(webhook_id, cap, shared),
            Backend::Sled(_) => Some(cap),
        }
    }

    /// This host's engine holds no entry of the webhook any more (it held some since
    /// [`Store::share`] was asked): its demand for the webhook's share ends soon.
    pub fn emptied(&self, webhook_id: &str) {
        if let Backend::Postgres(backend) = &self.backend {
            backend.emptied(webhook_id);
        }
    }

    /// Whether hosts share webhooks as [`Store::share`] says (the default), or each webhook is
    /// worked by its lane's host alone. No effect on the embedded database.
    pub fn share_webhooks(&self, on: bool) {
        if let Backend::Postgres(backend) = &self.backend {
            backend.share_webhooks(on);
        }
    }

    /// Changes whenever [`Store::share`]'s answers may have (hosts came or went, or their
    /// demand changed).
    pub fn shares_version(&self) -> u64 {
        match &self.backend {
            Backend::Postgres(backend) => backend.shares_version(),
            Backend::Sled(_) => 0,
        }
    }

    /// Whether [`Store::read_ahead`] saves anything here: storage across the network.
    pub fn reads_ahead(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Reads the deliveries of claimed entries soon to run, and their events, into memory in
    /// two reads, so that their turns find them there ([`Store::queued_delivery`]) instead of
    /// making two round trips each. What is in memory already is skipped (its events kept
    /// as if new: in a backlog they are the oldest kept, next to go); a delivery this host's
    /// ingest kept carries its event, however long the backlog.
    pub async fn read_ahead(&self, entries: &[QueueEntry]) -> Result<(), StoreError> {
        let Backend::Postgres(backend) = &self.backend else { return Ok(()) };
        let mut events: Vec<(String, String)> = Vec::new();
        let mut due: HashMap<&str, u64> = HashMap::new();
        for entry in entries {
            // A delivery ingest kept here carries its event: its turn reads neither.
            match self.fresh.missing(&entry.delivery_id) {
                Missing::Nothing => {}
                Missing::Event(company_id, id) => events.push((company_id, id)),
                Missing::Delivery => {
                    due.insert(entry.delivery_id.as_str(), entry.stored_due_ms);
                }
            }
        }
        if !due.is_empty() {
            let ids: Vec<&str> = due.keys().copied().collect();
            for delivery in backend.deliveries_by_id(&ids).await? {
                events.push((delivery.company_id.clone(), delivery.event_id.clone()));
                if let Some(due_ms) = due.get(delivery.id.as_str()) {
                    self.fresh.remember(&delivery, *due_ms, None);
                }
            }
        }
        events.retain(|(company_id, id)| !self.events.refresh(company_id, id));
        events.sort_unstable();
        events.dedup();
        for event in backend.events_by_key(&events).await? {
            self.events.remember(&event);
        }
        Ok(())
    }

    /// A webhook's deliveries, newest first.
    pub async fn deliveries_of(
        &self,
        webhook_id: &str,
        query: &DeliveryQuery<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        if !storable(webhook_id) || !query.before.is_none_or(storable) {
            return Ok(Vec::new());
        }
        on_backend!(self, backend => backend.deliveries_of(webhook_id, query).await)
    }

    /// Every attempt of each delivery, oldest first, in the order of `ids`.
    pub async fn attempts_of(&self, ids: &[String]) -> Result<Vec<Vec<Attempt>>, StoreError> {
        on_backend!(self, backend => backend.attempts_of(ids).await)
    }

    /// Every attempt of one delivery, oldest first.
    pub async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let mut attempts = self.attempts_of(&[delivery_id.to_owned()]).await?;
        Ok(attempts.pop().unwrap_or_default())
    }

    /// Puts a finished or paused delivery back in the queue, due at `now_ms`, in its new
    /// state. `false` (and nothing written) if it is queued already.
    pub async fn requeue(&self, delivery: &Delivery, now_ms: u64) -> Result<bool, StoreError> {
        on_backend!(self, backend => backend.requeue(delivery, now_ms).await)
    }

    /// Deletes events, idempotency keys, finished deliveries and their attempts accepted
    /// before `cutoff_ms`; queued deliveries are kept whatever their age. Returns how many
    /// records went. Works in small steps, so ingest is never held up for long.
    pub async fn prune(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let removed = on_backend!(self, backend => backend.prune(cutoff_ms).await)?;
        if removed > 0 {
            // What was pruned is gone for every reader, this host's memory included.
            self.events.clear();
            self.fresh.clear();
        }
        Ok(removed)
    }

    /// Bytes the database takes on disk.
    pub async fn size_on_disk(&self) -> Result<u64, StoreError> {
        on_backend!(self, backend => backend.size_on_disk().await)
    }

    // Changes made by other hosts.

    /// Where the changes stand now: read before what they change is loaded, so that nothing
    /// written meanwhile is missed.
    pub async fn changes_cursor(&self) -> Result<u64, StoreError> {
        on_backend!(self, backend => backend.changes_cursor().await)
    }

    /// Changes written since `cursor`, and the cursor to ask with next. A change may come
    /// more than once; applying one is idempotent. The embedded database has one host, so
    /// nothing ever comes.
    pub async fn changes_since(&self, cursor: u64) -> Result<(Vec<Change>, u64), StoreError> {
        on_backend!(self, backend => backend.changes_since(cursor).await)
    }

    /// Returns when changes may have been written (at the latest after a second).
    pub async fn wait_for_changes(&self) {
        on_backend!(self, backend => backend.wait_for_changes().await)
    }

    // The queue.

    /// Deliveries waiting in the queue.
    pub fn queue_depth(&self) -> u64 {
        on_backend!(self, backend => backend.queue_depth())
    }

    /// Takes up to `limit` queue entries this process has not claimed yet, earliest due
    /// first, whatever their due time; they stay claimed until finished. With several hosts,
    /// only entries of the webhooks whose lanes this host owns and is not releasing.
    pub async fn claim(&self, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
        on_backend!(self, backend => backend.claim(limit).await)
    }

    /// Returns when new queue entries may have been written, or lanes changed hands (at the
    /// latest after a few seconds, as a safety net).
    pub async fn wait_for_work(&self) {
        on_backend!(self, backend => backend.wait_for_work().await)
    }

    /// The webhooks whose lanes this host must give up (several hosts: one works each
    /// webhook at a time): another host should work them, or this one may have lost them
    /// (then also those it kept a share of).
    /// [`Store::claim`] returns none of their entries any more; the engine drops those it
    /// holds and calls [`Store::release_lane`] once none of them runs. A lane is reported
    /// again and again until released. Always empty for the embedded database.
    pub async fn lanes_to_release(&self) -> Vec<String> {
        on_backend!(self, backend => backend.lanes_to_release().await)
    }

    /// Gives up a webhook's lane (see [`Store::lanes_to_release`]), or hands back a share of
    /// it ([`Store::share`]), once nothing of it runs here: the entries this process claimed
    /// of it go back to the queue for the host that works the lane.
    pub async fn release_lane(&self, webhook_id: &str) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.release_lane(webhook_id).await)
    }

    /// Records a turn of a claimed delivery: its attempts, its new state, and its entry
    /// rescheduled to `next_due` (still claimed) or removed.
    pub async fn finish(
        &self,
        entry: &QueueEntry,
        delivery: Option<&Delivery>,
        next_due: Option<u64>,
        attempts: &[Attempt],
    ) -> Result<(), StoreError> {
        on_backend!(self, backend => backend.finish(entry, delivery, next_due, attempts).await)
    }
}

#[cfg(test)]
mod tests;
