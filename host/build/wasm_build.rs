//! Builds workspace crates into WebAssembly components (`wasm32-wasip2`) from a build script.
//!
//! Shared by `host/build.rs` (built-in connectors, embedded in the binary) and
//! `tests/components/build.rs` (misbehaving test plugins). The inner `cargo build` gets its
//! own target directory: the outer build holds the lock on the main one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `packages` (cdylib crates of this workspace) for `wasm32-wasip2` in release mode and
/// returns the path of each one's `.wasm`, in the same order.
pub fn build_components(workspace: &Path, packages: &[&str]) -> Vec<PathBuf> {
    let target_dir = std::env::var_os("WASMHOOK_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target").join("wasm-components"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        // Components ship inside the binary: keep them small.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        // Flags meant for the host build must not leak into the wasm one.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        // Under `cargo clippy` the outer build runs through clippy-driver; the plugins are
        // workspace members and get linted there, natively.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR");
    for package in packages {
        command.args(["--package", package]);
    }
    let status = command.status().expect("could not run cargo to build WebAssembly components");
    assert!(
        status.success(),
        "building {packages:?} for wasm32-wasip2 failed; is the target installed? \
         (`rustup target add wasm32-wasip2`)"
    );

    for dir in ["plugin-sdk", "wit", "plugins", "tests/plugins", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    packages
        .iter()
        .map(|package| {
            target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")))
        })
        .collect()
}
