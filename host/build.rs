//! Builds the built-in connectors (`plugins/*`) into components that `src/builtins.rs` embeds.

#[path = "build/wasm_build.rs"]
mod wasm_build;

use std::path::Path;

/// Built-in connector name and the crate that implements it.
const BUILTINS: &[(&str, &str)] = &[
    ("json", "wasmhook-plugin-json"),
    ("zapier", "wasmhook-plugin-zapier"),
    ("pabbly", "wasmhook-plugin-pabbly"),
    ("crm", "wasmhook-plugin-crm"),
    ("slack", "wasmhook-plugin-slack"),
];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest_dir).parent().expect("host/ lives in the workspace");
    let packages: Vec<&str> = BUILTINS.iter().map(|(_, package)| *package).collect();
    let wasm = wasm_build::build_components(workspace, &packages);

    let mut table = String::from("&[\n");
    for ((name, _), path) in BUILTINS.iter().zip(&wasm) {
        table.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    table.push(']');
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("builtins.rs"), table).expect("write builtins.rs");
}
