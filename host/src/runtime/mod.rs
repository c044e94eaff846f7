//! Running plugins: WebAssembly components that turn a delivery into HTTP requests (and,
//! from contract 0.2 on, may judge the answers and keep a little state per webhook).
//!
//! One shared [`Engine`] compiles each component once (cached on disk, see `cache`), links
//! WASI 0.2 with nothing granted plus the host imports of both contract versions (`log`;
//! `state`, see `kv`), and pre-instantiates it against the newest world it implements. An
//! invocation runs on an instance from the idle pool (`pooled`: per plugin and owner) or a
//! new one (`fresh`), under the limits in [`Limits`]. Whatever the plugin does — loop,
//! sleep, trap, exit, over-allocate, flood its log, return too much — ends that one
//! invocation with a typed [`PluginError`], and the instance is thrown away.
//!
//! Tenants share the host fairly (see `fairness`): invocations in flight are capped per
//! (plugin, owner) and in all (which bounds live guest memory), a pair that keeps hitting its
//! limits is moved to low-priority threads and then backed off, and previews have slots of
//! their own on those threads, so neither can take what deliveries need.

mod bindings;
mod cache;
mod engine;
mod error;
mod fairness;
mod instance;
mod kv;
mod limits;
mod log;
mod output;
mod pool;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Linker;

pub use self::error::{MAX_PLUGIN_TEXT, PluginError, PluginFailure, TimeoutKind, cap_text};
pub use self::kv::{
    Answer as StateAnswer, MAX_KEY_BYTES, MAX_KEYS, MAX_TOTAL_BYTES, MAX_VALUE_BYTES, StateError,
    StateHandle, StateScope, StateStore,
};
pub use self::limits::Limits;
pub use crate::domain::plugin_output::{Judged, Judgement, LogLevel, LogLine, Request, Response};

use crate::connector_config::ConfigSchema;
use crate::domain::policy::{self, DeliveryPolicy};

use self::bindings::{v0_1, v0_2};
use self::cache::ComponentCache;
use self::engine::EpochTicker;
use self::fairness::{BackedOff, Fairness, Lane, PreviewSlots};
use self::instance::{Instance, Pre};
use self::pool::{IdlePool, PoolKey};
use self::state::PluginState;

/// The SHA-256 of a component's bytes: its identity for caching and pooling.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(Sha256::digest(bytes).into())
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

/// How a plugin's instances are used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Reuse instances per (plugin, owner) for up to `max_uses_per_instance` invocations.
    #[default]
    Pooled,
    /// A new instance for every invocation: no state ever survives a call.
    Fresh,
}

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub limits: Limits,
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Instances alive at once (idle plus running); the pooling allocator reserves them.
    pub max_instances: u32,
    /// Idle instances kept for reuse, across all plugins and owners.
    pub max_idle_instances: usize,
    /// Guest memory idle instances may hold in all.
    pub max_idle_bytes: usize,
    /// An idle instance unused for this long is dropped.
    pub idle_ttl: Duration,
    /// A pooled instance is retired after this many invocations.
    pub max_uses_per_instance: u32,
    /// Invocations running at once (each may hold up to the memory limit).
    pub max_in_flight: usize,
    /// Invocations of one (plugin, owner) running at once.
    pub max_in_flight_per_owner: usize,
    /// Invocations running at once on the quarantine lane.
    pub max_quarantined: usize,
    /// Previews running at once, in all and per caller.
    pub max_previews: usize,
    pub max_previews_per_caller: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            limits: Limits::default(),
            cache_dir: None,
            max_instances: 1_000,
            max_idle_instances: 256,
            max_idle_bytes: 256 << 20,
            idle_ttl: Duration::from_secs(60),
            max_uses_per_instance: 1_000,
            max_in_flight: 8,
            max_in_flight_per_owner: 2,
            max_quarantined: 2,
            max_previews: 4,
            max_previews_per_caller: 2,
        }
    }
}

