//! The invocation's log: lines shown in the delivery log and by `wasmhook plugin run`.
//!
//! The host caps lines, bytes and line length per invocation; a plugin that floods its log
//! fails that invocation. `println!`/`eprintln!` land in the same log.

use crate::__bindings::wasmhook::plugin::host::{self, LogLevel};

pub fn debug(message: &str) {
    host::log(LogLevel::Debug, message);
}

pub fn info(message: &str) {
    host::log(LogLevel::Info, message);
}

pub fn warn(message: &str) {
    host::log(LogLevel::Warn, message);
}

pub fn error(message: &str) {
    host::log(LogLevel::Error, message);
}
