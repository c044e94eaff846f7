//! Host bindings for the `wasmhook:plugin/connector` world, generated from `wit/`.
//!
//! The only place `bindgen!` runs. Exports are async so that a call can be raced against a
//! wall-clock timeout and yield to the executor at every epoch tick; the `log` import is
//! trappable so that a log flood ends the invocation at once.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "connector",
    imports: { default: trappable },
    exports: { default: async },
});

pub(crate) use self::wasmhook::plugin::host::LogLevel as WitLogLevel;
pub(crate) use self::wasmhook::plugin::types::PluginError as WitPluginError;
