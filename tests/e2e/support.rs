//! Shared fixtures: runtimes, components, sample events, the binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmhook::domain::event::IncomingEvent;
use wasmhook::domain::payload::standard_payload;
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

#[path = "../../host/src/store/postgres/testing.rs"]
mod pg_testing;

pub use pg_testing::TestDb;

/// Whether the suite runs against PostgreSQL (`WASMHOOK_TEST_BACKEND=postgres`; `scripts/test`
/// runs it once per backend) rather than the embedded database.
pub fn on_postgres() -> bool {
    std::env::var("WASMHOOK_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// The flags that put a `wasmhook serve` with this data directory on the backend under test:
/// on PostgreSQL, a database of its own, made once per directory and recorded in it — so a
/// server restarted on the same directory finds its data again.
pub fn storage_args(data_dir: &Path) -> Vec<String> {
    if !on_postgres() {
        return Vec::new();
    }
    let recorded = data_dir.join("test-database-url");
    let url = match std::fs::read_to_string(&recorded) {
        Ok(url) => url,
        Err(_) => {
            let url = TestDb::create_blocking().expect("a PostgreSQL server for the suite").keep();
            std::fs::create_dir_all(data_dir).unwrap();
            std::fs::write(&recorded, &url).unwrap();
            url
        }
    };
    vec!["--database".into(), url, "--migrate".into()]
}

/// The real server in-process on 127.0.0.1:0, with its own data directory (and database, on
/// PostgreSQL).
pub struct TestServer {
    pub base: String,
    pub state: wasmhook::AppState,
    pub client: reqwest::Client,
    _data: tempfile::TempDir,
    _database: Option<TestDb>,
}

pub const OPERATOR: &str = "test-operator-token";

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut wasmhook::Config)) -> TestServer {
        let data = tempfile::tempdir().unwrap();
        let database = match on_postgres() {
            true => Some(TestDb::create().await.expect("a PostgreSQL server for the suite")),
            false => None,
        };
        let mut config = wasmhook::Config {
            data_dir: data.path().to_owned(),
            database: database.as_ref().map(|db| db.url.clone()),
            migrate: true,
            cache_dir: shared_cache_dir(),
            operator_tokens: vec![OPERATOR.into()],
            allow_private_destinations: true,
            ..Default::default()
        };
        adjust(&mut config);
        let mut state = wasmhook::AppState::open(config).await.expect("server state opens");
        state.start_sources();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = wasmhook::api::router(state.clone());
        // Served as `wasmhook serve` serves it: bounded connections, graceful shutdown.
        let http = state.config.http.clone();
        tokio::spawn(wasmhook::http_server::run(listener, router, http, std::future::pending()));
        TestServer { base, state, client: reqwest::Client::new(), _data: data, _database: database }
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

    /// Uploads a component to `/v1/connectors/{name_and_query}` (e.g. `judge?live=false`):
    /// the status and the JSON answer (null when there is none).
    pub async fn upload(
        &self,
        token: &str,
        name_and_query: &str,
        component: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        upload(&self.client, &self.base, token, name_and_query, component).await
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

impl TestServer {
    /// A server that also delivers, retrying on `schedule` (e.g. "10ms,10ms").
    pub async fn delivering(schedule: &str) -> TestServer {
        let schedule = wasmhook::config::parse_schedule(schedule).unwrap();
        let server = TestServer::start_with(|c| c.retry_schedule = schedule).await;
        wasmhook::delivery::engine::spawn(server.state.engine_context());
        server
    }

    /// Creates a webhook as `token` and returns the API's answer (with its secret).
    pub async fn webhook(&self, token: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, created) = self.call(token, reqwest::Method::POST, "/v1/webhooks", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created
    }

    pub async fn send_event(&self, token: &str, event: serde_json::Value) -> serde_json::Value {
        let (status, accepted) = self.call(token, reqwest::Method::POST, "/v1/events", Some(event)).await;
        assert_eq!(status, 202, "{accepted}");
        accepted
    }
}

/// Polls `check` until it returns `Some`, for at most 10 seconds: waiting on something that
/// happens in the background, not measuring how long it takes.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

/// A real HTTP receiver on 127.0.0.1:0 that records every request and answers with the
/// scripted statuses in turn (then 200), optionally after a delay.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: std::sync::Arc<std::sync::Mutex<ReceiverState>>,
}

/// A scripted answer: status, headers, body.
type Scripted = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// The next answers (then 200 `ok`).
    script: std::collections::VecDeque<Scripted>,
    delay: std::time::Duration,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = std::sync::Arc::new(std::sync::Mutex::new(ReceiverState::default()));
        let app = Receiver::app(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inner }
    }

    /// The same receiver over HTTPS with a new self-signed certificate for `localhost`;
    /// returns it with that certificate in PEM, for a client that should trust it.
    pub async fn start_tls() -> (Receiver, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let pem = certified.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let inner = std::sync::Arc::new(std::sync::Mutex::new(ReceiverState::default()));
        let app = Receiver::app(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to serve.
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        (Receiver { url, inner }, pem)
    }

    /// Records each request and answers as scripted.
    fn app(state: std::sync::Arc<std::sync::Mutex<ReceiverState>>) -> axum::Router {
        axum::Router::new().fallback(move |request: axum::extract::Request| {
            let state = state.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec();
                let (answer, delay) = {
                    let mut s = state.lock().unwrap();
                    s.received.push(Received {
                        path: parts.uri.path().to_owned(),
                        headers: parts.headers,
                        body,
                        at: std::time::Instant::now(),
                    });
                    (s.script.pop_front().unwrap_or((200, vec![], "ok".into())), s.delay)
                };
                tokio::time::sleep(delay).await;
                let mut response = axum::response::Response::new(axum::body::Body::from(answer.2));
                *response.status_mut() = axum::http::StatusCode::from_u16(answer.0).unwrap();
                for (name, value) in answer.1 {
                    response.headers_mut().insert(
                        axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        axum::http::HeaderValue::from_str(&value).unwrap(),
                    );
                }
                response
            }
        })
    }

    /// Answers the next requests with these statuses, in order.
    pub fn script(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().script.extend(statuses.iter().map(|s| (*s, vec![], "ok".into())));
    }

    pub fn script_with_headers(&self, status: u16, headers: &[(&str, &str)]) {
        self.script_answer(status, headers, "ok");
    }

    /// Answers the next request with this status, these headers and this body.
    pub fn script_answer(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        self.inner.lock().unwrap().script.push_back((status, headers, body.to_owned()));
    }

    pub fn delay(&self, delay: std::time::Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived, and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} requests at the receiver"), async || {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

