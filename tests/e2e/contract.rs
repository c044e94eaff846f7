//! Connector contract 0.2 end to end: components built for 0.1 keep working; `on-response`
//! verdicts and remote ids (a test connector, Slack's answers, a fake CRM that enforces its
//! rules); per-webhook state within its quotas; declared policies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, Receiver, TestServer, eventually, sample_event};

async fn upload(server: &TestServer, name: &str, bytes: Vec<u8>) -> Value {
    let (status, answer) = server.upload(OPERATOR, name, bytes).await;
    assert_eq!(status, 200, "{name}: {answer}");
    answer
}

async fn upload_judge(server: &TestServer) {
    upload(server, "judge", std::fs::read(wasmhook_test_components::JUDGE).unwrap()).await;
}

fn event(kind: &str, record: &str, title: &str) -> Value {
    json!({"event": kind, "companyId": "c1", "projectId": "p1",
           "currentValue": {"id": record, "title": title}})
}

/// The webhook's deliveries, once `done` says they are where the test expects them.
async fn deliveries_when(
    server: &TestServer,
    webhook_id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let path = format!("/v1/webhooks/{webhook_id}/deliveries");
    eventually(&format!("deliveries of {webhook_id}"), async || {
        let (_, log) = server.call(OPERATOR, Method::GET, &path, None).await;
        let all = log["data"].as_array()?.clone();
        done(&all).then_some(all)
    })
    .await
}

fn all_final(deliveries: &[Value], count: usize) -> bool {
    deliveries.len() == count
        && deliveries
            .iter()
            .all(|d| matches!(d["status"].as_str(), Some("succeeded" | "failed" | "filtered")))
}

async fn webhook_view(server: &TestServer, id: &str) -> Value {
    let (status, view) = server.call(OPERATOR, Method::GET, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 200, "{view}");
    view
}

#[tokio::test]
async fn components_built_for_contract_0_1_load_and_send_the_same_bytes() {
    let old = wasmhook_test_components::build_js_example_for_contract_0_1();
    let server = TestServer::delivering("10ms").await;
    let described = upload(&server, "title-0-1", std::fs::read(old).unwrap()).await;
    assert_eq!(described["contract"], "0.1", "{described}");
    assert_eq!(described["onResponse"], false);
    assert!(described.get("policy").is_none(), "{described}");

    let (_, listed) = server.call(OPERATOR, Method::GET, "/v1/connectors", None).await;
    let builtin = |name: &str| listed.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(builtin("json")["contract"], "0.2", "the built-ins are built on 0.2");
    assert_eq!(builtin("slack")["onResponse"], true);
    assert_eq!(builtin("slack")["policy"], json!({"rate": {"requests": 1, "seconds": 1}}));
    assert_eq!(builtin("crm")["policy"], json!({"rate": {"requests": 100, "seconds": 10}}));

    let receiver = Receiver::start().await;
    let hook = server
        .webhook(
            OPERATOR,
            json!({"name": "old", "url": receiver.url, "metadata": {"events": []},
                   "connector": {"name": "title-0-1", "config": {"pattern": "LAUNCH"}}}),
        )
        .await;
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(sample_event("todo-created.json")).unwrap()).unwrap();
    server.send_event(OPERATOR, sample).await;
    let unicode = json!({"id": "evt_unicode", "event": "TODO_NAME_CHANGED", "companyId": "c", "projectId": "p",
                         "currentValue": {"title": "Lançamento — Launch ✓ \"quoted\""}});
    server.send_event(OPERATOR, unicode).await;
    let mut got: Vec<Vec<u8>> = receiver.wait_for(2).await.into_iter().map(|r| r.body).collect();
    got.sort();
    // The bytes the examples test expects of every language's build on 0.2.
    let expected = [
        r#"{"event":"TODO_CREATED","id":"evt_sample_todo_created","matched":"LAUNCH","project":"project_launch","title":"Draft the launch announcement"}"#,
        r#"{"event":"TODO_NAME_CHANGED","id":"evt_unicode","matched":"LAUNCH","project":"p","title":"Lançamento — Launch ✓ \"quoted\""}"#,
    ];
    assert_eq!(got, expected.map(|b| b.as_bytes().to_vec()));
    let done = deliveries_when(&server, hook["id"].as_str().unwrap(), |d| all_final(d, 2)).await;
    assert!(done.iter().all(|d| d["status"] == "succeeded"), "{done:?}");
}

