//! The plugin runtime against real components: a good one, and one that misbehaves in every
//! way a plugin can. Each misbehaviour ends that invocation with its typed error, and the
//! next invocation on the same runtime works.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use wasmhook::builtins;
use wasmhook::runtime::{LogLevel, PluginError, PluginFailure, Policy, Runtime, RuntimeConfig, TimeoutKind};

use crate::support::{hostile, mode, quick_limits, runtime, runtime_with, todo_payload};

fn quick_runtime() -> Runtime {
    runtime_with(RuntimeConfig { limits: quick_limits(), ..RuntimeConfig::default() })
}

/// Runs `bad` on the hostile plugin, returns its error, and checks that the runtime still
/// serves the same owner right after — on a new instance (its invocation count restarts).
async fn misbehave(runtime: &Runtime, bad: &str) -> PluginError {
    let plugin = hostile(runtime, Policy::Pooled).await;
    let warm = runtime.invoke(&plugin, "owner", "{}", &mode("count"), None).await;
    assert_eq!(warm.result.unwrap()[0].body, "1");

    let failed = runtime.invoke(&plugin, "owner", "{}", &mode(bad), None).await;
    let error = failed.result.expect_err("misbehaviour must fail the invocation");

    let next = runtime.invoke(&plugin, "owner", "{}", &mode("count"), None).await;
    let body = &next.result.expect("the next invocation works")[0].body;
    assert_eq!(body, "1", "after {bad}, a new instance serves the next call");
    error
}

#[tokio::test]
async fn json_connector_sends_the_standard_payload_unchanged() {
    let runtime = runtime();
    let json = runtime.load(builtins::component("json").unwrap().into(), Policy::Pooled).await.unwrap();
    assert_eq!(json.info().name, "json");
    assert_eq!(json.info().config_schema["type"], "object");

    let payload = todo_payload();
    let invocation = runtime.invoke(&json, "user_ada", &payload, "{}", None).await;
    let requests = invocation.result.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.body, payload, "the body is the payload, byte for byte");
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, None, "sent to the webhook's own URL");
    assert_eq!(request.headers, [("content-type".to_owned(), "application/json".to_owned())]);
    assert!(invocation.log.is_empty());
}

#[tokio::test]
async fn infinite_loop_is_stopped_at_the_cpu_deadline() {
    let error = misbehave(&quick_runtime(), "loop").await;
    assert!(matches!(error, PluginError::Timeout(TimeoutKind::Cpu(_))), "{error:?}");
    assert_eq!(error.code(), "timeout");
}

#[tokio::test]
async fn blocking_sleep_is_stopped_by_the_wall_clock() {
    let error = misbehave(&quick_runtime(), "sleep").await;
    assert!(matches!(error, PluginError::Timeout(TimeoutKind::WallClock(_))), "{error:?}");
    assert!(error.to_string().contains("blocked in a WASI call"), "{error}");
}

#[tokio::test]
async fn unbounded_allocation_is_an_out_of_memory_error() {
    // Time enough that only memory can stop it, however busy the machine is.
    let limits = wasmhook::runtime::Limits {
        cpu_time: std::time::Duration::from_secs(10),
        wall_time: std::time::Duration::from_secs(20),
        ..Default::default()
    };
    let runtime = runtime_with(RuntimeConfig { limits, ..RuntimeConfig::default() });
    let error = misbehave(&runtime, "alloc").await;
    assert_eq!(error, PluginError::OutOfMemory { limit_mib: 64 });
}

#[tokio::test]
async fn a_panic_is_a_trap_with_its_message_in_the_log() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Policy::Pooled).await;
    let invocation = runtime.invoke(&plugin, "owner", "{}", &mode("trap"), None).await;
    let error = invocation.result.unwrap_err();
    assert!(matches!(&error, PluginError::Trap(m) if m.contains("panicked")), "{error:?}");
    assert!(
        invocation.log.iter().any(|l| l.level == LogLevel::Stderr && l.message.contains("deliberate panic")),
        "{:?}",
        invocation.log
    );
    misbehave(&runtime, "trap").await;
}