/// Runs `npm ci` in `dir` unless `node_modules/<package>` is there: the pinned JavaScript
/// tools a test needs, installed on a fresh machine instead of skipping the test.
pub fn npm_ci_unless_installed(dir: &std::path::Path, package: &str) {
    if dir.join("node_modules").join(package).is_dir() {
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

/// A Python virtual environment at `target/<name>` with the pinned packages of `requirements`
/// installed: made the first time a test needs it (on a fresh machine too) instead of skipping
/// the test. `module` is one the requirements provide: once it imports, the venv is ready.
/// Returns the venv's `bin` directory.
pub fn python_venv(name: &str, requirements: &Path, module: &str) -> PathBuf {
    let venv = workspace().join("target").join(name);
    let python = venv.join("bin/python");
    let ready = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        let status = std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap();
        assert!(status.success(), "python3 -m venv {} failed", venv.display());
        let status = std::process::Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements)
            .status()
            .unwrap();
        assert!(status.success(), "installing {} failed", requirements.display());
    }
    venv.join("bin")
}

/// A test broker's URL: `WASMHOOK_TEST_<NAME>_URL` when set (`scripts/test` sets them when it
/// starts throwaway brokers), else the broker machines of this project's kind run on its
/// standard port.
pub fn broker_url(name: &str) -> String {
    let default = match name {
        "AMQP" => "amqp://guest:guest@127.0.0.1:5672/%2f",
        "NATS" => "nats://127.0.0.1:4222",
        "REDIS" => "redis://127.0.0.1:6379",
        "MQTT" => "mqtt://127.0.0.1:1883",
        other => panic!("no test broker {other}"),
    };
    std::env::var(format!("WASMHOOK_TEST_{name}_URL")).unwrap_or_else(|_| default.to_owned())
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

/// Checks both signatures of a message as a receiver would: `X-Wasmhook-Signature` (hex HMAC
/// keyed with the secret's text) and Standard Webhooks' `webhook-signature` (over
/// "id.timestamp.body", keyed with the decoded secret). Header names in lowercase.
pub fn assert_signed(secret: &str, headers: &std::collections::HashMap<String, String>, body: &[u8]) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::Mac as _;
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    assert_eq!(headers["x-wasmhook-signature"], hex::encode(hmac(secret.as_bytes(), body)));
    let (id, timestamp) = (&headers["webhook-id"], &headers["webhook-timestamp"]);
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    assert_eq!(headers["webhook-signature"], format!("v1,{}", STANDARD.encode(hmac(&key, &signed))));
    assert!(id.starts_with("msg_"), "{id}");
}

/// Uploads a component to the server at `base` (`http://host:port`) as
/// `/v1/connectors/{name_and_query}`: the status and the JSON answer (null when there is none).
pub async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name_and_query: &str,
    component: Vec<u8>,
) -> (u16, serde_json::Value) {
    let response = client
        .put(format!("{base}/v1/connectors/{name_and_query}"))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(component)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}