#[tokio::test]
async fn on_response_remote_ids_and_plugin_errors() {
    let server = TestServer::delivering("10ms,10ms").await;
    upload_judge(&server).await;
    let receiver = Receiver::start().await;
    let hook = |mode: &str| {
        json!({"name": mode, "url": receiver.url, "metadata": {"events": ["TODO_CREATED"]},
               "connector": {"name": "judge", "config": {"mode": mode}}})
    };
    let echo = server.webhook(OPERATOR, hook("echo")).await;
    let echo_id = echo["id"].as_str().unwrap();
    receiver.script_answer(201, &[("content-type", "application/json")], r#"{"id":"remote-42"}"#);
    server.send_event(OPERATOR, event("TODO_CREATED", "t1", "one")).await;
    let done = deliveries_when(&server, echo_id, |d| all_final(d, 1)).await;
    assert_eq!(done[0]["status"], "succeeded", "{:?}", done[0]);
    assert_eq!(done[0]["messages"][0]["remoteId"], "remote-42", "kept on the message");
    assert_eq!(done[0]["attempts"][0]["remoteId"], "remote-42", "and on the attempt");

    // A connector whose on-response fails or traps: each attempt fails as a plugin error,
    // retried; when they run out, the delivery fails, and the webhook stays as healthy as the
    // receiver (which answered 200 every time) is.
    for mode in ["error", "trap"] {
        let server = TestServer::delivering("10ms,10ms").await;
        upload_judge(&server).await;
        let created = server.webhook(OPERATOR, hook(mode)).await;
        let id = created["id"].as_str().unwrap();
        server.send_event(OPERATOR, event("TODO_CREATED", "t1", mode)).await;
        let done = deliveries_when(&server, id, |d| all_final(d, 1)).await;
        let delivery = &done[0];
        assert_eq!(delivery["status"], "failed", "{mode}: {delivery}");
        let attempts = delivery["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 3, "{mode}: retried like any failed attempt");
        for attempt in attempts {
            assert_eq!(attempt["statusCode"], 200, "{mode}");
            let error = attempt["error"].as_str().unwrap();
            let code = if mode == "error" { "[failed] on-response" } else { "[trap] on-response" };
            assert!(error.starts_with(code), "{mode}: {error}");
        }
        assert!(delivery["error"].as_str().unwrap().contains("on-response"), "{mode}: {delivery}");
        let view = webhook_view(&server, id).await;
        assert_eq!(view["enabled"], true, "{mode}: the receiver is not at fault: {view}");
        assert_ne!(view["status"], "DISABLED", "{mode}");
    }
}

#[tokio::test]
async fn state_is_kept_per_webhook_within_its_quotas_and_goes_with_the_webhook() {
    // Filling a store to its 1,000 keys takes a thousand writes in one invocation, each a
    // commit on PostgreSQL: more time than the default limits give a plugin.
    let server = TestServer::start_with(|config| {
        config.plugin_limits.wall_time = std::time::Duration::from_secs(30);
        config.plugin_limits.cpu_time = std::time::Duration::from_secs(10);
    })
    .await;
    wasmhook::delivery::engine::spawn(server.state.engine_context());
    upload_judge(&server).await;
    let receiver = Receiver::start().await;
    let hook = |mode: &str, kind: &str| {
        json!({"name": mode, "url": receiver.url, "metadata": {"events": [kind]},
               "connector": {"name": "judge", "config": {"mode": mode}}})
    };
    let first = server.webhook(OPERATOR, hook("count", "TODO_CREATED")).await;
    let second = server.webhook(OPERATOR, hook("count", "TODO_CREATED")).await;
    for i in 0..3 {
        server.send_event(OPERATOR, event("TODO_CREATED", &format!("t{i}"), "x")).await;
        // One at a time: each count is read after the last one was kept.
        receiver.wait_for(2 * (i + 1)).await;
    }
    let mut all: Vec<String> =
        receiver.received().iter().map(|r| String::from_utf8(r.body.clone()).unwrap()).collect();
    all.sort();
    assert_eq!(all, ["0", "0", "1", "1", "2", "2"], "each webhook counts its own deliveries");

    // Over the quotas, the plugin gets typed errors (and a store of its own to fill).
    let quota = server.webhook(OPERATOR, hook("quota", "TODO_DELETED")).await;
    server.send_event(OPERATOR, event("TODO_DELETED", "t9", "x")).await;
    let answered = receiver.wait_for(7).await;
    let report: Value = serde_json::from_slice(&answered[6].body).unwrap();
    assert_eq!(report["tooLarge"], "StateError::ValueTooLarge", "{report}");
    assert_eq!(report["tooMany"], "key 1000: StateError::QuotaExceeded", "{report}");

    // Deleting a webhook deletes its state; the others keep theirs.
    let store = &server.state.store;
    let keys = |id: &Value| {
        let id = id["id"].as_str().unwrap().to_owned();
        async move { store.plugin_state_keys(&id, "judge", "").await.unwrap() }
    };
    assert_eq!(keys(&first).await, ["seen"]);
    assert_eq!(keys(&quota).await.len(), 1_000);
    let (status, _) = server
        .call(OPERATOR, Method::DELETE, &format!("/v1/webhooks/{}", quota["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, 204);
    assert!(keys(&quota).await.is_empty(), "gone with its webhook");
    assert_eq!(keys(&second).await, ["seen"]);
}

#[tokio::test]
async fn slack_reads_its_answers_and_keeps_to_one_message_a_second() {
    let server = TestServer::delivering("10ms,10ms").await;
    let receiver = Receiver::start().await;
    let created = server
        .webhook(
            OPERATOR,
            json!({"name": "alerts", "url": receiver.url, "metadata": {"events": []},
                   "connector": {"name": "slack", "config": {}}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let policy = json!({"rate": {"requests": 1, "seconds": 1}, "concurrency": 8, "attempts": 3});
    assert_eq!(
        webhook_view(&server, id).await["policy"],
        policy,
        "Slack's rate, the host's cap and attempts"
    );

    // A message Slack will never take fails at once; the webhook is fine.
    receiver.script_answer(400, &[], "invalid_payload");
    server.send_event(OPERATOR, event("TODO_CREATED", "t1", "one")).await;
    let done = deliveries_when(&server, id, |d| all_final(d, 1)).await;
    assert_eq!(done[0]["status"], "failed");
    assert_eq!(done[0]["attempts"].as_array().unwrap().len(), 1, "not retried");
    assert!(done[0]["error"].as_str().unwrap().contains("invalid_payload"), "{}", done[0]);
    assert_eq!(webhook_view(&server, id).await["enabled"], true);

    // Rate limited: it waits for Slack's Retry-After, then goes.
    receiver.script_answer(429, &[("retry-after", "2")], "rate_limited");
    server.send_event(OPERATOR, event("TODO_CREATED", "t2", "two")).await;
    let done = deliveries_when(&server, id, |d| all_final(d, 2)).await;
    let delivery = done.iter().find(|d| d["status"] == "succeeded").unwrap();
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 2);
    let got = receiver.received();
    let waited = got[2].at - got[1].at;
    assert!(waited >= std::time::Duration::from_millis(1_900), "Retry-After honoured: {waited:?}");

    // Three at once: one a second, as the connector declares.
    for i in 0..3 {
        server.send_event(OPERATOR, event("TODO_CREATED", &format!("r{i}"), "burst")).await;
    }
    let got = receiver.wait_for(6).await;
    for pair in got[3..6].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= std::time::Duration::from_millis(950), "spaced by the policy: {gap:?}");
    }

    // A hook Slack says is gone disables the webhook, saying why.
    receiver.script_answer(404, &[], "no_service");
    server.send_event(OPERATOR, event("TODO_CREATED", "t3", "three")).await;
    let view = eventually("the webhook disabled", async || {
        let view = webhook_view(&server, id).await;
        (view["enabled"] == false).then_some(view)
    })
    .await;
    assert_eq!(view["status"], "DISABLED", "{view}");
    let done = deliveries_when(&server, id, |d| all_final(d, 6)).await;
    let last = done.iter().find(|d| d["error"].as_str().is_some_and(|e| e.contains("no_service"))).unwrap();
    assert!(last["error"].as_str().unwrap().contains("disabled the webhook"), "{last}");
}

/// A HubSpot-like CRM that enforces what HubSpot does: 409 on creating a contact whose email
/// it has, 404 on updating one it does not, 429 past 100 requests in 10 seconds.
#[derive(Clone, Default)]
struct FakeCrm(Arc<Mutex<CrmState>>);

#[derive(Default)]
struct CrmState {
    contacts: HashMap<String, Value>,
    requests: Vec<(String, String, Value)>,
    recent: Vec<std::time::Instant>,
}

impl FakeCrm {
    async fn start() -> (FakeCrm, String) {
        let crm = FakeCrm::default();
        let app = axum::Router::new()
            .route("/crm/v3/objects/contacts", axum::routing::post(create))
            .route("/crm/v3/objects/contacts/{id}", axum::routing::patch(update))
            .with_state(crm.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (crm, url)
    }

    fn requests(&self) -> Vec<(String, String, Value)> {
        self.0.lock().unwrap().requests.clone()
    }

    fn contact(&self, id: &str) -> Option<Value> {
        self.0.lock().unwrap().contacts.get(id).cloned()
    }
}

impl CrmState {
    /// Counts a request against the rate; `false` when it is over.
    fn admit(&mut self) -> bool {
        let now = std::time::Instant::now();
        self.recent.retain(|at| now.duration_since(*at) < std::time::Duration::from_secs(10));
        self.recent.push(now);
        self.recent.len() <= 100
    }
}

async fn create(State(crm): State<FakeCrm>, body: axum::Json<Value>) -> axum::response::Response {
    let mut state = crm.0.lock().unwrap();
    state.requests.push(("POST".into(), "/crm/v3/objects/contacts".into(), body.0.clone()));
    if !state.admit() {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "{}").into_response();
    }
    let email = &body.0["properties"]["email"];
    if let Some((id, _)) = state.contacts.iter().find(|(_, c)| c["properties"]["email"] == *email) {
        let message = format!("Contact already exists. Existing ID: {id}");
        let answer = json!({"status": "error", "message": message, "category": "CONFLICT"});
        return (StatusCode::CONFLICT, axum::Json(answer)).into_response();
    }
    let id = (1001 + state.contacts.len()).to_string();
    let contact = json!({"id": id, "properties": body.0["properties"]});
    state.contacts.insert(id, contact.clone());
    (StatusCode::CREATED, axum::Json(contact)).into_response()
}

async fn update(
    State(crm): State<FakeCrm>,
    Path(id): Path<String>,
    body: axum::Json<Value>,
) -> axum::response::Response {
    let mut state = crm.0.lock().unwrap();
    state.requests.push(("PATCH".into(), format!("/crm/v3/objects/contacts/{id}"), body.0.clone()));
    if !state.admit() {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "{}").into_response();
    }
    let Some(contact) = state.contacts.get_mut(&id) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"message": "resource not found"}))).into_response();
    };
    for (name, value) in body.0["properties"].as_object().unwrap() {
        contact["properties"][name] = value.clone();
    }
    (StatusCode::OK, axum::Json(contact.clone())).into_response()
}

