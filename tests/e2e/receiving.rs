//! `docs/receiving.md` is true: its Node and Python checks accept a real delivery and refuse
//! a tampered one. The pinned libraries are installed here when missing (never skipped).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{OPERATOR, Receiver, TestServer, workspace};

fn docs() -> PathBuf {
    workspace().join("docs/receiving")
}

fn node() -> Command {
    crate::support::npm_ci_unless_installed(&docs(), "standardwebhooks");
    let mut command = Command::new("node");
    command.arg(docs().join("verify.mjs"));
    command
}

fn python() -> Command {
    let bin =
        crate::support::python_venv("receiving-venv", &docs().join("requirements.txt"), "standardwebhooks");
    let mut command = Command::new(bin.join("python"));
    command.arg(docs().join("verify.py"));
    command
}

/// A real, signed delivery: the secret, the headers and the exact body.
async fn delivery() -> Value {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let body = json!({"name": "r", "url": receiver.url, "metadata": {"events": [], "projectIds": []}});
    let created = server.webhook(OPERATOR, body).await;
    server
        .send_event(
            OPERATOR,
            json!({"id": "doc", "event": "TODO_CREATED", "companyId": "c", "projectId": "p"}),
        )
        .await;
    let got = receiver.wait_for(1).await.remove(0);
    let headers: serde_json::Map<String, Value> =
        got.headers.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap()))).collect();
    json!({"secret": created["secret"], "headers": headers, "body": String::from_utf8(got.body).unwrap()})
}

fn run(mut command: Command, input: &Value) -> (bool, String) {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn tampered(delivery: &Value) -> Value {
    let mut bad = delivery.clone();
    bad["body"] = json!(delivery["body"].as_str().unwrap().replace("TODO_CREATED", "TODO_DELETED"));
    bad
}

#[tokio::test]
async fn the_node_checks_verify_a_real_delivery() {
    let delivery = delivery().await;
    let (ok, out) = run(node(), &delivery);
    assert!(ok && out.contains("verified"), "{out}");
    let (ok, out) = run(node(), &tampered(&delivery));
    assert!(!ok && out.contains("does not match"), "{out}");
}

#[tokio::test]
async fn the_python_check_verifies_a_real_delivery() {
    let delivery = delivery().await;
    let (ok, out) = run(python(), &delivery);
    assert!(ok && out.contains("verified"), "{out}");
    let (ok, out) = run(python(), &tampered(&delivery));
    assert!(!ok && out.contains("webhook-signature"), "{out}");
}
