//! Connectors over the API: list, upload (operators), preview, replace, remove.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, TestServer, hostile_bytes};

const BUILTINS: [&str; 5] = ["crm", "json", "pabbly", "slack", "zapier"];

fn with_hostile() -> Vec<&'static str> {
    let mut names = BUILTINS.to_vec();
    names.push("hostile");
    names.sort();
    names
}

async fn names(server: &TestServer) -> Vec<String> {
    let (_, list) = server.call(OPERATOR, Method::GET, "/v1/connectors", None).await;
    list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_builtin_json_connector_is_listed_with_its_schema() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1"], "user").await;
    let (status, list) = server.call(&alice, Method::GET, "/v1/connectors", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[1]["name"], "json");
    assert_eq!(list[1]["builtin"], true);
    assert_eq!(list[1]["configSchema"]["type"], "object");
    assert_eq!(list[1]["hash"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn operators_upload_connectors_and_bad_uploads_change_nothing() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1"], "user").await;
    let (status, _) = server.upload(&alice, "hostile", hostile_bytes().to_vec()).await;
    assert_eq!(status, 403, "users do not load connectors");

    for (bytes, code) in
        [(b"garbage".to_vec(), "invalid_component"), (b"\0asm\x01\0\0\0".to_vec(), "invalid_component")]
    {
        let (status, error) = server.upload(OPERATOR, "bad", bytes).await;
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some(code)), "{error}");
    }
    let (status, error) = server.upload(OPERATOR, "Bad Name", hostile_bytes().to_vec()).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(names(&server).await, BUILTINS, "nothing was stored");
    assert!(server.state.store.connectors().await.unwrap().is_empty());

    let (status, loaded) = server.upload(OPERATOR, "hostile", hostile_bytes().to_vec()).await;
    assert_eq!(status, 200, "{loaded}");
    assert_eq!((loaded["version"].as_str(), loaded["builtin"].as_bool()), (Some("0.0.1"), Some(false)));
    assert_eq!(names(&server).await, with_hostile());
    assert_eq!(server.state.store.connectors().await.unwrap().len(), 1, "kept for the next start");
}

