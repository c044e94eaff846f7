//! Broker sources (`serve --source`): events published to a real NATS JetStream stream,
//! RabbitMQ queue or Redis stream reach the webhooks; malformed messages become dead letters
//! without holding up the rest; a host killed with -9 mid-stream loses nothing.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, Receiver, TestServer, broker_url, eventually, unique};

fn hook(url: &str) -> Value {
    json!({"name": "sink", "url": url, "metadata": {"events": [], "projectIds": []}})
}

fn event(id: Option<&str>) -> Value {
    let mut event = json!({"event": "TODO_CREATED", "companyId": "c1", "projectId": "p1"});
    if let Some(id) = id {
        event["id"] = json!(id);
    }
    event
}

/// A server consuming `source`, with a webhook to a fresh receiver.
async fn consuming(source: &str) -> (TestServer, Receiver) {
    let spec = source.parse().unwrap();
    let server = TestServer::start_with(|c| c.sources = vec![spec]).await;
    wasmhook::delivery::engine::spawn(server.state.engine_context());
    let receiver = Receiver::start().await;
    server.webhook(OPERATOR, hook(&receiver.url)).await;
    (server, receiver)
}

/// The event ids the receiver got, in order.
fn received_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The source as `/v1/sources` shows it, once `ready` says it is as wanted.
async fn source_view(server: &TestServer, name: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("source {name} as wanted"), async || {
        let (status, sources) = server.call(OPERATOR, Method::GET, "/v1/sources", None).await;
        assert_eq!(status, 200, "{sources}");
        sources.as_array().unwrap().iter().find(|s| s["name"] == name).filter(|s| ready(s)).cloned()
    })
    .await
}

