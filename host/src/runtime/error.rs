//! What can go wrong loading or running a plugin, in words a plugin author can act on.

use std::time::Duration;

/// Why a plugin could not be loaded or an invocation produced no requests.
///
/// Every variant but [`PluginError::Plugin`] is the host stopping a misbehaving plugin; the
/// instance involved is thrown away. `Plugin` is the plugin's own, orderly refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The bytes are not a component implementing `wasmhook:plugin/connector@0.1.0`.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// The plugin trapped: a panic, an `unreachable`, a stack overflow, a host refusal.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin ran past its CPU deadline or the wall-clock timeout.
    #[error("plugin timed out: {0}")]
    Timeout(TimeoutKind),
    /// The plugin tried to grow its memories past the limit.
    #[error("plugin ran out of memory: it needed more than the {limit_mib} MiB limit")]
    OutOfMemory { limit_mib: usize },
    /// The plugin called `exit` (from WASI); a plugin must return instead.
    #[error("plugin called exit({0}); return a result or an error instead")]
    Exit(i32),
    /// The plugin wrote more log (lines, bytes) than one invocation may.
    #[error("plugin log over its limit: {0}")]
    LogLimit(String),
    /// The plugin returned requests the host will not send (size, count, headers, method, URL).
    #[error("plugin returned bad output: {0}")]
    BadOutput(String),
    /// The plugin used more of a host resource than one invocation may (WASI handles).
    #[error("plugin over a resource limit: {0}")]
    ResourceLimit(String),
    /// The plugin kept hitting its limits: it is not run until its back-off ends.
    #[error(
        "plugin not run: it hit its limits {strikes} times in a row, so it is backed off for {} s",
        retry_in.as_secs().max(1)
    )]
    BackedOff { strikes: u32, retry_in: Duration },
    /// The host has no room for another instance right now: not the plugin's fault; try again.
    #[error("the host is busy running other plugins; try again shortly ({0})")]
    HostBusy(String),
    /// The plugin itself reported that it could not handle this event or config.
    #[error("{0}")]
    Plugin(PluginFailure),
}

/// Which clock stopped the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Wasm code ran past the epoch deadline.
    Cpu(Duration),
    /// The whole call (including blocking WASI calls such as sleeps) ran past the wall clock.
    WallClock(Duration),
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeoutKind::Cpu(limit) => {
                write!(f, "it computed for longer than {} ms", limit.as_millis())
            }
            TimeoutKind::WallClock(limit) => write!(
                f,
                "the call took longer than {} ms (blocked in a WASI call such as a sleep?)",
                limit.as_millis()
            ),
        }
    }
}

impl PluginError {
    /// Whether the plugin ran past a limit that costs the host (CPU, memory, resources): what
    /// backs a connector off when it keeps happening.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            PluginError::Timeout(_)
                | PluginError::OutOfMemory { .. }
                | PluginError::ResourceLimit(_)
                | PluginError::LogLimit(_)
        )
    }
}

/// At most this much of any text a plugin chose (its error messages) is kept or shown.
pub const MAX_PLUGIN_TEXT: usize = 4 << 10;

/// `text` cut to [`MAX_PLUGIN_TEXT`] bytes at a character boundary, saying so.
pub fn cap_text(mut text: String) -> String {
    if text.len() > MAX_PLUGIN_TEXT {
        let end = text.floor_char_boundary(MAX_PLUGIN_TEXT);
        let dropped = text.len() - end;
        text.truncate(end);
        text.push_str(&format!("… ({dropped} more bytes not kept)"));
    }
    text
}

/// The plugin's own error (the WIT `plugin-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginFailure {
    InvalidConfig(String),
    InvalidEvent(String),
    Failed(String),
}

impl std::fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginFailure::InvalidConfig(m) => write!(f, "plugin refused its config: {m}"),
            PluginFailure::InvalidEvent(m) => write!(f, "plugin refused the event: {m}"),
            PluginFailure::Failed(m) => write!(f, "plugin failed: {m}"),
        }
    }
}

impl PluginError {
    /// A stable machine-readable code, for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            PluginError::InvalidComponent(_) => "invalid_component",
            PluginError::Trap(_) => "trap",
            PluginError::Timeout(_) => "timeout",
            PluginError::OutOfMemory { .. } => "out_of_memory",
            PluginError::Exit(_) => "exit",
            PluginError::LogLimit(_) => "log_limit",
            PluginError::BadOutput(_) => "bad_output",
            PluginError::ResourceLimit(_) => "resource_limit",
            PluginError::BackedOff { .. } => "backed_off",
            PluginError::HostBusy(_) => "host_busy",
            PluginError::Plugin(PluginFailure::InvalidConfig(_)) => "invalid_config",
            PluginError::Plugin(PluginFailure::InvalidEvent(_)) => "invalid_event",
            PluginError::Plugin(PluginFailure::Failed(_)) => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_text_is_capped_at_a_character_boundary() {
        let capped = cap_text("é".repeat(4 << 20));
        assert!(capped.len() < MAX_PLUGIN_TEXT + 64, "{}", capped.len());
        assert!(capped.ends_with("more bytes not kept)"));
        assert_eq!(cap_text("short".into()), "short");
    }
}
