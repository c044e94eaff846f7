//! Per-invocation cost of the plugin runtime against bare wasmtime, on the same engine,
//! the same component (the built-in `json` connector) and the same ~2 KB payload.
//!
//! - `pooled`: `Runtime::invoke` on a reused instance vs. bare: one store and instance,
//!   `call_transform` again and again.
//! - `fresh`: `Runtime::invoke` with a new instance each time vs. bare: new store,
//!   instantiate from an `InstancePre`, call.
//!
//! - languages: the title-filter example in Rust, JavaScript (componentize-js and QuickJS)
//!   and Python, each built with its own build command: component size, first load (compile
//!   and describe), load from the on-disk cache, and `Runtime::invoke` per event under both
//!   policies, on the same ~2 KB payload (a matching title).
//!
//! Run: `cargo bench -p wasmhook --bench runtime`. Prints medians and the host/bare ratios.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmhook::builtins;
use wasmhook::runtime::{Policy, Runtime, RuntimeConfig};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bare wasmtime's own bindings, as an embedder without wasmhook would write them.
mod bare {
    wasmtime::component::bindgen!({ path: "../wit", world: "connector" });
}

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bare::wasmhook::plugin::types::Host for BareState {}

impl bare::wasmhook::plugin::host::Host for BareState {
    fn log(&mut self, _level: bare::wasmhook::plugin::host::LogLevel, _message: String) {}
}

/// The transform measured never keeps state: the import only has to be there.
impl bare::wasmhook::plugin::state::Host for BareState {
    fn get(&mut self, _key: String) -> Result<Option<String>, StateError> {
        Ok(None)
    }

    fn set(&mut self, _key: String, _value: String) -> Result<(), StateError> {
        Err(StateError::Unavailable("no state in this benchmark".into()))
    }

    fn delete(&mut self, _key: String) -> Result<(), StateError> {
        Ok(())
    }

    fn list(&mut self, _prefix: String) -> Result<Vec<String>, StateError> {
        Ok(Vec::new())
    }
}

use bare::wasmhook::plugin::state::StateError;

