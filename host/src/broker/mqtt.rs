//! MQTT: `mqtt(s)://[user:password@]host[:port]/topic[?qos=0|1|2][&version=5|3.1.1]`.
//!
//! QoS 1 by default: a publish succeeds on the broker's PUBACK (PUBCOMP at QoS 2; at QoS 0, once
//! written). MQTT 5 by default: headers go as user properties, `content-type` as the content
//! type. MQTT 3.1.1 has no headers, so there the message is an envelope, the JSON
//! `{"headers": {name: value, …}, "body": "<the body>"}`.
//!
//! The client (rumqttc) tells of acknowledgements by packet id, which it assigns as it sends:
//! publishes are handed to it in order, under a lock, and each waiter takes the id of the next
//! publish the client reports sent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use url::Url;

use super::{Message, credentials, parameters, path_text};
use crate::destination::{Allow, Transport};

/// Packets up to this size, each way (payloads are bounded well below by the plugin limits).
const MAX_PACKET: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V5,
    V311,
}

/// Where a publish goes on its broker.
#[derive(Debug)]
pub struct Target {
    pub topic: String,
    pub qos: u8,
    pub version: Version,
}

impl Target {
    pub fn parse(url: &Url) -> Result<Target, String> {
        let mut params = parameters(url, &["qos", "version"])?;
        let topic = path_text(url)?;
        if topic.is_empty() || topic.contains(['+', '#']) || topic.contains('\0') {
            return Err(format!(
                "{topic:?} is not a topic to publish to: the path names it (mqtt://host/plant/7/events), \
                 without wildcards (+ #)"
            ));
        }
        let qos = match params.remove("qos").as_deref() {
            None | Some("1") => 1,
            Some("0") => 0,
            Some("2") => 2,
            Some(other) => return Err(format!("qos {other:?} must be 0, 1 or 2")),
        };
        let version = match params.remove("version").as_deref() {
            None | Some("5") => Version::V5,
            Some("3.1.1") => Version::V311,
            Some(other) => return Err(format!("version {other:?} must be 5 or 3.1.1")),
        };
        Ok(Target { topic, qos, version })
    }
}

/// The client a connection publishes through.
enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

type Reply = oneshot::Sender<Result<(), String>>;

/// Publishes waiting for their acknowledgement.
#[derive(Default)]
struct Waiting {
    /// Handed to the client, not yet reported sent: in the order they were handed over.
    unsent: VecDeque<(u8, Reply)>,
    /// Sent, by packet id.
    sent: HashMap<u16, Reply>,
    /// Why the connection ended, once it has.
    lost: Option<String>,
}

/// What the event loop reported, as far as publishes care.
enum Seen {
    Sent(u16),
    Acked(u16),
    Refused(u16, String),
    Other,
}

impl Waiting {
    fn see(&mut self, seen: Seen) {
        match seen {
            Seen::Sent(pkid) => {
                if let Some((qos, reply)) = self.unsent.pop_front() {
                    match qos {
                        0 => drop(reply.send(Ok(()))),
                        _ => drop(self.sent.insert(pkid, reply)),
                    }
                }
            }
            Seen::Acked(pkid) => {
                if let Some(reply) = self.sent.remove(&pkid) {
                    let _ = reply.send(Ok(()));
                }
            }
            Seen::Refused(pkid, why) => {
                if let Some(reply) = self.sent.remove(&pkid) {
                    let _ = reply.send(Err(why));
                }
            }
            Seen::Other => {}
        }
    }

    fn lose(&mut self, error: String) {
        let why = format!("the connection was lost before the broker acknowledged: {error}");
        for (_, reply) in self.unsent.drain(..) {
            let _ = reply.send(Err(why.clone()));
        }
        for (_, reply) in self.sent.drain() {
            let _ = reply.send(Err(why.clone()));
        }
        self.lost = Some(error);
    }
}

/// A connection to one broker, its event loop on a task of its own.
pub struct Connection {
    client: Client,
    waiting: Arc<Mutex<Waiting>>,
    /// Held while a publish is handed over, so that waiters queue in the client's order.
    order: tokio::sync::Mutex<()>,
    events: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.events.abort();
    }
}

impl super::pool::Live for Connection {
    fn is_live(&self) -> bool {
        lock(&self.waiting).lost.is_none()
    }
}

