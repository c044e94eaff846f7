//! Per-token ingest rate limit: at most N events per second, counted in one-second windows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct RateLimiter {
    per_second: u32,
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        RateLimiter { per_second, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts `n` events for `key`; `Err(seconds)` to wait when over the limit.
    pub fn check(&self, key: &str, n: u32) -> Result<(), u64> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let (second, count) = windows.entry(key.to_owned()).or_insert((now, 0));
        if *second != now {
            *second = now;
            *count = 0;
        }
        if count.saturating_add(n) > self.per_second {
            return Err(1);
        }
        *count += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key() {
        let limiter = RateLimiter::new(3);
        assert!(limiter.check("a", 2).is_ok());
        // The window may roll over between calls, which only ever admits more.
        if limiter.check("a", 2).is_ok() {
            return;
        }
        assert!(limiter.check("b", 3).is_ok(), "keys are counted apart");
    }
}