fn bare_store(engine: &wasmtime::Engine) -> Store<BareState> {
    let mut store =
        Store::new(engine, BareState { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

const BATCHES: usize = 21;

/// Median time per call over batches of `per_batch` calls (after one warm-up batch).
fn measure(per_batch: u32, mut call: impl FnMut()) -> Duration {
    median((0..=BATCHES).map(|_| {
        let start = Instant::now();
        for _ in 0..per_batch {
            call();
        }
        start.elapsed() / per_batch
    }))
}

/// The same for an async call, awaited from inside the executor as the host's own tasks do.
fn measure_async<F: std::future::Future<Output = ()>>(
    rt: &tokio::runtime::Runtime,
    per_batch: u32,
    mut call: impl FnMut() -> F,
) -> Duration {
    rt.block_on(async {
        let mut samples = Vec::new();
        for _ in 0..=BATCHES {
            let start = Instant::now();
            for _ in 0..per_batch {
                call().await;
            }
            samples.push(start.elapsed() / per_batch);
        }
        median(samples.into_iter())
    })
}

fn median(samples: impl Iterator<Item = Duration>) -> Duration {
    let mut samples: Vec<Duration> = samples.skip(1).collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn payload() -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../plugins/samples/todo-created.json")).unwrap();
    event["currentValue"]["text"] = "Cover pricing, availability and the migration guide. ".repeat(20).into();
    let incoming: wasmhook::domain::event::IncomingEvent = serde_json::from_value(event).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let event = incoming.accept(now);
    let webhook = wasmhook::tryout::sample_webhook(&event.event, &event.project_id, None, now);
    wasmhook::domain::payload::standard_payload(&event, &webhook)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let bytes: Arc<[u8]> = builtins::component("json").unwrap().into();
    let pooled = rt.block_on(runtime.load(bytes.clone(), Policy::Pooled)).unwrap();
    let fresh = rt.block_on(runtime.load(bytes.clone(), Policy::Fresh)).unwrap();
    let payload = payload();
    println!("payload: {} bytes; component: json ({} bytes)", payload.len(), bytes.len());

    let engine = runtime.engine().clone();
    let component = Component::new(&engine, &bytes).unwrap();
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    bare::Connector::add_to_linker::<_, HasSelf<BareState>>(&mut linker, |s| s).unwrap();
    let pre = bare::ConnectorPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();

    let per_batch = 2_000;
    let host_pooled = measure_async(&rt, per_batch, || async {
        let out = runtime.invoke(&pooled, "owner", &payload, "{}", None).await;
        assert!(out.result.is_ok());
    });
    let mut store = bare_store(&engine);
    let connector = pre.instantiate(&mut store).unwrap();
    let bare_pooled = measure(per_batch, || {
        let out = connector.call_transform(&mut store, &payload, "{}").unwrap();
        assert!(out.is_ok());
    });
    let host_fresh = measure_async(&rt, per_batch / 4, || async {
        let out = runtime.invoke(&fresh, "owner", &payload, "{}", None).await;
        assert!(out.result.is_ok());
    });
    let bare_fresh = measure(per_batch / 4, || {
        let mut store = bare_store(&engine);
        let connector = pre.instantiate(&mut store).unwrap();
        let out = connector.call_transform(&mut store, &payload, "{}").unwrap();
        assert!(out.is_ok());
    });

    println!("{:<8} {:>12} {:>12} {:>8}", "policy", "host", "bare", "ratio");
    for (policy, host, bare) in [("pooled", host_pooled, bare_pooled), ("fresh", host_fresh, bare_fresh)] {
        println!(
            "{policy:<8} {:>9.2} µs {:>9.2} µs {:>7.2}x",
            host.as_secs_f64() * 1e6,
            bare.as_secs_f64() * 1e6,
            host.as_secs_f64() / bare.as_secs_f64()
        );
    }
    languages(&rt, &payload);
}

fn languages(rt: &tokio::runtime::Runtime, payload: &str) {
    let (js, qjs) = wasmhook_test_components::build_js_example();
    let components = [
        ("Rust", std::path::PathBuf::from(wasmhook_test_components::TITLE_FILTER_RUST)),
        ("JS (componentize-js)", js),
        ("JS (QuickJS)", qjs),
        ("Python", wasmhook_test_components::build_python_example()),
    ];
    let config = r#"{"pattern":"launch"}"#;
    println!(
        "\n{:<22} {:>9} {:>12} {:>12} {:>14} {:>14}",
        "language", "size", "first load", "cached load", "pooled/event", "fresh/event"
    );
    for (language, path) in components {
        let bytes: Arc<[u8]> = std::fs::read(&path).unwrap().into();
        let cache = tempfile::tempdir().unwrap();
        let config_with_cache =
            || RuntimeConfig { cache_dir: Some(cache.path().to_owned()), ..RuntimeConfig::default() };
        let started = Instant::now();
        let runtime = Runtime::new(config_with_cache()).unwrap();
        let pooled = rt.block_on(runtime.load(bytes.clone(), Policy::Pooled)).unwrap();
        let first_load = started.elapsed();
        // A new runtime on the same cache directory: what a restart pays.
        let runtime = Runtime::new(config_with_cache()).unwrap();
        let started = Instant::now();
        let fresh = rt.block_on(runtime.load(bytes.clone(), Policy::Fresh)).unwrap();
        let cached_load = started.elapsed();
        let pooled = {
            drop(pooled);
            rt.block_on(runtime.load(bytes.clone(), Policy::Pooled)).unwrap()
        };
        let invoke = |plugin: &Arc<wasmhook::runtime::Plugin>| {
            let out = rt.block_on(runtime.invoke(plugin, "owner", payload, config, None));
            assert_eq!(out.result.map(|r| r.len()).ok(), Some(1), "{language}: one request");
        };
        let per_event = |plugin: &Arc<wasmhook::runtime::Plugin>, n: u32| measure(n, || invoke(plugin));
        let pooled_cost = per_event(&pooled, 500);
        let fresh_cost = per_event(&fresh, 20);
        println!(
            "{language:<22} {:>6.1} MB {:>9.0} ms {:>9.1} ms {:>11.1} µs {:>11.1} µs",
            bytes.len() as f64 / 1e6,
            first_load.as_secs_f64() * 1e3,
            cached_load.as_secs_f64() * 1e3,
            pooled_cost.as_secs_f64() * 1e6,
            fresh_cost.as_secs_f64() * 1e6
        );
    }
}
