//! What an audit of the running product found (tried as an attacker and as a careless
//! operator would), each finding with a test named after what it guards.

use reqwest::Method;
use serde_json::{Value, json};
use wasmhook::domain::delivery::DeliveryStatus;

use crate::serve::{refused_start, start_with};
use crate::support::{OPERATOR, Receiver, TestServer, eventually, shared_cache_dir};

fn event(id: &str, company: &str) -> Value {
    json!({"id": id, "event": "TODO_CREATED", "companyId": company, "projectId": "p1",
           "currentValue": {"title": "Launch"}})
}

fn hook(url: &str) -> Value {
    json!({"name": "hook", "url": url, "metadata": {"events": [], "projectIds": []}})
}

async fn token_id(server: &TestServer, user: &str) -> String {
    let (_, tokens) = server.call(OPERATOR, Method::GET, "/v1/tokens", None).await;
    let mine = tokens.as_array().unwrap().iter().find(|t| t["userId"] == user).unwrap();
    mine["id"].as_str().unwrap().to_owned()
}

async fn delivery(server: &TestServer, id: &str) -> Option<wasmhook::domain::delivery::Delivery> {
    server.state.store.delivery(id).await.unwrap()
}

// Tenancy.

#[tokio::test]
async fn a_webhook_matches_only_the_companies_its_owner_has_now() {
    let server = TestServer::start().await;
    let everything = server.token("alice", &[], "user").await;
    let created = server.webhook(&everything, hook("http://127.0.0.1:9/a")).await;
    let id = created["id"].as_str().unwrap();

    // The operator revokes that token and mints a narrower one: alice now sees company A only.
    let old = token_id(&server, "alice").await;
    assert_eq!(server.call(OPERATOR, Method::DELETE, &format!("/v1/tokens/{old}"), None).await.0, 204);
    let narrower = server.token("alice", &["A"], "user").await;
    let (status, _) = server
        .call(
            &narrower,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": "http://127.0.0.1:9/b"})),
        )
        .await;
    assert_eq!(status, 200);

    let ingest = server.token("app", &[], "ingest").await;
    assert_eq!(
        server.send_event(&ingest, event("b1", "B")).await["matched"],
        0,
        "company B is no longer hers"
    );
    assert_eq!(server.send_event(&ingest, event("a1", "A")).await["matched"], 1);
    let (_, me) = server.call(&narrower, Method::GET, "/v1/me", None).await;
    assert_eq!(me["companies"], json!({"only": ["A"]}));
}

