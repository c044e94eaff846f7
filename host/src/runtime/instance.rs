//! One live plugin instance in its own store, and the guarded call into it.
//!
//! Every entry into the guest is armed with the invocation's limits first: a CPU budget in
//! epoch ticks (yielding to the executor at each tick, so a busy plugin never holds a
//! runtime thread for more than a tick), hostcall fuel bounding what may be copied out,
//! and a wall-clock timeout around the whole call for blocking WASI calls that the epoch
//! cannot interrupt. After any failure the store is unusable and is dropped.

use wasmtime::{Engine, Store, StoreContextMut, Trap, UpdateDeadline};
use wasmtime_wasi::I32Exit;

use super::bindings::{v0_1, v0_2};
use super::engine::EPOCH_TICK;
use super::error::{PluginError, PluginFailure, TimeoutKind, cap_text};
use super::kv::StateHandle;
use super::limits::Limits;
use super::output::{self, OutgoingRequest};
use super::state::PluginState;
use crate::domain::plugin_output::{Judgement, LogLine, Request, Response};
use crate::domain::policy::{DeliveryPolicy, Rate};

/// A component pre-instantiated, by the contract version and world it implements.
pub(crate) enum Pre {
    V0_1(v0_1::ConnectorPre<PluginState>),
    V0_2(v0_2::plain::ConnectorPre<PluginState>),
    /// 0.2 with `on-response`.
    Responsive(v0_2::ResponsiveConnectorPre<PluginState>),
}

impl Pre {
    /// Binds a component to the newest world it implements.
    pub(crate) fn new(pre: wasmtime::component::InstancePre<PluginState>) -> Result<Pre, String> {
        if let Ok(bound) = v0_2::ResponsiveConnectorPre::new(pre.clone()) {
            return Ok(Pre::Responsive(bound));
        }
        let v0_2 = match v0_2::plain::ConnectorPre::new(pre.clone()) {
            Ok(bound) => return Ok(Pre::V0_2(bound)),
            Err(error) => error,
        };
        match v0_1::ConnectorPre::new(pre) {
            Ok(bound) => Ok(Pre::V0_1(bound)),
            Err(v0_1) => Err(format!(
                "it does not implement the world wasmhook:plugin/connector, in either version \
                 (0.2.0: {v0_2:#}; 0.1.0: {v0_1:#})"
            )),
        }
    }

    /// The contract version, as `describe`'s callers show it.
    pub(crate) fn contract(&self) -> &'static str {
        match self {
            Pre::V0_1(_) => "0.1",
            Pre::V0_2(_) | Pre::Responsive(_) => "0.2",
        }
    }

    /// Whether it exports `on-response`.
    pub(crate) fn responds(&self) -> bool {
        matches!(self, Pre::Responsive(_))
    }
}

enum Exports {
    V0_1(v0_1::Connector),
    V0_2(v0_2::plain::Connector),
    Responsive(v0_2::ResponsiveConnector),
}

/// What `describe` returned, whatever the version.
pub(crate) struct Described {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) config_schema: String,
    pub(crate) policy: Option<DeliveryPolicy>,
}

pub(crate) struct Instance {
    store: Store<PluginState>,
    exports: Exports,
    /// Invocations served so far.
    pub(crate) uses: u32,
}

impl Instance {
    pub(crate) async fn new(engine: &Engine, pre: &Pre, limits: &Limits) -> Result<Self, PluginError> {
        let mut store = Store::new(engine, PluginState::new(limits));
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(on_epoch_tick);
        arm(&mut store, limits, None);
        // Instantiation runs guest start code: it gets the same limits as a call.
        let exports = match pre {
            Pre::V0_1(pre) => guarded(limits, pre.instantiate_async(&mut store)).await.map(Exports::V0_1),
            Pre::V0_2(pre) => guarded(limits, pre.instantiate_async(&mut store)).await.map(Exports::V0_2),
            Pre::Responsive(pre) => {
                guarded(limits, pre.instantiate_async(&mut store)).await.map(Exports::Responsive)
            }
        };
        let exports = exports.map_err(|stop| classify(&store, stop, limits))?;
        Ok(Instance { store, exports, uses: 0 })
    }

    /// Runs `describe`.
    pub(crate) async fn describe(&mut self, limits: &Limits) -> Result<Described, PluginError> {
        arm(&mut self.store, limits, None);
        let store = &mut self.store;
        let described = match &self.exports {
            Exports::V0_1(c) => guarded(limits, c.call_describe(&mut *store)).await.map(|info| Described {
                name: info.name,
                version: info.version,
                description: info.description,
                config_schema: info.config_schema,
                policy: None,
            }),
            Exports::V0_2(c) => guarded(limits, c.call_describe(&mut *store)).await.map(described),
            Exports::Responsive(c) => guarded(limits, c.call_describe(&mut *store)).await.map(described),
        };
        described.map_err(|stop| classify(&self.store, stop, limits))
    }

