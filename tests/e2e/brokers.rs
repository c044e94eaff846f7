//! Webhooks whose destination is a message broker — RabbitMQ, NATS JetStream, Redis Streams,
//! MQTT 5 and 3.1.1 — each a real broker, read back by a consumer written with that broker's
//! ordinary client. Every test uses names of its own (queue, stream, subject, topic).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};
use wasmhook::domain::delivery::DeliveryStatus;

use crate::support::{OPERATOR, TestServer, assert_signed, broker_url, eventually, unique};

fn hook(url: &str) -> Value {
    json!({"name": "broker", "url": url, "metadata": {"events": [], "projectIds": []}})
}

fn event(id: &str) -> Value {
    json!({"id": id, "event": "TODO_CREATED", "companyId": "c1", "projectId": "p1", "currentValue": {"title": "Launch"}})
}

/// Creates a webhook to `url`, sends one event, and waits until its delivery succeeded.
/// Returns the webhook as created (with its secret) and the delivery's one attempt.
async fn deliver_one(server: &TestServer, url: &str) -> (Value, wasmhook::domain::delivery::Attempt) {
    let created = server.webhook(OPERATOR, hook(url)).await;
    let accepted = server.send_event(OPERATOR, event(&unique("e"))).await;
    let id = accepted["deliveries"][0].as_str().unwrap().to_owned();
    eventually("the delivery to succeed", async || {
        let delivery = server.state.store.delivery(&id).await.unwrap()?;
        assert_ne!(delivery.status, DeliveryStatus::Failed, "{:?}", server.state.store.attempts(&id).await);
        (delivery.status == DeliveryStatus::Succeeded).then_some(())
    })
    .await;
    let attempts = server.state.store.attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    (created, attempts.into_iter().next().unwrap())
}

/// The body as the `json` connector sends it, for `created`'s webhook.
fn check_body(body: &[u8], created: &Value) {
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["event"], "TODO_CREATED");
    assert_eq!(body["webhook"]["id"], created["id"]);
}

