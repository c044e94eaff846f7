//! Shared fixtures: runtimes, components, sample events, the binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmhook::event::IncomingEvent;
use wasmhook::payload::standard_payload;
use wasmhook::runtime::{Limits, Plugin, Policy, Runtime, RuntimeConfig};
use wasmhook::webhook::{Subscription, Webhook, WebhookStatus};

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
    let webhook = Webhook {
        id: "wh_test".into(),
        name: "Test".into(),
        url: "https://example.com/hook".into(),
        status: WebhookStatus::Healthy,
        enabled: true,
        metadata: Subscription::default(),
        created_by_id: "user_ada".into(),
        created_at: now,
        updated_at: now,
    };
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