#[tokio::test]
async fn operator_and_other_reserved_names_cannot_be_user_ids() {
    let server = TestServer::start().await;
    for reserved in ["operator", "Operator", "wasmhook"] {
        let (status, answer) = server
            .call(
                OPERATOR,
                Method::POST,
                "/v1/tokens",
                Some(json!({"userId": reserved, "allCompanies": true})),
            )
            .await;
        assert_eq!(status, 400, "{reserved}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("reserved"), "{answer}");
    }
    // Operator-made webhooks are nobody else's.
    server.webhook(OPERATOR, hook("http://127.0.0.1:9/a")).await;
    let user = server.token("mallory", &[], "user").await;
    let (_, page) = server.call(&user, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(page["data"], json!([]));
}

// Idempotency.

#[tokio::test]
async fn event_ids_are_scoped_per_company() {
    let server = TestServer::start().await;
    server.webhook(OPERATOR, hook("http://127.0.0.1:9/a")).await;
    let tenant_a = server.token("app_a", &["A"], "ingest").await;
    let tenant_b = server.token("app_b", &["B"], "ingest").await;

    let b = server.send_event(&tenant_b, event("evt_shared", "B")).await;
    let (status, a) =
        server.call(&tenant_a, Method::POST, "/v1/events", Some(event("evt_shared", "A"))).await;
    assert_eq!(status, 202, "B's event with the same id suppresses nothing of A's: {a}");
    assert_eq!(a["duplicate"], false);
    assert_ne!(a["deliveries"], b["deliveries"], "A never sees B's delivery ids");
    let (status, again) =
        server.call(&tenant_a, Method::POST, "/v1/events", Some(event("evt_shared", "A"))).await;
    assert_eq!((status, &again["deliveries"]), (200, &a["deliveries"]), "within a company ids still dedupe");
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_token_body_and_endpoint() {
    let server = TestServer::start().await;
    let (one, two) = (server.token("app1", &[], "ingest").await, server.token("app2", &[], "ingest").await);
    let post = |token: String, path: &'static str, body: Value| {
        let request = server.client.post(format!("{}{path}", server.base));
        async move {
            let response =
                request.bearer_auth(token).header("Idempotency-Key", "k1").json(&body).send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let first =
        post(one.clone(), "/v1/events", json!({"event": "TODO_CREATED", "companyId": "c", "projectId": "p"}))
            .await;
    assert_eq!(first.0, 202);
    let replay =
        post(one.clone(), "/v1/events", json!({"event": "TODO_CREATED", "companyId": "c", "projectId": "p"}))
            .await;
    assert_eq!((replay.0, &replay.1["id"], &replay.1["duplicate"]), (200, &first.1["id"], &json!(true)));
    // The key is bound to the body's JSON value: spacing and member order do not matter, and
    // a body with anything after its value is refused before the key is looked at.
    let raw = |body: &'static str| {
        let request = server.client.post(format!("{}/v1/events", server.base));
        let token = one.clone();
        async move {
            let response = request
                .bearer_auth(token)
                .header("Idempotency-Key", "k1")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let reordered = raw(r#"{ "projectId": "p", "companyId": "c",   "event": "TODO_CREATED" }"#).await;
    assert_eq!((reordered.0, &reordered.1["id"]), (200, &first.1["id"]), "{}", reordered.1);
    let trailing = raw(r#"{"event": "TODO_CREATED", "companyId": "c", "projectId": "p"} {}"#).await;
    assert_eq!((trailing.0, &trailing.1["error"]["code"]), (400, &json!("invalid_json")), "{}", trailing.1);

    let other_body =
        post(one.clone(), "/v1/events", json!({"event": "TODO_DELETED", "companyId": "c", "projectId": "p"}))
            .await;
    assert_eq!(other_body.0, 409, "{}", other_body.1);
    assert!(other_body.1["error"]["message"].as_str().unwrap().contains("different body"));
    let batch = json!({"events": [{"event": "TODO_CREATED", "companyId": "c", "projectId": "p"}]});
    let other_endpoint = post(one.clone(), "/v1/events/batch", batch).await;
    assert_eq!(other_endpoint.0, 409, "{}", other_endpoint.1);
    assert!(other_endpoint.1["error"]["message"].as_str().unwrap().contains("POST /v1/events"));

    let other_token =
        post(two, "/v1/events", json!({"event": "TODO_CREATED", "companyId": "c", "projectId": "p"})).await;
    assert_eq!(other_token.0, 202, "another token's key is its own: {}", other_token.1);
}

#[tokio::test]
async fn concurrent_batches_with_one_idempotency_key_are_stored_once() {
    let server = TestServer::start().await;
    server.webhook(OPERATOR, hook("http://127.0.0.1:9/a")).await;
    let ingest = server.token("app", &[], "ingest").await;
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"event": "TODO_CREATED", "companyId": "c", "projectId": format!("p{i}")}))
        .collect();
    let body = json!({ "events": events });
    let sends = (0..8).map(|_| {
        let request = server.client.post(format!("{}/v1/events/batch", server.base));
        let (token, body) = (ingest.clone(), body.clone());
        async move {
            let response = request
                .bearer_auth(token)
                .header("Idempotency-Key", "same")
                .json(&body)
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        }
    });
    let answers = futures_join_all(sends).await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every racer gets the one answer");
    assert_eq!(server.state.store.queue_depth(), 50, "one batch stored, not eight");
}

/// `futures::future::join_all` without the crate: the requests race on the runtime.
async fn futures_join_all<F: std::future::Future<Output = Value> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Value> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_webhook_update_racing_a_disable_never_undoes_it() {
    let server = TestServer::start().await;
    let created = server.webhook(OPERATOR, hook("http://127.0.0.1:9/a")).await;
    let id = created["id"].as_str().unwrap();
    let store = &server.state.store;
    // The PATCH path's compare-and-swap: it read the webhook, then the engine disabled it; the
    // write of what the PATCH read is refused, and the change is applied to the newer record.
    let mut read = store.webhook(id).await.unwrap().unwrap();
    let disable = |w: &mut wasmhook::domain::webhook::Webhook| {
        w.enabled = false;
        Ok::<_, wasmhook::store::StoreError>(true)
    };
    store.update_webhook(id, disable).await.unwrap().unwrap();
    read.name = "renamed".into();
    assert!(!store.swap_webhook(&read).await.unwrap(), "a write from a stale revision is refused");
    let rename = |w: &mut wasmhook::domain::webhook::Webhook| {
        w.name = "renamed".into();
        Ok::<_, wasmhook::store::StoreError>(true)
    };
    let updated = store.update_webhook(id, rename).await.unwrap().unwrap();
    assert_eq!((updated.name.as_str(), updated.enabled), ("renamed", false));
    assert_eq!(store.webhook(id).await.unwrap().unwrap(), updated, "as stored");
}

// Data at rest and start-up.

#[tokio::test]
async fn a_lost_secret_key_refuses_to_start_instead_of_making_a_new_one() {
    let data = tempfile::tempdir().unwrap();
    let server = start_with(
        data.path(),
        &shared_cache_dir(),
        &["--operator-token", "op", "--allow-private-destinations"],
    );
    let (status, _) =
        server.call("op", Method::POST, "/v1/webhooks", Some(hook("http://127.0.0.1:9/a"))).await;
    assert_eq!(status, 201);
    assert!(server.stop().success());

    std::fs::remove_file(data.path().join("secret-key")).unwrap();
    let printed = refused_start(data.path(), &["--operator-token", "op"], &[]);
    assert!(printed.contains("secret-key") && printed.contains("restore"), "{printed}");
    assert!(!data.path().join("secret-key").exists(), "no new key was made");

    let config = data.path().join("wrong-key.toml");
    std::fs::write(&config, "secret-key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n").unwrap();
    let printed =
        refused_start(data.path(), &["--operator-token", "op", "--config", config.to_str().unwrap()], &[]);
    assert!(printed.contains("cannot open"), "{printed}");
}

#[tokio::test]
async fn a_damaged_or_emptied_database_is_refused_naming_it() {
    if crate::support::on_postgres() {
        return; // damage to the embedded database's own files; PostgreSQL guards its own
    }
    let data = tempfile::tempdir().unwrap();
    let server = start_with(
        data.path(),
        &shared_cache_dir(),
        &["--operator-token", "op", "--allow-private-destinations"],
    );
    assert_eq!(
        server.call("op", Method::POST, "/v1/webhooks", Some(hook("http://127.0.0.1:9/a"))).await.0,
        201
    );
    assert!(server.stop().success());
    let db = data.path().join("db");

    // Flipped bytes in the middle of the data file.
    let file = db.join("db");
    let original = std::fs::read(&file).unwrap();
    let mut flipped = original.clone();
    for byte in flipped.iter_mut().skip(original.len() / 3).take(4096) {
        *byte ^= 0x5a;
    }
    std::fs::write(&file, &flipped).unwrap();
    let printed = refused_start(data.path(), &["--operator-token", "op"], &[]);
    assert!(printed.contains(&db.display().to_string()), "names the database: {printed}");

    // Cut to nothing: it would start empty, as if new.
    for entry in walk(&db) {
        std::fs::write(entry, b"").unwrap();
    }
    let printed = refused_start(data.path(), &["--operator-token", "op"], &[]);
    assert!(printed.contains(&db.display().to_string()) && printed.contains("restore"), "{printed}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[tokio::test]
async fn the_data_directory_is_private_and_write_only_config_is_sealed_at_rest() {
    use std::os::unix::fs::PermissionsExt;

    let data = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let args = ["--operator-token", "op", "--allow-private-destinations"];
    let server = start_with(data.path(), &shared_cache_dir(), &args);
    let api_key = "sk_live_findme_0123456789";
    let body = json!({"name": "crm", "url": receiver.url.trim_end_matches("/hook"), "metadata": {"events": [], "projectIds": []},
        "connector": {"name": "crm", "config": {"objectType": "contacts", "apiKey": api_key,
            "properties": {"name": "currentValue.title"}}}});
    let (status, created) = server.call("op", Method::POST, "/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let ingest_event =
        json!({"event": "TODO_CREATED", "companyId": "c", "projectId": "p", "currentValue": {"title": "T"}});
    assert_eq!(server.call("op", Method::POST, "/v1/events", Some(ingest_event)).await.0, 202);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].headers["authorization"], format!("Bearer {api_key}"), "sent as the plugin made it");
    assert!(server.stop().success());

    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.path()), 0o700);
    for file in walk(data.path()) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        let bytes = std::fs::read(&file).unwrap();
        let clear = bytes.windows(api_key.len()).any(|w| w == api_key.as_bytes());
        assert!(!clear, "the API key is in {} in the clear", file.display());
    }
}

#[tokio::test]
async fn an_empty_or_readable_operator_token_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("operator-token");
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(refused_start(data.path(), &[], &[]).contains("empty"));

    std::fs::write(&path, "whk_a_perfectly_good_token").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(refused_start(data.path(), &[], &[]).contains("chmod 600"));
}

#[tokio::test]
async fn an_event_too_deep_to_read_back_is_refused_at_ingest() {
    let server = TestServer::start().await;
    let mut deep = json!(1);
    for _ in 0..126 {
        deep = json!([deep]);
    }
    let body = json!({"event": "TODO_CREATED", "companyId": "c", "projectId": "p", "currentValue": deep});
    let (status, answer) = server.call(OPERATOR, Method::POST, "/v1/events", Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().starts_with("currentValue: nests deeper"),
        "{answer}"
    );
}

// Network edge.

#[tokio::test]
async fn deliveries_never_go_through_a_proxy_from_the_environment() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(crate::support::binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--operator-token", "op", "--allow-private-destinations"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(crate::support::storage_args(data.path()))
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url);
    let server = crate::serve::start_command(command);
    assert_eq!(server.call("op", Method::POST, "/v1/webhooks", Some(hook(&receiver.url))).await.0, 201);
    let sent = json!({"event": "TODO_CREATED", "companyId": "c", "projectId": "p"});
    assert_eq!(server.call("op", Method::POST, "/v1/events", Some(sent)).await.0, 202);
    receiver.wait_for(1).await;
    let connected = tokio::time::timeout(std::time::Duration::from_millis(200), proxy.accept()).await;
    assert!(connected.is_err(), "the proxy got a connection");
    assert!(server.stop().success());
}

