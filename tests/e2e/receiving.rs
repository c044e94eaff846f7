//! `docs/receiving.md` is true: its Node and Python checks accept a real delivery and refuse
//! a tampered one, and its Express and Flask receivers take real deliveries and refuse those
//! signed with another secret. The pinned libraries are installed here when missing (never
//! skipped).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{OPERATOR, Receiver, TestServer, workspace};

fn docs() -> PathBuf {
    workspace().join("docs/receiving")
}

/// `node` running `script` of `docs/receiving`.
fn node(script: &str) -> Command {
    crate::support::npm_ci_unless_installed(&docs(), "express");
    let mut command = Command::new("node");
    command.arg(docs().join(script));
    command
}

/// Python with the pinned packages running `script` of `docs/receiving`.
fn python(script: &str) -> Command {
    let bin = crate::support::python_venv("receiving-venv", &docs().join("requirements.txt"), "flask");
    let mut command = Command::new(bin.join("python"));
    command.arg(docs().join(script));
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
    let (ok, out) = run(node("verify.mjs"), &delivery);
    assert!(ok && out.contains("verified"), "{out}");
    let (ok, out) = run(node("verify.mjs"), &tampered(&delivery));
    assert!(!ok && out.contains("does not match"), "{out}");
    a_receiver_takes_deliveries_and_refuses_forgeries(node("express.mjs")).await;
}

#[tokio::test]
async fn the_python_check_verifies_a_real_delivery() {
    let delivery = delivery().await;
    let (ok, out) = run(python("verify.py"), &delivery);
    assert!(ok && out.contains("verified"), "{out}");
    let (ok, out) = run(python("verify.py"), &tampered(&delivery));
    assert!(!ok && out.contains("webhook-signature"), "{out}");
    a_receiver_takes_deliveries_and_refuses_forgeries(python("flask_app.py")).await;
}

/// The receiver's secret; the forger's webhook has another.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER: &str = "whsec_dGhpcyBpcyBub3QgdGhlIHJlY2VpdmVyJ3Mga2V5";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a receiver of `docs/receiving` (`command`) as its comments say, then sends it one
/// event through two webhooks: one with its secret (answered 204, printed as verified) and
/// one with another (answered 400, refused).
async fn a_receiver_takes_deliveries_and_refuses_forgeries(mut command: Command) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Running(
        command
            .env("WEBHOOK_SECRET", SECRET)
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (send, lines) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let server = TestServer::delivering("10ms").await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut ids = Vec::new();
    for (name, secret) in [("genuine", SECRET), ("forged", OTHER)] {
        let body =
            json!({"name": name, "url": url, "secret": secret, "metadata": {"events": [], "projectIds": []}});
        ids.push(server.webhook(OPERATOR, body).await["id"].as_str().unwrap().to_owned());
    }
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the receiver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
        .send_event(
            OPERATOR,
            json!({"id": "both", "event": "TODO_CREATED", "companyId": "c", "projectId": "p"}),
        )
        .await;
    let mut printed = Vec::new();
    let started = std::time::Instant::now();
    // The receivers answer requests on several threads: two lines may come out interleaved
    // ("refused: …verified …"), so each is looked for anywhere.
    while !(printed.iter().any(|l: &String| l.contains("verified TODO_CREATED msg_"))
        && printed.iter().any(|l| l.contains("refused")))
    {
        printed.extend(lines.try_iter());
        assert!(started.elapsed() < Duration::from_secs(30), "the receiver printed {printed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses = |id: String| {
        let server = &server;
        async move {
            let (_, log) = server
                .call(OPERATOR, reqwest::Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None)
                .await;
            log["data"][0]["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a["statusCode"].as_u64())
                .collect::<Vec<_>>()
        }
    };
    let [genuine, forged] = [ids[0].clone(), ids[1].clone()];
    crate::support::eventually("the genuine delivery answered 204", async || {
        statuses(genuine.clone()).await.contains(&204).then_some(())
    })
    .await;
    assert!(statuses(forged).await.iter().all(|status| *status == 400), "forgeries are refused");
}
