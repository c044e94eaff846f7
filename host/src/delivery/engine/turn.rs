//! One turn of one delivery: read it (and its webhook), run its connector on the first turn,
//! attempt the messages that are due, and store the outcome with the queue entry's next
//! state in one write.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::connector::Transformed;
use super::{Engine, Report, random_fraction};
use crate::delivery::keys;
use crate::delivery::transport::Verdict;
use crate::domain::delivery::{Delivery, DeliveryStatus, MessageStatus};
use crate::domain::webhook::{Origin, Webhook, WebhookStatus};
use crate::service::operations::About;
use crate::service::{Health, Transition};
use crate::store::{QueueEntry, now_ms};

/// How long a request waits in its turn for the deliveries ahead of it with its ordering key.
const KEY_WAIT: Duration = Duration::from_secs(2);

/// When a request still behind its ordering key after that is looked at again.
const KEY_RECHECK: time::Duration = time::Duration::seconds(1);

impl Engine {
    /// One turn of one delivery; returns its queue entry as it now stands, if it is queued.
    pub(super) async fn work(&self, slot: &Slot<'_>) -> Turn {
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
        let next_attempt_at = delivery.next_attempt_at();
        delivery.status = if next_attempt_at.is_some() {
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
        let next_due = next_attempt_at.map(crate::store::millis);
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

/// A running turn's place in its webhook's lane.
pub(super) struct Slot<'a> {
    pub(super) entry: &'a QueueEntry,
    pub(super) reports: &'a mpsc::UnboundedSender<Report>,
}

impl Slot<'_> {
    /// Gives the place up while the outcome is stored (the turn still counts as running).
    pub(super) fn release(&self) {
        let _ = self.reports.send(Report::Sent(self.entry.clone()));
    }
}

/// What a turn of a delivery leaves for the schedule.
#[derive(Default)]
pub(super) struct Turn {
    /// Its queue entry as it now stands, if it is still queued.
    pub(super) next: Option<QueueEntry>,
    /// Hold the webhook's lane until then (its connector cannot run before).
    pub(super) pause_until: Option<u64>,
    /// The ordering keys of its requests still to be sent.
    pub(super) keys: Vec<String>,
}

impl From<Option<QueueEntry>> for Turn {
    fn from(next: Option<QueueEntry>) -> Self {
        Turn { next, ..Turn::default() }
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
