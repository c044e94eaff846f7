//! `wasmhook plugin new` in each language, followed as its README says: the project builds with
//! its own commands as written, runs under `wasmhook plugin run`, uploads with
//! `wasmhook connector add`, and delivers. All three send the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{OPERATOR, Receiver, TestServer, binary, shared_cache_dir, workspace};

/// What every template sends for the sample event with `{"label": "try"}`.
const EXPECTED: &str = r#"{"event":"TODO_CREATED","id":"evt_sample_todo_created","label":"try","project":"project_launch","title":"Draft the launch announcement"}"#;

fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{what} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// `wasmhook plugin new NAME --lang LANG` in an empty folder, as a user types it; the project.
fn new_project(parent: &Path, name: &str, lang: &str) -> PathBuf {
    let said = run(
        Command::new(binary()).args(["plugin", "new", name, "--lang", lang]).current_dir(parent),
        "wasmhook plugin new",
    );
    assert!(said.contains("next:"), "it says what to do next: {said}");
    parent.join(name)
}

/// `wasmhook plugin run` on the project's sample event, then an upload and a real delivery.
async fn runs_and_delivers(project: &Path, name: &str, component: &Path) {
    let report = run(
        Command::new(binary())
            .args(["plugin", "run"])
            .arg(component)
            .args(["--event", "event.json", "--config", r#"{"label": "try"}"#, "--json", "--cache-dir"])
            .arg(shared_cache_dir())
            .current_dir(project),
        "wasmhook plugin run",
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    let requests = report["result"]["requests"].as_array().unwrap_or_else(|| panic!("{name}: {report}"));
    assert_eq!(requests.len(), 1, "{name}: {report}");
    assert_eq!(requests[0]["body"], EXPECTED, "{name}: {report}");
    assert_eq!(report["plugin"]["name"], name, "{name}: describe names the connector");

    let server = TestServer::delivering("10ms").await;
    // Through tokio: the server answering it runs on this test's runtime.
    let added = tokio::process::Command::new(binary())
        .args(["connector", "add", name])
        .arg(component)
        .env("WASMHOOK_SERVER", &server.base)
        .env("WASMHOOK_TOKEN", OPERATOR)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&added.stdout);
    assert!(
        added.status.success() && said.contains(name),
        "{said}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let receiver = Receiver::start().await;
    server
        .webhook(
            OPERATOR,
            json!({"name": "mine", "url": receiver.url, "metadata": {"events": ["TODO_CREATED"]},
                   "connector": {"name": name, "config": {"label": "try"}}}),
        )
        .await;
    let event: Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("event.json")).unwrap()).unwrap();
    server.send_event(OPERATOR, event).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(String::from_utf8_lossy(&got[0].body), EXPECTED, "{name}");
}

#[tokio::test]
async fn a_rust_plugin_from_plugin_new_builds_runs_and_delivers() {
    let parent = tempfile::tempdir().unwrap();
    let project = new_project(parent.path(), "my-rust-hook", "rust");
    // The README's build, with a target folder kept between runs so the dependencies compile
    // once (the component's path follows it).
    let target = workspace().join("target/scaffold-rust");
    run(
        Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .current_dir(&project),
        "cargo build",
    );
    runs_and_delivers(&project, "my-rust-hook", &target.join("wasm32-wasip2/release/my_rust_hook.wasm"))
        .await;
}

#[tokio::test]
async fn a_javascript_plugin_from_plugin_new_builds_runs_and_delivers() {
    let parent = tempfile::tempdir().unwrap();
    let project = new_project(parent.path(), "my-js-hook", "js");
    run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefer-offline"])
            .current_dir(&project),
        "npm install",
    );
    run(Command::new("npm").args(["run", "build"]).current_dir(&project), "npm run build");
    runs_and_delivers(&project, "my-js-hook", &project.join("my-js-hook.wasm")).await;
}

#[tokio::test]
async fn a_python_plugin_from_plugin_new_builds_runs_and_delivers() {
    let parent = tempfile::tempdir().unwrap();
    let project = new_project(parent.path(), "my-py-hook", "python");
    // build.sh installs the pinned componentize-py into a venv; this one is kept between runs.
    let venv = workspace().join("target/scaffold-venv");
    run(
        Command::new(project.join("build.sh")).env("WASMHOOK_PY_VENV", venv).current_dir(&project),
        "build.sh",
    );
    runs_and_delivers(&project, "my-py-hook", &project.join("my-py-hook.wasm")).await;
}
