//! RabbitMQ (AMQP 0-9-1): `amqp(s)://[user:password@]host[:port][/vhost]?exchange=X&routingKey=K`
//! as a destination, `amqp(s)://…[/vhost]?queue=Q` as a source.
//!
//! Messages are persistent and mandatory, and each publish waits for the broker's confirm: a
//! message no queue takes comes back and fails the attempt, rather than vanishing. An empty
//! vhost is RabbitMQ's default (`/`); without `exchange` the default exchange routes by queue
//! name. Headers go as AMQP message headers, `content-type` as the content-type property, the
//! message id as the message-id property.
//!
//! A source consumes an existing queue with manual acknowledgements (64 unacknowledged at
//! most). A message given again is known by its message-id property, or by its body's SHA-256
//! when it has none.

use std::collections::HashMap;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, ConnectionProperties};
use sha2::Digest as _;
use url::Url;

use super::{Message, Received, parameters, path_text};
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
        let host = match (Transport::tls(url), url.host_str()) {
            (true, Some(name)) => name.to_owned(),
            _ => address.ip().to_string(),
        };
        let connection = connect(url, host, address.port()).await?;
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

/// Connects to `host:port` with `url`'s scheme, credentials and vhost.
async fn connect(url: &Url, host: String, port: u16) -> Result<lapin::Connection, String> {
    let (username, password) = match super::credentials(url)? {
        Some((user, password)) => (user, password.unwrap_or_default()),
        // RabbitMQ's default user, as every AMQP client assumes.
        None => ("guest".into(), "guest".into()),
    };
    let uri = AMQPUri {
        scheme: if Transport::tls(url) { AMQPScheme::AMQPS } else { AMQPScheme::AMQP },
        authority: AMQPAuthority { userinfo: AMQPUserInfo { username, password }, host, port },
        vhost: vhost(url)?,
        ..AMQPUri::default()
    };
    let properties = ConnectionProperties::default().with_connection_name("wasmhook".into());
    lapin::Connection::connect_uri(uri, properties).await.map_err(|e| e.to_string())
}

/// A queue to take events from.
#[derive(Debug)]
pub struct Queue {
    pub vhost: String,
    pub queue: String,
}

impl Queue {
    pub fn parse(url: &Url) -> Result<Queue, String> {
        let mut params = parameters(url, &["queue"])?;
        let queue =
            params.remove("queue").filter(|q| !q.is_empty()).ok_or("needs ?queue=… (an existing queue)")?;
        Ok(Queue { vhost: vhost(url)?, queue })
    }
}

/// Takes the queue's messages one at a time, acknowledging each once `take` returns; returns
/// when the connection or channel fails.
pub async fn consume<F, Fut>(url: &Url, on_connected: impl FnOnce(), take: F) -> Result<(), String>
where
    F: Fn(Received) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let source = Queue::parse(url)?;
    let port = crate::destination::port(url);
    let connection = connect(url, url.host_str().unwrap_or_default().to_owned(), port).await?;
    let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
    let queue = source.queue.as_str();
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .map_err(|e| format!("queue {queue:?} in vhost {:?}: {e}", source.vhost))?;
    channel.basic_qos(64, BasicQosOptions::default()).await.map_err(|e| e.to_string())?;
    let mut deliveries = channel
        .basic_consume(queue.into(), "wasmhook".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .map_err(|e| format!("queue {queue:?}: {e}"))?;
    on_connected();
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery.map_err(|e| e.to_string())?;
        let broker_id = match delivery.properties.message_id() {
            Some(id) => format!("message-id:{id}"),
            None => format!("sha256:{}", hex::encode(sha2::Sha256::digest(&delivery.data))),
        };
        take(Received { body: delivery.data.clone(), broker_id: Some(broker_id), problem: None }).await;
        delivery.ack(BasicAckOptions::default()).await.map_err(|e| format!("acknowledging: {e}"))?;
    }
    Err("the queue's consumer was cancelled".into())
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
