//! The transitions, one place each: what must change together when something changes —
//! storage first, then what every ingest and delivery reads from memory. The API and the
//! delivery engine both go through here, so neither undoes or half-does the other's work.
//!
//! - [`webhooks`]: creating, changing, removing and recording the health of webhooks;
//!   users' companies.
//! - [`ingest`]: taking events in (from the API and from broker sources).
//! - [`deliveries`]: retrying and recovering deliveries.
//! - [`connectors`]: uploading and removing connectors.
//! - [`plugin_state`]: connectors' state per webhook, kept in storage.
//! - [`operations`]: the host's reports on itself, as events for operators' webhooks.
//! - [`sync`]: the same changes, made by other hosts on the same database, applied here.

pub mod connectors;
pub mod deliveries;
pub mod ingest;
pub mod operations;
pub mod plugin_state;
pub mod sync;
pub mod webhooks;

pub use self::connectors::ConnectorService;
pub use self::deliveries::Deliveries;
pub use self::ingest::{Ingest, IngestError};
pub use self::operations::Operations;
pub use self::webhooks::{Health, Transition, Webhooks};
