//! The built-in connectors' output for a sample event of every event family, field by field,
//! through `POST /v1/connectors/{name}/preview` (the real components, the real host).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, TestServer, sample_event};

/// One sample per event family.
const SAMPLES: &[&str] = &[
    "todo-created.json",
    "todo-deleted.json",
    "checklist-created.json",
    "checklist-item-done.json",
    "todo-list-renamed.json",
    "custom-field-updated.json",
    "tag-created.json",
    "comment-created.json",
];

fn sample(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sample_event(name)).unwrap()).unwrap()
}

/// The requests `connector` returns for `event` with `config`, or its error.
async fn preview(
    server: &TestServer,
    connector: &str,
    event: &Value,
    config: Value,
) -> Result<Vec<Value>, Value> {
    let path = format!("/v1/connectors/{connector}/preview");
    let (status, answer) =
        server.call(OPERATOR, Method::POST, &path, Some(json!({"event": event, "config": config}))).await;
    assert_eq!(status, 200, "{answer}");
    match answer["requests"].as_array() {
        Some(requests) => Ok(requests.clone()),
        None => Err(answer["error"].clone()),
    }
}

/// The one request's JSON body.
async fn body(server: &TestServer, connector: &str, event: &Value, config: Value) -> Value {
    let requests = preview(server, connector, event, config).await.unwrap();
    assert_eq!(requests.len(), 1);
    serde_json::from_str(requests[0]["body"].as_str().unwrap()).unwrap()
}

/// Per sample: (zapier key, pabbly key, expected value).
fn expected_fields(name: &str) -> Vec<(&'static str, &'static str, Value)> {
    match name {
        "todo-created.json" => vec![
            ("current_value__title", "currentValue_title", json!("Draft the launch announcement")),
            ("current_value__done", "currentValue_done", json!(false)),
            ("current_value__position", "currentValue_position", json!(65535)),
            (
                "current_value__todo_list__project__name",
                "currentValue_todoList_project_name",
                json!("Product launch"),
            ),
            ("current_value__users__email", "currentValue_users_0_email", json!("ada@example.com")),
            ("current_value__tags__color", "currentValue_tags_0_color", json!("#3b82f6")),
            ("current_value__custom_fields__value", "currentValue_customFields_0_value", json!(1200)),
            ("previous_value", "previousValue", Value::Null),
        ],
        "todo-deleted.json" => vec![
            ("current_value", "currentValue", Value::Null),
            ("previous_value__title", "previousValue_title", json!("Old press kit")),
            ("previous_value__todo_list__title", "previousValue_todoList_title", json!("Marketing")),
        ],
        "checklist-created.json" => vec![
            ("current_value__title", "currentValue_title", json!("Launch day")),
            ("current_value__todo__id", "currentValue_todo_id", json!("todo_42")),
        ],
        "checklist-item-done.json" => vec![
            ("current_value__done", "currentValue_done", json!(true)),
            ("current_value__checklist__title", "currentValue_checklist_title", json!("Launch day")),
            ("current_value__users__full_name", "currentValue_users_1_fullName", json!("Ada Lovelace")),
            ("previous_value__done", "previousValue_done", json!(false)),
        ],
        "todo-list-renamed.json" => vec![
            ("current_value__title", "currentValue_title", json!("Marketing & PR")),
            ("previous_value__title", "previousValue_title", json!("Marketing")),
        ],
        "custom-field-updated.json" => vec![
            ("current_value__name", "currentValue_name", json!("Stage")),
            ("current_value__options__title", "currentValue_options_1_title", json!("Ready")),
            ("previous_value__name", "previousValue_name", json!("Status")),
        ],
        "tag-created.json" => vec![("current_value__title", "currentValue_title", json!("Urgent <now>"))],
        "comment-created.json" => vec![
            ("current_value__text", "currentValue_text", json!("Pricing page copy is ready for review.")),
            ("current_value__user__full_name", "currentValue_user_fullName", json!("Grace Hopper")),
        ],
        other => panic!("no expectations for {other}"),
    }
}

/// Zapier joins an array's values into one line-item string (the expectations above name
/// one element, as Pabbly keeps them).
fn zapier_value(key: &str, expected: &Value) -> Value {
    match key {
        "current_value__users__full_name" => json!("Grace Hopper, Ada Lovelace"),
        "current_value__options__title" => json!("Idea, Ready"),
        "current_value__custom_fields__value" => json!(expected.to_string()),
        _ => expected.clone(),
    }
}

#[tokio::test]
async fn zapier_and_pabbly_flatten_every_family() {
    let server = TestServer::start().await;
    for name in SAMPLES {
        let event = sample(name);
        let zapier = body(&server, "zapier", &event, json!({})).await;
        let pabbly = body(&server, "pabbly", &event, json!({})).await;
        for flat in [&zapier, &pabbly] {
            let fields = flat.as_object().unwrap();
            assert!(fields.values().all(|v| !v.is_object() && !v.is_array()), "{name}: not flat: {flat}");
            assert!(
                !fields.keys().any(|k| k.starts_with("webhook")),
                "{name}: the webhook is left out by default"
            );
        }
        // Zapier dedupes on the top-level id: the event's.
        let id = zapier["id"].as_str().unwrap();
        assert!(!id.is_empty(), "{name}");
        if let Some(sent) = event["id"].as_str() {
            assert_eq!(id, sent, "{name}");
        }
        assert_eq!(zapier["event"], event["event"], "{name}");
        assert_eq!(zapier["company__id"], event["companyId"], "{name}");
        assert_eq!(zapier["project__id"], event["projectId"], "{name}");
        assert_eq!(pabbly["id"], zapier["id"], "{name}");
        assert_eq!(pabbly["project_id"], event["projectId"], "{name}");
        for (zapier_key, pabbly_key, expected) in expected_fields(name) {
            assert_eq!(
                zapier[zapier_key],
                zapier_value(zapier_key, &expected),
                "{name}: zapier {zapier_key}"
            );
            assert_eq!(pabbly[pabbly_key], expected, "{name}: pabbly {pabbly_key}");
        }
    }
    // Config picks the members.
    let event = sample("todo-list-renamed.json");
    let lean =
        body(&server, "zapier", &event, json!({"includePreviousValue": false, "includeWebhook": true})).await;
    assert!(lean.get("previous_value__title").is_none());
    assert_eq!(lean["webhook__url"], "https://example.com/webhook");
}

