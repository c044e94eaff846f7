//! NATS JetStream: `nats://[user:password@ | token@]host[:port]/subject`.
//!
//! A publish waits for the stream's acknowledgement; a subject no stream captures fails the
//! attempt (NATS would otherwise drop it). Headers go as NATS headers, and the message id as
//! `Nats-Msg-Id`, so a retry after a lost acknowledgement is dropped by JetStream's duplicate
//! window instead of stored twice.

use std::str::FromStr;

use async_nats::connection::State;
use async_nats::{ConnectOptions, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::{Message, credentials, parameters, path_text};
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

/// Connect options for `url`: its credentials, and none of the servers a cluster announces
/// (they would bypass the address check).
pub fn options(url: &Url) -> Result<ConnectOptions, String> {
    let options = match credentials(url)? {
        Some((user, Some(password))) => ConnectOptions::with_user_and_password(user, password),
        Some((token, None)) => ConnectOptions::with_token(token),
        None => ConnectOptions::new(),
    };
    Ok(options
        .name("wasmhook")
        .ignore_discovered_servers()
        .connection_timeout(std::time::Duration::from_secs(5)))
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
