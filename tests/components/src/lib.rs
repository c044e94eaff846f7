//! Paths of the WebAssembly components the tests use, built by this crate's build script: the
//! test-only ones from `tests/plugins/` (never shipped) and the Rust example from
//! `plugins/examples/rust`; and the JavaScript and Python examples, built with their own tools.

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
    let dir = js_example_tools();
    run(Command::new("npm").args(["run", "build"]).current_dir(&dir), "npm run build");
    run(Command::new("npm").args(["run", "build:qjs"]).current_dir(&dir), "npm run build:qjs");
    (dir.join("title-filter.wasm"), dir.join("title-filter-qjs.wasm"))
}

/// The JavaScript example as it was written for contract 0.1 — the same source, importing
/// `wasmhook:plugin/host@0.1.0` — built by componentize-js against `wit/0.1`, as its `npm run
/// build` did then: what a user who built it before 0.2 has uploaded.
pub fn build_js_example_for_contract_0_1() -> PathBuf {
    let dir = js_example_tools();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/contract-0.1");
    std::fs::create_dir_all(&out).expect("make target/contract-0.1");
    let source = std::fs::read_to_string(dir.join("title-filter.js")).expect("read the example");
    let then = source.replace("wasmhook:plugin/host@0.2.0", "wasmhook:plugin/host@0.1.0");
    assert_ne!(then, source, "the example imports the 0.2 host interface");
    std::fs::write(out.join("title-filter.js"), then).expect("write the 0.1 source");
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/0.1");
    let wasm = out.join("title-filter.wasm");
    let mut build = Command::new(dir.join("node_modules/.bin/componentize-js"));
    build.arg(out.join("title-filter.js")).arg("--wit").arg(&wit);
    build.args(["--world-name", "connector", "-d", "http", "fetch-event", "-o"]).arg(&wasm);
    run(build.current_dir(&dir), "componentize-js (contract 0.1)");
    wasm
}

/// The JavaScript example's folder, its pinned toolchain installed.
fn js_example_tools() -> PathBuf {
    let dir = examples_dir().join("js");
    if !dir.join("node_modules/.bin/componentize-js").exists() {
        // Not `npm ci`: jco and rolldown list optional per-platform binaries the registry here
        // does not carry, so the lockfile cannot name them and `npm ci` refuses it as out of
        // sync. `npm install` follows the same lockfile (exact versions in package.json) and
        // skips what this platform does not need; `--no-save` leaves both files as they are.
        let install = ["install", "--no-audit", "--no-fund", "--no-save"];
        run(Command::new("npm").args(install).current_dir(&dir), "npm install");
    }
    dir
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