#[tokio::test]
async fn crm_upserts_mapped_properties_for_every_family() {
    let server = TestServer::start().await;
    let config = json!({
        "objectType": "tasks",
        "properties": {"record_id": "currentValue.id", "name": "currentValue.title",
                       "summary": "{{event}} in {{project.id}}", "done": "currentValue.done"},
        "idProperty": "record_id",
        "apiKey": "pat-na1-secret"
    });
    for name in SAMPLES {
        let event = sample(name);
        let result = preview(&server, "crm", &event, config.clone()).await;
        let Some(record_id) = event["currentValue"]["id"].as_str() else {
            // A deleted record has no current id to upsert by: a clear plugin error.
            let error = result.unwrap_err();
            assert_eq!(error["code"], "invalid_event", "{name}: {error}");
            assert!(error["message"].as_str().unwrap().contains("record_id"), "{name}: {error}");
            continue;
        };
        let requests = result.unwrap();
        let request = &requests[0];
        assert_eq!(request["method"], "PATCH", "{name}");
        assert_eq!(
            request["url"],
            format!("https://example.com/webhook/crm/v3/objects/tasks/{record_id}?idProperty=record_id"),
            "{name}"
        );
        let headers: Vec<(String, String)> = serde_json::from_value(request["headers"].clone()).unwrap();
        assert!(headers.contains(&("authorization".into(), "Bearer pat-na1-secret".into())), "{name}");
        let sent: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        let properties = &sent["properties"];
        assert_eq!(properties["record_id"], record_id, "{name}");
        assert_eq!(
            properties["name"],
            event["currentValue"]["title"].clone(),
            "{name}: a path keeps its type"
        );
        assert_eq!(properties["done"], event["currentValue"]["done"].clone(), "{name}");
        assert_eq!(
            properties["summary"],
            format!("{} in {}", event["event"].as_str().unwrap(), event["projectId"].as_str().unwrap()),
            "{name}"
        );
    }
    // Without an id property: a create, and no key when none is configured.
    let event = sample("todo-created.json");
    let requests =
        preview(&server, "crm", &event, json!({"properties": {"name": "currentValue.title"}})).await.unwrap();
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["url"], "https://example.com/webhook/crm/v3/objects/contacts");
    assert!(requests[0]["headers"].as_array().unwrap().iter().all(|h| h[0] != "authorization"));
}

#[tokio::test]
async fn slack_renders_the_template_escaped_for_every_family() {
    let server = TestServer::start().await;
    let config = json!({
        "url": "https://hooks.slack.com/services/T0/B0/secret",
        "text": "*{{event}}* {{currentValue.title}}",
        "fields": [{"label": "Project", "value": "{{project.id}}"}, {"label": "By", "value": "{{user.id}}"}]
    });
    for name in SAMPLES {
        let event = sample(name);
        let requests = preview(&server, "slack", &event, config.clone()).await.unwrap();
        assert_eq!(requests[0]["url"], "https://hooks.slack.com/services/T0/B0/secret", "{name}");
        let message: Value = serde_json::from_str(requests[0]["body"].as_str().unwrap()).unwrap();
        let title = event["currentValue"]["title"].as_str().unwrap_or("");
        let escaped = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let text = format!("*{}* {escaped}", event["event"].as_str().unwrap());
        assert_eq!(message["text"], text, "{name}");
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks[0], json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}), "{name}");
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert_eq!(
            fields[0]["text"],
            format!("*Project*\n{}", event["projectId"].as_str().unwrap()),
            "{name}"
        );
        assert_eq!(fields[1]["text"], format!("*By*\n{}", event["userId"].as_str().unwrap()), "{name}");
        assert_eq!(blocks[2]["type"], "context", "{name}");
    }
    // The defaults: the webhook's own URL, a default text.
    let requests = preview(&server, "slack", &sample("tag-created.json"), json!({})).await.unwrap();
    assert!(requests[0]["url"].is_null(), "the webhook's URL");
    let message: Value = serde_json::from_str(requests[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(message["text"], "*TAG_CREATED* Urgent &lt;now&gt;");
}

#[tokio::test]
async fn every_builtin_describes_itself_with_a_schema() {
    let server = TestServer::start().await;
    let (_, listed) = server.call(OPERATOR, Method::GET, "/v1/connectors", None).await;
    let listed = listed.as_array().unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["crm", "json", "pabbly", "slack", "zapier"]);
    for connector in listed {
        assert_eq!(connector["builtin"], true);
        assert_eq!(connector["configSchema"]["type"], "object", "{connector}");
        assert!(!connector["description"].as_str().unwrap().is_empty());
    }
    let crm = listed.iter().find(|c| c["name"] == "crm").unwrap();
    assert_eq!(crm["configSchema"]["properties"]["apiKey"]["writeOnly"], true);
    let slack = listed.iter().find(|c| c["name"] == "slack").unwrap();
    assert_eq!(slack["configSchema"]["properties"]["url"]["writeOnly"], true);
}
