//! Broker sources: `wasmhook serve --source URL` also takes events from a NATS JetStream
//! consumer, a RabbitMQ queue or a Redis Streams consumer group.
//!
//! Each message is one event in `POST /v1/events`'s JSON, ingested through the same path
//! ([`crate::service::Ingest`]) and counted in `/metrics` under the source's name. A message is
//! acknowledged only once its event and deliveries are durable, so a host killed mid-stream
//! loses nothing: the broker gives again what was not acknowledged, and a message given again
//! is deduplicated — by the event's `id`, or, when it has none, by the broker's id for the
//! message. A message that is not an event is acknowledged and kept as a dead letter with the
//! reason; it never holds up the messages behind it. When storage cannot take an event (the
//! queue is full, the database is down) the message is kept in hand and tried again, holding
//! the rest back: backpressure, not loss.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest as _;
use url::Url;

use crate::broker::Received;
use crate::destination::redacted;
use crate::domain::dead_letter::DeadLetter;
use crate::domain::event::IncomingEvent;
use crate::service::{Ingest, IngestError};
use crate::store::{IdempotencyKey, Store, Stored};

/// Waits between tries after a failure, doubling up to the last.
const BACKOFF: [Duration; 6] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// Which broker a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A NATS JetStream durable consumer.
    Nats,
    /// A RabbitMQ queue.
    Amqp,
    /// A Redis Streams consumer group.
    Redis,
}

/// A configured source: `--source URL`.
#[derive(Clone, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct SourceSpec {
    /// Its name, in metrics and in `/v1/sources/{name}`: the URL's `name` parameter, or made
    /// from the broker and the stream or queue.
    pub name: String,
    pub kind: Kind,
    /// Without the `name` parameter; with its credentials (never shown: see [`redacted`]).
    pub url: Url,
}

impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, redacted(&self.url))
    }
}

impl TryFrom<String> for SourceSpec {
    type Error = String;

    fn try_from(text: String) -> Result<SourceSpec, String> {
        text.parse()
    }
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<SourceSpec, String> {
        let shown = crate::destination::redacted_text(text);
        let mut url = Url::parse(text).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
        let kind = match url.scheme() {
            "nats" => Kind::Nats,
            "amqp" | "amqps" => Kind::Amqp,
            "redis" | "rediss" => Kind::Redis,
            _ => return Err(format!("{shown:?}: a source is a nats, amqp(s) or redis(s) URL")),
        };
        let name = url.query_pairs().find(|(k, _)| k == "name").map(|(_, v)| v.into_owned());
        let rest: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "name")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        if !rest.is_empty() {
            url.query_pairs_mut().extend_pairs(rest);
        }
        let stream = match kind {
            Kind::Nats => crate::broker::nats::Consumer::parse(&url)?.stream,
            Kind::Amqp => crate::broker::amqp::Queue::parse(&url)?.queue,
            Kind::Redis => crate::broker::redis::Group::parse(&url)?.stream,
        }
        .to_lowercase();
        let name = name.unwrap_or_else(|| {
            let made: String =
                stream.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            let broker = match kind {
                Kind::Nats => "nats",
                Kind::Amqp => "amqp",
                Kind::Redis => "redis",
            };
            format!("{broker}-{made}")
        });
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(format!("{shown:?}: name {name:?} must be 1 to 64 of a-z, 0-9, - and _"));
        }
        Ok(SourceSpec { name: name.to_ascii_lowercase(), kind, url })
    }
}

/// A running source, as `/v1/sources` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    pub name: String,
    pub kind: Kind,
    /// The URL, credentials as `***`.
    pub url: String,
    /// Consuming now.
    pub connected: bool,
    /// Why it is not, or the last storage error it waited out.
    pub last_error: Option<String>,
    /// Events stored from it since this host started.
    pub ingested: u64,
    /// Messages given again that were already stored.
    pub duplicates: u64,
    /// Messages set aside as dead letters since this host started.
    pub dead_lettered: u64,
}

struct Running {
    spec: SourceSpec,
    connected: std::sync::atomic::AtomicBool,
    last_error: Mutex<Option<String>>,
    ingested: AtomicU64,
    duplicates: AtomicU64,
    dead_lettered: AtomicU64,
}

/// The sources this host consumes.
#[derive(Clone, Default)]
pub struct Sources(Arc<Vec<Arc<Running>>>);

impl Sources {
    /// Starts consuming each source on the current runtime.
    pub fn spawn(specs: Vec<SourceSpec>, ingest: Ingest, store: Store) -> Sources {
        let running: Vec<Arc<Running>> = specs
            .into_iter()
            .map(|spec| {
                Arc::new(Running {
                    spec,
                    connected: Default::default(),
                    last_error: Mutex::default(),
                    ingested: AtomicU64::default(),
                    duplicates: AtomicU64::default(),
                    dead_lettered: AtomicU64::default(),
                })
            })
            .collect();
        for source in &running {
            tokio::spawn(consume(source.clone(), ingest.clone(), store.clone()));
        }
        Sources(Arc::new(running))
    }

    pub fn list(&self) -> Vec<SourceView> {
        self.0.iter().map(|source| source.view()).collect()
    }

    pub fn get(&self, name: &str) -> Option<SourceView> {
        self.0.iter().find(|source| source.spec.name == name).map(|source| source.view())
    }
}

