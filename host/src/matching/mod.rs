//! Which webhooks an event reaches: the in-memory index (by event type, project and the
//! owner's companies) and payload filters, and why an event matched what it did. Pure: no I/O.

mod explain;
pub mod filter;
mod index;

pub use self::explain::{Explanation, Reason, Verdict};
pub use self::index::{MatchIndex, Matches, Probe, Route};
