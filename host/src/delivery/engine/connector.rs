//! Running a delivery's connector: the transform on its first turn (and a shadow run of a
//! candidate version beside it), judging the receiver's answers for connectors that do, and
//! the state connectors keep per webhook.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::{Engine, random_fraction};
use crate::delivery::transport::Verdict;
use crate::domain::connector_version::{ShadowRun, compare};
use crate::domain::delivery::{Delivery, DeliveryStatus, Message};
use crate::domain::payload::standard_payload;
use crate::domain::webhook::Webhook;
use crate::runtime::{Judged, Plugin, Request, Response, StateHandle, StateScope};

impl Engine {
    /// Runs the plugin, unless the delivery must wait for it.
    pub(super) async fn transform(&self, delivery: &mut Delivery, webhook: &Webhook) -> Transformed {
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
        let result = invocation
            .result
            .and_then(|requests| crate::delivery::check_plugin_urls(requests, &webhook.url, &allow));
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
    pub(super) async fn plugin_of(&self, webhook: &Webhook) -> Result<Arc<Plugin>, String> {
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
    pub(super) fn loaded_plugin(&self, webhook: &Webhook) -> Option<Arc<Plugin>> {
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
            let result = invocation
                .result
                .and_then(|requests| crate::delivery::check_plugin_urls(requests, &url, &allow));
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
    pub(super) async fn judge(
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
}

/// What became of running a delivery's plugin.
pub(super) enum Transformed {
    /// Its messages are ready to send.
    Ready,
    /// The delivery is finished (filtered, plugin error, event gone).
    Done,
    /// The plugin could not run now (the host is busy, or it is backed off): try after this.
    Wait(std::time::Duration),
}