#[tokio::test]
async fn exit_is_an_error_not_an_exit() {
    assert_eq!(misbehave(&runtime(), "exit").await, PluginError::Exit(1));
}

#[tokio::test]
async fn unbounded_recursion_is_a_stack_overflow_trap() {
    // Rust's frames live on its shadow stack in linear memory: it overflows out of bounds.
    let error = misbehave(&runtime(), "recurse").await;
    assert!(matches!(&error, PluginError::Trap(m) if m.contains("unbounded recursion")), "{error:?}");
}

#[tokio::test]
async fn invalid_output_is_refused() {
    let error = misbehave(&runtime(), "invalid").await;
    assert!(matches!(&error, PluginError::BadOutput(m) if m.contains("\"bad header\"")), "{error:?}");
    let error = misbehave(&runtime(), "forbidden-header").await;
    assert!(matches!(&error, PluginError::BadOutput(m) if m.contains("set by the host")), "{error:?}");
}

#[tokio::test]
async fn output_over_the_cap_is_stopped_while_copying() {
    let error = misbehave(&runtime(), "big").await;
    assert!(matches!(&error, PluginError::BadOutput(m) if m.contains("stopped while copying")), "{error:?}");
}

/// 2,000 bodies aliasing one 64 KiB buffer would be 125 MiB once copied into the host.
#[tokio::test]
async fn aliased_bodies_do_not_multiply_in_host_memory() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Policy::Pooled).await;
    runtime.invoke(&plugin, "owner", "{}", &mode("count"), None).await.result.unwrap();
    let before = resident_kib("VmRSS");

    let error = runtime.invoke(&plugin, "owner", "{}", &mode("alias"), None).await.result.unwrap_err();
    assert!(matches!(&error, PluginError::BadOutput(m) if m.contains("stopped while copying")), "{error:?}");

    let peak_growth_mib = (resident_kib("VmHWM").saturating_sub(before)) / 1024;
    assert!(peak_growth_mib < 64, "host memory peaked {peak_growth_mib} MiB above where it was");
    runtime.invoke(&plugin, "owner", "{}", &mode("count"), None).await.result.unwrap();
}

/// A field of /proc/self/status, in KiB.
fn resident_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("linux /proc");
    let line = status.lines().find(|l| l.starts_with(field)).expect("field present");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
}

#[tokio::test]
async fn log_and_stdout_floods_are_capped() {
    for flood in ["flood-log", "flood-stdout"] {
        let runtime = runtime();
        let plugin = hostile(&runtime, Policy::Pooled).await;
        let invocation = runtime.invoke(&plugin, "owner", "{}", &mode(flood), None).await;
        let error = invocation.result.unwrap_err();
        assert!(matches!(error, PluginError::LogLimit(_)), "{flood}: {error:?}");
        let bytes: usize = invocation.log.iter().map(|l| l.message.len()).sum();
        assert!(bytes <= runtime.limits().log_bytes, "{flood}: kept {bytes} bytes of log");
        assert!(invocation.log.len() <= runtime.limits().log_lines);
        misbehave(&runtime, flood).await;
    }
}

#[tokio::test]
async fn log_calls_and_stdio_are_captured_in_order() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Policy::Pooled).await;
    let invocation = runtime.invoke(&plugin, "owner", "{}", &mode("log"), None).await;
    assert_eq!(invocation.result.unwrap(), [], "no requests: filtered");
    let lines: Vec<_> = invocation.log.iter().map(|l| (l.level, l.message.as_str())).collect();
    assert_eq!(
        lines,
        [
            (LogLevel::Info, "an info line"),
            (LogLevel::Warn, "a warning"),
            (LogLevel::Stdout, "from stdout"),
            (LogLevel::Stderr, "from stderr"),
        ]
    );
    let again = runtime.invoke(&plugin, "owner", "{}", &mode("count"), None).await;
    assert!(again.log.is_empty(), "a reused instance starts with an empty log");
}

