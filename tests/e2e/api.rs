//! The REST API over real HTTP: webhooks, tokens, the catalog, ingest, access.

use reqwest::Method;
use serde_json::{Value, json};
use wasmhook::domain::delivery::DeliveryStatus;

use crate::support::{OPERATOR, TestServer};

fn webhook(name: &str, events: &[&str], projects: &[&str]) -> Value {
    json!({
        "name": name,
        "url": "http://127.0.0.1:9/hook",
        "metadata": {"events": events, "projectIds": projects},
    })
}

fn event(id: &str, event: &str, company: &str, project: &str) -> Value {
    json!({"id": id, "event": event, "companyId": company, "projectId": project,
           "currentValue": {"title": "Launch", "position": 2}})
}

async fn count_webhooks(server: &TestServer) -> usize {
    let (_, page) = server.call(OPERATOR, Method::GET, "/v1/webhooks?limit=200", None).await;
    page["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn webhook_crud_shows_the_secret_once() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1"], "user").await;

    let (status, created) = server
        .call(&alice, Method::POST, "/v1/webhooks", Some(webhook("CRM", &["TODO_CREATED"], &["p1"])))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["status"], "HEALTHY");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["connector"], json!({"name": "json", "config": {}}));
    assert_eq!(created["createdById"], "alice");

    let (status, read) = server.call(&alice, Method::GET, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 200);
    let (_, list) = server.call(&alice, Method::GET, "/v1/webhooks", None).await;
    for shown in [&read, &list] {
        assert!(!shown.to_string().contains(&secret), "the secret is never shown again: {shown}");
        assert!(!shown.to_string().contains("sealed"), "{shown}");
    }

    let patch = json!({"name": "CRM sync", "enabled": false, "filter": {"path": "currentValue.position", "op": "gte", "value": 2}});
    let (status, updated) =
        server.call(&alice, Method::PATCH, &format!("/v1/webhooks/{id}"), Some(patch)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "CRM sync");
    assert_eq!(updated["status"], "DISABLED");
    assert_eq!(updated["metadata"]["events"], json!(["TODO_CREATED"]), "untouched fields stay");

    let (status, updated) = server
        .call(&alice, Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"filter": null})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["filter"], Value::Null, "null removes the filter");

    let (status, _) = server.call(&alice, Method::DELETE, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, gone) = server.call(&alice, Method::GET, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(gone["error"]["code"], "not_found");
}

