//! The host's reports on itself: `WEBHOOK_DISABLED`, `WEBHOOK_RECOVERED`,
//! `DELIVERY_EXHAUSTED` and `CONNECTOR_FAILING`, delivered by operators' webhooks that name
//! them — and by nobody else's.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, Receiver, TestServer, eventually, hostile_bytes};

/// The reports an alert receiver got, by event type.
fn reports(receiver: &Receiver, kind: &str) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|report| report["event"] == kind)
        .collect()
}

async fn wait_for_report(receiver: &Receiver, kind: &str) -> Value {
    eventually(&format!("a {kind} report"), async || reports(receiver, kind).into_iter().next()).await
}

fn todo(kind: &str) -> Value {
    json!({"event": kind, "companyId": "c1", "projectId": "p1", "currentValue": {"id": "t1", "title": "x"}})
}

#[tokio::test]
async fn failing_and_recovering_webhooks_and_connectors_are_reported_to_operators() {
    let server = TestServer::delivering("10ms,10ms").await;
    let alerts = Receiver::start().await;
    let everything = Receiver::start().await;
    let failing = Receiver::start().await;
    let hook = |name: &str, url: &str, events: Value| json!({"name": name, "url": url, "metadata": {"events": events}, "connector": {"name": "json", "config": {}}});
    let kinds = json!(["WEBHOOK_DISABLED", "WEBHOOK_RECOVERED", "DELIVERY_EXHAUSTED", "CONNECTOR_FAILING"]);
    server.webhook(OPERATOR, hook("alerts", &alerts.url, kinds.clone())).await;
    server.webhook(OPERATOR, hook("everything", &everything.url, json!([]))).await;

    // Only operators subscribe to them, and nobody sends them.
    let user = server.token("u1", &["c1"], "user").await;
    let (status, refused) =
        server.call(&user, Method::POST, "/v1/webhooks", Some(hook("mine", &alerts.url, kinds))).await;
    assert_eq!(status, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("only operators subscribe"), "{message}");
    let (status, refused) =
        server.call(OPERATOR, Method::POST, "/v1/events", Some(todo("WEBHOOK_DISABLED"))).await;
    assert_eq!(status, 400, "{refused}");
    let (_, catalog) = server.call(OPERATOR, Method::GET, "/v1/event-types", None).await;
    let listed =
        catalog.as_array().unwrap().iter().find(|t| t["name"] == "CONNECTOR_FAILING").unwrap().clone();
    assert_eq!(listed["operatorOnly"], true, "{listed}");
    let (_, catalog) = server.call(&user, Method::GET, "/v1/event-types", None).await;
    assert!(
        catalog.as_array().unwrap().iter().all(|t| t.get("operatorOnly").is_none()),
        "users see their own only"
    );

    // A receiver that keeps failing: its message runs out of attempts, the webhook is disabled.
    let broken = server.webhook(&user, hook("broken", &failing.url, json!(["TODO_CREATED"]))).await;
    let broken_id = broken["id"].as_str().unwrap();
    failing.script(&[500, 500, 500]);
    server.send_event(OPERATOR, todo("TODO_CREATED")).await;
    let exhausted = wait_for_report(&alerts, "DELIVERY_EXHAUSTED").await;
    assert_eq!(exhausted["currentValue"]["webhook"]["id"], broken_id, "{exhausted}");
    assert_eq!(exhausted["currentValue"]["attempts"], 3);
    assert_eq!(exhausted["currentValue"]["lastError"], "the receiver answered 500");
    assert_eq!(exhausted["company"]["id"], "wasmhook");
    let disabled = wait_for_report(&alerts, "WEBHOOK_DISABLED").await;
    assert_eq!(disabled["currentValue"]["webhook"]["id"], broken_id, "{disabled}");
    assert_eq!(disabled["currentValue"]["webhook"]["createdById"], "u1");
    let reason = disabled["currentValue"]["reason"].as_str().unwrap();
    assert!(reason.contains("failed all 3 attempts"), "{reason}");
    assert_eq!(disabled["currentValue"]["lastError"], "the receiver answered 500");

    // Fixed and enabled again: once its receiver answers, it has recovered.
    let path = format!("/v1/webhooks/{broken_id}");
    let (status, _) = server.call(&user, Method::PATCH, &path, Some(json!({"enabled": true}))).await;
    assert_eq!(status, 200);
    let recovered = wait_for_report(&alerts, "WEBHOOK_RECOVERED").await;
    assert_eq!(recovered["currentValue"]["webhook"]["id"], broken_id, "{recovered}");

    // A connector that keeps failing is reported once per window, not once per failure.
    let (status, answer) = server.upload(OPERATOR, "hostile", hostile_bytes().to_vec()).await;
    assert_eq!(status, 200, "{answer}");
    let trapping = json!({"name": "trapping", "url": failing.url, "metadata": {"events": ["TAG_CREATED"]},
                          "connector": {"name": "hostile", "config": {"mode": "trap"}}});
    let trapping = server.webhook(OPERATOR, trapping).await;
    for _ in 0..14 {
        server.send_event(OPERATOR, todo("TAG_CREATED")).await;
    }
    let path = format!("/v1/webhooks/{}/deliveries", trapping["id"].as_str().unwrap());
    eventually("every trapping delivery to fail", async || {
        let (_, log) = server.call(OPERATOR, Method::GET, &path, None).await;
        let failed = log["data"].as_array()?.iter().filter(|d| d["status"] == "plugin_error").count();
        (failed == 14).then_some(())
    })
    .await;
    let failing_report = wait_for_report(&alerts, "CONNECTOR_FAILING").await;
    assert_eq!(failing_report["currentValue"]["connector"], "hostile", "{failing_report}");
    assert!(failing_report["currentValue"]["lastError"].as_str().unwrap().starts_with("[trap]"));
    // Whatever else is in flight has landed by the time the plugin errors are recorded.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(reports(&alerts, "CONNECTOR_FAILING").len(), 1, "once per window");

    // A webhook for every event gets the application's events, never the host's reports.
    let got: Vec<Value> =
        everything.received().iter().map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()).collect();
    assert!(!got.is_empty());
    assert!(got.iter().all(|e| e["company"]["id"] == "c1"), "{got:?}");
}
