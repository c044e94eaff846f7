//! Paths of the WebAssembly components the tests use, built by this crate's build script: the
//! misbehaving ones from `tests/plugins/` (never shipped) and the Rust example from
//! `plugins/examples/rust`.

include!(concat!(env!("OUT_DIR"), "/components.rs"));

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's `plugins/examples` folder.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/examples")
}

/// Builds the JavaScript example with its own `npm run` scripts (installing its pinned
/// toolchain first when missing); returns the componentize-js and QuickJS components.
pub fn build_js_example() -> (PathBuf, PathBuf) {
    let dir = examples_dir().join("js");
    if !dir.join("node_modules/.bin/componentize-js").exists() {
        // Not `npm ci`: jco and rolldown list optional per-platform binaries the registry here
        // does not carry, so the lockfile cannot name them and `npm ci` refuses it as out of
        // sync. `npm install` follows the same lockfile (exact versions in package.json) and
        // skips what this platform does not need; `--no-save` leaves both files as they are.
        let install = ["install", "--no-audit", "--no-fund", "--no-save"];
        run(Command::new("npm").args(install).current_dir(&dir), "npm install");
    }
    run(Command::new("npm").args(["run", "build"]).current_dir(&dir), "npm run build");
    run(Command::new("npm").args(["run", "build:qjs"]).current_dir(&dir), "npm run build:qjs");
    (dir.join("title-filter.wasm"), dir.join("title-filter-qjs.wasm"))
}

/// Builds the Python example with its `build.sh`, its pinned componentize-py in a venv under
/// the workspace's `target/`.
pub fn build_python_example() -> PathBuf {
    let dir = examples_dir().join("python");
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/examples-venv");
    run(Command::new(dir.join("build.sh")).env("WASMHOOK_PY_VENV", venv), "build.sh");
    dir.join("title-filter.wasm")
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