#[tokio::test]
async fn preview_shows_what_would_be_sent_or_why_not() {
    let server = TestServer::start().await;
    server.upload(OPERATOR, "hostile", hostile_bytes().to_vec()).await;
    let event = json!({"id": "p1", "event": "TODO_CREATED", "companyId": "c", "projectId": "p"});
    let (status, preview) = server
        .call(OPERATOR, Method::POST, "/v1/connectors/json/preview", Some(json!({"event": event})))
        .await;
    assert_eq!(status, 200, "{preview}");
    let body: Value = serde_json::from_str(preview["requests"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], "p1");

    let config = json!({"mode": "trap"});
    let (_, failed) = server
        .call(
            OPERATOR,
            Method::POST,
            "/v1/connectors/hostile/preview",
            Some(json!({"event": event, "config": config})),
        )
        .await;
    assert_eq!(failed["error"]["code"], "trap");
    assert!(
        failed["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("deliberate panic"))
    );

    let (status, error) = server
        .call(
            OPERATOR,
            Method::POST,
            "/v1/connectors/json/preview",
            Some(json!({"event": {"event": "NOPE"}})),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = server
        .call(OPERATOR, Method::POST, "/v1/connectors/nope/preview", Some(json!({"event": event})))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn removing_a_connector_in_use_needs_force_and_an_override_gives_the_builtin_back() {
    let server = TestServer::start().await;
    server.upload(OPERATOR, "hostile", hostile_bytes().to_vec()).await;
    let hook = json!({"name": "h", "url": "http://127.0.0.1:9/", "metadata": {"events": [], "projectIds": []},
                      "connector": {"name": "hostile", "config": {"mode": "ok"}}});
    server.webhook(OPERATOR, hook).await;
    let (status, error) = server.call(OPERATOR, Method::DELETE, "/v1/connectors/hostile", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("in_use")));
    let (status, _) = server.call(OPERATOR, Method::DELETE, "/v1/connectors/hostile?force=true", None).await;
    assert_eq!(status, 204);
    assert_eq!(names(&server).await, BUILTINS);

    let (status, replaced) = server.upload(OPERATOR, "json", hostile_bytes().to_vec()).await;
    assert_eq!((status, replaced["builtin"].as_bool()), (200, Some(false)));
    let (status, _) = server.call(OPERATOR, Method::DELETE, "/v1/connectors/json", None).await;
    assert_eq!(status, 204);
    let (_, list) = server.call(OPERATOR, Method::GET, "/v1/connectors", None).await;
    assert_eq!((list[1]["name"].as_str(), list[1]["builtin"].as_bool()), (Some("json"), Some(true)));
    let (status, error) = server.call(OPERATOR, Method::DELETE, "/v1/connectors/json", None).await;
    assert_eq!(
        (status, error["error"]["message"].as_str()),
        (404, Some("built-in connectors cannot be removed"))
    );
}

#[tokio::test]
async fn webhook_connector_config_is_checked_against_the_schema() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1"], "user").await;
    let hook = |connector: Value| json!({"name": "n", "url": "http://127.0.0.1:9/", "metadata": {"events": []}, "connector": connector});
    for (connector, names) in [
        (json!({"name": "crm", "config": {}}), "properties"),
        (json!({"name": "crm", "config": {"properties": {}}}), "connector.config.properties"),
        (
            json!({"name": "crm", "config": {"properties": {"a": "x"}, "method": "GET"}}),
            "connector.config.method",
        ),
        (json!({"name": "slack", "config": {"fields": [{"label": "x"}]}}), "connector.config.fields.0"),
        (json!({"name": "zapier", "config": {"includeWebhook": "yes"}}), "connector.config.includeWebhook"),
        (json!({"name": "pabbly", "config": {"colour": "red"}}), "colour"),
    ] {
        let (status, error) =
            server.call(&alice, Method::POST, "/v1/webhooks", Some(hook(connector.clone()))).await;
        assert_eq!(status, 400, "{connector}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("connector.config"), "{message}");
        assert!(message.contains(names), "{connector}: {message}");
    }
    // A bad write-only value is reported without being quoted back.
    let bad_key = json!({"name": "crm", "config": {"properties": {"a": "x"}, "apiKey": 42}});
    let (status, error) = server.call(&alice, Method::POST, "/v1/webhooks", Some(hook(bad_key))).await;
    assert_eq!(status, 400);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("connector.config.apiKey") && !message.contains("42"), "{message}");
    let (_, list) = server.call(&alice, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"], json!([]), "nothing was stored");

    // An update is checked the same way.
    let created = server.webhook(&alice, hook(json!({"name": "zapier"}))).await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());
    let change = json!({"connector": {"name": "crm", "config": {"objectType": "bad type!"}}});
    let (status, error) = server.call(&alice, Method::PATCH, &path, Some(change)).await;
    assert_eq!(status, 400, "{error}");
    let (_, unchanged) = server.call(&alice, Method::GET, &path, None).await;
    assert_eq!(unchanged["connector"]["name"], "zapier");
}

#[tokio::test]
async fn write_only_config_is_never_shown_but_kept_and_used() {
    let server = TestServer::delivering("10ms").await;
    let crm = crate::support::Receiver::start().await;
    crm.script(&[500]); // the first attempt fails, its response quoting the key
    let alice = server.token("alice", &["c1"], "user").await;
    let key = "pat-na1-0123456789abcdef";
    let config = json!({"properties": {"name": "currentValue.title"}, "apiKey": key});
    let base = crm.url.trim_end_matches("/hook").to_owned();
    let created = server
        .webhook(
            &alice,
            json!({"name": "crm", "url": base, "metadata": {"events": []}, "connector": {"name": "crm", "config": config}}),
        )
        .await;
    assert_eq!(created["connector"]["config"], json!({"properties": {"name": "currentValue.title"}}));
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());

    // Editing what the view shows keeps the key.
    let shown = json!({"connector": {"name": "crm", "config": {"properties": {"name": "currentValue.title", "list": "currentValue.todoList.title"}}}});
    let (status, updated) = server.call(&alice, Method::PATCH, &path, Some(shown)).await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated["connector"]["config"].get("apiKey").is_none());

    let event = json!({"id": "e1", "event": "TODO_CREATED", "companyId": "c1", "projectId": "p1",
                       "currentValue": {"title": "Launch", "todoList": {"title": "Marketing"}}});
    server.send_event(OPERATOR, event).await;
    let got = crm.wait_for(2).await;
    assert_eq!(got[1].headers["authorization"], format!("Bearer {key}").as_str(), "the kept key is used");
    let body: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(body, json!({"properties": {"name": "Launch", "list": "Marketing"}}));

    // Nothing the API shows carries the key: views, lists, the delivery log.
    let log_path = format!("{path}/deliveries");
    crate::support::eventually("the delivery to succeed", async || {
        let (_, log) = server.call(&alice, Method::GET, &log_path, None).await;
        (log["data"][0]["status"] == "succeeded").then_some(())
    })
    .await;
    for shown in [path.as_str(), "/v1/webhooks", log_path.as_str()] {
        let (status, answer) = server.call(&alice, Method::GET, shown, None).await;
        assert_eq!(status, 200);
        assert!(!answer.to_string().contains(key), "{shown} shows the key: {answer}");
    }
    let (_, log) = server.call(&alice, Method::GET, &log_path, None).await;
    let headers = &log["data"][0]["messages"][0]["request"]["headers"];
    assert!(headers.to_string().contains("Bearer [redacted]"), "{headers}");
}

