//! The transitions, one place each: what must change together when something changes —
//! storage first, then what every ingest and delivery reads from memory. The API and the
//! delivery engine both go through here, so neither undoes or half-does the other's work.
//!
//! - [`webhooks`]: saving, removing and recording the health of webhooks; users' companies.

pub mod webhooks;

pub use self::webhooks::{Health, Webhooks};
