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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc};

use crate::store::StoreError;

use super::keys::{self, KeyOrder};
use super::retry::RetryPolicy;
use super::schedule::{LaneRules, Schedule, Share};
use super::transport::{Transports, Verdict};
use crate::config::Config;
use crate::connectors::Connectors;
use crate::domain::connector_version::{ShadowRun, compare};
use crate::domain::delivery::{Delivery, DeliveryStatus, Message, MessageStatus};
use crate::domain::payload::standard_payload;
use crate::domain::policy::{EffectivePolicy, WebhookLimits};
use crate::domain::webhook::{Origin, Webhook, WebhookStatus};
use crate::metrics::Metrics;
use crate::runtime::{Judged, Plugin, Request, Response, Runtime, StateHandle, StateScope, StateStore};
use crate::secret::SecretBox;
use crate::service::operations::About;
use crate::service::plugin_state::StoredStates;
use crate::service::{Health, Transition};
use crate::store::Store;
use crate::store::{QueueEntry, now_ms};

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

/// How long a request waits in its turn for the deliveries ahead of it with its ordering key.
const KEY_WAIT: Duration = Duration::from_secs(2);

/// When a request still behind its ordering key after that is looked at again.
const KEY_RECHECK: time::Duration = time::Duration::seconds(1);

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

    /// Takes a send slot of a webhook limited to one message per `interval`, or says how long
    /// to wait.
    fn pace(&self, webhook_id: &str, interval: Duration) -> Option<Duration> {
        let now = std::time::Instant::now();
        let mut next_send = self.next_send.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next_send.entry(webhook_id.to_owned()).or_insert(now);
        if *slot > now {
            return Some(*slot - now);
        }
        *slot = now + interval;
        None
    }

    /// One turn of one delivery; returns its queue entry as it now stands, if it is queued.
    async fn work(&self, slot: &Slot<'_>) -> Turn {
        let entry = slot.entry;
        let store = &self.ctx.store;
        let delivery = match store.queued_delivery(entry).await {
            Ok(Some(delivery)) if !delivery.status.is_final() => delivery,
            Ok(_) => return self.finish(entry, None, None, Vec::new()).await.into(),
            Err(error) => {
                tracing::error!(delivery_id = %entry.delivery_id, "cannot read delivery: {error}");
                return Some(retry_soon(entry)).into();
            }
        };
        // Kept current in memory by the service layer; storage only for one not heard of yet.
        let known = match self.ctx.webhooks.get(&delivery.webhook_id) {
            Some(webhook) => Ok(Some(webhook)),
            None => store.webhook(&delivery.webhook_id).await,
        };
        let webhook = match known {
            Ok(Some(webhook)) => webhook,
            Ok(None) => return self.fail(entry, delivery, "the webhook was deleted").await.into(),
            Err(error) => {
                tracing::error!(webhook_id = %delivery.webhook_id, "cannot read webhook: {error}");
                return Some(retry_soon(entry)).into();
            }
        };
        if !webhook.enabled {
            let mut delivery = delivery;
            delivery.status = DeliveryStatus::Paused;
            return self.finish(entry, Some(delivery), None, Vec::new()).await.into();
        }
        let mut delivery = delivery;
        if delivery.messages.is_empty() {
            match self.transform(&mut delivery, &webhook).await {
                Transformed::Ready => {}
                Transformed::Done => {
                    return self.finish(entry, Some(delivery), None, Vec::new()).await.into();
                }
                Transformed::Wait(wait) => {
                    // The webhook's lane waits, not each delivery: its entries stay queued where
                    // they are, and only this one records why.
                    let until = now_ms() + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX / 2);
                    let next = self.finish(entry, Some(delivery), Some(entry.due_ms), Vec::new()).await;
                    return Turn { next, pause_until: Some(until), keys: Vec::new() };
                }
            }
        }
        self.attempt(slot, delivery, webhook).await
    }

    /// Runs the plugin, unless the delivery must wait for it.
    async fn transform(&self, delivery: &mut Delivery, webhook: &Webhook) -> Transformed {
        let span = tracing::info_span!("transform", delivery_id = %delivery.id, webhook_id = %webhook.id, connector = %webhook.connector.name);
        let _enter = span.enter();
        let event = match self.ctx.store.event(&delivery.company_id, &delivery.event_id).await {
            Ok(Some(event)) => event,
            Ok(None) => {
                delivery.status = DeliveryStatus::Failed;
                delivery.error = Some("the event is no longer stored (pruned by the retention)".into());
                return Transformed::Done;
            }
            Err(error) => {
                tracing::error!(event_id = %delivery.event_id, "stored event cannot be read: {error}");
                delivery.status = DeliveryStatus::Failed;
                delivery.error = Some("the stored event cannot be read back (damaged)".into());
                return Transformed::Done;
            }
        };
        let plugin = match self.plugin_of(webhook).await {
            Ok(plugin) => plugin,
            Err(error) => {
                delivery.status = DeliveryStatus::PluginError;
                delivery.error = Some(error);
                return Transformed::Done;
            }
        };
        let payload = standard_payload(&event, webhook);
        let config = webhook.connector_config(&self.ctx.secrets);
        let scrubber = plugin.schema().scrubber(&config);
        let config = config.to_string();
        let state = Some(self.state_of(webhook));
        let invocation =
            self.ctx.runtime.invoke(&plugin, &webhook.created_by_id, &payload, &config, state).await;
        let allow = self.ctx.config.destinations();
        let result =
            invocation.result.and_then(|requests| super::check_plugin_urls(requests, &webhook.url, &allow));
        let host_busy = matches!(
            result,
            Err(crate::runtime::PluginError::HostBusy(_) | crate::runtime::PluginError::BackedOff { .. })
        );
        if webhook.connector.version.is_none()
            && !host_busy
            && let Some(candidate) = self.ctx.connectors.shadow(&webhook.connector.name)
        {
            self.shadow(
                candidate,
                webhook,
                delivery,
                (payload.as_str(), config.as_str()),
                &result,
                &scrubber,
            );
        }
        let wait = match &result {
            // The host's own lack of room, not the plugin's fault: try again in a moment.
            Err(crate::runtime::PluginError::HostBusy(_)) => Some(std::time::Duration::from_millis(200)),
            // Spread out, so the deliveries that waited do not all come back at once.
            Err(crate::runtime::PluginError::BackedOff { retry_in, .. }) => {
                Some(retry_in.mul_f64(1.0 + random_fraction() / 2.0))
            }
            _ => None,
        };
        if let (Some(wait), Err(error)) = (wait, &result) {
            // Still pending: the error says why it waits, in the log the user reads.
            delivery.error = Some(format!("[{}] {error}", error.code()));
            return Transformed::Wait(wait);
        }
        delivery.plugin_log = invocation.log;
        let failure = result.as_ref().err().map(|error| {
            // A plugin may quote its config back; write-only values stay out of the log.
            let mut message = format!("[{}] {error}", error.code());
            scrubber.scrub(&mut message);
            (error.code(), message)
        });
        self.invoked(webhook, invocation.duration, invocation.memory_bytes, failure.as_ref());
        match result {
            Err(_) => {
                let (_, message) = failure.expect("set for an error");
                tracing::warn!("plugin failed: {message}");
                delivery.status = DeliveryStatus::PluginError;
                delivery.error = Some(message);
                Transformed::Done
            }
            Ok(requests) if requests.is_empty() => {
                delivery.status = DeliveryStatus::Filtered;
                Transformed::Done
            }
            Ok(requests) => {
                let now = OffsetDateTime::now_utc();
                let secrets = &self.ctx.secrets;
                delivery.messages = requests
                    .into_iter()
                    .map(|request| Message::new(request, &scrubber, secrets, now))
                    .collect();
                delivery.error = None;
                Transformed::Ready
            }
        }
    }

    /// The plugin a webhook runs: its pinned version, or the live one; the error says why
    /// there is none.
    async fn plugin_of(&self, webhook: &Webhook) -> Result<Arc<Plugin>, String> {
        let name = &webhook.connector.name;
        match webhook.connector.version {
            None => {
                self.ctx.connectors.get(name).ok_or_else(|| format!("connector {name:?} is not installed"))
            }
            Some(version) => {
                self.ctx.connector_versions.plugin(name, version).await.map_err(|e| e.to_string())
            }
        }
    }

    /// The plugin a webhook runs if it is loaded already (the live one, or a pinned version
    /// used before).
    fn loaded_plugin(&self, webhook: &Webhook) -> Option<Arc<Plugin>> {
        let name = &webhook.connector.name;
        match webhook.connector.version {
            Some(version) if self.ctx.connectors.live_version(name) != Some(version) => {
                self.ctx.connectors.pinned(name, version)
            }
            _ => self.ctx.connectors.get(name),
        }
    }

    /// Runs the candidate shadowing the webhook's connector on the same payload and config,
    /// in the background, and keeps how its requests differ from the live version's. It sees
    /// the webhook's state but its writes go nowhere; nothing it asks for is sent.
    fn shadow(
        &self,
        (candidate, plugin): (u32, Arc<Plugin>),
        webhook: &Webhook,
        delivery: &Delivery,
        (payload, config): (&str, &str),
        live: &Result<Vec<Request>, crate::runtime::PluginError>,
        scrubber: &crate::connector_config::Scrubber,
    ) {
        let name = webhook.connector.name.clone();
        let live_version = self.ctx.connectors.live_version(&name).unwrap_or_default();
        let mut run = ShadowRun::new(&name, (live_version, candidate), &delivery.id, &webhook.id);
        let live = live.clone().map_err(|e| format!("[{}] {e}", e.code()));
        let (runtime, store) = (self.ctx.runtime.clone(), self.ctx.store.clone());
        let owner = webhook.created_by_id.clone();
        let (payload, config, scrubber) = (payload.to_owned(), config.to_owned(), scrubber.clone());
        let state = StateHandle::read_only(self.state_of(webhook));
        let (allow, url) = (self.ctx.config.destinations(), webhook.url.clone());
        tokio::spawn(async move {
            let invocation = runtime.invoke(&plugin, &owner, &payload, &config, Some(state)).await;
            let result =
                invocation.result.and_then(|requests| super::check_plugin_urls(requests, &url, &allow));
            let candidate = result.map_err(|e| format!("[{}] {e}", e.code()));
            run.differences = compare(&live, &candidate);
            run.differences.iter_mut().for_each(|line| scrubber.scrub(line));
            run.same = run.differences.is_empty();
            if let Err(error) = store.add_shadow_run(&run).await {
                tracing::warn!(connector = %run.connector, "cannot keep a shadow run: {error}");
            }
        });
    }

    /// The webhook's own store for its connector's `state` calls.
    fn state_of(&self, webhook: &Webhook) -> StateHandle {
        let scope = StateScope { connector: webhook.connector.name.clone(), webhook_id: webhook.id.clone() };
        StateHandle::new(self.states.clone(), scope)
    }

    /// Has the webhook's connector judge an answer (`on-response`): the verdict and remote id
    /// it gave, or the plugin error (scrubbed of write-only config values) that stands for it.
    async fn judge(
        &self,
        plugin: &Arc<Plugin>,
        webhook: &Webhook,
        request: &Request,
        answer: &Response,
    ) -> Result<(Verdict, Option<String>), String> {
        let state = Some(self.state_of(webhook));
        let invocation = self.ctx.runtime.judge(plugin, &webhook.created_by_id, request, answer, state).await;
        let connector = &webhook.connector.name;
        let scrub = |mut text: String| {
            plugin.schema().scrubber(&webhook.connector_config(&self.ctx.secrets)).scrub(&mut text);
            text
        };
        let failure = invocation
            .result
            .as_ref()
            .err()
            .map(|error| (error.code(), scrub(format!("[{}] on-response: {error}", error.code()))));
        self.invoked(webhook, invocation.duration, invocation.memory_bytes, failure.as_ref());
        match invocation.result {
            Ok(judgement) => {
                let verdict = match judgement.verdict {
                    Judged::Success => Verdict::Delivered,
                    Judged::Retry(wait) => Verdict::Retry(wait),
                    Judged::Fail(reason) => Verdict::Fail(format!(
                        "the {connector} connector gave up on the message: {}",
                        scrub(reason)
                    )),
                    Judged::Disable(reason) => Verdict::Disable(format!(
                        "the {connector} connector disabled the webhook: {}",
                        scrub(reason)
                    )),
                };
                Ok((verdict, judgement.remote_id))
            }
            Err(_) => {
                let (_, message) = failure.expect("set for an error");
                tracing::warn!("plugin failed: {message}");
                Err(message)
            }
        }
    }

    /// Counts an invocation of `webhook`'s connector (metrics, and the host's report when the
    /// connector keeps failing); `failure` is its error kind and scrubbed message.
    fn invoked(
        &self,
        webhook: &Webhook,
        duration: Duration,
        memory_bytes: usize,
        failure: Option<&(&str, String)>,
    ) {
        // The version webhooks and `GET /v1/connectors/{name}/versions` name (0: the built-in).
        let version = match webhook.connector.version {
            Some(version) => version,
            None => self.ctx.connectors.live_version(&webhook.connector.name).unwrap_or_default(),
        };
        let labels = crate::metrics::Plugin {
            connector: webhook.connector.name.clone(),
            version: version.to_string(),
        };
        let code = failure.map(|(code, _)| *code);
        self.ctx.metrics.plugin_invoked(labels, duration.as_secs_f64(), memory_bytes, code);
        // The host's own busyness says nothing about the connector.
        if !matches!(code, Some("host_busy" | "backed_off")) {
            self.ctx.operations.connector_invoked(&webhook.connector.name, failure.map(|(_, m)| m.as_str()));
        }
    }

    /// Waits until `delivery` may send its request with ordering `key`: at once, or once the
    /// deliveries ahead of it with that key are done, if that is soon; `false` when they
    /// are not (the request then waits for its next turn, no attempt spent).
    async fn wait_for_key(&self, webhook_id: &str, key: &str, delivery_id: &str) -> bool {
        if self.keys.needs_loading(webhook_id) {
            let query = crate::store::DeliveryQuery {
                statuses: &[DeliveryStatus::Pending],
                limit: keys::LOAD_LIMIT,
                ..Default::default()
            };
            match self.ctx.store.deliveries_of(webhook_id, &query).await {
                Ok(pending) => self.keys.load(webhook_id, &pending),
                Err(error) => {
                    tracing::warn!(webhook_id, "cannot read which deliveries hold ordering keys: {error}");
                    return false;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + KEY_WAIT;
        loop {
            let changed = match self.keys.may_send(webhook_id, key, delivery_id) {
                Ok(()) => return true,
                Err(changed) => changed,
            };
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Checked again once enabled: a change in between is not missed.
            if self.keys.may_send(webhook_id, key, delivery_id).is_ok() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Attempts the messages that are due, then stores the outcome.
    async fn attempt(&self, slot: &Slot<'_>, mut delivery: Delivery, webhook: Webhook) -> Turn {
        let entry = slot.entry;
        self.keys.holding(&webhook.id, &delivery.id, &keys::pending_keys(&delivery));
        let now = OffsetDateTime::now_utc();
        let open = |sealed: &str| self.ctx.secrets.open(sealed);
        let Some(secret) = open(&webhook.sealed_secret) else {
            return self
                .fail(entry, delivery, "the webhook's secret cannot be opened with this server's key")
                .await
                .into();
        };
        // The current secret first (the only one for X-Wasmhook-Signature), then any still in
        // their rotation grace period.
        let retired: Vec<_> = webhook
            .previous_secrets
            .iter()
            .filter(|old| old.until > now)
            .filter_map(|old| open(&old.sealed))
            .collect();
        let secrets: Vec<&crate::secret::Secret> = std::iter::once(&secret).chain(&retired).collect();
        let Some(destination) = webhook.destination(&self.ctx.secrets) else {
            return self
                .fail(
                    entry,
                    delivery,
                    "the webhook's destination credentials cannot be opened with this server's key",
                )
                .await
                .into();
        };
        // A connector that judges answers itself (contract 0.2's `on-response`).
        let plugin = self.plugin_of(&webhook).await.ok();
        let policy = self.policy_of(&webhook, plugin.as_deref());
        let judge = plugin.filter(|plugin| plugin.responds());
        let mut attempts = Vec::new();
        let mut health: Option<Health> = None;
        for message in delivery.messages.iter_mut().filter(|m| m.status == MessageStatus::Pending) {
            if message.next_attempt_at.is_some_and(|at| at > now) {
                continue;
            }
            if let Some(key) = &message.request.ordering_key
                && !self.wait_for_key(&webhook.id, key, &delivery.id).await
            {
                // Behind an earlier delivery with its key that is waiting for a retry.
                message.next_attempt_at = Some(now + KEY_RECHECK);
                continue;
            }
            if let Some(rate) = policy.rate
                && let Some(wait) = self.pace(&webhook.id, rate.interval())
            {
                // Over the webhook's rate: this message waits its turn, no attempt spent.
                message.next_attempt_at = Some(now + wait);
                continue;
            }
            let Some(request) = message.request_to_send(&self.ctx.secrets) else {
                // Sealed under another key: it can never be sent as the plugin made it.
                message.status = MessageStatus::Failed;
                message.next_attempt_at = None;
                delivery.error = Some("a sealed message cannot be opened with this server's key".into());
                continue;
            };
            let mut sent =
                self.transports.send(&message.id, &request, &destination, &secrets, judge.is_some()).await;
            self.ctx.metrics.attempt_seconds.observe(sent.attempt.latency_ms as f64 / 1e3);
            let code = sent.attempt.status_code;
            // A connector's own failure says nothing about the receiver.
            let mut tells_health = true;
            if let (Some(plugin), Some(answer)) = (&judge, sent.answer.take()) {
                // The connector judges: the declared retry statuses are for those that do not.
                match self.judge(plugin, &webhook, &request, &answer).await {
                    Ok((verdict, remote_id)) => {
                        sent.verdict = verdict;
                        sent.attempt.remote_id = remote_id;
                    }
                    Err(error) => {
                        sent.attempt.error = Some(error);
                        sent.verdict = Verdict::Retry(None);
                        tells_health = false;
                    }
                }
            } else if let (Verdict::Retry(_), Some(status)) = (&sent.verdict, code)
                && !policy.retries(status)
            {
                let reason = format!(
                    "the receiver answered {status}, which the {} connector's policy does not retry",
                    webhook.connector.name
                );
                sent.verdict = Verdict::Fail(reason);
            }
            message.attempts += 1;
            if sent.attempt.remote_id.is_some() {
                message.remote_id.clone_from(&sent.attempt.remote_id);
            }
            match sent.verdict {
                Verdict::Delivered => {
                    message.status = MessageStatus::Succeeded;
                    message.next_attempt_at = None;
                    health.get_or_insert(Health::Succeeded);
                }
                Verdict::Gone => {
                    message.status = MessageStatus::Failed;
                    message.next_attempt_at = None;
                    health = Some(Health::Gone);
                }
                Verdict::Fail(reason) => {
                    message.status = MessageStatus::Failed;
                    message.next_attempt_at = None;
                    delivery.error = Some(reason);
                }
                Verdict::Disable(reason) => {
                    message.status = MessageStatus::Failed;
                    message.next_attempt_at = None;
                    health = Some(Health::Refused);
                    delivery.error = Some(reason);
                }
                Verdict::Retry(wait) => {
                    let left = message.attempts < policy.attempts;
                    match self.retry.next_delay(message.attempts, wait, random_fraction()).filter(|_| left) {
                        Some(delay) => {
                            message.next_attempt_at = Some(OffsetDateTime::now_utc() + delay);
                            if tells_health && (health.is_none() || health == Some(Health::Succeeded)) {
                                health = Some(Health::Failing);
                            }
                        }
                        None => {
                            message.status = MessageStatus::Failed;
                            message.next_attempt_at = None;
                            if tells_health && !matches!(health, Some(Health::Gone | Health::Refused)) {
                                health = Some(Health::Exhausted);
                            } else if !tells_health {
                                // Not the receiver's doing: the webhook stays enabled.
                                delivery.error = sent.attempt.error.clone();
                            }
                        }
                    }
                }
            }
            tracing::info!(
                delivery_id = %delivery.id, webhook_id = %webhook.id, message_id = %message.id,
                status = ?code, attempt = message.attempts, "attempt"
            );
            attempts.push(sent.attempt);
        }
        slot.release();
        let pending: Vec<OffsetDateTime> = delivery
            .messages
            .iter()
            .filter(|m| m.status == MessageStatus::Pending)
            .filter_map(|m| m.next_attempt_at)
            .collect();
        delivery.status = if !pending.is_empty() {
            DeliveryStatus::Pending
        } else if delivery.messages.iter().all(|m| m.status == MessageStatus::Succeeded) {
            DeliveryStatus::Succeeded
        } else {
            DeliveryStatus::Failed
        };
        if delivery.status == DeliveryStatus::Failed && delivery.error.is_none() {
            delivery.error = Some(match health {
                Some(Health::Gone) if webhook.origin == Origin::Zapier => {
                    "Zapier answered 410 Gone: the subscription is removed".into()
                }
                Some(Health::Gone) => "the receiver answered 410 Gone: the webhook is disabled".into(),
                _ => format!("a message failed all {} attempts: the webhook is disabled", policy.attempts),
            });
        }
        let next_due = pending.iter().min().map(|at| crate::store::millis(*at));
        let keys = keys::pending_keys(&delivery);
        // What the host's reports say, when this turn gave up on a message.
        let gave_up = matches!(health, Some(Health::Exhausted | Health::Gone | Health::Refused)).then(|| {
            (About::of(&delivery), delivery.error.clone().unwrap_or_default(), last_failure(&attempts))
        });
        let next = self.finish(entry, Some(delivery), next_due, attempts).await;
        if let (Some(Health::Exhausted), Some((about, _, last))) = (health, &gave_up) {
            self.ctx.operations.delivery_exhausted(&webhook, about, policy.attempts, last);
        }
        // Most turns leave health as it was: only a change costs a write.
        let unchanged = health == Some(Health::Succeeded) && webhook.status == WebhookStatus::Healthy
            || health == Some(Health::Failing) && webhook.status == WebhookStatus::Unhealthy;
        if let Some(health) = health.filter(|_| !unchanged) {
            match self.ctx.webhooks.record_health(&webhook, health).await {
                Some(Transition::Disabled(disabled)) => {
                    if let Some((about, reason, last)) = &gave_up {
                        self.ctx.operations.webhook_disabled(&disabled, reason, last, about);
                    }
                }
                Some(Transition::Recovered(recovered)) => self.ctx.operations.webhook_recovered(&recovered),
                None => {}
            }
        }
        // A delivery whose outcome was not stored stays queued, holding all it held.
        Turn { keys, ..Turn::from(next) }
    }

    async fn fail(&self, entry: &QueueEntry, mut delivery: Delivery, reason: &str) -> Option<QueueEntry> {
        delivery.status = DeliveryStatus::Failed;
        delivery.error = Some(reason.to_owned());
        self.finish(entry, Some(delivery), None, Vec::new()).await
    }

    /// Stores the turn's outcome and moves or removes the queue entry, in one write.
    async fn finish(
        &self,
        entry: &QueueEntry,
        delivery: Option<Delivery>,
        next_due: Option<u64>,
        attempts: Vec<crate::domain::delivery::Attempt>,
    ) -> Option<QueueEntry> {
        if let Err(error) = self.ctx.store.finish(entry, delivery.as_ref(), next_due, &attempts).await {
            // The entry stays queued and is worked again: at least once, never lost.
            tracing::error!(delivery_id = %entry.delivery_id, "cannot record the delivery's outcome: {error}");
            return Some(retry_soon(entry));
        }
        if let Some(delivery) = delivery.as_ref().filter(|d| d.status.is_final()) {
            let outcome =
                serde_json::to_value(delivery.status).ok().and_then(|v| v.as_str().map(str::to_owned));
            let outcome = crate::metrics::Outcome { outcome: outcome.unwrap_or_default() };
            self.ctx.metrics.deliveries.get_or_create(&outcome).inc();
        }
        next_due.map(|due| QueueEntry::new(due, &entry.delivery_id, &entry.webhook_id))
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

/// The same queue entry, worked again in a second (after a storage error: it is still queued
/// under its old key, which stays valid).
fn retry_soon(entry: &QueueEntry) -> QueueEntry {
    let mut again = entry.clone();
    again.due_ms = now_ms() + 1_000;
    again
}

/// What went wrong with the last failed attempt, in words.
fn last_failure(attempts: &[crate::domain::delivery::Attempt]) -> String {
    let Some(last) = attempts.iter().rev().find(|a| !a.succeeded()) else { return String::new() };
    match (&last.error, last.status_code) {
        (Some(error), _) => error.clone(),
        (None, Some(status)) => format!("the receiver answered {status}"),
        (None, None) => "no answer".into(),
    }
}

/// A random number in [0, 1): jitter.
fn random_fraction() -> f64 {
    let mut byte = [0u8; 1];
    getrandom::fill(&mut byte).ok();
    f64::from(byte[0]) / 256.0
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

/// A running turn's place in its webhook's lane.
struct Slot<'a> {
    entry: &'a QueueEntry,
    reports: &'a mpsc::UnboundedSender<Report>,
}

impl Slot<'_> {
    /// Gives the place up while the outcome is stored (the turn still counts as running).
    fn release(&self) {
        let _ = self.reports.send(Report::Sent(self.entry.clone()));
    }
}

/// What a turn of a delivery leaves for the schedule.
#[derive(Default)]
struct Turn {
    /// Its queue entry as it now stands, if it is still queued.
    next: Option<QueueEntry>,
    /// Hold the webhook's lane until then (its connector cannot run before).
    pause_until: Option<u64>,
    /// The ordering keys of its requests still to be sent.
    keys: Vec<String>,
}

impl From<Option<QueueEntry>> for Turn {
    fn from(next: Option<QueueEntry>) -> Self {
        Turn { next, ..Turn::default() }
    }
}

/// What became of running a delivery's plugin.
enum Transformed {
    /// Its messages are ready to send.
    Ready,
    /// The delivery is finished (filtered, plugin error, event gone).
    Done,
    /// The plugin could not run now (the host is busy, or it is backed off): try after this.
    Wait(std::time::Duration),
}
