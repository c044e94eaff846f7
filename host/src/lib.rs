//! wasmhook: a webhook host whose connectors are WebAssembly plugins.
//!
//! # Layout
//! - [`config`]: the server's configuration (defaults, file, environment, flags).
//! - [`event`], [`catalog`]: events as sent and accepted; the event types there are.
//! - [`webhook`], [`delivery`]: subscriptions and the deliveries they get.
//! - [`payload`]: the standard payload every plugin receives.
//! - [`matcher`], [`filter`]: which webhooks an event reaches.
//! - [`access`], [`secret`], [`destination`], [`ratelimit`]: tokens and scopes, signing
//!   secrets, allowed destinations, ingest rates.
//! - [`store`]: sled storage behind a narrow interface, with group commit.
//! - [`runtime`]: loading and running plugins safely (wasmtime, limits, instance pools).
//! - [`builtins`], [`connectors`]: connectors compiled in; installed connectors by name.
//! - [`connector_config`]: a webhook's connector config against the connector's schema
//!   (validation, write-only secrets).
//! - [`api`], [`server`], [`metrics`]: the REST API, `wasmhook serve`, Prometheus metrics.
//! - [`http_server`]: serving HTTP/1.1 with a header-read and keep-alive timeout, shut down
//!   gracefully.
//! - [`threads`]: runtimes on threads of their own (deliveries; plugins under suspicion).
//! - [`tryout`]: `wasmhook plugin run`, trying a plugin on one event.
//! - [`web`]: the web app, embedded and served at `/`.

pub mod access;
pub mod api;
pub mod builtins;
pub mod catalog;
pub mod config;
pub mod connector_config;
pub mod connectors;
pub mod delivery;
pub mod destination;
pub mod event;
pub mod filter;
pub mod http_server;
pub mod matcher;
pub mod metrics;
pub mod payload;
mod private_file;
pub mod ratelimit;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod store;
pub mod threads;
pub mod tryout;
pub mod web;
pub mod webhook;

pub use config::Config;
pub use server::{AppState, serve};
