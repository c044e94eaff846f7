//! Which webhooks an event reaches: the in-memory index (by event type, project and the
//! owner's companies) and payload filters. Pure: no I/O.

pub mod filter;
mod index;

pub use self::index::{MatchIndex, Matches, Probe, Route};
