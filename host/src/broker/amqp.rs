//! RabbitMQ (AMQP 0-9-1): `amqp(s)://[user:password@]host[:port][/vhost]?exchange=X&routingKey=K`.
//!
//! Messages are persistent and mandatory, and each publish waits for the broker's confirm: a
//! message no queue takes comes back and fails the attempt, rather than vanishing. An empty
//! vhost is RabbitMQ's default (`/`); without `exchange` the default exchange routes by queue
//! name. Headers go as AMQP message headers, `content-type` as the content-type property, the
//! message id as the message-id property.

use std::collections::HashMap;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, ConnectionProperties};
use url::Url;

use super::{Message, parameters, path_text};
use crate::destination::{Allow, Transport};

/// Where a publish goes on its broker.
#[derive(Debug)]
pub struct Target {
    pub vhost: String,
    pub exchange: String,
    pub routing_key: String,
}

impl Target {
    pub fn parse(url: &Url) -> Result<Target, String> {
        let mut params = parameters(url, &["exchange", "routingKey"])?;
        let exchange = params.remove("exchange").unwrap_or_default();
        let routing_key = params.remove("routingKey").unwrap_or_default();
        if exchange.is_empty() && routing_key.is_empty() {
            return Err("needs ?exchange=…, ?routingKey=… or both (without an exchange, the default \
                        exchange routes by queue name)"
                .into());
        }
        Ok(Target { vhost: vhost(url)?, exchange, routing_key })
    }
}

/// The vhost a URL names: its path, `/` when empty.
pub fn vhost(url: &Url) -> Result<String, String> {
    let path = path_text(url)?;
    Ok(if path.is_empty() { "/".into() } else { path })
}

/// A connection, with one confirming channel per exchange: a publish the broker refuses
/// closes its channel, and only that exchange's publishes need a new one.
pub struct Connection {
    connection: lapin::Connection,
    channels: tokio::sync::Mutex<HashMap<String, Channel>>,
}

impl super::pool::Live for Connection {
    fn is_live(&self) -> bool {
        self.connection.status().connected()
    }
}

impl Connection {
    /// Connects to the broker `url` names, at an address the destination rules allow.
    pub async fn open(url: &Url, allow: &Allow) -> Result<Connection, String> {
        let address = super::vet(url, allow).await?;
        let tls = Transport::tls(url);
        let (username, password) = match super::credentials(url)? {
            Some((user, password)) => (user, password.unwrap_or_default()),
            // RabbitMQ's default user, as every AMQP client assumes.
            None => ("guest".into(), "guest".into()),
        };
        let uri = AMQPUri {
            scheme: if tls { AMQPScheme::AMQPS } else { AMQPScheme::AMQP },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo { username, password },
                host: match (tls, url.host_str()) {
                    (true, Some(name)) => name.to_owned(),
                    _ => address.ip().to_string(),
                },
                port: address.port(),
            },
            vhost: vhost(url)?,
            ..AMQPUri::default()
        };
        let properties = ConnectionProperties::default().with_connection_name("wasmhook".into());
        let connection = lapin::Connection::connect_uri(uri, properties).await.map_err(|e| e.to_string())?;
        Ok(Connection { connection, channels: Default::default() })
    }

    /// Publishes and waits for the broker's confirm.
    pub async fn publish(&self, target: &Target, message: &Message<'_>) -> Result<String, String> {
        let channel = self.channel(&target.exchange).await?;
        let mut headers = FieldTable::default();
        for (name, value) in message.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("content-type")) {
            headers.insert(name.as_str().into(), AMQPValue::LongString(value.as_str().into()));
        }
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(message.id.into())
            .with_headers(headers);
        if let Some(content_type) = message.header("content-type") {
            properties = properties.with_content_type(content_type.into());
        }
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        let (exchange, routing_key) = (&target.exchange, &target.routing_key);
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                options,
                message.body,
                properties,
            )
            .await
            .map_err(|e| e.to_string())?;
        let into = format!("exchange {exchange:?}, routing key {routing_key:?}");
        match confirm.await.map_err(|e| format!("{into}: {e}"))? {
            Confirmation::Ack(None) => Ok(format!("confirmed by RabbitMQ ({into})")),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Err(format!(
                "{into}: the broker returned the message ({} {}): no queue takes it",
                returned.reply_code, returned.reply_text
            )),
            Confirmation::Nack(None) => Err(format!("{into}: the broker refused the message (nack)")),
            Confirmation::NotRequested => Err(format!("{into}: the broker did not confirm")),
        }
    }

    async fn channel(&self, exchange: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().await;
        if let Some(channel) = channels.get(exchange).filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = self.connection.create_channel().await.map_err(|e| e.to_string())?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| e.to_string())?;
        channels.insert(exchange.to_owned(), channel.clone());
        Ok(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target, String> {
        Target::parse(&Url::parse(text).unwrap())
    }

    #[test]
    fn parameters_name_the_exchange_and_routing_key() {
        let target = parse("amqp://h/prod?exchange=events&routingKey=todo.created").unwrap();
        assert_eq!((target.vhost.as_str(), target.exchange.as_str()), ("prod", "events"));
        assert_eq!(target.routing_key, "todo.created");
        assert_eq!(parse("amqp://h?routingKey=q").unwrap().vhost, "/");
        assert_eq!(parse("amqp://h/%2f?routingKey=q").unwrap().vhost, "/");
        assert!(parse("amqp://h/v").unwrap_err().contains("needs ?exchange"));
        assert!(parse("amqp://h/v?queue=q").unwrap_err().contains("unknown parameter \"queue\""));
    }
}
