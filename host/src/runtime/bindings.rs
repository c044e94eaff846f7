//! Host bindings for the plugin contract's versions, generated from `wit/`: 0.1 (`wit/0.1/`)
//! and 0.2 (`wit/`, its `connector` and `responsive-connector` worlds).
//!
//! The only place `bindgen!` runs. Exports are async so that a call can be raced against a
//! wall-clock timeout and yield to the executor at every epoch tick; imports are trappable so
//! that a log flood ends the invocation at once, and `state` is async because storage is.

/// `wasmhook:plugin@0.1.0`, served unchanged for the components built against it.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1",
        world: "connector",
        imports: { default: trappable },
        exports: { default: async },
    });
}

/// `wasmhook:plugin@0.2.0`: the `responsive-connector` world, whose interfaces the plain
/// `connector` world below shares.
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "responsive-connector",
        imports: { "wasmhook:plugin/state": async | trappable, default: trappable },
        exports: { default: async },
    });

    /// The world without `on-response`.
    pub(crate) mod plain {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "connector",
            exports: { default: async },
            with: { "wasmhook:plugin": super::wasmhook::plugin },
        });
    }
}