/// Why the runtime itself could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("could not use the component cache directory {path}: {source}")]
    CacheDir { path: PathBuf, source: std::io::Error },
    #[error("could not start the plugin quarantine threads: {0}")]
    Threads(std::io::Error),
}

/// What a plugin says about itself (from its `describe` export).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub config_schema: serde_json::Value,
    /// What its receivers want (contract 0.2), before any webhook's own settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<DeliveryPolicy>,
    /// The contract version it implements: `0.1` or `0.2`.
    pub contract: String,
    /// Whether it judges receivers' answers itself (`on-response`).
    #[serde(default)]
    pub on_response: bool,
}

/// A loaded plugin: compiled, linked, described, ready to instantiate.
pub struct Plugin {
    hash: ContentHash,
    info: PluginInfo,
    schema: ConfigSchema,
    policy: Policy,
    pre: Pre,
}

impl Plugin {
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Its config schema, compiled.
    pub fn schema(&self) -> &ConfigSchema {
        &self.schema
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether it exports `on-response`.
    pub fn responds(&self) -> bool {
        self.pre.responds()
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("hash", &self.hash)
            .field("policy", &self.policy)
            .finish()
    }
}

/// The outcome of one invocation (of `transform` unless said otherwise), with its log
/// whatever happened.
#[derive(Debug)]
pub struct Invocation<T = Vec<Request>> {
    pub result: Result<T, PluginError>,
    pub log: Vec<LogLine>,
    /// Wall time of the whole invocation, instantiation included.
    pub duration: Duration,
    /// Guest memory the instance held when it ended (memories only grow: its peak).
    pub memory_bytes: usize,
}

impl<T> Invocation<T> {
    fn failed(error: PluginError, started: Instant) -> Self {
        Invocation { result: Err(error), log: Vec::new(), duration: started.elapsed(), memory_bytes: 0 }
    }

    fn map<U>(self, f: impl FnOnce(T) -> Result<U, PluginError>) -> Invocation<U> {
        let Invocation { result, log, duration, memory_bytes } = self;
        Invocation { result: result.and_then(f), log, duration, memory_bytes }
    }
}

/// What an invocation is asked to do.
#[derive(Clone, Copy)]
enum Call<'a> {
    Transform { payload: &'a str, config: &'a str },
    Respond { request: &'a Request, response: &'a Response },
}

/// A [`Call`] of its own, for another thread.
enum OwnedCall {
    Transform { payload: String, config: String },
    Respond { request: Request, response: Response },
}

impl OwnedCall {
    fn of(call: Call<'_>) -> Self {
        match call {
            Call::Transform { payload, config } => {
                OwnedCall::Transform { payload: payload.to_owned(), config: config.to_owned() }
            }
            Call::Respond { request, response } => {
                OwnedCall::Respond { request: request.clone(), response: response.clone() }
            }
        }
    }

    fn call(&self) -> Call<'_> {
        match self {
            OwnedCall::Transform { payload, config } => Call::Transform { payload, config },
            OwnedCall::Respond { request, response } => Call::Respond { request, response },
        }
    }
}

/// What it returned.
enum Returned {
    Requests(Vec<Request>),
    Judgement(Judgement),
}

impl Returned {
    fn requests(self) -> Result<Vec<Request>, PluginError> {
        match self {
            Returned::Requests(requests) => Ok(requests),
            Returned::Judgement(_) => Err(PluginError::Trap("on-response answered a transform".into())),
        }
    }

    fn judgement(self) -> Result<Judgement, PluginError> {
        match self {
            Returned::Judgement(judgement) => Ok(judgement),
            Returned::Requests(_) => Err(PluginError::Trap("transform answered an on-response".into())),
        }
    }
}

