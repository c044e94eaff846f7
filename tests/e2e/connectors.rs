//! Connectors over the API: list, upload (operators), preview, replace, remove.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, TestServer, hostile_bytes};

async fn upload(server: &TestServer, token: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let response = server
        .client
        .put(format!("{}/v1/connectors/{name}", server.base))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

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
    let (status, _) = upload(&server, &alice, "hostile", hostile_bytes().to_vec()).await;
    assert_eq!(status, 403, "users do not load connectors");

    for (bytes, code) in
        [(b"garbage".to_vec(), "invalid_component"), (b"\0asm\x01\0\0\0".to_vec(), "invalid_component")]
    {
        let (status, error) = upload(&server, OPERATOR, "bad", bytes).await;
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some(code)), "{error}");
    }
    let (status, error) = upload(&server, OPERATOR, "Bad Name", hostile_bytes().to_vec()).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(names(&server).await, BUILTINS, "nothing was stored");
    assert!(server.state.store.connectors().unwrap().is_empty());

    let (status, loaded) = upload(&server, OPERATOR, "hostile", hostile_bytes().to_vec()).await;
    assert_eq!(status, 200, "{loaded}");
    assert_eq!((loaded["version"].as_str(), loaded["builtin"].as_bool()), (Some("0.0.1"), Some(false)));
    assert_eq!(names(&server).await, with_hostile());
    assert_eq!(server.state.store.connectors().unwrap().len(), 1, "kept for the next start");
}

#[tokio::test]
async fn preview_shows_what_would_be_sent_or_why_not() {
    let server = TestServer::start().await;
    upload(&server, OPERATOR, "hostile", hostile_bytes().to_vec()).await;
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
    upload(&server, OPERATOR, "hostile", hostile_bytes().to_vec()).await;
    let hook = json!({"name": "h", "url": "http://127.0.0.1:9/", "metadata": {"events": [], "projectIds": []},
                      "connector": {"name": "hostile", "config": {"mode": "ok"}}});
    server.webhook(OPERATOR, hook).await;
    let (status, error) = server.call(OPERATOR, Method::DELETE, "/v1/connectors/hostile", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("in_use")));
    let (status, _) = server.call(OPERATOR, Method::DELETE, "/v1/connectors/hostile?force=true", None).await;
    assert_eq!(status, 204);
    assert_eq!(names(&server).await, BUILTINS);

    let (status, replaced) = upload(&server, OPERATOR, "json", hostile_bytes().to_vec()).await;
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
