//! `wasmhook serve` as a user starts it: the real binary, a real port, SIGTERM to stop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{binary, shared_cache_dir, storage_args, upload};

pub(crate) struct Server {
    child: Child,
    pub(crate) address: String,
    /// Everything the server logged, collected once it stops.
    log: std::sync::mpsc::Receiver<String>,
}

/// Starts the binary on a free port and waits for its "serving" line.
fn start(data_dir: &std::path::Path, cache_dir: &std::path::Path) -> Server {
    start_with(data_dir, cache_dir, &[])
}

pub(crate) fn start_with(data_dir: &std::path::Path, cache_dir: &std::path::Path, args: &[&str]) -> Server {
    let mut command = Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--cache-dir")
        .arg(cache_dir)
        .args(storage_args(data_dir))
        .args(args);
    start_command(command)
}

/// Starts `wasmhook serve` as `command` says (it must listen on 127.0.0.1:0).
pub(crate) fn start_command(mut command: Command) -> Server {
    let mut child = command
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasmhook starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let (send, log) = std::sync::mpsc::channel();
    let mut seen = Vec::new();
    let address = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the server stopped before serving: {}", seen.join("\n"));
        };
        seen.push(line.clone());
        send.send(line.clone()).unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    Server { child, address, log }
}

/// Runs `wasmhook serve` expecting it to refuse to start: returns what it printed.
pub(crate) fn refused_start(data_dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(storage_args(data_dir))
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasmhook runs");
    // A server that starts anyway would never exit: stop waiting after a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut printed).unwrap();
    assert!(!status.success(), "it started: {printed}");
    assert!(!printed.contains("panicked"), "a refusal, not a panic: {printed}");
    printed
}

impl Drop for Server {
    /// A failed test must not leave its server running; after a clean stop this does nothing.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `kill -9`: no chance to finish or flush anything.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        self.stop_with_log().0
    }

    pub(crate) fn stop_with_log(&mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        (status, self.log.iter().collect::<Vec<_>>().join("\n"))
    }

    /// Uploads a connector component as `name`; the answer's status.
    pub(crate) async fn upload_connector(&self, token: &str, name: &str, component: Vec<u8>) -> u16 {
        let base = format!("http://{}", self.address);
        upload(&reqwest::Client::new(), &base, token, name, component).await.0
    }

    pub(crate) async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("http://{}{path}", self.address))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn serves_health_with_builtins_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let server = start(data.path(), cache.path());
    let health: serde_json::Value =
        reqwest::get(format!("http://{}/healthz", server.address)).await.unwrap().json().await.unwrap();
    assert_eq!(
        health,
        json!({"status": "ok", "connectors": ["crm", "json", "pabbly", "slack", "zapier"], "queueDepth": 0})
    );
    // The host turns transparent huge pages off for itself (see BENCHMARKS.md).
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    assert!(status.lines().any(|line| line.split_whitespace().eq(["THP_enabled:", "0"])), "{status}");
    assert!(server.stop().success());
    let embedded = data.path().join("db").is_dir();
    assert_eq!(embedded, !crate::support::on_postgres(), "the embedded database lives in the data directory");

    // A restart uses the compiled connectors from the cache instead of compiling again.
    let cached: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 5, "one per built-in connector");
    let modified = |path: &std::path::PathBuf| std::fs::metadata(path).unwrap().modified().unwrap();
    let written: Vec<_> = cached.iter().map(modified).collect();
    let server = start(data.path(), cache.path());
    assert!(server.stop().success());
    assert_eq!(cached.iter().map(modified).collect::<Vec<_>>(), written);
}