#[tokio::test]
async fn small_edges_answer_as_documented() {
    let server = TestServer::start().await;
    // The bearer scheme is case-insensitive.
    let response = server
        .client
        .get(format!("{}/v1/webhooks", server.base))
        .header("authorization", format!("BEARER {OPERATOR}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // `cursor=` is the first page.
    server.webhook(OPERATOR, hook("http://127.0.0.1:9/a")).await;
    let (status, page) = server.call(OPERATOR, Method::GET, "/v1/webhooks?cursor=", None).await;
    assert_eq!((status, page["data"].as_array().unwrap().len()), (200, 1));
    // Names count characters, and refuse NUL and bidirectional overrides.
    let mut named = hook("http://127.0.0.1:9/a");
    named["name"] = json!("é".repeat(200));
    assert_eq!(server.call(OPERATOR, Method::POST, "/v1/webhooks", Some(named.clone())).await.0, 201);
    for bad in ["a\u{0}b", "pay\u{202e}lap"] {
        named["name"] = json!(bad);
        let (status, answer) = server.call(OPERATOR, Method::POST, "/v1/webhooks", Some(named.clone())).await;
        assert_eq!(status, 400, "{answer}");
    }
    // Operator-only routes say so.
    let user = server.token("ada", &[], "user").await;
    let (status, answer) = server.call(&user, Method::GET, "/v1/tokens", None).await;
    assert_eq!(status, 403);
    assert!(answer["error"]["message"].as_str().unwrap().contains("needs an operator token"), "{answer}");
}

#[tokio::test]
async fn test_retry_and_recover_respect_the_queue_bound() {
    let server = TestServer::start_with(|config| config.limits.queue_depth = 0).await;
    let created = server.webhook(OPERATOR, hook("http://127.0.0.1:9/a")).await;
    let id = created["id"].as_str().unwrap();
    let (status, answer) =
        server.call(OPERATOR, Method::POST, &format!("/v1/webhooks/{id}/test"), None).await;
    assert_eq!(status, 503, "{answer}");
    let recover = json!({"since": "2020-01-01T00:00:00Z"});
    // Nothing to recover fits in any bound; a paused delivery does not.
    let (status, _) =
        server.call(OPERATOR, Method::POST, &format!("/v1/webhooks/{id}/recover"), Some(recover)).await;
    assert_eq!(status, 202);
    assert_eq!(server.state.store.queue_depth(), 0);
}

// Plugins and bounded work.

async fn upload_hostile(server: &TestServer) {
    let hostile = std::fs::read(wasmhook_test_components::HOSTILE).unwrap();
    let upload = server.client.put(format!("{}/v1/connectors/hostile", server.base)).bearer_auth(OPERATOR);
    assert_eq!(upload.body(hostile).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_plugin_set_url_that_is_refused_is_the_plugins_error_not_the_receivers() {
    // Private destinations refused, as in production. Nothing is ever sent: the plugin's
    // request is refused before any connection.
    let server = TestServer::start_with(|c| {
        c.allow_private_destinations = false;
        c.retry_schedule = wasmhook::config::parse_schedule("10ms,10ms").unwrap();
    })
    .await;
    wasmhook::delivery::engine::spawn(server.state.engine_context());
    upload_hostile(&server).await;
    let mut body = hook("https://receiver.example/hook");
    body["connector"] = json!({"name": "hostile", "config": {"mode": "private-url"}});
    let created = server.webhook(OPERATOR, body).await;
    for i in 0..6 {
        let sent = server.send_event(OPERATOR, event(&format!("e{i}"), "c")).await;
        let id = sent["deliveries"][0].as_str().unwrap().to_owned();
        let done = eventually("the delivery ends", async || {
            delivery(&server, &id).await.filter(|d| d.status.is_final())
        })
        .await;
        assert_eq!(done.status, DeliveryStatus::PluginError);
        assert!(done.error.as_deref().unwrap().starts_with("[bad_output] "), "{:?}", done.error);
    }
    let (_, view) = server
        .call(OPERATOR, Method::GET, &format!("/v1/webhooks/{}", created["id"].as_str().unwrap()), None)
        .await;
    assert_eq!((view["status"].as_str(), view["enabled"].as_bool()), (Some("HEALTHY"), Some(true)), "{view}");
}

#[tokio::test]
async fn a_write_only_value_is_scrubbed_in_every_form_the_plugin_echoes_it() {
    let server = TestServer::delivering("10ms").await;
    upload_hostile(&server).await;
    let receiver = Receiver::start().await;
    let key = r#"k"ey\with/odd "chars" é"#;
    let mut body = hook(&receiver.url);
    body["connector"] = json!({"name": "hostile", "config": {"mode": "leak-key", "key": key}});
    let created = server.webhook(OPERATOR, body).await;
    let id = created["id"].as_str().unwrap();
    server.send_event(OPERATOR, event("e1", "c")).await;
    let got = receiver.wait_for(1).await;
    let sent: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(sent["leaked"], key, "the receiver gets what the plugin made");

    let log = eventually("the delivery is logged", async || {
        let (_, log) =
            server.call(OPERATOR, Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None).await;
        (log["data"][0]["status"] == "succeeded").then_some(log)
    })
    .await;
    let shown = log.to_string();
    let escaped = serde_json::to_string(key).unwrap();
    assert!(!shown.contains(key) && !shown.contains(escaped.trim_matches('"')), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[tokio::test]
async fn a_delivery_log_page_is_bounded_and_whole_bodies_have_their_own_route() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let id = created["id"].as_str().unwrap();
    let big = "x".repeat(600 << 10);
    for i in 0..8 {
        let sent = json!({"id": format!("big{i}"), "event": "TODO_CREATED", "companyId": "c", "projectId": "p",
            "currentValue": {"notes": big}});
        server.send_event(OPERATOR, sent).await;
    }
    receiver.wait_for(8).await;
    let page = eventually("every delivery succeeded", async || {
        let response = server
            .client
            .get(format!("{}/v1/webhooks/{id}/deliveries?limit=200", server.base))
            .bearer_auth(OPERATOR);
        let text = response.send().await.unwrap().text().await.unwrap();
        let page: Value = serde_json::from_str(&text).unwrap();
        let done = page["data"].as_array().unwrap().iter().all(|d| d["status"] == "succeeded");
        done.then_some((text.len(), page))
    })
    .await;
    let (bytes, page) = page;
    assert!(bytes < 256 << 10, "a page of 8 deliveries of 600 KiB each took {bytes} bytes");
    let first = &page["data"][0];
    let truncated = &first["truncatedBodies"][0];
    assert!(truncated["bodyBytes"].as_u64().unwrap() > 600 << 10, "{truncated}");

    let message = truncated["messageId"].as_str().unwrap();
    let delivery = first["id"].as_str().unwrap();
    let (status, whole) = server
        .call(OPERATOR, Method::GET, &format!("/v1/deliveries/{delivery}/messages/{message}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(whole["request"]["body"].as_str().unwrap().contains(&big));
}

#[tokio::test]
async fn deliveries_of_a_backed_off_connector_wait_instead_of_burning_cpu() {
    let server = TestServer::start_with(|c| {
        c.plugin_limits.cpu_time = std::time::Duration::from_millis(50);
        c.retry_schedule = wasmhook::config::parse_schedule("10ms").unwrap();
    })
    .await;
    wasmhook::delivery::engine::spawn(server.state.engine_context());
    upload_hostile(&server).await;
    let mut body = hook("http://127.0.0.1:9/never");
    body["connector"] = json!({"name": "hostile", "config": {"mode": "loop"}});
    server.webhook(OPERATOR, body).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let sent = server.send_event(OPERATOR, event(&format!("l{i}"), "c")).await;
        ids.push(sent["deliveries"][0].as_str().unwrap().to_owned());
    }
    // Three strikes end as timeouts; then the connector is backed off and the rest wait,
    // pending, saying why.
    let waiting = eventually("deliveries wait on the back-off", async || {
        let mut waiting = Vec::new();
        for id in &ids {
            let d = delivery(&server, id).await.unwrap();
            if d.status == DeliveryStatus::Pending
                && d.error.as_deref().is_some_and(|e| e.starts_with("[backed_off]"))
            {
                waiting.push(d);
            }
        }
        (!waiting.is_empty()).then_some(waiting)
    })
    .await;
    assert!(!waiting.is_empty());
    let timed_out = {
        let mut n = 0;
        for id in &ids {
            let d = delivery(&server, id).await.unwrap();
            if d.status == DeliveryStatus::PluginError {
                assert!(d.error.as_deref().unwrap().starts_with("[timeout]"), "{:?}", d.error);
                n += 1;
            }
        }
        n
    };
    assert!(timed_out <= 3 + 2, "at most the strikes (and calls already running) spent CPU: {timed_out}");
}

#[tokio::test]
async fn connections_that_never_finish_a_request_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("http.toml");
    std::fs::write(&config, "[http]\nheader-read-timeout = \"300ms\"\n").unwrap();
    let server = start_with(
        data.path(),
        &shared_cache_dir(),
        &["--operator-token", "op", "--config", config.to_str().unwrap()],
    );
    let mut slow = tokio::net::TcpStream::connect(&server.address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut idle = tokio::net::TcpStream::connect(&server.address).await.unwrap();
    for stream in [&mut slow, &mut idle] {
        let mut buffer = [0u8; 256];
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buffer)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the server closed it: {read:?}");
    }
    assert!(server.stop().success());
}

#[tokio::test]
async fn ids_and_cursors_holding_a_nul_find_nothing_on_either_backend() {
    let server = TestServer::start().await;
    server.webhook(OPERATOR, hook("http://127.0.0.1:9/a")).await;
    let (status, page) = server.call(OPERATOR, Method::GET, "/v1/webhooks?cursor=wh_%00", None).await;
    assert_eq!((status, page["data"].as_array().map(Vec::len)), (200, Some(0)), "{page}");
    for path in ["/v1/webhooks/wh_%00", "/v1/deliveries/dlv_%00", "/v1/webhooks/wh_%00/deliveries"] {
        assert_eq!(server.call(OPERATOR, Method::GET, path, None).await.0, 404, "{path}");
    }
    assert_eq!(server.call(OPERATOR, Method::DELETE, "/v1/tokens/tok_%00", None).await.0, 404);
}
