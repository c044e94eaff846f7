//! wasmhook: a webhook host whose connectors are WebAssembly plugins.
//!
//! # Layout
//! - [`event`]: events as sent and as accepted.
//! - [`webhook`]: webhooks (subscriptions) and their health.
//! - [`payload`]: the standard payload every plugin receives.
//! - [`runtime`]: loading and running plugins safely (wasmtime, limits, instance pools).
//! - [`builtins`]: the connectors compiled into the binary.
//! - [`connectors`]: installed connectors by name.
//! - [`tryout`]: `wasmhook plugin run`, trying a plugin on one event.
//! - [`server`]: `wasmhook serve`, the HTTP server.

pub mod builtins;
pub mod connectors;
pub mod event;
pub mod payload;
pub mod runtime;
pub mod server;
pub mod tryout;
pub mod webhook;

pub use server::{ServeConfig, serve};
