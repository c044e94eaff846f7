//! `wasmhook migrate --from DIR --to postgres://…`: a deployment on the embedded database moved
//! whole to PostgreSQL by the real binary, and served from there. Run in the suite's sled
//! pass (its first server is on the embedded database); skipped when no PostgreSQL answers.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::serve::{Server, start_with};
use crate::support::{Receiver, TestDb, binary, on_postgres, shared_cache_dir};

/// What one `wasmhook migrate` run printed and whether it succeeded.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

async fn migrate(from: &Path, to: &str) -> Run {
    let output = tokio::process::Command::new(binary())
        .args(["migrate", "--from"])
        .arg(from)
        .args(["--to", to])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The counts a run printed: kind → (copied, already there).
fn counts(run: &Run) -> BTreeMap<String, (u64, u64)> {
    assert!(run.success, "migrate failed: {}{}", run.stdout, run.stderr);
    run.stdout
        .lines()
        .filter_map(|line| {
            let (kind, rest) = line.trim().split_once(':')?;
            let numbers: Vec<u64> = rest.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            match numbers[..] {
                [copied, there] if rest.contains("copied") => Some((kind.to_owned(), (copied, there))),
                _ => None,
            }
        })
        .collect()
}

/// `SELECT count(*) FROM <from>`.
async fn rows_of(url: &str, from: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.query_one(&format!("SELECT count(*) FROM {from}"), &[]).await.unwrap().get(0)
}

/// Rows in each table the copy writes.
async fn rows(url: &str) -> Vec<(&'static str, i64)> {
    let mut rows = Vec::new();
    for table in ["users", "tokens", "connectors", "webhooks", "events", "deliveries", "attempts", "queue"] {
        rows.push((table, rows_of(url, table).await));
    }
    rows
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Whether `request` carries a valid Standard Webhooks signature made with `secret`.
fn signed_with(request: &crate::support::Received, secret: &str) -> bool {
    let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
    let signed =
        [header("webhook-id").as_bytes(), b".", header("webhook-timestamp").as_bytes(), b".", &request.body]
            .concat();
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let expected = format!("v1,{}", STANDARD.encode(hmac(&key, &signed)));
    header("webhook-signature").split(' ').any(|signature| signature == expected)
}

fn event(id: &str, project: &str) -> Value {
    json!({"id": id, "event": "TODO_CREATED", "companyId": "c", "projectId": project})
}

async fn created(server: &Server, token: &str, path: &str, body: Value) -> Value {
    let (status, created) = server.call(token, Method::POST, path, Some(body)).await;
    assert!(matches!(status, 200..=202), "{path}: {status} {created}");
    created
}

#[tokio::test]
async fn a_sled_deployment_moves_to_postgres_whole_and_keeps_working() {
    if on_postgres() {
        return; // its first server must be on the embedded database
    }
    let Some(database) = TestDb::create().await else { return };
    let data = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    // The receiver is down for the first attempts; retries come only after the move.
    receiver.script(&[503, 503]);
    let since =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();

    // A deployment on the embedded database.
    let sled = start_with(
        data.path(),
        &shared_cache_dir(),
        &["--operator-token", "op", "--allow-private-destinations", "--retry-schedule", "5s,5s,5s"],
    );
    let token =
        created(&sled, "op", "/v1/tokens", json!({"userId": "alice", "companies": ["c"], "scope": "user"}))
            .await["token"]
            .as_str()
            .unwrap()
            .to_owned();
    let slack = wasmhook::builtins::component("slack").unwrap().to_vec();
    assert_eq!(sled.upload_connector("op", "announce", slack).await, 200);
    let hook = |name: &str, extra: Value| {
        let mut hook =
            json!({"name": name, "url": receiver.url, "metadata": {"events": [], "projectIds": [name]}});
        hook.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        hook
    };
    let queued = created(&sled, &token, "/v1/webhooks", hook("queued", json!({}))).await;
    let paused = created(
        &sled,
        &token,
        "/v1/webhooks",
        hook("paused", json!({"connector": {"name": "announce", "config": {}}})),
    )
    .await;
    let paused_path = format!("/v1/webhooks/{}", paused["id"].as_str().unwrap());
    let (status, _) = sled.call(&token, Method::PATCH, &paused_path, Some(json!({"enabled": false}))).await;
    assert_eq!(status, 200);
    let mut accepted = Vec::new();
    for (id, project) in [("q1", "queued"), ("q2", "queued"), ("p1", "paused"), ("p2", "paused")] {
        accepted.push(created(&sled, "op", "/v1/events", event(id, project)).await);
    }
    receiver.wait_for(2).await;

    // Not while a server holds the data directory.
    let refused = migrate(data.path(), &database.url).await;
    assert!(!refused.success && refused.stderr.contains("stop the server first"), "{}", refused.stderr);
    assert!(
        rows_of(&database.url, "pg_tables WHERE schemaname = 'public'").await == 0,
        "refused before any change"
    );
    assert!(sled.stop().success());
    assert_eq!(receiver.received().len(), 2, "nothing was delivered before the move");

    // The move, and the same again: nothing twice.
    let first = counts(&migrate(data.path(), &database.url).await);
    let expected = [
        ("users", 1),
        ("tokens", 1),
        ("connectors", 1),
        ("webhooks", 2),
        ("events", 4),
        ("deliveries", 4),
        ("attempts", 2),
        ("queue entries", 2),
    ];
    let copied = |numbers: fn(u64) -> (u64, u64)| -> BTreeMap<String, (u64, u64)> {
        expected.iter().map(|(kind, n)| (kind.to_string(), numbers(*n))).collect()
    };
    assert_eq!(first, copied(|n| (n, 0)));
    let rows_after_first = rows(&database.url).await;
    let second = migrate(data.path(), &database.url).await;
    assert_eq!(counts(&second), copied(|n| (0, n)));
    assert_eq!(rows(&database.url).await, rows_after_first);
    assert!(second.stdout.contains("secret-key"), "the operator is told about the key: {}", second.stdout);
    let missing = migrate(&data.path().join("nothing"), &database.url).await;
    assert!(!missing.success && missing.stderr.contains("--data-dir"), "{}", missing.stderr);

    // Served from PostgreSQL, with the same secret key and operator token.
    let host = tempfile::tempdir().unwrap();
    let key = std::fs::read_to_string(data.path().join("secret-key")).unwrap();
    let config = host.path().join("host.toml");
    std::fs::write(&config, format!("secret-key = \"{}\"\n", key.trim())).unwrap();
    let args = ["--database", &database.url, "--config", config.to_str().unwrap()];
    let pg = start_with(
        host.path(),
        &shared_cache_dir(),
        &[&args[..], &["--operator-token", "op", "--allow-private-destinations"]].concat(),
    );

    let (status, me) = pg.call(&token, Method::GET, "/v1/me", None).await;
    assert_eq!((status, me["userId"].as_str()), (200, Some("alice")), "{me}");
    let (_, list) = pg.call(&token, Method::GET, "/v1/webhooks", None).await;
    let mut names: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["paused", "queued"]);
    let (_, connectors) = pg.call("op", Method::GET, "/v1/connectors", None).await;
    assert!(connectors.as_array().unwrap().iter().any(|c| c["name"] == "announce"), "{connectors}");

    // The queued deliveries arrive, signed with the webhook's secret.
    let got = receiver.wait_for(4).await;
    let secret = queued["secret"].as_str().unwrap();
    let mut ids: Vec<String> = got[2..]
        .iter()
        .map(|request| {
            assert!(signed_with(request, secret), "a valid signature");
            serde_json::from_slice::<Value>(&request.body).unwrap()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["q1", "q2"]);
    let log_path = format!("/v1/webhooks/{}/deliveries", queued["id"].as_str().unwrap());
    let log = crate::support::eventually("the queued deliveries to be succeeded", async || {
        let (_, log) = pg.call(&token, Method::GET, &log_path, None).await;
        log["data"].as_array().unwrap().iter().all(|d| d["status"] == "succeeded").then_some(log)
    })
    .await;
    for delivery in log["data"].as_array().unwrap() {
        let codes: Vec<&Value> =
            delivery["attempts"].as_array().unwrap().iter().map(|a| &a["statusCode"]).collect();
        assert_eq!(codes, [&json!(503), &json!(200)], "the attempt made before the move is kept");
    }

    // The paused ones wait; recovered, the uploaded connector makes them.
    let (_, log) =
        pg.call(&token, Method::GET, &format!("{paused_path}/deliveries?status=paused"), None).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 2, "{log}");
    let (status, _) = pg.call(&token, Method::PATCH, &paused_path, Some(json!({"enabled": true}))).await;
    assert_eq!(status, 200);
    receiver.wait_for(5).await; // the health check a re-enabled webhook sends first
    let (status, recovered) =
        pg.call(&token, Method::POST, &format!("{paused_path}/recover"), Some(json!({"since": since}))).await;
    assert_eq!((status, recovered["requeued"].as_u64()), (202, Some(2)), "{recovered}");
    let got = receiver.wait_for(7).await;
    for request in &got[5..] {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert!(body["text"].is_string(), "made by the uploaded (Slack) connector: {body}");
        assert!(signed_with(request, paused["secret"].as_str().unwrap()));
    }

    // The events came too: sent again, they are duplicates with their first deliveries.
    let (status, again) = pg.call("op", Method::POST, "/v1/events", Some(event("q1", "queued"))).await;
    assert_eq!((status, &again["deliveries"]), (200, &accepted[0]["deliveries"]), "{again}");
    assert!(pg.stop().success());
}
