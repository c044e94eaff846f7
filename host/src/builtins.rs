//! The connectors compiled into the binary (built from `plugins/*` by `build.rs`).

/// Name and component bytes of each built-in connector.
pub const BUILTINS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The component of a built-in connector.
pub fn component(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}
