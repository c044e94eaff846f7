//! Each transport beside HTTP: the real `wasmhook` binary (release, embedded database), the
//! `json` connector, one webhook, and at the other end a consumer written with the broker's
//! ordinary client, noting when each event arrives. Everything on this machine's cores: the
//! load generator, the consumer and the broker compete with the server.
//!
//! Per transport: single events (10,000 of about 2 KB, one per `POST /v1/events`, 64 in
//! flight): deliveries/s and the server's CPU per event; then 1,000 events/s for 5 s: p50 and
//! p99 from sending the event to the message reaching the consumer.
//!
//! Run: `cargo bench -p wasmhook --bench transports`. The brokers are the ones the tests use
//! (`WASMHOOK_TEST_<BROKER>_URL`, else the standard loopback ports); `WASMHOOK_BENCH_TRANSPORTS`
//! picks some (`http,amqp,nats,redis,mqtt`, the default).

#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt as _;
use serde_json::json;

use support::{Arrivals, percentile, receiver, start_server, steady_latencies};

/// A broker's URL for the benches: as the tests find it.
fn broker_url(name: &str) -> String {
    let default = match name {
        "AMQP" => "amqp://guest:guest@127.0.0.1:5672/%2f",
        "NATS" => "nats://127.0.0.1:4222",
        "REDIS" => "redis://127.0.0.1:6379",
        "MQTT" => "mqtt://127.0.0.1:1883",
        other => panic!("no broker {other}"),
    };
    std::env::var(format!("WASMHOOK_TEST_{name}_URL")).unwrap_or_else(|_| default.to_owned())
}

fn new_arrivals() -> Arc<Arrivals> {
    Arc::new(Arrivals { at: Default::default(), count: Default::default() })
}

/// Notes an arrival: only the id is read, as the HTTP receiver does.
fn arrived(arrivals: &Arrivals, body: &[u8]) {
    let now = Instant::now();
    #[derive(serde::Deserialize)]
    struct Delivered<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    if let Ok(Delivered { id }) = serde_json::from_slice::<Delivered>(body) {
        arrivals.at.lock().unwrap().entry(id.into_owned()).or_insert(now);
    }
    arrivals.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The webhook URL for `transport`, and the consumer noting arrivals there.
async fn destination(transport: &str, run: &str) -> (String, Arc<Arrivals>) {
    let arrivals = new_arrivals();
    let seen = arrivals.clone();
    let url = match transport {
        "http" => return receiver().await,
        "amqp" => {
            use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
            use lapin::types::FieldTable;
            let base = broker_url("AMQP");
            let connection = lapin::Connection::connect(&base, Default::default()).await.unwrap();
            let channel = connection.create_channel().await.unwrap();
            let options = QueueDeclareOptions { auto_delete: true, ..Default::default() };
            channel.queue_declare(run.into(), options, FieldTable::default()).await.unwrap();
            let consume = BasicConsumeOptions { no_ack: true, ..Default::default() };
            let mut deliveries = channel
                .basic_consume(run.into(), "bench".into(), consume, FieldTable::default())
                .await
                .unwrap();
            tokio::spawn(async move {
                let _connection = connection;
                while let Some(Ok(delivery)) = deliveries.next().await {
                    arrived(&seen, &delivery.data);
                }
            });
            format!("{base}?routingKey={run}")
        }
        "nats" => {
            let base = broker_url("NATS");
            let client = async_nats::connect(base.trim_start_matches("nats://")).await.unwrap();
            let subject = format!("bench.{run}");
            let jetstream = async_nats::jetstream::new(client.clone());
            let config = async_nats::jetstream::stream::Config {
                name: run.to_owned(),
                subjects: vec![subject.clone()],
                ..Default::default()
            };
            jetstream.create_stream(config).await.unwrap();
            let mut messages = client.subscribe(subject.clone()).await.unwrap();
            tokio::spawn(async move {
                while let Some(message) = messages.next().await {
                    arrived(&seen, &message.payload);
                }
            });
            format!("{base}/{subject}")
        }
        "redis" => {
            let base = broker_url("REDIS");
            let client = redis::Client::open(base.as_str()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let key = run.to_owned();
            tokio::spawn(async move {
                let mut last = "0".to_owned();
                // Reads on until the connection fails (the bench has moved on).
                loop {
                    let read = redis::cmd("XREAD")
                        .arg("BLOCK")
                        .arg(100)
                        .arg("STREAMS")
                        .arg(&key)
                        .arg(&last)
                        .query_async::<Option<redis::streams::StreamReadReply>>(&mut connection)
                        .await;
                    let Ok(reply) = read else { break };
                    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                        let body: Vec<u8> = redis::from_redis_value_ref(&entry.map["body"]).unwrap();
                        arrived(&seen, &body);
                        last = entry.id;
                    }
                }
            });
            format!("{base}/0?stream={run}&maxlen=100000")
        }
        "mqtt" => {
            use rumqttc::v5::mqttbytes::QoS;
            use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
            let base = broker_url("MQTT");
            let url = url::Url::parse(&base).unwrap();
            let mut options = MqttOptions::new(run, url.host_str().unwrap(), url.port().unwrap_or(1883));
            options.set_max_packet_size(Some(1 << 20));
            let (client, mut events) = AsyncClient::new(options, 1024);
            let topic = format!("bench/{run}");
            client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
            loop {
                if let Event::Incoming(Incoming::SubAck(_)) = events.poll().await.unwrap() {
                    break;
                }
            }
            tokio::spawn(async move {
                let _client = client;
                while let Ok(event) = events.poll().await {
                    if let Event::Incoming(Incoming::Publish(publish)) = event {
                        arrived(&seen, &publish.payload);
                    }
                }
            });
            format!("{base}/{topic}")
        }
        other => panic!("no transport {other}"),
    };
    (url, arrivals)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let wanted = std::env::var("WASMHOOK_BENCH_TRANSPORTS").unwrap_or_else(|_| "http,amqp,nats,redis,mqtt".into());
        println!("| transport | deliveries/s (single events) | server CPU per event | p50 / p99 at 1,000/s |");
        println!("|---|---|---|---|");
        for transport in wanted.split(',').map(str::trim) {
            let data = tempfile::tempdir().unwrap();
            let (mut child, base) = start_server(data.path(), &[]);
            let run_name = format!("wasmhookbench{}", std::process::id());
            let (url, arrivals) = destination(transport, &run_name).await;
            let client = reqwest::Client::new();
            let hook = |project: &str| json!({"name": "load", "url": url, "metadata": {"events": [], "projectIds": [project]}});
            for project in ["single", "p"] {
                let response =
                    client.post(format!("{base}/v1/webhooks")).bearer_auth("op").json(&hook(project)).send().await.unwrap();
                assert_eq!(response.status(), 201, "{transport}: {}", response.text().await.unwrap());
            }
            let run = support::single_events(&client, std::slice::from_ref(&base), &arrivals, &[child.id()], 10_000).await;
            let latencies = steady_latencies(&client, &base, &arrivals, 1_000, 5, "p", "lat").await;
            println!(
                "| {transport} | {:.0} | {:.3} ms | {:.2} / {:.2} ms |",
                run.delivered_per_s,
                run.server_cpu_ms,
                percentile(&latencies, 0.50).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            );
            child.kill().unwrap();
            child.wait().unwrap();
            if transport == "nats" {
                let client = async_nats::connect(broker_url("NATS").trim_start_matches("nats://")).await.unwrap();
                async_nats::jetstream::new(client).delete_stream(&run_name).await.unwrap();
            }
        }
    });
}