#[tokio::test]
async fn lists_page_with_a_cursor() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &[], "user").await;
    for i in 0..5 {
        let (status, _) = server
            .call(&alice, Method::POST, "/v1/webhooks", Some(webhook(&format!("w{i}"), &[], &[])))
            .await;
        assert_eq!(status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/webhooks?limit=2".to_owned();
    loop {
        let (status, page) = server.call(&alice, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|w| w["name"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/webhooks?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["w0", "w1", "w2", "w3", "w4"], "every webhook once, in creation order");
    let (status, error) = server.call(&alice, Method::GET, "/v1/webhooks?limit=0", None).await;
    assert_eq!(
        (status, error["error"]["message"].as_str().unwrap()),
        (400, "limit must be between 1 and 200")
    );
}

#[tokio::test]
async fn bad_webhooks_get_a_4xx_that_says_why_and_change_nothing() {
    let server = TestServer::start_with(|c| c.allow_private_destinations = false).await;
    let alice = server.token("alice", &["c1"], "user").await;
    let good = || json!({"name": "ok", "url": "https://example.com/hook", "metadata": {"events": [], "projectIds": []}});
    let with = |key: &str, value: Value| {
        let mut body = good();
        body[key] = value;
        body
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!("not an object"), 400, "invalid type"),
        (json!({"url": "https://example.com/", "metadata": {}}), 400, "missing field `name`"),
        (with("name", json!(7)), 400, "name: invalid type: integer `7`, expected a string"),
        (with("metadata", json!({"events": [1]})), 400, "metadata.events[0]: invalid type: integer `1`"),
        (with("name", json!("  ")), 400, "name: must be 1 to 200 characters"),
        (with("bogus", json!(1)), 400, "unknown field `bogus`"),
        (with("url", json!("not a url")), 400, "url: \"not a url\" is not a URL"),
        (with("url", json!("http://127.0.0.1:8080/x")), 400, "non-public address"),
        (with("url", json!("http://169.254.169.254/")), 400, "non-public address"),
        (
            with("metadata", json!({"events": ["TODO_EXPLODED"]})),
            400,
            "unknown event type(s) TODO_EXPLODED; valid: COMMENT_CREATED",
        ),
        (
            with("filter", json!({"all": [{"path": "a", "op": "equals", "value": 1}]})),
            400,
            "filter.all[0].op: unknown op \"equals\"",
        ),
        (
            with("connector", json!({"name": "nope"})),
            400,
            "connector.name: no connector named \"nope\"; installed: crm, json, pabbly, slack, zapier",
        ),
        (with("secret", json!("hunter2")), 400, "secret: a secret starts with \"whsec_\""),
        (with("rateLimit", json!(0)), 400, "rateLimit: must be at least 1"),
        (with("rateLimit", json!(1.5)), 400, "rateLimit: expected a whole number"),
        (with("url", json!("https:///hook")), 400, "url: \"https:///hook\" must be scheme://host"),
        (with("url", json!("https://example.com/a b")), 400, "percent-encoded"),
        (
            with("metadata", json!({"projectIds": ["p1", "\u{7}"]})),
            400,
            "metadata.projectIds[1]: must not contain control",
        ),
    ];
    for (body, status, message) in cases {
        let (got, error) = server.call(&alice, Method::POST, "/v1/webhooks", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {error}");
        let text = error["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{body}: {text}");
        assert!(error["error"]["code"].is_string());
    }
    assert_eq!(count_webhooks(&server).await, 0, "nothing was stored");

    let response = server
        .client
        .post(format!("{}/v1/webhooks", server.base))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_json");

    let response = server
        .client
        .post(format!("{}/v1/webhooks", server.base))
        .bearer_auth(&alice)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415, "JSON needs its content type");
    assert_eq!(count_webhooks(&server).await, 0, "nothing was stored");
}

#[tokio::test]
async fn every_field_at_fault_is_named_at_once_with_its_path() {
    let server = TestServer::start_with(|c| c.allow_private_destinations = false).await;
    let body = json!({"name": " ", "url": "not a url", "rateLimit": 0,
                      "metadata": {"events": ["TODO_EXPLODED"], "projectIds": ["ok", "\u{7}"]},
                      "connector": {"name": "slack", "config": {"text": "", "fields": [{"label": "x"}]}}});
    let (status, error) = server.call(OPERATOR, Method::POST, "/v1/webhooks", Some(body)).await;
    assert_eq!(status, 400, "{error}");
    let fields: Vec<&str> =
        error["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "name",
            "url",
            "metadata.projectIds[1]",
            "metadata.events",
            "connector.config.fields.0.value",
            "connector.config.text",
            "rateLimit"
        ],
        "{error}"
    );
    assert_eq!(error["error"]["field"], "name", "the first, for clients that show one");
    for fault in error["error"]["fields"].as_array().unwrap() {
        let message = fault["message"].as_str().unwrap();
        assert!(
            !message.is_empty() && error["error"]["message"].as_str().unwrap().contains(message),
            "{error}"
        );
    }
    assert_eq!(count_webhooks(&server).await, 0, "nothing was stored");

    // A single fault from parsing the body names its field too.
    let (status, error) = server
        .call(OPERATOR, Method::POST, "/v1/webhooks", Some(json!({"name": 7, "url": "x", "metadata": {}})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["field"], "name", "{error}");
}

#[tokio::test]
async fn users_see_only_their_own_webhooks_and_scopes_hold() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1"], "user").await;
    let bob = server.token("bob", &["c1"], "user").await;
    let ingest = server.token("app", &["c1"], "ingest").await;
    let (_, created) =
        server.call(&alice, Method::POST, "/v1/webhooks", Some(webhook("mine", &[], &[]))).await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());

    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"name": "stolen"}));
        let (status, error) = server.call(&bob, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} of another user's webhook: {error}");
    }
    let (_, bobs) = server.call(&bob, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(bobs["data"], json!([]));
    let (status, _) = server.call(OPERATOR, Method::GET, &path, None).await;
    assert_eq!(status, 200, "operators see every webhook");

    let (status, error) = server.call(&ingest, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(status, 403, "{error}");
    let (status, _) = server
        .call(&alice, Method::POST, "/v1/tokens", Some(json!({"userId": "x", "allCompanies": true})))
        .await;
    assert_eq!(status, 403, "only operators mint tokens");
    let (status, error) = server.call("whk_nonsense", Method::GET, "/v1/webhooks", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("unauthorized")));
    let response = server.client.get(format!("{}/v1/event-types", server.base)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn tokens_are_listed_without_their_text_and_revocable() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1", "c2"], "user").await;
    let (status, tokens) = server.call(OPERATOR, Method::GET, "/v1/tokens", None).await;
    assert_eq!(status, 200);
    assert_eq!(tokens[0]["companies"], json!({"only": ["c1", "c2"]}));
    assert!(!tokens.to_string().contains(&alice), "a token's text is shown only at creation");
    let (status, error) =
        server.call(OPERATOR, Method::POST, "/v1/tokens", Some(json!({"userId": "x"}))).await;
    assert_eq!(status, 400);
    assert!(error["error"]["message"].as_str().unwrap().contains("allCompanies"));

    let id = tokens[0]["id"].as_str().unwrap();
    let (status, _) = server.call(OPERATOR, Method::DELETE, &format!("/v1/tokens/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = server.call(&alice, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(status, 401, "a revoked token no longer works");
}

#[tokio::test]
async fn the_catalog_lists_37_events_with_descriptions() {
    let server = TestServer::start().await;
    let (status, types) = server.call(OPERATOR, Method::GET, "/v1/event-types", None).await;
    assert_eq!(status, 200);
    let types = types.as_array().unwrap();
    assert_eq!(types.iter().filter(|t| t.get("operatorOnly").is_none()).count(), 37);
    assert_eq!(types.len(), 41, "and, for operators, the host's four reports on itself");
    assert!(types.iter().all(|t| !t["description"].as_str().unwrap().is_empty()));
}

#[tokio::test]
async fn ingest_matches_stores_deliveries_and_dedupes() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1"], "user").await;
    let app = server.token("app", &["c1", "c2"], "ingest").await;
    let make = |body: Value| async { server.call(&alice, Method::POST, "/v1/webhooks", Some(body)).await.1 };
    let exact = make(webhook("exact", &["TODO_CREATED"], &["p1"])).await;
    make(webhook("comments", &["COMMENT_CREATED"], &[])).await;
    let mut filtered = webhook("filtered", &[], &[]);
    filtered["filter"] = json!({"path": "currentValue.position", "op": "gt", "value": 5});
    make(filtered).await;
    let mut paused = webhook("paused", &["TODO_CREATED"], &[]);
    paused["enabled"] = json!(false);
    let paused = make(paused).await;

    let (status, accepted) =
        server.call(&app, Method::POST, "/v1/events", Some(event("e1", "TODO_CREATED", "c1", "p1"))).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["id"], "e1");
    assert_eq!(accepted["matched"], 2, "exact and paused; not comments, not the filtered one");
    assert_eq!(accepted["duplicate"], false);
    let ids: Vec<&str> =
        accepted["deliveries"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    let mut statuses = Vec::new();
    for id in &ids {
        let delivery = server.state.store.delivery(id).await.unwrap().expect("stored");
        statuses.push((delivery.webhook_id.clone(), delivery.status));
    }
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (exact["id"].as_str().unwrap().to_owned(), DeliveryStatus::Pending),
        (paused["id"].as_str().unwrap().to_owned(), DeliveryStatus::Paused),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(statuses, expected);

    let (status, again) =
        server.call(&app, Method::POST, "/v1/events", Some(event("e1", "TODO_CREATED", "c1", "p1"))).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["deliveries"], accepted["deliveries"], "the original answer");
    assert_eq!(
        server.state.store.queue_depth(),
        1,
        "paused deliveries wait outside the queue; a duplicate queues nothing"
    );

    // An event of c2 does not reach alice's webhooks (her token sees only c1).
    let (_, other) =
        server.call(&app, Method::POST, "/v1/events", Some(event("e2", "TODO_CREATED", "c2", "p1"))).await;
    assert_eq!(other["matched"], 0);

    // Idempotency-Key dedupes events without an id.
    let send = || {
        server
            .client
            .post(format!("{}/v1/events", server.base))
            .bearer_auth(&app)
            .header("idempotency-key", "order-77")
            .json(&json!({"event": "COMMENT_CREATED", "companyId": "c1", "projectId": "p3"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["matched"], 1);
    let second = send().await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!((second["id"].clone(), second["duplicate"].clone()), (first["id"].clone(), json!(true)));
}

/// `?explain=true`: why an event matched nothing, over the webhooks the token may know of,
/// and a query it does not know is refused before anything is stored.
#[tokio::test]
async fn ingest_explains_what_an_event_matched_when_asked() {
    let server = TestServer::start().await;
    let ada = server.token("ada", &["acme"], "user").await;
    let bob = server.token("bob", &["elsewhere"], "user").await;
    let app = server.token("app", &["company_acme", "acme"], "ingest").await;
    let (_, mine) =
        server.call(&ada, Method::POST, "/v1/webhooks", Some(webhook("ada's", &["TODO_CREATED"], &[]))).await;
    server.call(&bob, Method::POST, "/v1/webhooks", Some(webhook("bob's", &[], &[]))).await;
    let (_, shown) =
        server.call(&ada, Method::GET, &format!("/v1/webhooks/{}", mine["id"].as_str().unwrap()), None).await;
    assert_eq!(shown["companies"], json!({"only": ["acme"]}), "the companies it can match");

    // The README's first mistake: the user's company is `acme`, the event's `company_acme`.
    let sent = event("e1", "TODO_CREATED", "company_acme", "p1");
    let (status, answer) =
        server.call(&app, Method::POST, "/v1/events?explain=true", Some(sent.clone())).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["matched"], 0);
    let explain = &answer["explain"];
    assert_eq!(
        explain["webhooks"].as_array().unwrap().len(),
        1,
        "bob's webhook is not this token's business: {explain}"
    );
    assert_eq!(explain["webhooks"][0]["webhookId"], mine["id"]);
    assert_eq!(explain["webhooks"][0]["reason"], "company");
    assert!(explain["webhooks"][0]["detail"].as_str().unwrap().contains("(acme)"), "{explain}");
    assert_eq!(
        explain["summary"],
        "matched 0 of 1 webhook(s); 1 belong to users whose companies leave this one out"
    );

    let (status, plain) =
        server.call(&app, Method::POST, "/v1/events", Some(event("e2", "TODO_CREATED", "acme", "p1"))).await;
    assert_eq!((status, plain["matched"].clone()), (202, json!(1)));
    assert!(plain.get("explain").is_none(), "only when asked: {plain}");
    let (status, refused) = server
        .call(&app, Method::POST, "/v1/events?explain=maybe", Some(event("e3", "TODO_CREATED", "acme", "p1")))
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("explain"), "{refused}");
    let (status, _) =
        server.call(&app, Method::POST, "/v1/events", Some(event("e3", "TODO_CREATED", "acme", "p1"))).await;
    assert_eq!(status, 202, "the refused event was not stored");
}

#[tokio::test]
async fn bad_events_are_refused_and_batches_are_all_or_nothing() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &[], "user").await;
    let app = server.token("app", &["c1"], "ingest").await;
    server.call(&alice, Method::POST, "/v1/webhooks", Some(webhook("all", &[], &[]))).await;

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"event": "NOPE", "companyId": "c1", "projectId": "p1"}),
            "unknown event type \"NOPE\"; valid: COMMENT_CREATED",
        ),
        (json!({"event": "TODO_CREATED", "projectId": "p1"}), "missing field `companyId`"),
        (json!({"event": "TODO_CREATED", "companyId": "c1", "projectId": 5}), "projectId: invalid type"),
        (
            json!({"event": "TODO_CREATED", "companyId": "c9", "projectId": "p1"}),
            "may not send events for company \"c9\"",
        ),
        (
            json!({"event": "TODO_CREATED", "companyId": "c1", "projectId": "p1", "occurredAt": "yesterday"}),
            "occurredAt: ",
        ),
    ];
    for (body, message) in cases {
        let (status, error) = server.call(&app, Method::POST, "/v1/events", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{body}: {error}");
    }
    assert_eq!(server.state.store.queue_depth(), 0);

    let batch = json!({"events": [event("b1", "TODO_CREATED", "c1", "p1"), {"event": "NOPE", "companyId": "c1", "projectId": "p1"}]});
    let (status, error) = server.call(&app, Method::POST, "/v1/events/batch", Some(batch)).await;
    assert_eq!(status, 400);
    assert!(error["error"]["message"].as_str().unwrap().starts_with("events[1]: "), "{error}");
    assert_eq!(server.state.store.queue_depth(), 0, "nothing of the batch was stored");

    let batch =
        json!({"events": [event("b1", "TODO_CREATED", "c1", "p1"), event("b2", "TAG_CREATED", "c1", "p2")]});
    let (status, accepted) = server.call(&app, Method::POST, "/v1/events/batch", Some(batch)).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["events"][0]["id"], "b1");
    assert_eq!(accepted["events"][0]["duplicate"], false, "b1 was not stored by the refused batch");
    assert_eq!(accepted["events"][1]["matched"], 1);
    assert_eq!(server.state.store.queue_depth(), 2);

    let too_big = json!({"event": "TODO_CREATED", "companyId": "c1", "projectId": "p1", "currentValue": {"text": "x".repeat(1 << 20)}});
    let (status, error) = server.call(&app, Method::POST, "/v1/events", Some(too_big)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (413, Some("body_too_large")));
    let (status, _) =
        server.call(&alice, Method::POST, "/v1/events", Some(event("x", "TODO_CREATED", "c1", "p1"))).await;
    assert_eq!(status, 403, "user tokens do not ingest");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_stores_nothing() {
    let server = TestServer::start_with(|c| c.limits.queue_depth = 1).await;
    let alice = server.token("alice", &[], "user").await;
    server.call(&alice, Method::POST, "/v1/webhooks", Some(webhook("a", &[], &[]))).await;
    server.call(&alice, Method::POST, "/v1/webhooks", Some(webhook("b", &[], &[]))).await;
    let response = server
        .client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(OPERATOR)
        .json(&event("q1", "TODO_CREATED", "c1", "p1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(server.state.store.event("c1", "q1").await.unwrap().is_none());
}

#[tokio::test]
async fn ingest_can_be_rate_limited_per_token() {
    let server = TestServer::start_with(|c| c.limits.ingest_per_second = Some(2)).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (status, _) = server
            .call(
                OPERATOR,
                Method::POST,
                "/v1/events",
                Some(event(&format!("r{i}"), "TODO_CREATED", "c1", "p1")),
            )
            .await;
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 202 || *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let server = TestServer::start().await;
    let (status, spec) = server.call(OPERATOR, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 6, "{paths:?}");
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let url = path.replace("{id}", "missing");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = server.call(OPERATOR, method.clone(), &url, None).await;
            assert!(
                !(status == 404 && body["error"]["message"] == "no such route; see /openapi.json")
                    && status != 405,
                "{method} {path} is documented but not routed ({status} {body})"
            );
        }
    }
    let (status, body) = server.call(OPERATOR, Method::GET, "/v1/nothing-here", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn me_says_who_a_token_speaks_for() {
    let server = TestServer::start().await;
    let alice = server.token("alice", &["c1", "c2"], "user").await;
    let (status, me) = server.call(&alice, Method::GET, "/v1/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["userId"], "alice");
    assert_eq!(me["scope"], "user");
    let (_, me) = server.call(OPERATOR, Method::GET, "/v1/me", None).await;
    assert_eq!(me["scope"], "operator");
    let (status, _) = server.call("not-a-token", Method::GET, "/v1/me", None).await;
    assert_eq!(status, 401);
}
