//! Per-invocation limits and the memory limiter that enforces the memory one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one plugin invocation may use. The defaults are DESIGN.md's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Limits {
    /// CPU deadline, enforced by epoch interruption (rounded up to whole ticks).
    #[serde(with = "millis")]
    pub cpu_time: Duration,
    /// Wall-clock timeout around the whole call; catches blocking WASI calls.
    #[serde(with = "millis")]
    pub wall_time: Duration,
    /// Bytes across all of an instance's linear memories.
    pub memory_bytes: usize,
    /// Bytes of request bodies and headers returned by one invocation.
    pub output_bytes: usize,
    /// Requests returned by one invocation.
    pub max_requests: usize,
    /// Headers per request.
    pub max_headers: usize,
    /// Log bytes (log calls, stdout and stderr together) per invocation.
    pub log_bytes: usize,
    /// Log lines per invocation.
    pub log_lines: usize,
    /// Longer log lines are cut to this many bytes.
    pub log_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_time: Duration::from_millis(250),
            wall_time: Duration::from_secs(1),
            memory_bytes: 64 << 20,
            output_bytes: 5 << 20,
            max_requests: 100,
            max_headers: 64,
            log_bytes: 64 << 10,
            log_lines: 1_000,
            log_line_bytes: 4 << 10,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Caps the sum of an instance's linear memories (a component may have several) and
/// remembers whether it refused, because running out of memory surfaces in the guest as an
/// ordinary trap (`unreachable` after a failed allocation).
pub(crate) struct MemoryLimiter {
    limit: usize,
    used: usize,
    table_elements: usize,
    pub(crate) denied: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize, table_elements: usize) -> Self {
        MemoryLimiter { limit, used: 0, table_elements, denied: false }
    }

    /// Bytes of linear memory granted so far.
    pub(crate) fn used(&self) -> usize {
        self.used
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used - current + desired;
        if total > self.limit {
            self.denied = true;
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn limiter_sums_memories_and_remembers_refusal() {
        let mut l = MemoryLimiter::new(100, 10);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap()); // a second memory
        assert!(l.memory_growing(30, 40, None).unwrap()); // 100 in all
        assert!(!l.denied);
        assert!(!l.memory_growing(40, 41, None).unwrap());
        assert!(l.denied);
        assert!(!l.table_growing(0, 11, None).unwrap());
    }

    #[test]
    fn limits_read_from_kebab_case_millis() {
        let l: Limits = serde_json::from_str(r#"{"cpu-time": 100, "memory-bytes": 1024}"#).unwrap();
        assert_eq!(l.cpu_time, Duration::from_millis(100));
        assert_eq!(l.memory_bytes, 1024);
        assert_eq!(l.wall_time, Limits::default().wall_time);
    }
}