impl Running {
    fn view(&self) -> SourceView {
        SourceView {
            name: self.spec.name.clone(),
            kind: self.spec.kind,
            url: redacted(&self.spec.url),
            connected: self.connected.load(Ordering::Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            ingested: self.ingested.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
        }
    }

    fn failed(&self, error: &str) {
        tracing::warn!(source = %self.spec.name, "{error}");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_owned());
    }
}

/// Consumes a source for as long as the host runs, connecting again after any failure.
async fn consume(source: Arc<Running>, ingest: Ingest, store: Store) {
    let mut failures = 0usize;
    loop {
        let take = |received: Received| {
            let (source, ingest, store) = (source.clone(), ingest.clone(), store.clone());
            async move { take(&source, &ingest, &store, received).await }
        };
        let on_connected = || {
            source.connected.store(true, Ordering::Relaxed);
            tracing::info!(source = %source.spec.name, url = %redacted(&source.spec.url), "consuming");
        };
        let url = &source.spec.url;
        let ended = match source.spec.kind {
            Kind::Nats => crate::broker::nats::consume(url, on_connected, take).await,
            Kind::Amqp => crate::broker::amqp::consume(url, on_connected, take).await,
            Kind::Redis => crate::broker::redis::consume(url, on_connected, take).await,
        };
        let connected_before = source.connected.swap(false, Ordering::Relaxed);
        failures = if connected_before { 0 } else { failures + 1 };
        source.failed(&format!("consuming stopped: {}", ended.err().unwrap_or_default()));
        tokio::time::sleep(BACKOFF[failures.min(BACKOFF.len() - 1)]).await;
    }
}

/// Takes one message: stored as an event, or set aside as a dead letter. Returns once the
/// message may be acknowledged; storage errors are waited out.
async fn take(source: &Running, ingest: &Ingest, store: &Store, received: Received) {
    let mut failures = 0usize;
    loop {
        match try_take(source, ingest, store, &received).await {
            Ok(()) => return,
            Err(error) => {
                source.failed(&format!("cannot store a message yet, trying again: {error}"));
                tokio::time::sleep(BACKOFF[failures.min(BACKOFF.len() - 1)]).await;
                failures += 1;
            }
        }
    }
}

async fn try_take(
    source: &Running,
    ingest: &Ingest,
    store: &Store,
    received: &Received,
) -> Result<(), IngestError> {
    let name = &source.spec.name;
    let parsed = match &received.problem {
        Some(problem) => Err(problem.clone()),
        None => parse(&received.body),
    };
    let incoming = match parsed.and_then(|event| ingest.check(&event).map(|()| event)) {
        Ok(event) => event,
        Err(reason) => return dead_letter(source, store, reason, received).await,
    };
    // Without an event id, the broker's id for the message dedupes it when it comes again.
    let key = match (&incoming.id, &received.broker_id) {
        (None, Some(broker_id)) => Some(IdempotencyKey {
            scoped: format!("source\0{name}\0{broker_id}"),
            endpoint: "source",
            body_hash: hex::encode(sha2::Sha256::digest(&received.body)),
        }),
        _ => None,
    };
    let (accept, _) = ingest.prepare(incoming, None);
    match ingest.commit(vec![accept], key.as_ref(), name).await? {
        Stored::Accepted(outcomes) if outcomes.iter().all(|o| !o.duplicate) => {
            source.ingested.fetch_add(1, Ordering::Relaxed);
        }
        Stored::Accepted(_) | Stored::Replay(_) => {
            source.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        Stored::KeyConflict(why) => return dead_letter(source, store, why, received).await,
    }
    Ok(())
}

async fn dead_letter(
    source: &Running,
    store: &Store,
    reason: String,
    received: &Received,
) -> Result<(), IngestError> {
    let letter = DeadLetter::new(&source.spec.name, reason, &received.body, received.broker_id.clone());
    store.add_dead_letter(&letter).await?;
    tracing::warn!(source = %source.spec.name, dead_letter = %letter.id, reason = %letter.reason, "message set aside");
    source.dead_lettered.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A message as an event, naming the field at fault when it is not one.
fn parse(body: &[u8]) -> Result<IncomingEvent, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match path.as_str() {
            "." => format!("not an event: {inner}"),
            _ => format!("not an event: {path}: {inner}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_named_after_its_stream_unless_named() {
        let spec: SourceSpec = "nats://127.0.0.1/ORDERS?consumer=wh".parse().unwrap();
        assert_eq!((spec.name.as_str(), spec.kind), ("nats-orders", Kind::Nats));
        let spec: SourceSpec = "amqp://u:pw@rabbit/%2f?queue=events&name=Main".parse().unwrap();
        assert_eq!(spec.name, "main");
        assert_eq!(spec.url.as_str(), "amqp://u:pw@rabbit/%2f?queue=events", "name is not the broker's");
        assert_eq!(format!("{spec:?}"), "main (amqp://u:***@rabbit/%2f?queue=events)");
        let spec: SourceSpec = "redis://r/0?stream=app.events&group=wh".parse().unwrap();
        assert_eq!(spec.name, "redis-app-events");
        for bad in ["mqtt://h/t", "https://h/", "nats://h/S?name=a%20b", "redis://r/0?group=g"] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_messages_say_what_is_wrong() {
        assert!(parse(b"{not json").unwrap_err().starts_with("not an event: "));
        let error = parse(br#"{"event": "TODO_CREATED", "companyId": 5, "projectId": "p"}"#).unwrap_err();
        assert!(error.contains("companyId"), "{error}");
    }
}
