//! `wasmhook plugin run`, the plugin author's first tool, through the real binary.

use std::process::Command;

use serde_json::Value;

use crate::support::{binary, sample_event, shared_cache_dir};

fn plugin_run(args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(["plugin", "run"])
        .args(args)
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .output()
        .expect("wasmhook runs")
}

#[test]
fn json_connector_prints_the_standard_payload_request() {
    let event = sample_event("todo-created.json");
    let out = plugin_run(&["json", "--event", event.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["plugin"]["name"], "json");
    let requests = report["result"]["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["method"], "POST");

    let payload: Value = serde_json::from_str(requests[0]["body"].as_str().unwrap()).unwrap();
    let sent: Value = serde_json::from_str(&std::fs::read_to_string(&event).unwrap()).unwrap();
    assert_eq!(payload["id"], sent["id"]);
    assert_eq!(payload["event"], "TODO_CREATED");
    assert_eq!(payload["timestamp"], "2026-11-23T09:30:00Z");
    assert_eq!(payload["currentValue"], sent["currentValue"]);
    assert_eq!(payload["company"]["id"], "company_acme");
    assert_eq!(payload["project"]["id"], "project_launch");
    assert_eq!(payload["user"]["id"], "user_ada");
    assert_eq!(payload["webhook"]["url"], "https://example.com/webhook");
    assert_eq!(payload["webhook"]["metadata"]["events"][0], "TODO_CREATED");
    assert!(report["invokeTime"].as_f64().unwrap() > 0.0);
}

#[test]
fn text_report_shows_the_request_as_sent_and_the_log() {
    let event = sample_event("comment-created.json");
    let out = plugin_run(&["json", "--event", event.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("json 1.0.0 — "), "{text}");
    assert!(text.contains("1 request(s) in "), "{text}");
    assert!(text.contains("\nPOST https://example.com/webhook\ncontent-type: application/json\n"), "{text}");
    assert!(text.contains(r#""event":"COMMENT_CREATED""#), "{text}");
    assert!(text.contains("log: (empty)"), "{text}");
}

#[test]
fn a_misbehaving_plugin_file_fails_with_its_typed_error() {
    let event = sample_event("todo-created.json");
    let out = plugin_run(&[
        wasmhook_test_components::HOSTILE,
        "--event",
        event.to_str().unwrap(),
        "--config",
        r#"{"mode":"exit"}"#,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"]["error"]["code"], "exit");
}

#[test]
fn bad_input_is_explained() {
    let event = sample_event("todo-created.json");
    let cases: [(&[&str], &str); 3] = [
        (
            &["nope", "--event", event.to_str().unwrap()],
            "no built-in connector named \"nope\"; built-ins: json",
        ),
        (&["json", "--event", event.to_str().unwrap(), "--config", "{"], "--config is not valid JSON"),
        (&["json", "--event", "/nonexistent.json"], "cannot read /nonexistent.json"),
    ];
    for (args, expected) in cases {
        let out = plugin_run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn the_text_report_shows_what_contract_0_2_adds() {
    let event = sample_event("todo-created.json");
    let config = r#"{"properties": {"firstname": "currentValue.title"}}"#;
    let out = plugin_run(&["crm", "--event", event.to_str().unwrap(), "--config", config]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\ncontract 0.2, judges answers (on-response)\n"), "{text}");
    assert!(text.contains("\npolicy: 100 per 10 s\n"), "{text}");
    assert!(text.contains("\n(ordering key \"todo_42\")\n"), "the record is the key: {text}");
}
