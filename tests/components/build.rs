//! Builds the test-only components under `tests/plugins/` and writes their paths as constants.

#[path = "../../host/build/wasm_build.rs"]
mod wasm_build;

use std::path::Path;

/// Constant name and the crate it points at.
const COMPONENTS: &[(&str, &str)] = &[
    ("HOSTILE", "wasmhook-test-hostile"),
    ("JUDGE", "wasmhook-test-judge"),
    ("TITLE_FILTER_RUST", "wasmhook-example-title-filter"),
];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest_dir).join("../..");
    let packages: Vec<&str> = COMPONENTS.iter().map(|(_, package)| *package).collect();
    let wasm = wasm_build::build_components(&workspace, &packages);

    let mut consts = String::new();
    for ((name, package), path) in COMPONENTS.iter().zip(&wasm) {
        consts.push_str(&format!(
            "/// The `{package}` component.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("components.rs"), consts).expect("write components.rs");
}
