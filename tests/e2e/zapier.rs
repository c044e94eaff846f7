//! Zapier REST hooks against a real local receiver: subscribe → deliver → 410 → removed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, Receiver, TestServer, eventually};

fn event(id: &str, event_type: &str) -> Value {
    json!({"id": id, "event": event_type, "companyId": "c1", "projectId": "p1",
           "currentValue": {"title": "Launch", "todoList": {"title": "Marketing"}}})
}

#[tokio::test]
async fn subscribe_deliver_gone_removed() {
    let server = TestServer::delivering("10ms").await;
    let zapier = Receiver::start().await;
    let alice = server.token("alice", &["c1"], "user").await;
    let subscription = json!({"targetUrl": zapier.url, "events": ["TODO_CREATED"], "projectIds": ["p1"]});
    let (status, subscribed) = server.call(&alice, Method::POST, "/hooks/zapier", Some(subscription)).await;
    assert_eq!(status, 201, "{subscribed}");
    let id = subscribed["id"].as_str().unwrap().to_owned();

    // It is alice's webhook, through the zapier connector.
    let (_, webhook) = server.call(&alice, Method::GET, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(webhook["connector"]["name"], "zapier");
    assert_eq!(webhook["origin"], "zapier");
    assert_eq!(webhook["metadata"]["events"], json!(["TODO_CREATED"]));

    server.send_event(OPERATOR, event("e1", "TODO_CREATED")).await;
    server.send_event(OPERATOR, event("e2", "COMMENT_CREATED")).await; // not subscribed
    let got = zapier.wait_for(1).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["id"], "e1", "Zapier dedupes on the top-level id");
    assert_eq!(body["current_value__todo_list__title"], "Marketing");

    // The Zap is turned off: Zapier answers 410 and the subscription goes away.
    zapier.script(&[410]);
    server.send_event(OPERATOR, event("e3", "TODO_CREATED")).await;
    zapier.wait_for(2).await;
    eventually("the subscription to be removed", async || {
        let (status, _) = server.call(&alice, Method::GET, &format!("/v1/webhooks/{id}"), None).await;
        (status == 404).then_some(())
    })
    .await;
    server.send_event(OPERATOR, event("e4", "TODO_CREATED")).await;
    // Every event before e4 was worked; nothing more reaches Zapier.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(zapier.received().len(), 2);
}

#[tokio::test]
async fn unsubscribe_removes_only_zapier_subscriptions_of_the_caller() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1"], "user").await;
    let bob = server.token("bob", &["c1"], "user").await;
    let subscription = json!({"targetUrl": "http://127.0.0.1:9/zap", "events": []});
    let (_, subscribed) = server.call(&alice, Method::POST, "/hooks/zapier", Some(subscription)).await;
    let id = subscribed["id"].as_str().unwrap();
    let path = format!("/hooks/zapier/{id}");

    let (status, _) = server.call(&bob, Method::DELETE, &path, None).await;
    assert_eq!(status, 404, "bob cannot see alice's subscription");
    let plain = server
        .webhook(&alice, json!({"name": "n", "url": "http://127.0.0.1:9/x", "metadata": {"events": []}}))
        .await;
    let (status, _) = server
        .call(&alice, Method::DELETE, &format!("/hooks/zapier/{}", plain["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, 404, "a webhook made through the API is not a Zapier subscription");

    let (status, _) = server.call(&alice, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = server.call(&alice, Method::GET, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_subscriptions_name_the_field_and_store_nothing() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1"], "user").await;
    for (body, field) in [
        (json!({"targetUrl": "not a url", "events": []}), "targetUrl"),
        (json!({"targetUrl": "http://127.0.0.1:9/", "events": ["NO_SUCH_EVENT"]}), "events"),
        (json!({"events": []}), "targetUrl"),
    ] {
        let (status, error) = server.call(&alice, Method::POST, "/hooks/zapier", Some(body)).await;
        assert_eq!(status, 400, "{error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(field), "{error}");
    }
    let (_, list) = server.call(&alice, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"], json!([]));
}
