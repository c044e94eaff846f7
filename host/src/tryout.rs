//! `wasmhook plugin run`: a plugin author's first tool. Runs a plugin on one event exactly
//! as the host would — standard payload around the event, a sample webhook, the same
//! runtime and limits — and reports the requests, the log and the time taken.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::builtins;
use crate::domain::event::IncomingEvent;
use crate::domain::payload::standard_payload;
use crate::domain::webhook::{Origin, Subscription, Webhook, WebhookStatus};
use crate::runtime::{Invocation, LogLine, Plugin, PluginError, PluginInfo, Policy, Request, Runtime};

/// The URL of the sample webhook the event is delivered to.
pub const SAMPLE_WEBHOOK_URL: &str = "https://example.com/webhook";

/// Which plugin to run.
#[derive(Debug, Clone)]
pub enum PluginSource {
    Builtin(String),
    File(PathBuf),
}

impl PluginSource {
    /// A path ending in `.wasm` (or naming an existing file) is a file; anything else a
    /// built-in connector's name.
    pub fn parse(arg: &str) -> Self {
        let path = PathBuf::from(arg);
        if arg.ends_with(".wasm") || path.is_file() {
            PluginSource::File(path)
        } else {
            PluginSource::Builtin(arg.to_owned())
        }
    }
}

/// Why the plugin could not be tried (the plugin's own failures are in [`Tryout::result`]).
#[derive(Debug, thiserror::Error)]
pub enum TryoutError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("no built-in connector named {name:?}; built-ins: {available}")]
    UnknownBuiltin { name: String, available: String },
    #[error("the event is not valid: {0}")]
    Event(String),
    #[error("--config is not valid JSON: {0}")]
    Config(String),
    #[error("cannot load the plugin: {0}")]
    Load(PluginError),
}

/// What happened when the plugin ran.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tryout {
    pub plugin: PluginInfo,
    /// The standard payload the plugin received.
    #[serde(skip)]
    pub payload: String,
    #[serde(serialize_with = "serialize_result")]
    pub result: Result<Vec<Request>, PluginError>,
    pub log: Vec<LogLine>,
    #[serde(serialize_with = "serialize_millis")]
    pub load_time: Duration,
    #[serde(serialize_with = "serialize_millis")]
    pub invoke_time: Duration,
}

/// Loads the plugin, builds the standard payload for `event_json` and runs the plugin once.
pub async fn run(
    runtime: &Runtime,
    source: &PluginSource,
    event_json: &str,
    config_json: &str,
) -> Result<Tryout, TryoutError> {
    let incoming: IncomingEvent =
        serde_json::from_str(event_json).map_err(|e| TryoutError::Event(e.to_string()))?;
    let config: serde_json::Value =
        serde_json::from_str(config_json).map_err(|e| TryoutError::Config(e.to_string()))?;
    let bytes: Arc<[u8]> = match source {
        PluginSource::File(path) => {
            std::fs::read(path).map_err(|source| TryoutError::Read { path: path.clone(), source })?.into()
        }
        PluginSource::Builtin(name) => builtins::component(name)
            .ok_or_else(|| TryoutError::UnknownBuiltin {
                name: name.clone(),
                available: builtins::BUILTINS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            })?
            .into(),
    };

    let started = Instant::now();
    let plugin = runtime.load(bytes, Policy::Fresh).await.map_err(TryoutError::Load)?;
    let load_time = started.elapsed();

    let (payload, invocation) = run_on_sample(runtime, &plugin, incoming, &config, None).await;
    Ok(Tryout {
        plugin: plugin.info().clone(),
        payload,
        result: invocation.result,
        log: invocation.log,
        load_time,
        invoke_time: invocation.duration,
    })
}

/// Runs `plugin` on `incoming` as the host would for a sample webhook subscribed to it:
/// returns the payload it got and what it did. With a `caller` it is that caller's preview
/// on a server (a bounded slot on the low-priority threads); without, a local try-out owned
/// by the event's user.
pub async fn run_on_sample(
    runtime: &Runtime,
    plugin: &Arc<Plugin>,
    incoming: IncomingEvent,
    config: &serde_json::Value,
    caller: Option<&str>,
) -> (String, Invocation) {
    let now = OffsetDateTime::now_utc();
    let event = incoming.accept(now);
    let webhook = sample_webhook(&event.event, &event.project_id, caller.or(event.user_id.as_deref()), now);
    let payload = standard_payload(&event, &webhook);
    let (owner, config) = (&webhook.created_by_id, config.to_string());
    let invocation = match caller {
        Some(_) => runtime.preview(plugin, owner, &payload, &config).await,
        None => {
            runtime
                .invoke(plugin, owner, &payload, &config, Some(crate::runtime::StateHandle::scratch()))
                .await
        }
    };
    (payload, invocation)
}