#[tokio::test]
async fn replacing_a_connector_under_load_fails_no_delivery() {
    use wasmhook::builtins::BUILTINS;
    let bytes = |name: &str| BUILTINS.iter().find(|(n, _)| *n == name).unwrap().1.to_vec();
    let server = TestServer::delivering("10ms").await;
    let receiver = crate::support::Receiver::start().await;
    let (status, _) = server.upload(OPERATOR, "flat", bytes("zapier")).await;
    assert_eq!(status, 200);
    let hook = json!({"name": "flat", "url": receiver.url, "metadata": {"events": []}, "connector": {"name": "flat"}});
    let created = server.webhook(OPERATOR, hook).await;

    // Events go in continuously while the connector is replaced, back and forth.
    let total = 300;
    let sender = {
        let (base, client) = (server.base.clone(), server.client.clone());
        tokio::spawn(async move {
            for i in 0..total {
                let event = json!({"id": format!("e{i}"), "event": "TODO_CREATED", "companyId": "c", "projectId": "p",
                                   "currentValue": {"todoList": {"title": "Marketing"}}});
                let response = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(OPERATOR)
                    .json(&event)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    for round in 0..6 {
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        let next = if round % 2 == 0 { "pabbly" } else { "zapier" };
        let (status, answer) = server.upload(OPERATOR, "flat", bytes(next)).await;
        assert_eq!(status, 200, "{answer}");
    }
    sender.await.unwrap();
    let got = receiver.wait_for(total).await;
    assert_eq!(got.len(), total, "one request per event, none failed or repeated");
    let bodies: Vec<Value> = got.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let zapier = bodies.iter().filter(|b| b.get("current_value__todo_list__title").is_some()).count();
    let pabbly = bodies.iter().filter(|b| b.get("currentValue_todoList_title").is_some()).count();
    assert_eq!(zapier + pabbly, total, "every body is one version's whole output");
    assert!(zapier > 0 && pabbly > 0, "both versions delivered: {zapier} zapier, {pabbly} pabbly");
    let (_, log) = server
        .call(
            OPERATOR,
            Method::GET,
            &format!("/v1/webhooks/{}/deliveries?limit=200", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(log["data"].as_array().unwrap().iter().all(|d| d["status"] == "succeeded"), "{log}");
}
