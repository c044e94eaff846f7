//! The commands that manage a running server (`token`, `webhook`, `deliveries`, `recover`,
//! `retry`, `connector`) and `wasmhook receive`, through the real binary against a real
//! `wasmhook serve`, as a person at a terminal runs them.

use std::process::{Command, Output};

use serde_json::Value;

use crate::serve::start_with;
use crate::support::{Receiver, binary, eventually, shared_cache_dir};

/// Runs `wasmhook ARGS` against `url`; stdout, stderr and whether it succeeded.
fn wasmhook(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let Output { status, stdout, stderr } = Command::new(binary())
        .args(args)
        .env("WASMHOOK_SERVER", url)
        .env("WASMHOOK_TOKEN", token)
        .output()
        .unwrap();
    (status.success(), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

/// Like [`wasmhook`], failing the test unless it succeeds; its stdout.
fn ok(url: &str, token: &str, args: &[&str]) -> String {
    let (success, stdout, stderr) = wasmhook(url, token, args);
    assert!(success, "wasmhook {args:?} failed: {stderr}");
    assert!(!stdout.trim().is_empty(), "wasmhook {args:?} printed nothing");
    stdout
}

#[tokio::test]
async fn a_user_manages_a_webhook_and_its_deliveries_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = start_with(
        data.path(),
        &shared_cache_dir(),
        &[
            "--operator-token",
            "op",
            "--allow-private-destinations",
            "--retry-schedule",
            "10ms,10ms,10ms,10ms",
        ],
    );
    let url = format!("http://{}", server.address);
    let receiver = Receiver::start().await;

    let user = ok(&url, "op", &["token", "create", "--user", "ada", "--companies", "company_acme", "-q"]);
    let user = user.trim();
    assert!(
        !user.is_empty() && !user.contains(char::is_whitespace) && !user.contains('{'),
        "only the token: {user:?}"
    );
    let ingest =
        ok(&url, "op", &["token", "create", "--user", "app", "--all-companies", "--scope", "ingest", "-q"]);
    let ingest = ingest.trim();

    assert!(ok(&url, user, &["webhook", "list"]).contains("no webhooks yet"));
    let id = ok(
        &url,
        user,
        &["webhook", "create", "-q", "--name", "Mine", "--url", &receiver.url, "--events", "TODO_CREATED"],
    );
    let id = id.trim();
    assert!(id.starts_with("wh_") && !id.contains('\n'), "{id:?}");
    let created = ok(
        &url,
        user,
        &["webhook", "create", "--name", "Two", "--url", &receiver.url, "--events", "COMMENT_CREATED"],
    );
    assert!(created.contains("signing secret (shown this once): whsec_"), "{created}");

    let list = ok(&url, user, &["webhook", "list"]);
    let line = list.lines().find(|line| line.starts_with(id)).unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains("Mine") && line.contains("HEALTHY") && line.contains(&receiver.url), "{line}");
    let shown: Value = serde_json::from_str(&ok(&url, user, &["webhook", "show", id])).unwrap();
    assert_eq!(shown["metadata"]["events"], serde_json::json!(["TODO_CREATED"]));
    assert_eq!(
        shown["companies"],
        serde_json::json!({"only": ["company_acme"]}),
        "the companies it can match"
    );

    // Only the fields given change; the events stay.
    ok(&url, user, &["webhook", "update", id, "--projects", "project_launch", "--rate-limit", "50"]);
    let shown: Value = serde_json::from_str(&ok(&url, user, &["webhook", "show", id])).unwrap();
    assert_eq!(shown["metadata"]["events"], serde_json::json!(["TODO_CREATED"]));
    assert_eq!(shown["metadata"]["projectIds"], serde_json::json!(["project_launch"]));
    assert_eq!(shown["rateLimit"], 50);
    let (success, _, stderr) = wasmhook(&url, user, &["webhook", "update", id]);
    assert!(!success && stderr.contains("nothing to change"), "{stderr}");

    assert!(ok(&url, user, &["webhook", "test", id]).contains("queued a test event"));
    receiver.wait_for(1).await;
    eventually("the test delivery in the log", async || {
        ok(&url, user, &["deliveries", id]).contains("succeeded").then_some(())
    })
    .await;

    // Failing: disabled after its attempts; then enabled (pending until the health check
    // passes), recovered and retried.
    receiver.script(&[500; 5]);
    let event = crate::support::sample_event("todo-created.json");
    let sent = Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!("Authorization: Bearer {ingest}"),
            "-H",
            "content-type: application/json",
        ])
        .arg("-d")
        .arg(format!("@{}", event.display()))
        .arg(format!("{url}/v1/events"))
        .output()
        .unwrap();
    assert!(sent.status.success());
    eventually("the webhook disabled", async || {
        ok(&url, user, &["webhook", "list"]).contains("DISABLED").then_some(())
    })
    .await;
    let failed = ok(&url, user, &["deliveries", id, "--status", "failed"]);
    assert!(failed.contains("HTTP 500"), "{failed}");
    let (success, _, stderr) = wasmhook(&url, user, &["recover", id, "--since", "1h"]);
    assert!(!success && stderr.contains("enable the webhook"), "{stderr}");
    // A slow receiver: the health check is still on its way when the answer comes.
    receiver.delay(std::time::Duration::from_millis(500));
    assert!(ok(&url, user, &["webhook", "enable", id]).contains("WEBHOOK_HEALTH_CHECK"));
    assert!(ok(&url, user, &["webhook", "show", id]).contains("\"status\": \"PENDING\""));
    assert!(ok(&url, user, &["webhook", "enable", id]).contains("enabled already (PENDING)"));
    eventually("healthy once the health check passed", async || {
        ok(&url, user, &["webhook", "show", id]).contains("\"status\": \"HEALTHY\"").then_some(())
    })
    .await;
    receiver.delay(std::time::Duration::ZERO);
    assert!(ok(&url, user, &["recover", id, "--since", "1h"]).contains("re-queued 1 deliveries"));
    eventually("the recovered delivery succeeded", async || {
        ok(&url, user, &["deliveries", id, "--status", "failed"])
            .contains("no deliveries match")
            .then_some(())
    })
    .await;
    let log: Value = serde_json::from_str(&ok(&url, user, &["deliveries", id, "--json"])).unwrap();
    let delivery = log["data"][0]["id"].as_str().unwrap();
    assert_eq!(ok(&url, user, &["retry", delivery]).trim(), format!("re-queued {delivery}"));

    assert!(ok(&url, user, &["webhook", "disable", id]).contains("disabled"));
    assert!(ok(&url, user, &["webhook", "show", id]).contains("\"DISABLED\""));
    assert_eq!(ok(&url, user, &["webhook", "delete", id]).trim(), format!("deleted {id}"));
    assert!(server.stop().success());
}

