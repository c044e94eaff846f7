//! The title-filter example in Rust, JavaScript (componentize-js and jco's QuickJS backend) and
//! Python (componentize-py): each built with its own build command, uploaded through
//! `PUT /v1/connectors/{name}`, and run through the real pipeline on the same events, where
//! each must send the same bytes. The pinned toolchains are installed when missing (npm ci,
//! a venv for componentize-py); nothing is skipped.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, Receiver, TestServer, eventually, sample_event};

async fn upload(server: &TestServer, name: &str, path: &Path) {
    let (status, answer) = server.upload(OPERATOR, name, std::fs::read(path).unwrap()).await;
    assert_eq!(status, 200, "{name}: {answer}");
    assert_eq!(answer["version"], "1.0.0", "{name}: the version comes from describe");
}

fn sample(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sample_event(name)).unwrap()).unwrap()
}

#[tokio::test]
async fn rust_javascript_and_python_plugins_send_the_same_bytes() {
    let (js, qjs) = wasmhook_test_components::build_js_example();
    let python = wasmhook_test_components::build_python_example();
    let rust = PathBuf::from(wasmhook_test_components::TITLE_FILTER_RUST);
    let server = TestServer::delivering("10ms").await;
    let languages = [("title-rust", rust), ("title-js", js), ("title-qjs", qjs), ("title-py", python)];

    let mut receivers = Vec::new();
    for (name, path) in &languages {
        upload(&server, name, path).await;
        let receiver = Receiver::start().await;
        let hook = |config: Value| {
            json!({"name": name, "url": receiver.url, "metadata": {"events": []},
                   "connector": {"name": name, "config": config}})
        };
        // The schema each plugin describes is enforced by the host.
        let (status, error) =
            server.call(OPERATOR, Method::POST, "/v1/webhooks", Some(hook(json!({})))).await;
        assert_eq!(status, 400, "{name}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains("pattern"), "{name}: {error}");
        let created = server.webhook(OPERATOR, hook(json!({"pattern": "LAUNCH"}))).await;
        receivers.push((*name, receiver, created["id"].as_str().unwrap().to_owned()));
    }

    let unicode = json!({"id": "evt_unicode", "event": "TODO_NAME_CHANGED", "companyId": "c", "projectId": "p",
                         "currentValue": {"title": "Lançamento — Launch ✓ \"quoted\""}});
    for event in [
        sample("todo-created.json"),      // "Draft the launch announcement": sent
        sample("todo-list-renamed.json"), // "Marketing & PR": filtered
        sample("todo-deleted.json"),      // no current title: filtered
        unicode,                          // sent
    ] {
        server.send_event(OPERATOR, event).await;
    }

    let mut bodies: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (name, receiver, webhook_id) in &receivers {
        let got = receiver.wait_for(2).await;
        let mut sent: Vec<Vec<u8>> = got.iter().map(|r| r.body.clone()).collect();
        sent.sort();
        for request in &got {
            assert_eq!(request.headers["content-type"], "application/json", "{name}");
        }
        // Two of the four deliveries were filtered out by the plugin.
        let log_path = format!("/v1/webhooks/{webhook_id}/deliveries");
        eventually(&format!("{name}: every delivery to finish"), async || {
            let (_, log) = server.call(OPERATOR, Method::GET, &log_path, None).await;
            let statuses: Vec<&str> =
                log["data"].as_array()?.iter().filter_map(|d| d["status"].as_str()).collect();
            let filtered = statuses.iter().filter(|s| **s == "filtered").count();
            let succeeded = statuses.iter().filter(|s| **s == "succeeded").count();
            (filtered == 2 && succeeded == 2).then_some(())
        })
        .await;
        bodies.push((name.to_string(), sent));
    }
    let expected: Vec<Value> = vec![
        json!({"event": "TODO_CREATED", "id": "evt_sample_todo_created", "matched": "LAUNCH",
               "project": "project_launch", "title": "Draft the launch announcement"}),
        json!({"event": "TODO_NAME_CHANGED", "id": "evt_unicode", "matched": "LAUNCH", "project": "p",
               "title": "Lançamento — Launch ✓ \"quoted\""}),
    ];
    let (_, rust_bodies) = &bodies[0];
    let parsed: Vec<Value> = rust_bodies.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
    assert_eq!(parsed, expected);
    for (name, sent) in &bodies[1..] {
        assert_eq!(sent, rust_bodies, "{name} sends the same bytes as Rust");
    }

    // A config the plugin itself refuses (the schema allows it) is a recorded plugin error.
    for (name, _) in &languages {
        let path = format!("/v1/connectors/{name}/preview");
        let body = json!({"event": sample("todo-created.json"), "config": {"pattern": 7}});
        let (status, answer) = server.call(OPERATOR, Method::POST, &path, Some(body)).await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_config", "{name}: {answer}");
    }
}