/// Loads and runs plugins. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: ComponentCache,
    config: RuntimeConfig,
    idle: IdlePool,
    fairness: Fairness,
    in_flight: tokio::sync::Semaphore,
    quarantined: tokio::sync::Semaphore,
    previews: PreviewSlots,
    /// The lowest-priority threads: plugins under suspicion, and previews.
    quarantine: crate::threads::Threads,
    _ticker: EpochTicker,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine_error = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
        let engine = engine::build(&config.limits, config.max_instances).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        // Both contract versions' imports: a component gets the ones it was built against.
        v0_1::Connector::add_to_linker::<_, wasmtime::component::HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(engine_error)?;
        v0_2::ResponsiveConnector::add_to_linker::<_, wasmtime::component::HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(engine_error)?;
        let cache = ComponentCache::new(&engine, config.cache_dir.as_deref()).map_err(|source| {
            RuntimeError::CacheDir { path: config.cache_dir.clone().unwrap_or_default(), source }
        })?;
        let runtime = Runtime {
            inner: Arc::new(Inner {
                _ticker: EpochTicker::start(engine.clone()),
                idle: IdlePool::new(config.max_idle_instances, config.max_idle_bytes),
                fairness: Fairness::new(config.max_in_flight_per_owner),
                in_flight: tokio::sync::Semaphore::new(config.max_in_flight.max(1)),
                quarantined: tokio::sync::Semaphore::new(config.max_quarantined.max(1)),
                previews: PreviewSlots::new(config.max_previews, config.max_previews_per_caller),
                quarantine: crate::threads::Threads::start("wasmhook-quarantine", 1, Some(19))
                    .map_err(RuntimeError::Threads)?,
                engine,
                linker,
                cache,
                config,
            }),
        };
        runtime.expire_idle_instances();
        Ok(runtime)
    }

    /// Gives idle instances' memory back once unused for the TTL, until the runtime is dropped.
    fn expire_idle_instances(&self) {
        let inner = Arc::downgrade(&self.inner);
        let every = (self.inner.config.idle_ttl / 4).max(Duration::from_millis(100));
        let spawned = std::thread::Builder::new().name("wasmhook-idle-expiry".into()).spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(inner) = inner.upgrade() else { return };
                inner.idle.expire(inner.config.idle_ttl);
            }
        });
        if let Err(error) = spawned {
            tracing::warn!("idle plugin instances will only be reclaimed by use: {error}");
        }
    }

    /// The shared engine (benchmarks compare against bare wasmtime on the same one).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// Compiles (or loads from the cache), links and describes a component. Anything that is
    /// not a component implementing `wasmhook:plugin/connector` (0.2, or 0.1) is
    /// [`PluginError::InvalidComponent`].
    pub async fn load(&self, bytes: Arc<[u8]>, policy: Policy) -> Result<Arc<Plugin>, PluginError> {
        let hash = ContentHash::of(&bytes);
        let loaded = self.load_unchecked(bytes, hash, policy).await;
        if loaded.is_err() {
            // Refused: nothing of it stays behind, its compiled form included.
            self.inner.cache.evict(&hash);
        }
        loaded
    }

    async fn load_unchecked(
        &self,
        bytes: Arc<[u8]>,
        hash: ContentHash,
        policy: Policy,
    ) -> Result<Arc<Plugin>, PluginError> {
        let inner = self.inner.clone();
        // Compiling a large component takes seconds of CPU: keep it off the async workers.
        let component = tokio::task::spawn_blocking(move || inner.cache.load(&inner.engine, &bytes, &hash))
            .await
            .map_err(|e| PluginError::InvalidComponent(format!("compilation did not finish: {e}")))?
            .map_err(|e| PluginError::InvalidComponent(explain_compile_error(&e)))?;
        let instance_pre = self.inner.linker.instantiate_pre(&component).map_err(|e| {
            let detail = format!("{e:#}");
            // The usual way to get here: componentize-js adds wasi:http unless told not to.
            let hint = match detail.contains("wasi:http") {
                true => "; built with componentize-js? Pass `-d http fetch-event` to leave wasi:http out",
                false => "",
            };
            PluginError::InvalidComponent(format!(
                "it needs imports the host does not provide (plugins get WASI 0.2 with nothing \
                 granted, and wasmhook:plugin/host): {detail}{hint}"
            ))
        })?;
        let pre = Pre::new(instance_pre).map_err(PluginError::InvalidComponent)?;

        let limits = &self.inner.config.limits;
        let mut instance = Instance::new(&self.inner.engine, &pre, limits).await?;
        let info = instance.describe(limits).await?;
        let config_schema: serde_json::Value = serde_json::from_str(&info.config_schema)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| {
                PluginError::InvalidComponent(
                    "describe returned a config schema that is not a JSON object".into(),
                )
            })?;
        let schema = ConfigSchema::compile(&config_schema).map_err(|e| {
            PluginError::InvalidComponent(format!(
                "describe returned a config schema that does not compile: {e}"
            ))
        })?;
        if info.name.trim().is_empty() || info.version.trim().is_empty() {
            return Err(PluginError::InvalidComponent("describe returned an empty name or version".into()));
        }
        if let Some(declared) = &info.policy {
            policy::check(declared).map_err(|e| {
                PluginError::InvalidComponent(format!("describe returned an impossible policy: {e}"))
            })?;
        }
        let info = PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            config_schema,
            policy: info.policy,
            contract: pre.contract().to_owned(),
            on_response: pre.responds(),
        };
        Ok(Arc::new(Plugin { hash, info, schema, policy, pre }))
    }

    /// Runs `transform` on a standard payload with a connector config (both JSON text),
    /// on an instance that has only ever served `owner`, its `state` calls going to `state`.
    /// Waits while `owner` has as many invocations of this plugin running as it may, or the
    /// host as many as it runs at once.
    pub async fn invoke(
        &self,
        plugin: &Arc<Plugin>,
        owner: &str,
        payload: &str,
        config: &str,
        state: Option<StateHandle>,
    ) -> Invocation {
        let call = Call::Transform { payload, config };
        self.invoke_on(plugin, owner, call, state, false).await.map(Returned::requests)
    }

    /// Runs `on-response` (see [`Plugin::responds`]) on a receiver's answer to `request`,
    /// as [`Runtime::invoke`] runs `transform`.
    pub async fn judge(
        &self,
        plugin: &Arc<Plugin>,
        owner: &str,
        request: &Request,
        response: &Response,
        state: Option<StateHandle>,
    ) -> Invocation<Judgement> {
        let call = Call::Respond { request, response };
        self.invoke_on(plugin, owner, call, state, false).await.map(Returned::judgement)
    }

    /// [`Runtime::invoke`] for a preview: on the quarantine lane, in one of a few slots (an
    /// error at once when there is none free), with a scratch state of its own.
    pub async fn preview(
        &self,
        plugin: &Arc<Plugin>,
        owner: &str,
        payload: &str,
        config: &str,
    ) -> Invocation {
        let _slot = match self.inner.previews.take(owner) {
            Ok(slot) => slot,
            Err(why) => return Invocation::failed(PluginError::HostBusy(why), Instant::now()),
        };
        let call = Call::Transform { payload, config };
        let state = Some(StateHandle::scratch());
        self.invoke_on(plugin, owner, call, state, true).await.map(Returned::requests)
    }

    async fn invoke_on(
        &self,
        plugin: &Arc<Plugin>,
        owner: &str,
        call: Call<'_>,
        state: Option<StateHandle>,
        quarantine: bool,
    ) -> Invocation<Returned> {
        let started = Instant::now();
        let fairness = &self.inner.fairness;
        let key = PoolKey { plugin: plugin.hash, owner: owner.into() };
        let backed_off = |off: BackedOff| {
            let BackedOff { strikes, retry_in } = off;
            Invocation::failed(PluginError::BackedOff { strikes, retry_in }, started)
        };
        let slots = match fairness.admit(&key, Instant::now()) {
            Ok(slots) => slots,
            Err(off) => return backed_off(off),
        };
        let slot = slots.acquire_owned().await.expect("the semaphore is never closed");
        let lane = match fairness.lane(&key, Instant::now()) {
            Ok(lane) => lane,
            Err(off) => return backed_off(off),
        };
        let invocation = if quarantine || lane == Lane::Quarantine {
            self.run_quarantined(plugin, key.clone(), call, state).await
        } else {
            let _permit = self.inner.in_flight.acquire().await.expect("the semaphore is never closed");
            self.run(plugin, &key, call, state).await
        };
        drop(slot);
        let hit_limit = match &invocation.result {
            Ok(_) => Some(false),
            // Not the plugin's doing: it says nothing about it.
            Err(PluginError::HostBusy(_)) => None,
            Err(error) => Some(error.is_limit()),
        };
        fairness.finish(&key, hit_limit, Instant::now());
        Invocation { duration: started.elapsed(), ..invocation }
    }

    /// Runs an invocation on the quarantine lane's low-priority threads.
    async fn run_quarantined(
        &self,
        plugin: &Arc<Plugin>,
        key: PoolKey,
        call: Call<'_>,
        state: Option<StateHandle>,
    ) -> Invocation<Returned> {
        let (runtime, plugin, call) = (self.clone(), plugin.clone(), OwnedCall::of(call));
        let task = self.inner.quarantine.handle().spawn(async move {
            let _permit = runtime.inner.quarantined.acquire().await.expect("the semaphore is never closed");
            runtime.run(&plugin, &key, call.call(), state).await
        });
        task.await.unwrap_or_else(|error| {
            Invocation::failed(
                PluginError::Trap(format!("the invocation's task ended: {error}")),
                Instant::now(),
            )
        })
    }

    /// One invocation, here and now.
    async fn run(
        &self,
        plugin: &Plugin,
        key: &PoolKey,
        call: Call<'_>,
        state: Option<StateHandle>,
    ) -> Invocation<Returned> {
        let (started, owner) = (Instant::now(), &*key.owner);
        let inner = &self.inner;
        let limits = &inner.config.limits;
        let pooled = plugin.policy == Policy::Pooled;

        let reused = if pooled { inner.idle.take(&plugin.hash, owner) } else { None };
        let mut instance = match reused {
            Some(instance) => instance,
            None => match Instance::new(&inner.engine, &plugin.pre, limits).await {
                Ok(instance) => instance,
                Err(error) => return Invocation::failed(error, started),
            },
        };
        let (result, healthy) = match call {
            Call::Transform { payload, config } => {
                let (result, healthy) = instance.transform(payload, config, state, limits).await;
                (result.map(Returned::Requests), healthy)
            }
            Call::Respond { request, response } => {
                let (result, healthy) = instance.on_response(request, response, state, limits).await;
                (result.map(Returned::Judgement), healthy)
            }
        };
        let log = instance.take_log();
        let memory_bytes = instance.memory_bytes();
        if pooled && healthy && instance.uses < inner.config.max_uses_per_instance {
            inner.idle.put(key.clone(), instance);
        }
        Invocation { result, log, duration: started.elapsed(), memory_bytes }
    }

    /// Drops the idle instances of a plugin that was replaced or removed.
    pub fn retire(&self, plugin: &Plugin) {
        self.inner.idle.forget(&plugin.hash);
    }

    /// Idle instances currently kept.
    pub fn idle_instances(&self) -> usize {
        self.inner.idle.len()
    }

    /// Guest memory the idle instances hold.
    pub fn idle_bytes(&self) -> usize {
        self.inner.idle.bytes()
    }
}

/// Compile errors for the commonest wrong uploads, said plainly.
fn explain_compile_error(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    if text.contains("component parser") || text.contains("expected a component") {
        format!(
            "this is a core WebAssembly module, not a component; build for wasm32-wasip2 or \
             wrap it with `wasm-tools component new` ({text})"
        )
    } else if text.contains("magic header") || text.contains("unexpected end") {
        format!("this is not a WebAssembly file ({text})")
    } else {
        format!("this is not a valid WebAssembly component ({text})")
    }
}
