//! Shared fixtures: runtimes, components, sample events, the binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmhook::event::IncomingEvent;
use wasmhook::payload::standard_payload;
use wasmhook::runtime::{Limits, Plugin, Policy, Runtime, RuntimeConfig};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ is in the workspace").to_owned()
}

/// A sample event file shipped for plugin authors.
pub fn sample_event(name: &str) -> PathBuf {
    workspace().join("plugins/samples").join(name)
}

pub fn runtime() -> Runtime {
    runtime_with(RuntimeConfig::default())
}

pub fn runtime_with(config: RuntimeConfig) -> Runtime {
    Runtime::new(config).expect("runtime starts")
}

/// Limits small enough to make the timeouts quick to hit.
pub fn quick_limits() -> Limits {
    Limits {
        cpu_time: std::time::Duration::from_millis(100),
        wall_time: std::time::Duration::from_millis(500),
        ..Limits::default()
    }
}

pub fn hostile_bytes() -> Arc<[u8]> {
    std::fs::read(wasmhook_test_components::HOSTILE).expect("hostile component was built").into()
}

pub async fn hostile(runtime: &Runtime, policy: Policy) -> Arc<Plugin> {
    runtime.load(hostile_bytes(), policy).await.expect("hostile component loads")
}

pub fn mode(mode: &str) -> String {
    serde_json::json!({ "mode": mode }).to_string()
}

/// The standard payload of `plugins/samples/todo-created.json` for a typical webhook.
pub fn todo_payload() -> String {
    let text = std::fs::read_to_string(sample_event("todo-created.json")).expect("sample exists");
    let incoming: IncomingEvent = serde_json::from_str(&text).expect("sample parses");
    let now = time::OffsetDateTime::now_utc();
    let event = incoming.accept(now);
    let webhook = wasmhook::tryout::sample_webhook(&event.event, &event.project_id, None, now);
    standard_payload(&event, &webhook)
}

/// The `wasmhook` binary built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_wasmhook")
}

/// A shared compile cache for tests that run the binary: compiling once is enough.
pub fn shared_cache_dir() -> PathBuf {
    workspace().join("target/test-plugin-cache")
}

/// The real server in-process on 127.0.0.1:0, with its own data directory.
pub struct TestServer {
    pub base: String,
    pub state: wasmhook::AppState,
    pub client: reqwest::Client,
    _data: tempfile::TempDir,
}

pub const OPERATOR: &str = "test-operator-token";

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut wasmhook::Config)) -> TestServer {
        let data = tempfile::tempdir().unwrap();
        let mut config = wasmhook::Config {
            data_dir: data.path().to_owned(),
            cache_dir: shared_cache_dir(),
            operator_tokens: vec![OPERATOR.into()],
            allow_private_destinations: true,
            ..Default::default()
        };
        adjust(&mut config);
        let state = wasmhook::AppState::open(config).await.expect("server state opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = wasmhook::api::router(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        TestServer { base, state, client: reqwest::Client::new(), _data: data }
    }

    /// Sends a request with a bearer token and returns the status and JSON body.
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// Mints a token through the API and returns its text.
    pub async fn token(&self, user: &str, companies: &[&str], scope: &str) -> String {
        let body = if companies.is_empty() {
            serde_json::json!({"userId": user, "allCompanies": true, "scope": scope})
        } else {
            serde_json::json!({"userId": user, "companies": companies, "scope": scope})
        };
        let (status, created) = self.call(OPERATOR, reqwest::Method::POST, "/v1/tokens", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().unwrap().to_owned()
    }
}