    /// Runs `transform`. The instance may be reused afterwards only if this returned `Ok`
    /// or the plugin's own error; `healthy` says which.
    pub(crate) async fn transform(
        &mut self,
        payload: &str,
        config: &str,
        state: Option<StateHandle>,
        limits: &Limits,
    ) -> (Result<Vec<Request>, PluginError>, bool) {
        self.uses += 1;
        arm(&mut self.store, limits, state);
        let store = &mut self.store;
        // The same call on each version's bindings.
        macro_rules! transform_on {
            ($connector:expr) => {
                guarded(limits, $connector.call_transform(&mut *store, payload, config)).await.map(
                    |returned| {
                        returned
                            .map(|requests| requests.into_iter().map(Into::into).collect())
                            .map_err(Into::into)
                    },
                )
            };
        }
        let returned: Result<Result<Vec<OutgoingRequest>, PluginFailure>, Stop> = match &self.exports {
            Exports::V0_1(c) => transform_on!(c),
            Exports::V0_2(c) => transform_on!(c),
            Exports::Responsive(c) => transform_on!(c),
        };
        self.store.data_mut().kv = None;
        let returned = match returned {
            Ok(returned) => returned,
            Err(stop) => return (Err(classify(&self.store, stop, limits)), false),
        };
        match returned {
            Ok(requests) => match output::check(requests, limits) {
                Ok(requests) => (Ok(requests), true),
                Err(reason) => (Err(PluginError::BadOutput(reason)), false),
            },
            Err(failure) => (Err(PluginError::Plugin(failure)), true),
        }
    }

    /// Runs `on-response` (only components that export it have it). Reusable afterwards as
    /// for [`Instance::transform`].
    pub(crate) async fn on_response(
        &mut self,
        request: &Request,
        response: &Response,
        state: Option<StateHandle>,
        limits: &Limits,
    ) -> (Result<Judgement, PluginError>, bool) {
        let Exports::Responsive(connector) = &self.exports else {
            return (Err(PluginError::Trap("the plugin has no on-response export".into())), true);
        };
        self.uses += 1;
        arm(&mut self.store, limits, state);
        let answer = v0_2::wasmhook::plugin::types::IncomingResponse {
            status: response.status,
            headers: response.headers.clone(),
            body: response.body.clone(),
        };
        let request = output::to_wit(request);
        let call = connector.call_on_response(&mut self.store, &request, &answer);
        let returned = guarded(limits, call).await;
        self.store.data_mut().kv = None;
        match returned {
            Err(stop) => (Err(classify(&self.store, stop, limits)), false),
            Ok(Err(failure)) => (Err(PluginError::Plugin(failure.into())), true),
            Ok(Ok(judged)) => match output::judgement(judged) {
                Ok(judgement) => (Ok(judgement), true),
                Err(reason) => (Err(PluginError::BadOutput(reason)), false),
            },
        }
    }

    /// Guest memory the instance holds (all its memories).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.store.data().limiter.used()
    }

    /// The log of the last call, leaving it empty for the next one.
    pub(crate) fn take_log(&mut self) -> Vec<LogLine> {
        self.store.data().log.lock().take()
    }
}

/// What a 0.2 `describe` returned.
fn described(info: v0_2::wasmhook::plugin::types::PluginInfo) -> Described {
    let policy = info.policy.map(|p| DeliveryPolicy {
        rate: p.rate.map(|r| Rate { requests: r.requests, seconds: r.seconds }),
        concurrency: p.concurrency,
        attempts: p.attempts,
        retry_statuses: p.retry_statuses,
    });
    Described {
        name: info.name,
        version: info.version,
        description: info.description,
        config_schema: info.config_schema,
        policy,
    }
}

/// Resets the per-invocation budgets (and sets the `state` handle) before entering the guest.
fn arm(store: &mut Store<PluginState>, limits: &Limits, kv: Option<StateHandle>) {
    let ticks = limits.cpu_time.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1);
    let state = store.data_mut();
    state.ticks_left = u64::try_from(ticks).unwrap_or(u64::MAX);
    state.cpu_exhausted = false;
    state.kv = kv;
    store.set_epoch_deadline(1);
    // Bounds what the guest can make the host copy in one go (the returned requests, a log
    // message): without it, bodies aliasing the same guest bytes multiply in host memory.
    store.set_hostcall_fuel(limits.output_bytes + limits.max_requests * 256 + (64 << 10));
}