#[tokio::test]
async fn the_sandbox_grants_nothing() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Policy::Fresh).await;
    let invocation = runtime.invoke(&plugin, "owner", "{}", &mode("sandbox"), None).await;
    let report: Value = serde_json::from_str(&invocation.result.unwrap()[0].body).unwrap();
    assert_eq!(report["env"], serde_json::json!([]), "{report}");
    assert_eq!(report["args"], serde_json::json!([]), "{report}");
    for probe in ["file", "dir", "tcp", "udp", "dns"] {
        assert_eq!(report[probe], false, "{probe} must be refused: {report}");
    }
}

#[tokio::test]
async fn the_plugins_own_error_is_reported_and_keeps_the_instance() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Policy::Pooled).await;
    runtime.invoke(&plugin, "owner", "{}", &mode("count"), None).await.result.unwrap();
    let error = runtime.invoke(&plugin, "owner", "{}", &mode("no-such-mode"), None).await.result.unwrap_err();
    assert!(
        matches!(&error, PluginError::Plugin(PluginFailure::InvalidConfig(m)) if m.contains("no-such-mode")),
        "{error:?}"
    );
    assert_eq!(error.code(), "invalid_config");
    let next = runtime.invoke(&plugin, "owner", "{}", &mode("count"), None).await.result.unwrap();
    assert_eq!(next[0].body, "3", "an orderly plugin error does not cost the instance");
}

#[tokio::test]
async fn pooled_state_never_crosses_owners_and_fresh_always_starts_at_zero() {
    let runtime = runtime();
    let pooled = hostile(&runtime, Policy::Pooled).await;
    let count = |owner: &'static str| {
        let (runtime, plugin) = (runtime.clone(), pooled.clone());
        async move {
            runtime.invoke(&plugin, owner, "{}", &mode("count"), None).await.result.unwrap()[0].body.clone()
        }
    };
    assert_eq!(count("alice").await, "1");
    assert_eq!(count("alice").await, "2");
    assert_eq!(count("bob").await, "1", "bob never gets alice's instance");
    assert_eq!(count("alice").await, "3");
    assert_eq!(count("bob").await, "2");

    let fresh = hostile(&runtime, Policy::Fresh).await;
    for _ in 0..3 {
        let body = runtime.invoke(&fresh, "alice", "{}", &mode("count"), None).await.result.unwrap();
        assert_eq!(body[0].body, "1");
    }
}

#[tokio::test]
async fn pooled_instances_retire_after_their_uses_and_idle_ones_are_capped() {
    let runtime = runtime_with(RuntimeConfig {
        max_uses_per_instance: 2,
        max_idle_instances: 1,
        ..RuntimeConfig::default()
    });
    let plugin = hostile(&runtime, Policy::Pooled).await;
    let mut bodies = Vec::new();
    for _ in 0..5 {
        bodies.push(
            runtime.invoke(&plugin, "alice", "{}", &mode("count"), None).await.result.unwrap()[0]
                .body
                .clone(),
        );
    }
    assert_eq!(bodies, ["1", "2", "1", "2", "1"]);

    runtime.invoke(&plugin, "bob", "{}", &mode("count"), None).await.result.unwrap();
    assert_eq!(runtime.idle_instances(), 1, "bob's instance pushed out alice's");
    let alice = runtime.invoke(&plugin, "alice", "{}", &mode("count"), None).await.result.unwrap();
    assert_eq!(alice[0].body, "1", "alice's evicted instance is gone");
}

/// On a single-threaded executor, a plugin computing for its whole CPU budget must still
/// let other tasks run: it yields at every epoch tick.
#[tokio::test(flavor = "current_thread")]
async fn a_busy_plugin_does_not_stall_the_executor() {
    let runtime = quick_runtime();
    let plugin = hostile(&runtime, Policy::Pooled).await;
    let ticks = Arc::new(AtomicU64::new(0));
    let counter = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::Relaxed);
    let error = runtime.invoke(&plugin, "owner", "{}", &mode("loop"), None).await.result.unwrap_err();
    let during = ticks.load(Ordering::Relaxed) - before;
    ticker.abort();
    assert!(matches!(error, PluginError::Timeout(TimeoutKind::Cpu(_))));
    // A plugin that held the thread would let the ticker run 0 times: all in one poll.
    assert!(during >= 2, "other tasks ran only {during} times while the plugin computed");
}

