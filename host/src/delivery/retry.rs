//! When to try a failed message again: the retry schedule, jitter, and `Retry-After`.

use std::time::Duration;

/// The longest a receiver's `Retry-After` may push an attempt back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
}

impl RetryPolicy {
    pub fn new(schedule: Vec<Duration>) -> Self {
        RetryPolicy { schedule }
    }

    /// Attempts a message gets in all: one more than the schedule's length.
    pub fn max_attempts(&self) -> u32 {
        attempts(&self.schedule)
    }

    /// The wait after the `attempts`-th failed attempt, or `None` when none are left.
    /// `jitter` in [0, 1) spreads retries ±10 % so a recovering receiver is not stampeded;
    /// a `Retry-After` longer than the schedule's wait is honoured.
    pub fn next_delay(&self, attempts: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
        let scheduled = *self.schedule.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
        let jittered = scheduled.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0));
        Some(jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)))
    }
}

/// Attempts a message gets on `schedule`: one more than its length.
pub fn attempts(schedule: &[Duration]) -> u32 {
    u32::try_from(schedule.len()).unwrap_or(u32::MAX - 1) + 1
}

/// Reads `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    httpdate::parse_http_date(value).ok().map(|at| at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new([30, 300, 1800, 7200].map(Duration::from_secs).to_vec())
    }

    #[test]
    fn five_attempts_on_the_default_schedule() {
        let p = policy();
        assert_eq!(p.max_attempts(), 5);
        assert_eq!(p.next_delay(1, None, 0.5), Some(Duration::from_secs(30)));
        assert_eq!(p.next_delay(4, None, 0.5), Some(Duration::from_secs(7200)));
        assert_eq!(p.next_delay(5, None, 0.5), None, "the fifth failure is the last");
        assert_eq!(p.next_delay(0, None, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let p = policy();
        assert_eq!(p.next_delay(1, None, 0.0), Some(Duration::from_secs(27)));
        assert!(p.next_delay(1, None, 0.999).unwrap() < Duration::from_secs(33));
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        let p = policy();
        assert_eq!(p.next_delay(1, Some(Duration::from_secs(120)), 0.5), Some(Duration::from_secs(120)));
        assert_eq!(p.next_delay(1, Some(Duration::from_secs(1)), 0.5), Some(Duration::from_secs(30)));
        assert_eq!(p.next_delay(1, Some(Duration::from_secs(1 << 40)), 0.5), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
    }
}