fn on_epoch_tick(mut cx: StoreContextMut<'_, PluginState>) -> wasmtime::Result<UpdateDeadline> {
    let state = cx.data_mut();
    if state.ticks_left == 0 {
        state.cpu_exhausted = true;
        return Ok(UpdateDeadline::Interrupt);
    }
    state.ticks_left -= 1;
    // tokio's own yield lets the executor poll its timers and I/O before resuming us; a plain
    // self-wake could starve them on a busy current-thread runtime.
    Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
}

/// Why a call into the guest did not return.
enum Stop {
    Error(wasmtime::Error),
    WallClock,
}

/// Races a call into the guest against the wall-clock timeout. Dropping the call's future
/// on timeout leaves the store unusable: callers throw the instance away.
async fn guarded<T>(
    limits: &Limits,
    call: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> Result<T, Stop> {
    match tokio::time::timeout(limits.wall_time, call).await {
        Ok(result) => result.map_err(Stop::Error),
        Err(_) => Err(Stop::WallClock),
    }
}

/// Names what stopped the guest. Several limits surface as plain traps, so the store's own
/// flags are checked first.
fn classify(store: &Store<PluginState>, stop: Stop, limits: &Limits) -> PluginError {
    let error = match stop {
        Stop::Error(error) => error,
        Stop::WallClock => return PluginError::Timeout(TimeoutKind::WallClock(limits.wall_time)),
    };
    let state = store.data();
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return PluginError::Exit(exit.0);
    }
    if state.cpu_exhausted {
        return PluginError::Timeout(TimeoutKind::Cpu(limits.cpu_time));
    }
    if state.limiter.denied {
        return PluginError::OutOfMemory { limit_mib: limits.memory_bytes >> 20 };
    }
    if let Some(reason) = state.log.lock().overflow.clone() {
        return PluginError::LogLimit(reason);
    }
    let said = |what: &str| error.chain().any(|e| e.to_string().contains(what));
    if said("resource table has no free keys") {
        return PluginError::ResourceLimit(format!(
            "it held more than {} WASI handles (streams, pollables…) at once",
            super::state::MAX_RESOURCES
        ));
    }
    if said("maximum concurrent limit") {
        return PluginError::HostBusy(without_backtrace(&error));
    }
    if said("fuel allocated for hostcalls") {
        return PluginError::BadOutput(format!(
            "output larger than the {} byte limit (stopped while copying it out)",
            limits.output_bytes
        ));
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => PluginError::Trap("stack overflow (unbounded recursion?)".into()),
        Some(Trap::UnreachableCodeReached) => PluginError::Trap(
            "wasm `unreachable` executed: the plugin panicked or aborted (a panic message, if \
             any, is in the log)"
                .into(),
        ),
        // Rust and C keep their own stack in linear memory: overflowing it goes out of bounds.
        Some(Trap::MemoryOutOfBounds) => PluginError::Trap(
            "out of bounds memory access (in a Rust or C plugin usually a stack overflow: \
             unbounded recursion?)"
                .into(),
        ),
        Some(trap) => PluginError::Trap(trap.to_string()),
        None => PluginError::Trap(without_backtrace(&error)),
    }
}

/// A plugin's own error, the same in every contract version.
macro_rules! plugin_failure {
    ($version:ident) => {
        impl From<$version::wasmhook::plugin::types::PluginError> for PluginFailure {
            fn from(error: $version::wasmhook::plugin::types::PluginError) -> Self {
                use $version::wasmhook::plugin::types::PluginError as Wit;
                match error {
                    Wit::InvalidConfig(m) => PluginFailure::InvalidConfig(cap_text(m)),
                    Wit::InvalidEvent(m) => PluginFailure::InvalidEvent(cap_text(m)),
                    Wit::Failed(m) => PluginFailure::Failed(cap_text(m)),
                }
            }
        }
    };
}

plugin_failure!(v0_1);
plugin_failure!(v0_2);

/// An error's causes without wasmtime's backtrace context: what a plugin author reads.
fn without_backtrace(error: &wasmtime::Error) -> String {
    let causes: Vec<String> = error
        .chain()
        .map(|cause| cause.to_string())
        .filter(|text| !text.starts_with("error while executing at wasm backtrace"))
        .map(|text| text.lines().next().unwrap_or_default().to_owned())
        .collect();
    cap_text(causes.join(": "))
}
