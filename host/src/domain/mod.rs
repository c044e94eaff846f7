//! The records every layer shares — what the API takes and shows, storage keeps, matching
//! reads and the engine works — with the pure rules that belong to them.
//!
//! - [`event`]: events as sent and as accepted.
//! - [`catalog`]: the event types there are.
//! - [`webhook`]: subscriptions, their connector and their health.
//! - [`delivery`]: deliveries, their messages and attempts.
//! - [`payload`]: the standard payload every plugin receives.
//! - [`plugin_output`]: what a plugin returned (requests, judgements of answers) and logged.
//! - [`policy`]: delivery policies connectors declare, and what a webhook gets of them.
//! - [`dead_letter`]: messages a broker source could not take as events.
//! - [`connector_version`]: uploads of a connector kept as versions, their roles (live,
//!   previous, shadow), retention, and what a shadowing candidate did differently.

pub mod catalog;
pub mod connector_version;
pub mod dead_letter;
pub mod delivery;
pub mod event;
pub mod payload;
pub mod plugin_output;
pub mod policy;
pub mod webhook;
