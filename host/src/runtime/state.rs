//! The data each plugin store carries: WASI with nothing granted, the memory limiter, the
//! invocation's log, its CPU budget and its `state` handle; and the `log` import, the same
//! in every contract version.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{v0_1, v0_2};
use super::engine::MAX_TABLE_ELEMENTS;
use super::kv::StateHandle;
use super::limits::{Limits, MemoryLimiter};
use super::log::SharedLog;
use crate::domain::plugin_output::LogLevel;

/// Bytes one `get-random-bytes` call may ask for (JavaScript and Python seed with a few).
const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// WASI handles (streams, pollables…) an instance may hold at once.
pub(crate) const MAX_RESOURCES: usize = 10_000;

pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: SharedLog,
    /// Epoch ticks this invocation may still run for.
    pub(crate) ticks_left: u64,
    /// Set when the CPU budget ran out, to tell that interrupt from other traps.
    pub(crate) cpu_exhausted: bool,
    /// The store `state` calls reach during this invocation (none in `describe`).
    pub(crate) kv: Option<StateHandle>,
}

impl PluginState {
    pub(crate) fn new(limits: &Limits) -> Self {
        let log = SharedLog::new(limits);
        // Nothing granted: no preopened directories, no environment or arguments, no
        // sockets or name lookups. Clocks and randomness stay real: the JavaScript and
        // Python runtimes need them. stdout and stderr go to the invocation's log.
        let wasi = WasiCtx::builder()
            .stdout(log.stream(LogLevel::Stdout))
            .stderr(log.stream(LogLevel::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // The default (64 MiB per call) is half a second of a host thread that neither
            // the epoch nor the wall clock can interrupt.
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        PluginState {
            wasi,
            table,
            limiter: MemoryLimiter::new(limits.memory_bytes, MAX_TABLE_ELEMENTS),
            log,
            ticks_left: 0,
            cpu_exhausted: false,
            kv: None,
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl PluginState {
    fn log(&mut self, level: LogLevel, message: &str) -> wasmtime::Result<()> {
        self.log.lock().push(level, message).map_err(|reason| wasmtime::format_err!(reason))
    }
}

/// The `log` import, the same in every contract version.
macro_rules! log_import {
    ($version:ident) => {
        impl $version::wasmhook::plugin::types::Host for PluginState {}

        impl $version::wasmhook::plugin::host::Host for PluginState {
            fn log(
                &mut self,
                level: $version::wasmhook::plugin::host::LogLevel,
                message: String,
            ) -> wasmtime::Result<()> {
                use $version::wasmhook::plugin::host::LogLevel as Wit;
                let level = match level {
                    Wit::Debug => LogLevel::Debug,
                    Wit::Info => LogLevel::Info,
                    Wit::Warn => LogLevel::Warn,
                    Wit::Error => LogLevel::Error,
                };
                PluginState::log(self, level, &message)
            }
        }
    };
}

log_import!(v0_1);
log_import!(v0_2);