fn lock(waiting: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    waiting.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connection {
    /// Connects to the broker `url` names, at an address the destination rules allow, and
    /// waits for its CONNACK (so wrong credentials fail here, saying so).
    pub async fn open(url: &Url, target: &Target, allow: &Allow) -> Result<Connection, String> {
        let address = super::vet(url, allow).await?;
        let tls = Transport::tls(url);
        let host = match (tls, url.host_str()) {
            (true, Some(name)) => name.to_owned(),
            _ => address.ip().to_string(),
        };
        let id = format!("wasmhook-{}", uuid::Uuid::now_v7().simple());
        let login = credentials(url)?;
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let (client, events) = match target.version {
            Version::V311 => {
                let mut options = rumqttc::MqttOptions::new(id, host, address.port());
                options.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(MAX_PACKET, MAX_PACKET);
                if tls {
                    options.set_transport(rumqttc::Transport::tls_with_default_config());
                }
                if let Some((user, password)) = login {
                    options.set_credentials(user, password.unwrap_or_default());
                }
                let (client, mut events) = rumqttc::AsyncClient::new(options, 256);
                loop {
                    use rumqttc::{Event, Packet};
                    match events.poll().await.map_err(|e| e.to_string())? {
                        Event::Incoming(Packet::ConnAck(_)) => break,
                        _ => continue,
                    }
                }
                let waiting = waiting.clone();
                let task = tokio::spawn(async move {
                    loop {
                        match events.poll().await {
                            Ok(event) => lock(&waiting).see(seen_v311(event)),
                            Err(error) => break lock(&waiting).lose(error.to_string()),
                        }
                    }
                });
                (Client::V311(client), task)
            }
            Version::V5 => {
                let mut options = rumqttc::v5::MqttOptions::new(id, host, address.port());
                options.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(Some(MAX_PACKET as u32));
                if tls {
                    options.set_transport(rumqttc::Transport::tls_with_default_config());
                }
                if let Some((user, password)) = login {
                    options.set_credentials(user, password.unwrap_or_default());
                }
                let (client, mut events) = rumqttc::v5::AsyncClient::new(options, 256);
                loop {
                    use rumqttc::v5::{Event, Incoming};
                    match events.poll().await.map_err(|e| e.to_string())? {
                        Event::Incoming(Incoming::ConnAck(_)) => break,
                        _ => continue,
                    }
                }
                let waiting = waiting.clone();
                let task = tokio::spawn(async move {
                    loop {
                        match events.poll().await {
                            Ok(event) => lock(&waiting).see(seen_v5(event)),
                            Err(error) => break lock(&waiting).lose(error.to_string()),
                        }
                    }
                });
                (Client::V5(client), task)
            }
        };
        Ok(Connection { client, waiting, order: tokio::sync::Mutex::new(()), events })
    }

    /// Publishes and waits for the broker's acknowledgement.
    pub async fn publish(&self, target: &Target, message: &Message<'_>) -> Result<String, String> {
        let topic = &target.topic;
        let (reply, answer) = oneshot::channel();
        {
            let _order = self.order.lock().await;
            {
                let mut waiting = lock(&self.waiting);
                if let Some(error) = &waiting.lost {
                    return Err(format!("the connection was lost: {error}"));
                }
                waiting.unsent.push_back((target.qos, reply));
            }
            if let Err(error) = self.hand_over(target, message).await {
                // Never handed over, so never reported sent: it is the last one queued.
                lock(&self.waiting).unsent.pop_back();
                return Err(format!("topic {topic:?}: {error}"));
            }
        }
        match answer.await {
            Ok(Ok(())) => Ok(match target.qos {
                0 => format!("written to the broker (topic {topic:?}, QoS 0: no acknowledgement)"),
                qos => format!("acknowledged by the broker (topic {topic:?}, QoS {qos})"),
            }),
            Ok(Err(error)) => Err(format!("topic {topic:?}: {error}")),
            Err(_) => Err(format!("topic {topic:?}: the connection closed")),
        }
    }

    async fn hand_over(&self, target: &Target, message: &Message<'_>) -> Result<(), String> {
        let topic = target.topic.clone();
        match &self.client {
            Client::V311(client) => {
                let qos = match target.qos {
                    0 => rumqttc::QoS::AtMostOnce,
                    1 => rumqttc::QoS::AtLeastOnce,
                    _ => rumqttc::QoS::ExactlyOnce,
                };
                client.publish(topic, qos, false, envelope(message)).await.map_err(|e| e.to_string())
            }
            Client::V5(client) => {
                use rumqttc::v5::mqttbytes::{QoS, v5::PublishProperties};
                let qos = match target.qos {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => QoS::ExactlyOnce,
                };
                let is_type = |name: &str| name.eq_ignore_ascii_case("content-type");
                let properties = PublishProperties {
                    content_type: message.header("content-type").map(str::to_owned),
                    user_properties: message.headers.iter().filter(|(n, _)| !is_type(n)).cloned().collect(),
                    ..Default::default()
                };
                let body = bytes::Bytes::copy_from_slice(message.body);
                client
                    .publish_with_properties(topic, qos, false, body, properties)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// MQTT 3.1.1's message: `{"headers": {…}, "body": "…"}` (a repeated header's values joined
/// with `, `, as HTTP would).
fn envelope(message: &Message<'_>) -> Vec<u8> {
    let mut headers = serde_json::Map::new();
    for (name, value) in message.headers {
        match headers.get_mut(name) {
            Some(serde_json::Value::String(earlier)) => {
                earlier.push_str(", ");
                earlier.push_str(value);
            }
            _ => drop(headers.insert(name.clone(), value.clone().into())),
        }
    }
    let body = String::from_utf8_lossy(message.body);
    serde_json::to_vec(&serde_json::json!({"headers": headers, "body": body})).expect("plain data")
}

fn seen_v311(event: rumqttc::Event) -> Seen {
    use rumqttc::{Event, Outgoing, Packet};
    match event {
        Event::Outgoing(Outgoing::Publish(pkid)) => Seen::Sent(pkid),
        Event::Incoming(Packet::PubAck(ack)) => Seen::Acked(ack.pkid),
        Event::Incoming(Packet::PubComp(done)) => Seen::Acked(done.pkid),
        _ => Seen::Other,
    }
}

fn seen_v5(event: rumqttc::v5::Event) -> Seen {
    use rumqttc::Outgoing;
    use rumqttc::v5::mqttbytes::v5::{PubAckReason, PubCompReason, PubRecReason};
    use rumqttc::v5::{Event, Incoming};
    match event {
        Event::Outgoing(Outgoing::Publish(pkid)) => Seen::Sent(pkid),
        Event::Incoming(Incoming::PubAck(ack)) => match ack.reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Seen::Acked(ack.pkid),
            reason => Seen::Refused(ack.pkid, format!("the broker refused the message ({reason:?})")),
        },
        Event::Incoming(Incoming::PubRec(received)) => match received.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => Seen::Other,
            reason => Seen::Refused(received.pkid, format!("the broker refused the message ({reason:?})")),
        },
        Event::Incoming(Incoming::PubComp(done)) => match done.reason {
            PubCompReason::Success => Seen::Acked(done.pkid),
            reason => Seen::Refused(done.pkid, format!("the broker refused the message ({reason:?})")),
        },
        _ => Seen::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target, String> {
        Target::parse(&Url::parse(text).unwrap())
    }

    #[test]
    fn the_path_is_the_topic() {
        let target = parse("mqtt://h/plant/7/events?qos=0&version=3.1.1").unwrap();
        assert_eq!((target.topic.as_str(), target.qos, target.version), ("plant/7/events", 0, Version::V311));
        let target = parse("mqtts://h/a").unwrap();
        assert_eq!((target.qos, target.version), (1, Version::V5));
        for bad in
            ["mqtt://h/", "mqtt://h/a/+/b", "mqtt://h/a/%23", "mqtt://h/a?qos=3", "mqtt://h/a?version=4"]
        {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn waiters_take_packet_ids_in_the_order_they_were_sent() {
        let mut waiting = Waiting::default();
        let (first, mut first_answer) = oneshot::channel();
        let (second, mut second_answer) = oneshot::channel();
        let (quick, mut quick_answer) = oneshot::channel();
        waiting.unsent.extend([(1, first), (1, second), (0, quick)]);
        waiting.see(Seen::Sent(7));
        waiting.see(Seen::Sent(8));
        waiting.see(Seen::Sent(0));
        assert_eq!(quick_answer.try_recv().unwrap(), Ok(()), "QoS 0 is done once written");
        waiting.see(Seen::Refused(8, "quota".into()));
        assert_eq!(second_answer.try_recv().unwrap(), Err("quota".into()));
        assert!(first_answer.try_recv().is_err(), "7 is not acknowledged yet");
        waiting.lose("reset".into());
        assert!(
            first_answer.try_recv().unwrap().unwrap_err().contains("lost before the broker acknowledged")
        );
    }

    #[test]
    fn mqtt_3_1_1_gets_an_envelope() {
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        let message = Message { id: "msg_1", headers: &headers, body: br#"{"a":1}"# };
        let envelope: serde_json::Value = serde_json::from_slice(&envelope(&message)).unwrap();
        assert_eq!(
            envelope,
            serde_json::json!({"headers": {"content-type": "application/json"}, "body": "{\"a\":1}"})
        );
    }
}