#[tokio::test]
async fn webhooks_and_accepted_events_survive_a_restart_and_no_secret_is_logged() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--operator-token", "op", "--allow-private-destinations"];
    let mut server = start_with(data.path(), &shared_cache_dir(), &args);
    let hook = json!({"name": "kept", "url": "http://127.0.0.1:9/x", "metadata": {"events": ["TODO_CREATED"], "projectIds": []}});
    let (status, created) = server.call("op", Method::POST, "/v1/webhooks", Some(hook)).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let event = json!({"id": "e-restart", "event": "TODO_CREATED", "companyId": "c", "projectId": "p"});
    let (status, accepted) = server.call("op", Method::POST, "/v1/events", Some(event.clone())).await;
    assert_eq!(status, 202);
    let (stopped, log) = server.stop_with_log();
    assert!(stopped.success());
    assert!(!log.contains(&secret), "the secret appeared in the log");

    let mut server = start_with(data.path(), &shared_cache_dir(), &args);
    let (_, list) = server.call("op", Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"][0]["name"], "kept");
    let (status, again) = server.call("op", Method::POST, "/v1/events", Some(event)).await;
    assert_eq!(
        (status, again["deliveries"].clone()),
        (200, accepted["deliveries"].clone()),
        "dedupe survives too"
    );
    let (status, health) = server.call("op", Method::GET, "/healthz", None).await;
    assert_eq!((status, health["queueDepth"].clone()), (200, json!(1)));
    let (stopped, log) = server.stop_with_log();
    assert!(stopped.success());
    assert!(!log.contains(&secret));
}

#[tokio::test]
async fn without_a_configured_token_one_is_generated_into_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let mut server = start(data.path(), &shared_cache_dir());
    let path = data.path().join("operator-token");
    let token = std::fs::read_to_string(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let (status, _) = server.call(token.trim(), Method::GET, "/v1/tokens", None).await;
    assert_eq!(status, 200);
    let (_, log) = server.stop_with_log();
    assert!(
        log.contains("operator-token") && !log.contains(token.trim()),
        "the path is printed, not the token"
    );
}

#[tokio::test]
async fn operator_cli_mints_tokens_and_lists_webhooks_through_the_api() {
    let data = tempfile::tempdir().unwrap();
    let server = start_with(data.path(), &shared_cache_dir(), &["--operator-token", "op"]);
    let url = format!("http://{}", server.address);
    let cli = |args: &[&str]| Command::new(binary()).args(args).args(["--server", &url]).output().unwrap();

    let out = cli(&["token", "create", "--user", "ada", "--companies", "c1,c2", "--token", "op"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["companies"], json!({"only": ["c1", "c2"]}));
    assert_eq!(created["scope"], "user");
    let token = created["token"].as_str().unwrap();

    let out = cli(&["webhook", "list", "--json", "--token", token]);
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list, json!([]));

    let out = cli(&["token", "create", "--user", "ada", "--token", "op"]);
    assert_eq!(out.status.code(), Some(2), "companies are required");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--companies"));
    let out = cli(&["webhook", "list", "--token", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    assert!(server.stop().success());
}

/// `kill -9` in the middle of a stream of events, then a restart: every event that got a 202
/// reaches the receiver. At-least-once: duplicates are counted and reported, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_accepted_event() {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    let data = tempfile::tempdir().unwrap();
    let args =
        ["--operator-token", "op", "--allow-private-destinations", "--retry-schedule", "10ms,10ms,10ms,10ms"];
    let receiver = crate::support::Receiver::start().await;
    let mut server = start_with(data.path(), &shared_cache_dir(), &args);
    let hook = json!({"name": "sink", "url": receiver.url, "metadata": {"events": [], "projectIds": []}});
    let (status, _) = server.call("op", Method::POST, "/v1/webhooks", Some(hook)).await;
    assert_eq!(status, 201);

    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    // 8 concurrent senders, 400 events: the process is killed while they are sending.
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            let (address, accepted) = (server.address.clone(), accepted.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..50 {
                    let id = format!("s{sender}-{i}");
                    let event =
                        json!({"id": id, "event": "TODO_CREATED", "companyId": "c", "projectId": "p"});
                    let sent = client
                        .post(format!("http://{address}/v1/events"))
                        .bearer_auth("op")
                        .json(&event)
                        .send()
                        .await;
                    if matches!(sent, Ok(r) if r.status() == 202) {
                        accepted.lock().unwrap().insert(id);
                    }
                }
            })
        })
        .collect();
    receiver.wait_for(40).await;
    server.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.child.wait().unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let before_kill = accepted.lock().unwrap().len();

    let server = start_with(data.path(), &shared_cache_dir(), &args);
    for i in 0..50 {
        let event =
            json!({"id": format!("after-{i}"), "event": "TODO_CREATED", "companyId": "c", "projectId": "p"});
        let (status, _) = server.call("op", Method::POST, "/v1/events", Some(event)).await;
        assert_eq!(status, 202);
        accepted.lock().unwrap().insert(format!("after-{i}"));
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(before_kill >= 40, "the kill came while events were flowing ({before_kill} accepted before it)");

    let delivered = crate::support::eventually("every accepted event at the receiver", async || {
        let ids: Vec<String> = receiver
            .received()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_owned())
            .collect();
        let distinct: BTreeSet<String> = ids.iter().cloned().collect();
        accepted.is_subset(&distinct).then_some(ids)
    })
    .await;
    let distinct = delivered.iter().collect::<BTreeSet<_>>().len();
    eprintln!(
        "kill -9: {} events accepted ({before_kill} before the kill), {} requests delivered, {} duplicates",
        accepted.len(),
        delivered.len(),
        delivered.len() - distinct
    );
    assert!(server.stop().success());
}