#[tokio::test]
async fn the_crm_connector_remembers_each_records_id_and_updates_it() {
    let server = TestServer::delivering("10ms").await;
    let (crm, url) = FakeCrm::start().await;
    let config = json!({"properties": {"email": "{{currentValue.id}}@example.test", "firstname": "currentValue.title"}});
    let hook = |name: &str, events: Value| {
        json!({"name": name, "url": url, "metadata": {"events": events},
               "connector": {"name": "crm", "config": config}})
    };
    let mut looser = hook("main", json!(["TODO_CREATED", "TODO_NAME_CHANGED"]));
    looser["rateLimit"] = json!(50);
    let main = server.webhook(OPERATOR, looser).await;
    let main_id = main["id"].as_str().unwrap();
    let rate = |view: Value| view["policy"]["rate"].clone();
    assert_eq!(
        rate(webhook_view(&server, main_id).await),
        json!({"requests": 100, "seconds": 10}),
        "never looser"
    );
    let mut tighter = hook("tight", json!(["TAG_CREATED"]));
    tighter["rateLimit"] = json!(2);
    let tight = server.webhook(OPERATOR, tighter).await;
    assert_eq!(
        rate(webhook_view(&server, tight["id"].as_str().unwrap()).await),
        json!({"requests": 2, "seconds": 1})
    );

    server.send_event(OPERATOR, event("TODO_CREATED", "t1", "Draft")).await;
    let done = deliveries_when(&server, main_id, |d| all_final(d, 1)).await;
    assert_eq!(done[0]["status"], "succeeded", "{}", done[0]);
    assert_eq!(done[0]["messages"][0]["remoteId"], "1001", "the CRM's id, from its answer");
    server.send_event(OPERATOR, event("TODO_NAME_CHANGED", "t1", "Final")).await;
    let done = deliveries_when(&server, main_id, |d| all_final(d, 2)).await;
    assert!(done.iter().all(|d| d["status"] == "succeeded"), "{done:?}");
    assert_eq!(crm.contact("1001").unwrap()["properties"]["firstname"], "Final");
    let methods: Vec<(String, String)> = crm.requests().into_iter().map(|(m, p, _)| (m, p)).collect();
    assert_eq!(
        methods,
        [
            ("POST".to_owned(), "/crm/v3/objects/contacts".to_owned()),
            ("PATCH".to_owned(), "/crm/v3/objects/contacts/1001".to_owned())
        ],
        "created once, then updated by its CRM id"
    );

    // Another webhook's state is its own: it has never seen t1, so it creates it — the CRM
    // refuses the duplicate (409) and names the id, which it keeps for the next event.
    let other = server.webhook(OPERATOR, hook("other", json!(["TODO_DONE_STATUS_UPDATED"]))).await;
    let other_id = other["id"].as_str().unwrap();
    server.send_event(OPERATOR, event("TODO_DONE_STATUS_UPDATED", "t1", "Done")).await;
    let done = deliveries_when(&server, other_id, |d| all_final(d, 1)).await;
    assert_eq!(done[0]["status"], "failed", "{}", done[0]);
    assert!(done[0]["error"].as_str().unwrap().contains("already has record t1 as 1001"), "{}", done[0]);
    assert_eq!(done[0]["attempts"].as_array().unwrap().len(), 1, "a duplicate is not retried");
    server.send_event(OPERATOR, event("TODO_DONE_STATUS_UPDATED", "t1", "Done again")).await;
    let done = deliveries_when(&server, other_id, |d| all_final(d, 2)).await;
    assert_eq!(done.iter().filter(|d| d["status"] == "succeeded").count(), 1, "{done:?}");
    assert_eq!(crm.contact("1001").unwrap()["properties"]["firstname"], "Done again");
    assert_eq!(crm.0.lock().unwrap().contacts.len(), 1, "never a second contact");
    assert_eq!(webhook_view(&server, other_id).await["status"], "HEALTHY");
}

