//! The data each plugin store carries: WASI with nothing granted, the memory limiter, the
//! invocation's log and its CPU budget.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{WitLogLevel, wasmhook::plugin};
use super::engine::MAX_TABLE_ELEMENTS;
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
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl plugin::types::Host for PluginState {}

impl plugin::host::Host for PluginState {
    fn log(&mut self, level: WitLogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            WitLogLevel::Debug => LogLevel::Debug,
            WitLogLevel::Info => LogLevel::Info,
            WitLogLevel::Warn => LogLevel::Warn,
            WitLogLevel::Error => LogLevel::Error,
        };
        self.log.lock().push(level, &message).map_err(|reason| wasmtime::format_err!(reason))
    }
}
