//! Paths of the WebAssembly components the tests use, built by this crate's build script: the
//! misbehaving ones from `tests/plugins/` (never shipped) and the Rust example from
//! `plugins/examples/rust`.

include!(concat!(env!("OUT_DIR"), "/components.rs"));
