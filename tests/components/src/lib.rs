//! Paths of the test-only WebAssembly components, built from `tests/plugins/` by this crate's
//! build script. They misbehave on purpose and are never shipped.

include!(concat!(env!("OUT_DIR"), "/components.rs"));
