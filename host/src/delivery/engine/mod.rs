//! The delivery engine: takes due deliveries from the durable queue and works them.
//!
//! A delivery's first turn runs the webhook's plugin once; the requests it returns become
//! the delivery's messages, stored, so every retry sends the same bytes. Each turn then
//! attempts the messages that are due, records every attempt, updates the webhook's health
//! and either finishes the delivery or puts it back in the queue for its next retry — all in
//! one write. A delivery stays in the queue until that write, so after a crash whatever was
//! in flight is worked again (at least once, never lost).
//!
//! Work comes from the in-memory [`Schedule`] (see `schedule`), filled by claiming queue
//! entries from storage whenever storage says work was written (one claim at a time, while
//! turns go on starting and ending); the engine reschedules its
//! own retries (they stay claimed) — so an event reaches its receiver without any polling
//! delay, and no writer hands anything over. A turn gives its place in the webhook's lane to
//! the next as soon as its attempts are over, and where storage is remote the engine reads the
//! deliveries next in line ahead of their turns, many per read.
//!
//! This file holds the engine's loop (claims, the schedule, lanes handed over); `turn.rs` one
//! turn of one delivery, and `connector.rs` what a turn asks of the webhook's connector.

mod connector;
mod turn;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use crate::store::StoreError;

use super::keys::KeyOrder;
use super::retry::RetryPolicy;
use super::schedule::{LaneRules, Schedule, Share};
use super::transport::Transports;
use crate::config::Config;
use crate::connectors::Connectors;
use crate::domain::policy::{EffectivePolicy, WebhookLimits};
use crate::domain::webhook::Webhook;
use crate::metrics::Metrics;
use crate::runtime::{Plugin, Runtime, StateStore};
use crate::secret::SecretBox;
use crate::service::plugin_state::StoredStates;
use crate::store::Store;
use crate::store::{QueueEntry, now_ms};
use turn::{Slot, Turn};

/// What the engine works with, handed over by the wiring: it never reaches into the API's
/// state.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Store,
    pub runtime: Runtime,
    pub connectors: Connectors,
    pub secrets: SecretBox,
    /// Where a webhook's health is recorded (and the match index kept current).
    pub webhooks: crate::service::Webhooks,
    pub metrics: Metrics,
    /// Where the host's reports on itself go.
    pub operations: crate::service::Operations,
    /// Connectors' versions: the pinned ones webhooks run, and shadowing candidates.
    pub connector_versions: crate::service::ConnectorService,
    /// Where work runs that must not hold up the engine's own thread: reading ahead (decoding
    /// a batch of events takes a millisecond or more, during which no attempt would move).
    pub background: tokio::runtime::Handle,
}

/// Queue entries held in memory at most (claimed, running or waiting for their time): more
/// stay in storage until these drain.
const HELD: usize = 100_000;

/// Entries claimed per storage call.
const CLAIM_BATCH: usize = 1_000;

/// Due entries read ahead of their turns, per lane with a backlog (half of it per read).
const READ_AHEAD: usize = 128;

/// Entries read ahead in one go at most, whatever the number of lanes: well within what the
/// store keeps in memory for them.
const READ_AHEAD_LIMIT: usize = 512;

/// How often the engine asks storage which webhooks' lanes it must hand over to another host,
/// and whether its shares of webhooks changed.
const HAND_OVER_CHECK: Duration = Duration::from_millis(250);

struct Engine {
    ctx: Context,
    transports: Transports,
    retry: RetryPolicy,
    workers: Arc<Semaphore>,
    /// Per rate-limited webhook, when its next message may go (a GCRA without burst).
    next_send: Mutex<HashMap<String, std::time::Instant>>,
    /// A read-ahead is under way (one at a time).
    reading_ahead: Arc<std::sync::atomic::AtomicBool>,
    /// Where connectors' `state` calls go.
    states: Arc<dyn StateStore>,
    /// Which delivery may send a request with a given ordering key.
    keys: KeyOrder,
}

