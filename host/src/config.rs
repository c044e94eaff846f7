//! The server's configuration: defaults, then a TOML file, then environment variables, then
//! flags (the last two through clap in `main.rs`), in one struct.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::runtime::Limits;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// The embedded database (unless `database` is set), generated keys and the generated
    /// operator token.
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://…`) instead of the embedded one: several hosts may
    /// share it (with the same `secret-key` and `operator-tokens`).
    pub database: Option<String>,
    /// Apply pending schema migrations at start.
    pub migrate: bool,
    /// Compiled plugins (kept apart from the data directory).
    pub cache_dir: PathBuf,
    /// Operator tokens; when none is given one is generated into the data directory.
    pub operator_tokens: Vec<String>,
    /// Key sealing webhook secrets at rest (base64 of 32 bytes); generated when absent.
    pub secret_key: Option<String>,
    /// Allow webhooks to point at loopback and private addresses (development, tests).
    pub allow_private_destinations: bool,
    /// Non-public hosts webhooks may reach all the same (`HOST` or `HOST:PORT`): the brokers of
    /// a private network, say.
    pub allow_destination_hosts: Vec<crate::destination::AllowedHost>,
    /// Brokers to take events from as well (`nats://`, `amqp(s)://`, `redis(s)://`).
    pub sources: Vec<crate::source::SourceSpec>,
    /// Delays between attempts; one more attempt than entries.
    #[serde(deserialize_with = "schedule")]
    pub retry_schedule: Vec<Duration>,
    /// How long events, deliveries and attempts are kept.
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// How long a rotated-out secret still signs alongside the new one.
    #[serde(deserialize_with = "duration")]
    pub rotation_grace: Duration,
    pub limits: ApiLimits,
    pub delivery: DeliveryConfig,
    pub http: HttpConfig,
    pub plugin_limits: Limits,
    /// Event types beyond the built-in catalog: name → description.
    pub event_types: BTreeMap<String, String>,
}

/// Bounds on what the API accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiLimits {
    /// Bytes of one event request (a batch may carry this many per event).
    pub event_bytes: usize,
    /// Bytes of an uploaded plugin.
    pub plugin_bytes: usize,
    /// Bytes of one batch request.
    pub batch_bytes: usize,
    /// Events in one batch.
    pub batch_events: usize,
    /// Deliveries waiting in the queue before ingest answers 503.
    pub queue_depth: u64,
    /// Events per second one token may send; `None` for no limit.
    pub ingest_per_second: Option<u32>,
}

impl Config {
    /// Which non-public destinations webhooks may reach.
    pub fn destinations(&self) -> crate::destination::Allow {
        crate::destination::Allow {
            private: self.allow_private_destinations,
            hosts: self.allow_destination_hosts.clone(),
        }
    }

    /// Where the data lives: the PostgreSQL database when one is given, else the embedded one.
    pub fn storage(&self) -> crate::store::Location {
        match &self.database {
            Some(url) => crate::store::Location::Postgres(url.clone()),
            None => crate::store::Location::Sled(self.data_dir.join("db")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: "wasmhook-data".into(),
            database: None,
            migrate: false,
            cache_dir: "wasmhook-cache".into(),
            operator_tokens: Vec::new(),
            secret_key: None,
            allow_private_destinations: false,
            allow_destination_hosts: Vec::new(),
            sources: Vec::new(),
            retry_schedule: parse_schedule("30s,5m,30m,2h").expect("the default schedule parses"),
            rotation_grace: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            limits: ApiLimits::default(),
            delivery: DeliveryConfig::default(),
            http: HttpConfig::default(),
            plugin_limits: Limits::default(),
            event_types: BTreeMap::new(),
        }
    }
}

/// How deliveries are worked.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Deliveries worked at once.
    pub workers: usize,
    /// Deliveries of one webhook worked at once: a slow receiver cannot take every worker.
    pub per_webhook: usize,
    /// Each attempt's timeout.
    #[serde(deserialize_with = "duration")]
    pub attempt_timeout: Duration,
    /// Several hosts on PostgreSQL: every host delivers what it ingests of a webhook that is
    /// neither `ordered` nor rate-limited, within its share of the webhook's cap (split among
    /// the hosts that take its events). Off, the host holding the webhook's lane delivers all
    /// of it, with the whole cap, wherever its events arrive.
    pub share_webhooks: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            workers: 64,
            per_webhook: 8,
            attempt_timeout: Duration::from_secs(10),
            share_webhooks: true,
        }
    }
}

/// How the HTTP server treats connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpConfig {
    /// How long a connection may take to send a complete request head, counted from when it
    /// opens or its previous response went out: closes slow headers and idle keep-alive alike.
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { header_read_timeout: Duration::from_secs(10) }
    }
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            event_bytes: 1 << 20,
            batch_bytes: 16 << 20,
            plugin_bytes: 50 << 20,
            batch_events: 1_000,
            queue_depth: 1_000_000,
            ingest_per_second: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the config file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// The defaults, overlaid with the TOML file when one is given.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = file else { return Ok(Config::default()) };
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid { path: path.into(), message: e.to_string() })
    }
}

/// Parses `30s,5m,30m,2h` (units `ms`, `s`, `m`, `h`).
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let split = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
            let (number, unit) = part.split_at(split);
            let n: u64 =
                number.parse().map_err(|_| format!("{part:?}: expected a number then ms, s, m or h"))?;
            let millis_per = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(format!("{part:?}: unknown unit {unit:?}; use ms, s, m or h")),
            };
            // Past a year a delay is a typo, and times computed from it would overflow.
            match n.checked_mul(millis_per).filter(|ms| *ms <= MAX_DELAY_MS) {
                Some(ms) => Ok(Duration::from_millis(ms)),
                None => Err(format!("{part:?}: too long; a duration is at most 365 days (8760h)")),
            }
        })
        .collect()
}

const MAX_DELAY_MS: u64 = 365 * 24 * 3_600_000;

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match parse_schedule(&String::deserialize(d)?).map_err(serde::de::Error::custom)?[..] {
        [one] => Ok(one),
        _ => Err(serde::de::Error::custom("expected one duration, e.g. \"10s\"")),
    }
}

fn schedule<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    parse_schedule(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_refused_not_wrapped() {
        for huge in ["18446744073709551615h", "9999999999999m", "366d", "8761h"] {
            assert!(parse_schedule(huge).is_err(), "{huge} accepted");
        }
        assert_eq!(parse_schedule("8760h").unwrap(), [Duration::from_secs(365 * 24 * 3600)]);
    }

    #[test]
    fn schedules_parse_with_units() {
        assert_eq!(
            parse_schedule("30s, 5m,30m,2h,10ms").unwrap(),
            [30, 300, 1800, 7200]
                .map(Duration::from_secs)
                .into_iter()
                .chain([Duration::from_millis(10)])
                .collect::<Vec<_>>()
        );
        assert!(parse_schedule("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_schedule("s").unwrap_err().contains("expected a number"));
    }

    #[test]
    fn the_file_overlays_the_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wasmhook.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nretry-schedule = \"1s,2s\"\n[limits]\nbatch-events = 10\n\
             [http]\nheader-read-timeout = \"5s\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.retry_schedule.len(), 2);
        assert_eq!(config.limits.batch_events, 10);
        assert_eq!(config.limits.event_bytes, 1 << 20);
        assert_eq!(config.http.header_read_timeout, Duration::from_secs(5));

        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path)).unwrap_err().to_string().contains("unknown field `listne`"));
    }
}