#[tokio::test]
async fn uploads_that_are_not_connector_components_are_refused() {
    let runtime = runtime();
    // A component importing `wasi:http/outgoing-handler@0.2.0` (an instance exporting one
    // function, `handle: func()`), as componentize-js builds one without `-d http fetch-event`.
    let wants_http: &[u8] = b"\0asm\x0d\0\x01\0\
        \x07\x13\x01\x42\x02\x01\x40\x00\x01\x00\x04\x00\x06handle\x01\x00\
        \x0a\x25\x01\x00\x20wasi:http/outgoing-handler@0.2.0\x05\x00";
    let cases: [(&str, &[u8], &str); 4] = [
        ("garbage", b"definitely not wasm", "not a WebAssembly file"),
        ("core module", b"\0asm\x01\0\0\0", "core WebAssembly module"),
        ("component of another world", b"\0asm\x0d\0\x01\0", "does not implement the world"),
        ("component that imports wasi:http", wants_http, "Pass `-d http fetch-event`"),
    ];
    for (what, bytes, expected) in cases {
        let error = runtime.load(bytes.into(), Policy::Pooled).await.unwrap_err();
        assert!(
            matches!(&error, PluginError::InvalidComponent(m) if m.contains(expected)),
            "{what}: {error:?}"
        );
        assert_eq!(error.code(), "invalid_component");
    }
}

#[tokio::test]
async fn compiled_components_are_cached_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { cache_dir: Some(dir.path().to_owned()), ..RuntimeConfig::default() };
    let bytes = crate::support::hostile_bytes();

    runtime_with(config.clone()).load(bytes.clone(), Policy::Pooled).await.unwrap();
    let entries = cache_entries(dir.path());
    assert_eq!(entries.len(), 1, "one precompiled file: {entries:?}");
    let written = std::fs::metadata(&entries[0]).unwrap().modified().unwrap();

    // A new runtime (a restart) loads it from the cache instead of writing it again.
    let plugin = runtime_with(config.clone()).load(bytes.clone(), Policy::Pooled).await.unwrap();
    assert_eq!(std::fs::metadata(&entries[0]).unwrap().modified().unwrap(), written);
    assert_eq!(plugin.info().name, "hostile");

    // A damaged entry is recompiled and replaced, not fatal. (Entries are memory-mapped while
    // in use and only ever replaced by rename, so drop the loaded one before damaging it.)
    drop(plugin);
    std::fs::write(&entries[0], b"damaged").unwrap();
    let runtime = runtime_with(config);
    let plugin = runtime.load(bytes, Policy::Pooled).await.unwrap();
    runtime.invoke(&plugin, "owner", "{}", &mode("count"), None).await.result.unwrap();
    assert!(std::fs::metadata(&entries[0]).unwrap().len() > 1000);
}

fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

#[tokio::test]
async fn a_refused_upload_leaves_nothing_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let runtime =
        runtime_with(RuntimeConfig { cache_dir: Some(dir.path().to_owned()), ..RuntimeConfig::default() });
    // An empty component compiles, then fails to be a connector.
    let error = runtime.load(b"\0asm\x0d\0\x01\0".as_slice().into(), Policy::Pooled).await.unwrap_err();
    assert_eq!(error.code(), "invalid_component");
    assert!(cache_entries(dir.path()).is_empty(), "nothing is stored: {:?}", cache_entries(dir.path()));
}

#[tokio::test]
async fn a_huge_random_request_is_refused_at_once() {
    let error = misbehave(&quick_runtime(), "random").await;
    assert!(matches!(&error, PluginError::Trap(m) if m.contains("exceeds")), "{error:?}");
}

#[tokio::test]
async fn a_resource_flood_is_a_typed_limit_error_without_a_backtrace() {
    let error = misbehave(&quick_runtime(), "resources").await;
    assert_eq!(error.code(), "resource_limit", "{error:?}");
    assert!(!error.to_string().contains("wasm backtrace"), "{error}");
}