#[tokio::test]
async fn operators_list_and_revoke_tokens_and_errors_say_what_to_do() {
    let data = tempfile::tempdir().unwrap();
    let server = start_with(data.path(), &shared_cache_dir(), &["--operator-token", "op"]);
    let url = format!("http://{}", server.address);
    let token = ok(
        &url,
        "op",
        &["token", "create", "--user", "ada", "--companies", "c1,c2", "--description", "laptop", "-q"],
    );
    let list = ok(&url, "op", &["token", "list"]);
    let line = list.lines().find(|line| line.contains("ada")).unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains("user") && line.contains("c1,c2") && line.contains("laptop"), "{line}");
    assert!(!list.contains(token.trim()), "never the token itself");
    let id = line.split_whitespace().next().unwrap();
    assert_eq!(
        ok(&url, "op", &["token", "revoke", id]).trim(),
        format!("revoked {id}: it no longer authenticates")
    );

    let (success, _, stderr) = wasmhook(&url, token.trim(), &["webhook", "list"]);
    assert!(!success && stderr.contains("401") && stderr.contains("--token"), "{stderr}");
    // Port 1 on loopback: nothing listens there.
    let (success, _, stderr) = wasmhook("http://127.0.0.1:1", "op", &["webhook", "list"]);
    assert!(!success && stderr.contains("cannot reach") && stderr.contains("WASMHOOK_SERVER"), "{stderr}");

    // A built-in is replaced only when asked.
    let file = wasmhook_test_components::HOSTILE;
    let (success, _, stderr) = wasmhook(&url, "op", &["connector", "add", "json", file]);
    assert!(!success && stderr.contains("built-in") && stderr.contains("--force"), "{stderr}");
    let added = ok(&url, "op", &["connector", "add", "json", file, "--force"]);
    assert!(added.starts_with("connector \"json\" installed"), "{added}");
    let list = ok(&url, "op", &["connector", "list"]);
    assert!(list.lines().any(|line| line.starts_with("json") && line.contains("uploaded")), "{list}");
    assert!(server.stop().success());
}

/// `wasmhook receive` prints what arrives and checks signatures with the webhook's secret.
#[tokio::test]
async fn the_local_receiver_prints_deliveries_and_checks_their_signatures() {
    let data = tempfile::tempdir().unwrap();
    let server = start_with(
        data.path(),
        &shared_cache_dir(),
        &["--operator-token", "op", "--allow-private-destinations", "--retry-schedule", "10ms"],
    );
    let url = format!("http://{}", server.address);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut receiving = Command::new(binary())
        .args(["receive", "--listen", &format!("127.0.0.1:{port}"), "--secret", secret])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let hook = format!("http://127.0.0.1:{port}/hook");
    let genuine =
        ok(&url, "op", &["webhook", "create", "-q", "--name", "a", "--url", &hook, "--secret", secret]);
    ok(&url, "op", &["webhook", "test", genuine.trim()]);
    // Another secret: refused with a 401, and said so.
    let body = serde_json::json!({"name": "b", "url": hook, "secret": "whsec_dGhpcyBpcyBub3QgdGhlIHJlY2VpdmVyJ3Mga2V5",
        "metadata": {"events": [], "projectIds": []}});
    let (_, forged) = server.call("op", reqwest::Method::POST, "/v1/webhooks", Some(body)).await;
    ok(&url, "op", &["webhook", "test", forged["id"].as_str().unwrap()]);
    eventually("the forged delivery refused", async || {
        let log = ok(&url, "op", &["deliveries", forged["id"].as_str().unwrap()]);
        log.contains("HTTP 401").then_some(())
    })
    .await;
    receiving.kill().unwrap();
    let printed = String::from_utf8(receiving.wait_with_output().unwrap().stdout).unwrap();
    assert!(printed.contains("event TODO_CREATED") && printed.contains("signatures verified"), "{printed}");
    assert!(printed.contains("SIGNATURE REFUSED"), "{printed}");
    assert!(printed.contains("A test event from wasmhook"), "the body: {printed}");
    assert!(server.stop().success());
}