async fn dead_letters(server: &TestServer, name: &str) -> Vec<Value> {
    let path = format!("/v1/sources/{name}/dead-letters");
    let (status, page) = server.call(OPERATOR, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

/// What every source must do with the same five messages: two events (one without an id),
/// then one that is not JSON, one that is not a known event, and the first event again.
fn five_messages(first: &str) -> Vec<Vec<u8>> {
    vec![
        serde_json::to_vec(&event(Some(first))).unwrap(),
        serde_json::to_vec(&event(None)).unwrap(),
        b"{not json".to_vec(),
        serde_json::to_vec(&json!({"event": "NO_SUCH_EVENT", "companyId": "c1", "projectId": "p1"})).unwrap(),
        serde_json::to_vec(&event(Some(first))).unwrap(),
    ]
}

/// Checks what [`five_messages`] must have led to on `server`.
async fn check_five(server: &TestServer, receiver: &Receiver, name: &str, first: &str) {
    let all_five = |s: &Value| s["ingested"] == 2 && s["deadLettered"] == 2 && s["duplicates"] == 1;
    let view = source_view(server, name, all_five).await;
    assert_eq!(view["connected"], true, "{view}");
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2);
    assert!(received_ids(receiver).contains(&first.to_owned()));

    let letters = dead_letters(server, name).await;
    let reasons: Vec<&str> = letters.iter().map(|l| l["reason"].as_str().unwrap()).collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(reasons[1].starts_with("not an event: "), "oldest last: {reasons:?}");
    assert!(reasons[0].contains("unknown event type \"NO_SUCH_EVENT\""), "{reasons:?}");
    assert_eq!(letters[1]["message"], "{not json");
    assert!(letters[0]["brokerId"].is_string());

    let (_, metrics) = server.call(OPERATOR, Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains(&format!("wasmhook_events_ingested_total{{source=\"{name}\"}} 2")), "{metrics}");
    assert!(
        metrics.contains(&format!("wasmhook_duplicate_events_total{{source=\"{name}\"}} 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_nats_jetstream_source_takes_events_and_sets_malformed_ones_aside() {
    use async_nats::jetstream;
    let base = broker_url("NATS");
    let client = async_nats::connect(base.trim_start_matches("nats://")).await.unwrap();
    let js = jetstream::new(client);
    let stream = unique("SRC_");
    let subject = format!("wasmhook.source.{stream}");
    let config = jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();

    let name = unique("nats-");
    let (server, receiver) = consuming(&format!("{base}/{stream}?consumer=wh&name={name}")).await;
    let first = unique("ev-");
    for message in five_messages(&first) {
        js.publish(subject.clone(), message.into()).await.unwrap().await.unwrap();
    }
    check_five(&server, &receiver, &name, &first).await;
    // All acknowledged: nothing is left for the consumer.
    let mut consumer: jetstream::consumer::PullConsumer =
        js.get_stream(&stream).await.unwrap().get_consumer("wh").await.unwrap();
    eventually("every message acknowledged", async || {
        let info = consumer.info().await.unwrap();
        (info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
    })
    .await;
    js.delete_stream(&stream).await.unwrap();
}

#[tokio::test]
async fn a_rabbitmq_source_takes_events_and_sets_malformed_ones_aside() {
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
    use lapin::types::FieldTable;
    let base = broker_url("AMQP");
    let connection = lapin::Connection::connect(&base, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = unique("wasmhook-source-");
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();

    let name = unique("amqp-");
    let (server, receiver) = consuming(&format!("{base}?queue={queue}&name={name}")).await;
    let first = unique("ev-");
    for message in five_messages(&first) {
        let properties = lapin::BasicProperties::default().with_message_id(unique("m").as_str().into());
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &message,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    check_five(&server, &receiver, &name, &first).await;
    let view = source_view(&server, &name, |_| true).await;
    assert_eq!(view["url"], format!("{}?queue={queue}", base.replace(":guest@", ":***@")), "{view}");
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
}

#[tokio::test]
async fn a_redis_streams_source_takes_events_and_sets_malformed_ones_aside() {
    let base = broker_url("REDIS");
    let key = unique("wasmhook-source-");
    let name = unique("redis-");
    let (server, receiver) = consuming(&format!("{base}/0?stream={key}&group=wh&name={name}")).await;
    // The group is made (with the stream) once the source runs.
    source_view(&server, &name, |s| s["connected"] == true).await;

    let client = redis::Client::open(base.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let first = unique("ev-");
    for message in five_messages(&first) {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("body")
            .arg(message)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    check_five(&server, &receiver, &name, &first).await;

    // An entry without a `body` is set aside too, saying so.
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("event")
        .arg("x")
        .query_async(&mut connection)
        .await
        .unwrap();
    let letter = eventually("a third dead letter", async || {
        let letters = dead_letters(&server, &name).await;
        (letters.len() == 3).then(|| letters[0].clone())
    })
    .await;
    assert!(letter["reason"].as_str().unwrap().contains("no `body` field"), "{letter}");
    eventually("nothing left unacknowledged", async || {
        let summary: redis::Value =
            redis::cmd("XPENDING").arg(&key).arg("wh").query_async(&mut connection).await.unwrap();
        matches!(&summary, redis::Value::Array(items) if items.first() == Some(&redis::Value::Int(0)))
            .then_some(())
    })
    .await;
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut connection).await.unwrap();
}

#[tokio::test]
async fn the_sources_api_is_for_operators_and_knows_its_sources() {
    let base = broker_url("REDIS");
    let name = unique("redis-");
    let (server, _) = consuming(&format!("{base}/0?stream={}&group=wh&name={name}", unique("s"))).await;
    let user = server.token("alice", &["c1"], "user").await;
    let (status, _) = server.call(&user, Method::GET, "/v1/sources", None).await;
    assert_eq!(status, 403);
    let (status, _) = server.call(OPERATOR, Method::GET, "/v1/sources/nope/dead-letters", None).await;
    assert_eq!(status, 404);
    let path = format!("/v1/sources/{name}/dead-letters?limit=0");
    let (status, answer) = server.call(OPERATOR, Method::GET, &path, None).await;
    assert_eq!(status, 400, "{answer}");
}

/// `kill -9` of a host while a source is flowing, then a restart: every message `publish`
/// sends reaches the receiver (what was not acknowledged before the kill comes again, and
/// what was already stored is recognised). Half the events have ids, half not (deduplicated
/// by the broker's id for the message).
async fn kill_9_mid_stream<F, Fut>(source: &str, publish: F)
where
    F: FnOnce(Vec<Vec<u8>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let data = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let args = ["--operator-token", "op", "--allow-private-destinations", "--source", source];
    let server = crate::serve::start_with(data.path(), &crate::support::shared_cache_dir(), &args);
    let (status, _) = server.call("op", Method::POST, "/v1/webhooks", Some(hook(&receiver.url))).await;
    assert_eq!(status, 201);

    let total = 400;
    let messages = (0..total)
        .map(|i: usize| {
            let id = format!("k{i}");
            let mut body = event(i.is_multiple_of(2).then_some(id.as_str()));
            body["currentValue"] = json!({"n": i});
            serde_json::to_vec(&body).unwrap()
        })
        .collect();
    let publisher = tokio::spawn(publish(messages));
    receiver.wait_for(40).await;
    server.kill();
    publisher.await.unwrap();

    let server = crate::serve::start_with(data.path(), &crate::support::shared_cache_dir(), &args);
    // What the killed host had taken without acknowledging may come again only after the
    // broker's wait (JetStream's ack wait, 10 s): wait longer than `eventually` does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let numbers = loop {
        let got: Vec<u64> = receiver
            .received()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["currentValue"]["n"].as_u64().unwrap())
            .collect();
        let distinct: BTreeSet<u64> = got.iter().copied().collect();
        if distinct.len() == total {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "{} of {total} messages arrived", distinct.len());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    eprintln!(
        "kill -9 mid-stream ({source}): {total} messages published, {} requests delivered, {} duplicates",
        numbers.len(),
        numbers.len() - total
    );
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_message_from_a_nats_source() {
    use async_nats::jetstream;
    let base = broker_url("NATS");
    let client = async_nats::connect(base.trim_start_matches("nats://")).await.unwrap();
    let js = jetstream::new(client);
    let stream = unique("KILL_");
    let subject = format!("wasmhook.kill.{stream}");
    let config = jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();
    let publisher = js.clone();
    kill_9_mid_stream(&format!("{base}/{stream}?name=events"), async move |messages| {
        for message in messages {
            publisher.publish(subject.clone(), message.into()).await.unwrap().await.unwrap();
        }
    })
    .await;
    js.delete_stream(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_message_from_a_rabbitmq_source() {
    use lapin::options::{
        BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::FieldTable;
    let base = broker_url("AMQP");
    let connection = lapin::Connection::connect(&base, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let queue = unique("wasmhook-kill-");
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let (publisher, name) = (channel.clone(), queue.clone());
    kill_9_mid_stream(&format!("{base}?queue={queue}&name=events"), async move |messages| {
        for message in messages {
            let options = BasicPublishOptions::default();
            let properties = lapin::BasicProperties::default();
            let confirm =
                publisher.basic_publish("".into(), name.as_str().into(), options, &message, properties);
            confirm.await.unwrap().await.unwrap();
        }
    })
    .await;
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_message_from_a_redis_source() {
    let base = broker_url("REDIS");
    let key = unique("wasmhook-kill-");
    let client = redis::Client::open(base.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut publisher = connection.clone();
    let stream = key.clone();
    kill_9_mid_stream(&format!("{base}/0?stream={key}&group=wh&name=events"), async move |messages| {
        for message in messages {
            let _: String = redis::cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("body")
                .arg(message)
                .query_async(&mut publisher)
                .await
                .unwrap();
        }
    })
    .await;
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut connection).await.unwrap();
}
