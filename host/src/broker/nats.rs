//! NATS JetStream: `nats://[user:password@ | token@]host[:port]/subject` as a destination,
//! `nats://…/STREAM[?consumer=NAME]` as a source.
//!
//! A publish waits for the stream's acknowledgement; a subject no stream captures fails the
//! attempt (NATS would otherwise drop it). Headers go as NATS headers, and the message id as
//! `Nats-Msg-Id`, so a retry after a lost acknowledgement is dropped by JetStream's duplicate
//! window instead of stored twice.
//!
//! A source reads the stream through a durable pull consumer (`wasmhook` unless named), made
//! when missing (explicit acks, from the start of what the stream holds, given again 10 s after
//! a host took it without acknowledging it).

use std::str::FromStr;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{ConnectOptions, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use futures_util::StreamExt as _;

use super::{Message, Received, credentials, parameters, path_text};
use crate::destination::Allow;

/// Where a publish goes on its server.
#[derive(Debug)]
pub struct Target {
    pub subject: String,
}

impl Target {
    pub fn parse(url: &Url) -> Result<Target, String> {
        parameters(url, &[])?;
        let subject = path_text(url)?;
        check_subject(&subject)?;
        Ok(Target { subject })
    }
}

/// A subject to publish to: dot-separated tokens, none empty, no wildcards or spaces.
fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("needs a subject as its path (nats://host/orders.created)".into());
    }
    let bad_token = |t: &str| t.is_empty() || t == "*" || t == ">";
    if subject.split('.').any(bad_token) || subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{subject:?} is not a subject to publish to: dot-separated tokens, none empty, without \
             wildcards (* >) or spaces"
        ));
    }
    Ok(())
}

/// A client and its JetStream context.
pub struct Connection {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
}

impl super::pool::Live for Connection {
    fn is_live(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

impl Connection {
    /// Connects to the server `url` names, at an address the destination rules allow.
    pub async fn open(url: &Url, allow: &Allow) -> Result<Connection, String> {
        let address = super::vet(url, allow).await?;
        let client = options(url)?.connect(format!("nats://{address}")).await.map_err(|e| e.to_string())?;
        let jetstream = async_nats::jetstream::new(client.clone());
        Ok(Connection { client, jetstream })
    }

    /// Publishes and waits for the stream's acknowledgement.
    pub async fn publish(&self, target: &Target, message: &Message<'_>) -> Result<String, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in message.headers {
            let name = HeaderName::from_str(name).map_err(|e| format!("header {name:?}: {e}"))?;
            let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            headers.append(name, value);
        }
        headers.insert("Nats-Msg-Id", message.id);
        let subject = &target.subject;
        let body = bytes::Bytes::copy_from_slice(message.body);
        let ack = async { self.jetstream.publish_with_headers(subject.clone(), headers, body).await?.await };
        match ack.await {
            Ok(ack) => Ok(format!(
                "stored by JetStream in stream {:?} at sequence {}{}",
                ack.stream,
                ack.sequence,
                if ack.duplicate { " (a duplicate of an earlier attempt)" } else { "" }
            )),
            Err(error) => Err(format!("subject {subject:?}: {error}")),
        }
    }
}

/// A durable consumer to take events from.
#[derive(Debug)]
pub struct Consumer {
    pub stream: String,
    pub durable: String,
}

impl Consumer {
    pub fn parse(url: &Url) -> Result<Consumer, String> {
        let mut params = parameters(url, &["consumer"])?;
        let stream = path_text(url)?;
        let name_ok = |name: &str| {
            !name.is_empty()
                && !name.contains(|c: char| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c))
        };
        if !name_ok(&stream) {
            return Err(format!(
                "{stream:?} is not a stream name: the path names the stream (nats://host/ORDERS)"
            ));
        }
        let durable = params.remove("consumer").unwrap_or_else(|| "wasmhook".into());
        if !name_ok(&durable) {
            return Err(format!("{durable:?} is not a consumer name"));
        }
        Ok(Consumer { stream, durable })
    }
}

/// Takes the stream's messages through the durable consumer, one at a time, acknowledging each
/// once `take` returns; returns when the connection fails.
pub async fn consume<F, Fut>(url: &Url, on_connected: impl FnOnce(), take: F) -> Result<(), String>
where
    F: Fn(Received) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    let source = Consumer::parse(url)?;
    let address = format!("nats://{}:{}", url.host_str().unwrap_or_default(), crate::destination::port(url));
    let client = options(url)?.connect(address).await.map_err(|e| e.to_string())?;
    let jetstream = async_nats::jetstream::new(client);
    let stream =
        jetstream.get_stream(&source.stream).await.map_err(|e| format!("stream {:?}: {e}", source.stream))?;
    let config = pull::Config {
        durable_name: Some(source.durable.clone()),
        ack_policy: AckPolicy::Explicit,
        // What a host that died had been given comes again this soon.
        ack_wait: Duration::from_secs(10),
        ..Default::default()
    };
    let consumer = stream
        .get_or_create_consumer(&source.durable, config)
        .await
        .map_err(|e| format!("consumer {:?}: {e}", source.durable))?;
    // Few at a time: what a host that dies holds waits out `ack_wait` before it comes again.
    let mut messages =
        consumer.stream().max_messages_per_batch(64).messages().await.map_err(|e| e.to_string())?;
    on_connected();
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| e.to_string())?;
        let broker_id = message.info().ok().map(|info| format!("{}:{}", info.stream, info.stream_sequence));
        take(Received { body: message.payload.to_vec(), broker_id, problem: None }).await;
        message.ack().await.map_err(|e| format!("acknowledging: {e}"))?;
    }
    Err("the consumer's messages ended".into())
}

/// Connect options for `url`: its credentials, and none of the servers a cluster announces
/// (they would bypass the address check).
pub fn options(url: &Url) -> Result<ConnectOptions, String> {
    let options = match credentials(url)? {
        Some((user, Some(password))) => ConnectOptions::with_user_and_password(user, password),
        Some((token, None)) => ConnectOptions::with_token(token),
        None => ConnectOptions::new(),
    };
    Ok(options.name("wasmhook").ignore_discovered_servers().connection_timeout(Duration::from_secs(5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target, String> {
        Target::parse(&Url::parse(text).unwrap())
    }

    #[test]
    fn the_path_is_the_subject() {
        assert_eq!(parse("nats://h/orders.created").unwrap().subject, "orders.created");
        for bad in ["nats://h/", "nats://h/orders.*", "nats://h/a..b", "nats://h/a.>", "nats://h/a%20b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("nats://h/s?stream=x").unwrap_err().contains("unknown parameter"));
    }
}
