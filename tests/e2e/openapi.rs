//! `/openapi.json` says exactly what the API accepts and answers: schemathesis (pinned in
//! `tests/openapi/requirements.txt`, installed into a venv under `target/` when missing)
//! generates requests from the document — valid ones must be accepted, invalid ones refused,
//! and every answer must be documented, with its schema and content type — against the real
//! server on 127.0.0.1. The run's settings are in `tests/openapi/schemathesis.toml`.

use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wasmhook::domain::delivery::{Attempt, Delivery, DeliveryStatus, Message, MessageStatus};
use wasmhook::store::{Accept, QueueEntry};

use crate::support::{OPERATOR, TestServer, workspace};

fn dir() -> PathBuf {
    workspace().join("tests/openapi")
}

#[tokio::test]
async fn schemathesis_finds_the_api_as_its_document_says() {
    let bin = crate::support::python_venv("openapi-venv", &dir().join("requirements.txt"), "schemathesis");
    // Private destinations refused, as in production: the document must say so. Nothing is
    // ever delivered — no delivery engine runs — so generated URLs are never contacted.
    // One source, so that its dead letters can be read. It never connects (`.invalid`): its URL,
    // which the sources list shows, is also a destination the document allows (schemathesis
    // reuses what answers show).
    let source = "nats://nats.invalid/EVENTS?name=events";
    let server = TestServer::start_with(|c| {
        c.allow_private_destinations = false;
        c.sources = vec![source.parse().unwrap()];
    })
    .await;
    let mut seeded = seed(&server).await;
    seeded.push(("WASMHOOK_SOURCE_NAME", "events".to_owned()));
    let (status, document) = server.call(OPERATOR, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        // A schema the derive only names and nothing wrote would take anything.
        assert_ne!(schema, &json!({}), "{name} was never written");
    }

    let report = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin.join("schemathesis"));
    command
        .arg("--config-file")
        .arg(dir().join("schemathesis.toml"))
        .args(["run", &format!("{}/openapi.json", server.base), "--no-color"])
        .env("SCHEMATHESIS_HOOKS", dir().join("hooks.py"))
        .env("WASMHOOK_OPERATOR_TOKEN", OPERATOR)
        .envs(seeded)
        // Its reports and caches go to the working directory: a scratch one.
        .current_dir(report.path());
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found the API unlike its document:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every operation was tested, none skipped for want of data or a serializer.
    let summary = stdout.lines().skip_while(|l| !l.contains("API Operations:")).take(4).collect::<Vec<_>>();
    assert!(summary.iter().any(|l| l.contains("Tested: 33")), "{stdout}");
    eprintln!("{stdout}\nschemathesis passed in {:.1?}", started.elapsed());
}

/// Records every operation's path parameters can name, made the way users make them; the
/// environment that tells schemathesis about them and the tokens to use.
async fn seed(server: &TestServer) -> Vec<(&'static str, String)> {
    let user = server.token("schemathesis-user", &[], "user").await;
    let ingest = server.token("schemathesis-ingest", &[], "ingest").await;
    let (status, spare) = server
        .call(OPERATOR, Method::POST, "/v1/tokens", Some(json!({"userId": "spare", "companies": ["c1"]})))
        .await;
    assert_eq!(status, 201, "{spare}");

    let hook = |name: &str| {
        json!({"name": name, "url": "https://receiver.example/hook",
            "metadata": {"events": ["TODO_CREATED"], "projectIds": ["p1"]}})
    };
    let webhook = server.webhook(&user, hook("seeded")).await;
    let doomed = server.webhook(&user, hook("to delete")).await;
    let (status, zapier) = server
        .call(
            &user,
            Method::POST,
            "/hooks/zapier",
            Some(json!({"targetUrl": "https://hooks.zapier.example/1", "events": []})),
        )
        .await;
    assert_eq!(status, 201, "{zapier}");

    // An uploaded connector to remove: the built-in `json` uploaded over itself. Removing it
    // brings the built-in back, so the connectors the document lists (when schemathesis read
    // it) stay installed, with the same config schemas.
    let json_connector = wasmhook::builtins::component("json").unwrap();
    let response = server
        .client
        .put(format!("{}/v1/connectors/json", server.base))
        .bearer_auth(OPERATOR)
        .body(json_connector.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let webhook_id = webhook["id"].as_str().unwrap();
    let (delivery_id, message_id) = failed_delivery(server, webhook_id).await;
    let text = |value: &Value| value.as_str().unwrap().to_owned();
    vec![
        ("WASMHOOK_USER_TOKEN", user),
        ("WASMHOOK_INGEST_TOKEN", ingest),
        ("WASMHOOK_SPARE_TOKEN_ID", text(&spare["id"])),
        ("WASMHOOK_WEBHOOK_ID", webhook_id.to_owned()),
        ("WASMHOOK_DOOMED_WEBHOOK_ID", text(&doomed["id"])),
        ("WASMHOOK_ZAPIER_ID", text(&zapier["id"])),
        ("WASMHOOK_UPLOADED_CONNECTOR", "json".to_owned()),
        ("WASMHOOK_DELIVERY_ID", delivery_id),
        ("WASMHOOK_MESSAGE_ID", message_id),
    ]
}

/// A delivery of `webhook_id` whose one message failed, stored as the delivery engine
/// leaves one (no engine runs here: nothing may leave this machine).
async fn failed_delivery(server: &TestServer, webhook_id: &str) -> (String, String) {
    let now = OffsetDateTime::now_utc();
    let now_ms = wasmhook::store::now_ms();
    let incoming: wasmhook::domain::event::IncomingEvent = serde_json::from_value(
        json!({"id": "seeded", "event": "TODO_CREATED", "companyId": "c1", "projectId": "p1"}),
    )
    .unwrap();
    let event = incoming.accept(now);
    let request = wasmhook::runtime::Request {
        url: None,
        method: "POST".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"event":"TODO_CREATED"}"#.into(),
        ordering_key: None,
    };
    let mut message = Message::new(request, &Default::default(), &server.state.secrets, now);
    message.status = MessageStatus::Failed;
    message.attempts = 1;
    message.next_attempt_at = None;
    let message_id = message.id.clone();
    let delivery = Delivery {
        id: wasmhook::domain::delivery::new_delivery_id(),
        event_id: event.id.clone(),
        event_type: event.event.clone(),
        company_id: event.company_id.clone(),
        webhook_id: webhook_id.to_owned(),
        status: DeliveryStatus::Failed,
        messages: vec![message],
        error: Some("the receiver answered 500".into()),
        plugin_log: Vec::new(),
        created_at: now,
    };
    let attempt = Attempt {
        message_id: message_id.clone(),
        at: now,
        status_code: Some(500),
        latency_ms: 3,
        response: Some("internal error".into()),
        error: None,
        remote_id: None,
    };
    let store = &server.state.store;
    let accept = Accept {
        event: event.into(),
        deliveries: vec![delivery.clone()],
        response: json!(null),
        unordered: Vec::new(),
    };
    store.accept(&[accept], None, now_ms).await.unwrap();
    store.finish(&QueueEntry::new(now_ms, &delivery.id, webhook_id), None, None, &[attempt]).await.unwrap();
    (delivery.id, message_id)
}