/// Records the `currentValue` of each event it gets, in arrival order; answers 500 the first
/// time it sees record `a`'s first version.
async fn keyed_receiver() -> (Arc<Mutex<Vec<(String, u16)>>>, String) {
    let arrived: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let log = arrived.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let log = log.clone();
        async move {
            let event: Value = serde_json::from_slice(&body).unwrap();
            let version = format!(
                "{}{}",
                event["currentValue"]["id"].as_str().unwrap(),
                event["currentValue"]["title"].as_str().unwrap()
            );
            let mut log = log.lock().unwrap();
            let status = if version == "a1" && !log.iter().any(|(v, _)| v == "a1") { 500 } else { 200 };
            log.push((version, status));
            StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (arrived, url)
}

#[tokio::test]
async fn requests_with_one_ordering_key_go_in_order_and_other_keys_do_not_wait() {
    let server = TestServer::delivering("500ms").await;
    upload_judge(&server).await;
    let (arrived, url) = keyed_receiver().await;
    let created = server
        .webhook(
            OPERATOR,
            json!({"name": "keyed", "url": url, "metadata": {"events": []},
                   "connector": {"name": "judge", "config": {"mode": "ordered"}}}),
        )
        .await;
    for (record, version) in [("a", "1"), ("b", "1"), ("a", "2"), ("b", "2"), ("a", "3")] {
        server.send_event(OPERATOR, event("TODO_NAME_CHANGED", record, version)).await;
    }
    deliveries_when(&server, created["id"].as_str().unwrap(), |d| {
        d.len() == 5 && d.iter().all(|d| d["status"] == "succeeded")
    })
    .await;
    let arrived = arrived.lock().unwrap().clone();
    let of = |record: &str| -> Vec<(String, u16)> {
        arrived.iter().filter(|(v, _)| v.starts_with(record)).cloned().collect()
    };
    let a = [("a1", 500), ("a1", 200), ("a2", 200), ("a3", 200)].map(|(v, s)| (v.to_owned(), s));
    assert_eq!(of("a"), a, "record a's versions in order, the later ones behind a1's retry");
    let b = [("b1", 200), ("b2", 200)].map(|(v, s)| (v.to_owned(), s));
    assert_eq!(of("b"), b);
    let at =
        |version: &str, status: u16| arrived.iter().position(|(v, s)| v == version && *s == status).unwrap();
    assert!(at("b2", 200) < at("a1", 200), "record b did not wait for a's retry: {arrived:?}");
}

#[tokio::test]
async fn every_upload_is_a_version_that_can_be_shadowed_promoted_rolled_back_and_pinned() {
    let server = TestServer::delivering("10ms").await;
    let (following, pinned) = (Receiver::start().await, Receiver::start().await);
    let hostile = crate::support::hostile_bytes().to_vec();
    let judge = std::fs::read(wasmhook_test_components::JUDGE).unwrap();
    let first = upload(&server, "conn", hostile.clone()).await;
    assert_eq!((first["uploaded"]["version"].clone(), first["liveVersion"].clone()), (json!(1), json!(1)));
    let hook = |url: &str, version: Option<u32>| {
        json!({"name": "versioned", "url": url, "metadata": {"events": ["TODO_CREATED"]},
               "connector": {"name": "conn", "config": {"mode": "ok"}, "version": version}})
    };
    let latest = server.webhook(OPERATOR, hook(&following.url, None)).await;
    server.webhook(OPERATOR, hook(&pinned.url, Some(1))).await;
    let (status, refused) =
        server.call(OPERATOR, Method::POST, "/v1/webhooks", Some(hook(&pinned.url, Some(99)))).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "connector.version");

    // A second upload kept aside, then run beside the live one: compared, never sent.
    let path = |what: &str| format!("/v1/connectors/conn{what}");
    let second = upload(&server, "conn?live=false", judge).await;
    assert_eq!((second["uploaded"]["version"].clone(), second["liveVersion"].clone()), (json!(2), json!(1)));
    let (status, versions) = server.call(OPERATOR, Method::GET, &path("/versions"), None).await;
    assert_eq!(status, 200, "{versions}");
    assert_eq!(versions["live"], 1);
    assert_eq!(versions["versions"][0]["pinnedBy"], 1);
    let (status, shadowing) =
        server.call(OPERATOR, Method::POST, &path("/shadow"), Some(json!({"version": 2}))).await;
    assert_eq!((status, shadowing["shadow"].clone()), (200, json!(2)), "{shadowing}");
    let sent_by =
        |receiver: &Receiver, n: usize| receiver.received()[n].headers.get("x-judge-mode").is_some();
    server.send_event(OPERATOR, event("TODO_CREATED", "t1", "one")).await;
    following.wait_for(1).await;
    pinned.wait_for(1).await;
    assert!(!sent_by(&following, 0) && !sent_by(&pinned, 0), "the live version sent it");
    let report = eventually("a shadow run", async || {
        let (_, report) = server.call(OPERATOR, Method::GET, &path("/shadow"), None).await;
        (report["runs"].as_array()?.len() == 1).then_some(report)
    })
    .await;
    let run = &report["runs"][0];
    assert_eq!((run["live"].clone(), run["candidate"].clone()), (json!(1), json!(2)), "{report}");
    assert_eq!(run["webhookId"], latest["id"], "only the webhook following the live version");
    assert_eq!((run["same"].clone(), report["differing"].clone()), (json!(false), json!(1)));
    assert!(run["differences"][0].as_str().unwrap().contains("headers"), "{run}");
    assert_eq!(following.received().len(), 1, "the candidate's requests were never sent");

    // Promoted: the webhook following the live version gets the new one; the pinned one not.
    let (status, promoted) = server.call(OPERATOR, Method::POST, &path("/promote"), Some(json!({}))).await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!((promoted["live"].clone(), promoted["previous"].clone()), (json!(2), json!([1])));
    assert!(promoted.get("shadow").is_none(), "{promoted}");
    server.send_event(OPERATOR, event("TODO_CREATED", "t2", "two")).await;
    following.wait_for(2).await;
    pinned.wait_for(2).await;
    assert!(sent_by(&following, 1) && !sent_by(&pinned, 1));

    // Rolled back, once.
    let (status, back) = server.call(OPERATOR, Method::POST, &path("/rollback"), None).await;
    assert_eq!((status, back["live"].clone()), (200, json!(1)), "{back}");
    server.send_event(OPERATOR, event("TODO_CREATED", "t3", "three")).await;
    following.wait_for(3).await;
    assert!(!sent_by(&following, 2));
    let (status, _) = server.call(OPERATOR, Method::POST, &path("/rollback"), None).await;
    assert_eq!(status, 409, "nothing earlier");

    // Retention: the newest ten, and every version in use, are kept.
    for _ in 0..11 {
        upload(&server, "conn?live=false", hostile.clone()).await;
    }
    let (_, versions) = server.call(OPERATOR, Method::GET, &path("/versions"), None).await;
    let kept: Vec<u64> =
        versions["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(kept, [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], "version 1 is live and pinned");
    let (_, metrics) = server.call(OPERATOR, Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    for version in ["1", "2"] {
        let line = format!("wasmhook_plugin_invocations_total{{connector=\"conn\",version=\"{version}\"}}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}
