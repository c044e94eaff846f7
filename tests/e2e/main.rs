//! End-to-end tests: real components built in the workspace, the real `wasmhook` binary,
//! real HTTP on 127.0.0.1. One test binary, a module per area.

#![allow(clippy::unwrap_used)]

mod api;
mod brokers;
mod builtins;
mod cli;
mod commands;
mod connectors;
mod contract;
mod delivery;
mod examples;
mod hardening;
mod hosts;
mod https;
mod migrate;
mod openapi;
mod operations;
mod readme;
mod receiving;
mod runtime;
mod scaffold;
mod serve;
mod sources;
mod support;
mod zapier;
