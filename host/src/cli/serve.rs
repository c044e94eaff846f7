//! `wasmhook serve`: the host itself, configured from flags over the environment over the
//! config file over the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Failure;
use crate::Config;

#[derive(Args)]
pub struct ServeArgs {
    /// TOML config file (keys as the long flags, e.g. `listen`, `retry-schedule`).
    #[arg(long, env = "WASMHOOK_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WASMHOOK_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the database, keys and the generated operator token [default: wasmhook-data].
    #[arg(long, env = "WASMHOOK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database (postgres://user@host/db) instead of the embedded one; hosts
    /// sharing it need the same `secret-key` and `operator-tokens` (config file). TLS as
    /// libpq's options ask: ?sslmode=verify-full&sslrootcert=ca.pem.
    #[arg(long, env = "WASMHOOK_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Apply pending schema migrations to the database at start.
    #[arg(long, env = "WASMHOOK_MIGRATE")]
    migrate: bool,
    /// Directory for compiled plugins [default: wasmhook-cache].
    #[arg(long, env = "WASMHOOK_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// An operator token (otherwise one is generated into the data directory).
    #[arg(long, env = "WASMHOOK_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// Allow webhooks to loopback and private addresses (development and tests).
    #[arg(long, env = "WASMHOOK_ALLOW_PRIVATE_DESTINATIONS")]
    allow_private_destinations: bool,
    /// A non-public host (`HOST` or `HOST:PORT`) webhooks may reach all the same, e.g. a
    /// broker on the private network (repeatable).
    #[arg(
        long = "allow-destination-host",
        value_name = "HOST[:PORT]",
        env = "WASMHOOK_ALLOW_DESTINATION_HOSTS",
        value_delimiter = ','
    )]
    allow_destination_hosts: Vec<crate::destination::AllowedHost>,
    /// Also take events from this broker (repeatable): `nats://HOST/STREAM[?consumer=NAME]`,
    /// `amqp(s)://HOST/VHOST?queue=Q`, `redis(s)://HOST/DB?stream=S&group=G`; `&name=N` names it.
    #[arg(long = "source", value_name = "URL")]
    sources: Vec<crate::source::SourceSpec>,
    /// Delays between delivery attempts [default: 30s,5m,30m,2h].
    #[arg(long, env = "WASMHOOK_RETRY_SCHEDULE", value_parser = |s: &str| crate::config::parse_schedule(s).map(Schedule))]
    retry_schedule: Option<Schedule>,
}

/// A retry schedule as one flag value (a bare `Vec` would make clap expect several values).
#[derive(Clone)]
struct Schedule(Vec<Duration>);

pub async fn run(args: ServeArgs) -> Result<(), Failure> {
    // Everything the server writes (database, keys, compiled plugins) is for its user alone.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let mut config = Config::load(args.config.as_deref()).map_err(|e| Failure(e.to_string()))?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = args.database {
        config.database = Some(url);
    }
    config.migrate |= args.migrate;
    if let Some(dir) = args.cache_dir {
        config.cache_dir = dir;
    }
    if let Some(token) = args.operator_token {
        config.operator_tokens = vec![token];
    }
    config.allow_private_destinations |= args.allow_private_destinations;
    config.allow_destination_hosts.extend(args.allow_destination_hosts);
    config.sources.extend(args.sources);
    let mut names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if let Some(twice) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(Failure(format!(
            "two sources are named {:?}: give one another name with ?name=…",
            twice[0]
        )));
    }
    if let Some(Schedule(schedule)) = args.retry_schedule {
        config.retry_schedule = schedule;
    }
    let shutdown = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", config.listen)))?;
    crate::serve(config, listener, shutdown).await.map_err(|e| Failure(e.to_string()))
}

/// Completes on ctrl-c or SIGTERM. The handlers are installed before this returns, so a
/// signal that arrives while the server is still starting is not lost (nor fatal).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}