/// A running engine.
pub struct EngineHandle {
    engine: Arc<Engine>,
    task: tokio::task::JoinHandle<()>,
}

impl EngineHandle {
    /// Stops taking work and waits (at most `grace`) for the attempts in flight; whatever
    /// does not finish stays queued and is worked after the next start.
    pub async fn shutdown(self, grace: Duration) {
        self.task.abort();
        let all = u32::try_from(self.engine.ctx.config.delivery.workers).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.engine.workers.acquire_many(all)).await.is_err() {
            tracing::warn!("shutting down with deliveries still in flight; they stay queued");
        }
    }
}

/// Starts the engine on the current runtime. One engine per store: it claims the queue.
pub fn spawn(ctx: Context) -> EngineHandle {
    let config = &ctx.config.delivery;
    let engine = Arc::new(Engine {
        transports: Transports::new(config.attempt_timeout, ctx.config.destinations()),
        retry: RetryPolicy::new(ctx.config.retry_schedule.clone()),
        workers: Arc::new(Semaphore::new(config.workers)),
        next_send: Mutex::default(),
        reading_ahead: Arc::default(),
        states: Arc::new(StoredStates::new(ctx.store.clone())),
        keys: KeyOrder::default(),
        ctx,
    });
    EngineHandle { task: tokio::spawn(engine.clone().run()), engine }
}