#[tokio::test]
async fn rabbitmq_gets_persistent_signed_messages_confirmed() {
    use lapin::options::{BasicGetOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};

    let server = TestServer::delivering("10ms").await;
    let base = broker_url("AMQP");
    let connection = lapin::Connection::connect(&base, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = unique("wasmhook-test-");
    let options = QueueDeclareOptions { auto_delete: true, ..Default::default() };
    channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.unwrap();

    let (created, attempt) = deliver_one(&server, &format!("{base}?routingKey={queue}")).await;
    let got = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message is in the queue");
    let properties = &got.delivery.properties;
    assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
    assert_eq!(properties.content_type().as_ref().map(|t| t.as_str()), Some("application/json"));
    let mut headers: HashMap<String, String> = properties
        .headers()
        .as_ref()
        .unwrap()
        .inner()
        .iter()
        .map(|(name, value)| match value {
            AMQPValue::LongString(text) => (name.as_str().to_lowercase(), text.to_string()),
            other => panic!("header {name:?} is {other:?}"),
        })
        .collect();
    assert_eq!(properties.message_id().as_ref().map(|id| id.to_string()), headers.get("webhook-id").cloned());
    assert_signed(created["secret"].as_str().unwrap(), &headers, &got.delivery.data);
    check_body(&got.delivery.data, &created);
    headers.clear();

    assert!(attempt.response.unwrap().contains("confirmed by RabbitMQ"));
    assert_eq!(attempt.status_code, None);
    // The login is never shown back.
    assert_eq!(created["url"], format!("{}?routingKey={queue}", base.replace(":guest@", ":***@")));
}

#[tokio::test]
async fn rabbitmq_refusals_fail_the_attempt_saying_why_and_never_show_the_password() {
    let server = TestServer::delivering("10ms,10ms,10ms,10ms").await;
    let password = unique("pw-");
    let base = broker_url("AMQP");
    let url = format!("{}?routingKey=nowhere", base.replace(":guest@", &format!(":{password}@")));
    let created = server.webhook(OPERATOR, hook(&url)).await;
    let webhook_id = created["id"].as_str().unwrap();
    let accepted = server.send_event(OPERATOR, event(&unique("e"))).await;
    let delivery_id = accepted["deliveries"][0].as_str().unwrap();

    let delivery = eventually("the delivery to fail", async || {
        server.state.store.delivery(delivery_id).await.unwrap().filter(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    assert_eq!(delivery.messages[0].attempts, 5);
    let attempts = server.state.store.attempts(delivery_id).await.unwrap();
    let error = attempts[0].error.as_deref().unwrap();
    let endpoint = base.split('@').nth(1).unwrap().split('/').next().unwrap();
    assert!(error.starts_with(&format!("RabbitMQ {endpoint}: ")), "{error}");
    assert!(error.contains("ACCESS_REFUSED") || error.contains("authentication"), "{error}");
    let path = format!("/v1/webhooks/{webhook_id}");
    let webhook = eventually("the webhook to be disabled", async || {
        let (_, webhook) = server.call(OPERATOR, Method::GET, &path, None).await;
        (webhook["status"] == "DISABLED").then_some(webhook)
    })
    .await;
    assert_eq!(webhook["enabled"], false);

    // Nowhere in what the API shows.
    let paths = [
        format!("/v1/webhooks/{webhook_id}"),
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{webhook_id}/deliveries"),
        format!("/v1/webhooks/{webhook_id}/stats"),
    ];
    for path in &paths {
        let (status, shown) = server.call(OPERATOR, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {shown}");
        assert!(!shown.to_string().contains(&password), "{path} shows the password: {shown}");
    }

    // With the right login, a message no queue takes comes back, and the attempt says so.
    let server = TestServer::delivering("10ms").await;
    let queue = unique("nobody-");
    server.webhook(OPERATOR, hook(&format!("{}?routingKey={queue}", broker_url("AMQP")))).await;
    let accepted = server.send_event(OPERATOR, event(&unique("e"))).await;
    let delivery_id = accepted["deliveries"][0].as_str().unwrap().to_owned();
    let error = eventually("an attempt", async || {
        server.state.store.attempts(&delivery_id).await.unwrap().first().and_then(|a| a.error.clone())
    })
    .await;
    assert!(error.contains("no queue takes it") && error.contains(&queue), "{error}");
}

#[tokio::test]
async fn nats_jetstream_stores_signed_messages_deduplicated_by_message_id() {
    use async_nats::jetstream;

    let server = TestServer::delivering("10ms").await;
    let base = broker_url("NATS");
    let client = async_nats::connect(base.trim_start_matches("nats://")).await.unwrap();
    let jetstream = jetstream::new(client);
    let name = unique("WASMHOOK_TEST_");
    let subject = format!("wasmhook.test.{name}");
    let config = jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    };
    let stream = jetstream.create_stream(config).await.unwrap();

    let (created, attempt) = deliver_one(&server, &format!("{base}/{subject}")).await;
    let got = stream.get_raw_message(1).await.unwrap();
    let headers: HashMap<String, String> = got
        .headers
        .iter()
        .map(|(name, values)| (name.to_string().to_lowercase(), values[0].to_string()))
        .collect();
    assert_signed(created["secret"].as_str().unwrap(), &headers, &got.payload);
    assert_eq!(headers["nats-msg-id"], headers["webhook-id"], "JetStream deduplicates on it");
    assert_eq!(headers["content-type"], "application/json");
    check_body(&got.payload, &created);
    assert!(
        attempt.response.unwrap().contains(&format!("stored by JetStream in stream {name:?} at sequence 1"))
    );
    jetstream.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn redis_streams_get_an_entry_per_message() {
    let server = TestServer::delivering("10ms").await;
    let base = broker_url("REDIS");
    let key = unique("wasmhook-test-");
    let (created, attempt) = deliver_one(&server, &format!("{base}/0?stream={key}&maxlen=100")).await;

    let client = redis::Client::open(base.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<(String, HashMap<String, Vec<u8>>)> =
        redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query_async(&mut connection).await.unwrap();
    assert_eq!(entries.len(), 1);
    let (id, fields) = &entries[0];
    let text = |name: &str| String::from_utf8(fields[name].clone()).unwrap();
    let headers: HashMap<String, String> =
        fields.keys().filter(|name| *name != "body").map(|name| (name.to_lowercase(), text(name))).collect();
    assert_signed(created["secret"].as_str().unwrap(), &headers, &fields["body"]);
    check_body(&fields["body"], &created);
    assert!(attempt.response.unwrap().ends_with(&format!("as entry {id}")));
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut connection).await.unwrap();
}

/// An MQTT 5 subscriber on `topic`: what it receives, in order.
async fn mqtt5_subscriber(
    topic: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Publish> {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
    let url = url::Url::parse(&broker_url("MQTT")).unwrap();
    let options = MqttOptions::new(unique("sub-"), url.host_str().unwrap(), url.port().unwrap_or(1883));
    let (client, mut events) = AsyncClient::new(options, 16);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    loop {
        if let Event::Incoming(Incoming::SubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Incoming::Publish(publish)) = event {
                let _ = send.send(publish);
            }
        }
    });
    receive
}

#[tokio::test]
async fn mqtt_5_carries_headers_as_user_properties() {
    let server = TestServer::delivering("10ms").await;
    let topic = format!("wasmhook/test/{}", unique(""));
    let mut received = mqtt5_subscriber(&topic).await;

    let (created, attempt) = deliver_one(&server, &format!("{}/{topic}?qos=1", broker_url("MQTT"))).await;
    let got = received.recv().await.unwrap();
    let properties = got.properties.unwrap();
    assert_eq!(properties.content_type.as_deref(), Some("application/json"));
    let headers: HashMap<String, String> =
        properties.user_properties.into_iter().map(|(name, value)| (name.to_lowercase(), value)).collect();
    assert_signed(created["secret"].as_str().unwrap(), &headers, &got.payload);
    check_body(&got.payload, &created);
    assert!(attempt.response.unwrap().contains("acknowledged by the broker"));
}

#[tokio::test]
async fn mqtt_3_1_1_gets_an_envelope_of_headers_and_body() {
    let server = TestServer::delivering("10ms").await;
    let topic = format!("wasmhook/test/{}", unique(""));
    let mut received = mqtt5_subscriber(&topic).await;

    let url = format!("{}/{topic}?version=3.1.1", broker_url("MQTT"));
    let (created, _) = deliver_one(&server, &url).await;
    let got = received.recv().await.unwrap();
    let envelope: Value = serde_json::from_slice(&got.payload).unwrap();
    let headers: HashMap<String, String> = envelope["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.to_lowercase(), value.as_str().unwrap().to_owned()))
        .collect();
    let body = envelope["body"].as_str().unwrap().as_bytes();
    assert_signed(created["secret"].as_str().unwrap(), &headers, body);
    check_body(body, &created);
}

/// A Redis server of the test's own on a free loopback port, to stop and start again.
struct OwnRedis {
    port: u16,
    process: Option<std::process::Child>,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let process = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        OwnRedis { port, process: Some(process) }
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().unwrap();
            process.wait().unwrap();
        }
    }

    async fn answers(&self) -> bool {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)) else {
            return false;
        };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else { return false };
        redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_broker_stopped_mid_stream_gets_everything_once_it_is_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut redis = OwnRedis::start(port);
    eventually("the test's Redis to answer", async || redis.answers().await.then_some(())).await;
    let server = TestServer::delivering("1s,1s,1s,1s").await;
    let key = "events";
    let created = server.webhook(OPERATOR, hook(&format!("redis://127.0.0.1:{port}/0?stream={key}"))).await;
    let webhook_id = created["id"].as_str().unwrap().to_owned();

    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(format!("before{i}"));
        server.send_event(OPERATOR, event(&sent[i])).await;
    }
    let count = async |port: u16| -> Option<usize> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("XLEN").arg(key).query_async::<usize>(&mut connection).await.ok()
    };
    eventually("the first five in the stream", async || (count(port).await? == 5).then_some(())).await;

    redis.stop();
    for i in 0..5 {
        sent.push(format!("during{i}"));
        server.send_event(OPERATOR, event(&sent[5 + i])).await;
    }
    let path = format!("/v1/webhooks/{webhook_id}");
    eventually("the webhook to be unhealthy", async || {
        let (_, webhook) = server.call(OPERATOR, Method::GET, &path, None).await;
        (webhook["status"] == "UNHEALTHY").then_some(())
    })
    .await;

    // Back (empty: it keeps nothing), before the retries run out.
    let redis = OwnRedis::start(port);
    eventually("the five sent meanwhile in the stream", async || (count(port).await? >= 5).then_some(()))
        .await;
    let client = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<(String, HashMap<String, Vec<u8>>)> =
        redis::cmd("XRANGE").arg(key).arg("-").arg("+").query_async(&mut connection).await.unwrap();
    let mut ids: Vec<String> = entries
        .iter()
        .map(|(_, fields)| {
            serde_json::from_slice::<Value>(&fields["body"]).unwrap()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    println!("duplicates after the outage: {}", total - ids.len());
    let mut during: Vec<String> = sent[5..].to_vec();
    during.sort();
    assert_eq!(ids, during, "every event sent while the broker was down arrives once it is back");
    eventually("the webhook to be healthy again", async || {
        let (_, webhook) = server.call(OPERATOR, Method::GET, &path, None).await;
        (webhook["status"] == "HEALTHY").then_some(())
    })
    .await;
}

#[tokio::test]
async fn broker_urls_are_checked_when_saved() {
    let server = TestServer::start_with(|c| c.allow_private_destinations = false).await;
    for (url, says) in [
        ("amqp://127.0.0.1/%2f?routingKey=q", "non-public"),
        ("amqp://rabbit.example.com/%2f", "needs ?exchange"),
        ("nats://nats.example.com/orders.*", "not a subject"),
        ("redis://redis.example.com/0", "needs ?stream"),
        ("mqtt://broker.example.com/a/+/b", "not a topic"),
        ("kafka://broker.example.com/t", "must be an http, https, amqp"),
        ("https://user:secret@example.com/x", "credentials"),
    ] {
        let (status, answer) = server.call(OPERATOR, Method::POST, "/v1/webhooks", Some(hook(url))).await;
        assert_eq!(status, 400, "{url}: {answer}");
        let message = answer["error"].to_string();
        assert!(message.contains(says), "{url}: {message}");
        assert!(!message.contains("secret"), "{url}: {message}");
    }
    let server = TestServer::start_with(|c| {
        c.allow_private_destinations = false;
        c.allow_destination_hosts = vec!["127.0.0.1:5672".parse().unwrap()];
    })
    .await;
    let (status, _) = server
        .call(OPERATOR, Method::POST, "/v1/webhooks", Some(hook("amqp://127.0.0.1/%2f?routingKey=q")))
        .await;
    assert_eq!(status, 201, "an allowed host on its port");
    let (status, _) =
        server.call(OPERATOR, Method::POST, "/v1/webhooks", Some(hook("redis://127.0.0.1/0?stream=s"))).await;
    assert_eq!(status, 400, "the same host on another port");
}

/// The real binary, logging at `info`, with broker logins that the brokers refuse: the
/// passwords appear in no answer and in no line it logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_passwords_appear_in_no_answer_and_no_log() {
    let data = tempfile::tempdir().unwrap();
    let args =
        ["--operator-token", "op", "--allow-private-destinations", "--retry-schedule", "10ms,10ms,10ms,10ms"];
    let mut server = crate::serve::start_with(data.path(), &crate::support::shared_cache_dir(), &args);
    let password = unique("pw-");
    let amqp = broker_url("AMQP").replace(":guest@", &format!(":{password}@"));
    let redis = broker_url("REDIS").replace("redis://", &format!("redis://:{password}@"));
    let mut ids = Vec::new();
    for url in [format!("{amqp}?routingKey=q"), format!("{redis}/0?stream=s")] {
        let (status, created) = server.call("op", Method::POST, "/v1/webhooks", Some(hook(&url))).await;
        assert_eq!(status, 201, "{created}");
        assert!(!created.to_string().contains(&password), "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let (status, _) = server.call("op", Method::POST, "/v1/events", Some(event(&unique("e")))).await;
    assert_eq!(status, 202);
    for id in &ids {
        let path = format!("/v1/webhooks/{id}");
        eventually("the webhook to be disabled", async || {
            let (_, webhook) = server.call("op", Method::GET, &path, None).await;
            (webhook["status"] == "DISABLED").then_some(())
        })
        .await;
        for path in [path.clone(), format!("{path}/deliveries"), "/v1/webhooks".into()] {
            let (_, shown) = server.call("op", Method::GET, &path, None).await;
            assert!(!shown.to_string().contains(&password), "{path}: {shown}");
        }
        let (_, log) = server.call("op", Method::GET, &format!("{path}/deliveries"), None).await;
        let error = log["data"][0]["attempts"][0]["error"].as_str().unwrap_or_default().to_owned();
        assert!(!error.is_empty(), "the delivery log says why: {log}");
    }
    let (status, log) = server.stop_with_log();
    assert!(status.success());
    assert!(log.contains("attempt"), "it logged the attempts: {log}");
    assert!(!log.contains(&password), "a password in the log:\n{log}");
}
