//! wasmhook: a webhook host whose connectors are WebAssembly plugins.
//!
//! # Layout
//! From the edges down; arrows point down this list, never up.
//! - [`server`], [`http_server`], [`api`], [`web`], [`metrics`]: `wasmhook serve` — the wiring,
//!   HTTP/1.1 with bounded connections, the REST API, the embedded web app, Prometheus metrics.
//! - [`cli`]: the `wasmhook` command line — the host, local tools, and a client of the API.
//! - [`config`]: the server's configuration (defaults, file, environment, flags).
//! - [`tryout`]: `wasmhook plugin run`, trying a plugin on one event.
//! - [`scaffold`]: `wasmhook plugin new`, a plugin project in Rust, JavaScript or Python.
//! - [`delivery`]: the engine that runs plugins, signs, sends (over HTTP or to a broker),
//!   retries, and keeps ordering keys and connectors' delivery policies.
//! - [`broker`]: message brokers as destinations — RabbitMQ, NATS JetStream, Redis Streams,
//!   MQTT — one connection each, checked like any destination.
//! - [`source`]: events taken from brokers (`serve --source`), acknowledged once durable.
//! - [`service`]: the transitions, one place each (a webhook saved, removed, its health),
//!   ingest, connectors' state, and the host's reports on itself (operational events).
//! - [`store`]: storage behind one interface, sled or PostgreSQL, and the queue of due work.
//! - [`connectors`], [`builtins`], [`connector_config`]: installed connectors by name, the
//!   ones compiled in, a webhook's config against its connector's schema (write-only secrets).
//! - [`runtime`]: loading and running plugins safely — both versions of the contract (`wit/`),
//!   wasmtime, limits, instance pools, fairness between tenants.
//! - [`matching`]: which webhooks an event reaches (index and filters; pure).
//! - [`domain`]: the records every layer shares — events, the catalog, webhooks, deliveries,
//!   the standard payload, delivery policies.
//! - [`access`], [`secret`], [`destination`], [`ratelimit`]: tokens, scopes and users;
//!   signing secrets and sealing; allowed destinations; ingest rates.
//! - [`threads`]: runtimes on threads of their own (deliveries; plugins under suspicion).

pub mod access;
pub mod api;
pub mod broker;
pub mod builtins;
pub mod cli;
pub mod config;
pub mod connector_config;
pub mod connectors;
pub mod delivery;
pub mod destination;
pub mod domain;
pub mod http_server;
pub mod matching;
pub mod metrics;
mod private_file;
pub mod ratelimit;
pub mod runtime;
pub mod scaffold;
pub mod secret;
pub mod server;
pub mod service;
pub mod source;
pub mod store;
pub mod threads;
pub mod tryout;
pub mod web;

pub use config::Config;
pub use server::{AppState, serve};