#[tokio::test]
async fn a_plugins_huge_error_message_is_capped() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Policy::Pooled).await;
    let error = runtime.invoke(&plugin, "owner", "{}", &mode("long-error"), None).await.result.unwrap_err();
    let PluginError::Plugin(PluginFailure::Failed(message)) = &error else { panic!("{error:?}") };
    assert!(message.len() <= wasmhook::runtime::MAX_PLUGIN_TEXT + 64, "{} bytes kept", message.len());
    assert!(message.ends_with("more bytes not kept)"));
}

#[tokio::test]
async fn a_full_instance_pool_is_the_hosts_back_pressure_not_the_plugins_fault() {
    let runtime = runtime_with(RuntimeConfig {
        limits: quick_limits(),
        max_instances: 2,
        max_idle_instances: 0,
        ..RuntimeConfig::default()
    });
    let plugin = hostile(&runtime, Policy::Pooled).await;
    // Two sleepers (different owners) hold both instance slots; a third owner finds none.
    let sleepers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|owner| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            tokio::spawn(async move { runtime.invoke(&plugin, owner, "{}", &mode("sleep"), None).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let third = runtime.invoke(&plugin, "c", "{}", &mode("count"), None).await;
    assert_eq!(third.result.unwrap_err().code(), "host_busy");
    for sleeper in sleepers {
        sleeper.await.unwrap();
    }
    // Room again: the same call works, and being busy cost the owner no strike.
    assert!(runtime.invoke(&plugin, "c", "{}", &mode("count"), None).await.result.is_ok());
}

#[tokio::test]
async fn an_owner_whose_plugin_keeps_hitting_limits_is_backed_off_and_others_are_not() {
    let runtime = quick_runtime();
    let plugin = hostile(&runtime, Policy::Pooled).await;
    for _ in 0..3 {
        let error = runtime.invoke(&plugin, "looper", "{}", &mode("loop"), None).await.result.unwrap_err();
        assert_eq!(error.code(), "timeout");
    }
    let backed_off = runtime.invoke(&plugin, "looper", "{}", &mode("count"), None).await.result.unwrap_err();
    assert!(matches!(backed_off, PluginError::BackedOff { strikes: 3, .. }), "{backed_off:?}");
    let other = runtime.invoke(&plugin, "someone-else", "{}", &mode("count"), None).await;
    assert_eq!(other.result.unwrap()[0].body, "1", "another owner of the same plugin is not affected");
}

#[tokio::test]
async fn previews_have_bounded_slots_per_caller() {
    let runtime = quick_runtime();
    let plugin = hostile(&runtime, Policy::Pooled).await;
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            tokio::spawn(async move { runtime.preview(&plugin, "eve", "{}", &mode("sleep")).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let third = runtime.preview(&plugin, "eve", "{}", &mode("count")).await;
    assert!(matches!(&third.result, Err(PluginError::HostBusy(m)) if m.contains("one caller")), "{third:?}");
    // Deliveries do not wait on previews' slots.
    assert!(runtime.invoke(&plugin, "eve", "{}", &mode("count"), None).await.result.is_ok());
    for sleeper in sleepers {
        sleeper.await.unwrap();
    }
}

#[tokio::test]
async fn idle_instances_are_bounded_in_bytes_and_given_back_when_unused() {
    let runtime = runtime_with(RuntimeConfig {
        max_idle_bytes: 100 << 20,
        idle_ttl: std::time::Duration::from_millis(300),
        ..RuntimeConfig::default()
    });
    let plugin = hostile(&runtime, Policy::Pooled).await;
    for owner in ["a", "b", "c", "d", "e", "f"] {
        let hoarded = runtime.invoke(&plugin, owner, "{}", &mode("hoard"), None).await;
        assert_eq!(hoarded.result.unwrap()[0].body, (60 << 20).to_string());
    }
    assert_eq!(runtime.idle_instances(), 1, "six instances holding 60 MiB each, 100 MiB allowed");
    assert!(runtime.idle_bytes() <= 100 << 20);
    crate::support::eventually("idle instances expire", async || {
        (runtime.idle_instances() == 0).then_some(())
    })
    .await;
}