/// SIGTERM while an attempt is in flight: the attempt finishes and is recorded before the
/// process exits, so nothing is sent twice after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_attempt_in_flight_finish() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--operator-token", "op", "--allow-private-destinations"];
    let receiver = crate::support::Receiver::start().await;
    receiver.delay(std::time::Duration::from_millis(700));
    let mut server = start_with(data.path(), &shared_cache_dir(), &args);
    let hook = json!({"name": "slow", "url": receiver.url, "metadata": {"events": [], "projectIds": []}});
    let (_, created) = server.call("op", Method::POST, "/v1/webhooks", Some(hook)).await;
    let event = json!({"id": "in-flight", "event": "TODO_CREATED", "companyId": "c", "projectId": "p"});
    let (status, _) = server.call("op", Method::POST, "/v1/events", Some(event)).await;
    assert_eq!(status, 202);
    receiver.wait_for(1).await;
    let (stopped, _) = tokio::task::block_in_place(|| server.stop_with_log());
    assert!(stopped.success());

    let server = start_with(data.path(), &shared_cache_dir(), &args);
    let path = format!("/v1/webhooks/{}/deliveries", created["id"].as_str().unwrap());
    let (_, log) = server.call("op", Method::GET, &path, None).await;
    assert_eq!(log["data"][0]["status"], "succeeded", "{log}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 1, "not sent again after the restart");
    assert!(server.stop().success());
}

#[tokio::test]
async fn uploaded_connectors_are_back_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--operator-token", "op"];
    let server = start_with(data.path(), &shared_cache_dir(), &args);
    let response = reqwest::Client::new()
        .put(format!("http://{}/v1/connectors/hostile", server.address))
        .bearer_auth("op")
        .body(crate::support::hostile_bytes().to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(server.stop().success());

    let server = start_with(data.path(), &shared_cache_dir(), &args);
    let (_, list) = server.call("op", Method::GET, "/v1/connectors", None).await;
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["crm", "hostile", "json", "pabbly", "slack", "zapier"]);
    assert!(server.stop().success());
}