impl Engine {
    async fn run(self: Arc<Self>) {
        let mut schedule = Schedule::default();
        let (report_send, mut reports) = mpsc::unbounded_channel::<Report>();
        let per_webhook = self.ctx.config.delivery.per_webhook;
        // Claim at once: whatever was queued before this start is waiting.
        let mut claim_now = true;
        // The claim under way: turns keep starting and ending while storage answers (a
        // claim waits on the database, and under load on a core, for milliseconds).
        let mut claiming: Option<Claiming> = None;
        let mut hand_over_check = tokio::time::interval(HAND_OVER_CHECK);
        hand_over_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Lanes being handed over, until nothing of them runs here.
        let mut draining: Vec<String> = Vec::new();
        let mut shares = self.ctx.store.shares_version();
        loop {
            if claim_now && claiming.is_none() {
                claim_now = false;
                claiming = self.claim(&schedule);
            }
            let now = now_ms();
            let free = self.workers.available_permits();
            for entry in schedule.take_runnable(now, per_webhook, free) {
                let permit = self.workers.clone().try_acquire_owned().expect("counted free workers");
                // Here, in the order turns start: a later delivery never overtakes an earlier
                // one on an ordering key it has yet to find out.
                self.keys.starting(&entry.webhook_id, &entry.delivery_id);
                let (engine, reports) = (self.clone(), report_send.clone());
                tokio::spawn(async move {
                    let next = engine.work(&Slot { entry: &entry, reports: &reports }).await;
                    engine.keys.holding(&entry.webhook_id, &entry.delivery_id, &next.keys);
                    drop(permit);
                    let _ = reports.send(Report::Done(entry, next));
                });
            }
            self.read_ahead(&mut schedule);
            let sleep = match schedule.next_due() {
                Some(due) => Duration::from_millis(due.saturating_sub(now)),
                None => Duration::from_secs(60),
            };
            // With the schedule full, new work waits in storage until some finishes.
            let room = schedule.len() < HELD;
            tokio::select! {
                () = self.ctx.store.wait_for_work(), if !claim_now && room => claim_now = true,
                claimed = poll_claim(&mut claiming), if claiming.is_some() => {
                    claiming = None;
                    claim_now |= self.claimed(claimed, &mut schedule, &mut draining);
                    // Held back while the claim was out: it may have brought entries of a
                    // lane closed meanwhile (dropped by the closed lane), which storage
                    // must still see as this host's when the lane is handed back.
                    if !draining.is_empty() {
                        self.release_drained(&mut schedule, &mut draining).await;
                    }
                }
                Some(report) = reports.recv() => {
                    // Every report waiting, not one: the lanes' places freed since the last
                    // loop all start their next turn in the next.
                    let mut next = Some(report);
                    let mut drained = false;
                    while let Some(report) = next {
                        drained |= self.apply(report, &mut schedule, &draining);
                        next = reports.try_recv().ok();
                    }
                    claim_now |= !room;
                    if drained && claiming.is_none() {
                        self.release_drained(&mut schedule, &mut draining).await;
                    }
                }
                _ = hand_over_check.tick() => {
                    if shares != self.ctx.store.shares_version() {
                        // Read first: a change while resharing is seen at the next check.
                        shares = self.ctx.store.shares_version();
                        for webhook_id in schedule.reshare(|webhook_id| self.lane_rules(webhook_id).share) {
                            hand_over(&mut schedule, &mut draining, webhook_id);
                        }
                    }
                    for webhook_id in self.ctx.store.lanes_to_release().await {
                        hand_over(&mut schedule, &mut draining, webhook_id);
                    }
                    if claiming.is_none() {
                        self.release_drained(&mut schedule, &mut draining).await;
                    }
                }
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Applies a turn's report to the schedule; `true` when its lane is being handed over.
    fn apply(&self, report: Report, schedule: &mut Schedule, draining: &[String]) -> bool {
        match report {
            Report::Sent(entry) => {
                schedule.sent(&entry);
                false
            }
            Report::Done(finished, turn) => {
                if let Some(until) = turn.pause_until {
                    schedule.pause(&finished.webhook_id, until);
                }
                if schedule.done(&finished, turn.next, now_ms()) {
                    self.ctx.store.emptied(&finished.webhook_id);
                }
                draining.contains(&finished.webhook_id)
            }
        }
    }

    /// Starts claiming what storage holds for this engine, as the schedule's room allows.
    fn claim(&self, schedule: &Schedule) -> Option<Claiming> {
        let room = HELD.saturating_sub(schedule.len());
        if room == 0 {
            return None;
        }
        let limit = room.min(CLAIM_BATCH);
        let store = self.ctx.store.clone();
        Some(Box::pin(async move {
            let claimed = store.claim(limit).await.map(|entries| (entries, limit));
            if let Err(error) = &claimed {
                tracing::error!("cannot claim from the delivery queue: {error}");
                // Tried again after a pause, not at once; turns go on meanwhile.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            claimed
        }))
    }

    /// Adds what a claim brought to the schedule; `true` when there may be more to claim
    /// right away. A lane that opens run elsewhere (another host's share) is handed over.
    fn claimed(&self, claimed: ClaimResult, schedule: &mut Schedule, draining: &mut Vec<String>) -> bool {
        let Ok((entries, limit)) = claimed else { return true };
        let more = entries.len() == limit;
        let now = now_ms();
        let mut elsewhere = Vec::new();
        for entry in entries {
            let webhook_id = entry.webhook_id.clone();
            schedule.add(entry, now, || {
                let rules = self.lane_rules(&webhook_id);
                if rules.share == Share::Elsewhere {
                    elsewhere.push(webhook_id.clone());
                }
                rules
            });
        }
        for webhook_id in elsewhere {
            hand_over(schedule, draining, webhook_id);
        }
        more
    }

    /// Reads the deliveries next in line into memory, many at once, where storage is remote:
    /// their turns then start without a round trip each.
    fn read_ahead(&self, schedule: &mut Schedule) {
        use std::sync::atomic::Ordering;
        if !self.ctx.store.reads_ahead() || self.reading_ahead.load(Ordering::Relaxed) {
            return;
        }
        let upcoming = schedule.upcoming(READ_AHEAD, READ_AHEAD_LIMIT);
        if upcoming.is_empty() {
            return;
        }
        self.reading_ahead.store(true, Ordering::Relaxed);
        let (store, reading) = (self.ctx.store.clone(), self.reading_ahead.clone());
        self.ctx.background.spawn(async move {
            if let Err(error) = store.read_ahead(&upcoming).await {
                // Only a lost shortcut: each turn reads what it needs itself.
                tracing::debug!("cannot read deliveries ahead: {error}");
            }
            reading.store(false, Ordering::Relaxed);
        });
    }

    /// Hands back the lanes being handed over that have nothing running here any more.
    async fn release_drained(&self, schedule: &mut Schedule, draining: &mut Vec<String>) {
        let mut still = Vec::new();
        for webhook_id in draining.drain(..) {
            if schedule.running(&webhook_id) > 0 {
                still.push(webhook_id);
                continue;
            }
            match self.ctx.store.release_lane(&webhook_id).await {
                Ok(()) => {
                    if schedule.forget(&webhook_id) {
                        self.ctx.store.emptied(&webhook_id);
                    }
                }
                Err(error) => {
                    tracing::warn!(webhook_id, "cannot hand the webhook's lane over yet: {error}");
                    still.push(webhook_id);
                }
            }
        }
        *draining = still;
    }

    /// How a webhook's lane runs: in order or not, its connector's concurrency, and this
    /// host's share of it (several hosts share a webhook without a `rateLimit`).
    fn lane_rules(&self, webhook_id: &str) -> LaneRules {
        if self.ctx.webhooks.index().is_ordered(webhook_id) {
            return LaneRules { ordered: true, ..LaneRules::default() };
        }
        let policy = self.ctx.webhooks.get(webhook_id).map(|webhook| {
            let plugin = self.loaded_plugin(&webhook);
            self.policy_of(&webhook, plugin.as_deref())
        });
        let per_webhook = self.ctx.config.delivery.per_webhook;
        let cap = policy.as_ref().map(|policy| policy.concurrency as usize);
        let whole = cap.map_or(per_webhook, |cap| cap.clamp(1, per_webhook));
        let shared = policy.as_ref().is_none_or(|policy| policy.rate.is_none());
        let share = match self.ctx.store.share(webhook_id, whole, shared) {
            None => Share::Elsewhere,
            Some(part) if part >= whole => Share::Whole,
            Some(part) => Share::Part(part),
        };
        LaneRules { ordered: false, cap, share }
    }

    /// The policy a webhook's deliveries follow: its own settings over its connector's.
    fn policy_of(&self, webhook: &Webhook, plugin: Option<&Plugin>) -> EffectivePolicy {
        let declared = plugin.and_then(|plugin| plugin.info().policy.as_ref());
        let limits =
            WebhookLimits::of(webhook, self.ctx.config.delivery.per_webhook, self.retry.max_attempts());
        EffectivePolicy::new(declared, limits)
    }
}

/// Starts handing a webhook's lane over (another host works it now): nothing of it starts
/// here any more, and it is released once nothing of it runs.
fn hand_over(schedule: &mut Schedule, draining: &mut Vec<String>, webhook_id: String) {
    if !draining.contains(&webhook_id) {
        schedule.close(&webhook_id);
        draining.push(webhook_id);
    }
}

/// What a turn tells the engine's loop.
enum Report {
    /// Its attempts are over: the next delivery of the webhook may go to the receiver.
    Sent(QueueEntry),
    /// It ended.
    Done(QueueEntry, Turn),
}

/// What a claim brought (and the most it could have), or why it failed.
type ClaimResult = Result<(Vec<QueueEntry>, usize), StoreError>;

/// A claim under way (see `Engine::run`).
type Claiming = std::pin::Pin<Box<dyn std::future::Future<Output = ClaimResult> + Send>>;

/// The claim under way's outcome; only polled while there is one.
async fn poll_claim(claiming: &mut Option<Claiming>) -> ClaimResult {
    match claiming {
        Some(claim) => claim.await,
        None => std::future::pending().await,
    }
}

/// A random number in [0, 1): jitter.
fn random_fraction() -> f64 {
    let mut byte = [0u8; 1];
    getrandom::fill(&mut byte).ok();
    f64::from(byte[0]) / 256.0
}
