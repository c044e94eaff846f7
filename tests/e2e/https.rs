//! Deliveries over HTTPS, as real receivers (Zapier, Slack, a CRM) take them: the real
//! binary, local TLS receivers, certificates checked against the trust store the host is
//! given (`SSL_CERT_FILE`, as on any Linux host).

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, start_command};
use crate::support::{Receiver, binary, eventually, shared_cache_dir, storage_args};

#[tokio::test]
async fn delivers_to_a_trusted_https_receiver_and_refuses_an_untrusted_certificate() {
    let (trusted, trusted_pem) = Receiver::start_tls().await;
    let (untrusted, _) = Receiver::start_tls().await;
    let data = tempfile::tempdir().unwrap();
    let roots = data.path().join("roots.pem");
    std::fs::write(&roots, trusted_pem).unwrap();
    let mut command = Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--operator-token", "op", "--allow-private-destinations"])
        .args(["--retry-schedule", "10ms,10ms,10ms,10ms", "--data-dir"])
        .arg(data.path().join("data"))
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(storage_args(&data.path().join("data")))
        .env("SSL_CERT_FILE", &roots);
    let server = start_command(command);

    let trusted_hook = webhook(&server, "trusted", &trusted.url, "p-trusted").await;
    let untrusted_hook = webhook(&server, "untrusted", &untrusted.url, "p-untrusted").await;
    send(&server, "tls-1", "p-trusted").await;
    send(&server, "tls-2", "p-untrusted").await;

    let got = trusted.wait_for(1).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["id"], "tls-1");
    assert!(got[0].headers.contains_key("webhook-signature"));
    let log = last_delivery(&server, &trusted_hook, "succeeded").await;
    assert_eq!(log["attempts"][0]["statusCode"], 200, "{log}");

    // Five refused handshakes: nothing reached the receiver, and each attempt says why.
    let log = last_delivery(&server, &untrusted_hook, "failed").await;
    let error = log["attempts"][0]["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("certificate"), "the attempt names the certificate: {log}");
    assert!(untrusted.received().is_empty());
    assert!(server.stop().success());
}

async fn webhook(server: &Server, name: &str, url: &str, project: &str) -> String {
    let hook = json!({"name": name, "url": url, "metadata": {"events": [], "projectIds": [project]}});
    let (status, created) = server.call("op", Method::POST, "/v1/webhooks", Some(hook)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn send(server: &Server, id: &str, project: &str) {
    let event = json!({"id": id, "event": "TODO_CREATED", "companyId": "c", "projectId": project});
    let (status, accepted) = server.call("op", Method::POST, "/v1/events", Some(event)).await;
    assert_eq!(status, 202, "{accepted}");
}

/// The webhook's newest delivery once it has reached `status`.
async fn last_delivery(server: &Server, webhook: &str, status: &str) -> Value {
    let path = format!("/v1/webhooks/{webhook}/deliveries");
    eventually(&format!("a {status} delivery"), async || {
        let (_, log) = server.call("op", Method::GET, &path, None).await;
        (log["data"][0]["status"] == status).then(|| log["data"][0].clone())
    })
    .await
}