#[tokio::test]
async fn operator_cli_manages_connectors() {
    let data = tempfile::tempdir().unwrap();
    let server = start_with(data.path(), &shared_cache_dir(), &["--operator-token", "op"]);
    let url = format!("http://{}", server.address);
    let cli = |args: &[&str]| {
        Command::new(binary()).args(args).args(["--server", &url, "--token", "op"]).output().unwrap()
    };
    let out = cli(&["connector", "add", "hostile", wasmhook_test_components::HOSTILE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let added = String::from_utf8(out.stdout).unwrap();
    assert!(added.starts_with("connector \"hostile\" installed: "), "{added}");
    // Not on a terminal: the upload says what it is doing in a line, not a spinner.
    assert!(String::from_utf8_lossy(&out.stderr).contains("the server compiles it"));

    let out = cli(&["connector", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 6, "five built-ins and hostile");

    let event = crate::support::sample_event("todo-created.json");
    let out = cli(&["connector", "preview", "json", "--event", event.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let preview: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(preview["requests"][0]["method"], "POST");

    let out = cli(&["connector", "add", "bad", event.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_component"));

    assert!(cli(&["connector", "remove", "hostile"]).status.success());
    let out = cli(&["connector", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 5, "the built-ins");
    assert!(server.stop().success());
}

/// The Zapier Platform app (`plugins/zapier/app`) through zapier-platform-core's own test
/// harness against this binary: subscribe, a live delivery, perform, sample lists, unsubscribe.
/// Its pinned npm packages are installed here when missing (never skipped).
#[tokio::test]
async fn the_zapier_platform_app_passes_its_harness_against_the_real_binary() {
    let app = crate::support::workspace().join("plugins/zapier/app");
    crate::support::npm_ci_unless_installed(&app, "zapier-platform-core");
    let data = tempfile::tempdir().unwrap();
    let args = ["--operator-token", "op", "--allow-private-destinations"];
    let mut server = start_with(data.path(), &shared_cache_dir(), &args);
    let (status, token) = server
        .call(
            "op",
            Method::POST,
            "/v1/tokens",
            Some(json!({"userId": "zap-user", "companies": ["company_zap"]})),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let output = Command::new("node")
        .arg("--test")
        .current_dir(&app)
        .env("WASMHOOK_URL", format!("http://{}", server.address))
        .env("WASMHOOK_TOKEN", token["token"].as_str().unwrap())
        .env("WASMHOOK_INGEST_TOKEN", "op")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(report.contains("# pass 5") && report.contains("# fail 0"), "{report}");
    let (status, _) = server.stop_with_log();
    assert!(status.success());
}

/// The web app in Debian's headless Chromium, driven by Playwright (`tests/web/`), against this
/// binary and two local receivers: sign in, create webhooks through the form, a test event in
/// the delivery log, a failing receiver's badge going UNHEALTHY then DISABLED, re-enable and
/// recover, the operators' connectors page, narrow screens, no console errors. It saves the
/// screenshots in `docs/screenshots/`. Chromium comes from `scripts/test` (Debian's package);
/// playwright-core is installed here when missing.
#[tokio::test]
async fn the_web_app_works_in_a_real_browser() {
    let web = crate::support::workspace().join("tests/web");
    crate::support::npm_ci_unless_installed(&web, "playwright-core");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: scripts/test installs Debian's chromium"
    );

    let data = tempfile::tempdir().unwrap();
    let args = ["--operator-token", "op", "--allow-private-destinations", "--retry-schedule", "1s,1s,1s,1s"];
    let mut server = start_with(data.path(), &shared_cache_dir(), &args);
    let (status, token) = server
        .call("op", Method::POST, "/v1/tokens", Some(json!({"userId": "ada", "companies": ["company_acme"]})))
        .await;
    assert_eq!(status, 201, "{token}");
    let receiver = crate::support::Receiver::start().await;
    let failing = crate::support::Receiver::start().await;
    failing.script(&[500; 5]);

    // tokio's Command: the receivers keep answering on this runtime while the browser runs.
    let output = tokio::process::Command::new("node")
        .arg("--test")
        .current_dir(&web)
        .env("WASMHOOK_URL", format!("http://{}", server.address))
        .env("WASMHOOK_TOKEN", token["token"].as_str().unwrap())
        .env("WASMHOOK_OPERATOR_TOKEN", "op")
        .env("RECEIVER_URL", &receiver.url)
        .env("FAILING_URL", &failing.url)
        .env("CHROMIUM", &chromium)
        .env("EXAMPLE_WASM", wasmhook_test_components::TITLE_FILTER_RUST)
        .env("SCREENSHOTS", crate::support::workspace().join("docs/screenshots"))
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(report.contains("# pass 5") && report.contains("# fail 0"), "{report}");
    assert!(server.stop_with_log().0.success());
}