/// A webhook subscribed to exactly this event, as a user would have set one up.
pub fn sample_webhook(event: &str, project: &str, user: Option<&str>, now: OffsetDateTime) -> Webhook {
    Webhook {
        id: "wh_sample".into(),
        name: "Sample webhook".into(),
        url: SAMPLE_WEBHOOK_URL.into(),
        status: WebhookStatus::Healthy,
        enabled: true,
        metadata: Subscription { events: vec![event.into()], project_ids: vec![project.into()] },
        filter: None,
        connector: Default::default(),
        rate_limit: None,
        ordered: false,
        created_by_id: user.unwrap_or("user_sample").into(),
        created_at: now,
        updated_at: now,
        sealed_secret: String::new(),
        previous_secrets: Vec::new(),
        sealed_config: None,
        sealed_url: None,
        revision: 0,
        origin: Origin::default(),
    }
}

impl Tryout {
    /// The report for people: each request as it would go on the wire, then the log.
    pub fn render(&self) -> String {
        let mut out = format!("{} {} — {}\n", self.plugin.name, self.plugin.version, self.plugin.description);
        let judges = if self.plugin.on_response { ", judges answers (on-response)" } else { "" };
        out += &format!("contract {}{judges}\n", self.plugin.contract);
        if let Some(policy) = &self.plugin.policy {
            out += &format!("policy: {}\n", describe_policy(policy));
        }
        let timing = format!(
            "in {:.2} ms (load and compile {:.0} ms)",
            self.invoke_time.as_secs_f64() * 1e3,
            self.load_time.as_secs_f64() * 1e3
        );
        match &self.result {
            Ok(requests) if requests.is_empty() => {
                out += &format!("no requests {timing}: the delivery would be recorded as filtered\n");
            }
            Ok(requests) => {
                out += &format!("{} request(s) {timing}\n", requests.len());
                for request in requests {
                    let url = request.url.as_deref().unwrap_or(SAMPLE_WEBHOOK_URL);
                    out += &format!("\n{} {url}\n", request.method);
                    if let Some(key) = &request.ordering_key {
                        out += &format!("(ordering key {key:?})\n");
                    }
                    for (name, value) in &request.headers {
                        out += &format!("{name}: {value}\n");
                    }
                    out += &format!("\n{}\n", request.body);
                }
            }
            Err(error) => out += &format!("failed {timing}: [{}] {error}\n", error.code()),
        }
        if self.log.is_empty() {
            out += "\nlog: (empty)\n";
        } else {
            out += "\nlog:\n";
            for line in &self.log {
                out += &format!("  [{}] {}\n", line.level, line.message);
            }
        }
        out
    }
}

/// A declared policy in a few words: `1 per 1 s, 4 at once, 3 attempts, retries 429 503`.
fn describe_policy(policy: &crate::domain::policy::DeliveryPolicy) -> String {
    let mut parts = Vec::new();
    if let Some(rate) = policy.rate {
        parts.push(format!("{} per {} s", rate.requests, rate.seconds));
    }
    if let Some(concurrency) = policy.concurrency {
        parts.push(format!("{concurrency} at once"));
    }
    if let Some(attempts) = policy.attempts {
        parts.push(format!("{attempts} attempts"));
    }
    if let Some(statuses) = &policy.retry_statuses {
        let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
        parts.push(format!("retries {}", statuses.join(" ")));
    }
    if parts.is_empty() { "none declared".into() } else { parts.join(", ") }
}

fn serialize_result<S: serde::Serializer>(
    result: &Result<Vec<Request>, PluginError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(1))?;
    match result {
        Ok(requests) => map.serialize_entry("requests", requests)?,
        Err(error) => map.serialize_entry(
            "error",
            &serde_json::json!({"code": error.code(), "message": error.to_string()}),
        )?,
    }
    map.end()
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}
